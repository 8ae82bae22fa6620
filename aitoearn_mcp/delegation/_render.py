"""One generate_video request as a job a delegation runs: local references uploaded, the task
submitted, the relay polled with backoff until the video is done, fails or the deadline comes,
then the video saved and its cover previewed; settled into a record that carries the result.

The relay renders on its own, whatever happens to this process, and it has no cancel for a
video task. So the record keeps what any process needs to finish the job (the relay's task id,
the price, where to save, whether to download): a process that stops (a shutdown past its grace)
leaves the record running and marked as looked after by no one, and a process that stops without
a word stops refreshing ``alive_at``. Either way another process (a replica sharing Redis, the
same stdio server restarted on its SQLite file) takes it over with ``resume`` and completes it.

The daily cap (AITOEARN_MAX_CREDITS_PER_DAY): the caller reserves the catalogue's price before
anything is sent; once the relay takes the task the reservation becomes what it reported
(``points``), else stays the price; a video never submitted gives it back. The day's total rides
in the record, so a process that takes the video over shows it and counts nothing again.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import anyio
import anyio.to_thread
import httpx2
from pydantic import SecretStr

from .._errors import InputError, RelayError
from ..media._client import MediaClient
from ..media._download import Downloaded, download, fetch
from ..media._images import Preview, preview
from ..media._poll import PollOutcome, poll_task
from ..media._results import VideoStatus
from ..media._validate import PreparedVideo
from ._call import outcome_label
from ._daily import DailyHold
from ._delegation import UNEXPECTED
from ._record import ReplyRecord
from ._uploads import ALIVE_EVERY, LEASE, Upload, uploaded_body

__all__ = ["RenderJob", "VideoAsk"]

logger = logging.getLogger("aitoearn_mcp")

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
            resolution=_str(media.get("resolution")), ratio=_str(media.get("ratio")),
            duration=duration if isinstance(duration, int | float) and not isinstance(duration, bool) else None,
            price=Decimal(price) if isinstance(price, str) and price else None,
            save_to=_str(media.get("save_to")) if media.get("download") else None, notes=tuple(notes),
        )  # fmt: skip


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class RenderJob:
    """A video on its way. ``prepared`` and ``uploads``: the checked request and its local files
    (None and empty when resuming a task submitted elsewhere); ``deadline_at``: unix time past
    which polling stops (AITOEARN_DEADLINE from the start), None for none."""

    model: str
    media: MediaClient
    http: httpx2.AsyncClient
    key: SecretStr
    ask: VideoAsk
    deadline_at: float | None
    prepared: PreparedVideo | None = None
    uploads: list[Upload] = field(default_factory=list)
    task_id: str | None = None
    points: Decimal | None = None  # what the relay says it charged, when it says
    stage: str = "uploading"
    relay_status: str | None = None
    alive_at: float = field(default_factory=time.time)
    outcome: PollOutcome[VideoStatus] | None = None
    saved: Downloaded | None = None
    download_error: str | None = None
    cover: Preview | None = None
    cover_error: str | None = None
    error: RelayError | InputError | None = None
    crash: bool = False
    hold: DailyHold = field(default_factory=DailyHold)  # of today's cap (AITOEARN_MAX_CREDITS_PER_DAY)
    _news: int = 0

    @classmethod
    def resume(
        cls, record: ReplyRecord, *, media: MediaClient, http: httpx2.AsyncClient, key: SecretStr,
        deadline: float | None,
    ) -> RenderJob | None:  # fmt: skip
        """The job that finishes a running video no process looks after, or None (not a video,
        or its process is still at it)."""
        found = record.media
        if record.done or not found or found.get("kind") != "video":
            return None
        alive_at = found.get("alive_at")
        if isinstance(alive_at, int | float) and time.time() - alive_at < LEASE:
            return None
        job = cls(record.model, media, http, key, VideoAsk.from_media(found, record.notes),
                  record.started + deadline if deadline else None, task_id=_str(found.get("task_id")),
                  stage="rendering", relay_status=_str(found.get("relay_status")))  # fmt: skip
        points = found.get("points")
        job.points = Decimal(points) if isinstance(points, str) and points else None
        job.hold = DailyHold.counted(found)
        return job

    # --- what the delegation reads ------------------------------------------------------------

    @property
    def news(self) -> int:
        return self._news

    def progress(self) -> tuple[int, str]:
        return 0, ""  # no text: progress is told by stage and the relay's status (the record's media)

    def running(self, started: float) -> ReplyRecord:
        return ReplyRecord("running", self.model, started, time.time(), notes=list(self.ask.notes),
                           media=self._media())  # fmt: skip

    def _media(self) -> dict[str, Any]:
        status = self.outcome.status if self.outcome else None
        media: dict[str, Any] = {"kind": "video", "stage": self.stage, "task_id": self.task_id,
                                 "relay_status": self.relay_status, "alive_at": self.alive_at, **self.ask.fields(),
                                 "points": str(self.points) if self.points is not None else None}  # fmt: skip
        media |= self.hold.fields()
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

    def _moved(self, stage: str | None = None) -> None:
        if stage is not None:
            self.stage = stage
        self._news += 1

    # --- the work -----------------------------------------------------------------------------

    async def run(self, on_retry: Callable[[str], Awaitable[None]]) -> None:
        async with anyio.create_task_group() as beside:
            beside.start_soon(self._keep_alive)
            try:
                await self._work()
            except (RelayError, InputError) as exc:
                self.error = exc
            finally:
                beside.cancel_scope.cancel()

    async def _keep_alive(self) -> None:
        """Mark, while this process looks after the video, that it does: a mark older than
        LEASE lets another process take it over."""
        while True:
            self.alive_at = time.time()
            self._moved()
            await anyio.sleep(ALIVE_EVERY)

    async def _work(self) -> None:
        if self.task_id is None:
            if self.prepared is None:  # resumed before it was submitted: nothing to go on
                return
            body = await uploaded_body(self.media, self.uploads, self.prepared.body, asset_type="temp",
                                       tool="generate_video", on_each=self._moved)  # fmt: skip
            self._moved("submitting")
            task = await self.media.submit_video(replace(self.prepared, body=body))
            self.task_id, self.points, self.relay_status = task.id, task.points, task.status
            await self.hold.count(self.points if self.points is not None else self.ask.price, "generate_video")
            self._moved("rendering")
        timeout = self.deadline_at - time.time() if self.deadline_at is not None else float("inf")
        self.outcome = await poll_task(self.video_status, self.task_id, what="video", timeout=max(timeout, 0.0))
        if self.outcome.state != "finished" or self.outcome.status is None:
            return
        self._moved("downloading")
        await self._collect(self.outcome.status)
        self._moved("done")

    async def video_status(self, task_id: str) -> VideoStatus:
        """One look at the task (``poll_task`` calls this), noted for other processes."""
        status = await self.media.video_status(task_id)
        self.relay_status = status.status
        self._moved()
        return status

    async def _collect(self, status: VideoStatus) -> None:
        """The video saved (when asked) and its cover previewed. A failed download is told, not
        fatal: the video exists and was paid for, and its URL is in the result."""
        if self.ask.save_to is not None and status.video_url:
            try:
                self.saved = await download(self.http, status.video_url, self.ask.save_to,
                                            max_bytes=MAX_VIDEO_BYTES, key=self.key)  # fmt: skip
            except (RelayError, InputError) as exc:
                self.download_error = str(exc)
        if status.cover_url:
            try:
                data, _ = await fetch(self.http, status.cover_url, max_bytes=MAX_COVER_BYTES, key=self.key)
                shown = functools.partial(preview, data, max_side=COVER_SIDE, max_bytes=COVER_BYTES)
                self.cover = await anyio.to_thread.run_sync(shown)
            except (RelayError, InputError) as exc:
                self.cover_error = str(exc)

    def crashed(self, exc: Exception) -> None:
        self.crash = True

    # --- the end ------------------------------------------------------------------------------

    async def settle(self, cancelled: bool) -> ReplyRecord:
        try:
            # Never submitted: nothing was spent; submitted while the count was interrupted: count it.
            spent = None if self.task_id is None else self.points if self.points is not None else self.ask.price
            await self.hold.count(spent, "generate_video")
            return self._settled(cancelled)
        finally:
            for upload in self.uploads:
                with contextlib.suppress(OSError):
                    os.close(upload.fd)
            self.uploads = []

    def _settled(self, cancelled: bool) -> ReplyRecord:
        now = time.time()
        record = ReplyRecord("failed", self.model, now, now, notes=list(self.ask.notes), media=self._media())
        outcome = self.outcome
        if outcome is not None and outcome.state == "finished":
            record.status = "complete"
            if self.saved is None and self.ask.save_to is not None:
                why = self.download_error or ("stopped at your request" if cancelled else "stopped by the server")
                record.notes.append(f"The video was not saved ({why}); it is at its URL.")
            return record
        if outcome is not None and outcome.state == "failed":
            reason = outcome.status.error_message if outcome.status else None
            return self._failed(record, f"The video failed on the relay: {reason or 'no reason given'}.",
                                "video_failed")  # fmt: skip
        if outcome is not None:  # pending: the deadline came first
            seen = f" (last relay status: {self.relay_status})" if self.relay_status else ""
            return self._failed(record, f"The video was still rendering after {outcome.elapsed:.0f} s{seen} when the "
                                        "deadline (AITOEARN_DEADLINE) came, so this server stopped waiting; it may "
                                        f"still finish on the relay (task {self.task_id}).", "deadline")  # fmt: skip
        if self.error is not None:
            kind = outcome_label(self.error) if isinstance(self.error, RelayError) else "input"
            return self._failed(record, str(self.error), kind)
        if self.crash:
            return self._failed(record, UNEXPECTED, "unexpected")
        if cancelled:
            record.status = "cancelled"
            if self.task_id is None:
                note = "Cancelled at your request before the video was submitted: nothing was spent."
            else:
                note = (f"Stopped waiting for video task {self.task_id} at your request. The relay has no cancel "
                        f"for a video task: it may go on rendering, and its credits ({self._credits()}) may be "
                        "spent.")  # fmt: skip
            record.error, record.notes = note, [note, *record.notes]
            return record
        if self.task_id is not None:  # the server stops: another process, or this one restarted, finishes it
            record.status = "running"
            record.media = {**self._media(), "alive_at": 0}
            return record
        if self.prepared is None:
            return self._failed(record, "The server that was sending this video stopped before it was submitted. "
                                        "Fix: call generate_video again.", "stopped")  # fmt: skip
        return self._failed(record, "The server stopped before the video was submitted. Fix: call generate_video "
                                    "again.", "stopped")  # fmt: skip

    def _failed(self, record: ReplyRecord, what: str, kind: str) -> ReplyRecord:
        spent = (f"Submitted as task {self.task_id}, so credits may have been spent ({self._credits()}); whether "
                 "a failed video is refunded is up to AiToEarn." if self.task_id else "Nothing was spent: the video "
                 "was not submitted.")  # fmt: skip
        record.status, record.error_kind = "failed", kind
        record.error = f"{what} {spent}"
        record.notes = [record.error, *record.notes]
        return record

    def _credits(self) -> str:
        known = []
        if self.points is not None:
            known.append(f"the relay reported {self.points} credits")
        if self.ask.price is not None:
            known.append(f"the catalogue's price is {self.ask.price} credits")
        return "; ".join(known) or "the catalogue lists no price for it"
