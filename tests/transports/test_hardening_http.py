"""Attacks on the stateless HTTP server and on keys (issue 17, items 6-9), each against a real
server process on a loopback port over real sockets: a cancel that stops the wrong call, idle
and slow connections, concurrent large bodies, deeply nested JSON, keys with bytes no key has."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.types import CallToolResult

from .. import sse
from ..conftest import HELLO, KEY, HttpServer, http_client
from ..fake_relay import FakeRelay, slow_reply
from ..test_progress_cancel import SCRIPT

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json",
               "mcp-protocol-version": "2025-06-18"}  # fmt: skip
PIECES = [f"片{i} " for i in range(40)]
posix_only = pytest.mark.skipif(os.name != "posix", reason="open-file limits are POSIX")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc")


@contextlib.contextmanager
def serving(relay: FakeRelay, **env: str) -> Iterator[HttpServer]:
    server = HttpServer(relay, env=env)
    try:
        yield server
    finally:
        server.stop()


def served_a_call(server: HttpServer) -> bool:
    with contextlib.suppress(httpx2.HTTPError):
        return httpx2.get(server.base + "/healthz", timeout=5).status_code == 200
    return False


# --- 6: a cancel never stops another client's call ------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("headers", [{"X-Api-Key": "sk-shared-team-key-0123"}, None], ids=["same-key", "keyless"])
async def test_a_cancel_stops_only_its_own_call_when_two_clients_share_key_and_ids(
    relay: FakeRelay, mode: str, headers: dict[str, str] | None
) -> None:
    """Clients number requests alike, so A's and B's calls have the same id under the same key.
    B's call must never be stopped by A's cancel. On 2026-07-28 A's client closes its response
    stream, which stops A's call at once; a handshake-era client only sends the notification,
    which cannot tell the two calls apart, so it stops neither (A's call runs to its end)."""
    relay.enqueue(MESSAGES, *(slow_reply(sse.text_reply(PIECES), delay=0.06) for _ in range(2)))
    progressed = {"a": anyio.Event(), "b": anyio.Event()}
    results: dict[str, CallToolResult] = {}

    def on_progress(who: str) -> Any:
        async def seen(progress: float, total: float | None, message: str | None) -> None:
            if progress > 0:
                progressed[who].set()

        return seen

    with serving(relay) as server:
        a, b = http_client(server.url, headers, mode), http_client(server.url, headers, mode)
        async with a, b, anyio.create_task_group() as calls:

            async def call_b() -> None:
                results["b"] = await b.call_tool("send_message", HELLO, progress_callback=on_progress("b"))

            async with anyio.create_task_group() as a_call:
                a_call.start_soon(a.call_tool, "send_message", HELLO, None, on_progress("a"))
                with anyio.fail_after(10):
                    await progressed["a"].wait()
                calls.start_soon(call_b)
                with anyio.fail_after(10):
                    await progressed["b"].wait()
                cancelled_at = time.monotonic()
                a_call.cancel_scope.cancel()  # A's host aborts the call
            if mode == "auto":
                with anyio.fail_after(10):
                    while not relay.hangups:
                        await anyio.sleep(0.02)
    assert results["b"].content[0].text == "".join(PIECES)  # type: ignore[union-attr]
    assert not results["b"].is_error
    if mode == "auto":  # A's own call stopped, at once, and only A's
        assert len(relay.hangups) == 1 and relay.hangups[0] - cancelled_at < 2.0
    else:
        assert relay.hangups == []


async def test_a_cancel_notification_still_stops_a_call_only_one_client_made(relay: FakeRelay) -> None:
    """The notification is a handshake-era client's only cancel signal: unambiguous, it stops the call."""
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(PIECES), delay=0.06))
    progressed = anyio.Event()

    async def seen(progress: float, total: float | None, message: str | None) -> None:
        if progress > 0:
            progressed.set()

    with serving(relay) as server:
        async with http_client(server.url, mode="legacy") as client, anyio.create_task_group() as call:
            call.start_soon(client.call_tool, "send_message", HELLO, None, seen)
            with anyio.fail_after(10):
                await progressed.wait()
            cancelled_at = time.monotonic()
            call.cancel_scope.cancel()
        with anyio.fail_after(10):
            while not relay.hangups:
                await anyio.sleep(0.02)
    assert relay.hangups[0] - cancelled_at < 2.0


