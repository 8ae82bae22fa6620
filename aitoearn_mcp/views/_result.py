"""Tool results: what the agent reads.

Hosts differ in what they pass to the model: some only the structured content, some only the
text. So every fact the model must read (the reply, the call's notes, route, credits,
errors) is in both: the text content is the reply exactly as sent and one short
block of notes; the structured content is the Anthropic Message with ``route``, ``credits``
and ``notes`` beside its fields, those first and ``content`` last (see ``ordered``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.types import CallToolResult, ContentBlock, ResourceLink, TextContent

from ._budget import weight
from ._uris import REPLY_URI

__all__ = [
    "Truncation",
    "error_result",
    "ordered",
    "partial_reply_result",
    "reply_result",
    "truncation",
]

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
    """A failed call: ``text``, and in the structured content (hosts that show only that part)
    ``status`` failed and the same ``text`` as ``error`` unless ``structured`` says more."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=ordered(structured if structured is not None else {"status": "failed", "error": text}),
        is_error=True,
    )


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
