"""One generate_image request as a job a delegation runs: local references uploaded, the task
submitted on the relay's asynchronous route, polled until its images are ready, fail or the
deadline comes, then every image saved whole (atomically) and previewed; settled into a record
that carries the result.

Asynchronous because an image can take longer than a host waits (Claude Desktop ends a call at
about 60 s, whatever progress says), and a synchronous request held open past a gateway's
timeout would lose an image that was paid for. With the relay's log id in the record, the image
is collected by get_reply, by another replica sharing Redis, or by this server restarted on its
SQLite file, as a video is: what the two share (the lease, the settling) is ``MediaJob``'s.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._errors import InputError, RelayError
from ..media._download import Arriving, checked_while_saved, fetch, safe_filename
from ..media._images import MAX_PREVIEW_BYTES, ImageInfo, Preview, inspect_image, preview, sniffed_mime
from ..media._poll import poll_task
from ..media._results import GeneratedImage, ImageTaskStatus
from ..media._validate import PreparedImage, PreparedImageEdit
from ._media_job import MediaJob, text_or_none, uploaded_body
from ._record import ReplyRecord

__all__ = ["MAX_IMAGE_BYTES", "MAX_PREVIEW_TOTAL", "ImageAsk", "ImageJob"]

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # one generated image downloaded; a 4K PNG is about 25 MB
MAX_PREVIEW_TOTAL = 4_000_000  # encoded bytes of previews in one result: 4 × the 1 MB preview bound
# An image usually takes seconds to a minute: look soon, then every few seconds.
FIRST_LOOK, MAX_LOOK_GAP = 1.0, 5.0


@dataclass(frozen=True)
class ImageAsk:
    """What was asked, as the record keeps it: enough to finish the job in another process."""

    edit: bool
    size: str | None  # None: left to the relay
    quality: str | None
    price: Decimal | None  # the catalogue's, per image (no size given: the dearest size's); None: not listed
    save_to: str | None  # the folder the images go to; None: not kept on this machine (HTTP)
    notes: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        return {"edit": self.edit, "size": self.size, "quality": self.quality,
                "price": str(self.price) if self.price is not None else None, "save_to": self.save_to}  # fmt: skip

    @classmethod
    def from_media(cls, media: Mapping[str, Any], notes: list[str]) -> ImageAsk:
        price = media.get("price")
        return cls(edit=bool(media.get("edit")), size=text_or_none(media.get("size")),
                   quality=text_or_none(media.get("quality")),
                   price=Decimal(price) if isinstance(price, str) and price else None,
                   save_to=text_or_none(media.get("save_to")), notes=tuple(notes))  # fmt: skip


def _name(model: str, image: GeneratedImage, index: int, media_type: str | None) -> str:
    if image.url:
        from_url = safe_filename(urlsplit(image.url).path, media_type=media_type, default="")
        if from_url and "." in from_url:
            return from_url
    ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}.get(media_type or "")
    return safe_filename(f"{model}-{index + 1}.{ext or 'png'}")


@dataclass
class ImageJob(MediaJob[ImageAsk, PreparedImage | PreparedImageEdit]):
    """An image on its way."""

    KIND = "image"
    ASK = ImageAsk
    TOOL = "generate_image"
    RESUMED_STAGE = "generating"
    WORKING = "being made"
    PRICE_UNIT = " an image"
    GOES_ON = "it may still finish"

    kept: list[dict[str, Any]] = field(default_factory=list)  # each image saved (and previewed), as the record keeps it
    keep_error: str | None = None

    def _media(self) -> dict[str, Any]:
        return {**super()._media(), "images": list(self.kept),
                **({"keep_error": self.keep_error} if self.keep_error else {})}  # fmt: skip

    # --- the work -----------------------------------------------------------------------------

    async def _work(self) -> None:
        if self.task_id is None:
            if self.prepared is None:  # resumed before it was submitted: nothing to go on
                return
            body = await uploaded_body(self.media, self.uploads, self.prepared.body, asset_type="imageEdit",
                                       tool=self.TOOL, on_each=self._moved)  # fmt: skip
            self._moved("submitting")
            task = await self.media.submit_image_task(replace(self.prepared, body=body))
            self.task_id, self.relay_status = task.log_id, task.status
            await self.hold.count(self.ask.price, self.TOOL)  # the relay took it: the price is spent
            self._moved("generating")
        self.outcome = await poll_task(self.image_task, self.task_id, what="image", timeout=self._deadline_left(),
                                       first_delay=FIRST_LOOK, max_delay=MAX_LOOK_GAP)  # fmt: skip
        if self.outcome.state != "finished" or self.outcome.status is None:
            return
        self.points = self.outcome.status.points if self.outcome.status.points is not None else self.points
        self._moved("saving")
        await self._keep_all(self.outcome.status.images)
        self._moved("done")

    async def image_task(self, log_id: str) -> ImageTaskStatus:
        """One look at the task (``poll_task`` calls this), noted for other processes."""
        return await self._look(self.media.image_task, log_id)

    async def _keep_all(self, images: tuple[GeneratedImage, ...]) -> None:
        """Every image saved whole and checked to decode, each previewed while the previews fit in
        MAX_PREVIEW_TOTAL. The first that cannot be kept stops it: the record names it and the links."""
        room = MAX_PREVIEW_TOTAL
        for index, image in enumerate(images):
            try:
                kept, shown_bytes = await self._keep(image, index, room)
            except (InputError, RelayError) as exc:
                self.keep_error = f"image {index + 1} of {len(images)} could not be kept: {exc}"
                self.kept.extend({"url": i.url} for i in images[index:] if i.url)
                return
            room -= shown_bytes
            self.kept.append(kept)

    async def _keep(self, image: GeneratedImage, index: int, room: int) -> tuple[dict[str, Any], int]:
        """One image saved into the save folder (none: not saved), checked to decode, and
        previewed when ``room`` allows; with the preview's encoded size. A link's bytes decode on a
        worker thread as they arrive (a 5.5 MB PNG took 90 ms of CPU to decode: a link slower
        than about 60 MB/s hides it whole), and are then saved while the preview is made."""
        want_preview = room >= MAX_PREVIEW_BYTES

        def checked(data: Arriving) -> tuple[ImageInfo, Preview | None]:
            """Decoded once: the preview's decode checks the image too."""
            try:
                if want_preview:
                    shown = preview(data)
                    return shown.original, shown
                return inspect_image(data), None
            except InputError as exc:
                if image.data is None:
                    raise InputError(f"the file at the image's link does not decode as an image ({exc})") from None
                raise

        async def arrived(into: Arriving) -> tuple[bytes, str | None]:
            if image.data is not None:
                into.add(image.data)
                return image.data, None
            assert image.url is not None
            return await fetch(self.http, image.url, max_bytes=MAX_IMAGE_BYTES, key=self.key, into=into)

        folder = Path(self.ask.save_to) if self.ask.save_to else None
        with self._by_deadline("image"):
            data, (info, shown), saved = await checked_while_saved(
                arrived,
                checked,
                folder,
                lambda data, served: _name(self.model, image, index, sniffed_mime(data) or served),
            )
        kept: dict[str, Any] = {"path": str(saved.path.resolve()) if saved else None, "url": image.url,
                                "width": info.width, "height": info.height, "bytes": len(data),
                                "media_type": info.mime_type, "revised_prompt": image.revised_prompt}  # fmt: skip
        if shown is not None:
            kept |= {"preview": base64.b64encode(shown.data).decode(), "preview_type": shown.mime_type}
        else:
            kept["not_shown"] = (f"previews are limited to {MAX_PREVIEW_TOTAL:,} bytes per result; open the file "
                                 "or the link")  # fmt: skip
        return {k: v for k, v in kept.items() if v is not None}, len(shown.data) if shown is not None else 0

    def _finished(self, record: ReplyRecord, cancelled: bool) -> ReplyRecord | None:
        if self.stage != "done":  # stopped while saving: settled as a task still on its way
            return None
        if self.keep_error is None:
            record.status = "complete"
            return record
        saved = [i["path"] for i in self.kept if i.get("path")]
        also = f" Saved before the failure: {', '.join(saved)}." if saved else ""
        return self._failed(record, f"The image was made but {self.keep_error}.{also} Fix: download it from its "
                                    "link (in the result), or call generate_image again.", "input")  # fmt: skip
