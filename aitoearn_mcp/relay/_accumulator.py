"""Fold Anthropic stream events into one Message. Pure: no I/O, no clocks.

Text arrives in thousands of small deltas, so each block keeps a list of pieces that is
joined once when the message is read: the cost is linear in the reply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from .._untrusted import MAX_NAME_CHARS, bounded, load_json, one_line

__all__ = ["MAX_FIELD_CHARS", "MessageAccumulator", "Pieces", "StreamFormatError", "content_text"]


class StreamFormatError(ValueError):
    """The events do not form a message (a delta for a block never started, bad tool JSON)."""


_PACK = 256  # pieces joined into one string at a time
MAX_FIELD_CHARS = 2000  # any other string the relay puts beside the content (fields we do not know)
# JSON characters of what the relay sends beside the content (a message's other fields, unknown
# events): more is a relay fault, not information, and would push the result past every host's size.
MAX_METADATA_CHARS = 10_000
_NAMES = ("id", "model", "name", "type", "role", "stop_reason")  # not stop_sequence: it may be "\n\nHuman:"


def _size(value: Any) -> int:
    """The JSON text's length, at least its characters (UTF-8 bytes: a bound needs no more)."""
    try:
        return len(orjson.dumps(value))  # a tenth of json's time: it runs on every message's fields
    except orjson.JSONEncodeError:  # an integer past 64 bits, a lone surrogate
        return len(json.dumps(value, ensure_ascii=False))


