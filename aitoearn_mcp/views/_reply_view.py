"""What the agent reads of a reply record: still running, or a page of the reply within the
result budget. Every fact is in both parts; the structured content starts with ``status`` and
``reply_id``, and ``next_offset`` (null on the last page) lets any host page through a reply
of any length with get_reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.types import CallToolResult, ContentBlock, ResourceLink, TextContent

from ..delegation._record import ReplyRecord
from ._budget import RESERVE, at_line_end, cut, fit_reply, json_weight, weight
from ._result import error_result, ordered, partial_reply_result, reply_result, truncation

__all__ = ["combined_view", "reply_view"]

LATEST_CHARS = 200  # the latest words shown of a reply still running

# Members of the Message repeated beside a later page of its text.
_PAGE_MEMBERS = ("model", "stop_reason", "usage", "route", "credits", "notes", "conversation_id", "error")


def _head(reply_id: str, record: ReplyRecord) -> dict[str, Any]:
    return {"status": record.status, "reply_id": reply_id}


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


def reply_view(
    reply_id: str, record: ReplyRecord, *, budget: int, offset: int = 0, now: float,
    save_file: Callable[[str, str], str | None] | None = None,
) -> CallToolResult:  # fmt: skip
    """The result for ``record``: running, or its text from ``offset`` as much as fits ``budget``.
    ``save_file`` writes the full reply where the agent can read it (stdio) when it is cut."""
    if not record.done:
        structured, text = running_summary(reply_id, record, now)
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
    failed = record.status == "failed"
    if record.message is None:  # failed before any reply: the error says it all
        error = "\n".join(record.notes) or record.error or "The call failed."
        return error_result(error, {**_head(reply_id, record), "model": record.model, "error": error})
    if failed and not record.text and offset == 0:
        return error_result("\n".join(record.notes), {**_head(reply_id, record), **record.message})
    if offset > 0:
        return _later_page(reply_id, record, offset, budget, failed)
    notes = list(record.notes)
    fitted = fit_reply({**_head(reply_id, record), **record.message}, record.text, budget, weight("\n".join(notes)))
    shown = fitted.text
    link: ResourceLink | None = None
    if fitted.cut:
        path = save_file(reply_id, record.text) if save_file else None
        cut_off = truncation(reply_id, record.text, shown, path, budget)
        next_offset = len(shown) if shown != record.text else None
        # Said in words too: hosts that show only the text (Gemini CLI) must learn where to go on.
        more = f" next_offset {next_offset}: call get_reply with reply_id {reply_id!r} and offset {next_offset}."
        note = cut_off.note[:-1] + more + "]" if next_offset else cut_off.note
        structured = {**fitted.message, "truncated": cut_off.details, "next_offset": next_offset}
        structured["notes"] = [note, *structured.get("notes", [])]
        notes, link = [note, *notes], cut_off.link
    else:
        structured = {**fitted.message, "next_offset": None}
    if not failed:
        return reply_result(structured, shown, notes, link)
    return partial_reply_result(structured, shown, notes, link)


def _later_page(reply_id: str, record: ReplyRecord, offset: int, budget: int, failed: bool) -> CallToolResult:
    text = record.text
    if offset >= len(text):
        return error_result(
            f"Invalid arguments for get_reply: `offset` {offset:,} is past the end of reply {reply_id} "
            f"({len(text):,} characters); fix: pass an offset below {len(text):,}, or 0 for the whole result."
        )
    message = record.message or {}
    members = {k: message[k] for k in _PAGE_MEMBERS if k in message}
    shown, next_offset = page(text, offset, budget - RESERVE)
    while True:
        end = offset + len(shown)
        where = (f"next_offset {next_offset}: call get_reply with reply_id {reply_id!r} and offset {next_offset}"
                 if next_offset is not None else "the last part, next_offset null")  # fmt: skip
        note = f"[Characters {offset:,} to {end:,} of {len(text):,} of reply {reply_id}; {where}.]"
        structured = {**_head(reply_id, record), "offset": offset, "next_offset": next_offset, "text": shown,
                      **members, "page": note}  # fmt: skip
        # JSON escapes (newlines, quotes) can make the structured part heavier than the text.
        if json_weight(structured) <= budget or len(shown) <= 1:
            break
        shown = at_line_end(cut(shown, weight(shown) * 9 // 10), text[offset:]) or shown[:1]
        next_offset = offset + len(shown) if offset + len(shown) < len(text) else None
    content: list[ContentBlock] = [TextContent(type="text", text=shown), TextContent(type="text", text=note)]
    return CallToolResult(content=content, structured_content=ordered(structured), is_error=failed)


def combined_view(results: list[tuple[str, str, CallToolResult]]) -> CallToolResult:
    """Several models' results (model, reply id, result) in one: text under each model's name,
    ``replies`` in order."""
    content: list[ContentBlock] = []
    replies: list[dict[str, Any]] = []
    for model, reply_id, result in results:
        content.append(TextContent(type="text", text=f"## {model}"))
        content += result.content
        replies.append(ordered({"reply_id": reply_id, "model": model, **(result.structured_content or {})}))
    status = "running" if any(r.get("status") == "running" for r in replies) else "complete"
    every_failed = all(result.is_error for _, _, result in results)
    return CallToolResult(content=content, structured_content={"status": status, "replies": replies},
                          is_error=every_failed)  # fmt: skip
