"""Graceful drain for HTTP mode: on SIGTERM (every rolling deploy, ``docker stop``, pod
replacement) stop taking new calls, let the calls in flight finish and deliver their results,
then exit; at the grace deadline cancel what still runs, upstream too, and return what it has."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import anyio

__all__ = ["Drain"]

logger = logging.getLogger("aitoearn_mcp")

DELIVERY_WAIT = 5.0  # seconds for calls cancelled at the deadline to send their partial results
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """The calls in flight of one process, and whether it is draining."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.draining = False
        self._calls: set[anyio.CancelScope] = set()

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    @contextmanager
    def track(self, scope: anyio.CancelScope) -> Iterator[None]:
        """Count a call in flight; ``scope`` is cancelled if it outlives the grace period."""
        self._calls.add(scope)
        try:
            yield
        finally:
            self._calls.discard(scope)

    async def run(self) -> None:
        """Wait for the calls in flight, at most ``grace`` seconds; then cancel the rest."""
        self.draining = True
        logger.info("Draining: %d call(s) in flight, up to %g s; new calls get 503", self.in_flight, self.grace)
        deadline = time.monotonic() + self.grace
        while self._calls and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        if self._calls:
            logger.warning("Grace period over: cancelling %d call(s); they return what they have", self.in_flight)
            for scope in list(self._calls):
                scope.cancel()
            deadline = time.monotonic() + DELIVERY_WAIT
            while self._calls and time.monotonic() < deadline:
                await anyio.sleep(0.05)

    def install_signal_handlers(self) -> None:
        """From the event loop's thread: the first SIGTERM or SIGINT drains, then hands the signal
        to the handler it replaced (the ASGI server's, which shuts down); a second exits at once."""
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in _SIGNALS}

        def finish(sig: int) -> None:
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            else:  # no server of our own to stop: the default action
                signal.signal(sig, signal.SIG_DFL)
                os.kill(os.getpid(), sig)

        def on_signal(sig: int, frame: FrameType | None) -> None:
            if self.draining:
                logger.warning("Second signal: exiting now")
                os._exit(1)
            self.draining = True  # at once: requests that arrive from now on get 503

            async def drain_then_finish() -> None:
                await self.run()
                finish(sig)

            loop.call_soon_threadsafe(_spawn, loop, drain_then_finish)

        for sig in _SIGNALS:
            signal.signal(sig, on_signal)


_background: set[asyncio.Task[Any]] = set()


def _spawn(loop: asyncio.AbstractEventLoop, make: Callable[[], Any]) -> None:
    task = loop.create_task(make())
    _background.add(task)  # keep a reference until it is done
    task.add_done_callback(_background.discard)
