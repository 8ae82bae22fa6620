"""Both tools through a real mcp.Client (in-process) against the fake relay on loopback."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from . import sse
from .conftest import HELLO, KEY, make_server
from .fake_relay import CATALOGUE, FakeRelay, Reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
MODELS = "/api/ai/models/chat"


async def test_tool_definitions_are_compact_and_annotated(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {
        "list_models", "send_message", "get_reply", "list_conversations", "generate_image", "generate_video"
    }  # fmt: skip
    lc = tools["list_conversations"]
    assert lc.annotations and lc.annotations.read_only_hint and not lc.annotations.open_world_hint

    def size(names: set[str]) -> int:
        return len(json.dumps([tools[n].model_dump(mode="json", by_alias=True, exclude_none=True) for n in names]))

    # The four chat tools (get_reply collects long replies; list_conversations finds a thread again;
    # send_message gained models and wait_seconds, then judge and fallback; list_models gained kind and
    # error members in its output schema), then generate_image and generate_video with their output
    # schemas: each definition is still kept tight, since agents pay for every character of it.
    assert size(set(tools) - {"generate_image", "generate_video"}) < 11200, size(set(tools))
    assert size({"generate_image"}) < 4000, size({"generate_image"})
    assert size({"generate_video"}) < 3300, size({"generate_video"})
    gi = tools["generate_image"]
    assert gi.annotations and gi.annotations.read_only_hint is False and gi.annotations.open_world_hint
    assert gi.input_schema["required"] == ["prompt"] and gi.input_schema["additionalProperties"] is False
    assert gi.output_schema and gi.output_schema["required"] == ["status"]
    gv = tools["generate_video"]
    assert gv.annotations and gv.annotations.read_only_hint is False and gv.annotations.idempotent_hint is False
    assert gv.input_schema["required"] == ["prompt", "model"] and gv.input_schema["additionalProperties"] is False
    assert gv.output_schema and gv.output_schema["properties"]["status"]["enum"][0] == "complete"
    lm, sm, gr = tools["list_models"], tools["send_message"], tools["get_reply"]
    assert gr.annotations and gr.annotations.read_only_hint is False  # it can cancel a generation
    assert gr.input_schema["required"] == ["reply_id"]
    assert set(gr.input_schema["properties"]) == {"reply_id", "wait_seconds", "offset", "cancel"}
    assert lm.annotations and lm.annotations.read_only_hint and lm.annotations.idempotent_hint
    assert sm.annotations and sm.annotations.read_only_hint is False and sm.annotations.idempotent_hint is False
    assert sm.annotations.open_world_hint and lm.annotations.open_world_hint
    schema = sm.input_schema
    assert schema["required"] == ["messages"]  # `model`, or `models` for several: the tool checks one is given
    assert {"model", "models", "wait_seconds"} <= set(schema["properties"])
    assert schema["additionalProperties"] is True
    assert schema["properties"]["messages"]["minItems"] == 1
    assert schema["properties"]["max_tokens"] == {
        "default": 32000, "description": "Most tokens to generate: 1 or more, default 32000.",
        "maximum": 9007199254740991, "minimum": 1, "type": "integer",
    }  # fmt: skip
    assert "stream" not in schema["properties"]
    assert sm.output_schema and "content" in sm.output_schema["properties"]
    assert lm.output_schema and "models" in lm.output_schema["properties"]


def test_the_published_input_schemas_are_the_ones_the_models_check() -> None:
    """The server reads input_schemas.json at start-up instead of building the schemas from the
    DTOs: what it publishes must be what the DTOs then check (rerun scripts/input_schemas.py)."""
    from aitoearn_mcp.server._dto import input_schemas_json
    from aitoearn_mcp.server._schemas import INPUT_SCHEMAS_FILE

    assert INPUT_SCHEMAS_FILE.read_text(encoding="utf-8") == input_schemas_json(), "run python scripts/input_schemas.py"


async def test_list_conversations_refuses_bad_arguments_by_name_and_drops_host_controls(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        bad = await client.call_tool("list_conversations", {"from_turn": 0, "conversation_id": 7})
        extra = await client.call_tool("list_conversations", {"turn": 2})
        gemini = await client.call_tool("list_conversations", {"wait_for_previous": True})
    message = bad.content[0].text  # type: ignore[union-attr]
    assert bad.is_error and "`from_turn`" in message and "`conversation_id`" in message and "fix:" in message
    assert extra.is_error and "`turn` is not an argument of this tool" in extra.content[0].text  # type: ignore[union-attr]
    assert not gemini.is_error, gemini.content


async def test_list_models_lists_caches_and_refreshes(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        first = await client.call_tool("list_models", {})
        second = await client.call_tool("list_models", {})
        assert len(relay.requests_to(MODELS)) == 1  # cached
        await client.call_tool("list_models", {"refresh": True})
        assert len(relay.requests_to(MODELS)) == 2
    assert not first.is_error
    assert [m["name"] for m in first.structured_content["models"]] == [e["name"] for e in CATALOGUE]
    assert first.structured_content["models"][0] == {
        "name": "claude-sonnet-5", "channel": "anthropic", "input": ["text", "image"], "output": ["text"],
        "price": "in 0.06 / out 0.3 credits per 1K tokens",
    }  # compact: no originPricing, every tier, label or tags  # fmt: skip
    lines = first.content[0].text.splitlines()
    assert lines[0] == "claude-sonnet-5 · anthropic · text,image → text · in 0.06 / out 0.3 credits per 1K tokens"
    assert lines[1] == "claude-opus-4-8 · anthropic · text → text · 1.5 credits · Most capable Claude"
    assert lines[2].endswith("(+1 tier) · Gemini 3.1 Pro 预览版")
    assert lines[3] == "deepseek-v4-pro · deepseek · text → text · in 0.004 / out 0.016 credits per 1K tokens"
    assert second.structured_content == first.structured_content
    assert relay.requests_to(MODELS)[0].headers["x-api-key"] == KEY


async def test_list_models_cache_ttl_zero_always_asks(relay: FakeRelay) -> None:
    async with Client(make_server(relay, models_cache_ttl=0)) as client:
        await client.call_tool("list_models", {})
        await client.call_tool("list_models", {})
    assert len(relay.requests_to(MODELS)) == 2


async def test_list_models_wrapper_error(relay: FakeRelay) -> None:
    relay.enqueue(
        MODELS,
        Reply.json(200, {"data": {}, "code": 500, "message": "服务器内部错误"}),
        Reply.json(200, {"data": {}, "code": 401, "message": "Unauthorized", "requestId": "req-9"}),
    )
    async with Client(make_server(relay, max_retries=1)) as client:
        result = await client.call_tool("list_models", {})
    assert result.is_error
    text = result.content[0].text
    assert "rejected the API key" in text and "code 401: Unauthorized" in text and "AITOEARN_BASE_URL" in text
    assert "Request id: req-9" in text
    assert len(relay.requests_to(MODELS)) == 2  # the 500 was retried, the 401 was not


async def test_send_message_passes_everything_on_and_returns_the_exact_reply(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply.sse(sse.rich_reply(), chunk=5, crlf=True))
    args = {
        **HELLO,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"}, "metadata": {"user_id": "u-1"},
        "service_tier": "auto", "container": None, "context_management": {"edits": []},
        "stream": False,
    }  # fmt: skip
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", args)
    assert not result.is_error
    [request] = relay.requests_to(MESSAGES)
    assert request.method == "POST"
    assert request.headers["x-api-key"] == KEY
    assert "authorization" not in request.headers
    body = request.json()
    assert body["stream"] is True  # the caller cannot turn streaming off
    assert body["max_tokens"] == 32000
    expected = {k: v for k, v in args.items() if k != "stream"}
    assert {k: v for k, v in body.items() if k not in ("stream", "max_tokens")} == expected  # container: None kept
    assert result.content[0].text == "你好，世界！🌍\r\n第二行\r\n天空是蓝色的。"
    # hosts that show only the text see the call itself
    assert result.content[1].text.startswith('[The model asks to use a tool: get_weather {"city":"北京","days":3}.')
    message = result.structured_content
    assert message is not None and message["stop_reason"] == "tool_use"
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][2]["input"] == {"city": "北京", "days": 3}


async def test_an_unknown_field_is_sent_as_is_and_said_with_the_nearest_known_name(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", {**HELLO, "temprature": 0.2, "reasoning_effort": "high"})
        known = await client.call_tool("send_message", {**HELLO, "temperature": 0.2, "service_tier": "auto"})
    assert not result.is_error and result.structured_content is not None
    body = relay.requests_to(MESSAGES)[0].json()
    assert body["temprature"] == 0.2 and body["reasoning_effort"] == "high"  # the relay may know them
    note = ("[Unknown field `temprature` sent as is; did you mean `temperature`? "
            "Unknown field `reasoning_effort` sent as is.]")  # fmt: skip
    assert note in result.content[1].text.splitlines()  # type: ignore[union-attr]
    assert note in result.structured_content["notes"]
    assert "Unknown field" not in str(known.content) + str(known.structured_content)


async def test_max_tokens_cut_is_said_in_one_line(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply(["Partial answ"], stop_reason="max_tokens")))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", {**HELLO, "max_tokens": 3})
    assert result.content[0].text == "Partial answ"
    assert result.content[1].text.startswith(
        "[Reply cut off: it reached max_tokens (3). Raise max_tokens or ask it to continue.]\n"
    )
    assert result.structured_content is not None
    cut_note, conversation_note = result.structured_content["notes"]
    assert cut_note == "[Reply cut off: it reached max_tokens (3). Raise max_tokens or ask it to continue.]"
    # hosts that show only the structured content learn how to continue too
    cid = result.structured_content["conversation_id"]
    assert (
        conversation_note
        == f"[Conversation {cid}, turn 1: pass it as conversation_id to continue, with only the new messages.]"
    )
    assert relay.requests_to(MESSAGES)[0].json()["max_tokens"] == 3


async def test_long_stream_of_thousands_of_deltas(relay: FakeRelay) -> None:
    pieces = [f"第{i}段；" for i in range(6000)]
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply(pieces), chunk=4096))
    async with Client(make_server(relay, max_result_chars=10**7)) as client:  # over the default budget
        result = await client.call_tool("send_message", HELLO)
    assert result.content[0].text == "".join(pieces)
    assert len(result.content) == 2 and result.content[1].text.startswith("[claude-sonnet-5 answered")


async def test_a_plain_json_message_answer_is_accepted(relay: FakeRelay) -> None:
    message = {"id": "msg_J", "type": "message", "role": "assistant", "model": "claude-sonnet-5",
               "content": [{"type": "text", "text": "整段回答"}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": 3, "output_tokens": 4}}  # fmt: skip
    relay.enqueue(MESSAGES, Reply.json(200, message))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", HELLO)
    assert not result.is_error
    assert result.content[0].text == "整段回答"
    assert result.structured_content is not None
    assert list(result.structured_content)[:2] == ["status", "reply_id"]  # before any other member
    assert result.structured_content["status"] == "complete"
    assert result.structured_content["reply_id"].startswith("r_")
    assert result.structured_content["next_offset"] is None  # the whole reply is here
    extras = ("status", "reply_id", "route", "credits", "notes", "conversation_id", "next_offset")
    assert {k: v for k, v in result.structured_content.items() if k not in extras} == message


async def test_missing_key_names_the_variable_and_sends_nothing(relay: FakeRelay) -> None:
    async with Client(make_server(relay, key=None)) as client:
        result = await client.call_tool("send_message", HELLO)
        catalogue = await client.call_tool("list_models", {})
    assert result.is_error
    assert "AITOEARN_API_KEY" in result.content[0].text and "Settings → API Key" in result.content[0].text
    assert relay.requests_to(MESSAGES) == []
    assert not catalogue.is_error  # the catalogue is public
    assert "x-api-key" not in relay.requests_to(MODELS)[0].headers


async def test_connections_are_reused_across_calls(relay: FakeRelay) -> None:
    # Reading the body to its end after message_stop returns the connection to the pool:
    # against the real relay that saves a TLS handshake per call.
    async with Client(make_server(relay)) as client:
        for _ in range(3):
            assert not (await client.call_tool("send_message", HELLO)).is_error
    assert relay.connections == 1
