"""A delegation's record: its state, what arrived, and how it is read back in pages. Pure.

The record is what the store keeps for a reply id (JSON, the members every store agrees on), so
any process can answer for a reply another one runs. States move one way: running, then
complete, failed or cancelled, never back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ._budget import at_line_end, cut

__all__ = ["LATEST_CHARS", "ReplyRecord", "Status", "content_text", "page", "running_summary"]

Status = Literal["running", "complete", "failed", "cancelled"]

LATEST_CHARS = 200  # the latest words shown of a reply still running


@dataclass
class ReplyRecord:
    """``message``: the final (or partial) Message with its extra members (route, credits, notes,
    conversation_id, error); ``notes``: the lines the text content adds after the reply."""

    status: Status
    model: str
    started: float  # unix time
    updated: float
    route: str | None = None
    text: str = ""
    message: dict[str, Any] | None = None
    error: str | None = None
    conversation_id: str | None = None
    notes: list[str] = field(default_factory=list)
    chars: int = 0  # characters received so far (text, thinking and tool input), for a running reply
    error_kind: str | None = None  # the failure's kind for metrics: auth, credits, incomplete, ...

    @property
    def done(self) -> bool:
        return self.status != "running"

    def to_json(self) -> str:
        """The record as the store keeps it. The text is left out when the Message's text blocks
        hold it (a finished reply): a long reply is written, and kept, once instead of twice."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.text and self.message is not None and content_text(self.message.get("content")) == self.text:
            del data["text"]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> ReplyRecord:
        data = json.loads(raw)
        known = cls.__dataclass_fields__
        record = cls(**{k: v for k, v in data.items() if k in known})
        if "text" not in data and isinstance(record.message, dict):
            record.text = content_text(record.message.get("content"))
        return record


def content_text(content: Any) -> str:
    """The text of Anthropic content: a string, or its text blocks joined as sent."""
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, Mapping) and b.get("type") == "text")


def page(text: str, offset: int, limit: int) -> tuple[str, int | None]:
    """The part of ``text`` from ``offset`` that weighs at most ``limit`` (at least one character,
    so paging always moves on), and where the next page starts (None: this is the last)."""
    rest = text[offset:]
    shown = at_line_end(cut(rest, limit), rest) or rest[:1]
    end = offset + len(shown)
    return shown, (end if end < len(text) else None)


def running_summary(reply_id: str, record: ReplyRecord, now: float) -> tuple[dict[str, Any], str]:
    """The structured content and the text of a reply still running: not an error, and how to
    collect the rest."""
    elapsed = round(max(now - record.started, 0.0), 1)
    latest = " ".join(record.text[-LATEST_CHARS:].split())
    following = f"call get_reply with reply_id {reply_id!r} to wait for the rest"
    structured = {
        "status": "running",
        "reply_id": reply_id,
        "model": record.model,
        "chars_received": record.chars,
        "text_chars": len(record.text),
        "elapsed_seconds": elapsed,
        "latest": latest,
        "next": following + " (it keeps generating meanwhile; cancel: true stops it).",
    }
    arrived = (
        f"{record.chars:,} characters have arrived so far" if record.chars else "no text has arrived yet (thinking)"
    )
    text = (
        f"[{record.model} is still working on reply {reply_id} after {elapsed:g} s: {arrived}. "
        f"To collect the rest, {following}; it keeps generating meanwhile (get_reply with cancel: true stops it).]"
    )
    if latest:
        text += f"\nLatest words: …{latest}"
    return structured, text
