"""What an image job and a video job share: a relay task submitted from a checked request (its
local references uploaded first), looked at until it ends, kept in the record so another
process can finish it, and settled into a record that says what was spent.

The relay works on a task whatever happens to this process, and it has no cancel for one. So the
record keeps what any process needs to finish the job (the relay's task id, the price, where to
save): a process that stops (a shutdown past its grace) leaves the record running and marked as
looked after by no one, and a process that stops without a word stops refreshing ``alive_at``.
Either way another process (a replica sharing Redis, the same stdio server restarted on its
SQLite file) takes it over with ``resume`` and completes it.

A checked request names each local file by a placeholder URL until its upload gives the real one
(``uploaded_body``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import anyio
import httpx2
from pydantic import SecretStr

from .._errors import AuthError, CreditsError, InputError, RelayError, RelayTimeoutError, UnavailableError
from ..media._client import MediaClient
from ..media._poll import PollOutcome, TaskLook
from ._call import outcome_label
from ._daily import DailyHold
from ._delegation import UNEXPECTED
from ._record import ReplyRecord

__all__ = ["ALIVE_EVERY", "LEASE", "MediaJob", "Upload", "uploaded_body"]

ALIVE_EVERY = 10.0  # seconds between marks that this process still looks after a media job
LEASE = 30.0  # a running media job whose mark is older than this is looked after by no one: take it over
BAD_LOOKS = 5  # answers in a row that are not the relay's word on a task before a job gives up on it


@dataclass(frozen=True)
class Upload:
    """A local reference, opened and checked by the caller: ``placeholder`` stands for it in the
    checked request until the upload gives its URL. The job closes ``fd``."""

    placeholder: str
    fd: int
    name: str
    size: int  # as checked when it was opened


async def uploaded_body(
    media: MediaClient, uploads: list[Upload], body: dict[str, Any], *, asset_type: str, tool: str,
    on_each: Callable[[], None],
) -> dict[str, Any]:  # fmt: skip
    """``body`` with each local file's placeholder replaced by the URL its upload gave."""
    urls: dict[str, str] = {}
    for upload in uploads:
        if os.fstat(upload.fd).st_size != upload.size:  # the bound was checked on that size
            raise InputError(f"{upload.name!r} changed after it was checked ({upload.size:,} bytes then); "
                             f"fix: call {tool} again once nothing is writing to it")  # fmt: skip
        asset = await media.upload(upload.fd, upload.name, asset_type=asset_type)
        urls[upload.placeholder] = asset.url
        on_each()
    return {name: [urls.get(v, v) for v in value] if isinstance(value, list) else urls.get(value, value)
            for name, value in body.items()}  # fmt: skip


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class MediaAsk(Protocol):
    """What was asked, as the record keeps it (``fields``): enough to finish the job elsewhere."""

    @property
    def price(self) -> Decimal | None: ...
    @property
    def notes(self) -> tuple[str, ...]: ...
    def fields(self) -> dict[str, Any]: ...
    @classmethod
    def from_media(cls, media: Mapping[str, Any], notes: list[str]) -> Self: ...


AskT = TypeVar("AskT", bound=MediaAsk)
PreparedT = TypeVar("PreparedT")
LookT = TypeVar("LookT", bound=TaskLook)


