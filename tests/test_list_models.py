"""list_models compact in both parts (one small summary per model; filters; one model's full
entry on request), and the arguments hosts add for themselves (Gemini CLI's
wait_for_previous) neither refused nor sent to the relay."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.types import Implementation

from aitoearn_mcp.views._budget import json_weight, weight

from .conftest import HELLO, make_server
from .fake_relay import CATALOGUE, FakeRelay, Reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
MODELS = "/api/ai/models/chat"


async def call(relay: FakeRelay, tool: str, arguments: dict[str, Any], name: str = "claude-code") -> Any:
    async with Client(make_server(relay), client_info=Implementation(name=name, version="1")) as client:
        return await client.call_tool(tool, arguments)


def names(result: Any) -> list[str]:
    return [model["name"] for model in result.structured_content["models"]]


async def test_both_parts_are_one_small_summary_per_model(relay: FakeRelay) -> None:
    result = await call(relay, "list_models", {})
    assert not result.is_error
    models = result.structured_content["models"]
    assert names(result) == [entry["name"] for entry in CATALOGUE]
    assert models[1] == {"name": "claude-opus-4-8", "channel": "anthropic", "input": ["text"], "output": ["text"],
                         "price": "1.5 credits", "description": "Most capable Claude"}  # fmt: skip
    assert models[2]["price"] == "in 0.1 / out 0.6 credits per 1K tokens (+1 tier)"
    assert all(set(model) <= {"name", "channel", "input", "output", "price", "description"} for model in models)
    assert json_weight(result.structured_content) < json_weight(CATALOGUE) * 0.7  # not the raw catalogue
    lines = result.content[0].text.splitlines()
    assert len(lines) == len(CATALOGUE) and lines[3].startswith("deepseek-v4-pro · deepseek · text → text")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"channel": "Anthropic"}, ["claude-sonnet-5", "claude-opus-4-8"]),
        ({"modality": "video"}, ["gemini-3.1-pro-preview"]),
        ({"modality": "IMAGE"}, ["claude-sonnet-5", "gemini-3.1-pro-preview", "gpt-5.5"]),
        ({"channel": "openai", "modality": "image"}, ["gpt-5.5"]),
    ],
)
async def test_filters_by_channel_and_modality(relay: FakeRelay, filters: dict[str, str], expected: list[str]) -> None:
    result = await call(relay, "list_models", filters)
    assert names(result) == expected
    assert [line.split(" · ")[0] for line in result.content[0].text.splitlines()] == expected


async def test_a_filter_matching_nothing_says_what_there_is(relay: FakeRelay) -> None:
    result = await call(relay, "list_models", {"channel": "mistral"})
    assert not result.is_error and result.structured_content["models"] == []
    note = "No listed model matches these filters; channels listed: anthropic, deepseek, gemini, openai."
    assert result.structured_content["notes"][0] == note and note in result.content[0].text


async def test_detail_gives_the_full_entry(relay: FakeRelay) -> None:
    result = await call(relay, "list_models", {"detail": "claude-opus-4-8"})
    assert not result.is_error
    assert result.structured_content["entry"] == CATALOGUE[1]  # unknown fields (futureField) kept
    assert names(result) == ["claude-opus-4-8"]
    text = result.content[0].text
    assert text.startswith("claude-opus-4-8 · anthropic") and '"futureField"' in text
    tiers = await call(relay, "list_models", {"detail": "claude-sonnet-5"})
    assert tiers.structured_content["entry"]["pricing"]["originPricing"] == CATALOGUE[0]["pricing"]["originPricing"]


async def test_detail_of_an_unknown_model_names_the_close_ones(relay: FakeRelay) -> None:
    result = await call(relay, "list_models", {"detail": "claude-opus-4.8"})
    assert result.is_error
    assert "`detail` 'claude-opus-4.8' is not a listed model" in result.content[0].text
    assert "claude-opus-4-8" in result.content[0].text


async def test_a_huge_catalogue_stays_within_the_budget(relay: FakeRelay) -> None:
    many = [{**CATALOGUE[0], "name": f"model-{i:04d}", "description": "长描述 " * 40} for i in range(3000)]
    relay.enqueue(MODELS, Reply.json(200, {"data": many, "code": 0, "message": "ok"}))
    result = await call(relay, "list_models", {}, name="gemini-cli-mcp-client")
    assert not result.is_error
    shown = len(result.structured_content["models"])
    assert 50 < shown < 3000
    text, aliases = [block.text for block in result.content]  # the list, then the aliases (model → model-2999)
    assert weight(text + aliases) <= 40_000  # Gemini CLI cuts a result of one text block over 40,000 characters
    assert json_weight(result.structured_content) <= 40_000
    note = f"{3000 - shown} more models are not shown (too many for one result): filter by channel or modality."
    assert note in result.structured_content["notes"] and note in text
    assert list(result.structured_content) == ["notes", "models", "aliases"]  # the note before the list


async def test_list_models_takes_gemini_clis_wait_for_previous(relay: FakeRelay) -> None:
    result = await call(relay, "list_models", {"wait_for_previous": True}, name="gemini-cli-mcp-client")
    assert not result.is_error and names(result) == [entry["name"] for entry in CATALOGUE]
    filtered = await call(relay, "list_models", {"wait_for_previous": False, "channel": "gemini"})
    assert names(filtered) == ["gemini-3.1-pro-preview"]
    typo = await call(relay, "list_models", {"wait_for_previous": True, "chanel": "gemini"})
    assert typo.is_error and "`chanel` is not an argument" in typo.content[0].text  # other names still refused


async def test_send_message_drops_wait_for_previous_and_passes_anthropic_fields_on(relay: FakeRelay) -> None:
    result = await call(relay, "send_message", {**HELLO, "wait_for_previous": False, "service_tier": "auto"},
                        name="gemini-cli-mcp-client")  # fmt: skip
    assert not result.is_error
    body = relay.requests_to(MESSAGES)[0].json()
    assert "wait_for_previous" not in body
    assert body["service_tier"] == "auto"  # an Anthropic field this server does not model still goes through
    assert body["messages"] == HELLO["messages"]


async def test_every_tool_takes_gemini_clis_wait_for_previous(relay: FakeRelay) -> None:
    """Gemini CLI adds wait_for_previous to every tool's schema and sends it with every call."""
    sent = await call(relay, "send_message", {**HELLO, "wait_for_previous": False}, name="gemini-cli-mcp-client")
    reply_id = (sent.structured_content or {})["reply_id"]
    for tool, arguments in (("get_reply", {"reply_id": reply_id}), ("list_conversations", {})):
        result = await call(relay, tool, {**arguments, "wait_for_previous": True}, name="gemini-cli-mcp-client")
        assert not result.is_error, (tool, result.content)
