"""Long delegations through a real mcp.Client: send_message answers "running" before the host
gives up, get_reply waits, pages and cancels, several models go in one call, and a reply
started on one HTTP process is collected on another (one real Redis)."""

from __future__ import annotations

import itertools
import json
import signal
import time
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, Implementation

from .. import sse
from ..conftest import HELLO, KEY, HttpServer, RedisServer, http_client, make_server
from ..fake_relay import FakeRelay, Reply, slow_reply, thinking_reply
from ..test_progress_cancel import stdio

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
CHAT = "/api/ai/chat/completions"
CLAUDE_AI = Implementation(name="claude-ai", version="1.0")


def weight(text: str) -> int:
    ascii_count = len(text.encode("ascii", "ignore"))
    return ascii_count + 4 * (len(text) - ascii_count)


def texts(result: CallToolResult) -> list[str]:
    return [c.text for c in result.content if c.type == "text"]


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, texts(result)
    return result.structured_content


def assert_running(result: CallToolResult) -> str:
    """A wait that ran out: not an error, status and reply id first, said in words too."""
    assert not result.is_error, texts(result)
    content = structured(result)
    assert list(content)[:2] == ["status", "reply_id"]
    assert content["status"] == "running" and content["reply_id"].startswith("r_")
    assert "get_reply" in content["next"] and content["reply_id"] in content["next"]
    words = "\n".join(texts(result))
    assert "still working" in words and content["reply_id"] in words and "get_reply" in words
    return content["reply_id"]


async def test_a_silent_model_outlives_the_hosts_timeout_over_stdio(relay: FakeRelay) -> None:
    """Claude Desktop's 60 s: a model that thinks for 75 s (pings only) still reaches the agent
    whole, asked once, with progress at least every 10 s while it is silent."""
    answer = [f"深思熟虑后的回答 {i}。" for i in range(50)]
    relay.enqueue(MESSAGES, thinking_reply(sse.text_reply(answer), silence=75, ping_every=5))
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(time.monotonic())

    async with Client(stdio(relay), read_timeout_seconds=60, client_info=CLAUDE_AI) as client:
        started = time.monotonic()
        first = await client.call_tool("send_message", HELLO, progress_callback=on_progress)
        returned = time.monotonic() - started
        reply_id = assert_running(first)
        assert returned < 60
        collected = await client.call_tool("get_reply", {"reply_id": reply_id}, progress_callback=on_progress)
    assert not collected.is_error and texts(collected)[0] == "".join(answer)
    assert structured(collected)["status"] == "complete" and structured(collected)["reply_id"] == reply_id
    assert len(relay.requests_to(MESSAGES)) == 1  # nothing generated twice
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert max(gaps) <= 10, gaps  # hosts that reset their timeout on progress never time out


async def test_wait_seconds_answers_running_then_get_reply_collects_it(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, thinking_reply(sse.text_reply(["Finally", ", an answer."]), silence=5))
    async with Client(make_server(relay)) as client:
        started = time.monotonic()
        first = await client.call_tool("send_message", {**HELLO, "wait_seconds": 3})
        elapsed = time.monotonic() - started
        reply_id = assert_running(first)
        assert 2.8 <= elapsed < 5, elapsed
        assert structured(first)["chars_received"] == 0 and structured(first)["elapsed_seconds"] >= 2.8
        early = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 0})
        assert assert_running(early) == reply_id
        done = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 20})
        again = await client.call_tool("get_reply", {"reply_id": reply_id})  # now read from the store
        past_end = await client.call_tool("get_reply", {"reply_id": reply_id, "offset": 10_000})
        resource = await client.read_resource(f"aitoearn://replies/{reply_id}")
    assert texts(done)[0] == "Finally, an answer." and structured(done)["status"] == "complete"
    assert structured(done)["next_offset"] is None and structured(done)["conversation_id"].startswith("c_")
    assert texts(again) == texts(done) and structured(again) == structured(done)
    assert past_end.is_error and "`offset` 10,000 is past the end" in texts(past_end)[0]
    assert resource.contents[0].text == "Finally, an answer."  # type: ignore[union-attr]  # the same ids
    assert len(relay.requests_to(MESSAGES)) == 1


