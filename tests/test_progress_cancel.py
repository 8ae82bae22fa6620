"""Progress and cancellation through a real mcp.Client: in-process, over stdio with a real
``aitoearn-mcp`` subprocess (handshake-era and default modes), and over streamable HTTP."""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from . import sse
from .conftest import HELLO, KEY, http_client, make_server
from .fake_relay import CATALOGUE, FakeRelay, slow_reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
SCRIPT = str(Path(sys.executable).with_name("aitoearn-mcp"))


def stdio(relay: FakeRelay, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=SCRIPT,
        env={"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url, "PATH": os.environ["PATH"], **env},
    )


TARGETS = ["in-process", "stdio-legacy", "stdio-auto", "http"]


def client_for(target: str, relay: FakeRelay, request: pytest.FixtureRequest) -> Client:
    if target == "in-process":
        return Client(make_server(relay))
    if target == "http":
        return http_client(request.getfixturevalue("http_server").url)
    return Client(stdio(relay), mode="legacy" if target == "stdio-legacy" else "auto")


@pytest.mark.parametrize("target", TARGETS)
async def test_progress_rises_and_is_throttled(relay: FakeRelay, target: str, request: pytest.FixtureRequest) -> None:
    pieces = [f"词{i} " for i in range(60)]
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(pieces), delay=0.025))  # ~1.6 s of tokens
    seen: list[tuple[float, float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), progress, message))

    async with client_for(target, relay, request) as client:
        result = await client.call_tool("send_message", HELLO, progress_callback=on_progress)
    assert result.content[0].text == "".join(pieces)
    values = [p for _, p, _ in seen]
    assert values == sorted(set(values)), values  # strictly rising
    assert seen[0][2] == "Request sent; waiting for the first tokens"
    streaming = seen[1:]
    assert len(streaming) >= 6
    duration = streaming[-1][0] - streaming[0][0]
    assert len(streaming) <= duration * 20 + 2  # no more than ~20 a second
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(streaming)]
    assert max(gaps) < 0.3, gaps  # at least one every 250 ms while tokens arrive (+ scheduling slack)
    last_message = streaming[-1][2] or ""
    assert "characters received" in last_message and len(last_message) < 120


@pytest.mark.parametrize("target", TARGETS)
async def test_cancel_closes_the_upstream_stream_at_once(
    relay: FakeRelay, target: str, request: pytest.FixtureRequest
) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"t{i} " for i in range(400)]), delay=0.05))
    got_progress = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if progress > 0:
            got_progress.set()

    async with client_for(target, relay, request) as client:
        async with anyio.create_task_group() as tasks:

            async def call() -> None:
                await client.call_tool("send_message", HELLO, progress_callback=on_progress)

            tasks.start_soon(call)
            with anyio.fail_after(10):
                await got_progress.wait()
            cancelled_at = time.monotonic()
            tasks.cancel_scope.cancel()
        with anyio.fail_after(5):
            while not relay.hangups:
                await anyio.sleep(0.01)
        assert relay.hangups[0] - cancelled_at < 1.0
        # the server keeps serving
        after = await client.call_tool("send_message", HELLO)
        assert after.content[0].text == "Hello, world."
        assert relay.open_connections <= 1  # the cancelled stream's connection is gone; one kept alive at most
    assert len(relay.requests_to(MESSAGES)) == 2


async def test_stdio_lists_and_calls_with_nothing_but_protocol_on_stdout(relay: FakeRelay, tmp_path: Path) -> None:
    from mcp.client.stdio import stdio_client

    errlog = (tmp_path / "stderr.txt").open("w")
    with errlog:
        async with Client(stdio_client(stdio(relay), errlog=errlog)) as client:
            tools = await client.list_tools()
            models = await client.call_tool("list_models", {})
            reply = await client.call_tool("send_message", {**HELLO, "max_tokens": 100})
    assert {t.name for t in tools.tools} == {
        "list_models",
        "send_message",
        "get_reply",
        "list_conversations",
        "generate_image",
        "generate_video",
    }
    assert models.structured_content and len(models.structured_content["models"]) == len(CATALOGUE)
    assert reply.content[0].text == "Hello, world."
    assert relay.requests_to(MESSAGES)[0].json()["max_tokens"] == 100
    logged = (tmp_path / "stderr.txt").read_text()
    # logs go to stderr (the SDK's handler may wrap a long line: look for its parts)
    assert all(
        part in logged for part in ("send_message", "model=claude-sonnet-5", "route=messages", "stop_reason=end_turn")
    )
    assert KEY not in logged


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    import subprocess

    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], **(env or {})}, stdin=subprocess.DEVNULL)  # fmt: skip


def test_bad_base_url_stops_start_up_with_one_line_and_exit_2() -> None:
    done = _run(env={"AITOEARN_BASE_URL": "ftp://aitoearn.ai"})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "AITOEARN_BASE_URL must be an http(s) URL" in done.stderr
    flag = _run("--base-url", "aitoearn.ai")
    assert flag.returncode == 2 and "http(s) URL" in flag.stderr
    bad_number = _run(env={"AITOEARN_READ_TIMEOUT": "soon"})
    assert bad_number.returncode == 2 and "AITOEARN_READ_TIMEOUT must be a number of seconds" in bad_number.stderr


def test_python_dash_m_is_the_same_program() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "aitoearn_mcp", "--version"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout.strip().startswith("aitoearn-mcp ")
