"""Anthropic request → OpenAI Chat Completions request: the pure translation, checked field by
field and validated against the ``openai`` SDK's own request types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from pydantic import TypeAdapter

from aitoearn_mcp._errors import InputError
from aitoearn_mcp.relay._translate import reasoning_effort, to_chat_completions

from ..fake_relay import CATALOGUE

ENTRIES = {entry["name"]: entry for entry in CATALOGUE}
DEEPSEEK, GPT, GEMINI = ENTRIES["deepseek-v4-pro"], ENTRIES["gpt-5.5"], ENTRIES["gemini-3.1-pro-preview"]
PNG = "iVBORw0KGgo="
PDF = "JVBERi0xLjQK"

_REQUEST = TypeAdapter(CompletionCreateParamsStreaming)


def _materialise(value: Any) -> Any:
    """The SDK types use Iterable, which pydantic validates lazily: walk every iterator so each
    item is validated too."""
    if isinstance(value, dict):
        return {k: _materialise(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ValidatorIterator":
        return [_materialise(v) for v in value]
    return value


def valid_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    return _materialise(_REQUEST.validate_python(body))


FULL = {
    "model": "gpt-5.5",
    "max_tokens": 2048,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
               {"type": "text", "text": " Answer in 中文."}],
    "temperature": 0.3,
    "top_p": 0.9,
    "top_k": 40,
    "stop_sequences": ["END", "停"],
    "thinking": {"type": "enabled", "budget_tokens": 8000},
    "metadata": {"user_id": "u-42", "trace": "t"},
    "tools": [
        {"name": "get_weather", "description": "Weather for a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    "seed": 7,
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this picture, and the weather in 北京?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            {"type": "document", "title": "report.pdf",
             "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "The user wants...", "signature": "sig"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "北京"}},
            {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "上海"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "晴，25°C"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": True,
             "content": [{"type": "text", "text": "timeout"},
                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
            {"type": "text", "text": "Thanks."},
        ]},
    ],
}  # fmt: skip


def test_every_field_is_translated_and_the_sdk_accepts_the_request() -> None:
    translation = to_chat_completions(FULL, GPT)
    body = translation.body
    valid_openai_request(body)
    assert body["model"] == "gpt-5.5"
    assert "max_tokens" not in body and body["max_completion_tokens"] == 2048  # gpt-5 family
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["stop"] == ["END", "停"]
    assert body["reasoning_effort"] == "medium"
    assert body["user"] == "u-42"
    assert body["seed"] == 7  # an extra field the caller sent passes through
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    system, user, assistant, tool1, tool2, last = body["messages"]
    assert system == {"role": "system", "content": "Be brief. Answer in 中文."}
    assert user["content"] == [
        {"type": "text", "text": "What is in this picture, and the weather in 北京?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
        {"type": "file", "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}},
    ]
    assert assistant == {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"北京"}'}},
        {"id": "toolu_02", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"上海"}'}},
    ]}  # fmt: skip
    assert tool1 == {"role": "tool", "tool_call_id": "toolu_01", "content": "晴，25°C"}
    assert tool2 == {"role": "tool", "tool_call_id": "toolu_02", "content": "Error: timeout"}
    # the tool result's image is not lost: it follows in the user turn, labelled
    assert last == {"role": "user", "content": [
        {"type": "text", "text": "(image from tool result toolu_02)"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "Thanks."},
    ]}  # fmt: skip
    assert set(translation.dropped) == {
        "system[0].cache_control", "top_k", "metadata.trace", "tools[1] (web_search_20250305)",
        "messages[1].content[0] (thinking)",
    }  # fmt: skip


def test_plain_conversation_uses_plain_strings() -> None:
    args = {"model": "deepseek-v4-pro", "system": "Terse.",
            "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                         {"role": "user", "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}]}]}  # fmt: skip
    translation = to_chat_completions(args, DEEPSEEK)
    valid_openai_request(translation.body)
    assert translation.body["messages"] == [
        {"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "One\nTwo"},
    ]  # fmt: skip
    assert "max_tokens" not in translation.body  # not given: the model's own default
    assert translation.dropped == ()


def test_max_tokens_for_other_families_and_tool_choice_forms() -> None:
    base = {"model": "deepseek-v4-pro", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}]}  # fmt: skip
    assert to_chat_completions(base, DEEPSEEK).body["max_tokens"] == 10
    assert to_chat_completions({**base, "model": "o4-mini"}, None).body["max_completion_tokens"] == 10
    for anthropic, openai in [("auto", "auto"), ("any", "required"), ("none", "none")]:
        body = to_chat_completions({**base, "tool_choice": {"type": anthropic}}, DEEPSEEK).body
        valid_openai_request(body)
        assert body["tool_choice"] == openai


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"),
                                                (16384, "high"), (64000, "high")])  # fmt: skip
def test_thinking_budget_maps_to_the_nearest_effort(budget: int, effort: str) -> None:
    assert reasoning_effort(budget) == effort


def test_thinking_adaptive_or_disabled_leaves_the_default() -> None:
    for kind in ("adaptive", "disabled"):
        args = {"model": "m", "messages": [{"role": "user", "content": "x"}], "thinking": {"type": kind}}
        assert "reasoning_effort" not in to_chat_completions(args, DEEPSEEK).body


def test_a_pdf_for_a_model_that_takes_none_is_refused_naming_the_field() -> None:
    args = {"model": "deepseek-v4-pro", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarise"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]}  # fmt: skip
    with pytest.raises(InputError) as refused:
        to_chat_completions(args, DEEPSEEK)
    text = str(refused.value)
    assert "`messages[0].content[1]` is a PDF" in text and "deepseek-v4-pro" in text and "fix:" in text
    assert "Nothing was sent" in text
    # a gemini or an unlisted model may take it
    assert to_chat_completions({**args, "model": "gemini-3.1-pro-preview"}, GEMINI).body["messages"][0]["content"][1][
        "type"] == "file"  # fmt: skip
    assert to_chat_completions(args, None).body["messages"][0]["content"][1]["type"] == "file"


def test_an_image_for_a_text_only_model_is_refused() -> None:
    args = {"model": "deepseek-v4-pro", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}  # fmt: skip
    with pytest.raises(InputError, match=r"`messages\[0\]\.content\[0\]` is an image, but deepseek-v4-pro takes text"):
        to_chat_completions(args, DEEPSEEK)


def test_text_documents_become_text() -> None:
    args = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "document", "title": "notes", "source": {"type": "text", "media_type": "text/plain", "data": "第一行"}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]}}]}]}  # fmt: skip
    assert to_chat_completions(args, DEEPSEEK).body["messages"] == [
        {"role": "user", "content": "notes\n\n第一行\ninner"}
    ]
