"""One accumulator for any of the three protocols: the first event says which one the relay speaks.

Each route normally streams its own protocol, but one published relay version streamed OpenAI
chunks on the Anthropic route; recognising the protocol from the stream itself means such a
reply is folded correctly wherever it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._untrusted import MIN_SECRET_CHARS, redact
from ._accumulator import MessageAccumulator
from ._chat_accumulator import ChatCompletionAccumulator
from ._gemini_accumulator import GeminiAccumulator, is_gemini_response

__all__ = ["ReplyAccumulator", "is_chat_completion"]


def is_chat_completion(obj: Mapping[str, Any]) -> bool:
    return "choices" in obj or str(obj.get("object", "")).startswith("chat.completion")


class ReplyAccumulator:
    """Feed it decoded stream events of either protocol; read ``message()`` at the end."""

    def __init__(self) -> None:
        self._inner: MessageAccumulator | ChatCompletionAccumulator | GeminiAccumulator | None = None
        self._secret = ""

    def hide(self, secret: str) -> None:
        """Text that must never leave the fold: the caller's key, which a relay may echo anywhere
        in a reply. Everything read from here (Message, text, progress) shows ``[key]`` instead."""
        self._secret = secret if len(secret) >= MIN_SECRET_CHARS else ""

    @property
    def protocol(self) -> str | None:
        if self._inner is None:
            return None
        if isinstance(self._inner, GeminiAccumulator):
            return "gemini"
        return "openai" if isinstance(self._inner, ChatCompletionAccumulator) else "anthropic"

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Fold one event; True once the stream says it is complete."""
        inner: MessageAccumulator | ChatCompletionAccumulator | GeminiAccumulator
        if is_chat_completion(event):
            inner = ChatCompletionAccumulator()
        elif is_gemini_response(event):
            inner = GeminiAccumulator()
        else:
            inner = MessageAccumulator()
        self._inner = inner
        self.feed = inner.feed  # type: ignore[method-assign]  # later events go straight to the fold
        return inner.feed(event)

    def feed_whole(self, body: Any) -> bool:
        """A whole non-streamed answer: an Anthropic Message, a ``chat.completion`` or a Gemini
        ``GenerateContentResponse``. False when it is none of them."""
        if not isinstance(body, Mapping):
            return False
        if body.get("type") == "message":
            self.feed({"type": "message_start", "message": body})
            self.feed({"type": "message_stop"})
            return True
        if is_chat_completion(body):
            chat = ChatCompletionAccumulator()
            self._inner = chat
            chat.feed_completion(body)
            return True
        if is_gemini_response(body):
            gemini = GeminiAccumulator()
            self._inner = gemini
            gemini.feed_whole(body)
            return True
        return False

    def done(self) -> None:
        """``data: [DONE]``: the end of an OpenAI stream."""
        if isinstance(self._inner, ChatCompletionAccumulator):
            self._inner.done()

    @property
    def started(self) -> bool:
        return self._inner is not None and self._inner.started

    @property
    def complete(self) -> bool:
        """The stream said it is over (``message_stop``, ``[DONE]``): stop reading."""
        return self._inner is not None and self._inner.complete

    @property
    def ended(self) -> bool:
        """What arrived is a whole reply (an OpenAI stream may end without ``[DONE]``; a Gemini
        stream has no end marker but its ``finishReason``)."""
        if isinstance(self._inner, ChatCompletionAccumulator | GeminiAccumulator):
            return self._inner.ended
        return self.complete

    @property
    def expected_end(self) -> str:
        if isinstance(self._inner, GeminiAccumulator):
            return "a finishReason"
        return "a finish_reason" if isinstance(self._inner, ChatCompletionAccumulator) else "message_stop"

    @property
    def chars_received(self) -> int:
        return 0 if self._inner is None else self._inner.chars_received

    def latest_text(self, limit: int) -> str:
        if self._inner is None:
            return ""
        # Read a key's length more, so that a key at the cut is still hidden whole (redact also
        # hides the beginning of a key still arriving).
        return redact(self._inner.latest_text(limit + len(self._secret)), self._secret)[-limit:]

    def text(self) -> str:
        return "" if self._inner is None else redact(self._inner.text(), self._secret)

    def message(self, *, partial: bool = False) -> dict[str, Any]:
        if self._inner is None:
            return {"type": "message", "role": "assistant", "content": []}
        return redact(self._inner.message(partial=partial), self._secret)
