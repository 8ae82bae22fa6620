"""Every documented failure of the relay, injected through the fake relay: what the agent
sees, how many requests were made, and that nothing paid for is lost."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from mcp import Client

from aitoearn_mcp.relay import _client as _relay

from . import sse
from .conftest import HELLO, KEY, make_server
from .fake_relay import FakeRelay, Reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"

HALF = [sse.message_start(), {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *[{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
          for t in ["已经收到的", "文字 ", "kept."]]]  # fmt: skip
HALF_TEXT = "已经收到的文字 kept."


def wrapper(code: int, message: str, **extra: Any) -> Reply:
    return Reply.json(200, {"data": {}, "code": code, "message": message, "timestamp": 1764000000000, **extra})


def anthropic(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)


@dataclass
class Case:
    replies: list[Reply]
    says: list[str]
    requests: int = 1
    partial: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


RETRY_NOW = {"retry-after": "0"}

CASES: dict[str, Case] = {
    "wrapper 401": Case([wrapper(401, "Unauthorized")],
                        ["rejected the API key", "code 401: Unauthorized", "bound to the site", "AITOEARN_BASE_URL"]),
    "wrapper 19000": Case([wrapper(19000, "API Key 无效", requestId="req-19")],
                          ["rejected the API key", "code 19000: API Key 无效", "Request id: req-19"]),
    "wrapper 12001": Case([wrapper(12001, "用户Credits不足")], ["out of credits", "code 12001: 用户Credits不足", "top up"]),
    "wrapper 12300": Case([wrapper(12300, "无效的 AI 模型")],
                          ["does not accept this model", "code 12300", "list_models lists 'claude-sonnet-5' (channel anthropic)",
                           "AITOEARN_ROUTE=chat-completions"]),
    "wrapper 10002": Case([wrapper(10002, "messages.0.content should not be empty")],
                          ["refused the request as invalid", "code 10002: messages.0.content should not be empty"]),
    "wrapper 400": Case([wrapper(400, "max_tokens must be an integer")], ["code 400: max_tokens must be an integer"]),
    "wrapper 500 retried": Case([wrapper(500, "Internal error")] * 3, ["failed to answer", "code 500"], requests=3,
                                settings={"max_retries": 2}),
    "401 authentication_error": Case([anthropic(401, "authentication_error", "invalid x-api-key", {"request-id": "req_01A"})],
                                     ["rejected the API key", "authentication_error: invalid x-api-key",
                                      "AITOEARN_BASE_URL", "Request id: req_01A"]),
    "403 permission_error": Case([anthropic(403, "permission_error", "no access")], ["may not use this"]),
    "400 invalid_request_error": Case([anthropic(400, "invalid_request_error", "messages: roles must alternate")],
                                      ["invalid_request_error: messages: roles must alternate"]),
    "404 not_found model": Case([anthropic(404, "not_found_error", "model: claude-sonet-5")],
                                ["does not accept this model", "list_models lists 'claude-sonnet-5'"]),
    "413 request_too_large": Case([anthropic(413, "request_too_large", "too big")], ["too large", "fewer or shorter"]),
    "429 rate_limit retried then given up": Case(
        [anthropic(429, "rate_limit_error", "slow down", RETRY_NOW)] * 2, ["rate limiting", "rate_limit_error"],
        requests=2, settings={"max_retries": 1}),
    "529 overloaded then success": Case(
        [anthropic(529, "overloaded_error", "Overloaded", RETRY_NOW), Reply.sse(sse.text_reply(["ok"]))], [],
        requests=2),
    "500 api_error retries 0": Case([anthropic(500, "api_error", "boom")], ["internal error", "api_error: boom"],
                                    settings={"max_retries": 0}),
    "502 html gateway page": Case([Reply.html(502, "502 Bad Gateway")] * 3,
                                  ["HTTP 502", "Relay said: 502 Bad Gateway."], requests=3),
    "404 html": Case([Reply.html(404, "Not Found")], ["HTTP 404", "Not Found", "AITOEARN_BASE_URL"]),
    "error event mid-stream": Case(
        [Reply.sse([*HALF, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}])],
        ["incomplete", "overloaded_error: Overloaded"], partial=True),
    "error event first": Case(
        [Reply.sse([{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}])],
        ["overloaded", "overloaded_error: Overloaded"]),
    "dropped connection": Case([Reply.sse(HALF, end="drop")], ["incomplete", "connection dropped"], partial=True),
    "no message_stop": Case([Reply.sse(HALF)], ["incomplete", "ended before message_stop"], partial=True),
    "malformed json": Case([Reply(chunks=[sse.encode(HALF) + b"event: content_block_delta\ndata: {not json\n\n"])],
                           ["incomplete", "malformed stream", "not JSON"], partial=True),
    "oversized event": Case([Reply(chunks=[sse.encode(HALF) + b"data: " + b"x" * 5000 + b"\n\n"])],
                            ["incomplete", "over 4,096 bytes"], partial=True),
    "idle read timeout": Case([Reply.sse(HALF, end="hang")], ["incomplete", "idle read timeout", "AITOEARN_READ_TIMEOUT"],
                              partial=True, settings={"read_timeout": 0.3}),
    "overall deadline": Case([Reply.sse(HALF, end="hang")],
                             ["incomplete", "deadline of 0.5 s", "AITOEARN_DEADLINE"], partial=True,
                             settings={"deadline": 0.5}),
}  # fmt: skip


@pytest.fixture(autouse=True)
def small_event_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_relay, "MAX_EVENT_BYTES", 4096)


@pytest.mark.parametrize("name", list(CASES))
async def test_failure_is_an_actionable_error(relay: FakeRelay, name: str) -> None:
    case = CASES[name]
    relay.enqueue(MESSAGES, *case.replies)
    async with Client(make_server(relay, **case.settings)) as client:
        result = await client.call_tool("send_message", HELLO)
        # and the server keeps serving
        after = await client.call_tool("send_message", HELLO)
    assert not after.is_error and after.content[0].text == "Hello, world."
    assert len(relay.requests_to(MESSAGES)) == case.requests + 1
    text = "\n".join(c.text for c in result.content)
    if not case.says:
        assert not result.is_error and result.content[0].text == "ok"
        return
    assert result.is_error, text
    for phrase in case.says:
        assert phrase.lower() in text.lower(), (phrase, text)
    assert "Fix:" in text
    assert "<html" not in text and "xxxx" not in text
    assert KEY not in text
    if case.partial:
        assert result.content[-1].text == HALF_TEXT  # every byte that arrived, exactly
        assert result.structured_content is not None
        assert result.structured_content["content"][0]["text"] == HALF_TEXT
        # hosts that show only the structured content see the failure too
        assert "incomplete" in result.structured_content["error"] and "Fix:" in result.structured_content["error"]
    else:
        assert HALF_TEXT not in text


async def test_backoff_without_retry_after_waits_and_logs(relay: FakeRelay, caplog: pytest.LogCaptureFixture) -> None:
    relay.enqueue(MESSAGES, anthropic(503, "api_error", "unavailable"), Reply.sse(sse.text_reply(["fine"])))
    logs: list[str] = []

    async def on_log(params: Any) -> None:
        logs.append(str(params.data))

    async with Client(make_server(relay), logging_callback=on_log, log_level="info") as client:
        started = time.monotonic()
        result = await client.call_tool("send_message", HELLO)
        waited = time.monotonic() - started
    assert result.content[0].text == "fine"
    assert 0.25 <= waited < 2.0  # first backoff: 0.25-0.5 s with jitter
    assert len(logs) == 1 and "attempt 1 of 3" in logs[0] and "retrying in" in logs[0]
    assert [r.getMessage() for r in caplog.records if r.name == "aitoearn_mcp" and r.levelname == "WARNING"] == logs


async def test_retry_after_is_honoured(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, anthropic(429, "rate_limit_error", "wait", {"retry-after": "1"}),
                  Reply.sse(sse.text_reply(["fine"])))  # fmt: skip
    async with Client(make_server(relay)) as client:
        started = time.monotonic()
        await client.call_tool("send_message", HELLO)
    assert time.monotonic() - started >= 0.95


async def test_retry_after_http_date() -> None:
    from email.utils import formatdate

    from aitoearn_mcp.relay._error_forms import parse_retry_after

    now = time.time()
    assert parse_retry_after({"retry-after": formatdate(now + 30, usegmt=True)}, now) == pytest.approx(30, abs=1.5)
    assert parse_retry_after({"retry-after": "garbage"}, now) is None
    assert parse_retry_after({}, now) is None


async def test_connection_refused_is_retried_then_explained() -> None:
    with anyio.fail_after(10):
        from pydantic import SecretStr

        from aitoearn_mcp import Config, create_server

        server = create_server(Config(base_url="http://127.0.0.1:9", api_key=SecretStr(KEY), max_retries=1))
        async with Client(server) as client:
            result = await client.call_tool("send_message", HELLO)
    assert result.is_error
    assert "Could not connect to 127.0.0.1:9" in result.content[0].text
    assert "AITOEARN_BASE_URL" in result.content[0].text


async def test_relay_echoing_the_key_is_scrubbed(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, anthropic(401, "authentication_error", f"invalid x-api-key {KEY}"))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", HELLO)
    assert KEY not in result.content[0].text
    assert "invalid x-api-key [key]" in result.content[0].text
