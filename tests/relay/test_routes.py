"""Every catalogue model through send_message, via a real mcp.Client against the fake relay:
the route each channel takes, the fallback for models the catalogue does not list, the
OpenAI route's failure forms, the relay's NestJS framings, and the notes and credits the
model reads in both parts of the result."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from mcp import Client
from mcp.types import CallToolResult

from .. import sse
from ..conftest import KEY, make_server
from ..fake_relay import CATALOGUE, FakeRelay, Reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
CHAT = "/api/ai/chat/completions"
MODELS = "/api/ai/models/chat"


def ask(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Say hello."}], **extra}


def all_text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e["name"] for e in CATALOGUE])
async def test_every_catalogue_model_answers_in_one_shape(relay: FakeRelay, entry: dict[str, Any]) -> None:
    model = entry["name"]
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask(model))
    assert not result.is_error, all_text(result)
    assert result.content[0].text == "Hello, world."
    message = result.structured_content
    assert message is not None
    anthropic.types.Message.model_validate(message)  # one shape whatever model answers
    anthropic_channel = entry["channel"] == "anthropic"
    route = "messages" if anthropic_channel else "chat-completions"
    assert message["route"] == route
    [request] = relay.requests_to(MESSAGES if anthropic_channel else CHAT)
    assert relay.requests_to(CHAT if anthropic_channel else MESSAGES) == []  # no wasted attempt
    if anthropic_channel:
        assert request.headers["x-api-key"] == KEY and "authorization" not in request.headers
    else:
        assert request.headers["authorization"] == f"Bearer {KEY}" and "x-api-key" not in request.headers
        assert request.json()["stream"] is True and request.json()["stream_options"] == {"include_usage": True}
    # the notes line names the route and the credits, in the text as in the structured content
    notes = result.content[-1].text
    protocol = "Anthropic Messages" if anthropic_channel else "OpenAI Chat Completions"
    assert f"answered over the relay's {protocol} route" in notes
    credits = message["credits"]
    if credits["estimate"] is not None:
        assert f"Credits: about {credits['estimate']} (an estimate" in notes
    else:
        assert "Credits: no estimate" in notes
    assert len(relay.requests_to(MODELS)) == 1  # the catalogue picked the route, once


async def test_credits_on_the_openai_route_use_its_cache_counts(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("deepseek-v4-pro"))
    message = result.structured_content
    assert message is not None
    # USAGE: 120 prompt tokens of which 100 cached, 42 completion: 20 × 0.004 + 100 × 0.0004 + 42 × 0.016, per 1K
    assert message["usage"] == {"input_tokens": 20, "output_tokens": 42, "cache_read_input_tokens": 100}
    assert message["credits"]["estimate"] == "0.000792"
    assert "Credits: about 0.000792" in result.content[-1].text


async def test_several_calls_fetch_the_catalogue_once(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        for model in ("deepseek-v4-pro", "claude-sonnet-5", "gpt-5.5", "deepseek-v4-pro"):
            assert not (await client.call_tool("send_message", ask(model))).is_error
        await client.call_tool("list_models", {})
    assert len(relay.requests_to(MODELS)) == 1


async def test_a_model_the_catalogue_does_not_list_falls_back_to_the_openai_route(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply.json(200, {"data": {}, "code": 12300, "message": "无效的 AI 模型"}))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("kimi-k3"))
    assert not result.is_error, all_text(result)
    assert result.structured_content is not None and result.structured_content["route"] == "chat-completions"
    assert len(relay.requests_to(MESSAGES)) == 1 and len(relay.requests_to(CHAT)) == 1
    assert "Credits: no estimate (list_models has no pricing for this model)" in result.content[-1].text


async def test_a_model_no_route_accepts_gets_suggestions_that_are_not_itself(relay: FakeRelay) -> None:
    invalid = Reply.json(200, {"data": {}, "code": 12300, "message": "无效的 AI 模型"})
    relay.enqueue(MESSAGES, invalid)
    relay.enqueue(CHAT, Reply.json(404, {"error": {"message": "The model `deepseek-v4-pr` does not exist",
                                                   "type": "invalid_request_error", "code": "model_not_found"}}))  # fmt: skip
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("deepseek-v4-pr"))
    assert result.is_error
    text = all_text(result)
    assert "does not accept this model" in text and "model_not_found" in text
    assert "the closest names from list_models are deepseek-v4-pro" in text
    assert "deepseek-v4-pr," not in text and not text.rstrip(".").endswith("deepseek-v4-pr")


async def test_the_catalogue_unreachable_still_routes_every_call(relay: FakeRelay) -> None:
    down = Reply.json(503, {"data": {}, "code": 503, "message": "busy"})
    relay.enqueue(MODELS, *[down] * 5)
    relay.enqueue(MESSAGES, Reply.json(200, {"data": {}, "code": 12300, "message": "无效的 AI 模型"}))
    async with Client(make_server(relay)) as client:
        anthropic_model = await client.call_tool("send_message", ask("claude-sonnet-5"))
        other = await client.call_tool("send_message", ask("deepseek-v4-pro"))
    assert not anthropic_model.is_error and not other.is_error
    assert other.structured_content is not None and other.structured_content["route"] == "chat-completions"
    assert len(relay.requests_to(MODELS)) == 1  # one failed fetch, not retried on every call


@pytest.mark.parametrize(("route", "model", "path"), [("chat-completions", "claude-sonnet-5", CHAT),
                                                      ("messages", "deepseek-v4-pro", MESSAGES)])  # fmt: skip
async def test_the_route_setting_overrides_the_channel(relay: FakeRelay, route: str, model: str, path: str) -> None:
    async with Client(make_server(relay, route=route)) as client:
        result = await client.call_tool("send_message", ask(model))
    assert len(relay.requests) == len(relay.requests_to(path)) + len(relay.requests_to(MODELS))
    assert len(relay.requests_to(path)) == 1  # no fallback when the route is set
    if route == "messages":  # the fake relay, like the real one, refuses other channels there
        assert result.is_error and "AITOEARN_ROUTE=chat-completions" in all_text(result)
    else:
        assert not result.is_error and result.structured_content["route"] == route  # type: ignore[index]


async def test_dropped_fields_are_named_in_both_parts(relay: FakeRelay) -> None:
    args = ask(
        "deepseek-v4-pro", top_k=5, system=[{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]
    )
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", args)
    note = "[Not sent, no OpenAI Chat Completions equivalent: system[0].cache_control, top_k.]"
    assert note in result.content[-1].text.splitlines()
    assert result.structured_content is not None
    cid = result.structured_content["conversation_id"]
    assert result.structured_content["notes"] == [
        note,
        f"[Conversation {cid}, turn 1: pass it as conversation_id to continue, with only the new messages.]",
    ]
    body = relay.requests_to(CHAT)[0].json()
    assert "top_k" not in body and body["messages"][0] == {"role": "system", "content": "x"}


async def test_a_refused_translation_sends_nothing_and_the_server_keeps_serving(relay: FakeRelay) -> None:
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    async with Client(make_server(relay)) as client:
        refused = await client.call_tool("send_message", {"model": "deepseek-v4-pro",
                                                          "messages": [{"role": "user", "content": [pdf]}]})  # fmt: skip
        after = await client.call_tool("send_message", ask("deepseek-v4-pro"))
    assert refused.is_error and "`messages[0].content[0]` is a PDF" in all_text(refused)
    assert not after.is_error
    assert len(relay.requests_to(CHAT)) == 1


# --- the OpenAI route's failure forms ---------------------------------------------------------------

HALF = [
    sse.chunk({"role": "assistant", "content": ""}),
    sse.chunk({"content": "已经收到的"}),
    sse.chunk({"content": "文字 kept."}),
]
HALF_TEXT = "已经收到的文字 kept."


def openai_error(status: int, code: str | None, message: str, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> Reply:  # fmt: skip
    return Reply.json(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)


CHAT_CASES: dict[str, tuple[list[Reply], list[str], int, bool]] = {
    "401 invalid_api_key": ([openai_error(401, "invalid_api_key", "Incorrect API key provided")],
                            ["rejected the API key", "invalid_api_key: Incorrect API key", "AITOEARN_BASE_URL"], 1, False),
    "429 insufficient_quota": ([openai_error(429, "insufficient_quota", "You exceeded your quota", "insufficient_quota")],
                               ["out of credits", "top up"], 1, False),
    "400 context_length_exceeded": ([openai_error(400, "context_length_exceeded", "too long")],
                                    ["context window", "fewer or shorter"], 1, False),
    "429 rate limited then fine": ([openai_error(429, "rate_limit_exceeded", "slow", "requests", {"retry-after": "0"}),
                                    Reply.chat(sse.chat_text_reply(["ok"]))], [], 2, False),
    "500 server_error retried": ([openai_error(500, None, "boom", "server_error")] * 3, ["internal error"], 3, False),
    "wrapper 12001": ([Reply.json(200, {"data": {}, "code": 12001, "message": "用户Credits不足"})],
                      ["out of credits", "code 12001"], 1, False),
    "nest validation 400": ([Reply.json(400, {"statusCode": 400, "message": ["messages must be an array"],
                                              "error": "Bad Request"})], ["HTTP 400", "messages must be an array"], 1, False),
    "error chunk mid-stream": ([Reply.chat([*HALF, {"error": {"message": "upstream overloaded", "type": "server_error"}}])],
                               ["incomplete", "upstream overloaded"], 1, True),
    "cut before finish_reason": ([Reply.chat(HALF, done=False)], ["incomplete", "before a finish_reason"], 1, True),
    "dropped connection": ([Reply.chat(HALF, done=False, end="drop")], ["incomplete", "connection dropped"], 1, True),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CHAT_CASES))
async def test_openai_route_failures_are_actionable(relay: FakeRelay, name: str) -> None:
    replies, says, requests, partial = CHAT_CASES[name]
    relay.enqueue(CHAT, *replies)
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("gpt-5.5"))
        after = await client.call_tool("send_message", ask("gpt-5.5"))
    assert not after.is_error and after.content[0].text == "Hello, world."
    assert len(relay.requests_to(CHAT)) == requests + 1
    text = all_text(result)
    if not says:
        assert not result.is_error and result.content[0].text == "ok"
        return
    assert result.is_error, text
    for phrase in says:
        assert phrase.lower() in text.lower(), (phrase, text)
    assert "Fix:" in text and KEY not in text
    if partial:
        assert result.content[-1].text == HALF_TEXT
        assert result.structured_content is not None
        assert result.structured_content["content"] == [{"type": "text", "text": HALF_TEXT}]
        assert result.structured_content["route"] == "chat-completions"


async def test_a_stream_without_done_is_complete_after_its_finish_reason(relay: FakeRelay) -> None:
    relay.enqueue(CHAT, Reply.chat(sse.chat_text_reply(["完整", "的回答"]), done=False, chunk=7))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("gpt-5.5"))
    assert not result.is_error and result.content[0].text == "完整的回答"


async def test_a_plain_chat_completion_answer_is_accepted(relay: FakeRelay) -> None:
    relay.enqueue(CHAT, Reply.json(200, {"id": "c", "object": "chat.completion", "model": "gpt-5.5", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "整段"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6}}))  # fmt: skip
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("gpt-5.5"))
    assert not result.is_error and result.content[0].text == "整段"
    assert "[Reply cut off: it reached the model's own output limit." in result.content[1].text


# --- the relay's own framings on the Anthropic route ---------------------------------------------


async def test_nest_framing_without_event_lines(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply(chunks=sse.split_every(sse.encode_nest(sse.rich_reply()), 11)))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("claude-sonnet-5"))
    assert not result.is_error
    assert result.content[0].text == "你好，世界！🌍\r\n第二行\r\n天空是蓝色的。"
    assert [b["type"] for b in result.structured_content["content"]] == ["thinking", "text", "tool_use"]  # type: ignore[index]


async def test_plain_text_error_event_after_the_stream_started(relay: FakeRelay) -> None:
    events = [sse.message_start(), *sse.text_block(0, ["已经收到的", "文字 kept."])[:-1]]
    body = sse.encode_nest(events) + b"event: error\ndata: Upstream model overloaded\n\n"
    relay.enqueue(MESSAGES, Reply(chunks=[body]))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("claude-sonnet-5"))
    assert result.is_error
    text = all_text(result)
    assert "incomplete" in text and "Upstream model overloaded" in text and "malformed" not in text
    assert result.content[-1].text == HALF_TEXT


async def test_openai_chunks_on_the_messages_route(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply.chat(sse.chat_text_reply(["旧版", "中转"], model="claude-sonnet-5")))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("claude-sonnet-5"))
    assert not result.is_error and result.content[0].text == "旧版中转"
    assert result.structured_content is not None and result.structured_content["stop_reason"] == "end_turn"


async def test_server_tool_blocks_redacted_thinking_and_their_usage_are_kept(relay: FakeRelay) -> None:
    citation = {"type": "web_search_result_location", "url": "https://example.com", "title": "Ex",
                "encrypted_index": "Eo8=", "cited_text": "Paris"}  # fmt: skip
    events = [
        sse.message_start(),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "EmwK"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"query": "capital'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ' of France"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {
            "type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
            "content": [{"type": "web_search_result", "url": "https://example.com", "title": "Ex",
                         "encrypted_content": "EqQ=", "page_age": None}]}},
        {"type": "content_block_stop", "index": 2},
        *sse.text_block(3, ["Paris."], citations=[citation]),
        *sse.message_end(server_tool_use={"web_search_requests": 1, "web_fetch_requests": 0}),
    ]  # fmt: skip
    relay.enqueue(MESSAGES, Reply.sse(events))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("claude-sonnet-5"))
    message = result.structured_content
    assert message is not None and not result.is_error
    blocks = message["content"]
    assert [b["type"] for b in blocks] == ["redacted_thinking", "server_tool_use", "web_search_tool_result", "text"]
    assert blocks[0]["data"] == "EmwK"
    assert blocks[1]["input"] == {"query": "capital of France"}
    assert blocks[2]["content"][0]["encrypted_content"] == "EqQ="
    assert blocks[3]["citations"] == [citation]
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}
    anthropic.types.Message.model_validate(message)
    assert json.dumps(message, ensure_ascii=False).count("EqQ=") == 1
