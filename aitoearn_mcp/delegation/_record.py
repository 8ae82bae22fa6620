"""A delegation's record: its state and what arrived. Pure data: the views write what the agent
reads of it.

The record is what the store keeps for a reply id (JSON, the members every store agrees on), so
any process can answer for a reply another one runs. States move one way: running, then
complete, failed or cancelled, never back. Members added later have defaults, and members a
record does not know are ignored, so records written by another version still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .._json import exact_dumps
from ..relay._accumulator import content_text

__all__ = ["ReplyRecord", "Status"]

Status = Literal["running", "complete", "failed", "cancelled"]


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
    # A generated video instead of a reply (see delegation/_render.py, which writes it): what the
    # relay's task is (kind, task_id, relay_status, stage, polled_at), what was asked and costs
    # (mode, mode_derived, resolution, ratio, duration, price, points), where it goes (save_to,
    # download) and, once done, what came back (video_url, cover_url, path, size_bytes, cover).
    media: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.status != "running"

    def to_json(self) -> str:
        """The record as the store keeps it. The text is left out when the Message's text blocks
        hold it (a finished reply): a long reply is written, and kept, once instead of twice.
        Written by orjson where exact: an image's record holds its preview (about 300 KB of
        base64), which json took 2.3 ms to write, on the event loop, before the answer went out."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.text and self.message is not None and content_text(self.message.get("content")) == self.text:
            del data["text"]
        encoded = exact_dumps(data)
        return encoded.decode() if encoded is not None else json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> ReplyRecord:
        data = json.loads(raw)
        known = cls.__dataclass_fields__
        record = cls(**{k: v for k, v in data.items() if k in known})
        if "text" not in data and isinstance(record.message, dict):
            record.text = content_text(record.message.get("content"))
        return record
