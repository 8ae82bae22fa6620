"""Request bodies of the MCP endpoint: read whole before the app sees them, within a time
limit, up to a size limit, and only while the bodies this process holds stay within a memory
budget.

A body is held in memory for its whole request (parsed, sent to the relay, kept in the
conversation), and a 50 MB body takes 150-250 MB while it is parsed: four at once took the
process past 1 GB. So the bodies in flight may add up to one largest body plus small ones
(``IN_FLIGHT_BYTES``); a request that does not fit waits for room, then gets 503 with Retry-After.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["IN_FLIGHT_BYTES", "MAX_BODY_BYTES", "BodyBudget", "BoundedBody"]

# The relay takes 50 MB; the JSON-RPC envelope around the same request needs a little more.
MAX_BODY_BYTES = 52 * 1024 * 1024
IN_FLIGHT_BYTES = MAX_BODY_BYTES + 12 * 1024 * 1024
ROOM_WAIT = 30.0  # seconds a request waits for memory held by other requests' bodies
RETRY_AFTER_SECONDS = 5


class BodyBudget:
    """Bytes of request bodies this process holds at once."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._freed: anyio.Event | None = None

    @asynccontextmanager
    async def hold(self, size: int, wait: float) -> AsyncIterator[bool]:
        """Hold ``size`` bytes while the block runs; False when no room came within ``wait``."""
        granted = self.held + size <= self.capacity  # nearly always: no timer for a request that fits
        if not granted:
            with anyio.move_on_after(wait):
                while self.held + size > self.capacity:
                    if self._freed is None:
                        self._freed = anyio.Event()
                    await self._freed.wait()
                granted = True
        if not granted:
            yield False
            return
        self.held += size
        try:
            yield True
        finally:
            self.held -= size
            if self._freed is not None:
                self._freed.set()
                self._freed = None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32000 if status >= 500 else -32600, "message": message}}
    return JSONResponse(body, status_code=status, headers={"connection": "close", **(headers or {})})


class BoundedBody:
    """Reads each POST body of ``path`` within ``timeout`` seconds and ``MAX_BODY_BYTES``,
    holding its size from ``budget`` until the request is answered."""

    def __init__(self, app: ASGIApp, path: str, timeout: float, budget: BodyBudget) -> None:
        self.app = app
        self.path = path.rstrip("/")
        self.timeout = timeout
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > MAX_BODY_BYTES:
            await _too_large()(scope, receive, send)
            return
        # A body of unknown length (chunked) may be as large as allowed: hold that much.
        async with self.budget.hold(MAX_BODY_BYTES if declared is None else declared, ROOM_WAIT) as room:
            if not room:
                busy = _error(503, "This aitoearn-mcp server is busy with other large requests; send the request "
                              "again in a few seconds.", {"retry-after": str(RETRY_AFTER_SECONDS)})  # fmt: skip
                await busy(scope, receive, send)
                return
            messages: list[Message] = []
            size = 0
            with anyio.move_on_after(self.timeout):
                while True:
                    message = await receive()
                    messages.append(message)
                    size += len(message.get("body", b""))
                    if size > MAX_BODY_BYTES:
                        await _too_large()(scope, receive, send)
                        return
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        break
            if not messages or messages[-1].get("more_body", False):
                slow = _error(408, f"The request body did not arrive within {self.timeout:g} s "
                              "(AITOEARN_HTTP_BODY_TIMEOUT); send it again.")  # fmt: skip
                await slow(scope, receive, send)
                return

            async def replay() -> Message:
                return messages.pop(0) if messages else await receive()

            await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return None
    return None


def _too_large() -> JSONResponse:
    return _error(
        413, f"The request body is over {MAX_BODY_BYTES:,} bytes (the relay takes 50 MB); send smaller attachments."
    )
