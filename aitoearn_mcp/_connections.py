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

from ._config import HttpSettings

__all__ = ["KEEP_ALIVE_SECONDS", "GuardedH11Protocol", "connection_limit", "uvicorn_options"]

KEEP_ALIVE_SECONDS = 5.0  # an idle keep-alive connection is closed after this
_MOST_CONNECTIONS = 1000
_BUSY_TEXT = b"This aitoearn-mcp server has too many open connections; send the request again.\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 5\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT)
)


def connection_limit(configured: int) -> int:
    """``configured``, or half the process's open-file limit (the other half: one relay
    connection per call, Redis, files), at most 1000."""
    if configured:
        return configured
    try:
        import resource
    except ImportError:  # Windows
        return _MOST_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MOST_CONNECTIONS
    return max(8, min(_MOST_CONNECTIONS, soft // 2))


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
        if len(self.connections) > self.max_connections and not self._make_room():
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

    def _make_room(self) -> bool:
        idle = [
            other
            for other in self.connections
            if other is not self and isinstance(other, GuardedH11Protocol) and other._idle()
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
    GuardedH11Protocol.header_timeout = settings.header_timeout
    GuardedH11Protocol.max_connections = connection_limit(settings.max_connections)
    return {
        "http": f"{__name__}:GuardedH11Protocol",
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # Requests in flight (a call whose client left may still be ending); the connections
        # themselves are held at max_connections above, so this only answers 503 past that.
        "limit_concurrency": GuardedH11Protocol.max_connections + 1,
    }
