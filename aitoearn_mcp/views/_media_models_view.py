"""What ``list_models`` shows for ``kind`` image and video: one compact line and one small
object per model, within the budget in both parts, or one model's full catalogue entry. Pure.
Only the models within the allowlist (AITOEARN_MODELS) are shown, and the allowlist is said.

The raw entries repeat a pricing row per size (27 for gpt-image-2) or per second of video (up
to 48 rows a model): the summaries fold them into price tiers and credits per second.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from mcp.types import CallToolResult, TextContent

from ..media._models import ImageEditModel, ImageModel, VideoModel
from ..media._validate import reference_limits
from ..relay._choose import allowed as allowed_name
from ..relay._choose import allowed_within, not_allowed
from ..relay._credits import plain_decimal
from ._budget import json_weight, weight
from ._models_view import ONE_BLOCK_CHARS, ROOM
from ._result import error_result, ordered

__all__ = ["image_models_result", "image_summary", "video_models_result", "video_summary"]

MAX_SIZES_SHOWN = 12  # per price tier in the line; the object lists them all


def _number(value: Decimal | float | int) -> str:
    return plain_decimal(Decimal(str(value)))


def _tiers(pricing: Iterable[Any], sizes: Sequence[str]) -> dict[str, list[str]]:
    """Sizes grouped by credits per image, cheapest first; a listed size without a price under "unpriced"."""
    by_price: dict[Decimal, list[str]] = {}
    priced: set[str] = set()
    for row in pricing:
        if row.size is not None and row.price is not None:
            by_price.setdefault(row.price, []).append(row.size)
            priced.add(row.size)
    tiers = {_number(price): names for price, names in sorted(by_price.items())}
    unpriced = [size for size in sizes if size not in priced]
    return {**tiers, "unpriced": unpriced} if unpriced else tiers


def image_summary(model: ImageModel | None, edit: ImageEditModel | None) -> dict[str, Any]:
    """One image model: sizes by credits per image, qualities, styles, whether it edits and with
    how many reference images, the credits scope; what is missing is left out."""
    entry = model or edit
    assert entry is not None
    listed: list[str] = [*(model.sizes if model else []), *(edit.sizes if edit else [])]
    sizes = list(dict.fromkeys(listed))
    pricing = [*(model.pricing if model else []), *(edit.pricing if edit else [])]
    fields: dict[str, Any] = {
        "name": entry.name,
        "credits_per_image_by_size": _tiers(pricing, sizes),
        "qualities": model.qualities if model else [],
        "styles": model.styles if model else [],
        "generates": model is not None,
        "edits": edit is not None,
        "max_input_images": edit.max_input_images if edit else None,
        "credits_scope": entry.credits_scope,
    }
    return {name: value for name, value in fields.items() if value not in (None, [], {}, "")}


def _image_line(brief: Mapping[str, Any]) -> str:
    tiers = []
    for price, sizes in brief.get("credits_per_image_by_size", {}).items():
        shown = ", ".join(sizes[:MAX_SIZES_SHOWN]) + (f" and {len(sizes) - MAX_SIZES_SHOWN} more" if len(sizes) >
                                                       MAX_SIZES_SHOWN else "")  # fmt: skip
        tiers.append(f"{shown} unpriced" if price == "unpriced" else f"{price} credits: {shown}")
    abilities = [word for word, on in (("text to image", brief.get("generates")), ("edits", brief.get("edits"))) if on]
    if brief.get("max_input_images"):
        abilities[-1] += f" (up to {brief['max_input_images']} reference images)"
    parts = [
        brief["name"],
        " and ".join(abilities),
        "; ".join(tiers),
        f"qualities {','.join(brief['qualities'])}" if brief.get("qualities") else "",
        f"styles {','.join(brief['styles'])}" if brief.get("styles") else "no styles" if brief.get("generates") else "",
        f"scope {brief['credits_scope']}" if brief.get("credits_scope") else "",
    ]
    return " · ".join(part for part in parts if part)


def _per_second(model: VideoModel) -> dict[str, str]:
    """Credits per second by resolution (and by mode where rows carry one): a row with a duration
    is that long a video's price; rows that disagree show as a range."""
    rates: dict[str, set[Decimal]] = {}
    for row in model.pricing:
        if row.price is None:
            continue
        seconds = Decimal(str(row.duration)) if row.duration else None
        rate = row.price / seconds if seconds else row.price
        label = " ".join(part for part in (row.resolution or "any resolution", row.mode or "") if part)
        rates.setdefault(label, set()).add(rate.normalize())
    shown = {}
    for label, values in rates.items():
        low, high = min(values), max(values)
        shown[label] = _number(low) if low == high else f"{_number(low)}-{_number(high)}"
    return shown


def _durations(values: Sequence[int | float]) -> str:
    ordered_values = sorted(values)
    if len(ordered_values) > 3 and all(b - a == 1 for a, b in itertools.pairwise(ordered_values)):
        return f"{_number(ordered_values[0])}-{_number(ordered_values[-1])}"
    return ",".join(_number(v) for v in ordered_values)


def video_summary(model: VideoModel) -> dict[str, Any]:
    """One video model: modes, resolutions, ratios, durations (seconds), reference limits,
    credits per second per resolution (and mode), defaults, credits scope."""
    images, videos, audios = reference_limits(model)
    references = {k: v for k, v in (("images", images), ("videos", videos), ("audios", audios)) if v is not None}
    defaults = {k: v for k, v in model.defaults.model_dump(by_alias=True, exclude_none=True).items() if v is not None}
    fields: dict[str, Any] = {
        "name": model.name,
        "modes": model.modes,
        "resolutions": model.resolutions,
        "ratios": model.aspect_ratios,
        "durations": _durations(model.durations) if model.durations else "",
        "max_references": references,
        "credits_per_second": _per_second(model),
        "defaults": defaults,
        "credits_scope": model.credits_scope,
    }
    return {name: value for name, value in fields.items() if value not in (None, [], {}, "")}


