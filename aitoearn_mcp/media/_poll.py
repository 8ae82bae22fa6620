"""Waiting for a video: poll its task with backoff until it finishes, fails or a deadline.

Pure orchestration over anything with ``video_status(task_id)`` (the MediaClient, or a fake).
A deadline is not an error: the outcome is ``pending`` with the task id and the last status,
so the caller can collect the video later (it is still rendering and was paid for). A failed
video is an outcome too (``failed``, with the relay's message). Errors that polling again
cannot fix (the key rejected, an unknown task id) are raised; passing failures (a timeout, a
busy relay) are reported through ``on_progress`` and polling goes on.

Cancellation (anyio) stops the wait at once; the task keeps running on the relay.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio

from .._errors import RelayError, RelayTimeoutError
from ._results import VideoStatus

__all__ = ["OnProgress", "PollOutcome", "VideoStatusSource", "poll_video"]

OnProgress = Callable[[VideoStatus | None, float], Awaitable[None]]


class VideoStatusSource(Protocol):
    async def video_status(self, task_id: str) -> VideoStatus: ...


@dataclass(frozen=True)
class PollOutcome:
    """``finished`` (``status.video_url`` set), ``failed`` (``status.error_message``), or
    ``pending``: the deadline came first; collect later with ``task_id``."""

    task_id: str
    state: Literal["finished", "failed", "pending"]
    status: VideoStatus | None
    elapsed: float
    message: str
    last_error: RelayError | None = None


async def poll_video(
    source: VideoStatusSource,
    task_id: str,
    *,
    timeout: float,
    on_progress: OnProgress | None = None,
    first_delay: float = 2.0,
    max_delay: float = 10.0,
    factor: float = 1.5,
    progress_every: float = 10.0,
) -> PollOutcome:
    """Poll ``task_id`` (first after ``first_delay`` s, the wait growing by ``factor`` up to
    ``max_delay``) for at most ``timeout`` seconds. ``on_progress(status, elapsed)`` is called
    when the status string changes and at least every ``progress_every`` seconds (from its own
    task, so a slow status request does not hold it back); ``status`` is None before the first
    answer."""
    started = anyio.current_time()
    last: VideoStatus | None = None
    last_error: RelayError | None = None

    def elapsed() -> float:
        return anyio.current_time() - started

    async def report() -> None:
        if on_progress is not None:
            await on_progress(last, elapsed())

    async def ticker() -> None:
        while True:
            await anyio.sleep(progress_every)
            await report()

    async def loop() -> VideoStatus:
        nonlocal last, last_error
        delay = first_delay
        while True:
            await anyio.sleep(delay)
            delay = min(delay * factor, max_delay)
            try:
                status = await source.video_status(task_id)
            except RelayError as exc:
                if not (exc.retryable or isinstance(exc, RelayTimeoutError)):
                    raise
                last_error = exc
                continue
            changed = last is None or status.status != last.status
            last, last_error = status, None
            if status.state != "running":
                return status
            if changed:
                await report()

    final: VideoStatus | None = None
    failure: RelayError | None = None
    with anyio.move_on_after(timeout if math.isfinite(timeout) else None):
        async with anyio.create_task_group() as group:
            if on_progress is not None:
                group.start_soon(ticker)
            try:
                final = await loop()
            except RelayError as exc:  # raised as itself below, not inside an ExceptionGroup
                failure = exc
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    spent = elapsed()
    if final is None:
        seen = f" (last status: {last.status})" if last is not None and last.status else ""
        return PollOutcome(
            task_id, "pending", last, spent,
            f"The video is still rendering after {spent:.0f} s{seen}; it keeps going on the relay: collect it "
            f"later with task id {task_id}",
            last_error,
        )  # fmt: skip
    if final.state == "failed":
        return PollOutcome(task_id, "failed", final, spent,
                           f"The video failed: {final.error_message or 'no reason given'}")  # fmt: skip
    return PollOutcome(task_id, "finished", final, spent, f"The video is ready after {spent:.0f} s")
