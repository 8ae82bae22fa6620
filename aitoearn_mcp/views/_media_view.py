"""What the agent reads of a video's record: still rendering, ready, failed or cancelled (an
image's record is read by ``_image_view``; ``media_view`` and ``media_progress`` take either).

Every fact is in both parts, status first in the structured content: Claude Code and Codex show
only the structured content, Gemini CLI only the text, and Codex drops the image whenever there
is structured content. So the saved file's path and the video's URL are in both, and the cover is
an image block besides (for the hosts that pass one on).
"""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from ..delegation._record import ReplyRecord
from ._image_view import image_progress, image_view

__all__ = ["media_progress", "media_status_message", "media_view"]


def _seconds(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, int | float) else "the default length"


def _credits(media: dict[str, Any]) -> dict[str, Any]:
    """The video's credits, and beside them the key's total today when the daily cap counted it."""
    credits: dict[str, Any] = {"price": media.get("price")}
    if media.get("points") is not None:
        credits["points"] = media["points"]
    if media.get("today") is not None:
        credits |= {"today": media["today"], "daily_limit": media.get("daily_limit")}
    return credits


def _credits_words(media: dict[str, Any]) -> str:
    price, points = media.get("price"), media.get("points")
    words = f"{price} (the catalogue's price)" if price is not None else "the catalogue lists no price for this"
    words += f"; the relay reported {points}" if points is not None else ""
    if media.get("today") is not None:
        words += (f"; today (UTC) this key has used about {media['today']} of its {media.get('daily_limit')} "
                  "credits (AITOEARN_MAX_CREDITS_PER_DAY)")  # fmt: skip
    return words


def _what(record: ReplyRecord, media: dict[str, Any]) -> str:
    mode = media.get("mode") or "unknown"
    derived = " (derived from the inputs)" if media.get("mode_derived") else ""
    shape = ", ".join(str(v) for v in (media.get("resolution"), media.get("ratio")) if v)
    return f"{_seconds(media.get('duration'))}{', ' + shape if shape else ''}, mode {mode}{derived}, on {record.model}"


_STAGES = {
    "uploading": "uploading the reference files",
    "submitting": "submitting the video",
    "rendering": "rendering",
    "downloading": "downloading the finished video",
    "done": "finishing",
}


def media_progress(record: ReplyRecord, elapsed: float) -> str:
    """One progress line for a video or an image still on its way: the stage, the relay's own
    status string and the time so far."""
    media = record.media or {}
    if media.get("kind") == "image":
        return image_progress(record, elapsed)
    status = f", relay status {media['relay_status']!r}" if media.get("relay_status") else ""
    task = f" (task {media['task_id']})" if media.get("task_id") else ""
    stage = _STAGES.get(str(media.get("stage")), "working")
    return f"Video on {record.model}: {stage}{status}{task}, {elapsed:.0f} s so far"


def media_status_message(reply_id: str, record: ReplyRecord, now: float) -> str:
    """What a video or image task's status means, in words (MCP Tasks' statusMessage)."""
    media = record.media or {}
    if record.status == "running":
        return media_progress(record, max(now - record.started, 0.0)) + f"; reply {reply_id}."
    if record.status == "complete" and media.get("kind") == "image":
        where = [str(image.get("path") or image.get("url")) for image in media.get("images") or []]
        return f"The image is ready: {', '.join(where) or 'see the result'}."
    if record.status == "complete":
        where = media.get("path") or media.get("video_url") or "its URL"
        return f"The video is ready: {where}."
    return record.error or (record.notes[0] if record.notes else f"The {media.get('kind', 'video')} {record.status}.")


def media_view(reply_id: str, record: ReplyRecord, now: float) -> CallToolResult:
    """The result for a video's or an image's record."""
    media = record.media or {}
    if media.get("kind") == "image":
        return image_view(reply_id, record, now)
    elapsed = round(max(now - record.started, 0.0), 1) if record.status == "running" else None
    head: dict[str, Any] = {"status": record.status, "reply_id": reply_id}
    facts: dict[str, Any] = {
        "credits": _credits(media), "duration": media.get("duration"), "resolution": media.get("resolution"),
        "ratio": media.get("ratio"), "mode": media.get("mode"), "mode_derived": bool(media.get("mode_derived")),
        "model": record.model, "task_id": media.get("task_id"),
    }  # fmt: skip
    if record.status == "running":
        follow = f"call get_reply with reply_id {reply_id!r} to wait for the video"
        structured = {**head, "stage": media.get("stage"), "relay_status": media.get("relay_status"),
                      "elapsed_seconds": elapsed, **facts,
                      "next": follow + " (it keeps rendering meanwhile; cancel: true stops waiting for it, but the "
                              "relay cannot stop a video once submitted)."}  # fmt: skip
        text = (f"[{media_progress(record, elapsed or 0.0)}: the video is not ready yet (reply {reply_id}). "
                f"To collect it, {follow}; it keeps rendering meanwhile. {_what(record, media)}; credits "
                f"{_credits_words(media)}.]")  # fmt: skip
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
    if record.status != "complete":  # failed or cancelled: what happened and what was spent, first
        why = record.error or f"The video {record.status}."
        rest = [note for note in record.notes if note != why]
        failed = record.status == "failed"
        told = {"error": why, "notes": rest} if failed else {"notes": [why, *rest]}
        lines = [why, f"Asked: {_what(record, media)}; credits {_credits_words(media)}.", *rest]
        return CallToolResult(content=[TextContent(type="text", text="\n".join(lines))],
                              structured_content={**head, **told, **facts}, is_error=failed)  # fmt: skip
    path, url, cover_url = media.get("path"), media.get("video_url"), media.get("cover_url")
    structured = {**head, "path": path, "video_url": url, "cover_url": cover_url}
    if path is not None:
        structured["size_bytes"] = media.get("size_bytes")
    structured |= {"notes": list(record.notes), **facts}
    saved = f"Saved to {path} ({media.get('size_bytes', 0):,} bytes)." if path else "Not downloaded."
    if media.get("download_error"):
        structured["download_error"] = media["download_error"]
        saved = f"Not downloaded: {media['download_error']}"
    lines = [f"The video is ready (reply {reply_id}). {saved}", f"Video URL: {url}", f"Cover URL: {cover_url}",
             f"{_what(record, media)}; task {media.get('task_id')}.", f"Credits: {_credits_words(media)}.",
             *record.notes]  # fmt: skip
    if media.get("cover_error"):
        lines.append(f"The cover could not be shown: {media['cover_error']}")
    content: list[ContentBlock] = [TextContent(type="text", text="\n".join(lines))]
    if media.get("cover"):
        kind = media.get("cover_type") or "image/png"
        content.append(ImageContent(type="image", data=media["cover"], mime_type=kind))
    return CallToolResult(content=content, structured_content=structured)
