"""What generate_image returns: every fact in both parts (where each file is, its link, size,
revised prompt, credits), and each image as an image block the host shows. Pure.

Codex drops an image block from a result with structured content and Gemini CLI shows only the
text, so the saved path and the link are the way to the exact file on every host; the preview
is for the hosts that show images. Previews count toward the result's size: at most
``MAX_PREVIEW_TOTAL`` encoded bytes of them in one result (four full-size previews); an image
past that is saved and linked but not shown, and the result says so.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from ..media._images import Preview
from ._budget import cut
from ._result import ordered

__all__ = ["MAX_PREVIEW_TOTAL", "MAX_REVISED_PROMPT", "ShownImage", "image_result"]

MAX_PREVIEW_TOTAL = 4_000_000  # encoded bytes of previews in one result: 4 × the 1 MB preview bound
MAX_REVISED_PROMPT = 2000  # weighted characters of a revised prompt shown (once per image, in both parts)


@dataclass(frozen=True)
class ShownImage:
    """One image of the result: where it was saved (None: not kept on this machine), its link,
    what it is, and its preview (None: not shown, see ``why_not_shown``)."""

    url: str | None
    path: str | None
    size_bytes: int
    media_type: str | None
    width: int | None
    height: int | None
    revised_prompt: str | None = None
    preview: Preview | None = field(default=None, repr=False)
    why_not_shown: str | None = None


def _describe(number: int, total: int, image: ShownImage) -> list[str]:
    head = f"Image {number} of {total}" if total > 1 else "Image"
    what = ", ".join(
        part
        for part in (
            f"{image.width}×{image.height}" if image.width and image.height else "",
            image.media_type or "",
            f"{image.size_bytes:,} bytes",
        )
        if part
    )
    lines = [f"{head}: saved to {image.path} ({what})." if image.path else f"{head} ({what}): not saved here."]
    lines.append(f"Link: {image.url}" if image.url else "Link: none (the relay returned the image's bytes only).")
    if image.revised_prompt:
        lines.append(f"Revised prompt: {cut(image.revised_prompt, MAX_REVISED_PROMPT)}")
    if image.preview is None and image.why_not_shown:
        lines.append(f"Not shown here: {image.why_not_shown}.")
    return lines


def image_result(
    images: Sequence[ShownImage], *, model: str, size: str | None, quality: str | None, credits: str | None,
    credits_note: str, notes: Sequence[str], edit: bool,
) -> CallToolResult:  # fmt: skip
    """The result of a generate_image call that made ``images``: text and image blocks, and the
    same facts as structured content (``status`` first)."""
    what = "edited" if edit else "generated"
    lines = [f"{len(images)} image{'s' * (len(images) != 1)} {what} by {model}" + (f" at {size}" if size else "")
             + (f", quality {quality}" if quality else "") + "."]  # fmt: skip
    for number, image in enumerate(images, 1):
        lines.extend(_describe(number, len(images), image))
    lines.append(credits_note)
    lines.extend(notes)
    content: list[ContentBlock] = [TextContent(type="text", text="\n".join(lines))]
    for image in images:
        if image.preview is not None:
            data = base64.b64encode(image.preview.data).decode()
            content.append(ImageContent(type="image", data=data, mime_type=image.preview.mime_type))
    listed = []
    for image in images:
        item = {
            "path": image.path,
            "url": image.url,
            "width": image.width,
            "height": image.height,
            "bytes": image.size_bytes,
            "media_type": image.media_type,
            "shown": image.preview is not None,
            "revised_prompt": cut(image.revised_prompt, MAX_REVISED_PROMPT) if image.revised_prompt else None,
        }
        if image.preview is None and image.why_not_shown:
            item["not_shown"] = image.why_not_shown
        listed.append({k: v for k, v in item.items() if v is not None})
    structured = {
        "status": "complete",
        "notes": [credits_note, *notes],
        "credits": credits,
        "model": model,
        "size": size,
        "quality": quality,
        "images": listed,
    }
    kept = {name: value for name, value in structured.items() if value is not None}
    return CallToolResult(content=content, structured_content=ordered(kept))
