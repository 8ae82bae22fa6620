"""Fold Gemini ``streamGenerateContent`` events into one Anthropic Message. Pure: no I/O.

Each event is a ``GenerateContentResponse``: candidate 0's ``content.parts`` carry text (a
``thought`` part is thinking), ``inlineData`` (an image, base64, whole in one part) or
``fileData`` (a hosted file); the last event carries ``finishReason`` and ``usageMetadata``.
Consecutive text parts make one text block; an image becomes an ``image`` block (base64 or url
source) where it arrived, so text and images keep their order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._untrusted import MAX_NAME_CHARS, one_line
from ._accumulator import Pieces

__all__ = ["FINISH_REASONS", "GeminiAccumulator", "is_gemini_response"]

FINISH_REASONS = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens", "FINISH_REASON_UNSPECIFIED": "end_turn"}
# Reasons that mean the model (or Google's filters) declined: Anthropic's "refusal".
_REFUSALS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                       "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "NO_IMAGE", "LANGUAGE"})  # fmt: skip


def is_gemini_response(obj: Mapping[str, Any]) -> bool:
    return "candidates" in obj or "usageMetadata" in obj or "promptFeedback" in obj


def _tokens(node: Any, name: str) -> int:
    value = node.get(name) if isinstance(node, Mapping) else None
    return value if isinstance(value, int) and value > 0 else 0


def _by_modality(details: Any) -> dict[str, int]:
    """``[{modality: "IMAGE", tokenCount: n}, ...]`` → ``{"image": n}`` (text is the rest)."""
    counts: dict[str, int] = {}
    for item in details if isinstance(details, list) else ():
        modality = str(item.get("modality", "")).lower() if isinstance(item, Mapping) else ""
        if modality in ("image", "audio", "video") and (n := _tokens(item, "tokenCount")):
            counts[modality] = counts.get(modality, 0) + n
    return counts


def anthropic_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Gemini ``usageMetadata`` in Anthropic terms: cached prompt tokens apart, thoughts counted
    as output (they are billed as output)."""
    cached = _tokens(usage, "cachedContentTokenCount")
    out: dict[str, Any] = {
        "input_tokens": max(_tokens(usage, "promptTokenCount") - cached, 0),
        "output_tokens": _tokens(usage, "candidatesTokenCount") + _tokens(usage, "thoughtsTokenCount"),
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    for direction, details in (("input", "promptTokensDetails"), ("output", "candidatesTokensDetails")):
        if counts := _by_modality(usage.get(details)):
            out[f"{direction}_tokens_by_modality"] = counts
    return out


class GeminiAccumulator:
    """Feed it decoded events in order (candidate 0 is the reply). ``ended`` once a
    ``finishReason`` (or a blocked prompt) arrived; the stream has no end marker of its own."""

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._blocks: list[dict[str, Any] | Pieces] = []  # Pieces: a text block still growing
        self._thinking = Pieces()
        self._latest = self._thinking
        self._finish: str | None = None
        self._usage: Mapping[str, Any] = {}
        self.chars_received = 0
        self.started = False
        self.complete = False  # never set: the stream ends when the body does

    @property
    def ended(self) -> bool:
        return self._finish is not None

    def feed(self, event: Mapping[str, Any]) -> bool:
        if not self.started:
            self.started = True
        if not self._id and (response_id := event.get("responseId")):
            self._id = one_line(str(response_id), MAX_NAME_CHARS)
        if not self._model and (version := event.get("modelVersion")):
            self._model = one_line(str(version), MAX_NAME_CHARS)
        if isinstance(usage := event.get("usageMetadata"), Mapping):
            self._usage = usage
        candidates = event.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if isinstance(candidate, Mapping):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, Mapping):
                    self._part(part)
            if finish := candidate.get("finishReason"):
                self._finish = one_line(str(finish), MAX_NAME_CHARS)
        elif isinstance(feedback := event.get("promptFeedback"), Mapping) and feedback.get("blockReason"):
            self._finish = "SAFETY"  # the prompt was blocked: no candidate comes
        return False

    def _part(self, part: Mapping[str, Any]) -> None:
        text = part.get("text")
        if isinstance(text, str) and text:
            if part.get("thought"):
                self._thinking.append(text)
                self._latest = self._thinking
            else:
                last = self._blocks[-1] if self._blocks else None
                if not isinstance(last, Pieces):
                    last = Pieces()
                    self._blocks.append(last)
                last.append(text)
                self._latest = last
            self.chars_received += len(text)
            return
        if isinstance(inline := part.get("inlineData"), Mapping):
            source = {"type": "base64", "media_type": str(inline.get("mimeType") or "application/octet-stream"),
                      "data": str(inline.get("data") or "")}  # fmt: skip
            self._blocks.append({"type": "image", "source": source})
        elif isinstance(file_data := part.get("fileData"), Mapping) and file_data.get("fileUri"):
            self._blocks.append({"type": "image", "source": {"type": "url", "url": str(file_data["fileUri"])}})

    def feed_whole(self, response: Mapping[str, Any]) -> None:
        """A whole (non-streamed) ``GenerateContentResponse``."""
        self.feed(response)
        if self._finish is None:
            self._finish = "STOP"  # a whole answer is the whole reply, even without a reason

    def latest_text(self, limit: int) -> str:
        return self._latest.tail(limit)

    def text(self) -> str:
        return "".join(block.join() for block in self._blocks if isinstance(block, Pieces))

    def message(self, *, partial: bool = False) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if self._thinking:
            content.append({"type": "thinking", "thinking": self._thinking.join(), "signature": ""})
        for block in self._blocks:
            content.append({"type": "text", "text": block.join()} if isinstance(block, Pieces) else dict(block))
        finish = self._finish
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": content,
            "stop_reason": None if finish is None else
            "refusal" if finish in _REFUSALS else FINISH_REASONS.get(finish, "end_turn"),
            "stop_sequence": None,
            "usage": anthropic_usage(self._usage),
        }  # fmt: skip
        if finish is not None and finish not in ("STOP", "MAX_TOKENS"):
            message["finish_reason"] = finish  # Gemini's own word, beside the nearest Anthropic one
        return message