def _video_line(brief: Mapping[str, Any]) -> str:
    refs = brief.get("max_references", {})
    defaults = brief.get("defaults", {})
    parts = [
        brief["name"],
        ",".join(brief.get("modes", [])),
        ",".join(brief.get("resolutions", [])),
        ",".join(brief.get("ratios", [])),
        f"{brief['durations']} s" if brief.get("durations") else "",
        "refs " + " ".join(f"{n} {k}" for k, n in refs.items()) if refs else "",
        "credits/s " + ", ".join(f"{k} {v}" for k, v in brief.get("credits_per_second", {}).items())
        if brief.get("credits_per_second") else "",
        "default " + " ".join(str(v) for v in defaults.values()) if defaults else "",
        f"scope {brief['credits_scope']}" if brief.get("credits_scope") else "",
    ]  # fmt: skip
    return " · ".join(part for part in parts if part)


def _fit(lines_and_briefs: Sequence[tuple[str, dict[str, Any]]], budget: int, notes: list[str], kind: str,
         allowed: Sequence[str]) -> CallToolResult:  # fmt: skip
    if allowed:
        notes.append(f"Only these models are allowed here (AITOEARN_MODELS): {', '.join(allowed)}.")
    limit = min(budget, ONE_BLOCK_CHARS) - ROOM
    lines: list[str] = []
    briefs: list[dict[str, Any]] = []
    for line, brief in lines_and_briefs:
        if weight("\n".join([*lines, line])) > limit or json_weight({"models": [*briefs, brief]}) > limit:
            break
        lines.append(line)
        briefs.append(brief)
    if not lines_and_briefs:
        notes.append(f"The relay lists no {kind} models{' allowed here' if allowed else ''}.")
    if len(briefs) < len(lines_and_briefs):
        notes.append(f"{len(lines_and_briefs) - len(briefs)} more {kind} models are not shown (too many for one "
                     "result): ask for one with `detail`.")  # fmt: skip
    notes.append(f'`detail: "<model name>"` with kind {kind} gives a model\'s full catalogue entry.')
    structured = ordered({"notes": notes, "models": briefs, **({"allowed": list(allowed)} if allowed else {})})
    return CallToolResult(content=[TextContent(type="text", text="\n".join([*lines, *notes]))],
                          structured_content=structured)  # fmt: skip


def _unknown(kind: str, name: str, names: Sequence[str], allowed: Sequence[str]) -> CallToolResult:
    """``detail`` names no model shown: outside the allowlist (the setting named), else unlisted."""
    if not allowed_name(name, allowed):
        message = not_allowed(name, allowed, names, tool="list_models", field="detail", kind=kind)
        return error_result(message, {"status": "failed", "error": f"`detail` {name!r} is not allowed on this server "
                                                                   "(AITOEARN_MODELS)"})  # fmt: skip
    import difflib  # here: only an unknown name needs it

    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.4)
    hint = f"the closest names are {', '.join(close)}" if close else f"the {kind} models are {', '.join(names)}"
    return error_result(
        f"Invalid arguments for list_models: `detail` {name!r} is not a listed {kind} model; fix: {hint}.",
        {"status": "failed", "error": f"`detail` {name!r} is not a listed {kind} model"},
    )


def _entry_result(line: str, brief: dict[str, Any], entry: dict[str, Any]) -> CallToolResult:
    text = f"{line}\n{json.dumps(entry, ensure_ascii=False, indent=1, default=str)}"
    structured = json.loads(json.dumps({"models": [brief], "entry": entry}, ensure_ascii=False, default=str))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=ordered(structured))


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def image_models_result(
    generation: Sequence[ImageModel], edits: Sequence[ImageEditModel], *, detail: str | None, budget: int,
    notes: list[str], allowed: Sequence[str] = (),
) -> CallToolResult:  # fmt: skip
    """The image models within ``allowed`` (text to image and edit, one line per name), or
    ``detail``'s entries."""
    generation, edits = allowed_within(generation, allowed), allowed_within(edits, allowed)
    names = list(dict.fromkeys([*(m.name for m in generation), *(m.name for m in edits)]))
    pairs = [(next((m for m in generation if m.name == n), None), next((m for m in edits if m.name == n), None))
             for n in names]  # fmt: skip
    if detail is not None:
        if detail not in names:
            return _unknown("image", detail, names, allowed)
        found = pairs[names.index(detail)]
        brief = image_summary(*found)
        entry = {key: _dump(model) for key, model in (("generation", found[0]), ("edit", found[1])) if model}
        return _entry_result(_image_line(brief), brief, entry)
    briefs = [image_summary(g, e) for g, e in pairs]
    return _fit([(_image_line(b), b) for b in briefs], budget, notes, "image", allowed)


def video_models_result(
    models: Sequence[VideoModel], *, detail: str | None, budget: int, notes: list[str], allowed: Sequence[str] = ()
) -> CallToolResult:
    """The video models within ``allowed``, one line each, or ``detail``'s entry."""
    models = allowed_within(models, allowed)
    if detail is not None:
        found = next((m for m in models if m.name == detail), None)
        if found is None:
            return _unknown("video", detail, [m.name for m in models], allowed)
        brief = video_summary(found)
        return _entry_result(_video_line(brief), brief, _dump(found))
    briefs = [video_summary(m) for m in models]
    return _fit([(_video_line(b), b) for b in briefs], budget, notes, "video", allowed)