async def test_cancel_stops_the_relay_within_a_second_and_stays_cancelled(relay: FakeRelay) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"t{i} " for i in range(400)]), delay=0.05))  # 20 s
    async with Client(make_server(relay)) as client:
        reply_id = assert_running(await client.call_tool("send_message", {**HELLO, "wait_seconds": 1}))
        asked = time.monotonic()
        cancelled = await client.call_tool("get_reply", {"reply_id": reply_id, "cancel": True})
        with anyio.fail_after(5):
            while not relay.hangups:
                await anyio.sleep(0.01)
        assert relay.hangups[0] - asked < 1.0  # the relay stream closed: billing stops
        later = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 2})
    assert not cancelled.is_error and structured(cancelled)["status"] == "cancelled"
    kept = texts(cancelled)[0]
    assert kept.startswith("t0 t1 ") and "Cancelled at your request" in "\n".join(texts(cancelled))
    assert structured(cancelled)["content"][0]["text"] == kept  # what arrived is kept in both parts
    assert structured(later)["status"] == "cancelled" and texts(later)[0] == kept  # it stays cancelled
    assert len(relay.requests_to(MESSAGES)) == 1


async def test_unknown_and_malformed_reply_ids_are_refused_clearly(relay: FakeRelay) -> None:
    async with Client(make_server(relay)) as client:
        unknown = await client.call_tool("get_reply", {"reply_id": "r_doesnotexist"})
        bad = await client.call_tool("get_reply", {"reply_id": "r_x", "offset": -1})
    assert unknown.is_error and "unknown or has expired" in texts(unknown)[0]
    assert bad.is_error and "`offset`" in texts(bad)[0] and "fix:" in texts(bad)[0]


@pytest.mark.parametrize("unit", ['Line "quoted" and\tescaped \\ text.\n', "长篇回答的一部分，包含中文。\n"])
async def test_a_long_reply_reads_back_whole_in_pages_under_the_budget(relay: FakeRelay, unit: str) -> None:
    original = (unit * (300_000 // len(unit) + 1))[:300_000]
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([original[i : i + 5000] for i in range(0, 300_000, 5000)])))
    budget = 40_000
    pages: list[str] = []
    async with Client(make_server(relay, max_result_chars=budget)) as client:
        result = await client.call_tool("send_message", HELLO)
        reply_id = structured(result)["reply_id"]
        while True:
            assert not result.is_error, texts(result)
            content = structured(result)
            assert sum(weight(t) for t in texts(result)) <= budget
            assert weight(json.dumps(content, ensure_ascii=False)) <= budget
            assert list(content)[:2] == ["status", "reply_id"] and content["status"] == "complete"
            pages.append(texts(result)[0])
            if content["next_offset"] is None:
                break
            assert content["next_offset"] == sum(map(len, pages))
            result = await client.call_tool("get_reply", {"reply_id": reply_id, "offset": content["next_offset"]})
    assert len(pages) > 3
    assert "".join(pages) == original  # every character, in order


def _by_model(slow: str, seconds: float) -> Any:
    def answer(body: bytes) -> Reply:
        model = json.loads(body)["model"]
        if model == slow:
            return Reply.sse(sse.text_reply([f"{model} ", "thought ", "long."]), delay=seconds)
        return Reply.sse(sse.text_reply([f"{model} ", "answered fast."]))

    return answer


async def test_several_models_in_one_call_take_as_long_as_the_slowest(relay: FakeRelay) -> None:
    relay.route(MESSAGES, _by_model("claude-opus-4-8", 10))
    models = ["claude-opus-4-8", "claude-sonnet-5", "gpt-5.5"]
    async with Client(make_server(relay)) as client:
        started = time.monotonic()
        result = await client.call_tool("send_message", {"models": models, "messages": HELLO["messages"]})
        elapsed = time.monotonic() - started
    assert 9 <= elapsed < 14, elapsed  # concurrently: one slow model does not add to the others
    assert not result.is_error and structured(result)["status"] == "complete"
    replies = structured(result)["replies"]
    assert [r["status"] for r in replies] == ["complete"] * 3
    assert [r["content"][0]["text"] for r in replies] == [
        "claude-opus-4-8 thought long.", "claude-sonnet-5 answered fast.", "Hello, world.",
    ]  # fmt: skip
    assert [r["route"] for r in replies] == ["messages", "messages", "chat-completions"]
    assert len({r["reply_id"] for r in replies}) == 3 and len({r["conversation_id"] for r in replies}) == 3
    assert all(r["credits"]["estimate"] is not None for r in replies)
    words = texts(result)
    for model in models:  # each reply under its model's name
        assert f"## {model}" in words
    assert words[words.index("## claude-opus-4-8") + 1] == "claude-opus-4-8 thought long."


