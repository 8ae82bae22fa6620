"""The store in this process's memory (``AITOEARN_CONVERSATIONS=memory``): gone when it exits."""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from .._errors import StoreUnavailableError, TooLargeToStoreError
from ._protocol import (
    COUNT_SECONDS,
    Conversation,
    ConversationSummary,
    ReplySummary,
    conversation_summary,
    is_conversation_id,
    is_reply_id,
    owner_hmac,
    reply_summary,
)

__all__ = ["MemoryStore"]


@dataclass
class _Item:
    owner: str
    raw: str  # the record JSON
    size: int  # its bytes in UTF-8
    expires: float  # monotonic
    used: float  # unix time of the last use
    turns: int = 0  # conversations: saves checking a count without parsing the record
    summary: ConversationSummary | ReplySummary | None = None
    cancel: bool = False


class MemoryStore:
    """Everything in this process: expires after ``ttl`` seconds unused. Past ``max_bytes``
    the key holding the most bytes gives up its least recently used item first, so one key
    cannot push out everyone else's."""

    def __init__(self, ttl: float, max_bytes: int) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._secret = secrets.token_bytes(32)
        # In order of last use, which is the order of expiry: expired ones are at the front.
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._bytes = 0
        self._bytes_by_owner: dict[str, int] = {}
        self._counts: dict[tuple[str, str], tuple[int, float]] = {}  # (owner, day) → (count, expires: monotonic)

    async def owner_tag(self, key: SecretStr) -> str:
        return owner_hmac(self._secret, key)

    def _drop(self, item_id: str) -> None:
        item = self._items.pop(item_id)
        self._bytes -= item.size
        left = self._bytes_by_owner[item.owner] - item.size
        if left:
            self._bytes_by_owner[item.owner] = left
        else:
            del self._bytes_by_owner[item.owner]

    def _get(self, item_id: str, owner: str | None) -> _Item | None:
        """The live item, made the most recent with another ``ttl`` when ``owner`` (None: any
        owner, not a use) holds it."""
        item = self._items.get(item_id)
        if item is None:
            return None
        if item.expires <= time.monotonic():
            self._drop(item_id)
            return None
        if owner is not None:
            if not hmac.compare_digest(item.owner, owner):
                return None
            item.expires, item.used = time.monotonic() + self.ttl, time.time()
            self._items.move_to_end(item_id)
        return item

    def _put(self, item_id: str, item: _Item) -> None:
        if item.size > self.max_bytes:
            raise TooLargeToStoreError(item.size, self.max_bytes)
        if item_id in self._items:
            item.cancel = self._items[item_id].cancel
            self._drop(item_id)
        self._items[item_id] = item
        self._bytes += item.size
        self._bytes_by_owner[item.owner] = self._bytes_by_owner.get(item.owner, 0) + item.size
        now = time.monotonic()
        while self._items and next(iter(self._items.values())).expires <= now:
            self._drop(next(iter(self._items)))
        while self._bytes > self.max_bytes:
            self._drop(self._victim(item_id))

    def _victim(self, keep: str) -> str:
        """The least recently used item of the key holding the most bytes (not ``keep``)."""
        for owner in sorted(self._bytes_by_owner, key=self._bytes_by_owner.__getitem__, reverse=True):
            for item_id, item in self._items.items():
                if item_id != keep and item.owner == owner:
                    return item_id
        raise AssertionError("over the cap with nothing but the new item")  # its size was checked

    async def load(self, conversation_id: str, owner: str) -> Conversation | None:
        item = self._get(conversation_id, owner) if is_conversation_id(conversation_id) else None
        return None if item is None else Conversation.from_json(conversation_id, item.raw)

    async def save(self, conversation: Conversation, *, expected_turns: int) -> bool:
        stored = self._get(conversation.id, None)
        if (stored.turns if stored else 0) != expected_turns or (stored and stored.owner != conversation.owner):
            return False
        raw = conversation.to_json()
        used = time.time()
        summary = conversation_summary(conversation, used)
        item = _Item(conversation.owner, raw, len(raw.encode()), time.monotonic() + self.ttl, used,
                     len(conversation.turns), summary)  # fmt: skip
        self._put(conversation.id, item)
        return True

    async def save_new(self, conversation: Conversation) -> None:
        if not await self.save(conversation, expected_turns=0):  # a new id is never taken
            raise StoreUnavailableError(f"the conversation id {conversation.id} is taken")

    async def save_reply(self, reply_id: str, owner: str, record: str, *, later: bool = False) -> None:
        stored = self._get(reply_id, None)
        if stored is not None and stored.owner != owner:
            return
        used = time.time()
        self._put(reply_id, _Item(owner, record, len(record.encode()), time.monotonic() + self.ttl, used,
                                  summary=reply_summary(reply_id, record, used)))  # fmt: skip

    async def load_reply(self, reply_id: str, owner: str) -> str | None:
        item = self._get(reply_id, owner) if is_reply_id(reply_id) else None
        return None if item is None else item.raw

    async def claim_reply(self, reply_id: str, owner: str, seen: str, record: str) -> bool:
        item = self._get(reply_id, owner) if is_reply_id(reply_id) else None
        if item is None or item.raw != seen:
            return False
        await self.save_reply(reply_id, owner, record)  # no await before it: nothing runs between
        return True

    async def request_cancel(self, reply_id: str, owner: str) -> bool:
        item = self._get(reply_id, owner) if is_reply_id(reply_id) else None
        if item is not None:
            item.cancel = True
        return item is not None

    async def cancels_requested(self, reply_ids: Sequence[str]) -> set[str]:
        return {reply_id for reply_id in reply_ids if (item := self._get(reply_id, None)) is not None and item.cancel}

    async def add_credits(self, owner: str, day: str, micro: int) -> int:
        now = time.monotonic()
        for stale in [k for k, (_, expires) in self._counts.items() if expires <= now]:
            del self._counts[stale]
        count = self._counts.get((owner, day), (0, 0.0))[0] + micro
        self._counts[owner, day] = (count, now + COUNT_SECONDS)
        return count

    def _recent(self, owner: str, prefix: str, limit: int) -> list[Any]:
        now, found = time.monotonic(), []
        for item_id in reversed(self._items):
            item = self._items[item_id]
            if len(found) >= limit or item.expires <= now:
                break
            if item_id.startswith(prefix) and item.owner == owner and item.summary is not None:
                found.append(dataclasses.replace(item.summary, last_used=item.used))
        return found

    async def recent_conversations(self, owner: str, limit: int) -> list[ConversationSummary]:
        return self._recent(owner, "c_", limit)

    async def recent_replies(self, owner: str, limit: int) -> list[ReplySummary]:
        return self._recent(owner, "r_", limit)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._items.clear()
        self._bytes = 0
        self._bytes_by_owner.clear()
        self._counts.clear()
