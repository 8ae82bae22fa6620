"""What the server keeps between calls: conversations, and replies (one per delegated call).

A conversation is the ``system`` prompt and the completed turns: the messages the caller sent
and the reply, so an agent continues an exchange by id instead of resending it. Only completed
calls are stored. Everything belongs to the key that made it: the store keeps a keyed hash of
the key, never the key, and another key's id reads as unknown. Three stores: an SQLite file in
the user's state directory (the default: it outlives the host's sessions and is shared by the
user's server processes), this process's memory, or Redis (any number of machines). Each keeps
an item for a TTL after its last use, counts bytes, and refuses an item larger than its cap.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from pydantic import SecretStr

from .._json import exact_dumps
from ..relay._accumulator import content_text

__all__ = [
    "COUNT_SECONDS",
    "STORE_DOWN",
    "UNLISTED",
    "Conversation",
    "ConversationSummary",
    "ReplySummary",
    "Store",
    "conversation_summary",
    "history",
    "is_conversation_id",
    "is_reply_id",
    "new_conversation_id",
    "new_reply_id",
    "owner_hmac",
    "parse_conversation_ref",
    "reply_summary",
]

_ID = r"[A-Za-z0-9_-]{8,64}"
_REF = re.compile(rf"^(c_{_ID})(?:#(\d{{1,9}}))?$")  # a longer turn number is no turn: unknown, not an error
_CONVERSATION_ID = re.compile(rf"^c_{_ID}$")
_REPLY_ID = re.compile(rf"^r_{_ID}$")
_THINKING = ("thinking", "redacted_thinking")
# How a conversation orjson wrote begins (json writes a space after the colon): orjson reads it exactly.
_FAST = '{"owner":"'
_FAST_BYTES = _FAST.encode()
FIRST_WORDS = 80  # characters of a conversation's first prompt shown when listing

COUNT_SECONDS = 2 * 24 * 3600.0  # how long a day's credits count is kept after its last change

STORE_DOWN = "The conversation store (AITOEARN_CONVERSATIONS) could not be used"


def new_conversation_id() -> str:
    return "c_" + secrets.token_urlsafe(16)


def new_reply_id() -> str:
    return "r_" + secrets.token_urlsafe(16)


def is_conversation_id(text: str) -> bool:
    return _CONVERSATION_ID.match(text) is not None


def is_reply_id(text: str) -> bool:
    return _REPLY_ID.match(text) is not None


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
        """Written by orjson (compact: ``{"owner":"``) when that is exact, else by json (with its
        spaces, as every version before wrote it): ``from_json`` tells them apart by that."""
        # Apart: a system prompt of None is a null that needs no second look.
        system, turns = exact_dumps(self.system), exact_dumps(self.turns)
        if system is None or turns is None:
            return json.dumps({"owner": self.owner, "system": self.system, "turns": self.turns}, ensure_ascii=False)
        return b"".join((b'{"owner":', orjson.dumps(self.owner), b',"system":', system, b',"turns":', turns,
                         b"}")).decode()  # fmt: skip

    @classmethod
    def from_json(cls, conversation_id: str, raw: str | bytes) -> Conversation:
        data = orjson.loads(raw) if raw[: len(_FAST)] in (_FAST, _FAST_BYTES) else json.loads(raw)
        return cls(conversation_id, data["owner"], data.get("system"), data.get("turns") or [])


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    last_used: float  # unix time
    turns: int
    models: tuple[str, ...]
    first_words: str  # of the first prompt

    def to_json(self) -> str:
        return json.dumps([self.turns, self.models, self.first_words], ensure_ascii=False)

    @classmethod
    def from_json(cls, conversation_id: str, last_used: float, raw: str | bytes) -> ConversationSummary:
        turns, models, first_words = json.loads(raw)
        return cls(conversation_id, last_used, turns, tuple(models), first_words)


@dataclass(frozen=True)
class ReplySummary:
    id: str
    last_used: float  # unix time
    status: str
    model: str
    characters: int

    def to_json(self) -> str:
        return json.dumps([self.status, self.model, self.characters], ensure_ascii=False)

    @classmethod
    def from_json(cls, reply_id: str, last_used: float, raw: str | bytes) -> ReplySummary:
        status, model, characters = json.loads(raw)
        return cls(reply_id, last_used, status, model, characters)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def conversation_summary(conversation: Conversation, last_used: float) -> ConversationSummary:
    models = tuple(dict.fromkeys(str(t["model"]) for t in conversation.turns if t.get("model")))
    first = ""
    if conversation.turns:
        messages = conversation.turns[0].get("messages", [])
        asked = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        first = " ".join(_text_of(asked[0].get("content")).split()) if asked else ""
    if len(first) > FIRST_WORDS:
        first = first[: FIRST_WORDS - 1] + "…"
    return ConversationSummary(conversation.id, last_used, len(conversation.turns), models, first)


# The summary a store keeps for a reply it does not list (where a summary must be text).
UNLISTED = ""


def reply_summary(reply_id: str, record: str, last_used: float) -> ReplySummary | None:
    """From the reply record's JSON (status, model, and the text, or for a finished reply the
    Message whose text blocks hold it); what cannot be read is shown as unknown rather than
    failing the save. None for a call that failed before any text: there is nothing to read
    again, so it is not listed (it is still stored: its reply id answers with the failure)."""
    try:
        data = json.loads(record)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return ReplySummary(reply_id, last_used, "unknown", "", 0)
    text, message = data.get("text"), data.get("message")
    if "text" not in data and isinstance(message, dict):
        text = content_text(message.get("content"))
    status, characters = str(data.get("status") or "unknown"), len(text) if isinstance(text, str) else 0
    if status == "failed" and not characters:
        return None
    return ReplySummary(reply_id, last_used, status, str(data.get("model") or ""), characters)


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
        one); False when another call continued it meanwhile. TooLargeToStoreError when it is
        over the byte cap."""
        ...

    async def save_new(self, conversation: Conversation) -> None:
        """Store ``conversation`` under an id not stored yet (``new_conversation_id``). A store may
        return once the write is queued: every later call on it waits for the write, and closing
        it finishes the write; a failure after that is logged. TooLargeToStoreError (at once)
        when it is over the byte cap."""
        ...

    # Replies (one per send_message call: a delegation), keyed by reply id ("r_…").
    async def save_reply(self, reply_id: str, owner: str, record: str, *, later: bool = False) -> None:
        """Create or replace the reply's record (JSON text written by the delegation module;
        opaque except for listing). Kept like conversations: TTL refreshed on use, counted
        against the byte cap, bound to ``owner``. ``later``: no answer waits for it (a final
        record), so a store may hold it back a few milliseconds, never past a later call on it."""
        ...

    async def load_reply(self, reply_id: str, owner: str) -> str | None:
        """The record, or None when unknown, expired or another owner's."""
        ...

    async def claim_reply(self, reply_id: str, owner: str, seen: str, record: str) -> bool:
        """Replace the reply's record by ``record`` only if it is still ``seen`` (what this
        process loaded, or last wrote), in one atomic step for every process sharing the store: of
        the processes that saw one stale record and take its work over, one wins (True); the others
        find the winner's record, and so does the process it was taken from."""
        ...

    async def request_cancel(self, reply_id: str, owner: str) -> bool:
        """Ask whichever process runs this reply to stop it; False when unknown/another owner's."""
        ...

    async def cancels_requested(self, reply_ids: Sequence[str]) -> set[str]:
        """Which of these replies a process asked to stop: polled (about every 0.5 s) by the
        process running them, one call for all of them."""
        ...

    # The daily credits count (AITOEARN_MAX_CREDITS_PER_DAY), shared like everything else here.
    async def add_credits(self, owner: str, day: str, micro: int) -> int:
        """Add ``micro`` millionths of a credit (negative gives back; 0 only reads) to ``owner``'s
        count for the UTC ``day`` (``YYYY-MM-DD``) and return the new count, atomically for every
        process sharing the store. A count is dropped two days after its last change."""
        ...

    # Listing: newest first, at most ``limit``.
    async def recent_conversations(self, owner: str, limit: int) -> list[ConversationSummary]: ...

    async def recent_replies(self, owner: str, limit: int) -> list[ReplySummary]: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def owner_hmac(secret: bytes, key: SecretStr) -> str:
    return _owner_hmac(secret, key.get_secret_value())


@functools.lru_cache(maxsize=256)  # a tag per call (or three) is the same few keys over and over
def _owner_hmac(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()
