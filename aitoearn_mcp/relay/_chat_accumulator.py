"""Fold OpenAI ``chat.completion.chunk`` objects into one Anthropic Message. Pure: no I/O.

The same job as MessageAccumulator for the relay's OpenAI-compatible route: whatever model
answers, ``send_message`` returns one shape. Reasoning becomes a ``thinking`` block before the
text, images (``delta.images``, or ``image_url`` parts of a list ``content``) ``image`` blocks
after it, tool calls assembled by index ``tool_use`` blocks, ``finish_reason`` becomes
``stop_reason`` and the usage is restated in Anthropic terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._untrusted import MAX_NAME_CHARS, load_json, one_line
from ._accumulator import Pieces, StreamFormatError

__all__ = ["FINISH_REASONS", "ChatCompletionAccumulator", "anthropic_usage", "image_block"]

FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class _ToolCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self, call_id: str) -> None:
        self.id = call_id
        self.name = ""
        self.arguments = Pieces()

    def block(self, *, strict: bool) -> dict[str, Any]:
        raw = self.arguments.join()
        tool_input: Any = {}
        if raw.strip():
            try:
                tool_input = load_json(raw)
            except ValueError as exc:
                if strict:
                    raise StreamFormatError(
                        f"the arguments of tool call {self.name!r} are not valid JSON: {exc}"
                    ) from None
            if not isinstance(tool_input, dict):
                if strict:
                    raise StreamFormatError(f"the arguments of tool call {self.name!r} are not a JSON object")
                tool_input = {}
        return {"type": "tool_use", "id": self.id, "name": self.name, "input": tool_input}


def image_block(url: str) -> dict[str, Any]:
    """An image by URL as an Anthropic ``image`` block: a ``data:`` URL as base64 source."""
    head, comma, data = url.partition(",")
    if url.startswith("data:") and comma and head.endswith(";base64"):
        media_type = head[len("data:") : -len(";base64")] or "application/octet-stream"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _image_url(part: Any) -> str | None:
    """The URL of an ``{"type": "image_url", "image_url": {"url"}}`` part (or a bare string URL)."""
    found = part.get("image_url") if isinstance(part, Mapping) else None
    url = found.get("url") if isinstance(found, Mapping) else found
    return url if isinstance(url, str) and url else None


def _name(value: Any) -> str:
    """An id or name the relay echoes, bounded (a 300,000-character model name is a fault)."""
    return one_line(str(value or ""), MAX_NAME_CHARS) if value else ""


def _tokens(node: Any, *path: str) -> int:
    for name in path:
        node = node.get(name) if isinstance(node, Mapping) else None
    return node if isinstance(node, int) and node > 0 else 0


def anthropic_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI usage in Anthropic terms: ``input_tokens`` excludes cached tokens, which are
    ``cache_read_input_tokens`` (OpenAI's ``cached_tokens``, DeepSeek's ``prompt_cache_hit_tokens``)."""
    cached = _tokens(usage, "prompt_tokens_details", "cached_tokens") or _tokens(usage, "prompt_cache_hit_tokens")
    out: dict[str, Any] = {
        "input_tokens": max(_tokens(usage, "prompt_tokens") - cached, 0),
        "output_tokens": _tokens(usage, "completion_tokens"),
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    for direction, details in (("input", "prompt_tokens_details"), ("output", "completion_tokens_details")):
        counts = {m: n for m in ("image", "audio", "video") if (n := _tokens(usage, details, f"{m}_tokens"))}
        if counts:
            out[f"{direction}_tokens_by_modality"] = counts
    return out


class ChatCompletionAccumulator:
    """Feed it decoded chunks in order (choice 0 is the reply); call ``done()`` on ``[DONE]``.

    ``complete`` turns true on ``[DONE]``; ``ended`` as soon as a ``finish_reason`` arrived,
    since a stream may end without ``[DONE]``.
    """

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._thinking = Pieces()
        self._text = Pieces()
        self._latest = self._text
        self._images: list[dict[str, Any]] = []
        self._tools: list[_ToolCall] = []
        self._tools_by_index: dict[int, _ToolCall] = {}
        self._finish_reason: str | None = None
        self._usage: Mapping[str, Any] = {}
        self.chars_received = 0
        self.started = False
        self.complete = False

    @property
    def ended(self) -> bool:
        return self._finish_reason is not None or self.complete

    def feed(self, chunk: Mapping[str, Any]) -> bool:
        """Fold one chunk. Returns False: only ``[DONE]`` (``done()``) says the stream is over."""
        if not self.started:
            self.started = True
            self._id = _name(chunk.get("id"))
            self._model = _name(chunk.get("model"))
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if len(delta) == 1 and content and type(content) is str:  # most chunks: {"content": ...}
                    self._text.append(content)
                    self._latest = self._text
                    self.chars_received += len(content)
                else:
                    self._rest_of_delta(delta)
            if finish := choice.get("finish_reason"):
                self._finish_reason = str(finish)
        if usage := chunk.get("usage"):
            self._usage = usage
        return False

    def _rest_of_delta(self, delta: Mapping[str, Any]) -> None:
        content = delta.get("content")
        if content and isinstance(content, str):
            self._text.append(content)
            self._latest = self._text
            self.chars_received += len(content)
        elif isinstance(content, list):  # content parts: text and images
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    self._text.append(part["text"])
                    self._latest = self._text
                    self.chars_received += len(part["text"])
                elif url := _image_url(part):
                    self._images.append(image_block(url))
        for image in delta.get("images") or ():
            if url := _image_url(image):
                self._images.append(image_block(url))
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            self._thinking.append(reasoning)
            self._latest = self._thinking
            self.chars_received += len(reasoning)
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            self._text.append(refusal)
            self._latest = self._text
            self.chars_received += len(refusal)
        for piece in delta.get("tool_calls") or ():
            if isinstance(piece, Mapping):
                self._tool_piece(piece)

    def _tool_piece(self, piece: Mapping[str, Any]) -> None:
        index = piece.get("index")
        call_id = piece.get("id")
        if not isinstance(index, int):
            # Some relays send whole calls without an index: a new id is a new call.
            last = self._tools[-1] if self._tools else None
            index = len(self._tools) if last is None or (call_id and call_id != last.id) else len(self._tools) - 1
        call = self._tools_by_index.get(index)
        if call is None:
            call = _ToolCall(_name(call_id) or f"toolu_{len(self._tools):02d}")
            self._tools_by_index[index] = call
            self._tools.append(call)
        elif call_id:
            call.id = _name(call_id)
        function = piece.get("function") or {}
        if (name := function.get("name")) and not call.name:
            call.name = _name(name)
        if (arguments := function.get("arguments")) and isinstance(arguments, str):
            call.arguments.append(arguments)
            self._latest = call.arguments
            self.chars_received += len(arguments)

    def done(self) -> None:
        self.complete = True

    def feed_completion(self, completion: Mapping[str, Any]) -> None:
        """A whole ``chat.completion`` object (a relay that answered without streaming)."""
        choices = [
            {
                "delta": {**choice.get("message", {}), "tool_calls": [
                    {**call, "index": i} for i, call in enumerate(choice.get("message", {}).get("tool_calls") or [])
                ]},
                "finish_reason": choice.get("finish_reason"),
            }
            for choice in completion.get("choices") or []
            if isinstance(choice, Mapping)
        ]  # fmt: skip
        self.feed({**completion, "choices": choices})
        self.done()

    def latest_text(self, limit: int) -> str:
        return self._latest.tail(limit)

    def text(self) -> str:
        return self._text.join()

    def message(self, *, partial: bool = False) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if self._thinking:
            # No signature exists on this route; the field is kept so the block has the Anthropic shape.
            content.append({"type": "thinking", "thinking": self._thinking.join(), "signature": ""})
        if self._text:
            content.append({"type": "text", "text": self._text.join()})
        content += [dict(image) for image in self._images]
        content += [call.block(strict=not partial) for call in self._tools]
        reason = self._finish_reason
        stop_reason = None if reason is None else FINISH_REASONS.get(reason, "end_turn")
        if stop_reason == "end_turn" and self._tools:
            stop_reason = "tool_use"  # some providers say "stop" after tool calls
        return {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": anthropic_usage(self._usage),
        }
