"""One generate_video request as a job a delegation runs: local references uploaded, the task
submitted, the relay polled with backoff until the video is done, fails or the deadline comes,
then the video saved and its cover previewed; settled into a record that carries the result.
What it shares with an image (the lease another process takes it over by, the settling) is
``MediaJob``'s.

The daily cap (AITOEARN_MAX_CREDITS_PER_DAY): the caller reserves the catalogue's price before
anything is sent; once the relay takes the task the reservation becomes what it reported
(``points``), else stays the price; a video never submitted gives it back. The day's total rides
in the record, so a process that takes the video over shows it and counts nothing again.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import anyio.to_thread

from .._errors import InputError, RelayError
from ..media._download import Downloaded, download, fetch
from ..media._images import Preview, preview
from ..media._poll import poll_task
from ..media._results import VideoStatus
from ..media._validate import PreparedVideo
from ._media_job import MediaJob, text_or_none, uploaded_body
from ._record import ReplyRecord

__all__ = ["RenderJob", "VideoAsk"]

MAX_VIDEO_BYTES = 2 * 1024**3  # a generated video is seconds long: far past any real one, inside any disk
MAX_COVER_BYTES = 20 * 1024**2
COVER_SIDE = 768  # the cover shown in the result: enough to judge the shot, small enough to keep in the record
COVER_BYTES = 256_000


@dataclass(frozen=True)
class VideoAsk:
    """What was asked, as the record keeps it: enough to finish the job in another process."""

    mode: str
    mode_derived: bool
    resolution: str | None
    ratio: str | None
    duration: float | None
    price: Decimal | None  # the catalogue's, None: not listed
    save_to: str | None  # the folder the video goes to; None: not downloaded
    notes: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        return {"mode": self.mode, "mode_derived": self.mode_derived, "resolution": self.resolution,
                "ratio": self.ratio, "duration": self.duration,
                "price": str(self.price) if self.price is not None else None, "save_to": self.save_to,
                "download": self.save_to is not None}  # fmt: skip

    @classmethod
    def from_media(cls, media: Mapping[str, Any], notes: list[str]) -> VideoAsk:
        price = media.get("price")
        duration = media.get("duration")
        return cls(
            mode=str(media.get("mode") or ""), mode_derived=bool(media.get("mode_derived")),
            resolution=text_or_none(media.get("resolution")), ratio=text_or_none(media.get("ratio")),
            duration=duration if isinstance(duration, int | float) and not isinstance(duration, bool) else None,
            price=Decimal(price) if isinstance(price, str) and price else None,
            save_to=text_or_none(media.get("save_to")) if media.get("download") else None, notes=tuple(notes),
        )  # fmt: skip


@dataclass
class RenderJob(MediaJob[VideoAsk, PreparedVideo]):
    """A video on its way."""

    KIND = "video"
    ASK = VideoAsk
    TOOL = "generate_video"
    RESUMED_STAGE = "rendering"
    WORKING = "rendering"
    PRICE_UNIT = ""
    GOES_ON = "it may go on rendering"

    saved: Downloaded | None = None
    download_error: str | None = None
    cover: Preview | None = None
    cover_error: str | None = None

    def _media(self) -> dict[str, Any]:
        media = super()._media()
        status = self.outcome.status if self.outcome else None
        if status is not None:
            media |= {"video_url": status.video_url, "cover_url": status.cover_url}
        if self.saved is not None:
            media |= {"path": str(self.saved.path.resolve()), "size_bytes": self.saved.size}
        if self.download_error:
            media["download_error"] = self.download_error
        if self.cover is not None:
            media |= {"cover": base64.b64encode(self.cover.data).decode(), "cover_type": self.cover.mime_type}
        elif self.cover_error:
            media["cover_error"] = self.cover_error
        return media

    # --- the work -----------------------------------------------------------------------------

    async def _work(self) -> None:
        if self.task_id is None:
            if self.prepared is None:  # resumed before it was submitted: nothing to go on
                return
            body = await uploaded_body(self.media, self.uploads, self.prepared.body, asset_type="temp",
                                       tool=self.TOOL, on_each=self._moved)  # fmt: skip
            self._moved("submitting")
            task = await self.media.submit_video(replace(self.prepared, body=body))
            self.task_id, self.points, self.relay_status = task.id, task.points, task.status
            await self.hold.count(self.points if self.points is not None else self.ask.price, self.TOOL)
            self._moved("rendering")
        self.outcome = await poll_task(self.video_status, self.task_id, what="video", timeout=self._deadline_left())
        if self.outcome.state != "finished" or self.outcome.status is None:
            return
        self._moved("downloading")
        await self._collect(self.outcome.status)
        self._moved("done")

    async def video_status(self, task_id: str) -> VideoStatus:
        """One look at the task (``poll_task`` calls this), noted for other processes."""
        return await self._look(self.media.video_status, task_id)

    async def _collect(self, status: VideoStatus) -> None:
        """The cover previewed, then the video saved (when asked), both by the deadline. A failed
        download is told, not fatal: the video exists and was paid for, and its URL is in the
        result. The cover comes first: it is small, and shows the video even when the download
        does not finish."""
        if status.cover_url:
            try:
                with self._by_deadline("cover"):
                    data, _ = await fetch(self.http, status.cover_url, max_bytes=MAX_COVER_BYTES, key=self.key)
                shown = functools.partial(preview, data, max_side=COVER_SIDE, max_bytes=COVER_BYTES)
                self.cover = await anyio.to_thread.run_sync(shown)
            except (RelayError, InputError) as exc:
                self.cover_error = str(exc)
        if self.ask.save_to is not None and status.video_url:
            try:
                with self._by_deadline("video"):
                    self.saved = await download(self.http, status.video_url, self.ask.save_to,
                                                max_bytes=MAX_VIDEO_BYTES, key=self.key)  # fmt: skip
            except (RelayError, InputError) as exc:
                self.download_error = str(exc)

    def _finished(self, record: ReplyRecord, cancelled: bool) -> ReplyRecord:
        record.status = "complete"
        if self.saved is None and self.ask.save_to is not None:
            why = self.download_error or ("stopped at your request" if cancelled else "stopped by the server")
            record.notes.append(f"The video was not saved ({why}); it is at its URL.")
        return record
