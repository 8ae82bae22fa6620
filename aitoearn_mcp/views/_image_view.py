"""What the agent reads of a generate_image record: still being made, ready, failed or cancelled.
Every fact in both parts (where each file is, its link, size, revised prompt, credits), status and
reply_id first in the structured content, and each image as an image block the host shows. Pure.

Codex drops an image block from a result with structured content and Gemini CLI shows only the
text, so the saved path and the link are the way to the exact file on every host; the preview
is for the hosts that show images. Previews count toward the result's size: at most
``MAX_PREVIEW_TOTAL`` encoded bytes of them in one record (four full-size previews); an image
past that is saved and linked but not shown, and the result says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from ..delegation._record import ReplyRecord
from ._budget import cut
from ._result import ordered

__all__ = ["MAX_REVISED_PROMPT", "image_credits", "image_progress", "image_view"]

MAX_REVISED_PROMPT = 2000  # weighted characters of a revised prompt shown (once per image, in both parts)


def image_credits(media: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The credits as the structured content has them (as a video's: ``price``, and ``points``
    when the relay reported them) and in words."""
    price, points = media.get("price"), media.get("points")
    shown = [item for item in media.get("images") or [] if item.get("bytes")]
    count = max(len(shown), 1)
    total = None
    if isinstance(price, str):
        total = price if count == 1 else str(Decimal(price) * count)
    credits: dict[str, Any] = {"price": total}
    if points is not None:
        credits["points"] = points
    size = media.get("size")
    if total is None:
        words = "the catalogue lists no price for this"
    elif size:
        words = f"{price} credits an image (the catalogue's price for {size})" + (
            f", {total} credits in all" if count > 1 else ""
        )
    else:
        words = f"up to {price} credits an image (the catalogue's dearest size; the relay picked the size)"
    if points is not None:
        words += f"; the relay reported {points} credits"
    if media.get("today") is not None:
        credits |= {"today": media["today"], "daily_limit": media.get("daily_limit")}
        words += (f"; today (UTC) this key has used about {media['today']} of its {media.get('daily_limit')} "
                  "credits (AITOEARN_MAX_CREDITS_PER_DAY)")  # fmt: skip
    return credits, f"Credits: {words}; an estimate, AiToEarn's ledger is the truth."


_STAGES = {
    "uploading": "uploading the reference images",
    "submitting": "submitting the image",
    "generating": "being made",
    "saving": "saving the finished image",
}


def image_progress(record: ReplyRecord, elapsed: float) -> str:
    """One progress line for an image still on its way: the stage, the relay's own status string
    and the time so far."""
    media = record.media or {}
    stage = _STAGES.get(str(media.get("stage")), "working")
    status = f", relay status {media['relay_status']!r}" if media.get("relay_status") else ""
    task = f" (task {media['task_id']})" if media.get("task_id") else ""
    return f"Image on {record.model}: {stage}{status}{task}, {elapsed:.0f} s so far"


def _describe(number: int, total: int, image: Mapping[str, Any]) -> list[str]:
    head = f"Image {number} of {total}" if total > 1 else "Image"
    size = f"{image['width']}×{image['height']}" if image.get("width") and image.get("height") else ""
    what = ", ".join(part for part in (size, image.get("media_type") or "", f"{image.get('bytes', 0):,} bytes") if part)
    path = image.get("path")
    lines = [f"{head}: saved to {path} ({what})." if path else f"{head} ({what}): not saved here."]
    url = image.get("url")
    lines.append(f"Link: {url}" if url else "Link: none (the relay returned the image's bytes only).")
    if image.get("revised_prompt"):
        lines.append(f"Revised prompt: {cut(image['revised_prompt'], MAX_REVISED_PROMPT)}")
    if image.get("not_shown"):
        lines.append(f"Not shown here: {image['not_shown']}.")
    return lines


def _listed(image: Mapping[str, Any]) -> dict[str, Any]:
    item = {name: image.get(name) for name in ("path", "url", "width", "height", "bytes", "media_type")}
    item["shown"] = "preview" in image
    if image.get("revised_prompt"):
        item["revised_prompt"] = cut(image["revised_prompt"], MAX_REVISED_PROMPT)
    if image.get("not_shown"):
        item["not_shown"] = image["not_shown"]
    return {k: v for k, v in item.items() if v is not None}


def image_view(reply_id: str, record: ReplyRecord, now: float) -> CallToolResult:
    """The result for an image's record."""
    media = record.media or {}
    credits, credits_words = image_credits(media)
    head: dict[str, Any] = {"status": record.status, "reply_id": reply_id}
    facts = {"model": record.model, "size": media.get("size"), "quality": media.get("quality"),
             "task_id": media.get("task_id"), "credits": credits}  # fmt: skip
    facts = {k: v for k, v in facts.items() if v is not None}
    if record.status == "running":
        elapsed = max(now - record.started, 0.0)
        follow = f"call get_reply with reply_id {reply_id!r} to wait for the image"
        structured = {**head, "stage": media.get("stage"), "relay_status": media.get("relay_status"),
                      "elapsed_seconds": round(elapsed, 1), **facts,
                      "next": follow + " (it goes on meanwhile; cancel: true stops waiting for it, but the relay "
                              "cannot stop an image once submitted)."}  # fmt: skip
        text = (f"[{image_progress(record, elapsed)}: the image is not ready yet (reply {reply_id}). To collect it, "
                f"{follow}; it goes on meanwhile. {credits_words}]")  # fmt: skip
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
    images = [image for image in media.get("images") or [] if image.get("bytes")]
    if record.status != "complete":  # failed or cancelled: what happened and what was spent, first
        why = record.error or f"The image {record.status}."
        rest = [note for note in record.notes if note != why]
        failed = record.status == "failed"
        told: dict[str, Any] = {"error": why, "notes": rest} if failed else {"notes": [why, *rest]}
        links = [str(image["url"]) for image in media.get("images") or [] if image.get("url")]
        saved = [str(image["path"]) for image in images if image.get("path")]
        if links:
            told["urls"] = links
        if saved:
            told["saved"] = saved
        lines = [why, credits_words, *rest]
        if links:
            lines.append(f"Image links: {', '.join(links)}")
        return CallToolResult(content=[TextContent(type="text", text="\n".join(lines))],
                              structured_content=ordered({**head, **told, **facts}), is_error=failed)  # fmt: skip
    what = "edited" if media.get("edit") else "generated"
    size = f" at {media['size']}" if media.get("size") else ""
    quality = f", quality {media['quality']}" if media.get("quality") else ""
    count = f"{len(images)} image{'s' * (len(images) != 1)}"
    lines = [f"{count} {what} by {record.model}{size}{quality} (reply {reply_id})."]
    for number, image in enumerate(images, 1):
        lines.extend(_describe(number, len(images), image))
    lines.append(credits_words)
    lines.extend(record.notes)
    content: list[ContentBlock] = [TextContent(type="text", text="\n".join(lines))]
    content += [ImageContent(type="image", data=image["preview"], mime_type=image.get("preview_type") or "image/png")
                for image in images if image.get("preview")]  # fmt: skip
    structured = {**head, "notes": [credits_words, *record.notes], **facts,
                  "images": [_listed(image) for image in images]}  # fmt: skip
    return CallToolResult(content=content, structured_content=ordered(structured))
