"""The key never appears in a result, a log line (any level), an exception text or a repr."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from typing import Any

import pytest
from mcp import Client
from pydantic import SecretStr

from aitoearn_mcp import Config, MissingKeyError, RelayError

from . import sse
from .conftest import HELLO, KEY, make_server
from .fake_relay import FakeRelay, Reply
from .test_failures import CASES, anthropic
from .test_progress_cancel import SCRIPT

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"


async def test_no_failure_leaks_the_key(relay: FakeRelay, caplog: pytest.LogCaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from aitoearn_mcp.relay import _client as _relay

    monkeypatch.setattr(_relay, "MAX_EVENT_BYTES", 4096)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    errors: list[BaseException] = []
    for case in CASES.values():
        relay.enqueue(MESSAGES, *case.replies)
        async with Client(make_server(relay, **case.settings), log_level="debug",
                          logging_callback=lambda p: _keep(seen, p)) as client:  # fmt: skip
            result = await client.call_tool("send_message", HELLO)
            seen.append(result.model_dump_json())
    relay.enqueue(MESSAGES, anthropic(401, "authentication_error", f"bad key {KEY} from {KEY[:10]}"))
    async with Client(make_server(relay)) as client:
        seen.append((await client.call_tool("send_message", HELLO)).model_dump_json())
    config = Config(base_url=relay.url, api_key=SecretStr(KEY))
    seen += [repr(config), str(config), repr(config.api_key), str(config.api_key)]
    errors += [MissingKeyError(), RelayError("x")]
    seen += [str(e) + repr(e) for e in errors]
    seen += [record.getMessage() + repr(record.args) for record in caplog.records]
    assert len(seen) > len(CASES) + 5
    leaked = [text for text in seen if KEY in text]
    assert leaked == []
    assert any("[key]" in text for text in seen)  # the relay's echo was scrubbed, not dropped


async def _keep(seen: list[str], params: Any) -> None:
    seen.append(str(params.data))


def _rpc(id_: int | None, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if id_ is not None:
        message["id"] = id_
    return json.dumps(message).encode() + b"\n"


def test_raw_stdio_carries_only_protocol_and_no_key(relay: FakeRelay, tmp_path: Any) -> None:
    """Drive the real process by hand: every stdout line is JSON-RPC; stderr has the logs."""
    relay.enqueue(MESSAGES, anthropic(401, "authentication_error", f"invalid x-api-key: {KEY}"),
                  Reply.sse(sse.rich_reply()))  # fmt: skip
    stdin = b"".join([
        _rpc(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "raw", "version": "0"}}),
        _rpc(None, "notifications/initialized"),
        _rpc(2, "tools/list"),
        _rpc(3, "tools/call", {"name": "send_message", "arguments": HELLO}),
        _rpc(4, "tools/call", {"name": "send_message", "arguments": {**HELLO, "messages": []}}),
        _rpc(5, "tools/call", {"name": "send_message", "arguments": HELLO}),
        _rpc(6, "tools/call", {"name": "list_models", "arguments": {}}),
    ])  # fmt: skip
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "AITOEARN_API_KEY": KEY,
        "AITOEARN_BASE_URL": relay.url + "/api/ai/",
    }
    errlog = (tmp_path / "stderr").open("wb")
    proc = subprocess.Popen([SCRIPT, "--log-level", "DEBUG"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=errlog, env=env)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
    proc.stdin.flush()
    answers: dict[int, Any] = {}
    lines: list[bytes] = []
    while len(answers) < 6:
        line = proc.stdout.readline()
        assert line, "server closed stdout early"
        lines.append(line)
        message = json.loads(line)  # fails on anything that is not protocol
        assert message["jsonrpc"] == "2.0"
        if "id" in message:
            answers[message["id"]] = message
    proc.stdin.close()
    assert proc.wait(15) == 0
    errlog.close()
    stderr = (tmp_path / "stderr").read_bytes()
    stdout = b"".join(lines)
    # Calls 3 and 5 run at once: either may be the one the relay refused.
    refused, answered = sorted((answers[3]["result"], answers[5]["result"]), key=lambda r: not r.get("isError"))
    assert refused["isError"] is True and "invalid x-api-key: [key]" in refused["content"][0]["text"]
    assert answers[4]["result"]["isError"] is True
    assert answered["content"][0]["text"] == "你好，世界！🌍\r\n第二行\r\n天空是蓝色的。"
    assert answers[6]["result"]["structuredContent"]["models"][0]["name"] == "claude-sonnet-5"
    assert b"send_message model=claude-sonnet-5" in stderr  # logs are on stderr, at DEBUG
    assert KEY.encode() not in stdout and KEY.encode() not in stderr
    # the SDK-style base URL was normalised to the site root
    # (the catalogue is fetched once, for the first call's route, and cached for list_models)
    assert [r.path for r in relay.requests] == ["/api/ai/models/chat", MESSAGES, MESSAGES]
