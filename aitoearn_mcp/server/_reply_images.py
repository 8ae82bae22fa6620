"""A reply's saved images shown to the host: a preview of each (long side at most 1,568 px, at
most 1.15 megapixels and 1 MB) added to the result as an image content block, made from the saved file when the
result is read (the record and the store keep only its path, never the image data).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from .._errors import InputError
from ..delegation._images import saved_images
from ..delegation._record import ReplyRecord

__all__ = ["with_previews"]


def _read(reference: Mapping[str, Any]) -> bytes:
    """The saved file, if it is still the one saved: same size (a file swapped for a huge one is
    not read)."""
    path = str(reference.get("path"))
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size != reference.get("bytes"):
            raise InputError(f"it is no longer the file saved ({size:,} bytes, not {reference.get('bytes'):,})")
        return file.read(size)


def _image(reference: Mapping[str, Any]) -> ImageContent:
    from ..media._images import preview  # here: Pillow loads with the first image

    shown = preview(_read(reference))
    return ImageContent(type="image", data=base64.b64encode(shown.data).decode("ascii"), mime_type=shown.mime_type)


async def with_previews(result: CallToolResult, record: ReplyRecord, offset: int) -> CallToolResult:
    """``result`` with a preview of each image the record's reply saved (its first page only)."""
    references = saved_images(record.message) if offset == 0 and record.done else []
    if not references:
        return result
    added: list[ContentBlock] = []
    for reference in references:
        try:
            added.append(await anyio.to_thread.run_sync(_image, reference))
        except (InputError, OSError) as exc:  # the file went or changed since: the path is still named
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            added.append(TextContent(type="text", text=f"[Saved image {reference.get('path')} cannot be shown: "
                                                        f"{reason}.]"))  # fmt: skip
    return result.model_copy(update={"content": [*result.content, *added]})
