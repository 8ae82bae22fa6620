"""Tool results: what the agent reads.

Hosts differ in what they pass to the model: some only the structured content, some only the
text. So every fact the model must read (the reply, stop notes, dropped fields, route,
credits, errors) is in both: the text content is the reply exactly as sent and one short
block of notes; the structured content is the Anthropic Message with ``route``, ``credits``
and ``notes`` beside its fields, those first and ``content`` last (see ``ordered``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.types import CallToolResult, ContentBlock, ResourceLink, TextContent

from ._budget import weight
from ._credits import estimate_reply_credits
from ._routes import Route
from ._schemas import REPLY_URI

__all__ = [
    "Truncation",
    "call_notes",
    "error_result",
    "ordered",
    "partial_reply_result",
    "reply_result",
    "truncation",
]

MAX_DROPPED_SHOWN = 8


# The members the model must read, in this order, before the rest of the Message: Claude Code
# shows the model only the first 2 KB of a result it finds too large, and Codex cuts the middle
# of one; `content`, the bulk, goes last.
LEADING = ("status", "reply_id", "error", "notes", "truncated", "conversation_id", "credits", "route")


def ordered(structured: Mapping[str, Any]) -> dict[str, Any]:
    """``structured`` with the LEADING members first, then the others as they were, ``content`` last."""
    head = {name: structured[name] for name in LEADING if name in structured}
    rest = {name: value for name, value in structured.items() if name not in head and name != "content"}
    return {**head, **rest, **({"content": structured["content"]} if "content" in structured else {})}


def error_result(text: str, structured: dict[str, Any] | None = None) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=ordered(structured) if structured is not None else None,
        is_error=True,
    )


_STOP_NOTES = {
    "max_tokens": "[Reply cut off: it reached max_tokens ({max_tokens}). Raise max_tokens or ask it to continue.]",
    "stop_sequence": "[Stopped at the stop sequence {stop_sequence!r}.]",
    "tool_use": "[The model asks to use a tool: {tools}. Its tool_use blocks (ids too) are in the structured content.]",
    "pause_turn": "[The model paused its turn; send the reply back as an assistant message to let it continue.]",
    "refusal": "[The model declined to answer.]",
}


TOOL_INPUT_SHOWN = 2000  # characters of each tool call's input repeated in the text


def _compact(value: Any) -> str:
    """A tool call's input for the text content (hosts that show only text see the call too)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= TOOL_INPUT_SHOWN else text[: TOOL_INPUT_SHOWN - 1] + "…"


def _stop_note(message: Mapping[str, Any], max_tokens: int | None) -> str:
    reason = message.get("stop_reason")
    if reason in (None, "end_turn"):
        return ""
    if reason == "max_tokens" and max_tokens is None:
        return "[Reply cut off: it reached the model's own output limit. Pass max_tokens or ask it to continue.]"
    tools = ", ".join(
        f"{block.get('name')} {_compact(block.get('input'))}"
        for block in message.get("content", [])
        if block.get("type") == "tool_use"
    )
    template = _STOP_NOTES.get(str(reason), "[The reply stopped with stop_reason {reason!r}.]")
    return template.format(
        max_tokens=max_tokens, stop_sequence=message.get("stop_sequence"), tools=tools or "?", reason=reason
    )


def _dropped_note(dropped: tuple[str, ...]) -> str:
    if not dropped:
        return ""
    shown = ", ".join(dropped[:MAX_DROPPED_SHOWN])
    more = f" and {len(dropped) - MAX_DROPPED_SHOWN} more" if len(dropped) > MAX_DROPPED_SHOWN else ""
    return f"[Not sent, no OpenAI Chat Completions equivalent: {shown}{more}.]"


def call_notes(
    message: Mapping[str, Any], *, route: Route, dropped: tuple[str, ...], max_tokens: int | None,
    entry: Mapping[str, Any] | None,
) -> tuple[list[str], dict[str, Any]]:  # fmt: skip
    """The notes for the text content and the members added to the structured content."""
    estimate = estimate_reply_credits(entry.get("pricing"), message) if entry else None
    if estimate is not None:
        credits = estimate.as_dict()
        credits_line = f"Credits: about {credits['estimate']} (an estimate: {estimate.basis})."
    else:
        basis = "list_models has no pricing for this model" if entry is None or not entry.get("pricing") else (
            "the catalogue pricing has no usable rates")  # fmt: skip
        credits = {"estimate": None, "basis": basis}
        credits_line = f"Credits: no estimate ({basis})."
    notes = [note for note in (_stop_note(message, max_tokens), _dropped_note(dropped)) if note]
    model = message.get("model") or "The model"
    served = f"[{model} answered over the relay's {route.protocol} route. {credits_line}]"
    return [*notes, served], {"route": route.value, "credits": credits, "notes": notes}


@dataclass(frozen=True)
class Truncation:
    details: dict[str, Any]
    note: str
    link: ResourceLink


def truncation(reply_id: str, text: str, shown: str, path: str | None, budget: int) -> Truncation:
    """Where the full reply is, said to the agent, for a reply over the result budget."""
    uri = REPLY_URI.format(reply_id=reply_id)
    where = f"read the resource {uri} (resources/read)" + (f" or the file {path}" if path else "")
    note = (
        f"[The reply is cut here: it is {len(text):,} characters ({weight(text):,} weighted), over this host's "
        f"result budget of {budget:,} (AITOEARN_MAX_RESULT_CHARS sets it): shown are its first {len(shown):,} "
        f"characters. For all of it, {where}; {uri}/message is the whole Message.]"
    )
    details: dict[str, Any] = {"full_chars": len(text), "shown_chars": len(shown), "uri": uri}
    if path:
        details["path"] = path
    link = ResourceLink(type="resource_link", uri=uri, name=f"reply {reply_id}", mime_type="text/plain",
                        size=len(text.encode()), description="The full reply text")  # fmt: skip
    return Truncation(details, note, link)


def reply_result(structured: dict[str, Any], text: str, notes: list[str], link: ResourceLink | None) -> CallToolResult:
    """Text content: the reply text exactly as sent (or its beginning), then the notes, then a
    link to the full reply when it was cut. Structured: the Message with its extra members."""
    content: list[ContentBlock] = [TextContent(type="text", text=text)] if text else []
    if not text:
        content.append(TextContent(type="text", text="[The reply has no text; see the structured content.]"))
    content.append(TextContent(type="text", text="\n".join(notes)))
    if link is not None:
        content.append(link)
    return CallToolResult(content=content, structured_content=ordered(structured))


def partial_reply_result(
    structured: dict[str, Any], shown: str, lead: list[str], link: ResourceLink | None
) -> CallToolResult:
    """An error result carrying the text that arrived before the failure: what went wrong first,
    then the text (or its beginning), then a link to all of it when it was cut."""
    content: list[ContentBlock] = [TextContent(type="text", text="\n".join(lead)), TextContent(type="text", text=shown)]
    if link is not None:
        content.append(link)
    return CallToolResult(content=content, structured_content=ordered(structured), is_error=True)
