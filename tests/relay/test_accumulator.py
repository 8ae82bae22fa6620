"""The accumulator alone, then against the anthropic SDK's own accumulation, then under
every way the network can split the bytes."""

from __future__ import annotations

import itertools
import json
from typing import Any

import anthropic
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from aitoearn_mcp import Config, MessageAccumulator, RelayClient, ReplyAccumulator, Route, StreamFormatError

from .. import sse

pytestmark = pytest.mark.anyio


def fold(events: list[dict[str, Any]]) -> MessageAccumulator:
    acc = MessageAccumulator()
    for event in events:
        acc.feed(event)
    return acc


def test_rich_reply_keeps_every_block_and_usage() -> None:
    acc = fold(sse.rich_reply())
    message = acc.message()
    assert acc.complete
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    thinking, text, tool = message["content"]
    assert thinking == {"type": "thinking", "thinking": "让我想想……天空 why? 🤔", "signature": "sig-AbC123=="}
    assert text["text"] == "你好，世界！🌍\r\n第二行\r\n天空是蓝色的。"
    assert text["citations"][0]["cited_text"] == "天空是蓝色的"
    assert tool["input"] == {"city": "北京", "days": 3}
    assert message["stop_reason"] == "tool_use"
    # message_delta usage overwrites totals and keeps what it omits (cache counts from message_start)
    assert message["usage"] == {
        "input_tokens": 12, "output_tokens": 99, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
        "cache_creation": {"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 0},
    }  # fmt: skip
    assert acc.text() == text["text"]


def test_unknown_events_and_blocks_are_kept_not_fatal() -> None:
    events = [
        sse.message_start(),
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"q": "x"}'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "future_delta", "value": 1}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "EmwK"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "future_event", "payload": [1, 2]},
        *sse.message_end(),
    ]  # fmt: skip
    message = fold(events).message()
    assert message["content"][0]["input"] == {"q": "x"}
    assert message["content"][1] == {"type": "redacted_thinking", "data": "EmwK"}
    assert [e["type"] for e in message["unrecognized_events"]] == ["content_block_delta", "future_event"]


@pytest.mark.parametrize(
    ("events", "complaint"),
    [
        ([{"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}], "before message_start"),
        ([sse.message_start(), {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "x"}}],
         "never started"),
        ([sse.message_start(), *sse.tool_use_block(0, "f", ['{"a": '])], "not valid JSON"),
    ],
)  # fmt: skip
def test_malformed_sequences_raise(events: list[dict[str, Any]], complaint: str) -> None:
    with pytest.raises(StreamFormatError, match=complaint):
        fold(events)


def test_partial_message_survives_unfinished_tool_json() -> None:
    acc = fold([sse.message_start(), *sse.text_block(0, ["done "]),
                {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f",
                                                                                "input": {}}},
                {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a'}}])  # fmt: skip
    assert not acc.complete
    assert acc.message(partial=True)["content"][1]["input"] == {}
    assert acc.text() == "done "


def test_progress_tail_is_bounded_and_recent() -> None:
    acc = fold(sse.text_reply([f"word{i} " for i in range(5000)]))
    assert acc.latest_text(40) == "".join(f"word{i} " for i in range(4990, 5000))[-40:]
    assert acc.chars_received == len(acc.text())


# --- differential: the anthropic SDK's accumulation of the same bytes ---------------------


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _transport(body: bytes, chunk: int) -> httpx2.MockTransport:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        async def chunks() -> Any:
            for piece in sse.split_every(body, chunk):
                yield piece

        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())

    return httpx2.MockTransport(handler)


async def ours(body: bytes, chunk: int) -> tuple[dict[str, Any], str]:
    async with httpx2.AsyncClient(transport=_transport(body, chunk)) as http:
        relay = RelayClient(Config(base_url="http://relay.test"), http)
        acc = ReplyAccumulator()
        message = await relay.send_message(Route.MESSAGES, b"{}", SecretStr("k"), acc)
        return message, acc.text()


async def sdk(body: bytes, chunk: int) -> dict[str, Any]:
    async with httpx2.AsyncClient(transport=_transport(body, chunk)) as http:
        client = anthropic.AsyncAnthropic(api_key="k", base_url="http://relay.test/api/ai", http_client=http)
        async with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as s:
            final = await s.get_final_message()
    return final.model_dump(mode="json", exclude_none=True)


STREAMS = {
    "rich": sse.rich_reply(),
    "long": sse.text_reply([f"片段{i}，" for i in range(3000)], stop_reason="max_tokens"),
    "thinking_only": [sse.message_start(), *sse.thinking_block(0, ["a", "b"]), *sse.message_end()],
    "two_texts_and_tools": [
        sse.message_start(), *sse.text_block(0, ["Let me check."]), *sse.tool_use_block(1, "a", ['{"x":', "1}"]),
        *sse.tool_use_block(2, "b", [], tool_id="toolu_2"), *sse.message_end(stop_reason="tool_use"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", list(STREAMS))
@pytest.mark.parametrize("crlf", [False, True])
async def test_same_message_as_the_anthropic_sdk(name: str, crlf: bool) -> None:
    body = sse.encode(STREAMS[name], crlf=crlf)
    mine, text = await ours(body, chunk=13)
    theirs = await sdk(body, chunk=13)
    assert _drop_none(mine) == _drop_none(theirs)
    assert text == "".join(b.get("text", "") for b in theirs["content"] if b["type"] == "text")


# --- any split of the bytes gives the same message ----------------------------------------

RICH_BYTES = sse.encode(sse.rich_reply(), crlf=True)
EXPECTED = fold(sse.rich_reply()).message()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(RICH_BYTES) - 1), max_size=60, unique=True))
def test_any_chunking_gives_the_same_message(cuts: list[int]) -> None:
    import anyio

    points = [0, *sorted(cuts), len(RICH_BYTES)]
    pieces = [RICH_BYTES[a:b] for a, b in itertools.pairwise(points)]

    async def run() -> dict[str, Any]:
        async def handler(request: httpx2.Request) -> httpx2.Response:
            async def chunks() -> Any:
                for piece in pieces:
                    yield piece

            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())

        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            relay = RelayClient(Config(base_url="http://relay.test"), http)
            return await relay.send_message(Route.MESSAGES, b"{}", SecretStr("k"), ReplyAccumulator())

    assert anyio.run(run) == EXPECTED
    assert json.dumps(EXPECTED, ensure_ascii=False).count("🌍") == 1


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.text(max_size=5), max_size=700), limit=st.integers(min_value=1, max_value=60))
def test_packed_pieces_join_and_tail_exactly(pieces: list[str], limit: int) -> None:
    from aitoearn_mcp.relay._accumulator import Pieces

    packed = Pieces()
    for piece in pieces:
        packed.append(piece)
    joined = "".join(pieces)
    assert packed.join() == joined
    assert bool(packed) == bool(pieces)
    # the tail is exact when the latest pieces hold enough, else the latest text it has
    assert joined.endswith(packed.tail(limit)) and len(packed.tail(limit)) <= limit
    assert packed.tail(limit) == joined[-limit:] or len(pieces) >= 256
