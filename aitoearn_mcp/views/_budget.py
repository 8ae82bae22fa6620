"""Keep a result under what the host shows the model inline. Pure.

Sizes are counted in weighted characters: an ASCII character counts 1, any other character 4,
and one outside the Basic Multilingual Plane (most emoji: two UTF-16 units) 8. So the weight of
a text is never less than its length as JavaScript counts it (Claude Code's limits), nor its
UTF-8 bytes (Codex's), and half of it is a conservative token count for prose, code and CJK:
half a token per ASCII character (English runs about a quarter), two per other character (CJK
about one, accented Latin under two), four per emoji. (Claude Code counts tokens only for a
result over 50,000 characters, so within that its own count never applies.)
Structured content is weighed as hosts serialise it: compact JSON, non-ASCII unescaped.
A reply over the budget keeps its beginning; the rest is read by reference.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Fitted", "at_line_end", "cut", "fit_message", "fit_reply", "json_weight", "weight"]

THINKING_SHARE = 2000  # weighted characters of each thinking block kept when the message is cut
RESERVE = 1500  # room for the notes and the truncation note
LINE_WINDOW = 2000  # characters a cut part may give back to end at a line's end


def weight(text: str) -> int:
    ascii_count = len(text.encode("ascii", "ignore"))
    utf16_units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    return 4 * utf16_units - 3 * ascii_count


def json_weight(value: Any) -> int:
    """The weight of ``value`` as a host serialises it (``JSON.stringify``, serde_json)."""
    return weight(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _longest_beginning(text: str, limit: int, measure: Callable[[str], int]) -> str:
    """``measure`` adds at least 1 per character: so a beginning ``excess`` over the limit fits
    once ``excess`` characters are taken off its end, and the search runs between the two."""
    if measure(text) <= limit:
        return text
    high = min(len(text), max(limit, 0))
    excess = measure(text[:high]) - limit
    if excess <= 0:
        return text[:high]
    low = max(high - excess, 0)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def cut(text: str, limit: int) -> str:
    """The longest beginning of ``text`` that weighs at most ``limit``."""
    return _longest_beginning(text, limit, weight)


@dataclass(frozen=True)
class Fitted:
    """The structured content and the text of a reply result; ``cut``: either was cut, and the
    room for saying so (RESERVE) was left."""

    message: dict[str, Any]
    text: str
    cut: bool


def fit_message(message: dict[str, Any], limit: int) -> dict[str, Any]:
    """The Message, or a copy with its thinking, then its text, then oversized tool inputs cut so
    that its JSON weighs at most ``limit``."""
    if json_weight(message) <= limit:
        return message
    fitted = copy.deepcopy(message)
    blocks = fitted.get("content") or []
    for block in blocks:
        if block.get("type") == "thinking":
            block["thinking"] = cut(str(block.get("thinking", "")), THINKING_SHARE)
    texts = [block for block in blocks if block.get("type") == "text"]
    for block in texts:
        block["text"] = ""
    room = limit - json_weight(fitted)
    originals = [block for block in message.get("content") or [] if block.get("type") == "text"]
    for block, original in zip(texts, originals, strict=True):  # the reply's beginning first
        # Weighed as JSON: escapes (newlines, quotes) cost more than the characters themselves.
        kept = _longest_beginning(str(original.get("text", "")), max(room + 2, 0), json_weight)
        block["text"] = kept
        room -= json_weight(kept) - 2
    for block in blocks:
        if block.get("type") in ("tool_use", "server_tool_use") and json_weight(fitted) > limit:
            block["input"] = {"_truncated": "too large for one result; read the full reply by reference"}
    return fitted


def at_line_end(text: str, whole: str) -> str:
    """``text``, a beginning of ``whole``, back to just after its last newline when there is one in
    its last LINE_WINDOW characters: a part that ends mid-line splits a line between two results."""
    if len(text) >= len(whole):
        return text
    end = text.rfind("\n", max(len(text) - LINE_WINDOW, 0))
    return text[: end + 1] if end >= 0 else text


def _text_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [block for block in message.get("content") or [] if block.get("type") == "text"]


def fit_reply(message: dict[str, Any], text: str, budget: int, text_room: int) -> Fitted:
    """Both parts whole when the structured content and the text (with ``text_room`` for its
    notes) fit the budget; else both within it less the room for the truncation notes, ending at
    the same character (at a line's end where one is near), so that the next part starts right
    after what either part showed."""
    if json_weight(message) <= budget and weight(text) <= budget - text_room:
        return Fitted(message, text, False)
    fitted = fit_message(message, budget - RESERVE)
    shown = cut(text, budget - text_room - RESERVE)
    in_message = "".join(str(block.get("text", "")) for block in _text_blocks(fitted))
    if not text.startswith(in_message):  # text blocks are the reply's text: not expected
        return Fitted(fitted, shown, True)
    shown = at_line_end(shown if len(shown) <= len(in_message) else in_message, text)
    room = len(shown)
    for block in _text_blocks(fitted):  # the structured text ends where the text content does
        block["text"] = str(block.get("text", ""))[:room]
        room -= len(block["text"])
    return Fitted(fitted, shown, True)
