"""Operating a shared deployment: graceful drain on SIGTERM, stdio shutdown when the host goes,
Prometheus metrics and the readiness probe, against real server processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from typing import Any

import anyio
import httpx2
import pytest
from mcp.types import CallToolResult

from .. import sse
from ..conftest import HELLO, KEY, HttpServer, RedisServer, free_port, http_client
from ..fake_relay import FakeRelay, Reply, slow_reply
from ..test_progress_cancel import SCRIPT

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
PIECES = [f"片{i} " for i in range(30)]


async def call_during_sigterm(server: HttpServer, after: float, *, second_signal: bool = False) -> dict[str, Any]:
    """Start a slow send_message, send SIGTERM ``after`` seconds in, and collect what happens."""
    seen: dict[str, Any] = {}
    async with http_client(server.url) as client:
        await client.list_tools()  # the client checks results against the tools' schemas: fetch them first

        async def call() -> None:
            seen["result"] = await client.call_tool("send_message", HELLO)
            seen["returned_at"] = time.monotonic()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            await anyio.sleep(after)
            seen["signalled_at"] = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            await anyio.sleep(0.3)
            fresh = httpx2.post(server.url, json={"jsonrpc": "2.0", "id": 9, "method": "ping"},
                                headers={"accept": "application/json, text/event-stream"})  # fmt: skip
            seen["new_request"] = (fresh.status_code, fresh.headers.get("retry-after"))
            seen["readyz"] = httpx2.get(server.base + "/readyz").status_code
            seen["healthz"] = httpx2.get(server.base + "/healthz").status_code
            if second_signal:
                server.proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            while server.proc.poll() is None:
                await anyio.sleep(0.05)
        seen["exit"] = server.proc.returncode
        seen["exited_at"] = time.monotonic()
    return seen


async def test_sigterm_drains_calls_in_flight_then_exits_0(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(PIECES), delay=0.1))  # ~3 s of reply
    server = HttpServer(relay)
    try:
        seen = await call_during_sigterm(server, after=0.8)
    finally:
        server.stop()
    result: CallToolResult = seen["result"]
    assert not result.is_error and result.content[0].text == "".join(PIECES)  # type: ignore[union-attr]  # whole
    assert seen["new_request"] == (503, "5")  # new calls are turned away while it drains
    assert seen["readyz"] == 503 and seen["healthz"] == 200
    assert seen["exit"] == 0
    assert seen["returned_at"] > seen["signalled_at"] + 1.5  # it was let finish
    assert relay.hangups == []  # the relay was never cut off
    assert "Draining: 1 call(s) in flight" in server.log()


async def test_at_the_grace_deadline_calls_return_what_they_have(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(300)]), delay=0.05))  # 15 s
    server = HttpServer(relay, "--shutdown-grace", "1")
    try:
        seen = await call_during_sigterm(server, after=0.8)
    finally:
        server.stop()
    result: CallToolResult = seen["result"]
    assert result.is_error
    text = "\n".join(c.text for c in result.content if c.type == "text")
    assert "shutting down" in text and "incomplete" in text
    kept = result.content[-1].text  # type: ignore[union-attr]
    assert kept.startswith("w0 w1 ") and len(kept) > 20  # what arrived is returned
    assert result.structured_content is not None and result.structured_content["content"][0]["text"] == kept
    assert seen["exit"] == 0
    assert seen["returned_at"] - seen["signalled_at"] < 3  # 1 s of grace, then at once
    assert len(relay.hangups) == 1  # the relay stream was closed: billing stops


async def test_a_second_signal_exits_at_once(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(300)]), delay=0.05))
    server = HttpServer(relay)
    try:
        with pytest.raises(BaseException):  # noqa: B017 (the connection breaks; which error depends on timing)
            await call_during_sigterm(server, after=0.5, second_signal=True)
        with anyio.fail_after(5):
            while server.proc.poll() is None:
                await anyio.sleep(0.05)
    finally:
        server.stop()
    assert server.proc.returncode == 1
    assert "Second signal: exiting now" in server.log()


async def test_stdio_host_closing_stdin_cancels_upstream_and_exits_0(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(300)]), delay=0.05))
    proc = subprocess.Popen([SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url})  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    import json

    for message in [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "send_message", "arguments": HELLO}},
    ]:  # fmt: skip
        proc.stdin.write(json.dumps(message).encode() + b"\n")
    proc.stdin.flush()
    proc.stdout.readline()  # the initialize answer
    with anyio.fail_after(10):
        while not relay.requests_to(MESSAGES):
            await anyio.sleep(0.02)
    await anyio.sleep(0.3)
    closed_at = time.monotonic()
    proc.stdin.close()  # the host goes away
    assert proc.wait(10) == 0
    with anyio.fail_after(5):
        while not relay.hangups:
            await anyio.sleep(0.02)
    assert relay.hangups[0] - closed_at < 1.0


# --- metrics and readiness ---------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{wanted}}} in the metrics")


async def test_metrics_count_calls_latency_retries_characters_and_credits(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply.json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
                                       {"retry-after": "0"}))  # fmt: skip
    server = HttpServer(relay)
    secret_prompt = "my secret prompt 机密"
    try:
        async with http_client(server.url) as client:
            await client.call_tool("send_message", {**HELLO, "messages": [{"role": "user", "content": secret_prompt}]})
            await client.call_tool("send_message", {**HELLO, "model": "deepseek-v4-pro"})
            await client.call_tool("send_message", {**HELLO, "model": "made-up-model-" + "x" * 40})
            await client.call_tool("send_message", {"model": 3})
            await client.call_tool("list_models", {})
        page = httpx2.get(server.base + "/metrics")
    finally:
        server.stop()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert metric(text, "aitoearn_mcp_calls_total", tool="send_message", model="claude-sonnet-5", route="messages",
                  outcome="ok") == 1  # fmt: skip
    assert metric(text, "aitoearn_mcp_calls_total", tool="send_message", model="deepseek-v4-pro",
                  route="chat-completions", outcome="ok") == 1  # fmt: skip
    assert metric(text, "aitoearn_mcp_calls_total", tool="send_message", model="other", outcome="ok") == 1
    assert metric(text, "aitoearn_mcp_calls_total", tool="send_message", outcome="input_error") == 1
    assert metric(text, "aitoearn_mcp_calls_total", tool="list_models", outcome="ok") == 1
    assert metric(text, "aitoearn_mcp_retries_total", cause="529") == 1
    assert metric(text, "aitoearn_mcp_calls_in_flight", tool="send_message") == 0
    assert metric(text, "aitoearn_mcp_upstream_seconds_count", route="messages") == 2
    assert metric(text, "aitoearn_mcp_first_token_seconds_count", route="chat-completions") == 1
    assert metric(text, "aitoearn_mcp_streamed_characters_total", model="claude-sonnet-5", route="messages") == 13
    # 12 in × 0.06 + 42 out × 0.3, per 1K tokens
    assert metric(text, "aitoearn_mcp_credits_estimate_total", model="claude-sonnet-5") == pytest.approx(0.01332)
    assert KEY not in text and "secret prompt" not in text and "机密" not in text and "Hello" not in text
    assert "made-up-model" not in text  # a caller cannot grow the label set


async def test_metrics_are_off_on_a_public_bind_unless_asked(relay: FakeRelay) -> None:
    public = HttpServer(relay, "--host", "0.0.0.0", "--allowed-host", "127.0.0.1")
    asked = HttpServer(relay, "--host", "0.0.0.0", "--allowed-host", "127.0.0.1", "--metrics")
    port = free_port()
    separate = HttpServer(relay, "--host", "0.0.0.0", "--allowed-host", "127.0.0.1", "--metrics-port", str(port))
    try:
        assert httpx2.get(public.base + "/metrics").status_code == 404
        assert httpx2.get(asked.base + "/metrics").status_code == 200
        assert httpx2.get(separate.base + "/metrics").status_code == 404
        assert "aitoearn_mcp_calls_in_flight" in httpx2.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        for server in (public, asked, separate):
            server.stop()


async def test_readyz_follows_the_configured_redis(relay: FakeRelay, redis_server: RedisServer) -> None:
    up = HttpServer(relay, env={"AITOEARN_CONVERSATIONS": redis_server.url})
    down = HttpServer(relay, env={"AITOEARN_CONVERSATIONS": f"redis://127.0.0.1:{free_port()}/0"})
    try:
        ready = httpx2.get(up.base + "/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        not_ready = httpx2.get(down.base + "/readyz")
        assert not_ready.status_code == 503 and "Redis" in not_ready.json()["status"]
        assert httpx2.get(down.base + "/healthz").status_code == 200  # liveness is not readiness
    finally:
        up.stop()
        down.stop()


async def test_workers_sum_their_metrics(relay: FakeRelay) -> None:
    server = HttpServer(relay, "--workers", "2")
    try:
        for _ in range(6):
            async with http_client(server.url) as client:
                await client.call_tool("send_message", HELLO)
        pages = [httpx2.get(server.base + "/metrics").text for _ in range(4)]
        assert len(set(re.findall(r"Started server process \[(\d+)\]", server.log()))) == 2
    finally:
        server.stop()
    for page in pages:  # whichever worker answers, it reports all of them
        assert metric(page, "aitoearn_mcp_calls_total", tool="send_message", model="claude-sonnet-5",
                      outcome="ok") == 6  # fmt: skip


async def test_a_cancel_notification_reaches_only_its_own_callers_call(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(PIECES), delay=0.05))
    server = HttpServer(relay)
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json",
               "mcp-protocol-version": "2025-06-18", "x-api-key": "sk-mallory-0123456789"}  # fmt: skip
    try:
        async with http_client(server.url, {"X-Api-Key": "sk-alice-0123456789"}) as alice:
            await alice.list_tools()
            async with anyio.create_task_group() as tasks:
                results: list[CallToolResult] = []

                async def call() -> None:
                    results.append(await alice.call_tool("send_message", HELLO))

                tasks.start_soon(call)
                await anyio.sleep(0.5)
                for request_id in range(20):  # whatever id alice's call has, mallory names it
                    cancel = {
                        "jsonrpc": "2.0",
                        "method": "notifications/cancelled",
                        "params": {"requestId": request_id},
                    }
                    httpx2.post(server.url, json=cancel, headers=headers)
    finally:
        server.stop()
    assert results[0].content[0].text == "".join(PIECES)  # type: ignore[union-attr]
    assert relay.hangups == []