def metadata(value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of relay-supplied fields beside the content, strings bounded, and only the known
    fields when the rest is too large: a relay that echoes a 300,000-character model name must
    not make a result past every host's size."""
    out: dict[str, Any] = bounded(value, MAX_FIELD_CHARS)
    for name in _NAMES:
        if isinstance(text := out.get(name), str):
            out[name] = one_line(text, MAX_NAME_CHARS)
    if _size(out) > MAX_METADATA_CHARS:
        known = (*_NAMES, "stop_sequence")
        out = {k: v for k, v in out.items() if k in known or (k == "usage" and _size(v) < MAX_METADATA_CHARS)}
    return out


class Pieces:
    """Text that arrives in small pieces. Every _PACK pieces are joined into one string: the
    cost stays linear, and thousands of tiny strings do not pin the memory of the event
    objects they arrived in (the server's peak RSS grew ~20 MB per 50,000 deltas without it)."""

    __slots__ = ("_packed", "_recent")

    def __init__(self) -> None:
        self._packed: list[str] = []
        self._recent: list[str] = []

    def append(self, piece: str) -> None:
        recent = self._recent
        recent.append(piece)
        if len(recent) >= _PACK:
            self._packed.append("".join(recent))
            recent.clear()

    def __bool__(self) -> bool:
        return bool(self._packed or self._recent)

    def join(self) -> str:
        """The whole text. It is kept as one string from then on: a second join (the Message,
        then its text) returns the same object instead of another copy of a long reply."""
        if not self._packed and not self._recent:
            return ""
        if len(self._packed) != 1 or self._recent:
            joined = "".join([*self._packed, *self._recent])
            self._packed, self._recent = [joined], []
        return self._packed[0]

    def tail(self, limit: int) -> str:
        tail = ""
        for piece in reversed(self._recent):
            tail = piece + tail
            if len(tail) >= limit:
                return tail[-limit:]
        if self._packed:
            tail = self._packed[-1][-limit:] + tail
        return tail[-limit:]


class _Block:
    __slots__ = ("citations", "data", "json_parts", "signature", "text_parts", "thinking_parts")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.text_parts = Pieces()
        self.thinking_parts = Pieces()
        self.json_parts = Pieces()
        self.citations: list[Any] = []
        self.signature: str | None = None

    def text(self) -> str:
        return str(self.data.get("text") or "") + self.text_parts.join()

    def tool_input(self, *, strict: bool) -> Any:
        raw = self.json_parts.join()
        if not raw:
            return self.data.get("input", {})
        try:
            return load_json(raw)
        except ValueError as exc:
            if strict:
                raise StreamFormatError(
                    f"tool input of block {self.data.get('type')} is not valid JSON: {exc}"
                ) from None
            return self.data.get("input", {})

    def render(self, *, strict: bool) -> dict[str, Any]:
        out = dict(self.data)
        if self.text_parts:
            out["text"] = self.text()
        if self.thinking_parts:
            out["thinking"] = str(self.data.get("thinking") or "") + self.thinking_parts.join()
        if self.signature is not None:
            out["signature"] = self.signature
        if self.citations:
            out["citations"] = [*(self.data.get("citations") or []), *self.citations]
        if self.json_parts:
            out["input"] = self.tool_input(strict=strict)
        return out


def _merge_usage(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Usage totals on message_delta are cumulative: overwrite, keep what is absent."""
    for key, value in update.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge_usage(into[key], value)
        else:
            into[key] = bounded(value, MAX_FIELD_CHARS)


def _block_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A content block as started: its content (text, thinking, input, signature, an image's
    source) whole, the rest (type, tool name and id, fields we do not know) bounded."""
    kept = {k: data[k] for k in ("text", "thinking", "input", "signature", "citations") if k in data}
    if data.get("type") == "image" and "source" in data:
        kept["source"] = data["source"]
    rest = metadata({k: v for k, v in data.items() if k not in kept})
    return {**rest, **kept}


class MessageAccumulator:
    """Feed it decoded event objects in order; read ``message()`` at the end.

    ``ping`` is ignored. Unknown event and delta types are kept, in order, under
    ``unrecognized_events`` of the message; unknown block types are kept as content.
    """

    def __init__(self) -> None:
        self._message: dict[str, Any] | None = None
        self._blocks: list[_Block] = []
        self._by_index: dict[int, _Block] = {}
        self._unrecognized: list[dict[str, Any]] = []
        self._unrecognized_chars = 0
        self.chars_received = 0
        self.complete = False

    @property
    def started(self) -> bool:
        return self._message is not None

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Fold one event; True once the message is complete (``message_stop``)."""
        kind = event.get("type")
        if kind == "content_block_delta" and self._message is not None:
            self._delta(event)  # first: thousands of these per reply, a few of everything else
            return False
        if kind == "ping":
            return False
        if kind == "message_start":
            self._start(event.get("message"))
            return False
        if self._message is None:
            raise StreamFormatError(f"event {kind!r} arrived before message_start")
        if kind == "content_block_start":
            self._start_block(event)
        elif kind == "content_block_delta":
            raise StreamFormatError("content_block_delta arrived before message_start")
        elif kind == "content_block_stop":
            block = self._block(event)
            if block.json_parts:
                block.tool_input(strict=True)
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            for key, value in metadata(delta if isinstance(delta, Mapping) else {}).items():
                if value is not None or key in ("stop_reason", "stop_sequence"):
                    self._message[key] = value
            usage = event.get("usage")
            _merge_usage(self._message.setdefault("usage", {}), usage if isinstance(usage, Mapping) else {})
        elif kind == "message_stop":
            self.complete = True
        else:
            self._keep_unrecognized(event)
        return self.complete

    def _keep_unrecognized(self, event: Mapping[str, Any]) -> None:
        kept = metadata(event)
        size = _size(kept)
        if self._unrecognized_chars + size <= MAX_METADATA_CHARS:
            self._unrecognized.append(kept)
            self._unrecognized_chars += size

    def _start(self, message: Any) -> None:
        if not isinstance(message, Mapping):
            raise StreamFormatError("message_start carries no message object")
        self._message = metadata({k: v for k, v in message.items() if k != "content"})
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            self._add_block(len(self._blocks), block)
        if not isinstance(self._message.get("usage"), dict):
            self._message["usage"] = {}

    def _add_block(self, index: int, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise StreamFormatError("a content block is not an object")
        block = _Block(_block_data(data))
        self._blocks.append(block)
        self._by_index[index] = block
        self.chars_received += len(block.text()) + len(str(block.data.get("thinking") or ""))

    def _start_block(self, event: Mapping[str, Any]) -> None:
        index = event.get("index")
        self._add_block(index if isinstance(index, int) else len(self._blocks), event.get("content_block"))

    def _block(self, event: Mapping[str, Any]) -> _Block:
        index = event.get("index")
        block = self._by_index.get(index) if isinstance(index, int) else None
        if block is None:
            raise StreamFormatError(f"{event.get('type')} for content block {index!r}, which was never started")
        return block

    def _delta(self, event: Mapping[str, Any]) -> None:
        block = self._block(event)
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            piece = delta.get("text", "")
            block.text_parts.append(piece)
        elif kind == "thinking_delta":
            piece = delta.get("thinking", "")
            block.thinking_parts.append(piece)
        elif kind == "input_json_delta":
            piece = delta.get("partial_json", "")
            block.json_parts.append(piece)
        else:
            if kind == "signature_delta":
                block.signature = delta.get("signature", "")
            elif kind == "citations_delta":
                block.citations.append(bounded(delta.get("citation"), MAX_FIELD_CHARS))
            else:
                self._keep_unrecognized(event)
            return
        self.chars_received += len(piece)

    def latest_text(self, limit: int) -> str:
        """The last ``limit`` characters of text, thinking or tool input received (for progress)."""
        for block in reversed(self._blocks):
            for parts in (block.text_parts, block.thinking_parts, block.json_parts):
                if parts:
                    return parts.tail(limit)
        return ""

    def text(self) -> str:
        """The reply's text blocks joined exactly as sent."""
        return "".join(block.text() for block in self._blocks if block.data.get("type") == "text")

    def message(self, *, partial: bool = False) -> dict[str, Any]:
        """The Message so far. With ``partial``, unfinished tool JSON does not raise."""
        message: dict[str, Any] = (
            bounded(self._message, MAX_FIELD_CHARS)  # a copy: the caller may change it
            if self._message is not None
            else {"type": "message", "role": "assistant"}
        )
        message["content"] = [block.render(strict=not partial) for block in self._blocks]
        if self._unrecognized:
            message["unrecognized_events"] = list(self._unrecognized)
        return message


def content_text(content: Any) -> str:
    """The text of Anthropic content: a string, or its text blocks joined as sent."""
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, Mapping) and b.get("type") == "text")