async def test_several_models_with_wait_seconds_return_the_slow_one_running(relay: FakeRelay) -> None:
    relay.route(MESSAGES, _by_model("claude-sonnet-5", 5))
    async with Client(make_server(relay)) as client:
        result = await client.call_tool(
            "send_message", {"models": ["claude-sonnet-5", "claude-opus-4-8"], "messages": HELLO["messages"],
                             "wait_seconds": 2})  # fmt: skip
        slow, fast = structured(result)["replies"]
        assert structured(result)["status"] == "running"
        assert slow["status"] == "running" and list(slow)[:2] == ["status", "reply_id"]
        assert fast["status"] == "complete" and fast["content"][0]["text"] == "claude-opus-4-8 answered fast."
        rest = await client.call_tool("get_reply", {"reply_id": slow["reply_id"], "wait_seconds": 10})
    assert texts(rest)[0] == "claude-sonnet-5 thought long."


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"model": "gpt-5.5", "models": ["gpt-5.5", "claude-sonnet-5"]}, "`model` and `models` are both given"),
        ({"models": ["gpt-5.5"]}, "`models`"),
        ({"models": ["gpt-5.5", "gpt-5.5"]}, "more than once"),
        ({"models": [f"m{i}" for i in range(9)]}, "`models`"),
        ({}, "`model` is required"),
        ({"model": "gpt-5.5", "wait_seconds": -1}, "`wait_seconds`"),
    ],
)
async def test_model_choices_are_checked_before_anything_is_sent(
    relay: FakeRelay, arguments: dict[str, Any], said: str
) -> None:
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", {"messages": HELLO["messages"], **arguments})
    assert result.is_error and said in texts(result)[0] and "fix:" in texts(result)[0]
    assert "Nothing was sent" in texts(result)[0]
    assert relay.requests_to(MESSAGES) == [] and relay.requests_to(CHAT) == []


async def test_a_long_running_reply_is_rewritten_at_a_bounded_rate(
    relay: FakeRelay, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26.3: with a shared store a running reply's record is written again as text arrives,
    for other processes, but a record of N characters waits N / SAVE_RATE seconds for the next:
    rewriting a long reply costs at most SAVE_RATE characters a second. Rewritten every second,
    the 200,000 characters here were written at 1, 2, 3, 4 and 5 seconds (600,000 in all)."""
    from aitoearn_mcp.delegation import _delegation
    from aitoearn_mcp.store._sqlite import SQLiteStore

    monkeypatch.setattr(_delegation, "SAVE_RATE", 20_000)
    writes: list[tuple[float, int, str]] = []
    save_reply = SQLiteStore.save_reply

    async def counted(self: SQLiteStore, reply_id: str, owner: str, record: str, *, later: bool = False) -> None:
        writes.append((time.monotonic(), len(record), json.loads(record)["status"]))
        await save_reply(self, reply_id, owner, record, later=later)

    monkeypatch.setattr(SQLiteStore, "save_reply", counted)
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(["x" * 1999 + " " for _ in range(100)]), delay=0.05))
    async with Client(make_server(relay, conversations=f"sqlite://{tmp_path / 'store.sqlite3'}")) as client:
        reply_id = assert_running(await client.call_tool("send_message", {**HELLO, "wait_seconds": 0}))
        done = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
    assert structured(done)["status"] == "complete" and len(texts(done)[0]) > 0
    running = [(at, size) for at, size, status in writes if status == "running"]
    assert len(running) >= 3, writes  # handed out, then written again as the text grows
    assert running[-1][1] > running[1][1] > running[0][1]
    for (before, size), (after, _) in itertools.pairwise(running[1:]):
        assert after - before >= size / 20_000 - 0.1, (size, after - before)  # the watcher polls every 0.5 s


async def test_a_reply_that_ends_within_its_wait_is_written_once(
    relay: FakeRelay, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until its id is handed out no other process can ask for a reply, so a shared store gets
    no running record of it: a reply that streams for 2.5 s and ends within its wait is written
    once, at its end (it was written every second while text arrived, and asked the store for
    cancels every half second)."""
    from aitoearn_mcp.store._sqlite import SQLiteStore

    writes: list[str] = []
    asked: list[list[str]] = []
    save_reply, cancels_requested = SQLiteStore.save_reply, SQLiteStore.cancels_requested

    async def saved(self: SQLiteStore, reply_id: str, owner: str, record: str, *, later: bool = False) -> None:
        writes.append(json.loads(record)["status"])
        await save_reply(self, reply_id, owner, record, later=later)

    async def asked_for(self: SQLiteStore, reply_ids: list[str]) -> set[str]:
        asked.append(reply_ids)
        return await cancels_requested(self, reply_ids)

    monkeypatch.setattr(SQLiteStore, "save_reply", saved)
    monkeypatch.setattr(SQLiteStore, "cancels_requested", asked_for)
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(50)]), delay=0.05))
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"v{i} " for i in range(50)]), delay=0.05))
    async with Client(make_server(relay, conversations=f"sqlite://{tmp_path / 'store.sqlite3'}")) as client:
        within = await client.call_tool("send_message", {**HELLO, "wait_seconds": 30})
        assert structured(within)["status"] == "complete" and texts(within)[0].startswith("w0 w1")
        assert (writes, asked) == (["complete"], [])
        # Handed out while it runs: from then on it is written as it moves on, for other processes.
        reply_id = assert_running(await client.call_tool("send_message", {**HELLO, "wait_seconds": 0.5}))
        done = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
    assert structured(done)["status"] == "complete"
    assert writes[0] == "complete" and writes[-1] == "complete" and writes.count("running") >= 2, writes
    assert asked and all(ids == [reply_id] for ids in asked)


