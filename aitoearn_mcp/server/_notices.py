"""What the server tells the client besides a call's result: progress notifications and log
messages (retries) while the call runs, at the level the client asked for; that its resources
have changed, once the call has answered."""

from __future__ import annotations

import contextlib
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, get_args

import anyio
from anyio.abc import TaskGroup
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import EmptyResult, LoggingLevel, SetLevelRequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

__all__ = [
    "LISTING_NOTICE_AFTER", "PROGRESS_INTERVAL", "ListingNotices", "Progress", "ProgressReporter", "log_to_client",
    "report_progress", "set_logging_level",
]  # fmt: skip

PROGRESS_INTERVAL = 0.1  # seconds: at most 10 notifications a second, never 250 ms without one while text flows
PROGRESS_TAIL = 40  # characters of the latest text shown in a progress message
# While the model is silent (thinking: the relay sends only pings), one notification this often,
# well inside the 10 s that hosts resetting their timeout on progress need.
HEARTBEAT = 5.0
# A resources notice waits this long after the call that changed them: the answer goes out
# first, and the calls that end meanwhile share the notice.
LISTING_NOTICE_AFTER = 0.01
NOTICE_TIMEOUT = 5.0  # a session that no longer reads (a stateless HTTP request's) holds no task longer

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


class ListingNotices:
    """Tells the client that resources/list has changed (a call's reply, and its conversation, are
    stored): Claude Code lists resources once when it connects and again only when told. The
    notice is not part of the answer, so one task sends it after it, once for every change made
    meanwhile: one publish to the 2026-07-28 ``subscriptions/listen`` streams, and one notification
    to each earlier-protocol session. ``tasks`` (the lifespan's) runs that task."""

    def __init__(self, tasks: TaskGroup) -> None:
        self._tasks = tasks
        self._publish: Context | None = None
        self._sessions: set[Any] = set()  # earlier-protocol sessions with a change to tell
        self._wake: anyio.Event | None = None

    def changed(self, ctx: Context) -> None:
        self._publish = ctx
        if ctx.session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._sessions.add(ctx.session)
        if self._wake is None:
            self._wake = anyio.Event()
            self._tasks.start_soon(self._send)
        self._wake.set()

    async def _send(self) -> None:
        while True:
            assert self._wake is not None
            await self._wake.wait()
            await anyio.sleep(LISTING_NOTICE_AFTER)
            self._wake = anyio.Event()
            publish, sessions = self._publish, list(self._sessions)
            self._publish, self._sessions = None, set()
            if publish is not None:
                await self._notify(publish.notify_resources_changed)
            if len(sessions) == 1:  # stdio: one session
                await self._notify(sessions[0].send_resource_list_changed)
                continue
            async with anyio.create_task_group() as sends:  # a session that does not read holds up no other
                for session in sessions:
                    sends.start_soon(self._notify, session.send_resource_list_changed)

    async def _notify(self, send: Callable[[], Awaitable[None]]) -> None:
        # A host that does not listen, or has gone, loses nothing.
        with contextlib.suppress(Exception), anyio.move_on_after(NOTICE_TIMEOUT):
            await send()
