"""What the server keeps between calls: conversations, and replies (one record per send_message
call, read back with get_reply and the reply resources).

A conversation is the ``system`` prompt and the completed turns: the messages the caller sent
and the reply, so an agent continues an exchange by id instead of resending it. Only completed
calls are stored. Everything belongs to the key that made it: the store keeps a keyed hash of
the key, never the key, and another key's id reads as unknown. In memory (bounded by a TTL and
a byte cap, least recently used first out) or in Redis, where any number of server processes
share them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

__all__ = [
    "Conversation",
    "MemoryStore",
    "RedisStore",
    "Store",
    "StoreUnavailableError",
    "history",
    "new_conversation_id",
    "new_reply_id",
    "open_store",
    "parse_conversation_ref",
    "save_reply_file",
]

_REF = re.compile(r"^(c_[A-Za-z0-9_-]{8,64})(?:#(\d+))?$")
_THINKING = ("thinking", "redacted_thinking")


class StoreUnavailableError(Exception):
    """The conversation store (Redis) did not answer."""


def new_conversation_id() -> str:
    return "c_" + secrets.token_urlsafe(16)


def new_reply_id() -> str:
    return "r_" + secrets.token_urlsafe(16)


def save_reply_file(reply_id: str, text: str) -> str:
    """Write a full reply where an agent with file tools can page through it (stdio: the server
    and the agent share a machine). Readable by this user only."""
    folder = Path(tempfile.gettempdir()) / "aitoearn-mcp-replies"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{reply_id}.txt"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    return str(path)


def parse_conversation_ref(ref: str) -> tuple[str, int | None] | None:
    """``c_…`` (the latest turn) or ``c_…#N`` (after turn N: a branch); None when malformed."""
    found = _REF.match(ref.strip())
    if found is None:
        return None
    return found.group(1), int(found.group(2)) if found.group(2) else None


@dataclass
class Conversation:
    id: str
    owner: str
    system: Any = None
    turns: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"owner": self.owner, "system": self.system, "turns": self.turns}, ensure_ascii=False)

    @classmethod
    def from_json(cls, conversation_id: str, raw: str | bytes) -> Conversation:
        data = json.loads(raw)
        return cls(conversation_id, data["owner"], data.get("system"), data.get("turns") or [])


def history(conversation: Conversation, channel: str | None) -> list[dict[str, Any]]:
    """The stored turns as messages for the next call. Thinking blocks carry a provider's
    signature: they go back only to a model of the channel that wrote them."""
    messages: list[dict[str, Any]] = []
    for turn in conversation.turns:
        messages += turn["messages"]
        content = turn["reply"]
        if channel is None or turn.get("channel") != channel:
            content = [block for block in content if block.get("type") not in _THINKING]
        if content:
            messages.append({"role": "assistant", "content": content})
    return messages


