"""The notes a call adds to its reply: why it stopped, the fields one route could not carry,
the fields the caller sent that no one knows, the route that served it and the credits it cost.
They are the record's data, written once when the call settles; the views put them in both
parts of every result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._untrusted import MAX_NAME_CHARS, one_line
from ..relay._credits import estimate_reply_credits
from ..relay._routes import Route

__all__ = ["Unknown", "call_notes", "unknown_note"]

# Fields the caller sent that are neither Anthropic Messages fields nor ours, each with the
# nearest known name (None: nothing close). They are sent as given: the relay may know them.
Unknown = tuple[tuple[str, str | None], ...]

MAX_DROPPED_SHOWN = 8

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


def _dropped_note(dropped: tuple[str, ...], route: Route) -> str:
    if not dropped:
        return ""
    shown = ", ".join(dropped[:MAX_DROPPED_SHOWN])
    more = f" and {len(dropped) - MAX_DROPPED_SHOWN} more" if len(dropped) > MAX_DROPPED_SHOWN else ""
    return f"[Not sent, no {route.protocol} equivalent: {shown}{more}.]"


def unknown_note(unknown: Unknown) -> str:
    """ "[Unknown field `temprature` sent as is; did you mean `temperature`?]", or "" for none."""
    said = [
        f"Unknown field `{one_line(name, MAX_NAME_CHARS)}` sent as is" + (f"; did you mean `{near}`?" if near else ".")
        for name, near in unknown[:MAX_DROPPED_SHOWN]
    ]
    more = f" And {len(unknown) - MAX_DROPPED_SHOWN} more unknown fields." if len(unknown) > MAX_DROPPED_SHOWN else ""
    return f"[{' '.join(said)}{more}]" if said else ""


def call_notes(
    message: Mapping[str, Any], *, route: Route, dropped: tuple[str, ...], max_tokens: int | None,
    entry: Mapping[str, Any] | None, unknown: Unknown = (),
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
    notes = [note for note in (_stop_note(message, max_tokens), unknown_note(unknown), _dropped_note(dropped, route))
             if note]  # fmt: skip
    model = message.get("model") or "The model"
    served = f"[{model} answered over the relay's {route.protocol} route. {credits_line}]"
    return [*notes, served], {"route": route.value, "credits": credits, "notes": notes}
