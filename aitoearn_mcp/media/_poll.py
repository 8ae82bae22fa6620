"""Waiting for a relay task (a video, or an image made asynchronously): poll it with backoff
until it finishes, fails or a deadline.

Pure orchestration over a ``look(task_id)`` coroutine (the MediaClient's ``video_status`` or
``image_task``, or a fake). A deadline is not an error: the outcome is ``pending`` with the task
id and the last status, so the caller can collect the work later (it is still going on and was
paid for). A failed task is an outcome too (``failed``, with the relay's message). Errors that polling again
cannot fix (the key rejected, an unknown task id) are raised; passing failures (a timeout, a
busy relay) are reported through ``on_progress`` and polling goes on.

Cancellation (anyio) stops the wait at once; the task keeps running on the relay.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

import anyio

from .._errors import RelayError, RelayTimeoutError
from ._results import TaskState

__all__ = ["OnProgress", "PollOutcome", "TaskLook", "poll_task"]


class TaskLook(Protocol):
    """One look at a task: the MediaClient's ``VideoStatus`` and ``ImageTaskStatus`` both are."""

    @property
    def state(self) -> TaskState: ...
    @property
    def status(self) -> str | None: ...
    @property
    def error_message(self) -> str | None: ...


LookT = TypeVar("LookT", bound=TaskLook)
OnProgress = Callable[[LookT | None, float], Awaitable[None]]


@dataclass(frozen=True)
class PollOutcome(Generic[LookT]):
    """``finished``, ``failed`` (``status.error_message``), or ``pending``: the deadline came
    first; collect later with ``task_id``."""

    task_id: str
    state: Literal["finished", "failed", "pending"]
    status: LookT | None
    elapsed: float
    message: str
    last_error: RelayError | None = None


async def poll_task(
    look: Callable[[str], Awaitable[LookT]],
    task_id: str,
    *,
    timeout: float,
    what: str,
    on_progress: OnProgress[LookT] | None = None,
    first_delay: float = 2.0,
    max_delay: float = 10.0,
    factor: float = 1.5,
    progress_every: float = 10.0,
) -> PollOutcome:
    """Poll ``task_id`` (first after ``first_delay`` s, the wait growing by ``factor`` up to
    ``max_delay``) for at most ``timeout`` seconds. ``on_progress(status, elapsed)`` is called
    when the status string changes and at least every ``progress_every`` seconds (from its own
    task, so a slow status request does not hold it back); ``status`` is None before the first
    answer. ``what`` names the work in the outcome's message."""
    started = anyio.current_time()
    last: LookT | None = None
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

    async def loop() -> LookT:
        nonlocal last, last_error
        delay = first_delay
        while True:
            await anyio.sleep(delay)
            delay = min(delay * factor, max_delay)
            try:
                status = await look(task_id)
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

    final: LookT | None = None
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
            f"The {what} is still on its way after {spent:.0f} s{seen}; it keeps going on the relay: collect it "
            f"later with task id {task_id}",
            last_error,
        )  # fmt: skip
    if final.state == "failed":
        return PollOutcome(task_id, "failed", final, spent,
                           f"The {what} failed: {final.error_message or 'no reason given'}")  # fmt: skip
    return PollOutcome(task_id, "finished", final, spent, f"The {what} is ready after {spent:.0f} s")
