"""A fake AiToEarn relay on a real loopback socket, speaking the real wire formats.

It runs its own asyncio loop in a thread, so tests in any event loop (or a server in a
subprocess) can use it. Each route answers from a queue of scripted replies, falling back
to a default; every request is recorded, and so is the moment a client hangs up mid-reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import sse

CATALOGUE = [
    {"name": "claude-sonnet-5", "label": "Claude Sonnet 5", "tags": ["Sale"], "channel": "anthropic",
     "creditsScope": "seedance", "scenes": ["web"], "inputModalities": ["text", "image"], "outputModalities": ["text"],
     "pricing": {"tiers": [{"input": {"text": "0.06", "image": "0.06", "cacheRead": "0.006", "cacheWrite5m": "0.075",
                                      "cacheWrite1h": "0.12"}, "output": {"text": "0.3"}}],
                 "originPricing": {"tiers": [{"input": {"text": "0.2"}, "output": {"text": "1"}}]}},
     "description": "Claude Sonnet 5"},
    {"name": "claude-opus-4-8", "channel": "anthropic", "inputModalities": ["text"], "outputModalities": ["text"],
     "pricing": {"price": "1.5"}, "description": "Most capable Claude", "futureField": {"kept": True}},
    {"name": "gemini-3.1-pro-preview", "channel": "gemini", "inputModalities": ["text", "image", "video"],
     "outputModalities": ["text"],
     "pricing": {"tiers": [{"maxInputTokens": 200000, "input": {"text": "0.1"}, "output": {"text": "0.6"}},
                           {"input": {"text": "0.2"}, "output": {"text": "0.9"}}]},
     "description": "Gemini 3.1 Pro 预览版"},
    {"name": "deepseek-v4-pro", "channel": "deepseek", "inputModalities": ["text"], "outputModalities": ["text"],
     "pricing": {"tiers": [{"input": {"text": "0.004", "cacheRead": "0.0004"}, "output": {"text": "0.016"}}]}},
    {"name": "gpt-5.5", "channel": "openai", "inputModalities": ["text", "image"], "outputModalities": ["text"],
     "pricing": {"tiers": [{"input": {"text": "0.0375", "image": "0.0375", "cacheRead": "0.00375"},
                            "output": {"text": "0.3"}}]}},
]  # fmt: skip


# The catalogue's image-output chat model (not in CATALOGUE: tests that want it serve IMAGE_CATALOGUE).
IMAGE_MODEL = {"name": "gemini-3.1-flash-image-preview", "label": "Nano Banana 2", "channel": "gemini",
               "creditsScope": "seedance", "inputModalities": ["text", "image"], "outputModalities": ["image"],
               "pricing": {"tiers": [{"input": {"text": "0.05"}, "output": {"text": "0.3", "image": "6"}}]},
               "fixedImagePricing": [{"resolution": "1K", "price": 4}, {"resolution": "4K", "price": 7}]}  # fmt: skip
IMAGE_CATALOGUE = [*CATALOGUE, IMAGE_MODEL]
GEMINI_STREAM = "/api/ai/v1beta/models/{model}:streamGenerateContent"


def tiny_png() -> str:
    """A valid 1×1 PNG, base64: the Gemini route's default image."""
    return "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _echo(body: bytes) -> list[str]:
    """A last user message starting "echo:" is answered with itself: lets concurrent callers
    tell their replies apart."""
    try:
        content = json.loads(body)["messages"][-1]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return []
    return [content[:3], content[3:]] if isinstance(content, str) and content.startswith("echo:") else []


