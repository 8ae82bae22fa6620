"""What the server tells the client while a call runs: progress notifications and log
messages (retries), at the level the client asked for."""

from __future__ import annotations

import time
import warnings
import weakref
from collections.abc import Callable
from typing import Any, get_args

import anyio
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import EmptyResult, LoggingLevel, SetLevelRequestParams

__all__ = [
    "PROGRESS_INTERVAL", "Progress", "ProgressReporter", "log_to_client", "report_progress", "set_logging_level",
]  # fmt: skip

PROGRESS_INTERVAL = 0.1  # seconds: at most 10 notifications a second, never 250 ms without one while text flows
PROGRESS_TAIL = 40  # characters of the latest text shown in a progress message
# While the model is silent (thinking: the relay sends only pings), one notification this often,
# well inside the 10 s that hosts resetting their timeout on progress need.
HEARTBEAT = 5.0

# What a reporter reads: characters received so far and the latest text.
Progress = Callable[[], tuple[int, str]]

_LOG_LEVELS: list[str] = list(get_args(LoggingLevel))

# The level each handshake-era session asked for with logging/setLevel (default: everything).
_session_log_levels: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()


async def set_logging_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    _session_log_levels[ctx.session] = params.level
    return EmptyResult()


async def log_to_client(ctx: Context, message: str) -> None:
    """Retries go to the client's log too. MCP logging is deprecated in 2026-07-28 but it is
    what today's hosts show; the SDK's warning about it is not the user's business."""
    if _LOG_LEVELS.index(_session_log_levels.get(ctx.session, "debug")) > _LOG_LEVELS.index("warning"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await ctx.warning(message)


class ProgressReporter:
    """Progress while text flows, at most one per PROGRESS_INTERVAL, and one every HEARTBEAT while
    none does; the value strictly rising (characters received, or one more than the last value
    while silent). ``since``: when the call started (unix time; default now); ``quiet``: what a
    heartbeat says, given the seconds elapsed (work without text: a video rendering). The caller
    calls ``begin`` once, then ``tick`` about every PROGRESS_INTERVAL while it waits."""

    def __init__(
        self, ctx: Context, progress: Progress, *, since: float | None = None, first: str | None = None,
        quiet: Callable[[float], str] | None = None,
    ) -> None:  # fmt: skip
        self.ctx, self.progress, self.first, self.quiet = ctx, progress, first, quiet
        self.started = time.time() if since is None else since
        self.last = time.monotonic()
        self.reported = 0

    async def begin(self) -> None:
        await self.ctx.report_progress(0, None, self.first or "Request sent; waiting for the first tokens")

    async def tick(self) -> None:
        received, latest = self.progress()
        now = time.monotonic()
        if received > self.reported:
            self.reported, self.last = received, now
            tail = " ".join(latest[-PROGRESS_TAIL:].split())
            await self.ctx.report_progress(received, None, f"{received:,} characters received: …{tail}")
        elif now - self.last >= HEARTBEAT:
            self.reported, self.last = self.reported + 1, now
            elapsed = time.time() - self.started
            if self.quiet is not None:
                await self.ctx.report_progress(self.reported, None, self.quiet(elapsed))
                return
            what = "thinking (no text yet)" if received == 0 else f"working ({received:,} characters so far)"
            await self.ctx.report_progress(self.reported, None, f"The model has been {what} for {elapsed:.0f} s")


async def report_progress(reporter: ProgressReporter) -> None:
    """``reporter`` in a task of its own, beside a wait that cannot tick it (until cancelled)."""
    await reporter.begin()
    while True:
        await anyio.sleep(PROGRESS_INTERVAL)
        await reporter.tick()
