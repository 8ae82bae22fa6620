"""What each host shows the model of a send_message result: each part within the host's size
(picked by ``clientInfo.name``, AITOEARN_MAX_RESULT_CHARS overriding), weighed as the host
serialises it, and the members the model must read before ``content``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, Implementation

from aitoearn_mcp import Config, ConfigError
from aitoearn_mcp.views._budget import cut, fit_message, json_weight, weight
from aitoearn_mcp.views._hosts import DEFAULT_PROFILE, profile_for

from . import sse
from .conftest import KEY, HttpServer, make_server
from .fake_relay import FakeRelay, Reply
from .test_progress_cancel import SCRIPT

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
ASK = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "Write at length."}]}
LEADING = ["status", "reply_id", "notes", "truncated", "conversation_id", "credits", "route"]

ENGLISH_60K = "".join(f"Line {i:05d} of a long report, with plain English words in it.\n" for i in range(1000))[:60_000]
CJK = "".join(f"第{i}段：长篇报告的一部分，天空是蓝色的。\n" for i in range(1500))  # ~25,000 CJK characters
EMOJI = "🌍🚀✨ " * 6000  # astral characters: two UTF-16 units, four UTF-8 bytes each
ESCAPES = 'a "quoted" word\\\n' * 4000  # JSON doubles every quote, backslash and newline


def client_for(server: Any, name: str | None, mode: str = "auto") -> Client:
    info = Implementation(name=name, version="1.0") if name else None
    return Client(server, client_info=info, mode=mode)  # type: ignore[arg-type]


def stringify(value: Any) -> str:
    """What Claude Code gives the model: JSON.stringify(structuredContent)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def js_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def texts(result: CallToolResult) -> list[str]:
    return [block.text for block in result.content if block.type == "text"]


def assert_within(result: CallToolResult, budget: int) -> None:
    """Each part within the budget, as each host counts it."""
    shown = stringify(result.structured_content)
    text = "\n".join(texts(result))
    for part in (shown, text):
        assert weight(part) <= budget
        assert js_length(part) <= budget  # Claude Code counts JavaScript string length
        assert len(part.encode()) <= budget  # Codex cuts by UTF-8 bytes
        assert weight(part) / 2 <= 25_000 or budget > DEFAULT_PROFILE.max_result_chars  # conservative tokens


async def send(relay: FakeRelay, reply: str, name: str | None, mode: str = "auto", **settings: Any) -> CallToolResult:
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([reply[i : i + 5000] for i in range(0, len(reply), 5000)])))
    async with client_for(make_server(relay, **settings), name, mode) as client:
        return await client.call_tool("send_message", ASK)


def cleanup(result: CallToolResult) -> None:
    path = (result.structured_content or {}).get("truncated", {}).get("path")
    if path:
        Path(path).unlink()


def test_the_default_budget_fits_the_strictest_hosts() -> None:
    budget = DEFAULT_PROFILE.max_result_chars
    assert budget <= 45_000  # Claude Code shows 50,000 characters inline, Codex cuts over ~48,000 bytes
    assert budget / 4 <= 12_500  # Claude Code counts tokens only for results over 50,000 / 4 estimated
    assert budget / 2 <= 25_000  # and our conservative count stays under its 25,000
    assert profile_for("gemini-cli-mcp-client").max_result_chars > 60_000  # shows 79,000 whole
    assert profile_for("Claude-Code ") == profile_for("claude-code")
    assert profile_for("claude-code").max_result_chars == DEFAULT_PROFILE.max_result_chars
    assert profile_for(None) == profile_for("some-new-host") == DEFAULT_PROFILE


def test_weight_is_never_less_than_what_hosts_count() -> None:
    for text in (ENGLISH_60K, CJK, EMOJI, ESCAPES, "é" * 10, "\ud800 lone surrogate"):
        assert weight(text) >= js_length(text)
        assert weight(text) >= len(text.encode("utf-8", "surrogatepass"))
    assert weight("a") == 1 and weight("长") == 4 and weight("🌍") == 8
    assert json_weight({"t": 'a"\n'}) == len('{"t":"a\\"\\n"}')  # escapes counted as sent


# ASCII, escapes, CJK and emoji mixed: every weight a character can have.
MIXED = st.text(alphabet=st.sampled_from(["a", " ", "\n", '"', "\\", "长", "é", "🌍", "\x1b"]), max_size=400)


@given(MIXED, st.integers(min_value=-5, max_value=1000))
def test_cut_keeps_the_longest_beginning_within_the_limit(text: str, limit: int) -> None:
    kept = cut(text, limit)
    assert text.startswith(kept) and weight(kept) <= max(limit, 0)
    assert kept == text or weight(text[: len(kept) + 1]) > limit  # one more character would not fit


