"""The Redis store: conversations and replies in Redis, shared by every server process (on any
number of machines) that names the same URL. Only deployments that configure it load this
module and the Redis client; scripts keep each compare-and-set and index update atomic.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import SecretStr

from .._errors import StoreUnavailableError, TooLargeToStoreError
from ._protocol import (
    COUNT_SECONDS,
    UNLISTED,
    Conversation,
    ConversationSummary,
    ReplySummary,
    conversation_summary,
    is_conversation_id,
    is_reply_id,
    owner_hmac,
    reply_summary,
)

__all__ = ["RedisStore"]

_T = TypeVar("_T")

MAX_INDEXED = 200  # per key and kind: how many recent ids Redis keeps for listing

# The owner secret: the one already there, else the one this process knew (Redis restarted
# empty: every replica puts back the same secret, so they agree again), else a new one.
_SECRET_SCRIPT = """
local s = redis.call('GET', KEYS[1])
if s then return s end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

# Store the conversation only when the stored turn count is still the one the caller read,
# and note it in its owner's index of recent conversations.
_SAVE_SCRIPT = """
local n = redis.call('HGET', KEYS[1], 'n')
if (n == false and ARGV[1] ~= '0') or (n ~= false and n ~= ARGV[1]) then return 0 end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'n', ARGV[2], 'data', ARGV[3], 'owner', ARGV[5], 'summary', ARGV[6], 'used', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[8])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[9]))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""

# Create or replace a reply's record unless another owner holds the id; keeps a cancel request.
_SAVE_REPLY_SCRIPT = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'data', ARGV[2], 'summary', ARGV[3], 'used', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[6])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[7]))
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""

# A use: the owner's record, with its TTL and its place in the owner's index renewed.
_USE_SCRIPT = """
local found = redis.call('HMGET', KEYS[1], 'owner', 'data', 'summary')
if not found[1] or found[1] ~= ARGV[1] then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[1], 'used', ARGV[3])
if found[3] ~= '' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'cancel', '1') end
return found[2]
"""

# A take-over: the owner's record replaced only while it is still the one the caller read.
_CLAIM_SCRIPT = """
local found = redis.call('HMGET', KEYS[1], 'owner', 'data')
if found[1] ~= ARGV[1] or found[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'summary', ARGV[6], 'used', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

# A day's credits count: added to and kept two days from its last change, in one step.
_COUNT_SCRIPT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
"""


class RedisStore:
    """Everything in Redis, shared by every server process that names the same URL. Redis
    bounds its own memory (``maxmemory``); items expire after ``ttl`` seconds unused."""

    PREFIX = "aitoearn-mcp:"

    def __init__(self, url: str, ttl: float, max_bytes: int = 64 * 1024 * 1024) -> None:
        import redis.asyncio as redis  # only deployments that configure Redis need it

        self.ttl = ttl
        self.max_bytes = max_bytes
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        self._errors = (redis.RedisError, OSError)
        self._stale = (redis.ConnectionError, OSError)
        self._secret_script = self._redis.register_script(_SECRET_SCRIPT)
        self._save = self._redis.register_script(_SAVE_SCRIPT)
        self._save_reply = self._redis.register_script(_SAVE_REPLY_SCRIPT)
        self._use = self._redis.register_script(_USE_SCRIPT)
        self._claim = self._redis.register_script(_CLAIM_SCRIPT)
        self._count = self._redis.register_script(_COUNT_SCRIPT)
        self._secret = secrets.token_hex(32)  # replaced by the shared one on first use

    async def _call(self, make: Callable[[], Awaitable[_T]]) -> _T:
        """``make()`` once more on a fresh connection when a pooled one went stale (Redis
        restarted while this process was idle); StoreUnavailableError when Redis is down."""
        try:
            try:
                return await make()
            except self._stale:
                return await make()
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis did not answer ({type(exc).__name__})") from None

    def _ms(self) -> int:
        return int(self.ttl * 1000)

    def _index(self, owner: str, kind: str) -> str:
        return f"{self.PREFIX}o:{owner}:{kind}"

    async def owner_tag(self, key: SecretStr) -> str:
        # Asked every time, not cached: a Redis restarted empty gets the secret back at once.
        name = self.PREFIX + "owner-secret"
        found = await self._call(lambda: self._secret_script(keys=[name], args=[self._secret]))
        self._secret = found.decode() if isinstance(found, bytes) else str(found)
        return owner_hmac(self._secret.encode(), key)

    async def _use_item(self, kind: str, item_id: str, owner: str, *, cancel: bool = False) -> bytes | None:
        keys = [f"{self.PREFIX}{kind}:{item_id}", self._index(owner, kind)]
        args = [owner, self._ms(), repr(time.time()), item_id, "1" if cancel else "0"]
        return await self._call(lambda: self._use(keys=keys, args=args))

    async def load(self, conversation_id: str, owner: str) -> Conversation | None:
        if not is_conversation_id(conversation_id):
            return None
        raw = await self._use_item("c", conversation_id, owner)
        return None if raw is None else Conversation.from_json(conversation_id, raw)

    async def save(self, conversation: Conversation, *, expected_turns: int) -> bool:
        raw = conversation.to_json()
        if (size := len(raw.encode())) > self.max_bytes:
            raise TooLargeToStoreError(size, self.max_bytes)
        used = time.time()
        keys = [self.PREFIX + "c:" + conversation.id, self._index(conversation.owner, "c")]
        summary = conversation_summary(conversation, used).to_json()
        args = [expected_turns, len(conversation.turns), raw, self._ms(), conversation.owner, summary, repr(used),
                conversation.id, MAX_INDEXED]  # fmt: skip
        return bool(await self._call(lambda: self._save(keys=keys, args=args)))

    async def save_new(self, conversation: Conversation) -> None:
        if not await self.save(conversation, expected_turns=0):  # a new id is never taken
            raise StoreUnavailableError(f"the conversation id {conversation.id} is taken")

    async def save_reply(self, reply_id: str, owner: str, record: str, *, later: bool = False) -> None:
        if (size := len(record.encode())) > self.max_bytes:
            raise TooLargeToStoreError(size, self.max_bytes)
        used = time.time()
        keys = [self.PREFIX + "r:" + reply_id, self._index(owner, "r")]
        summary = found.to_json() if (found := reply_summary(reply_id, record, used)) else UNLISTED
        args = [owner, record, summary, repr(used), self._ms(), reply_id, MAX_INDEXED]
        await self._call(lambda: self._save_reply(keys=keys, args=args))

    async def load_reply(self, reply_id: str, owner: str) -> str | None:
        if not is_reply_id(reply_id):
            return None
        raw = await self._use_item("r", reply_id, owner)
        return None if raw is None else raw.decode()

    async def claim_reply(self, reply_id: str, owner: str, seen: str, record: str) -> bool:
        if not is_reply_id(reply_id):
            return False
        if (size := len(record.encode())) > self.max_bytes:
            raise TooLargeToStoreError(size, self.max_bytes)
        used = time.time()
        summary = found.to_json() if (found := reply_summary(reply_id, record, used)) else UNLISTED
        keys, args = [self.PREFIX + "r:" + reply_id], [owner, seen, record, repr(used), self._ms(), summary]
        return bool(await self._call(lambda: self._claim(keys=keys, args=args)))

    async def request_cancel(self, reply_id: str, owner: str) -> bool:
        return is_reply_id(reply_id) and await self._use_item("r", reply_id, owner, cancel=True) is not None

    async def cancels_requested(self, reply_ids: Sequence[str]) -> set[str]:
        async def asked() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:  # one round trip for all
                for reply_id in reply_ids:
                    pipe.hget(self.PREFIX + "r:" + reply_id, "cancel")
                return await pipe.execute()

        flags = await self._call(asked)
        return {reply_id for reply_id, flag in zip(reply_ids, flags, strict=True) if flag is not None}

    async def add_credits(self, owner: str, day: str, micro: int) -> int:
        keys, args = [f"{self.PREFIX}credits:{owner}:{day}"], [micro, int(COUNT_SECONDS * 1000)]
        return int(await self._call(lambda: self._count(keys=keys, args=args)))

    async def _recent(self, owner: str, kind: str, limit: int) -> list[tuple[str, float, bytes]]:
        index = self._index(owner, kind)
        ids: list[Any] = await self._call(lambda: self._redis.zrevrange(index, 0, max(limit, 1) - 1))

        async def fetch() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for item_id in ids:
                    pipe.hmget(f"{self.PREFIX}{kind}:{item_id.decode()}", ["owner", "used", "summary"])
                return await pipe.execute()

        found, gone = [], []
        for item_id, (item_owner, used, summary) in zip(ids, await self._call(fetch), strict=True):
            if item_owner is None or not summary:
                gone.append(item_id)  # expired since it was indexed (or not listed)
            elif item_owner.decode() == owner:
                found.append((item_id.decode(), float(used), summary))
        if gone:
            await self._call(lambda: self._redis.zrem(index, *gone))
        return found[:limit]

    async def recent_conversations(self, owner: str, limit: int) -> list[ConversationSummary]:
        return [ConversationSummary.from_json(*found) for found in await self._recent(owner, "c", limit)]

    async def recent_replies(self, owner: str, limit: int) -> list[ReplySummary]:
        return [ReplySummary.from_json(*found) for found in await self._recent(owner, "r", limit)]

    async def ping(self) -> bool:
        try:
            await self._call(lambda: self._redis.ping())
        except StoreUnavailableError:
            return False
        return True

    async def aclose(self) -> None:
        await self._redis.aclose()