async def test_two_processes_on_one_redis_start_collect_and_cancel(relay: FakeRelay, redis_server: RedisServer) -> None:
    env = {"AITOEARN_CONVERSATIONS": redis_server.url}
    relay.enqueue(MESSAGES, thinking_reply(sse.text_reply(["答案", "在这里。"]), silence=4))
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(400)]), delay=0.05))
    one, other = HttpServer(relay, env=env), HttpServer(relay, env=env)
    alice = {"X-Api-Key": "sk-alice-0123456789"}
    try:
        async with http_client(one.url, alice) as on_one, http_client(other.url, alice) as on_other:
            reply_id = assert_running(await on_one.call_tool("send_message", {**HELLO, "wait_seconds": 1}))
            collected = await on_other.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 15})
            second = assert_running(await on_one.call_tool("send_message", {**HELLO, "wait_seconds": 1}))
            await anyio.sleep(1.5)
            peek = await on_other.call_tool("get_reply", {"reply_id": second, "wait_seconds": 0})
            asked = time.time()
            cancelled = await on_other.call_tool("get_reply", {"reply_id": second, "cancel": True})
            with anyio.fail_after(5):
                while not relay.hangups_wall:
                    await anyio.sleep(0.02)
            stays = await on_one.call_tool("get_reply", {"reply_id": second, "wait_seconds": 1})
        async with http_client(other.url, {"X-Api-Key": "sk-mallory-0123456789"}) as mallory:
            stranger = await mallory.call_tool("get_reply", {"reply_id": reply_id})
            stranger_cancel = await mallory.call_tool("get_reply", {"reply_id": reply_id, "cancel": True})
    finally:
        one.stop()
        other.stop()
    assert texts(collected)[0] == "答案在这里。" and structured(collected)["status"] == "complete"
    # the running record is written as text arrives: another process sees how far it got
    assert assert_running(peek) == second and structured(peek)["chars_received"] > 0
    assert structured(peek)["latest"].startswith("w") or " w" in structured(peek)["latest"]
    assert relay.hangups_wall[0] - asked < 2.0  # polled every 0.5 s by the process running it
    assert structured(cancelled)["status"] == "cancelled" and structured(stays)["status"] == "cancelled"
    assert stranger.is_error and "unknown" in texts(stranger)[0]  # another key's id reads as unknown
    assert stranger_cancel.is_error and "unknown" in texts(stranger_cancel)[0]
    assert len(relay.requests_to(MESSAGES)) == 2


async def test_a_draining_server_lets_a_running_delegation_finish(relay: FakeRelay, redis_server: RedisServer) -> None:
    env = {"AITOEARN_CONVERSATIONS": redis_server.url}
    pieces = [f"片{i} " for i in range(30)]
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply(pieces), delay=0.1))  # ~3 s
    draining = HttpServer(relay, env=env)
    try:
        async with http_client(draining.url) as client:
            reply_id = assert_running(await client.call_tool("send_message", {**HELLO, "wait_seconds": 0.5}))
        draining.proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            while draining.proc.poll() is None:
                await anyio.sleep(0.05)
    finally:
        draining.stop()
    assert draining.proc.returncode == 0 and relay.hangups == []  # let finish, never cut
    assert "Draining: 1 call(s) in flight" in draining.log()
    collector = HttpServer(relay, env=env)
    try:
        async with http_client(collector.url) as client:
            collected = await client.call_tool("get_reply", {"reply_id": reply_id})
    finally:
        collector.stop()
    assert structured(collected)["status"] == "complete" and texts(collected)[0] == "".join(pieces)
    assert KEY not in draining.log()
