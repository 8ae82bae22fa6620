"""OpenAI chunks → one Anthropic Message: the fold alone, against the ``openai`` SDK's own
stream accumulation, through the relay client under every split of the bytes, and as the
``anthropic`` SDK's Message type."""

from __future__ import annotations

import itertools
import json
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from pydantic import SecretStr

from aitoearn_mcp import ChatCompletionAccumulator, Config, RelayClient, ReplyAccumulator, Route

from .. import sse


def fold(chunks: list[dict[str, Any]]) -> ChatCompletionAccumulator:
    acc = ChatCompletionAccumulator()
    for chunk in chunks:
        acc.feed(chunk)
    return acc


def test_rich_reply_becomes_thinking_text_and_tool_use_blocks() -> None:
    acc = fold(sse.chat_rich_reply())
    message = acc.message()
    assert acc.ended and not acc.complete  # a finish_reason arrived; [DONE] not yet
    assert message["id"] == "chatcmpl-FAKE" and message["model"] == "deepseek-v4-pro"
    assert message["content"] == [
        {"type": "thinking", "thinking": "让我想想……天空 why? 🤔", "signature": ""},
        {"type": "text", "text": "你好，世界！🌍\r\n第二行\r\n"},
        {"type": "tool_use", "id": "call_A", "name": "get_weather", "input": {"city": "北京", "days": 3}},
        {"type": "tool_use", "id": "call_B", "name": "get_time", "input": {"tz": "Asia/Shanghai"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 20, "output_tokens": 42, "cache_read_input_tokens": 100}
    assert acc.text() == "你好，世界！🌍\r\n第二行\r\n"
    anthropic.types.Message.model_validate(message)


@pytest.mark.parametrize(("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens"),
                                              ("tool_calls", "tool_use"), ("content_filter", "refusal")])  # fmt: skip
def test_finish_reasons_map_to_stop_reasons(finish: str, stop: str) -> None:
    message = fold(sse.chat_text_reply(["x"], finish)).message()
    assert message["stop_reason"] == stop
    anthropic.types.Message.model_validate(message)


def test_reasoning_field_whole_tool_calls_without_index_and_deepseek_cache_usage() -> None:
    chunks = [
        sse.chunk({"role": "assistant", "reasoning": "think "}),
        sse.chunk({"reasoning": "more", "content": "answer"}),  # both in one delta: neither is lost
        sse.chunk({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}}]}),
        sse.chunk({"tool_calls": [{"id": "c2", "type": "function", "function": {"name": "b", "arguments": ""}}]}),
        sse.chunk({}, "stop", usage={"prompt_tokens": 50, "completion_tokens": 5, "prompt_cache_hit_tokens": 30,
                                     "prompt_tokens_details": {"image_tokens": 12}}),
    ]  # fmt: skip
    message = fold(chunks).message()
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    assert message["content"][0]["thinking"] == "think more" and message["content"][1]["text"] == "answer"
    assert [(b["id"], b["input"]) for b in message["content"][2:]] == [("c1", {}), ("c2", {})]
    assert message["stop_reason"] == "tool_use"  # "stop" with tool calls still asks for the tools
    assert message["usage"] == {"input_tokens": 20, "output_tokens": 5, "cache_read_input_tokens": 30,
                                "input_tokens_by_modality": {"image": 12}}  # fmt: skip


def test_a_whole_chat_completion_object_is_accepted() -> None:
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-5.5", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "整段", "reasoning_content": "想",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4}}  # fmt: skip
    acc = ReplyAccumulator()
    assert acc.feed_whole(completion) and acc.complete and acc.protocol == "openai"
    assert acc.message()["content"] == [
        {"type": "thinking", "thinking": "想", "signature": ""}, {"type": "text", "text": "整段"},
        {"type": "tool_use", "id": "c", "name": "f", "input": {"a": 1}},
    ]  # fmt: skip


def test_broken_tool_arguments_raise_unless_partial() -> None:
    acc = fold([sse.chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"a": '}}]})])
    from aitoearn_mcp import StreamFormatError

    with pytest.raises(StreamFormatError, match="not valid JSON"):
        acc.message()
    assert acc.message(partial=True)["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]
    assert not acc.ended


# --- against the openai SDK's own accumulation --------------------------------------------------

STREAMS = {
    "rich": sse.chat_rich_reply(),
    "long": sse.chat_text_reply([f"片段{i}，" for i in range(2000)], "length"),
    "refusal": sse.chat_text_reply(["I can't"], "content_filter"),
    "tools only": [sse.chunk({"role": "assistant"}),
                   sse.chunk({"tool_calls": [{"index": 0, "id": "x", "type": "function",
                                              "function": {"name": "f", "arguments": '{"q":'}}]}),
                   sse.chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "天"}'}}]}),
                   sse.chunk({}, "tool_calls"), sse.chunk(usage=sse.USAGE, choices=False)],
}  # fmt: skip


@pytest.mark.parametrize("name", list(STREAMS))
def test_same_reply_as_the_openai_sdk(name: str) -> None:
    chunks = STREAMS[name]
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    # get_final_completion refuses length and content_filter endings; the snapshot is the same fold
    theirs = state.current_completion_snapshot
    mine = fold(chunks).message()
    choice = theirs.choices[0]
    texts = [b["text"] for b in mine["content"] if b["type"] == "text"]
    assert "".join(texts) == (choice.message.content or "")
    calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []]  # type: ignore[union-attr]
    assert [(b["id"], b["name"], b["input"]) for b in mine["content"] if b["type"] == "tool_use"] == calls
    assert mine["stop_reason"] == {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                                   "content_filter": "refusal"}[choice.finish_reason]  # fmt: skip
    assert theirs.usage is not None and mine["usage"]["output_tokens"] == theirs.usage.completion_tokens


# --- through the relay client, any split of the bytes -------------------------------------------


def _client(pieces: list[bytes]) -> httpx2.AsyncClient:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        async def chunks() -> Any:
            for piece in pieces:
                yield piece

        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


async def _send(pieces: list[bytes], route: Route = Route.CHAT_COMPLETIONS) -> dict[str, Any]:
    async with _client(pieces) as http:
        relay = RelayClient(Config(base_url="http://relay.test"), http)
        return await relay.send_message(route, b"{}", SecretStr("k"), ReplyAccumulator())


RICH = sse.chat_rich_reply()
EXPECTED = fold(RICH).message()
FORMS = {"done": sse.encode_chat(RICH), "no done": sse.encode_chat(RICH, done=False),
         "crlf with ids": sse.encode_chat(RICH, crlf=True, ids=True)}  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(form=st.sampled_from(sorted(FORMS)), data=st.data())
def test_any_chunking_gives_the_same_message(form: str, data: st.DataObject) -> None:
    raw = FORMS[form]
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(raw) - 1), max_size=60, unique=True))
    points = [0, *sorted(cuts), len(raw)]
    assert anyio.run(_send, [raw[a:b] for a, b in itertools.pairwise(points)]) == EXPECTED


def test_openai_chunks_on_the_messages_route_are_folded_too() -> None:
    # One published relay version streamed OpenAI chunks on its Claude route.
    assert anyio.run(_send, [sse.encode_chat(RICH)], Route.MESSAGES) == EXPECTED