@dataclass
class MediaJob(Generic[AskT, PreparedT]):
    """A relay task on its way. ``prepared`` and ``uploads``: the checked request and its local
    files (None and empty when resuming a task submitted elsewhere); ``deadline_at``: unix time past which looking stops
    (AITOEARN_DEADLINE from the start), None for none. A subclass says what it makes (``KIND``,
    ``TOOL``), does the work (``_work``), adds its own facts to the record (``_media``) and
    settles a finished task (``_finished``)."""

    KIND: ClassVar[str]  # "image" or "video": the record's media kind, and the word in messages
    ASK: ClassVar[type[MediaAsk]]  # what the record's media gives back as ``ask``
    TOOL: ClassVar[str]
    RESUMED_STAGE: ClassVar[str]  # the stage of a job taken over from its record
    WORKING: ClassVar[str]  # what the relay is doing while it runs: "rendering", "being made"
    PRICE_UNIT: ClassVar[str]  # what the catalogue's price is for: "" (the whole task), " an image"
    GOES_ON: ClassVar[str]  # what a submitted task may do once this server stops waiting for it

    model: str
    media: MediaClient
    http: httpx2.AsyncClient
    key: SecretStr
    ask: AskT
    deadline_at: float | None
    prepared: PreparedT | None = None
    uploads: list[Upload] = field(default_factory=list)
    task_id: str | None = None
    points: Decimal | None = None  # what the relay says it charged, when it says
    stage: str = "uploading"
    relay_status: str | None = None
    alive_at: float = field(default_factory=time.time)
    outcome: PollOutcome[Any] | None = None
    error: RelayError | InputError | None = None
    crash: bool = False
    hold: DailyHold = field(default_factory=DailyHold)  # of today's cap (AITOEARN_MAX_CREDITS_PER_DAY)
    _news: int = 0
    _bad_looks: int = 0  # in a row

    @classmethod
    def resume(
        cls, record: ReplyRecord, *, media: MediaClient, http: httpx2.AsyncClient, key: SecretStr,
        deadline: float | None,
    ) -> Self | None:  # fmt: skip
        """The job that finishes a running task of this kind no process looks after, or None (not
        this kind, or its process is still at it). What the record says was charged and counted
        already comes with it."""
        found = record.media
        if record.done or not found or found.get("kind") != cls.KIND:
            return None
        alive_at = found.get("alive_at")
        if isinstance(alive_at, int | float) and time.time() - alive_at < LEASE:
            return None
        ask: Any = cls.ASK.from_media(found, record.notes)
        job = cls(record.model, media, http, key, ask, record.started + deadline if deadline else None,
                  task_id=text_or_none(found.get("task_id")), stage=cls.RESUMED_STAGE,
                  relay_status=text_or_none(found.get("relay_status")))  # fmt: skip
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
        return {"kind": self.KIND, "stage": self.stage, "task_id": self.task_id, "relay_status": self.relay_status,
                "alive_at": self.alive_at, **self.ask.fields(),
                "points": str(self.points) if self.points is not None else None, **self.hold.fields()}  # fmt: skip

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
        """Mark, while this process looks after the job, that it does: a mark older than LEASE
        lets another process take it over."""
        while True:
            self.alive_at = time.time()
            self._moved()
            await anyio.sleep(ALIVE_EVERY)

    async def _work(self) -> None:
        raise NotImplementedError

    async def _look(self, look: Callable[[str], Awaitable[LookT]], task_id: str) -> LookT:
        """One look at the task, noted for other processes. The relay took the task (it is paid
        for), so an answer that is not the relay's word on it (a proxy's page, a cut-off body, a
        shape it never sends) is passing: polling goes on, unless BAD_LOOKS come in a row. What
        the relay itself says (an unknown task id, the key refused) still ends the job."""
        try:
            status = await look(task_id)
        except RelayError as exc:
            said = exc.code is not None and exc.code != exc.status  # the relay's own code, not an HTTP status
            if exc.retryable or said or isinstance(exc, AuthError | CreditsError):
                raise
            self._bad_looks += 1
            if self._bad_looks >= BAD_LOOKS:
                raise
            raise UnavailableError(exc.what, fix=exc.fix, detail=exc.detail, status=exc.status, code=exc.code,
                                   request_id=exc.request_id) from exc  # fmt: skip
        self._bad_looks = 0
        self.relay_status = status.status
        self._moved()
        return status

    def _deadline_left(self) -> float:
        return max(self.deadline_at - time.time(), 0.0) if self.deadline_at is not None else float("inf")

    @contextlib.contextmanager
    def _by_deadline(self, what: str) -> Iterator[None]:
        """A download bounded by the job's deadline too: the read timeout alone lets a peer that
        sends a byte now and then hold it for hours."""
        left = self._deadline_left()
        try:
            with anyio.fail_after(left if math.isfinite(left) else None):
                yield
        except TimeoutError:
            raise RelayTimeoutError(f"Could not download the {what}: the deadline (AITOEARN_DEADLINE) came first",
                                    fix="open its link instead (in the result)") from None  # fmt: skip

    def crashed(self, exc: Exception) -> None:
        self.crash = True

    # --- the end ------------------------------------------------------------------------------

    async def settle(self, cancelled: bool) -> ReplyRecord:
        try:
            # Never submitted: nothing was spent; submitted while the count was interrupted: count it.
            spent = None if self.task_id is None else self.points if self.points is not None else self.ask.price
            await self.hold.count(spent, self.TOOL)
            return self._settled(cancelled)
        finally:
            for upload in self.uploads:
                with contextlib.suppress(OSError):
                    os.close(upload.fd)
            self.uploads = []

    def _finished(self, record: ReplyRecord, cancelled: bool) -> ReplyRecord | None:
        """The record of a task the relay finished; None: settle it as one still on its way (its
        results not all kept yet)."""
        raise NotImplementedError

    def _settled(self, cancelled: bool) -> ReplyRecord:
        now = time.time()
        record = ReplyRecord("failed", self.model, now, now, notes=list(self.ask.notes), media=self._media())
        outcome, kind = self.outcome, self.KIND
        if outcome is not None and outcome.state == "finished" and (done := self._finished(record, cancelled)):
            return done
        if outcome is not None and outcome.state == "failed":
            reason = outcome.status.error_message if outcome.status else None
            return self._failed(record, f"The {kind} failed on the relay: {reason or 'no reason given'}.",
                                f"{kind}_failed")  # fmt: skip
        if outcome is not None:  # pending: the deadline came first
            seen = f" (last relay status: {self.relay_status})" if self.relay_status else ""
            return self._failed(record, f"The {kind} was still {self.WORKING} after {outcome.elapsed:.0f} s{seen} when "
                                        "the deadline (AITOEARN_DEADLINE) came, so this server stopped waiting; it may "
                                        f"still finish on the relay (task {self.task_id}).", "deadline")  # fmt: skip
        if self.error is not None:
            label = outcome_label(self.error) if isinstance(self.error, RelayError) else "input"
            return self._failed(record, str(self.error), label)
        if self.crash:
            return self._failed(record, UNEXPECTED, "unexpected")
        if cancelled:
            record.status = "cancelled"
            if self.task_id is None:
                note = f"Cancelled at your request before the {kind} was submitted: nothing was spent."
            else:
                note = (f"Stopped waiting for {kind} task {self.task_id} at your request. The relay has no cancel "
                        f"for {'an' if kind[0] in 'aeiou' else 'a'} {kind} task: {self.GOES_ON}, and "
                        f"its credits ({self._credits()}) may be spent.")  # fmt: skip
            record.error, record.notes = note, [note, *record.notes]
            return record
        if self.task_id is not None:  # the server stops: another process, or this one restarted, finishes it
            record.status = "running"
            record.media = {**self._media(), "alive_at": 0}
            return record
        if self.prepared is None:
            return self._failed(record, f"The server that was sending this {kind} stopped before it was submitted. "
                                        f"Fix: call {self.TOOL} again.", "stopped")  # fmt: skip
        return self._failed(record, f"The server stopped before the {kind} was submitted. Fix: call {self.TOOL} "
                                    "again.", "stopped")  # fmt: skip

    def _failed(self, record: ReplyRecord, what: str, kind: str) -> ReplyRecord:
        if self.outcome is not None and self.outcome.state == "finished":
            spent = f"Credits were spent ({self._credits()})."
        elif self.task_id:
            spent = (f"Submitted as task {self.task_id}, so credits may have been spent ({self._credits()}); whether "
                     f"a failed {self.KIND} is refunded is up to AiToEarn.")  # fmt: skip
        else:
            spent = f"Nothing was spent: the {self.KIND} was not submitted."
        record.status, record.error_kind = "failed", kind
        record.error = f"{what} {spent}"
        record.notes = [record.error, *record.notes]
        return record

    def _credits(self) -> str:
        known = []
        if self.points is not None:
            known.append(f"the relay reported {self.points} credits")
        if self.ask.price is not None:
            known.append(f"the catalogue's price is {self.ask.price} credits{self.PRICE_UNIT}")
        return "; ".join(known) or "the catalogue lists no price for it"