@given(MIXED, st.integers(min_value=60, max_value=1500))
def test_a_cut_message_keeps_the_longest_text_its_json_allows(text: str, limit: int) -> None:
    message = {"type": "message", "content": [{"type": "text", "text": text}]}
    kept = fit_message(message, limit)["content"][0]["text"]
    assert text.startswith(kept) and json_weight(fit_message(message, limit)) <= limit
    longer = {"type": "message", "content": [{"type": "text", "text": text[: len(kept) + 1]}]}
    assert kept == text or json_weight(longer) > limit


@pytest.mark.parametrize("name", ["claude-code", "codex-mcp-client", "claude-ai", None, "some-new-host"])
async def test_a_60000_character_reply_is_cut_within_the_strict_hosts(relay: FakeRelay, name: str | None) -> None:
    result = await send(relay, ENGLISH_60K, name)
    try:
        structured = result.structured_content
        assert structured is not None and not result.is_error
        assert_within(result, DEFAULT_PROFILE.max_result_chars)
        assert structured["truncated"]["full_chars"] == len(ENGLISH_60K)
        assert ENGLISH_60K.startswith(texts(result)[0]) and len(texts(result)[0]) > 30_000  # most of it, exactly
        assert (
            ENGLISH_60K.startswith(structured["content"][0]["text"]) and len(structured["content"][0]["text"]) > 30_000
        )
    finally:
        cleanup(result)


async def test_gemini_cli_gets_a_60000_character_reply_whole(relay: FakeRelay) -> None:
    result = await send(relay, ENGLISH_60K, "gemini-cli-mcp-client")
    assert result.structured_content is not None and "truncated" not in result.structured_content
    assert texts(result)[0] == ENGLISH_60K  # Gemini CLI shows the text content: all of it
    assert len(texts(result)) >= 2  # it cuts only a one-block result over 40,000 characters
    assert_within(result, profile_for("gemini-cli-mcp-client").max_result_chars)


async def test_the_setting_overrides_the_hosts_budget(relay: FakeRelay) -> None:
    whole = await send(relay, ENGLISH_60K, "claude-code", max_result_chars=100_000)
    assert whole.structured_content is not None and "truncated" not in whole.structured_content
    assert texts(whole)[0] == ENGLISH_60K
    cut = await send(relay, ENGLISH_60K, "gemini-cli-mcp-client", max_result_chars=20_000)
    try:
        assert cut.structured_content is not None and "truncated" in cut.structured_content
        assert_within(cut, 20_000)
        assert "budget of 20,000" in texts(cut)[1] and "budget of 20,000" in cut.structured_content["notes"][0]
    finally:
        cleanup(cut)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_client_name_is_read_on_both_protocols(relay: FakeRelay, mode: str) -> None:
    gemini = await send(relay, ENGLISH_60K, "gemini-cli-mcp-client", mode)
    assert gemini.structured_content is not None and "truncated" not in gemini.structured_content
    codex = await send(relay, ENGLISH_60K, "codex-mcp-client", mode)
    assert codex.structured_content is not None and "truncated" in codex.structured_content
    cleanup(codex)


@pytest.mark.parametrize("reply", [CJK, EMOJI, ESCAPES], ids=["cjk", "emoji", "escapes"])
async def test_replies_that_weigh_more_than_they_look_stay_within(relay: FakeRelay, reply: str) -> None:
    result = await send(relay, reply, "claude-code")
    try:
        assert result.structured_content is not None and "truncated" in result.structured_content
        assert_within(result, DEFAULT_PROFILE.max_result_chars)
        shown = result.structured_content["content"][0]["text"]
        assert reply.startswith(shown) and reply.startswith(texts(result)[0])
        # the budget is used, not wasted: escapes weigh double in the JSON, not in the text
        assert json_weight(shown) > DEFAULT_PROFILE.max_result_chars * 0.8
        # both parts end at the same character, so the next page (next_offset) follows either
        assert texts(result)[0] == shown and result.structured_content["next_offset"] == len(shown)
    finally:
        cleanup(result)


async def test_the_members_to_read_come_before_content_on_the_wire(relay: FakeRelay) -> None:
    """Over stdio, so the order is the one in the JSON the host receives; Claude Code shows a
    result too large for it as its first 2 KB, Codex keeps the head and the tail."""
    huge = ENGLISH_60K * 5  # 300,000 characters
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([huge[i : i + 5000] for i in range(0, len(huge), 5000)])))
    params = StdioServerParameters(command=SCRIPT, env={"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url,
                                                        "PATH": os.environ["PATH"]})  # fmt: skip
    async with Client(params, client_info=Implementation(name="claude-code", version="2.1.197")) as client:
        result = await client.call_tool("send_message", ASK)
    structured = result.structured_content
    assert structured is not None
    try:
        keys = list(structured)
        assert keys[: len(LEADING)] == LEADING and keys[-1] == "content"
        head = stringify(structured)[:2048]
        truncated = structured["truncated"]
        for fact in (
            truncated["uri"],
            truncated["path"],
            structured["conversation_id"],
            "pass it as conversation_id",
            f"{len(huge):,} characters",
            str(structured["credits"]["estimate"]),
            structured["route"],
        ):
            assert fact in head, fact  # fmt: skip
        anthropic.types.Message.model_validate(structured)  # still an Anthropic Message
    finally:
        Path(structured["truncated"]["path"]).unlink(missing_ok=True)  # the server removes its files at a clean exit


