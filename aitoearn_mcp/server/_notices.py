"""What the server tells the client besides a call's result: progress notifications and log
messages (retries) while the call runs, at the level the client asked for; that its resources
have changed, once the call has answered, and to that caller only."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, get_args

import anyio
from anyio.abc import TaskGroup
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.subscriptions import ListenHandler, ResourcesListChanged, ServerEvent
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    EmptyResult,
    LoggingLevel,
    SetLevelRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import SecretStr

from .._keys import key_digest

__all__ = [
    "LISTING_NOTICE_AFTER", "PROGRESS_INTERVAL", "CallerBus", "ListingNotices", "Progress", "ProgressReporter",
    "log_to_client", "report_progress", "set_logging_level",
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

logger = logging.getLogger("aitoearn_mcp")

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


# Whose key the listen stream being opened serves: ``CallerBus.listen`` sets it for the SDK's
# handler, which subscribes in the same task.
_listening: contextvars.ContextVar[str | None] = contextvars.ContextVar("listening", default=None)


class CallerBus:
    """The 2026-07-28 ``subscriptions/listen`` fan-out, by caller. The SDK's bus tells every
    stream of every event; in a shared deployment one caller's call would wake the streams of all
    the others, telling them when someone else works, and each would re-list for nothing.
    ``publish_to`` tells the streams opened with the same key only (a caller is a hash of the key:
    the key itself is kept nowhere); ``publish``, the SDK's own, still tells all. ``key_of``: the
    key a listen request's headers name, or the server's."""

    def __init__(self, key_of: Callable[[Mapping[str, str] | None], SecretStr | None]) -> None:
        self._key_of = key_of
        self._streams: dict[str | None, dict[object, Callable[[ServerEvent], None]]] = {}  # by caller
        self._handler = ListenHandler(self)

    @staticmethod
    def caller(key: SecretStr | None) -> str | None:
        return None if key is None else key_digest(key)

    async def listen(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        """The ``subscriptions/listen`` handler: the SDK's, with the stream filed under its caller."""
        _listening.set(self.caller(self._key_of(getattr(ctx.request, "headers", None))))
        return await self._handler(ctx, params)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        caller, token = _listening.get(), object()
        self._streams.setdefault(caller, {})[token] = listener

        def unsubscribe() -> None:
            streams = self._streams.get(caller, {})
            streams.pop(token, None)
            if not streams:
                self._streams.pop(caller, None)

        return unsubscribe

    async def publish(self, event: ServerEvent) -> None:
        for streams in list(self._streams.values()):
            _deliver(event, streams)

    async def publish_to(self, caller: str, event: ServerEvent) -> None:
        _deliver(event, self._streams.get(caller, {}))


def _deliver(event: ServerEvent, streams: dict[object, Callable[[ServerEvent], None]]) -> None:
    for listener in list(streams.values()):
        try:
            listener(event)  # the SDK's: puts the event on its stream's buffer
        except Exception:  # one stream's fault is no other's
            logger.exception("a listen stream could not take an event")


class ListingNotices:
    """Tells the client that resources/list has changed (a call's reply, and its conversation, are
    stored): Claude Code lists resources once when it connects and again only when told. The
    notice is not part of the answer, so one task sends it after it, once for every change made
    meanwhile: one publish to the 2026-07-28 ``subscriptions/listen`` streams of each caller whose
    list changed, and one notification to each earlier-protocol session that made a change.
    ``tasks`` (the lifespan's) runs that task."""

    def __init__(self, tasks: TaskGroup, bus: CallerBus) -> None:
        self._tasks = tasks
        self._bus = bus
        self._callers: set[str] = set()  # whose listen streams have a change to hear
        self._sessions: set[Any] = set()  # earlier-protocol sessions with a change to tell
        self._wake: anyio.Event | None = None

    def changed(self, ctx: Context, key: SecretStr | None) -> None:
        """``ctx``'s call, made with ``key``, has changed that key's resources/list."""
        if (caller := self._bus.caller(key)) is not None:  # without a key nothing is listed
            self._callers.add(caller)
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
            callers, sessions = self._callers, list(self._sessions)
            self._callers, self._sessions = set(), set()
            for caller in callers:
                await self._bus.publish_to(caller, ResourcesListChanged())  # only puts it on each stream's buffer
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
