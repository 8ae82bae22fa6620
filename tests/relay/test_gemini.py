"""The relay's Gemini route: the pure translation of an Anthropic request into Gemini's body, the
pure fold of Gemini events into an Anthropic Message (through the relay client under every
split of the bytes), the route plan, and images folded on the other two routes. No reference
SDK accumulates Gemini streams, so the fold is checked against hand-built events."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from aitoearn_mcp import Config, RelayClient, ReplyAccumulator, Route
from aitoearn_mcp._errors import InputError
from aitoearn_mcp.relay._accumulator import MessageAccumulator
from aitoearn_mcp.relay._chat_accumulator import ChatCompletionAccumulator
from aitoearn_mcp.relay._gemini_accumulator import GeminiAccumulator
from aitoearn_mcp.relay._gemini_translate import to_gemini
from aitoearn_mcp.relay._routes import RoutePlan, plan_route

from .. import sse
from ..fake_relay import CATALOGUE, IMAGE_MODEL

PNG = "iVBORw0KGgo="
TEXT_ONLY = {**IMAGE_MODEL, "inputModalities": ["text"]}


def test_image_output_models_take_the_gemini_route_unless_forced() -> None:
    assert plan_route("auto", IMAGE_MODEL) == RoutePlan(Route.GEMINI, fallback=Route.CHAT_COMPLETIONS)
    assert plan_route("chat-completions", IMAGE_MODEL) == RoutePlan(Route.CHAT_COMPLETIONS)
    assert plan_route("messages", IMAGE_MODEL) == RoutePlan(Route.MESSAGES)
    assert all(plan_route("auto", entry).first is not Route.GEMINI for entry in CATALOGUE)
    assert Route.GEMINI.path_for("a/b c") == "/api/ai/v1beta/models/a%2Fb%20c:streamGenerateContent?alt=sse"


def test_the_translation_restates_text_images_documents_and_options() -> None:
    arguments = {
        "model": "gemini-3.1-flash-image-preview",
        "system": [{"type": "text", "text": "只画猫。", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "照这张画："},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.webp?v=1"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                {"type": "document", "title": "说明", "source": {"type": "text", "data": "橘色"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "…", "signature": "s"},
                                              {"type": "text", "text": "好"},
                                              {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                           "data": PNG}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]},
            {"role": "user", "content": "再来"},
        ],
        "max_tokens": 2048, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 2000}, "tools": [{"name": "f", "input_schema": {}}],
        "metadata": {"user_id": "u"}, "service_tier": "auto", "imageConfig": {"aspectRatio": "16:9"},
    }  # fmt: skip
    translation = to_gemini(arguments, IMAGE_MODEL)
    assert translation.body == {
        "model": "gemini-3.1-flash-image-preview",
        "contents": [
            {"role": "user", "parts": [
                {"text": "照这张画："}, {"inlineData": {"mimeType": "image/jpeg", "data": PNG}},
                {"fileData": {"fileUri": "https://x.test/cat.webp?v=1", "mimeType": "image/webp"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}, {"text": "说明\n\n橘色"}]},
            {"role": "model", "parts": [{"text": "好"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
            {"role": "user", "parts": [{"text": "再来"}]},  # the turn left empty is not sent
        ],
        "config": {"systemInstruction": {"parts": [{"text": "只画猫。"}]}, "temperature": 0.5, "topP": 0.9,
                   "topK": 40, "stopSequences": ["END"], "maxOutputTokens": 2048,
                   "responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
    }  # fmt: skip
    assert translation.dropped == ("system[0].cache_control", "thinking", "tools", "metadata", "service_tier",
                                   "messages[1].content[0] (thinking)", "messages[2].content[0] (tool_result)")  # fmt: skip


def test_an_image_for_a_text_only_model_or_an_unknown_source_is_refused() -> None:
    image = {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": PNG}}]}
    with pytest.raises(InputError, match=r"`messages\[0\].content\[0\]` is an image.*takes text input"):
        to_gemini({"model": "m", "messages": [image]}, TEXT_ONLY)
    file_source = {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
    with pytest.raises(InputError, match=r"source` of type 'file' cannot be sent on the relay's Gemini route"):
        to_gemini({"model": "m", "messages": [file_source]}, IMAGE_MODEL)


# --- the fold ------------------------------------------------------------------------------------

STREAM = [
    sse.gemini_event([{"text": "想一想", "thought": True}]),
    sse.gemini_event([{"text": "你好，"}, {"text": "世界 🌍"}]),
    sse.gemini_event([{"inlineData": {"mimeType": "image/png", "data": PNG}}]),
    sse.gemini_event([{"text": "第二段"}, {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a.png"}}]),
    sse.gemini_event(None, "STOP", usage={**sse.GEMINI_USAGE, "cachedContentTokenCount": 2, "thoughtsTokenCount": 5}),
]


def fold(events: list[dict[str, Any]]) -> GeminiAccumulator:
    acc = GeminiAccumulator()
    for event in events:
        acc.feed(event)
    return acc


def test_text_images_thinking_and_usage_fold_into_one_message_in_order() -> None:
    acc = fold(STREAM)
    assert acc.ended and acc.text() == "你好，世界 🌍第二段"
    assert acc.message() == {
        "id": "resp-FAKE", "type": "message", "role": "assistant", "model": "gemini-3.1-flash-image-preview",
        "content": [
            {"type": "thinking", "thinking": "想一想", "signature": ""},
            {"type": "text", "text": "你好，世界 🌍"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "第二段"},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        ],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1315, "cache_read_input_tokens": 2,
                  "output_tokens_by_modality": {"image": 1290}},
    }  # fmt: skip


@pytest.mark.parametrize(("finish", "stop"), [("MAX_TOKENS", "max_tokens"), ("IMAGE_SAFETY", "refusal"),
                                              ("NO_IMAGE", "refusal"), ("OTHER", "end_turn")])  # fmt: skip
def test_finish_reasons_map_and_gemini_s_own_word_is_kept(finish: str, stop: str) -> None:
    message = fold([sse.gemini_event([{"text": "x"}], finish)]).message()
    assert message["stop_reason"] == stop
    assert message.get("finish_reason") == (None if finish == "MAX_TOKENS" else finish)


def test_a_blocked_prompt_ends_as_a_refusal_and_a_stream_without_reason_has_not_ended() -> None:
    blocked = fold([{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}])
    assert blocked.ended and blocked.message()["stop_reason"] == "refusal"
    assert not fold(STREAM[:-1]).ended


def _send(pieces: list[bytes]) -> dict[str, Any]:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["x-goog-api-key"] == "k-secret"

        async def chunks() -> Any:
            for piece in pieces:
                yield piece

        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())

    async def run() -> dict[str, Any]:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            relay = RelayClient(Config(base_url="http://relay.test"), http)
            return await relay.send_message(Route.GEMINI, b"{}", SecretStr("k-secret"), ReplyAccumulator(),
                                            path=Route.GEMINI.path_for("m"))  # fmt: skip

    return anyio.run(run)


EXPECTED = fold(STREAM).message()
FORMS = {"lf": sse.encode_gemini(STREAM), "crlf": sse.encode_gemini(STREAM, crlf=True)}


@settings(max_examples=120, deadline=None)
@given(form=st.sampled_from(sorted(FORMS)), data=st.data())
def test_any_chunking_gives_the_same_message(form: str, data: st.DataObject) -> None:
    raw = FORMS[form]
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(raw) - 1), max_size=60, unique=True))
    points = [0, *sorted(cuts), len(raw)]
    assert _send([raw[a:b] for a, b in itertools.pairwise(points)]) == EXPECTED


def test_a_stream_cut_before_its_finish_reason_is_incomplete_with_the_text_kept() -> None:
    from aitoearn_mcp._errors import IncompleteReplyError

    with pytest.raises(IncompleteReplyError, match="ended before a finishReason") as caught:
        _send([sse.encode_gemini(STREAM[:2])])
    assert caught.value.text == "你好，世界 🌍"


def test_a_whole_gemini_response_is_accepted() -> None:
    acc = ReplyAccumulator()
    whole = sse.gemini_event([{"text": "OK"}], model="gemini-3.5-flash", usage={"promptTokenCount": 4})
    assert acc.feed_whole(whole) and acc.ended and acc.protocol == "gemini"
    assert acc.message()["content"] == [{"type": "text", "text": "OK"}]


# --- images on the other two routes ---------------------------------------------------------------


def test_an_anthropic_image_block_keeps_its_data_whole() -> None:
    data = "A" * 50_000  # far over the bound on other relay-supplied fields
    acc = MessageAccumulator()
    for event in [sse.message_start(), {"type": "content_block_start", "index": 0, "content_block": {
            "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}},
            {"type": "content_block_stop", "index": 0}, *sse.message_end()]:  # fmt: skip
        acc.feed(event)
    assert acc.message()["content"] == [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                     "data": data}}]  # fmt: skip


def test_openai_images_and_image_url_parts_become_image_blocks() -> None:
    acc = ChatCompletionAccumulator()
    acc.feed(
        sse.chunk(
            {
                "content": [
                    {"type": "text", "text": "看"},
                    {"type": "image_url", "image_url": {"url": f"data:image/webp;base64,{PNG}"}},
                ]
            }
        )
    )
    acc.feed(sse.chunk({"images": [{"type": "image_url", "image_url": {"url": "https://x.test/b.png"}}]}, "stop"))
    assert acc.message()["content"] == [
        {"type": "text", "text": "看"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/b.png"}},
    ]  # fmt: skip
