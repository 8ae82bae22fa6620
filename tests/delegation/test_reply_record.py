"""The reply record (pure: no sockets), its paging, the reply methods of every store, and the order
of a delegation's saves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from aitoearn_mcp.delegation._delegation import Delegations
from aitoearn_mcp.delegation._record import ReplyRecord
from aitoearn_mcp.store._memory import MemoryStore
from aitoearn_mcp.store._protocol import Store, new_reply_id, reply_summary
from aitoearn_mcp.store._redis import RedisStore
from aitoearn_mcp.views._budget import weight
from aitoearn_mcp.views._hosts import profile_for
from aitoearn_mcp.views._reply_view import page, running_summary

from ..conftest import RedisServer


@given(st.text(max_size=3000), st.integers(min_value=1, max_value=500))
def test_pages_cover_the_text_exactly_each_within_its_limit(text: str, limit: int) -> None:
    pieces: list[str] = []
    offset: int | None = 0
    while offset is not None and offset < len(text):
        shown, following = page(text, offset, limit)
        assert shown and (weight(shown) <= limit or len(shown) == 1)  # one character at least: paging moves on
        assert following is None or following == offset + len(shown)
        pieces.append(shown)
        offset = following
    assert "".join(pieces) == text


def test_a_record_round_trips_through_json_and_ignores_members_it_does_not_know() -> None:
    record = ReplyRecord("complete", "gpt-5.5", 1.0, 2.0, route="chat-completions", text="全文 ✓",
                         message={"content": [{"type": "text", "text": "全文 ✓"}]}, conversation_id="c_x",
                         notes=["[note]"])  # fmt: skip
    data = json.loads(record.to_json())
    assert [data[k] for k in ("status", "model", "route", "error", "conversation_id")] == [
        "complete", "gpt-5.5", "chat-completions", None, "c_x",
    ]  # fmt: skip  # the members every store agrees on
    assert "text" not in data  # the Message's text blocks hold it: stored once
    assert ReplyRecord.from_json(json.dumps({**data, "added_later": 1})) == record
    assert reply_summary("r_1", record.to_json(), 3.0).characters == len("全文 ✓")
    assert record.done and not ReplyRecord("running", "m", 0, 0).done


def test_a_text_the_message_does_not_hold_is_stored_as_it_is() -> None:
    running = ReplyRecord("running", "m", 1.0, 2.0, text="so far")
    differs = ReplyRecord("failed", "m", 1.0, 2.0, text="two blocks", message={"content": [
        {"type": "text", "text": "two"}, {"type": "thinking", "thinking": "x"}]})  # fmt: skip
    for record in (running, differs):
        assert json.loads(record.to_json())["text"] == record.text
        assert ReplyRecord.from_json(record.to_json()) == record
        assert reply_summary("r_1", record.to_json(), 3.0).characters == len(record.text)
    several = ReplyRecord("complete", "m", 1.0, 2.0, text="ab", message={"content": [
        {"type": "text", "text": "a"}, {"type": "tool_use", "input": {}}, {"type": "text", "text": "b"}]})  # fmt: skip
    assert "text" not in json.loads(several.to_json()) and ReplyRecord.from_json(several.to_json()) == several


def test_a_record_orjson_cannot_write_exactly_is_written_by_json() -> None:
    # Usage past 64 bits, a non-finite number and a lone surrogate, as a relay might send them.
    for odd in (2**70, float("inf"), "\ud800"):
        record = ReplyRecord("complete", "m", 1.0, 2.0, message={"content": [], "usage": {"odd": odd}})
        assert ReplyRecord.from_json(record.to_json()) == record


def test_a_running_summary_leads_with_status_and_reply_id_and_says_how_to_go_on() -> None:
    record = ReplyRecord("running", "deepseek-v4-pro", 100.0, 100.0, text="x" * 500 + " the  latest\nwords", chars=900)
    structured, text = running_summary("r_abc", record, now=142.5)
    assert list(structured)[:2] == ["status", "reply_id"] and structured["status"] == "running"
    assert structured["elapsed_seconds"] == 42.5 and structured["chars_received"] == 900
    assert structured["latest"].endswith("the latest words") and len(structured["latest"]) <= 200
    assert "get_reply" in structured["next"] and "'r_abc'" in structured["next"]
    assert "still working" in text and "r_abc" in text and "900 characters" in text and "42.5 s" in text
    silent, words = running_summary("r_abc", ReplyRecord("running", "m", 100.0, 100.0), now=160)
    assert silent["latest"] == "" and "thinking" in words


def test_hosts_known_to_wait_longer_get_longer_waits() -> None:
    assert (
        profile_for("claude-ai").wait_seconds == 50 == profile_for(None).wait_seconds == profile_for("x").wait_seconds
    )
    assert profile_for("claude-code").wait_seconds > 60 and profile_for("gemini-cli-mcp-client").wait_seconds > 60


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        opened: Store = MemoryStore(ttl=60, max_bytes=10**6)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        opened = RedisStore(server.url, ttl=60)
    yield opened
    await opened.aclose()


@pytest.mark.anyio
async def test_a_reply_belongs_to_its_owner_and_a_cancel_mark_survives_a_save(store: Store) -> None:
    ONE, NONE = new_reply_id(), new_reply_id()  # well-formed ids: a malformed one reads as unknown
    alice = await store.owner_tag(SecretStr("sk-alice"))
    mallory = await store.owner_tag(SecretStr("sk-mallory"))
    record = ReplyRecord("running", "m", 1.0, 1.0).to_json()
    await store.save_reply(ONE, alice, record)
    assert await store.load_reply(ONE, alice) == record
    assert await store.load_reply(ONE, mallory) is None  # another key's id reads as unknown
    assert await store.load_reply(NONE, alice) is None
    assert not await store.request_cancel(ONE, mallory) and not await store.request_cancel(NONE, alice)
    assert not await store.cancels_requested([ONE, NONE])
    assert await store.request_cancel(ONE, alice)
    await store.save_reply(ONE, alice, ReplyRecord("running", "m", 1.0, 2.0, text="more").to_json())
    assert await store.cancels_requested([NONE, ONE]) == {ONE}  # the running process still sees it after its next write
    assert ReplyRecord.from_json(await store.load_reply(ONE, alice) or "").text == "more"


class SlowRunningSaves(MemoryStore):
    """A store where writing a running record takes a while: the call can end meanwhile."""

    async def save_reply(self, reply_id: str, owner: str, record: str, *, later: bool = False) -> None:
        if json.loads(record)["status"] == "running":
            await anyio.sleep(0.3)
        await super().save_reply(reply_id, owner, record, later=later)


@pytest.mark.anyio
async def test_a_running_record_never_lands_after_the_final_one() -> None:
    """A "running" answer stores its record while the call ends and stores its final one: the
    store must end up with the final record, not the running one written later."""
    store = SlowRunningSaves(ttl=60, max_bytes=10**6)
    ended = anyio.Event()

    class Job:
        """A job that has received some text and ends when told (the Job protocol, nothing else)."""

        model = "m"
        news = 6

        def progress(self) -> tuple[int, str]:
            return 6, "so far"

        def running(self, started: float) -> ReplyRecord:
            return ReplyRecord("running", "m", started, started, route="messages", text="so far", chars=6)

        async def run(self, on_retry: Any) -> None:
            await ended.wait()

        def crashed(self, exc: Exception) -> None:
            raise AssertionError(f"the job crashed: {exc!r}")

        async def settle(self, cancelled: bool) -> ReplyRecord:
            return ReplyRecord("complete", "m", 0, 0, text="the whole reply")

    async with anyio.create_task_group() as tasks:
        delegations = Delegations(store, tasks)
        delegation = await delegations.start(Job(), "owner")
        async with anyio.create_task_group() as answer:
            answer.start_soon(delegations.store_running, delegation)
            await anyio.sleep(0.1)  # the running record is on its way to the store
            ended.set()  # and the call ends: its final record is written meanwhile
        await delegation.finished.wait()
        stored = ReplyRecord.from_json(await store.load_reply(delegation.id, "owner") or "")
        assert (stored.status, stored.text) == ("complete", "the whole reply")
        assert await delegations.store_running(delegation)  # already stored: nothing written again


def test_both_parts_of_a_cut_reply_end_together_at_a_line_end() -> None:
    from aitoearn_mcp.views._budget import fit_reply, json_weight

    text = "".join(f'line {i:05d} 长文本 with "quotes"\n' for i in range(5000))
    fitted = fit_reply({"content": [{"type": "text", "text": text}]}, text, 20_000, 500)
    assert fitted.cut and fitted.message["content"][0]["text"] == fitted.text  # one next_offset serves both
    assert text.startswith(fitted.text) and fitted.text.endswith("\n")
    assert json_weight(fitted.message) <= 20_000 and weight(fitted.text) <= 20_000 - 500
    page_text, next_offset = page(text, len(fitted.text), 20_000)
    assert page_text.endswith("\n") and next_offset == len(fitted.text) + len(page_text)


@pytest.mark.anyio
async def test_one_watcher_writes_and_cancels_each_running_reply_in_a_shared_store(tmp_path: Any) -> None:
    """In a store other processes read (SQLite), the record of each running reply whose id is
    handed out is written as its work moves on and a cancel asked through the store stops that
    reply only; the watcher stops when none runs and starts again with the next hand-out."""
    from aitoearn_mcp.store._sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "store.sqlite3", ttl=60, max_bytes=10**6)

    class Job:
        """Text arrives until told to end (the Job protocol, nothing else)."""

        model = "m"

        def __init__(self) -> None:
            self.news, self.ended, self.cut = 0, anyio.Event(), False

        def progress(self) -> tuple[int, str]:
            return self.news, "x" * self.news

        def running(self, started: float) -> ReplyRecord:
            return ReplyRecord("running", "m", started, started, text="x" * self.news, chars=self.news)

        async def run(self, on_retry: Any) -> None:
            try:
                while not self.ended.is_set():
                    self.news += 1
                    await anyio.sleep(0.05)
            except anyio.get_cancelled_exc_class():
                self.cut = True
                raise

        def crashed(self, exc: Exception) -> None:
            raise AssertionError(f"the job crashed: {exc!r}")

        async def settle(self, cancelled: bool) -> ReplyRecord:
            return ReplyRecord("cancelled" if cancelled else "complete", "m", 0, 0, text="x" * self.news)

    async def stored(reply_id: str) -> ReplyRecord | None:
        raw = await store.load_reply(reply_id, "owner")
        return None if raw is None else ReplyRecord.from_json(raw)

    try:
        async with anyio.create_task_group() as tasks:
            delegations = Delegations(store, tasks)
            kept, stopped = Job(), Job()
            one = await delegations.start(kept, "owner")
            other = await delegations.start(stopped, "owner")
            assert await delegations.store_running(one) and await delegations.store_running(other)
            assert await store.request_cancel(other.id, "owner")  # as another process asks
            with anyio.fail_after(5):
                await other.finished.wait()
                while (running := await stored(one.id)) is None or not running.chars:
                    await anyio.sleep(0.1)
            assert stopped.cut and other.record.status == "cancelled" and not one.finished.is_set()
            assert running.status == "running" and running.text.startswith("x")  # seen by other processes
            kept.ended.set()
            with anyio.fail_after(5):  # the final record follows the end (no answer waits for it)
                while (final := await stored(one.id)) is None or final.status == "running":
                    await anyio.sleep(0.05)
            assert final.status == "complete" and one.finished.is_set()
            with anyio.fail_after(3):
                while delegations._watching:  # none runs: the watcher stops
                    await anyio.sleep(0.1)
            again = Job()
            third = await delegations.start(again, "owner")
            assert await store.request_cancel(third.id, "owner") is False  # not stored yet: unknown
            assert await delegations.store_running(third) and await store.request_cancel(third.id, "owner")
            with anyio.fail_after(5):
                await third.finished.wait()
            assert again.cut and third.record.status == "cancelled"
    finally:
        await store.aclose()
