"""Client connections of the HTTP server: bounded in number, and in how long a client may take
to send a request head, so idle or slow sockets (slowloris) cannot use up the process's files
and lock other clients out.

uvicorn closes a connection idle after a response (keep-alive), but not one that never sends a
whole request head, and it keeps accepting connections until the process runs out of files.
This protocol closes a connection whose request head is not in within the header timeout
(from connecting, or from the end of the previous response), and at the connection limit it
closes the oldest idle connection to make room, or refuses the new one when none is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .._config import HttpSettings

__all__ = ["KEEP_ALIVE_SECONDS", "GuardedH11Protocol", "connection_limits", "uvicorn_options"]

KEEP_ALIVE_SECONDS = 5.0  # an idle keep-alive connection is closed after this
_MOST_CONNECTIONS = 1000
_BACKLOG = 2048  # uvicorn's default
_BUSY_TEXT = b"This aitoearn-mcp server has too many open connections; send the request again.\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 5\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT)
)


def _open_file_limit() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_limits(configured: int) -> tuple[int, int]:
    """How many client connections to keep open, and the listen backlog.

    Connections: ``configured``, or half the process's open-file limit (the other half: one
    relay connection per call, Redis, files), at most 1000. The backlog is also how many
    connections the event loop accepts in one go, before any of them can be closed: kept to a
    quarter of the files left over, so a burst of connections never runs the process out of
    files (the event loop then stops accepting anyone for a second at a time).
    """
    files = _open_file_limit()
    if files is None:
        return configured or _MOST_CONNECTIONS, _BACKLOG
    connections = configured or max(8, min(_MOST_CONNECTIONS, files // 2))
    return connections, max(8, min(_BACKLOG, (files - connections) // 4))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout and a connection limit (set for the
    process by ``uvicorn_options``)."""

    header_timeout = 10.0
    max_connections = _MOST_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._opened_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened_at = self.loop.time()
        if self._open_connections() > self.max_connections and not self._make_room():
            transport.write(_BUSY)
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a whole request head came in
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # first: a pipelined request handled inside disarms it again
        super().on_response_complete()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _open_connections(self) -> int:
        # One closed to make room stays in the set until the next loop turn: not counted.
        return sum(not other.transport.is_closing() for other in self.connections)

    def _make_room(self) -> bool:
        idle = [
            other
            for other in self.connections
            if other is not self
            and isinstance(other, GuardedH11Protocol)
            and other._idle()
            and not other.transport.is_closing()
        ]
        if not idle:
            return False
        min(idle, key=lambda other: other._opened_at)._close()
        return True

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        if self._idle():
            self._close()

    def _close(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            with contextlib.suppress(h11.LocalProtocolError):  # half a request head: nothing to end politely
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()


def uvicorn_options(settings: HttpSettings) -> dict[str, Any]:
    """The uvicorn settings that bound connections, for this process (and, by import string,
    for worker processes, which call this again from the environment)."""
    connections, backlog = connection_limits(settings.max_connections)
    GuardedH11Protocol.header_timeout = settings.header_timeout
    GuardedH11Protocol.max_connections = connections
    return {
        "http": f"{__name__}:GuardedH11Protocol",
        "backlog": backlog,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # Requests in flight (a call whose client left may still be ending). uvicorn also counts
        # connections here, and one closed to make room stays counted until the next loop turn:
        # twice the connection limit keeps that from turning a new client away.
        "limit_concurrency": 2 * GuardedH11Protocol.max_connections,
    }
