"""Keep a result under the host's size cap (Claude Code refuses tool results over 25,000
tokens by default). Pure.

Sizes are counted in weighted characters: an ASCII character counts 1 and any other counts 4,
since a CJK character is about one token and four ASCII characters are about one. A reply
over the budget keeps its beginning; the rest is read by reference.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Fitted", "fit_message", "fit_text", "weight"]

THINKING_SHARE = 2000  # weighted characters of each thinking block kept when the message is cut
RESERVE = 1500  # room for the notes and the truncation note


def weight(text: str) -> int:
    ascii_count = len(text.encode("ascii", "ignore"))
    return ascii_count + 4 * (len(text) - ascii_count)


def cut(text: str, limit: int) -> str:
    """The longest beginning of ``text`` that weighs at most ``limit``."""
    if weight(text) <= limit:
        return text
    low, high = 0, min(len(text), max(limit, 0))
    while low < high:
        middle = (low + high + 1) // 2
        if weight(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def fit_text(text: str, budget: int) -> str:
    return cut(text, budget - RESERVE)


@dataclass(frozen=True)
class Fitted:
    message: dict[str, Any]
    cut: bool


def _size(message: dict[str, Any]) -> int:
    return weight(json.dumps(message, ensure_ascii=False))


def fit_message(message: dict[str, Any], budget: int) -> Fitted:
    """The Message with its thinking, then its text, then oversized tool inputs cut so that its
    JSON weighs at most the budget (less room for notes)."""
    limit = budget - RESERVE
    if _size(message) <= limit:
        return Fitted(message, False)
    fitted = copy.deepcopy(message)
    blocks = fitted.get("content") or []
    for block in blocks:
        if block.get("type") == "thinking":
            block["thinking"] = cut(str(block.get("thinking", "")), THINKING_SHARE)
    texts = [block for block in blocks if block.get("type") == "text"]
    for block in texts:
        block["text"] = ""
    room = limit - _size(fitted)
    originals = [block for block in message.get("content") or [] if block.get("type") == "text"]
    for block, original in zip(texts, originals, strict=True):  # the reply's beginning first
        # JSON escapes (newlines, quotes) cost a little more than the text itself: leave a margin.
        kept = cut(str(original.get("text", "")), max(room * 9 // 10, 0))
        while kept and weight(json.dumps(kept, ensure_ascii=False)) > room:  # escape-heavy text: cut more
            kept = cut(kept, weight(kept) * 9 // 10)
        block["text"] = kept
        room -= weight(json.dumps(kept, ensure_ascii=False))
    for block in blocks:
        if block.get("type") in ("tool_use", "server_tool_use") and _size(fitted) > limit:
            block["input"] = {"_truncated": "too large for one result; read the full reply by reference"}
    return Fitted(fitted, True)
