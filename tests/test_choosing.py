"""Choosing models through a real mcp.Client against the fake relay: aliases that follow the
catalogue, the allowlist, fallback on each failure form (and none once text arrived), a judged
panel, and the daily credits cap in memory, SQLite and (over HTTP, two replicas) Redis."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from . import sse
from .conftest import HttpServer, RedisServer, http_client, make_server
from .fake_relay import CATALOGUE, FakeRelay, Reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
CHAT = "/api/ai/chat/completions"
MODELS = "/api/ai/models/chat"


def ask(model: Any = "claude", **extra: Any) -> dict[str, Any]:
    key = "models" if isinstance(model, list) else "model"
    return {key: model, "messages": [{"role": "user", "content": "Is P = NP?"}], **extra}


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def structured_text(result: CallToolResult) -> str:
    return json.dumps(result.structured_content, ensure_ascii=False)


def catalogue(*entries: dict[str, Any]) -> Callable[[bytes], Reply]:
    return lambda _: Reply.json(200, {"data": list(entries), "code": 0, "message": "ok"})


def model_of(request: Any) -> str:
    return request.json()["model"]


def wrapper(code: int, message: str) -> Reply:
    return Reply.json(200, {"data": {}, "code": code, "message": message})


def anthropic(status: int, kind: str, message: str) -> Reply:
    return Reply.json(status, {"type": "error", "error": {"type": kind, "message": message}}, {"retry-after": "0"})


GEMINI_NEXT = {"name": "gemini-4-pro", "channel": "gemini", "inputModalities": ["text"], "outputModalities": ["text"],
               "pricing": {"tiers": [{"input": {"text": "0.1"}, "output": {"text": "0.6"}}]}}  # fmt: skip
GEMINI_IMAGE = {"name": "gemini-5-pro-image", "channel": "gemini", "outputModalities": ["text", "image"]}


# --- aliases ---------------------------------------------------------------------------------


async def test_an_alias_follows_the_catalogue_when_it_refreshes(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        first = await client.call_tool("send_message", ask("gemini"))
        relay.route(MODELS, catalogue(*CATALOGUE, GEMINI_NEXT, GEMINI_IMAGE))
        listed = await client.call_tool("list_models", {"refresh": True})  # the catalogue's refresh: no restart
        second = await client.call_tool("send_message", ask("Gemini"))
    assert [model_of(r) for r in relay.requests_to(CHAT)] == ["gemini-3.1-pro-preview", "gemini-4-pro"]
    for result, model, asked in ((first, "gemini-3.1-pro-preview", "gemini"), (second, "gemini-4-pro", "Gemini")):
        assert not result.is_error, text_of(result)
        said = f"You asked for '{asked}': that is {model} (the newest gemini chat model in the catalogue)"
        assert said in text_of(result) and said in structured_text(result)  # both parts
        assert result.structured_content["alias"] == {"asked": asked, "model": model,
                                                      "why": "the newest gemini chat model in the catalogue"}  # fmt: skip
    assert listed.structured_content["aliases"]["gemini"] == "gemini-4-pro"  # not the image model, though newer
    assert "gemini → gemini-4-pro" in text_of(listed)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        # generation first, then the tier, then the whole version, then catalogue order
        (["gemini-3.1-pro-preview", "gemini-3.5-flash", "gemini-2.5-ultra"], "gemini-3.1-pro-preview"),
        (["claude-opus-4-8", "claude-fable-5", "claude-sonnet-5"], "claude-sonnet-5"),
        (["gpt-5.5", "gpt-5.6-sol", "gpt-4o"], "gpt-5.6-sol"),
        (["kimi-k2", "kimi-k3"], "kimi-k3"),
        (["glm-5.2", "glm-5.2-air"], "glm-5.2"),
    ],
)
def test_the_flagship_rule(names: list[str], expected: str) -> None:
    from aitoearn_mcp.relay._choose import flagships

    assert set(flagships([{"name": n, "outputModalities": ["text"]} for n in names]).values()) == {expected}


async def test_configured_aliases_add_and_override_and_a_name_always_wins(relay: FakeRelay) -> None:
    aliases = (("claude", "claude-opus-4-8"), ("review", "gpt-5.5"), ("cheap", "deepseek"), ("gpt-5.5", "claude"),
               ("broken", "gpt-9"))  # fmt: skip
    async with Client(make_server(relay, model_aliases=aliases)) as client:
        listed = await client.call_tool("list_models", {})
        results = [
            await client.call_tool("send_message", ask(name)) for name in ("claude", "review", "cheap", "gpt-5.5")
        ]
        broken = await client.call_tool("send_message", ask("broken"))
    assert [model_of(r) for r in relay.requests_to(MESSAGES)] == ["claude-opus-4-8"]
    assert [model_of(r) for r in relay.requests_to(CHAT)] == ["gpt-5.5", "deepseek-v4-pro", "gpt-5.5"]
    assert "AITOEARN_MODEL_ALIASES review=gpt-5.5" in text_of(results[1])
    assert "alias" not in results[3].structured_content  # the exact catalogue name, not the alias
    table = listed.structured_content["aliases"]
    assert table["claude"] == "claude-opus-4-8" and table["cheap"] == "deepseek-v4-pro" and "gpt-5.5" not in table
    assert listed.structured_content["unmatched"] == ["broken"] and "match no model: broken" in text_of(listed)
    assert broken.is_error and "matches no model in the catalogue" in text_of(broken)
    assert all(entry["name"] in text_of(broken) for entry in CATALOGUE)  # the catalogue's names


# --- the allowlist ---------------------------------------------------------------------------


async def test_the_allowlist_hides_and_refuses(relay: FakeRelay) -> None:
    async with Client(make_server(relay, allowed_models=("claude-*", "deepseek-v4-pro"))) as client:
        listed = await client.call_tool("list_models", {})
        refused = await client.call_tool("send_message", ask("gpt-5.5"))
        by_alias = await client.call_tool("send_message", ask("gemini"))
        in_fallback = await client.call_tool("send_message", ask("claude", fallback=["gpt"]))
        allowed = await client.call_tool("send_message", ask("claude"))
    names = [m["name"] for m in listed.structured_content["models"]]
    assert names == ["claude-sonnet-5", "claude-opus-4-8", "deepseek-v4-pro"]
    assert set(listed.structured_content["aliases"]) == {"claude", "deepseek"}
    for result, field in ((refused, "model"), (in_fallback, "fallback")):
        assert result.is_error
        message = text_of(result)
        assert f"`{field}`" in message and "AITOEARN_MODELS=claude-*,deepseek-v4-pro" in message
        assert "claude-sonnet-5, claude-opus-4-8, deepseek-v4-pro" in message and "Nothing was sent" in message
    assert by_alias.is_error and "`model` 'gemini' is not allowed" in text_of(by_alias)
    assert not allowed.is_error
    assert [model_of(r) for r in relay.requests_to(MESSAGES)] == ["claude-sonnet-5"] and not relay.requests_to(CHAT)


# --- fallback --------------------------------------------------------------------------------

SCOPED = [{**CATALOGUE[0], "creditsScope": "seedance"}, {**CATALOGUE[4], "creditsScope": "general"},
          {**CATALOGUE[3], "creditsScope": "seedance"}]  # fmt: skip

FAILURES: dict[str, Reply] = {
    "529 overloaded": anthropic(529, "overloaded_error", "Overloaded"),
    "429 rate limited": anthropic(429, "rate_limit_error", "slow down"),
    "503 gateway page": Reply.html(503, "503 Service Unavailable"),
    "500 api_error": anthropic(500, "api_error", "boom"),
    "no channel": wrapper(19001, "无可用渠道"),
    "invalid model on every route": wrapper(12300, "无效的 AI 模型"),
    "seedance credits, a general model next": wrapper(12001, "用户Credits不足"),
    "overloaded before any text": Reply.sse([{"type": "error", "error": {"type": "overloaded_error",
                                                                          "message": "Overloaded"}}]),
}  # fmt: skip


@pytest.mark.parametrize("form", list(FAILURES))
async def test_fallback_on_each_failure_before_any_text(relay: FakeRelay, form: str) -> None:
    relay.route(MODELS, catalogue(*SCOPED))
    relay.enqueue(MESSAGES, FAILURES[form])
    async with Client(make_server(relay, max_retries=0)) as client:
        result = await client.call_tool("send_message", ask("claude-sonnet-5", fallback=["gpt"]))
    assert not result.is_error, text_of(result)
    assert len(relay.requests_to(MESSAGES)) == 1 and [model_of(r) for r in relay.requests_to(CHAT)] == ["gpt-5.5"]
    assert result.structured_content["model"] == "gpt-5.5"
    for part in (text_of(result), structured_text(result)):
        assert "[Fallback: claude-sonnet-5 did not answer: " in part and "gpt-5.5 answered instead" in part
    assert result.structured_content["fallback"][0]["model"] == "claude-sonnet-5"


async def test_fallback_from_the_environment_and_past_a_model_of_the_same_spent_credits(relay: FakeRelay) -> None:
    relay.route(MODELS, catalogue(*SCOPED))
    relay.enqueue(MESSAGES, wrapper(12001, "用户Credits不足"))
    async with Client(make_server(relay, max_retries=0, fallback=("deepseek-v4-pro", "gpt-5.5"))) as client:
        result = await client.call_tool("send_message", ask("claude-sonnet-5"))
    assert [model_of(r) for r in relay.requests_to(CHAT)] == ["gpt-5.5"]  # deepseek draws on the same credits
    assert "deepseek-v4-pro did not answer: not tried: it may draw on the same credits" in text_of(result)
    assert result.structured_content["model"] == "gpt-5.5"


HALF = [sse.message_start(), {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Half a reply"}}]  # fmt: skip


@pytest.mark.parametrize(
    "reply",
    [
        Reply.sse([*HALF, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]),
        Reply.sse(HALF, end="drop"),
        anthropic(401, "authentication_error", "invalid x-api-key"),  # every model would refuse the key
        anthropic(400, "invalid_request_error", "roles must alternate"),
    ],
    ids=["overloaded after text", "dropped after text", "key rejected", "request invalid"],
)
async def test_no_fallback_once_text_arrived_or_for_the_callers_own_fault(relay: FakeRelay, reply: Reply) -> None:
    relay.enqueue(MESSAGES, reply)
    async with Client(make_server(relay, max_retries=0)) as client:
        result = await client.call_tool("send_message", ask("claude-sonnet-5", fallback=["gpt-5.5", "deepseek"]))
    assert result.is_error
    assert len(relay.requests_to(MESSAGES)) == 1 and not relay.requests_to(CHAT)  # nothing billed twice
    assert "Fallback" not in text_of(result)


async def test_every_model_failing_names_each(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, anthropic(529, "overloaded_error", "Overloaded"))
    relay.enqueue(CHAT, Reply.json(503, {"error": {"message": "busy", "type": "server_error"}}))
    async with Client(make_server(relay, max_retries=0)) as client:
        result = await client.call_tool("send_message", ask("claude-sonnet-5", fallback=["gpt-5.5"]))
    assert result.is_error
    assert "[Fallback: claude-sonnet-5 did not answer: The relay is overloaded" in text_of(result)
    assert "gpt-5.5 was the last tried" in text_of(result)


# --- a judged panel --------------------------------------------------------------------------


async def test_a_panel_of_three_with_a_judge_one_member_failing(relay: FakeRelay) -> None:
    judged: list[dict[str, Any]] = []

    def chat(body: bytes) -> Reply:
        request = json.loads(body)
        model = request["model"]
        if model == "deepseek-v4-pro":
            return Reply.json(400, {"error": {"message": "context too long", "type": "invalid_request_error"}})
        if model == "gemini-3.1-pro-preview":
            judged.append(request)
            return Reply.chat(sse.chat_text_reply(["A and B agree; A is best."], model=model))
        words = "As GPT-5.5 I say no; Claude would agree." if model == "gpt-5.5" else "?"
        return Reply.chat(sse.chat_text_reply([words], model=model))

    relay.route(CHAT, chat)
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply(["I am claude-sonnet-5 and I say: unknown, likely no."])))
    models = ["claude-sonnet-5", "deepseek-v4-pro", "gpt"]
    async with Client(make_server(relay, max_retries=0)) as client:
        result = await client.call_tool("send_message", ask(models, judge="gemini"))
        members = result.structured_content["panel"]
        fetched = {m["model"]: await client.call_tool("get_reply", {"reply_id": m["reply_id"]}) for m in members}
    assert not result.is_error, text_of(result)
    assert text_of(result).startswith("A and B agree; A is best.\n[Reply ")  # the synthesis leads
    assert result.structured_content["model"] == "gemini-3.1-pro-preview"
    [prompt] = [m["content"] for m in judged[0]["messages"] if m["role"] == "user"]
    everything = json.dumps({k: v for k, v in judged[0].items() if k != "model"}, ensure_ascii=False)
    for name in ("claude", "gpt", "deepseek", "gemini", "sonnet", "5.5"):
        assert name not in everything.lower(), name  # no model named anywhere in the judge's request
    assert "Is P = NP?" in prompt and "Answer A:" in prompt and "Answer B:" in prompt and "Answer C" not in prompt
    assert prompt.count("[a model]") == 3
    labels = {m["model"]: m.get("label") for m in members}
    assert sorted(filter(None, labels.values())) == ["A", "B"] and labels["deepseek-v4-pro"] is None
    for member in members:
        line = (f"[Reply {member['label']}: {member['model']}, {member['chars']:,} characters"
                if member.get("label") else "[deepseek-v4-pro gave no reply for the judge (failed)")  # fmt: skip
        assert line in text_of(result) and member["reply_id"] in text_of(result)
    assert "context too long" in next(m for m in members if m["model"] == "deepseek-v4-pro")["error"]
    assert text_of(fetched["gpt-5.5"]).startswith("As GPT-5.5 I say no; Claude would agree.\n")  # whole, unmasked
    assert fetched["deepseek-v4-pro"].is_error


async def test_a_panel_with_no_reply_has_no_judge(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, anthropic(400, "invalid_request_error", "no"))
    relay.route(CHAT, lambda _: Reply.json(400, {"error": {"message": "no", "type": "invalid_request_error"}}))
    async with Client(make_server(relay, max_retries=0)) as client:
        result = await client.call_tool("send_message", ask(["claude-sonnet-5", "gpt-5.5"], judge="gemini"))
    assert result.is_error
    assert "No member of the panel replied" in text_of(result) and "gpt-5.5 gave no reply" in text_of(result)
    assert [model_of(r) for r in relay.requests_to(CHAT)] == ["gpt-5.5"]  # no judge was asked


async def test_a_panel_that_outlasts_the_wait_returns_the_judges_reply_id(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, Reply(chunks=[sse.encode(sse.text_reply(["slow"]))], delay=0.6))
    async with Client(make_server(relay)) as client:
        running = await client.call_tool("send_message", ask(["claude-sonnet-5", "gpt-5.5"], judge="deepseek",
                                                             wait_seconds=0.1))  # fmt: skip
        reply_id = running.structured_content["reply_id"]
        done = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 10})
    assert running.structured_content["status"] == "running"
    assert done.structured_content["status"] == "complete" and done.structured_content["model"] == "deepseek-v4-pro"
    assert len(done.structured_content["panel"]) == 2


# --- the daily cap ---------------------------------------------------------------------------

OPUS = ask("claude-opus-4-8")  # a flat 1.5 credits a call


async def cap_calls(client: Client, calls: int) -> list[CallToolResult]:
    return [await client.call_tool("send_message", OPUS) for _ in range(calls)]


def assert_capped(results: list[CallToolResult], relay: FakeRelay, totals: list[str], refused_at: str) -> None:
    *passed, refused = results
    for result, total in zip(passed, totals, strict=True):
        assert not result.is_error, text_of(result)
        line = f"[Today (UTC) this key has used about {total} of its 4 credits (AITOEARN_MAX_CREDITS_PER_DAY).]"
        assert line in text_of(result) and line in result.structured_content["notes"]
        assert result.structured_content["credits"]["today"] == total  # beside the call's credits
        assert result.structured_content["credits"]["estimate"] == "1.5"
    assert refused.is_error
    assert f"has used about {refused_at} of its 4 credits today" in text_of(refused)
    assert "AITOEARN_MAX_CREDITS_PER_DAY" in text_of(refused) and "Nothing was sent" in text_of(refused)
    assert len(relay.requests_to(MESSAGES)) == len(passed)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_the_daily_cap_in_memory_and_sqlite(relay: FakeRelay, tmp_path: Path, store: str) -> None:
    setting = "memory" if store == "memory" else str(tmp_path / "store.sqlite3")
    async with Client(make_server(relay, conversations=setting, max_credits_per_day=4.0)) as client:
        assert_capped(await cap_calls(client, 3), relay, ["1.5", "3"], "3")
    if store == "sqlite":  # the count is in the file: a new server process sees it
        async with Client(make_server(relay, conversations=setting, max_credits_per_day=4.0)) as client:
            [again] = await cap_calls(client, 1)
        assert again.is_error and "used about 3 of its 4" in text_of(again)


async def test_the_daily_cap_is_shared_by_two_http_replicas_on_redis(relay: FakeRelay,
                                                                    redis_server: RedisServer) -> None:  # fmt: skip
    env = {"AITOEARN_CONVERSATIONS": redis_server.url, "AITOEARN_MAX_CREDITS_PER_DAY": "4"}
    replicas = [HttpServer(relay, env=env), HttpServer(relay, env=env)]
    try:
        results = []
        for replica in (0, 1, 0):
            async with http_client(replicas[replica].url) as client:
                results += await cap_calls(client, 1)
    finally:
        for server in replicas:
            server.stop()
    assert_capped(results, relay, ["1.5", "3"], "3")


async def test_the_cap_counts_a_fallback_once(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, anthropic(529, "overloaded_error", "Overloaded"))
    settings = {"max_retries": 0, "conversations": "memory", "max_credits_per_day": 100.0}
    async with Client(make_server(relay, **settings)) as client:
        result = await client.call_tool("send_message", ask("claude-opus-4-8", fallback=["claude-opus-4-8", "gpt"],
                                                            max_tokens=100))  # fmt: skip
    assert not result.is_error
    credits = result.structured_content["credits"]
    assert credits["today"] == credits["estimate"]  # the failed model's reservation was given back
    assert re.fullmatch(r"0\.0\d+", credits["today"])


def test_the_settings_are_read_and_checked() -> None:
    from aitoearn_mcp import Config
    from aitoearn_mcp._config import ConfigError

    env = {"AITOEARN_MODEL_ALIASES": " review=gpt-5.5, cheap=deepseek,review=claude ", "AITOEARN_MODELS": "claude-*,gpt-5.5",
           "AITOEARN_FALLBACK": "gpt, deepseek", "AITOEARN_MAX_CREDITS_PER_DAY": "12.5"}  # fmt: skip
    config = Config.from_env(env)
    assert config.model_aliases == (("review", "claude"), ("cheap", "deepseek"))  # the last pair for a name wins
    assert config.allowed_models == ("claude-*", "gpt-5.5") and config.fallback == ("gpt", "deepseek")
    assert config.max_credits_per_day == 12.5 and Config.from_env(config.to_env()) == config
    for name, value in (("AITOEARN_MODEL_ALIASES", "review"), ("AITOEARN_MODEL_ALIASES", "a b=gpt"),
                        ("AITOEARN_MAX_CREDITS_PER_DAY", "-1"), ("AITOEARN_FALLBACK", "gpt 5")):  # fmt: skip
        with pytest.raises(ConfigError, match=name.removeprefix("AITOEARN_")[:10]):
            Config.from_env({name: value})