@dataclass
class Reply:
    """One scripted answer. ``chunks`` are written one by one, ``delay`` seconds apart."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "text/event-stream"})
    chunks: list[bytes] = field(default_factory=list)
    delay: float = 0.0
    end: str = "close"  # "close" ends the body properly; "drop" cuts the connection; "hang" never ends

    @classmethod
    def sse(cls, events: list[dict[str, Any]], *, chunk: int | None = None, **kw: Any) -> Reply:
        body = sse.encode(events, crlf=kw.pop("crlf", False))
        return cls(chunks=sse.split_every(body, chunk) if chunk else [body], **kw)

    @classmethod
    def chat(cls, chunks: list[dict[str, Any]], *, chunk: int | None = None, done: bool = True, **kw: Any) -> Reply:
        body = sse.encode_chat(chunks, done=done, crlf=kw.pop("crlf", False), ids=kw.pop("ids", False))
        return cls(chunks=sse.split_every(body, chunk) if chunk else [body], **kw)

    @classmethod
    def gemini(cls, events: list[dict[str, Any]], *, chunk: int | None = None, **kw: Any) -> Reply:
        body = sse.encode_gemini(events, crlf=kw.pop("crlf", False))
        return cls(chunks=sse.split_every(body, chunk) if chunk else [body], **kw)

    @classmethod
    def json(cls, status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status=status, headers={"content-type": "application/json", **(headers or {})},
                   chunks=[json.dumps(body, ensure_ascii=False).encode()])  # fmt: skip

    @classmethod
    def html(cls, status: int, title: str) -> Reply:
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{'x' * 5000}</body></html>"
        return cls(status=status, headers={"content-type": "text/html"}, chunks=[page.encode()])


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeRelay:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.hangups: list[float] = []  # monotonic times a client closed before the reply ended
        self.hangups_wall: list[float] = []  # the same as wall-clock times, for other processes' clocks
        self.open_connections = 0
        self.connections = 0  # accepted in all
        self._queues: dict[str, list[Reply]] = {}
        self._routes: dict[str, Callable[[bytes], Reply]] = {}
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeRelay:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop)
        self._server = future.result(5)
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    # --- scripting -------------------------------------------------------------------------
    def enqueue(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._queues.setdefault(path, []).extend(replies)

    def route(self, path: str, answer: Callable[[bytes], Reply]) -> None:
        """Answer ``path`` with ``answer(request_body)`` when no scripted reply is queued."""
        self._routes[path] = answer

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def _next_reply(self, path: str, body: bytes) -> Reply:
        with self._lock:
            queue = self._queues.get(path.split("?")[0])
            if queue:
                return queue.pop(0)
        if (answer := self._routes.get(path.split("?")[0])) is not None:
            return answer(body)
        if path.startswith("/api/ai/models/chat"):
            return Reply.json(200, {"data": CATALOGUE, "code": 0, "message": "请求成功", "requestId": "req-models"})
        if path == "/api/ai/v1/messages":
            model = json.loads(body).get("model")
            if any(entry["name"] == model and entry["channel"] != "anthropic" for entry in CATALOGUE):
                # As the relay: the Messages route serves the anthropic channel only.
                return Reply.json(200, {"data": {}, "code": 12300, "message": "无效的 AI 模型"})
            return Reply.sse(sse.text_reply(_echo(body) or ["Hello", ", world."]))
        if path == "/api/ai/chat/completions":
            model = json.loads(body).get("model", "")
            return Reply.chat(sse.chat_text_reply(_echo(body) or ["Hello", ", world."], model=model))
        if path.startswith("/api/ai/v1beta/models/") and ":streamGenerateContent" in path:
            return Reply.gemini(sse.gemini_image_reply(["Here it is."], [("image/png", tiny_png())]))
        return Reply.json(404, {"statusCode": 404, "message": "Not Found"})

    def _hung_up(self) -> None:
        self.hangups.append(time.monotonic())
        self.hangups_wall.append(time.time())

    # --- HTTP/1.1 --------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop(): the task ends here, not cancelled, since Python 3.11's stream callback logs
            # a cancelled connection task as an unhandled error.
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Recorded(method, path, headers, body))
        reply = self._next_reply(path, body)

        status_line = f"HTTP/1.1 {reply.status} {'OK' if reply.status == 200 else 'Error'}\r\n"
        out = [status_line] + [f"{k}: {v}\r\n" for k, v in reply.headers.items()]
        out.append("transfer-encoding: chunked\r\n\r\n")
        writer.write("".join(out).encode())
        await writer.drain()
        hangup = asyncio.ensure_future(reader.read(1))  # b"" when the client closes
        try:
            for chunk in reply.chunks:
                if reply.delay:
                    await asyncio.wait({hangup}, timeout=reply.delay)
                if hangup.done():
                    self._hung_up()
                    return False
                try:
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                except ConnectionError:  # the client closed while a large reply was being written
                    self._hung_up()
                    return False
            if reply.end == "drop":
                return False
            if reply.end == "hang":
                await hangup
                self._hung_up()
                return False
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        finally:
            hangup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hangup


def slow_reply(events: list[dict[str, Any]], delay: float, **kw: Any) -> Reply:
    """One event per chunk, ``delay`` seconds apart: a model generating in real time."""
    return Reply(chunks=[sse.encode([event], pings=False, comments=False) for event in events], delay=delay, **kw)


def thinking_reply(events: list[dict[str, Any]], silence: float, ping_every: float = 1.0, **kw: Any) -> Reply:
    """A model that thinks silently: only pings for ``silence`` seconds (what the relay sends
    while a reasoning model works), then the reply at once."""
    ping = sse.encode([{"type": "ping"}], pings=False, comments=False)
    count = max(round(silence / ping_every), 1)
    return Reply(chunks=[ping] * count + [sse.encode(events, pings=False, comments=False)], delay=ping_every, **kw)