class Store(Protocol):
    async def owner_tag(self, key: SecretStr) -> str: ...

    async def load(self, conversation_id: str, owner: str) -> Conversation | None: ...

    async def save(self, conversation: Conversation, *, expected_turns: int) -> bool:
        """Store ``conversation`` if the stored one still has ``expected_turns`` turns (0: a new
        one); False when another call continued it meanwhile."""
        ...

    async def save_reply(self, reply_id: str, owner: str, record: str) -> None:
        """Create or replace the reply's record (JSON text written by the delegation module)."""
        ...

    async def load_reply(self, reply_id: str, owner: str) -> str | None:
        """The record, or None when unknown, expired or another owner's."""
        ...

    async def request_cancel(self, reply_id: str, owner: str) -> bool:
        """Ask whichever process runs this reply to stop it; False when unknown or another owner's."""
        ...

    async def cancel_requested(self, reply_id: str) -> bool:
        """Polled (about every 0.5 s) by the process running the reply."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def _tag(secret: bytes, key: SecretStr) -> str:
    return hmac.new(secret, key.get_secret_value().encode(), hashlib.sha256).hexdigest()


class MemoryStore:
    """Everything in this process: expires after ``ttl`` seconds unused; past ``max_bytes`` the
    least recently used goes first."""

    def __init__(self, ttl: float, max_bytes: int) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._secret = secrets.token_bytes(32)
        # id → (expires at, record JSON, turns): the turn count saves parsing a record to check it
        self._items: OrderedDict[str, tuple[float, str, int]] = OrderedDict()
        self._bytes = 0
        self._cancels: set[str] = set()  # reply ids whose cancel was asked for

    async def owner_tag(self, key: SecretStr) -> str:
        return _tag(self._secret, key)

    def _drop(self, conversation_id: str) -> None:
        _, raw, _ = self._items.pop(conversation_id)
        self._bytes -= len(raw)
        self._cancels.discard(conversation_id)

    def _get(self, item_id: str) -> str | None:
        item = self._items.get(item_id)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._drop(item_id)
            return None
        # A use keeps it another ``ttl`` and makes it the most recent: the order of the items is
        # then the order of their expiry, so expired ones are always at the front.
        self._items[item_id] = (time.monotonic() + self.ttl, item[1], item[2])
        self._items.move_to_end(item_id)
        return item[1]

    async def load(self, conversation_id: str, owner: str) -> Conversation | None:
        raw = self._get(conversation_id)
        if raw is None:
            return None
        conversation = Conversation.from_json(conversation_id, raw)
        return conversation if hmac.compare_digest(conversation.owner, owner) else None

    def _put(self, item_id: str, raw: str, turns: int = 0) -> None:
        if item_id in self._items:
            self._drop(item_id)
        self._items[item_id] = (time.monotonic() + self.ttl, raw, turns)
        self._bytes += len(raw)
        now = time.monotonic()
        while self._items and (
            next(iter(self._items.values()))[0] <= now or (self._bytes > self.max_bytes and len(self._items) > 1)
        ):
            self._drop(next(iter(self._items)))

    async def save(self, conversation: Conversation, *, expected_turns: int) -> bool:
        stored_turns = self._items[conversation.id][2] if self._get(conversation.id) is not None else 0
        if stored_turns != expected_turns:
            return False
        self._put(conversation.id, conversation.to_json(), len(conversation.turns))
        return True

    async def save_reply(self, reply_id: str, owner: str, record: str) -> None:
        cancel = reply_id in self._cancels
        self._put(reply_id, f"{owner}\n{record}")  # the owner is a hex tag: no newline in it
        if cancel:
            self._cancels.add(reply_id)

    async def load_reply(self, reply_id: str, owner: str) -> str | None:
        raw = self._get(reply_id)
        if raw is None:
            return None
        stored_owner, _, record = raw.partition("\n")
        return record if hmac.compare_digest(stored_owner, owner) else None

    async def request_cancel(self, reply_id: str, owner: str) -> bool:
        if await self.load_reply(reply_id, owner) is None:
            return False
        self._cancels.add(reply_id)
        return True

    async def cancel_requested(self, reply_id: str) -> bool:
        return reply_id in self._cancels

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._items.clear()
        self._bytes = 0
        self._cancels.clear()


# Store the record only when the stored turn count is still the one the caller read.
_SAVE_SCRIPT = """
local n = redis.call('HGET', KEYS[1], 'n')
if (n == false and ARGV[1] ~= '0') or (n ~= false and n ~= ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'n', ARGV[2], 'data', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# Mark a reply for cancelling, only if it exists and belongs to the caller.
_CANCEL_SCRIPT = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cancel', '1')
return 1
"""


class RedisStore:
    """Everything in Redis, shared by every server process that names the same URL."""

    PREFIX = "aitoearn-mcp:"

    def __init__(self, url: str, ttl: float) -> None:
        import redis.asyncio as redis  # only deployments that configure Redis need it

        self.ttl = ttl
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        self._errors = (redis.RedisError, OSError)
        self._save = self._redis.register_script(_SAVE_SCRIPT)
        self._cancel = self._redis.register_script(_CANCEL_SCRIPT)
        self._secret: bytes | None = None

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis did not answer ({type(exc).__name__})") from None

    async def owner_tag(self, key: SecretStr) -> str:
        if self._secret is None:
            # One secret for every process sharing this Redis, made by whichever asks first.
            name = self.PREFIX + "owner-secret"
            await self._call(self._redis.set(name, secrets.token_hex(32), nx=True))
            self._secret = bytes(await self._call(self._redis.get(name)))
        return _tag(self._secret, key)

    async def load(self, conversation_id: str, owner: str) -> Conversation | None:
        raw = await self._call(self._redis.hget(self.PREFIX + "c:" + conversation_id, "data"))
        if raw is None:
            return None
        conversation = Conversation.from_json(conversation_id, raw)
        return conversation if hmac.compare_digest(conversation.owner, owner) else None

    async def save(self, conversation: Conversation, *, expected_turns: int) -> bool:
        args = [expected_turns, len(conversation.turns), conversation.to_json(), int(self.ttl * 1000)]
        return bool(await self._call(self._save(keys=[self.PREFIX + "c:" + conversation.id], args=args)))

    async def save_reply(self, reply_id: str, owner: str, record: str) -> None:
        name = self.PREFIX + "r:" + reply_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"owner": owner, "record": record})  # a cancel mark set meanwhile stays
            pipe.pexpire(name, int(self.ttl * 1000))
            await self._call(pipe.execute())

    async def load_reply(self, reply_id: str, owner: str) -> str | None:
        found = await self._call(self._redis.hmget(self.PREFIX + "r:" + reply_id, ["owner", "record"]))
        if found[0] is None or found[1] is None or not hmac.compare_digest(found[0].decode(), owner):
            return None
        return found[1].decode()

    async def request_cancel(self, reply_id: str, owner: str) -> bool:
        return bool(await self._call(self._cancel(keys=[self.PREFIX + "r:" + reply_id], args=[owner])))

    async def cancel_requested(self, reply_id: str) -> bool:
        return bool(await self._call(self._redis.hexists(self.PREFIX + "r:" + reply_id, "cancel")))

    async def ping(self) -> bool:
        try:
            await self._call(self._redis.ping())
        except StoreUnavailableError:
            return False
        return True

    async def aclose(self) -> None:
        await self._redis.aclose()


def open_store(url: str, ttl: float, max_bytes: int) -> Store:
    return RedisStore(url, ttl) if url else MemoryStore(ttl, max_bytes)
