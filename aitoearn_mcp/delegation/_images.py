"""Images in a reply: each saved whole to the user's cache folder and replaced, in the Message
the record and the structured content keep, by a reference to that file.

A reply's images arrive as ``image`` blocks (base64 or url source; every route's fold makes
them), or, from a model whose catalogue entry outputs images, as links in its text (a markdown
image or a bare image URL: the relay re-hosts inline images as links). Each is checked by
decoding it (a damaged or oversized one is named in a note, never saved) and saved atomically
(``save_bytes``; a link is fetched with ``fetch``: size-bounded, no key sent to that host,
decoded as it arrives).
The block becomes ``{"type": "image", "source": {"type": "saved", "path", "media_type",
"width", "height", "bytes", "url"?}}``, so no base64 data reaches the store or a result's
structured content; the host is shown a preview made from the file (server/_images.py).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx2
from pydantic import SecretStr

from .._errors import InputError, RelayError
from .._paths import cache_dir, private_dir
from ..media._download import Arriving, Downloaded, checked_while_saved, fetch, save_bytes

__all__ = [
    "MAX_LINKED_IMAGES",
    "KeptImages",
    "image_folder",
    "keep_images",
    "reply_stem",
    "saved_images",
    "stored_block",
]

MAX_LINKED_IMAGES = 8  # links fetched from one reply's text: more is a page of links, not images
# A markdown image, or a bare https URL whose path ends in an image extension.
_LINKS = re.compile(r"!\[[^\]]*\]\(\s*<?(https?://[^\s)>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
                    r"|(?<![(<\w])(https?://[^\s)<>\"']+?\.(?:png|jpe?g|webp|gif)(?:\?[^\s)<>\"']*)?)(?=[\s)<>\"',.;]|$)",
                    re.IGNORECASE)  # fmt: skip


@dataclass(frozen=True)
class KeptImages:
    message: dict[str, Any]  # the Message with references instead of image data
    notes: list[str]  # one per image: where it is, or why it is not


def image_folder() -> Path:
    """The user's cache folder for reply images, private (0700, the user's own)."""
    return private_dir(cache_dir() / "images")


def saved_images(message: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The references (``source``) of the images a Message's content holds as saved files."""
    content = message.get("content") if message else None
    sources = [block.get("source") for block in content if isinstance(block, Mapping)] if isinstance(
        content, list) else []  # fmt: skip
    return [dict(source) for source in sources if isinstance(source, Mapping) and source.get("type") == "saved"]


