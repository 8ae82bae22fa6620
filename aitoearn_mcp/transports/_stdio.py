"""Serving one host over stdin/stdout until it goes.

Hosts quit in every way: Claude Code sends SIGINT then SIGTERM, Codex closes stdin and sends
SIGTERM, Gemini CLI sends SIGTERM and leaves stdin open, a terminal user presses Ctrl-C. Any
of these, in any order, cancels the calls in flight (their relay streams close, so billing
stops) and ends serving; later signals are ignored while the process winds down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

__all__ = ["serve_stdio"]

_READ_BYTES = 64 * 1024
_QUEUED_LINES = 16


async def serve_stdio(server: MCPServer) -> None:
    """Serve until SIGINT, SIGTERM or the end of stdin, whichever comes first."""
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    # The signals stay caught until serving has wound down, so a second one changes nothing.
    with contextlib.ExitStack() as held:
        signals: AsyncIterator[signal.Signals] | None = None
        # Windows: the event loop takes no signal handlers. Ctrl-C still cancels the main task
        # (asyncio's runner) and the command line ends quietly; there is no SIGTERM to catch.
        with contextlib.suppress(NotImplementedError):
            signals = held.enter_context(anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        async with anyio.create_task_group() as tasks:
            stop = tasks.cancel_scope.cancel
            if signals is not None:
                tasks.start_soon(_stop_on_first, signals, stop)
            # Our own stdin (a read the cancellation does not wait for); the SDK keeps stdout,
            # which it points fd 1 away from while serving so a stray print cannot corrupt the wire.
            stdin = cast(Any, _StdinLines(on_end=stop))
            try:
                async with stdio_server(stdin=stdin) as (read, write):
                    await lowlevel.run(read, write, lowlevel.create_initialization_options())
            except* (BrokenPipeError, ConnectionResetError):
                pass  # the host closed our stdout: it is gone, nobody is left to answer
            stop()


async def _stop_on_first(signals: AsyncIterator[signal.Signals], stop: Callable[[], None]) -> None:
    async for _ in signals:
        stop()
        return


class _StdinLines:
    """The host's messages, one line each, read from fd 0 by a daemon thread.

    The SDK reads stdin in an anyio worker thread, which a cancellation must wait for: with a
    host that keeps stdin open, the process would never exit. A daemon thread blocked in a read
    holds nothing up. Blank lines (a terminal user pressing Enter) are skipped; the end of stdin
    calls ``on_end``.
    """

    def __init__(self, on_end: Callable[[], None], fd: int = 0) -> None:
        self._on_end = on_end
        self._fd = fd

    async def __aiter__(self) -> AsyncIterator[str]:
        send, receive = anyio.create_memory_object_stream[str](_QUEUED_LINES)
        room = threading.Semaphore(_QUEUED_LINES)  # the reader waits while the server is behind
        # The loop anyio.run starts (asyncio); anyio.from_thread would add ~1 ms to start-up.
        loop = asyncio.get_running_loop()

        def put(line: str) -> None:  # in the event loop
            with contextlib.suppress(anyio.BrokenResourceError):  # serving has stopped
                send.send_nowait(line)

        reader = threading.Thread(target=_read_lines, args=(self._fd, room, put, send.close, loop), daemon=True)
        reader.start()
        async with receive:
            async for line in receive:
                room.release()
                yield line
        self._on_end()


def _read_lines(
    fd: int,
    room: threading.Semaphore,
    put: Callable[[str], None],
    close: Callable[[], None],
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Runs in the reader thread: split fd's bytes into lines and hand each to the event loop.
    Returns at the end of input, or quietly once the event loop is gone."""

    def deliver(line: bytes) -> None:
        if line.strip():
            room.acquire()
            loop.call_soon_threadsafe(put, line.decode("utf-8", errors="replace"))

    # Whatever fails here (a read error, a closed event loop) means "no more input"; a traceback
    # from this thread would only land on the user's terminal.
    with contextlib.suppress(Exception):
        parts: list[bytes] = []  # the line so far, kept in pieces: a 50 MB line costs no re-copying
        while chunk := os.read(fd, _READ_BYTES):
            start = 0
            while (end := chunk.find(b"\n", start)) != -1:
                parts.append(chunk[start:end])
                deliver(b"".join(parts))
                parts.clear()
                start = end + 1
            if start < len(chunk):
                parts.append(chunk[start:])
        deliver(b"".join(parts))
    with contextlib.suppress(Exception):
        loop.call_soon_threadsafe(close)
