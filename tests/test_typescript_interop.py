"""Interoperability with the official TypeScript MCP SDK (``@modelcontextprotocol/sdk`` from
npm, on Node 22): over stdio and over streamable HTTP it lists the tools, calls send_message
with progress and ``resetTimeoutOnProgress``, and cancels with an AbortSignal; the relay sees
its connection closed within a second."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from . import sse
from .conftest import KEY, HttpServer
from .fake_relay import FakeRelay, slow_reply
from .node import PREFIX, ensure_node
from .test_progress_cancel import SCRIPT

CLIENT = Path(__file__).resolve().parent / "interop" / "ts_client.mjs"
MESSAGES = "/api/ai/v1/messages"
PIECES = [f"慢{i} " for i in range(30)]  # ~3 s, one every 100 ms


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_typescript_sdk_lists_calls_with_progress_and_cancels(relay: FakeRelay, transport: str) -> None:
    node = ensure_node()
    script = PREFIX / CLIENT.name  # ES modules resolve packages from the script's own folder
    shutil.copyfile(CLIENT, script)
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(PIECES), delay=0.1))
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(400)]), delay=0.05))
    server = HttpServer(relay) if transport == "http" else None
    try:
        target = server.url if server else SCRIPT
        done = subprocess.run(
            [str(node), str(script), transport, target], capture_output=True, text=True, timeout=120,
            env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url},
        )  # fmt: skip
    finally:
        if server:
            server.stop()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["tools"] == [
        "generate_image",
        "generate_video",
        "get_reply",
        "list_conversations",
        "list_models",
        "send_message",
    ]
    # a 3 s reply under a 1 s timeout: alive only because progress reset it
    assert not seen["isError"] and seen["text"] == "".join(PIECES) and seen["route"] == "messages"
    assert len(seen["progress"]) >= 10 and seen["progress"] == sorted(set(seen["progress"]))
    assert seen["cancelError"] and "cancelled" in seen["cancelError"].lower()
    assert len(relay.hangups_wall) == 1
    assert relay.hangups_wall[0] - seen["cancelledAt"] / 1000 < 1.0
    assert len(relay.requests_to(MESSAGES)) == 2
    assert time.time() - relay.hangups_wall[0] < 120