# --- 7: idle and slow connections, large bodies ----------------------------------------------------------


def _open(server: HttpServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 503")


async def test_slow_request_heads_are_cut_off(relay: FakeRelay) -> None:
    """Slowloris: 20 connections that send a header line a byte at a time never finish it."""
    with serving(relay, AITOEARN_HTTP_HEADER_TIMEOUT="1") as server:
        slow = [_open(server) for _ in range(20)]
        for sock in slow:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        closed: set[int] = set()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and len(closed) < len(slow):
            for i, sock in enumerate(slow):
                if i in closed:
                    continue
                try:
                    sock.sendall(b"a")
                except OSError:
                    closed.add(i)
                    continue
                if _closed_by_server(sock):
                    closed.add(i)
                sock.setblocking(True)
            await anyio.sleep(0.2)
        for sock in slow:
            sock.close()
        assert len(closed) == len(slow), f"{len(slow) - len(closed)} slow connections still open after 4 s"
        assert served_a_call(server)


async def test_idle_connections_are_closed_after_the_header_timeout(relay: FakeRelay) -> None:
    with serving(relay, AITOEARN_HTTP_HEADER_TIMEOUT="1") as server:
        idle = [_open(server) for _ in range(200)]
        kept = httpx2.Client()  # a keep-alive connection after one request
        assert kept.get(server.base + "/healthz").status_code == 200
        await anyio.sleep(2.5)
        still_open = sum(not _closed_by_server(sock) for sock in idle)
        for sock in idle:
            sock.close()
        assert still_open == 0
        assert kept.get(server.base + "/healthz").status_code == 200  # a new connection is made and served
        kept.close()


@contextlib.contextmanager
def open_file_limit(limit: int) -> Iterator[None]:
    """Processes started in the block get at most ``limit`` open files (as under ``ulimit -n``)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@posix_only
async def test_idle_connections_past_the_open_file_limit_never_lock_a_client_out(relay: FakeRelay) -> None:
    """300 idle sockets against a server limited to 256 open files: every new client is still served."""
    with open_file_limit(256):
        server = HttpServer(relay)
    try:
        idle = [_open(server) for _ in range(300)]
        await anyio.sleep(0.3)
        with anyio.fail_after(15):
            async with http_client(server.url) as client:
                result = await client.call_tool("send_message", HELLO)
        assert result.content[0].text == "Hello, world."  # type: ignore[union-attr]
        assert sum(_closed_by_server(sock) for sock in idle) >= 300 - 128  # room was made by closing idle ones
        for sock in idle:
            sock.close()
    finally:
        server.stop()


def _peak_rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]


@linux_only
async def test_concurrent_large_bodies_are_held_one_at_a_time(relay: FakeRelay) -> None:
    """Four 50 MB requests at once took 674 MB-1 GB; each is answered and the peak stays bounded."""
    pad = "x" * (50 * 1000 * 1000)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}, "pad": pad,
    }}).encode()  # fmt: skip
    del pad
    with serving(relay) as server:
        before = _peak_rss_mb(server.proc.pid)
        statuses: list[int] = []

        def post() -> None:
            statuses.append(httpx2.post(server.url, content=body, headers=MCP_HEADERS, timeout=60).status_code)

        senders = [threading.Thread(target=post) for _ in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(90)
        peak = _peak_rss_mb(server.proc.pid)
        assert served_a_call(server)
    assert statuses == [200] * 4
    assert peak - before < 400, f"peak {peak} MB from {before} MB"


async def test_a_body_that_never_finishes_gets_408_within_the_body_timeout(relay: FakeRelay) -> None:
    with serving(relay, AITOEARN_HTTP_BODY_TIMEOUT="1") as server:
        sock = _open(server)
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"")  # fmt: skip
        sock.settimeout(5)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):  # the head and the body may come in separate reads
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"AITOEARN_HTTP_BODY_TIMEOUT" in answer, answer[:300]
        assert time.monotonic() - started < 4


# --- 8: deeply nested JSON ---------------------------------------------------------------------------


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "send_message",
                    "arguments": {"model": "claude-sonnet-5", "messages": "@"}}}).replace('"@"', DEEP),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "@"}}).replace(
            '"@"', DEEP
        ),
    ],
    ids=["top-level", "in-arguments", "in-a-cancel"],
)  # fmt: skip
async def test_json_nested_100000_deep_is_a_parse_error(relay: FakeRelay, http_server: HttpServer, body: str) -> None:
    response = httpx2.post(http_server.url, content=body, headers=MCP_HEADERS, timeout=30)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["code"] == -32700  # parse error
    assert "RecursionError" not in http_server.log() and "Traceback" not in http_server.log()
    async with http_client(http_server.url) as client:  # and the server keeps serving
        assert (await client.call_tool("send_message", HELLO)).content[0].text == "Hello, world."  # type: ignore[union-attr]


# --- 9: keys with bytes no key has ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value", "names"),
    [
        ("x-api-key", b"sk-caf\xe9-0123456789", "X-Api-Key header"),
        ("x-api-key", b"sk-\xff\xfe-0123456789", "X-Api-Key header"),
        ("authorization", b"Bearer sk-caf\xe9-0123456789", "Authorization header"),
    ],
)
async def test_a_callers_key_with_bytes_no_key_has_gets_a_clear_401(
    relay: FakeRelay, http_server: HttpServer, header: str, value: bytes, names: str
) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "send_message", "arguments": HELLO}}
    response = httpx2.post(http_server.url, json=call, headers={**MCP_HEADERS, header: value}, timeout=10)
    assert response.status_code == 401, response.text[:300]
    message = response.json()["error"]["message"]
    assert names in message and "non-ASCII" in message and "fix:" in message
    assert "caf" not in message and "0123456789" not in message  # never the key
    assert "Traceback" not in http_server.log() and "0123456789" not in http_server.log()
    assert relay.requests_to(MESSAGES) == []


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("sk-aitoearn-\r\nX-Injected: 1", "a line break"),
        ("sk-aitoearn-first\nsecond-line", "a line break"),
        ("sk-aitoearn-café-0123", "non-ASCII characters"),
    ],
)
@pytest.mark.parametrize("transport", ["stdio", "streamable-http"])
def test_a_key_with_bad_bytes_in_the_environment_stops_start_up(key: str, says: str, transport: str) -> None:
    """Not "connection failed" after three tries: exit 2 at once with one line naming the setting."""
    env = {"PATH": os.environ["PATH"], "AITOEARN_API_KEY": key, "AITOEARN_BASE_URL": "http://127.0.0.1:9"}
    done = subprocess.run([SCRIPT, "--transport", transport, "--port", "1"], capture_output=True, text=True,
                          timeout=20, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert line.count("\n") == 0 and "AITOEARN_API_KEY" in line and says in line and "fix:" in line, line
    assert "sk-aitoearn" not in line and "second-line" not in line and "0123" not in line


def test_the_check_command_refuses_such_a_key_too() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "AITOEARN_API_KEY": KEY[:8] + "\n" + KEY[8:],
        "AITOEARN_BASE_URL": "http://127.0.0.1:9",
    }
    done = subprocess.run([SCRIPT, "check"], capture_output=True, text=True, timeout=20, env=env,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 2 and "AITOEARN_API_KEY contains a line break" in done.stderr
    assert KEY[8:] not in done.stderr and KEY[:8] not in done.stdout + done.stderr