def stored_block(block: Mapping[str, Any]) -> dict[str, Any]:
    """A reply block as a conversation keeps it: a saved image as a text line naming the file (a
    later turn replays it as text; send the file again to have a model look at it)."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, Mapping) else None
    if block.get("type") != "image" or not isinstance(source, Mapping) or kind not in ("saved", "unsaved"):
        return dict(block)
    if source.get("type") == "unsaved":
        return {"type": "text", "text": f"[An image the reply held could not be saved: {source.get('error')}]"}
    return {"type": "text", "text": f"[Image saved to {source.get('path')} ({_describe(source)})]"}


def _describe(source: Mapping[str, Any]) -> str:
    return f"{source.get('media_type')}, {source.get('width')}×{source.get('height')}, {source.get('bytes'):,} bytes"


def _links(text: str) -> list[str]:
    return [m.group(1) or m.group(2) for m in _LINKS.finditer(text)]


async def keep_images(
    message: dict[str, Any], *, outputs_images: bool, http: httpx2.AsyncClient, key: SecretStr, max_bytes: int,
    stem: str, fetch: bool = True,
) -> KeptImages:  # fmt: skip
    """Save every image of ``message`` (and, when the model ``outputs_images``, the images its text
    links to) as ``stem-N.ext``; ``max_bytes`` bounds each one. Without ``fetch`` nothing is
    downloaded (a call that ended early, or whose images were kept already): base64 images are
    saved, hosted ones referenced by their link."""
    content = message.get("content")
    blocks: list[Any] = list(content) if isinstance(content, list) else []
    found = [i for i, b in enumerate(blocks) if isinstance(b, Mapping) and b.get("type") == "image"
             and isinstance(b.get("source"), Mapping) and b["source"].get("type") in ("base64", "url")]  # fmt: skip
    linked: list[str] = []
    if outputs_images and fetch:
        texts = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, Mapping) and b.get("type") == "text")
        linked = list(dict.fromkeys(_links(texts)))[:MAX_LINKED_IMAGES]
    if not found and not linked:
        return KeptImages(message, [])
    saver = _Saver(http, key, max_bytes, stem, fetch)
    for index in found:
        blocks[index] = await saver.block(blocks[index]["source"])
    blocks += [await saver.block({"type": "url", "url": url}) for url in linked]
    return KeptImages({**message, "content": blocks}, saver.notes)


class _Saver:
    def __init__(self, http: httpx2.AsyncClient, key: SecretStr, max_bytes: int, stem: str, fetch: bool) -> None:
        self.http, self.key, self.max_bytes, self.stem, self.fetch = http, key, max_bytes, stem, fetch
        self.notes: list[str] = []
        self.folder: Path | None = None

    async def block(self, source: Mapping[str, Any]) -> dict[str, Any]:
        number = len(self.notes) + 1
        url = str(source.get("url", "")) if source.get("type") == "url" else None
        if url and not self.fetch:
            self.notes.append(f"[Image {number} was not fetched (the call ended early); its link: {url}]")
            return {"type": "image", "source": {"type": "unsaved", "error": "not fetched", "url": url}}
        try:
            saved, width, height = await self._save(source, url, f"{self.stem}-{number}")
        except (InputError, RelayError, OSError) as exc:
            reason = str(exc) if not isinstance(exc, OSError) else f"the file could not be written ({exc.strerror})"
            where = f" from {url}" if url else ""
            self.notes.append(f"[Image {number}{where} was not saved: {reason}. Nothing was written for it.]")
            unsaved: dict[str, Any] = {"type": "unsaved", "error": reason}
            if url:
                unsaved["url"] = url
            return {"type": "image", "source": unsaved}
        reference = {"type": "saved", "path": str(saved.path), "media_type": saved.media_type,
                     "width": width, "height": height, "bytes": saved.size}  # fmt: skip
        if url:
            reference["url"] = url
        link = f"; its link: {url}" if url else ""
        self.notes.append(f"[Image {number}: saved to {saved.path} ({_describe(reference)}){link}.]")
        return {"type": "image", "source": reference}

    async def _save(self, source: Mapping[str, Any], url: str | None, name: str) -> tuple[Downloaded, int, int]:
        from ..media._images import inspect_image  # here: Pillow loads with the first image

        if self.folder is None:
            self.folder = await anyio.to_thread.run_sync(image_folder)
        if url is None:
            data = _decode(source, self.max_bytes)
            info = await anyio.to_thread.run_sync(inspect_image, data)
            media_type = info.mime_type or str(source.get("media_type"))
            return await save_bytes(data, self.folder, name, media_type=media_type), info.width, info.height

        async def arrived(into: Arriving) -> tuple[bytes, str | None]:
            return await fetch(self.http, url, max_bytes=self.max_bytes, key=self.key, into=into)

        # Checked as it arrives, then saved; not an image: nothing is left of it.
        _, info, done = await checked_while_saved(arrived, inspect_image, self.folder, lambda data, served: name)
        assert done is not None  # a folder was given
        return Downloaded(done.path, done.size, info.mime_type or done.media_type), info.width, info.height


def _decode(source: Mapping[str, Any], max_bytes: int) -> bytes:
    data = str(source.get("data", ""))
    if len(data) * 3 // 4 > max_bytes:
        raise InputError(f"it is over the limit of {max_bytes:,} bytes (AITOEARN_MAX_REPLY_BYTES)")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("its data is not valid base64") from None


def reply_stem(model: str) -> str:
    """A file name stem for a reply's images: the model (no dots: the extension follows) and the
    time, in the user's zone."""
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '-', model)[:60]}-{time.strftime('%Y%m%d-%H%M%S')}"
