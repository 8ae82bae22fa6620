"""Delegations: calls that outlive the MCP request that started them.

Each send_message call (a SendJob) and each generate_video call (a RenderJob) is a delegation
with a reply id from its start; both share this lifecycle through the ``Job`` protocol. The server owns it (a
task group opened with the server's lifespan), not the request: when the request stops waiting
and answers "still running", the call goes on, bounded by the deadline, until it completes,
fails, is cancelled (get_reply's ``cancel``, the host's stop while send_message still waits) or
the server drains. Its record is in the store once its id is handed out (a "running" answer, a
task); from then on, when the store is shared, about every second while the work moves on (other
processes answer for it; a long reply's less often, so that rewriting it costs no more than
SAVE_RATE characters a second however long it grows); and at the end, once, which its answer does
not wait for (this process answers for it until the store holds it). Before its id is handed out
no other process can ask for it: a call that ends within its wait is written once.

A job whose work outlives any one process (a video renders on the relay) can be *resumed*: a
process asked for a running record that no live process looks after (``resume`` says whether it
can, and builds the job) adopts it under the same id and runs it to the end, once the store has
let it claim the record (one atomic compare-and-set): of replicas that see the same stale record
at once, one runs the job.

Code outside an MCP request uses the same API: ``start``, ``read``, ``wait``, ``cancel``.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from .._errors import StoreUnavailableError
from ..store._memory import MemoryStore
from ..store._protocol import Store, new_reply_id
from ._drain import Drain
from ._record import ReplyRecord

__all__ = ["UNEXPECTED", "Delegation", "Delegations", "Job", "Resume"]

logger = logging.getLogger("aitoearn_mcp")

SAVE_EVERY = 1.0  # seconds between records of a running reply, for other processes (shared stores)
# Characters of running records written a second at most, per reply: a record of N characters waits
# N / SAVE_RATE seconds for the next, so a long reply's cost grows with its length, not its square.
SAVE_RATE = 50_000
CANCEL_POLL = 0.5  # seconds between checks for a cancel asked of another process
REMOTE_POLL = 0.5  # seconds between reads of a reply another process runs
CANCEL_WAIT = 5.0  # seconds a cancel waits for the reply to settle
SETTLE_WAIT = 15.0  # seconds the last record may take to store (a slow Redis must not hold shutdown)
STORE_AGAIN = 2.0  # seconds between writes of a last record the store did not take

OnRetry = Callable[[str], Awaitable[None]]

UNEXPECTED = "The server failed unexpectedly while handling this reply (see its log). Fix: send the request again."


class Job(Protocol):
    """What a delegation runs: a chat reply (SendJob) or a video render (RenderJob). ``run`` may
    be cancelled (the caller's cancel, a shutdown past its grace); ``settle`` always runs, on
    whatever ``run`` got to, and lets go of what the job held."""

    model: str

    @property
    def news(self) -> int:
        """Rises as the work moves on (characters received, relay polls made): a running record
        worth storing again for other processes."""
        ...

    def progress(self) -> tuple[int, str]:
        """Characters received so far and the latest of them (0 and "" for work without text)."""
        ...

    def running(self, started: float) -> ReplyRecord | None:
        """The running record now; None while nothing has started."""
        ...

    async def run(self, on_retry: OnRetry) -> None: ...

    def crashed(self, exc: Exception) -> None:
        """``run`` failed unexpectedly (a fault of ours): ``settle`` reports it."""
        ...

    async def settle(self, cancelled: bool) -> ReplyRecord | None:
        """The final record; None when cut before anything started. ``cancelled``: by the caller
        (otherwise the server stopped it: shutting down)."""
        ...


# Whether a running record found in the store can be taken over here, and the job that does it.
Resume = Callable[[ReplyRecord], Job | None]
Retag = Callable[[], Awaitable[str]]  # the caller's tag in the store (raises StoreUnavailableError)


class Delegation:
    """One call on its way or done. ``record`` is final once ``finished`` is set."""

    def __init__(
        self, reply_id: str, owner: str, job: Job, record: ReplyRecord | None = None, retag: Retag | None = None
    ) -> None:
        self.id = reply_id
        self.owner = owner
        # Started while the store did not answer: ``owner`` is a tag of this process's own until
        # ``retag`` gets the store's, at the first write that lands; the old one still finds it here.
        self.retag = retag
        self.former_owner: str | None = None
        # A resumable job's record as this process last wrote it to a shared store: each write
        # replaces only that one, so a process whose job another took over (its lease went stale
        # while it could not reach the store) finds out, and stops instead of doing it twice.
        self.written: str | None = None
        self.overtaken = False
        self.job = job
        now = time.time()
        self.record = record if record is not None else ReplyRecord("running", job.model, now, now)
        self.finished = anyio.Event()
        self.scope = anyio.CancelScope()
        self.cancelled = False  # asked to stop by the caller (not by a shutdown)
        self.retry_listeners: set[OnRetry] = set()
        self.stored = False  # a record of it is in the store
        self.handed_out = False  # its id is known outside this process: another may ask for it
        # Saves take turns: a running record written from a request must never land after the final one.
        self.saving = anyio.Lock()
        self.saved_news = 0  # the job's news when its running record was last written by the watcher
        self.last_save = time.monotonic()
        self.saved_chars = 0  # the size of the record last written

    def progress(self) -> tuple[int, str]:
        """Characters received so far and the latest of them."""
        if self.finished.is_set():
            return self.record.chars, self.record.text[-200:]
        return self.job.progress()

    def snapshot(self) -> ReplyRecord:
        """The record now: the final one, or the running one with what has arrived so far."""
        if self.finished.is_set():
            return self.record
        return self.job.running(self.record.started) or self.record

    def cancel(self) -> None:
        if not self.finished.is_set():
            self.cancelled = True
            self.scope.cancel()

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the end; True when it has ended."""
        with anyio.move_on_after(seconds):
            await self.finished.wait()
        return self.finished.is_set()

    async def _tell_retry(self, message: str) -> None:
        for listener in list(self.retry_listeners):
            with contextlib.suppress(Exception):  # a request that went away cannot be told
                await listener(message)


class Delegations:
    """The delegations of one server process, by reply id; finished ones are read from the store."""

    def __init__(self, store: Store, tasks: TaskGroup, drain: Drain | None = None) -> None:
        """``tasks``: where the delegations run, the server's lifespan's; when the server stops,
        it cancels them, cutting what still runs (partial text kept)."""
        self.store = store
        self.drain = drain
        self._live: dict[str, Delegation] = {}
        self._tasks = tasks
        # A memory store is this process's alone: no other process reads a running record or asks
        # for a cancel there, so the record is written at the start and the end only.
        self._shared = not isinstance(store, MemoryStore)
        self._watching = False  # the one watcher task of a shared store's running replies is on
        self.holder = secrets.token_hex(8)  # names this process in the resumable records it writes

    async def start(self, job: Job, owner: str, retag: Retag | None = None) -> Delegation:
        """Run ``job`` for ``owner``; with ``retag``, ``owner`` is provisional (see Delegation)."""
        delegation = Delegation(new_reply_id(), owner, job, retag=retag)
        self._launch(delegation)
        return delegation

    def _launch(self, delegation: Delegation) -> None:
        self._live[delegation.id] = delegation
        self._tasks.start_soon(self._run, delegation)

    def _handed_out(self, delegation: Delegation) -> None:
        """Another process may ask for ``delegation`` from now on: with a shared store, the watcher
        writes its record as it moves on and looks for cancels asked of it."""
        delegation.handed_out = True
        if self._shared and not self._watching:
            self._watching = True
            self._tasks.start_soon(self._watch)

    async def _take_over(
        self, reply_id: str, owner: str, job: Job, found: ReplyRecord, seen: str
    ) -> ReplyRecord | None:
        """Run ``job`` here for a running record no live process looks after (same id, same start),
        once the store says this process claimed it: of the processes (and requests) that read the
        same stale record, one runs it; the others read the record it claimed with."""
        delegation = Delegation(reply_id, owner, job, found)
        claim = delegation.snapshot()
        claim.updated = time.time()
        claim.media = {**(claim.media or {}), "holder": self.holder}
        if not await self.store.claim_reply(reply_id, owner, seen, written := claim.to_json()):
            return await self.read(reply_id, owner)
        delegation.stored, delegation.written = True, written
        self._launch(delegation)
        self._handed_out(delegation)
        logger.info("Reply %s: taken over by this process", reply_id)
        return delegation.snapshot()

    async def store_running(self, delegation: Delegation) -> bool:
        """Put the record in the store before its id is handed out, so another process (or this
        one, after a restart of the host) finds it; True once the store holds one."""
        self._handed_out(delegation)
        return await self._save(delegation, None)

    def live(self, reply_id: str, owner: str) -> Delegation | None:
        found = self._live.get(reply_id)
        if found is None:
            return None
        mine = hmac.compare_digest(found.owner, owner)
        return found if mine or (found.former_owner and hmac.compare_digest(found.former_owner, owner)) else None

    async def read(self, reply_id: str, owner: str, resume: Resume | None = None) -> ReplyRecord | None:
        """The record now; None when unknown, expired or another owner's. With ``resume``, a
        running record no process looks after is taken over here. Raises StoreUnavailableError
        when only the store could answer and it does not."""
        if (delegation := self.live(reply_id, owner)) is not None:
            return delegation.snapshot()
        raw = await self.store.load_reply(reply_id, owner)
        if raw is None:
            return None
        found = ReplyRecord.from_json(raw)
        if not found.done and resume is not None and (job := resume(found)) is not None:
            return await self._take_over(reply_id, owner, job, found, raw)
        return found

    async def wait(
        self, reply_id: str, owner: str, seconds: float, on_record: Callable[[ReplyRecord], None] | None = None,
        resume: Resume | None = None,
    ) -> ReplyRecord | None:  # fmt: skip
        """The record once it has ended, or after ``seconds``, whichever is first. ``on_record``
        sees each record read of a reply another process runs; ``resume`` as for ``read``."""
        deadline = time.monotonic() + seconds
        while True:  # another process runs it: its record in the store is the news
            if (delegation := self.live(reply_id, owner)) is not None:
                await delegation.wait(max(deadline - time.monotonic(), 0))
                return delegation.snapshot()
            found = await self.read(reply_id, owner, resume)
            if found is None or found.done or time.monotonic() >= deadline:
                return found
            if self.live(reply_id, owner) is not None:  # taken over just now
                continue
            if on_record is not None:
                on_record(found)
            await anyio.sleep(min(REMOTE_POLL, max(deadline - time.monotonic(), 0)))

    async def cancel(self, reply_id: str, owner: str, resume: Resume | None = None) -> ReplyRecord | None:
        """Stop the reply (within a second) and return its record: cancelled, or how it ended
        if it ended first. None when unknown or another owner's."""
        found = await self.read(reply_id, owner, resume)
        if (delegation := self.live(reply_id, owner)) is not None:
            delegation.cancel()
            await delegation.wait(CANCEL_WAIT)
            return delegation.snapshot()
        if found is None or found.done:
            return found
        if not await self.store.request_cancel(reply_id, owner):
            return None
        return await self.wait(reply_id, owner, CANCEL_WAIT)

    async def _run(self, delegation: Delegation) -> None:
        tracked = self.drain.track(delegation.scope) if self.drain else contextlib.nullcontext()
        try:
            with tracked:
                await self._send(delegation)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_WAIT):
                await self._settle(delegation)
            await self._store_final(delegation)

    @staticmethod
    async def _send(delegation: Delegation) -> None:
        with delegation.scope:
            try:
                await delegation.job.run(delegation._tell_retry)
            except Exception as exc:  # a fault of ours must fail this reply, not the server's other ones
                logger.exception("Reply %s: unexpected failure", delegation.id)
                delegation.job.crashed(exc)

    async def _settle(self, delegation: Delegation) -> None:
        job, started = delegation.job, delegation.record.started
        try:
            try:
                record = await job.settle(delegation.cancelled)
            except Exception:
                logger.exception("Reply %s: unexpected failure while settling it", delegation.id)
                record = job.running(started) or delegation.record  # what arrived is kept for the resource
                record.status, record.error, record.notes = "failed", UNEXPECTED, [UNEXPECTED]
            if record is not None:
                record.started = started
                delegation.record = record
            else:  # cut before anything started
                delegation.record.status = "cancelled" if delegation.cancelled else "failed"
        finally:
            # The answer does not wait for the write: until it is stored, this process answers for it.
            delegation.finished.set()
        if await self._save(delegation, delegation.record):  # the store answers for it from now on
            self._live.pop(delegation.id, None)

    async def _store_final(self, delegation: Delegation) -> None:
        """A final record the store did not take (it was down, or slow past SETTLE_WAIT) is written
        again until it is, as long as this server runs: other processes would otherwise find the
        reply running, or unknown, and one may take it over and do it again. Until then this
        process answers for it."""
        while delegation.id in self._live:
            await anyio.sleep(STORE_AGAIN)
            if await self._save(delegation, delegation.record):
                self._live.pop(delegation.id, None)

    async def _watch(self) -> None:
        """While replies whose ids are handed out run here and the store is shared: every
        CANCEL_POLL, stop those another process asked to (one store call for all), and write the
        record of each whose work moved on. One task for them all; a reply that ends within its
        wait costs nothing here."""
        try:
            while True:
                await anyio.sleep(CANCEL_POLL)
                running = [d for d in self._live.values() if d.handed_out and not d.finished.is_set()]
                if not running:
                    return  # the next hand-out starts it again
                try:
                    asked = await self.store.cancels_requested([delegation.id for delegation in running])
                except StoreUnavailableError:
                    asked = set()
                now = time.monotonic()
                due: list[Delegation] = []
                for delegation in running:
                    if delegation.id in asked:
                        delegation.cancel()
                    elif delegation.retag is not None or (
                        delegation.job.news != delegation.saved_news
                        and now - delegation.last_save >= max(SAVE_EVERY, delegation.saved_chars / SAVE_RATE)
                    ):
                        due.append(delegation)
                if due:
                    async with anyio.create_task_group() as saves:  # apart: a slow write delays no other
                        for delegation in due:
                            saves.start_soon(self._save_running, delegation)
        finally:
            self._watching = False

    async def _save_running(self, delegation: Delegation) -> None:
        if delegation.finished.is_set():  # ended meanwhile: its final record is on its way
            return
        delegation.saved_news, delegation.last_save = delegation.job.news, time.monotonic()
        try:
            await self._save(delegation, delegation.snapshot())
        except Exception:  # a fault of ours must not stop the watcher (or the server) for the others
            logger.exception("Reply %s: unexpected failure while storing its running record", delegation.id)

    async def _save(self, delegation: Delegation, record: ReplyRecord | None) -> bool:
        """Write ``record`` (no answer waits for it), or with None the running record unless one
        is stored already (its id is about to be handed out)."""
        later = record is not None
        async with delegation.saving:
            if record is None:
                if delegation.stored:
                    return True
                record = delegation.snapshot()
            if delegation.overtaken:
                return True  # the record is another process's now
            record.updated = time.time()
            try:
                if delegation.retag is not None:
                    owner = await delegation.retag()
                    delegation.former_owner, delegation.owner, delegation.retag = delegation.owner, owner, None
                if self._shared and record.media is not None:  # resumable: it can be taken over
                    record.media = {**record.media, "holder": self.holder}
                    await self._replace(delegation, written := record.to_json())
                else:
                    await self.store.save_reply(delegation.id, delegation.owner, written := record.to_json(),
                                                later=later)  # fmt: skip
            except StoreUnavailableError as exc:
                logger.warning("Reply %s: its record could not be stored (%s)", delegation.id, exc)
                return False
            delegation.stored, delegation.saved_chars = True, len(written)
            return True

    async def _replace(self, delegation: Delegation, written: str) -> None:
        """Write a resumable job's record over the one this process wrote last. Another record
        there means another process took the job over: this one stops it and leaves it to that
        one. No record (the store lost it, or none was written yet): it is written anew."""
        seen, reply_id, owner = delegation.written, delegation.id, delegation.owner
        if seen is None or not await self.store.claim_reply(reply_id, owner, seen, written):
            if seen is not None and self._held_elsewhere(await self.store.load_reply(reply_id, owner)):
                logger.warning("Reply %s: taken over by another process; this one stops it", reply_id)
                delegation.overtaken = True
                delegation.scope.cancel()
                self._live.pop(reply_id, None)
                return
            await self.store.save_reply(reply_id, owner, written)
        delegation.written = written

    def _held_elsewhere(self, raw: str | None) -> bool:
        """Whether a stored record names another process as the one that runs it (an older one of
        this process's own, which a store restarted from its disk may hold, does not)."""
        try:
            media = ReplyRecord.from_json(raw).media if raw is not None else None
        except (ValueError, TypeError):
            return False
        return isinstance(media, dict) and media.get("holder") not in (None, self.holder)
