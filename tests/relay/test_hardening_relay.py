"""Relay faults from the adversarial review (issue 17, items 16-20; issue 16, item 9): a huge
reply, the key echoed by the relay, catalogue faults, JSON nested 100,000 deep, echoed names
that forge log lines or blow the result budget. Each attack runs against the fake relay on a
real socket, through a real MCP client."""

from __future__ import annotations

import gc
import json
import logging
import time
import weakref
from decimal import Decimal
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr

from aitoearn_mcp import Config
from aitoearn_mcp._config import ConfigError
from aitoearn_mcp.relay import _catalogue
from aitoearn_mcp.relay._catalogue import Catalogue
from aitoearn_mcp.relay._client import RelayClient, new_http_client

from .. import sse
from ..conftest import HELLO, KEY, HttpServer, http_client, make_server
from ..fake_relay import CATALOGUE, FakeRelay, Reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
MODELS = "/api/ai/models/chat"
MB = 1024 * 1024


def everything(result: CallToolResult) -> str:
    return result.model_dump_json()


def events(*items: dict[str, Any]) -> bytes:
    return sse.encode(list(items), pings=False, comments=False)


def big_text_events(total_chars: int, piece: int = 4000) -> tuple[list[bytes], str]:
    """A reply of ``total_chars`` characters in deltas of ``piece``, one SSE event per chunk."""
    pieces = [(f"{i:08d}" + "x" * piece)[:piece] for i in range(total_chars // piece)]
    head = events(sse.message_start(), {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})  # fmt: skip
    body = [events({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})
            for p in pieces]  # fmt: skip
    tail = events({"type": "content_block_stop", "index": 0}, *sse.message_end())
    return [head, *body, tail], "".join(pieces)


# --- item 16: a reply past the size bound -------------------------------------------------


async def test_a_reply_past_the_bound_is_cut_kept_and_its_stream_closed(relay: FakeRelay) -> None:
    chunks, full = big_text_events(12 * MB)
    relay.enqueue(MESSAGES, Reply(chunks=chunks[:-1], end="hang"))  # a relay that would go on for ever
    async with Client(make_server(relay, max_reply_bytes=2 * MB, read_timeout=20)) as client:
        with anyio.fail_after(15):
            result = await client.call_tool("send_message", HELLO)
        assert result.is_error
        assert result.structured_content is not None
        error = result.structured_content["error"]
        assert "limit of 2,097,152 bytes (AITOEARN_MAX_REPLY_BYTES)" in error and "closed the stream" in error
        assert "raise AITOEARN_MAX_REPLY_BYTES" in result.content[0].text
        # What arrived is kept: the beginning is shown, the whole partial reply is stored.
        shown = result.content[1].text
        assert len(shown) > 10_000 and full.startswith(shown)
        uri = result.structured_content["truncated"]["uri"]
        kept = (await client.read_resource(uri)).contents[0].text  # type: ignore[union-attr]
    assert 1.8 * MB < len(kept) <= 2 * MB and full.startswith(kept)
    with anyio.move_on_after(5):
        while not relay.hangups:
            await anyio.sleep(0.05)
    assert relay.hangups, "the relay's stream was not closed: it would generate (and bill) on"


async def test_a_cut_reply_is_freed_when_its_call_ends_not_at_the_next_garbage_collection(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aitoearn_mcp.relay import _reply as _reply

    folds: list[weakref.ref[_reply.ReplyAccumulator]] = []
    init = _reply.ReplyAccumulator.__init__

    def tracked(self: _reply.ReplyAccumulator) -> None:
        init(self)
        folds.append(weakref.ref(self))

    monkeypatch.setattr(_reply.ReplyAccumulator, "__init__", tracked)
    chunks, _ = big_text_events(4 * MB)
    relay.enqueue(MESSAGES, Reply(chunks=chunks[:-1], end="drop"), Reply(chunks=chunks, end="hang"))
    gc.collect()
    gc.disable()  # only reference counting frees what the call held
    try:
        async with Client(make_server(relay, max_reply_bytes=2 * MB)) as client:
            dropped = await client.call_tool("send_message", HELLO)  # the relay hangs up mid-reply
            cut = await client.call_tool("send_message", HELLO)  # past the bound
            assert dropped.is_error and cut.is_error
            await anyio.sleep(0.2)
            assert len(folds) == 2 and [fold() for fold in folds] == [None, None]
    finally:
        gc.enable()


async def test_a_whole_json_reply_past_the_bound_is_refused_with_the_setting(relay: FakeRelay) -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-5",
               "content": [{"type": "text", "text": "y" * (3 * MB)}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
    relay.enqueue(MESSAGES, Reply.json(200, message))
    async with Client(make_server(relay, max_reply_bytes=2 * MB)) as client:
        result = await client.call_tool("send_message", HELLO)
    assert result.is_error
    assert "AITOEARN_MAX_REPLY_BYTES" in result.content[0].text and "did not read it" in result.content[0].text


async def test_the_default_bound_is_32_mib_and_holds(relay: FakeRelay) -> None:
    assert Config().max_reply_bytes == 32 * MB
    chunks, full = big_text_events(40 * MB, piece=64 * 1024)
    relay.enqueue(MESSAGES, Reply(chunks=chunks))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", HELLO)
        assert result.is_error and result.structured_content is not None
        assert "limit of 33,554,432 bytes" in result.structured_content["error"]
        uri = result.structured_content["truncated"]["uri"]
        kept = (await client.read_resource(uri)).contents[0].text  # type: ignore[union-attr]
    assert 31 * MB < len(kept) <= 32 * MB and full.startswith(kept)


def test_the_bound_is_a_setting() -> None:
    assert Config.from_env({"AITOEARN_MAX_REPLY_BYTES": "5000000"}).max_reply_bytes == 5_000_000
    assert Config.from_env({"AITOEARN_MAX_REPLY_BYTES": "5000000"}).to_env()["AITOEARN_MAX_REPLY_BYTES"] == "5000000"
    with pytest.raises(ConfigError, match="AITOEARN_MAX_REPLY_BYTES"):
        Config.from_env({"AITOEARN_MAX_REPLY_BYTES": "10"})


# --- item 17: the key in anything the relay sends -------------------------------------------


async def test_the_key_echoed_anywhere_by_the_relay_never_reaches_the_result(
    relay: FakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    half = len(KEY) // 2
    start = sse.message_start()
    start["message"].update(id=f"msg_{KEY}", model=f"claude-sonnet-5-{KEY}")
    reply = [start, *sse.text_block(0, [f"echo {KEY[:half]}", f"{KEY[half:]} done"]),
             *sse.tool_use_block(1, f"tool_{KEY}", [json.dumps({"k": KEY})]),
             *sse.message_end(stop_reason="tool_use")]  # fmt: skip
    relay.enqueue(MESSAGES, Reply.sse(reply, headers={"content-type": "text/event-stream", "request-id": KEY}))
    error = {"type": "error", "error": {"type": f"overloaded_{KEY}", "message": f"busy {KEY}"}}
    relay.enqueue(MESSAGES, Reply.json(529, error, {"request-id": f"req-{KEY}", "retry-after": "0"}))
    relay.enqueue(MESSAGES, Reply.json(401, {"code": f"c{KEY}", "message": KEY}, {"x-request-id": KEY}))
    midstream = [*sse.text_reply(["part"])[:3], {"type": "error", "error": {"type": "api_error", "message": KEY}}]
    relay.enqueue(MESSAGES, Reply.sse(midstream, headers={"content-type": "text/event-stream", "request-id": KEY}))
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with Client(make_server(relay, max_retries=0)) as client:
        for _ in range(4):
            seen.append(everything(await client.call_tool("send_message", HELLO, progress_callback=on_progress)))
    # Our own log lines (httpcore2's DEBUG trace prints response headers as received).
    seen += [record.getMessage() for record in caplog.records if record.name == "aitoearn_mcp"]
    assert [text for text in seen if KEY in text] == []
    assert any("echo [key] done" in text for text in seen)
    assert any("Request id: [key]" in text for text in seen)


async def test_a_key_cut_by_a_length_limit_leaves_none_of_itself(relay: FakeRelay) -> None:
    start = sse.message_start(model="m" * 190 + KEY)  # names are cut at 200 characters
    relay.enqueue(MESSAGES, Reply.sse([start, *sse.text_block(0, ["ok"]), *sse.message_end()]))
    headers = {"content-type": "application/json", "request-id": "r" * 190 + KEY}
    relay.enqueue(MESSAGES, Reply(status=400, headers=headers, chunks=[("x" * 990 + KEY).encode()]))
    async with Client(make_server(relay)) as client:
        results = [everything(await client.call_tool("send_message", HELLO)) for _ in range(2)]
    assert [text for text in results if KEY[:8] in text] == []
    assert "[key]" in results[0] and "[key]" in results[1]


# --- item 18: catalogue faults ----------------------------------------------------------------


async def test_a_hung_catalogue_costs_one_wait_not_one_per_call(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_catalogue, "LOOKUP_WAIT", 0.5)
    relay.route(MODELS, lambda _: Reply(headers={"content-type": "application/json"}, chunks=[], end="hang"))
    async with Client(make_server(relay)) as client:
        first = await client.call_tool("send_message", HELLO)
        started = time.monotonic()
        later = [await client.call_tool("send_message", HELLO) for _ in range(3)]
        elapsed = time.monotonic() - started
    assert not first.is_error and not any(r.is_error for r in later)
    assert len(relay.requests_to(MODELS)) == 1  # the timed-out fetch started the back-off
    assert elapsed < 1.5  # three calls: no 0.5 s wait each


async def test_each_key_sees_only_its_own_catalogue(relay: FakeRelay) -> None:
    private = {"name": "private-model-of-alice", "channel": "anthropic"}
    relay.enqueue(MODELS, Reply.json(200, {"data": [*CATALOGUE, private], "code": 0}))
    catalogue = Catalogue(ttl=300)
    config = Config(base_url=relay.url)
    async with new_http_client(config) as http:
        client = RelayClient(config, http)
        alice = await catalogue.get(client, SecretStr("alice-key-0123456789"))
        bob = await catalogue.get(client, SecretStr("bob-key-0123456789"))
        bob_entry = await catalogue.entry("private-model-of-alice", client, SecretStr("bob-key-0123456789"))
    assert "private-model-of-alice" in [e["name"] for e in alice]
    assert "private-model-of-alice" not in [e["name"] for e in bob] and bob_entry is None
    assert [r.headers["x-api-key"] for r in relay.requests_to(MODELS)] == ["alice-key-0123456789", "bob-key-0123456789"]


async def test_over_http_a_callers_catalogue_is_never_shown_to_another_key(
    relay: FakeRelay, http_server: HttpServer
) -> None:
    private = {"name": "private-model-of-alice", "channel": "anthropic"}
    relay.enqueue(MODELS, Reply.json(200, {"data": [*CATALOGUE, private], "code": 0}))
    async with http_client(http_server.url, {"X-Api-Key": "alice-key-0123456789"}) as alice:
        seen_by_alice = (await alice.call_tool("list_models", {})).content[0].text  # type: ignore[union-attr]
    async with http_client(http_server.url, {"X-Api-Key": "bob-key-0123456789"}) as bob:
        seen_by_bob = (await bob.call_tool("list_models", {})).content[0].text  # type: ignore[union-attr]
    assert "private-model-of-alice" in seen_by_alice and "private-model-of-alice" not in seen_by_bob


@pytest.mark.parametrize("price", ["1e999999999", "1e-9999999", "9" * 1_000_000, "0." + "0" * 999_999 + "1"])
async def test_an_absurd_price_makes_no_estimate_and_never_costs_the_reply(relay: FakeRelay, price: str) -> None:
    entry = {"name": "claude-sonnet-5", "channel": "anthropic",
             "pricing": {"tiers": [{"input": {"text": price}, "output": {"text": "0.3"}}]}}  # fmt: skip
    relay.route(MODELS, lambda _: Reply.json(200, {"data": [entry], "code": 0}))
    async with Client(make_server(relay)) as client:
        started = time.monotonic()
        result = await client.call_tool("send_message", HELLO)
        elapsed = time.monotonic() - started
    assert not result.is_error and result.content[0].text == "Hello, world."
    assert result.structured_content is not None
    assert result.structured_content["credits"]["estimate"] is None
    assert "Credits: no estimate" in result.content[-1].text
    assert len(everything(result)) < 10_000 and elapsed < 2.0


async def test_a_partial_reply_estimate_counts_the_output_that_arrived(relay: FakeRelay) -> None:
    text = "已经收到的文字 " * 31 + "kept, all of it. " * 30  # 248 CJK/space characters and 510 ASCII
    pieces = [text[i : i + 50] for i in range(0, len(text), 50)]
    relay.enqueue(MESSAGES, Reply.sse([sse.message_start(), *sse.text_block(0, pieces)[:-1]], end="drop"))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", HELLO)
    assert result.is_error and result.structured_content is not None
    credits = result.structured_content["credits"]
    ascii_chars = len(text.encode("ascii", "ignore"))
    tokens = -(-ascii_chars // 4) + (len(text) - ascii_chars)
    assert Decimal(credits["estimate"]) == (12 * Decimal("0.06") + tokens * Decimal("0.3")) / 1000
    assert (
        f"the {tokens:,} output tokens are estimated from the {len(text):,} characters that arrived"
        in (credits["basis"])
    )
    assert (
        "stopped before the relay reported usage" in credits["basis"] and "input is not counted" not in credits["basis"]
    )


async def test_an_openai_reply_without_usage_estimates_its_output_and_says_the_input_is_not_counted(
    relay: FakeRelay,
) -> None:
    chunks = sse.chat_text_reply(["x" * 400])[:-1]  # no usage chunk
    relay.enqueue("/api/ai/chat/completions", Reply.chat(chunks))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", {**HELLO, "model": "deepseek-v4-pro"})
    assert not result.is_error and result.structured_content is not None
    credits = result.structured_content["credits"]
    assert Decimal(credits["estimate"]) == 100 * Decimal("0.016") / 1000
    assert "the 100 output tokens are estimated from the 400 characters" in credits["basis"]
    assert "the relay reported no output tokens" in credits["basis"] and "input is not counted" in credits["basis"]


# --- item 19: JSON nested 100,000 deep ----------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
HALF = [sse.message_start(), {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "已经收到的文字 kept."}}]  # fmt: skip


def _nested(depth: int) -> dict[str, Any]:
    inner: Any = "bottom"
    for _ in range(depth):
        inner = {"a": inner}
    return inner


@pytest.mark.parametrize(
    "last",
    [
        f"event: content_block_delta\ndata: {DEEP}\n\n".encode(),
        f'event: content_block_delta\ndata: {{"type": "content_block_delta", "index": 0, "x": {DEEP}}}\n\n'.encode(),
        events({"type": "mystery_event", "payload": _nested(300)}),  # loads, but no host could be sent it
    ],
    ids=["bare", "in-an-event", "300-deep-unknown-event"],
)
async def test_deep_json_in_the_stream_is_a_malformed_stream_and_the_text_is_kept(
    relay: FakeRelay, last: bytes
) -> None:
    relay.enqueue(MESSAGES, Reply(chunks=[events(*HALF), last]))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", HELLO)
    assert result.is_error
    assert "malformed stream" in result.content[0].text
    assert result.content[1].text == "已经收到的文字 kept."


@pytest.mark.parametrize(
    ("status", "says"),
    [(200, "The relay answered HTTP 200"), (500, "The relay answered HTTP 500"), (401, "The relay answered HTTP 401")],
)
async def test_deep_json_bodies_are_clear_errors(relay: FakeRelay, status: int, says: str) -> None:
    relay.enqueue(MESSAGES, Reply(status=status, headers={"content-type": "application/json"}, chunks=[DEEP.encode()]))
    async with Client(make_server(relay, max_retries=0)) as client:
        result = await client.call_tool("send_message", HELLO)
    assert result.is_error and says in result.content[0].text
    assert "Error executing tool" not in result.content[0].text


async def test_a_deep_catalogue_is_a_clear_error(relay: FakeRelay) -> None:
    relay.enqueue(MODELS, Reply(headers={"content-type": "application/json"}, chunks=[DEEP.encode()]))
    async with Client(make_server(relay, max_retries=0)) as client:
        result = await client.call_tool("list_models", {})
    assert result.is_error and "The relay answered HTTP 200" in result.content[0].text


# --- item 20: echoed names, log lines ----------------------------------------------------------


async def test_a_newline_in_a_model_name_cannot_forge_a_log_line(
    relay: FakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    forged = "claude-sonnet-5\n2026-11-25 12:00:00 WARNING aitoearn_mcp: forged"
    start = sse.message_start()
    relay.enqueue(MESSAGES, Reply.sse([start, *sse.text_block(0, ["ok"]), *sse.message_end(stop_reason="a\rb\u2028c")]))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", {**HELLO, "model": forged})
    assert not result.is_error
    lines = [record.getMessage() for record in caplog.records if record.name == "aitoearn_mcp"]
    assert any("claude-sonnet-5\\n2026-11-25" in line for line in lines)
    assert any("stop_reason=a\\rb\\u2028c" in line for line in lines)
    assert not any(ch in line for line in lines for ch in "\n\r\u2028")


@pytest.mark.parametrize("route", ["anthropic", "openai"])
async def test_a_huge_echoed_model_name_is_cut(relay: FakeRelay, route: str) -> None:
    huge = "m" * 300_000
    if route == "anthropic":
        relay.enqueue(MESSAGES, Reply.sse([sse.message_start(model=huge), *sse.text_block(0, ["Hello."]),
                                           *sse.message_end()]))  # fmt: skip
        args = HELLO
    else:
        relay.enqueue("/api/ai/chat/completions", Reply.chat(sse.chat_text_reply(["Hello."], model=huge)))
        args = {**HELLO, "model": "deepseek-v4-pro"}
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", args)
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["model"].startswith("mmmm") and len(result.structured_content["model"]) < 300
    assert len(everything(result)) < 10_000


async def test_unknown_events_and_fields_are_kept_only_up_to_a_bound(relay: FakeRelay) -> None:
    mystery = [{"type": "mystery", "n": i, "blob": "z" * 5000} for i in range(1000)]
    start = sse.message_start()
    start["message"].update({f"field_{i}": "f" * 3000 for i in range(300)})
    relay.enqueue(MESSAGES, Reply.sse([start, *mystery, *sse.text_block(0, ["ok"]), *sse.message_end()]))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", HELLO)
    assert not result.is_error and result.structured_content is not None
    kept = result.structured_content.get("unrecognized_events", [])
    assert len(kept) > 0 and len(json.dumps(kept)) <= 12_000
    assert len(everything(result)) < 20_000