async def test_a_short_reply_leads_with_notes_too(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply.sse(sse.rich_reply()))
    async with client_for(make_server(relay), "codex-mcp-client") as client:
        result = await client.call_tool("send_message", ASK)
    structured = result.structured_content
    assert structured is not None
    keys = list(structured)
    assert keys[:6] == ["status", "reply_id", "notes", "conversation_id", "credits", "route"] and keys[-1] == "content"
    assert keys.index("stop_reason") < keys.index("content") and keys.index("usage") < keys.index("content")
    assert any("pass it as conversation_id to continue" in note for note in structured["notes"])
    anthropic.types.Message.model_validate(structured)


async def test_an_incomplete_reply_leads_with_the_error(relay: FakeRelay) -> None:
    events = [sse.message_start(), *sse.text_block(0, ["Half an ans", "wer"])[:-1]]
    relay.enqueue(MESSAGES, Reply.sse(events, end="drop"))
    async with client_for(make_server(relay), "claude-code") as client:
        result = await client.call_tool("send_message", ASK)
    assert result.is_error and result.structured_content is not None
    keys = list(result.structured_content)
    assert keys[:3] == ["status", "reply_id", "error"] and keys[-1] == "content"
    assert "incomplete" in result.structured_content["error"]


def test_the_setting_is_unset_unless_given() -> None:
    assert Config.from_env({}).max_result_chars is None  # per host
    assert Config.from_env({"AITOEARN_MAX_RESULT_CHARS": "3000"}).max_result_chars == 3000
    assert Config.from_env(Config().to_env()).max_result_chars is None  # worker processes too
    assert Config.from_env(Config(max_result_chars=5000).to_env()).max_result_chars == 5000
    with pytest.raises(ConfigError, match="AITOEARN_MAX_RESULT_CHARS must be 2000 or more"):
        Config.from_env({"AITOEARN_MAX_RESULT_CHARS": "100"})


async def test_over_http_the_name_counts_where_the_request_carries_it(
    relay: FakeRelay, http_server: HttpServer
) -> None:
    """Stateless HTTP: a 2026-07-28 request carries clientInfo; on the handshake-era protocol the
    initialize went to another request, so the strictest budget applies."""
    outcomes = {}
    for mode in ("legacy", "auto"):
        relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([ENGLISH_60K])))
        transport = streamable_http_client(
            http_server.url, http_client=create_mcp_http_client(headers={"X-Api-Key": KEY})
        )
        gemini = Implementation(name="gemini-cli-mcp-client", version="0.61.0")
        async with Client(transport, mode=mode, client_info=gemini) as client:  # type: ignore[arg-type]
            result = await client.call_tool("send_message", ASK)
        assert result.structured_content is not None
        outcomes[mode] = "truncated" in result.structured_content
        assert_within(result, profile_for(None if outcomes[mode] else gemini.name).max_result_chars)
    assert outcomes == {"legacy": True, "auto": False}


async def test_every_error_result_carries_its_text_in_the_structured_content_too(relay: FakeRelay) -> None:
    import jsonschema

    relay.enqueue(MESSAGES, Reply.json(403, {"type": "error", "error": {"type": "permission_error", "message": "no"}}))
    async with Client(make_server(relay)) as client, Client(make_server(relay, key=None)) as keyless:
        schemas = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
        failed = await client.call_tool("send_message", ASK)  # refused by the relay: it has a reply_id
        short = await client.call_tool("send_message", ASK)  # "Hello, world."
        calls = [("list_models", {"refresh": "yes"}), ("list_models", {"detail": "no-such-model"}),
                 ("send_message", {"model": "claude-sonnet-5"}), ("get_reply", {"reply_id": "r_nope"}),
                 ("get_reply", {"reply_id": short.structured_content["reply_id"], "offset": 50}),  # type: ignore[index]
                 ("list_conversations", {"conversation_id": "c_nope"})]  # fmt: skip
        results = [(name, await client.call_tool(name, args)) for name, args in calls]
        results.append(("send_message", await keyless.call_tool("send_message", ASK)))
    for name, result in results:
        [text] = [c.text for c in result.content if c.type == "text"]
        assert result.is_error and result.structured_content == {"status": "failed", "error": text}, (name, text)
        if schemas[name] is not None:
            jsonschema.validate(result.structured_content, schemas[name])
    assert failed.is_error and failed.structured_content is not None
    assert list(failed.structured_content)[:3] == ["status", "reply_id", "error"]
    assert failed.structured_content["status"] == "failed" and failed.structured_content["model"] == "claude-sonnet-5"
    assert failed.structured_content["error"] == failed.content[0].text  # type: ignore[union-attr]
    jsonschema.validate(failed.structured_content, schemas["send_message"])  # type: ignore[arg-type]
