"""Conversations kept by the server: continued by id across models and routes, branched,
bound to the key that made them, bounded in memory, shared through a real Redis by two HTTP
server processes."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr

from aitoearn_mcp.store._memory import MemoryStore
from aitoearn_mcp.store._protocol import Conversation
from aitoearn_mcp.store._redis import RedisStore

from .. import sse
from ..conftest import KEY, HttpServer, RedisServer, http_client, make_server
from ..fake_relay import FakeRelay, Reply, slow_reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
CHAT = "/api/ai/chat/completions"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def notes_of(result: CallToolResult) -> str:
    """The notes block: the last text content (a resource link may follow it)."""
    return [c.text for c in result.content if c.type == "text"][-1]


def conversation_of(result: CallToolResult) -> str:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    cid = result.structured_content["conversation_id"]
    assert f"[Conversation {cid}, turn " in notes_of(result)  # in the text the model reads too
    return cid


def thinking_reply(text: str) -> Reply:
    events = [sse.message_start(), *sse.thinking_block(0, ["私下想想"]), *sse.text_block(1, [text]), *sse.message_end()]
    return Reply.sse(events)


async def test_a_conversation_continues_across_models_and_routes(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, thinking_reply("第一答"))
    relay.enqueue(CHAT, Reply.chat([sse.chunk({"reasoning_content": "deep"}), *sse.chat_text_reply(["第二答"])]))
    async with Client(make_server(relay)) as client:
        first = await client.call_tool("send_message", {"model": "claude-sonnet-5", "system": "Be terse.",
                                                        "messages": [user("问一")]})  # fmt: skip
        cid = conversation_of(first)
        second = await client.call_tool("send_message", {"model": "deepseek-v4-pro", "conversation_id": cid,
                                                         "messages": [user("问二")]})  # fmt: skip
        third = await client.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": cid,
                                                        "system": "Be kind.", "messages": [user("问三")]})  # fmt: skip
    assert conversation_of(second) == cid and conversation_of(third) == cid
    assert "turn 3" in notes_of(third)
    # turn 2, on the OpenAI route: the history translated, the Claude thinking block not sent (other channel)
    chat = relay.requests_to(CHAT)[0].json()
    assert chat["messages"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "问一"},
                                {"role": "assistant", "content": "第一答"}, {"role": "user", "content": "问二"}]  # fmt: skip
    assert "Not sent" not in notes_of(second)
    assert "conversation_id" not in chat and "conversation_id" not in relay.requests_to(MESSAGES)[0].json()
    # turn 3, back on Claude: its own thinking block returns, DeepSeek's reasoning does not; the new system wins
    body = relay.requests_to(MESSAGES)[1].json()
    assert body["system"] == "Be kind."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "私下想想",
        "signature": "sig-AbC123==",
    }
    assert body["messages"][3]["content"] == [{"type": "text", "text": "第二答"}]
    assert body["messages"][4] == user("问三")


async def test_a_branch_starts_from_an_earlier_turn_and_gets_its_own_id(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        cid = conversation_of(
            await client.call_tool("send_message", {"model": "claude-sonnet-5", "messages": [user("a")]})
        )
        await client.call_tool(
            "send_message", {"model": "claude-sonnet-5", "conversation_id": cid, "messages": [user("b")]}
        )
        branch = await client.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": f"{cid}#1",
                                                         "messages": [user("b2")]})  # fmt: skip
        bad_turn = await client.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": f"{cid}#7",
                                                           "messages": [user("x")]})  # fmt: skip
    branch_id = conversation_of(branch)
    assert branch_id != cid and f"a branch of {cid}" in notes_of(branch)
    assert [m["content"] for m in relay.requests_to(MESSAGES)[2].json()["messages"]] == [
        "a", [{"type": "text", "text": "Hello, world."}], "b2"]  # fmt: skip
    assert bad_turn.is_error and "has turns 1 to 2" in bad_turn.content[0].text  # type: ignore[union-attr]
    assert len(relay.requests_to(MESSAGES)) == 3


async def test_a_failed_or_cancelled_call_leaves_the_conversation_as_it_was(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        cid = conversation_of(
            await client.call_tool("send_message", {"model": "claude-sonnet-5", "messages": [user("a")]})
        )
        relay.enqueue(MESSAGES, Reply.json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                            "message": "nope"}}))  # fmt: skip
        failed = await client.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": cid,
                                                         "messages": [user("fails")]})  # fmt: skip
        assert failed.is_error and failed.structured_content is not None
        assert "conversation_id" not in failed.structured_content
        relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"t{i} " for i in range(200)]), delay=0.05))
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(client.call_tool, "send_message", {"model": "claude-sonnet-5", "conversation_id": cid,
                                                                "messages": [user("cancelled")]})  # fmt: skip
            while len(relay.requests_to(MESSAGES)) < 3:
                await anyio.sleep(0.01)
            await anyio.sleep(0.2)
            tasks.cancel_scope.cancel()
        after = await client.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": cid,
                                                        "messages": [user("b")]})  # fmt: skip
    assert conversation_of(after) == cid and "turn 2" in notes_of(after)
    sent = relay.requests_to(MESSAGES)[-1].json()["messages"]
    assert [m["content"] for m in sent] == ["a", [{"type": "text", "text": "Hello, world."}], "b"]


async def test_an_unknown_id_is_refused_before_any_upstream_call(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        for ref in ("c_doesnotexist0000", "not-an-id", "c_doesnotexist0000#2"):
            result = await client.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": ref,
                                                              "messages": [user("x")]})  # fmt: skip
            assert result.is_error
            text = result.content[0].text  # type: ignore[union-attr]
            assert "is unknown or has expired" in text and "without conversation_id" in text
            assert "Nothing was sent" in text
    assert relay.requests_to(MESSAGES) == []


async def test_a_conversation_belongs_to_its_key(relay: FakeRelay, http_server: HttpServer) -> None:
    async with http_client(http_server.url, {"X-Api-Key": "sk-alice-0123456789"}) as alice:
        cid = conversation_of(await alice.call_tool("send_message", {"model": "claude-sonnet-5",
                                                                     "messages": [user("alice's secret")]}))  # fmt: skip
    async with http_client(http_server.url, {"X-Api-Key": "sk-mallory-0123456789"}) as mallory:
        stolen = await mallory.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": cid,
                                                          "messages": [user("what did she say?")]})  # fmt: skip
    assert stolen.is_error and "is unknown or has expired" in stolen.content[0].text  # type: ignore[union-attr]
    assert len(relay.requests_to(MESSAGES)) == 1  # mallory's call never went out
    async with http_client(http_server.url, {"X-Api-Key": "sk-alice-0123456789"}) as alice:
        again = await alice.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": cid,
                                                       "messages": [user("more")]})  # fmt: skip
    assert conversation_of(again) == cid  # kept in the process's memory between stateless requests
    assert relay.requests_to(MESSAGES)[1].json()["messages"][0] == user("alice's secret")
    assert "alice's secret" not in stolen.content[0].text  # type: ignore[union-attr]


async def test_memory_store_expires_evicts_least_recently_used_and_keeps_no_key() -> None:
    store = MemoryStore(ttl=0.3, max_bytes=2500)
    owner = await store.owner_tag(SecretStr(KEY))
    assert KEY not in owner and owner != await MemoryStore(1, 1).owner_tag(SecretStr(KEY))  # keyed, per secret

    def conversation(cid: str) -> Conversation:
        return Conversation(cid, owner, None, [{"messages": [user("x" * 1000)], "reply": [], "channel": None}])

    for cid in ("c_aaaaaaaa", "c_bbbbbbbb"):
        assert await store.save(conversation(cid), expected_turns=0)
    assert await store.load("c_aaaaaaaa", owner) is not None  # a is now the most recently used
    assert await store.save(conversation("c_cccccccc"), expected_turns=0)  # over 2,500 bytes: b goes
    assert await store.load("c_bbbbbbbb", owner) is None
    assert await store.load("c_aaaaaaaa", owner) is not None and await store.load("c_cccccccc", owner) is not None
    assert await store.load("c_aaaaaaaa", "someone else") is None
    assert not await store.save(conversation("c_aaaaaaaa"), expected_turns=0)  # it has 1 turn, not 0
    await anyio.sleep(0.35)
    assert await store.load("c_aaaaaaaa", owner) is None  # expired


async def test_redis_store_expires_and_refuses_a_stale_continuation(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, ttl=0.4)
    other = RedisStore(redis_server.url, ttl=0.4)
    try:
        owner = await store.owner_tag(SecretStr(KEY))
        assert owner == await other.owner_tag(SecretStr(KEY))  # every process sharing the Redis agrees
        turn = {"messages": [user("x")], "reply": [], "channel": None}
        first = Conversation("c_redis00001", owner, "sys", [turn])
        assert await store.save(first, expected_turns=0)
        loaded = await other.load("c_redis00001", owner)
        assert loaded is not None and loaded.system == "sys" and loaded.turns == [turn]
        assert await store.save(Conversation("c_redis00001", owner, "sys", [turn, turn]), expected_turns=1)
        assert not await other.save(Conversation("c_redis00001", owner, "sys", [turn, turn]), expected_turns=1)
        assert await other.load("c_redis00001", "not the owner") is None
        await anyio.sleep(0.5)
        assert await store.load("c_redis00001", owner) is None
        assert await store.ping()
    finally:
        await store.aclose()
        await other.aclose()


async def test_two_http_processes_share_conversations_and_replies_through_redis(
    relay: FakeRelay, redis_server: RedisServer
) -> None:
    env = {"AITOEARN_CONVERSATIONS": redis_server.url, "AITOEARN_MAX_RESULT_CHARS": "3000"}
    servers = [HttpServer(relay, env=env), HttpServer(relay, env=env)]
    long_text = "长" * 2000
    relay.enqueue(CHAT, Reply.chat(sse.chat_text_reply([long_text])))
    try:
        async with http_client(servers[0].url) as a:
            first = await a.call_tool("send_message", {"model": "gpt-5.5", "messages": [user("one")]})
        cid = conversation_of(first)
        uri = first.structured_content["truncated"]["uri"]  # type: ignore[index]
        async with http_client(servers[1].url) as b:
            second = await b.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": cid,
                                                        "messages": [user("two")]})  # fmt: skip
            full = await b.read_resource(uri)  # the reply is read back on the other process
    finally:
        for server in servers:
            server.stop()
    assert conversation_of(second) == cid
    sent = relay.requests_to(MESSAGES)[0].json()["messages"]
    assert sent == [user("one"), {"role": "assistant", "content": [{"type": "text", "text": long_text}]}, user("two")]
    assert full.contents[0].text == long_text  # type: ignore[union-attr]


async def test_redis_down_refuses_what_needs_it_and_serves_the_rest(relay: FakeRelay) -> None:
    from ..conftest import free_port

    async with Client(make_server(relay, conversations=f"redis://127.0.0.1:{free_port()}/0")) as client:
        continued = await client.call_tool("send_message", {"model": "claude-sonnet-5", "conversation_id": "c_abcdefgh12",
                                                            "messages": [user("x")]})  # fmt: skip
        fresh = await client.call_tool("send_message", {"model": "claude-sonnet-5", "messages": [user("x")]})
        models = await client.call_tool("list_models", {})
    assert continued.is_error and "conversation store (AITOEARN_CONVERSATIONS) could not be used" in \
        continued.content[0].text  # type: ignore[union-attr]  # fmt: skip
    assert len(relay.requests_to(MESSAGES)) == 1  # only the fresh call went out
    assert not fresh.is_error and fresh.content[0].text == "Hello, world."  # type: ignore[union-attr]
    assert "could not be stored" in notes_of(fresh)
    assert "conversation_id" not in (fresh.structured_content or {})
    assert not models.is_error


def test_ids_are_unguessable() -> None:
    from aitoearn_mcp.store._protocol import new_conversation_id, parse_conversation_ref

    ids = {new_conversation_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(re.fullmatch(r"c_[A-Za-z0-9_-]{22}", i) for i in ids)
    assert parse_conversation_ref("c_abcdefgh#3") == ("c_abcdefgh", 3)
    assert parse_conversation_ref("c_abc") is None and parse_conversation_ref("c_abcdefgh#x") is None
