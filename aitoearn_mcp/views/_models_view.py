"""What ``list_models`` shows: one small summary per model, in both parts of the result, and
a model's full catalogue entry on request. Pure.

The raw catalogue repeats every price tier, the list price and logos for each model: hosts
that show the model only the structured content would hand it all of that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.types import CallToolResult, ContentBlock, TextContent

from ._budget import json_weight, weight
from ._result import error_result, ordered

__all__ = ["format_model_line", "models_result", "summary"]

DESCRIPTION_CHARS = 100
# Gemini CLI cuts a result made of one text block over 40,000 characters; the list is one block.
ONE_BLOCK_CHARS = 40_000
ROOM = 300  # for the note saying how many models were left out


def _price(pricing: Any) -> str:
    if not isinstance(pricing, Mapping):
        return ""
    if "price" in pricing:
        return f"{pricing['price']} credits"
    tiers = pricing.get("tiers")
    if isinstance(tiers, list) and tiers and isinstance(tiers[0], Mapping):
        tier = tiers[0]
        text_in = (tier.get("input") or {}).get("text")
        text_out = (tier.get("output") or {}).get("text")
        more = f" (+{len(tiers) - 1} tier{'s' * (len(tiers) > 2)})" if len(tiers) > 1 else ""
        return f"in {text_in} / out {text_out} credits per 1K tokens{more}"
    return ""


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """name, channel, input and output modalities, a one-line price, a short description;
    what is missing is left out."""
    description = " ".join(str(entry.get("description") or "").split())
    if description in (entry.get("name"), entry.get("label")):
        description = ""
    if len(description) > DESCRIPTION_CHARS:
        description = description[: DESCRIPTION_CHARS - 1] + "…"
    fields = {
        "name": str(entry["name"]),
        "channel": str(entry.get("channel") or ""),
        "input": _strings(entry.get("inputModalities")),
        "output": _strings(entry.get("outputModalities")),
        "price": _price(entry.get("pricing")),
        "description": description,
    }
    return {name: value for name, value in fields.items() if value}


def format_model_line(entry: Mapping[str, Any]) -> str:
    """name · channel · in → out · price · description, skipping what is missing."""
    brief = summary(entry)
    modalities = ""
    if brief.get("input") or brief.get("output"):
        modalities = f"{','.join(brief.get('input', []))} → {','.join(brief.get('output', []))}"
    parts = [brief["name"], brief.get("channel", ""), modalities, brief.get("price", ""), brief.get("description", "")]
    return " · ".join(part for part in parts if part)


def _matches(entry: Mapping[str, Any], channel: str | None, modality: str | None) -> bool:
    if channel and str(entry.get("channel") or "").lower() != channel.strip().lower():
        return False
    modalities = {m.lower() for m in _strings(entry.get("inputModalities")) + _strings(entry.get("outputModalities"))}
    return not modality or modality.strip().lower() in modalities


def _detail(entries: Sequence[Mapping[str, Any]], name: str) -> CallToolResult:
    found = next((entry for entry in entries if entry.get("name") == name), None)
    if found is None:
        import difflib  # here: only an unknown name needs it, and start-up should not pay

        close = difflib.get_close_matches(name, [str(entry["name"]) for entry in entries], n=3, cutoff=0.4)
        hint = f"the closest names are {', '.join(close)}" if close else "call list_models for the names"
        return error_result(f"Invalid arguments for list_models: `detail` {name!r} is not a listed model; fix: {hint}.")
    text = f"{format_model_line(found)}\n{json.dumps(found, ensure_ascii=False, indent=1)}"
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=ordered({"models": [summary(found)], "entry": dict(found)}),
    )


def alias_lines(aliases: Mapping[str, Any]) -> list[str]:
    """The aliases section in words: ``aliases`` is ``{"aliases": {alias: model}, "unmatched":
    [...], "allowed": [...]}`` (the last two when there are any)."""
    table = aliases.get("aliases") or {}
    lines = []
    if table:
        pairs = ", ".join(f"{alias} → {model}" for alias, model in table.items())
        lines.append(f"Aliases (send_message's model, models, judge, fallback): {pairs}.")
    if aliases.get("unmatched"):
        lines.append(f"AITOEARN_MODEL_ALIASES names that match no model: {', '.join(aliases['unmatched'])}.")
    if aliases.get("allowed"):
        lines.append(f"Only these models are allowed here (AITOEARN_MODELS): {', '.join(aliases['allowed'])}.")
    return lines


def models_result(
    entries: Sequence[Mapping[str, Any]], *, channel: str | None, modality: str | None, detail: str | None, budget: int,
    aliases: Mapping[str, Any] | None = None,
) -> CallToolResult:  # fmt: skip
    """The catalogue, filtered by channel and modality, one summary per model, within the budget
    in both parts, then the aliases in effect; or one model's full entry (``detail``)."""
    if detail is not None:
        return _detail(entries, detail)
    chosen = [entry for entry in entries if _matches(entry, channel, modality)]
    after = alias_lines(aliases) if aliases else []
    limit = min(budget, ONE_BLOCK_CHARS) - ROOM - max(weight("\n".join(after)), json_weight(aliases or {}))
    summaries: list[dict[str, Any]] = []
    lines: list[str] = []
    for entry in chosen:
        line, brief = format_model_line(entry), summary(entry)
        if weight("\n".join([*lines, line])) > limit or json_weight({"models": [*summaries, brief]}) > limit:
            break
        lines.append(line)
        summaries.append(brief)
    notes = []
    if not entries:
        notes.append("The relay lists no chat models.")
    elif not chosen:
        channels = sorted({str(entry.get("channel")) for entry in entries if entry.get("channel")})
        notes.append(f"No listed model matches these filters; channels listed: {', '.join(channels)}.")
    if len(summaries) < len(chosen):
        notes.append(
            f"{len(chosen) - len(summaries)} more models are not shown (too many for one result): "
            "filter by channel or modality."
        )
    if notes:
        notes.append('`detail: "<model name>"` gives a model\'s full catalogue entry (all price tiers).')
    structured = ordered({"notes": notes, "models": summaries} if notes else {"models": summaries})
    if aliases:
        structured.update(aliases)
    content: list[ContentBlock] = [TextContent(type="text", text="\n".join([*lines, *notes]))]
    if after:  # a block of its own: the list stays one line per model
        content.append(TextContent(type="text", text="\n".join(after)))
    return CallToolResult(content=content, structured_content=structured)
