"""The stores: the SQLite file that is the default (durable, shared by a user's servers,
private, refused clearly when damaged or newer), the same contract in memory and Redis
(replies, cancel, listing, byte caps shared fairly between keys), and what the model sees:
list_conversations and the caller's own items in resources/list."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from pydantic import SecretStr

from aitoearn_mcp._errors import TooLargeToStoreError
from aitoearn_mcp._paths import STORE_FILE
from aitoearn_mcp.store._memory import MemoryStore
from aitoearn_mcp.store._protocol import Conversation, Store
from aitoearn_mcp.store._redis import RedisStore
from aitoearn_mcp.store._sqlite import SQLiteStore

from .. import sse
from ..conftest import KEY, HttpServer, RedisServer, free_port, http_client, make_server, start_redis
from ..fake_relay import FakeRelay, Reply

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
SCRIPT = str(Path(sys.executable).with_name("aitoearn-mcp"))
LONG = "".join(f"第{i}段：a long review with some ASCII.\n" for i in range(400))  # over a 3,000 budget


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-5", "messages": [user(text)], **extra}


def notes_of(result: CallToolResult) -> str:
    return [c.text for c in result.content if c.type == "text"][-1]


def reply_of(result: CallToolResult) -> str:
    assert result.structured_content is not None
    return result.structured_content["reply_id"]


def conversation_of(result: CallToolResult) -> str:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content["conversation_id"]


def stdio(relay: FakeRelay, home: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=SCRIPT, env={"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url,
                                                      "PATH": os.environ["PATH"], "HOME": str(home), **env})  # fmt: skip


def state(home: Path) -> Path:
    return home / ".local" / "state" / "aitoearn-mcp"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of this test's own, for in-process servers and spawned ones alike."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


# --- durable, shared ---------------------------------------------------------------------


async def test_a_conversation_and_a_stored_reply_outlive_the_server(relay: FakeRelay, home: Path) -> None:
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([LONG])))
    async with Client(stdio(relay, home, AITOEARN_MAX_RESULT_CHARS="3000")) as first:
        started = await first.call_tool("send_message", ask("review this"))
    cid = conversation_of(started)
    uri = started.structured_content["truncated"]["uri"]  # type: ignore[index]
    async with Client(stdio(relay, home)) as second:  # a new session of the host: a new process
        full = await second.read_resource(uri)
        continued = await second.call_tool("send_message", ask("and now?", conversation_id=cid))
    assert full.contents[0].text == LONG  # type: ignore[union-attr]
    assert conversation_of(continued) == cid and f"[Conversation {cid}, turn 2" in notes_of(continued)
    sent = relay.requests_to(MESSAGES)[1].json()["messages"]
    assert sent == [user("review this"), {"role": "assistant", "content": [{"type": "text", "text": LONG}]},
                    user("and now?")]  # fmt: skip


def stored_items(path: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """What the SQLite file holds, read without the server: id → (kind, record)."""
    with sqlite3.connect(path) as db:
        return {row[0]: (row[1], json.loads(row[2])) for row in db.execute("SELECT id, kind, data FROM items")}


async def test_a_server_that_exits_right_after_answering_has_written_its_record_and_turn(
    relay: FakeRelay, home: Path
) -> None:
    # The reply's record and the new conversation are written after the answer: the process
    # ends as soon as the host closes stdin, and both must be in the file all the same.
    async with Client(stdio(relay, home)) as client:
        answered = await client.call_tool("send_message", ask("Say hello."))
    items = stored_items(state(home) / STORE_FILE)
    kind, reply = items[reply_of(answered)]
    assert kind == "r" and reply["status"] == "complete" and reply["conversation_id"] == conversation_of(answered)
    kind, conversation = items[conversation_of(answered)]
    assert kind == "c" and conversation["turns"][0]["messages"] == [user("Say hello.")]


async def test_what_is_written_after_the_answer_is_read_by_the_very_next_call(relay: FakeRelay, home: Path) -> None:
    for _ in range(3):
        relay.enqueue(MESSAGES, Reply.sse(sse.text_reply(["Hello, world."])))
    async with Client(make_server(relay)) as client:
        first = await client.call_tool("send_message", ask("one"))
        listed = await client.call_tool("list_conversations", {})
        continued = await client.call_tool("send_message", ask("two", conversation_id=conversation_of(first)))
        again = await client.call_tool("get_reply", {"reply_id": reply_of(first)})
        resources = await client.list_resources()
    cid = conversation_of(first)
    assert cid in listed.content[0].text  # type: ignore[union-attr]
    assert conversation_of(continued) == cid and f"[Conversation {cid}, turn 2" in notes_of(continued)
    assert relay.requests_to(MESSAGES)[1].json()["messages"][0] == user("one")
    assert not again.is_error and again.content[0].text == "Hello, world."  # type: ignore[union-attr]
    assert any(reply_of(first) in str(r.uri) for r in resources.resources)


async def test_a_new_sqlite_file_another_process_is_writing_is_waited_for(tmp_path: Path) -> None:
    """Two processes starting on a new file at once: while one is in its first write transaction
    (the file not yet in WAL mode), the other's switch to WAL said "locked" at once; it waits."""
    path = tmp_path / "s.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # as the other process's store does first

    async def let_go() -> None:
        await anyio.sleep(0.3)
        other.execute("COMMIT")
        other.close()

    store = SQLiteStore(path, ttl=60, max_bytes=10**6)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(let_go)
            assert await store.add_credits("owner", "2026-07-01", 5) == 5
    finally:
        await store.aclose()


async def test_the_sqlite_store_writes_in_order_and_before_it_closes_or_the_process_ends(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, ttl=60, max_bytes=10**6)
    owner = await store.owner_tag(SecretStr(KEY))
    await store.save_new(conversation("c_queued0001", owner, "first"))  # queued: no wait
    assert await store.load("c_queued0001", owner) is not None  # a read waits for it
    turn = conversation("c_queued0001", owner, "first", turns=2)
    await store.save_new(conversation("c_queued0002", owner, "second"))
    assert await store.save(turn, expected_turns=1)  # a compare-and-set sees the queued write
    await store.save_new(conversation("c_queued0003", owner, "third"))
    await store.aclose()
    assert {"c_queued0001", "c_queued0002", "c_queued0003"} <= set(stored_items(path))
    script = (
        "import anyio, sys\nfrom pathlib import Path\nfrom aitoearn_mcp.store._sqlite import SQLiteStore\n"
        "from aitoearn_mcp.store._protocol import Conversation\n"
        "async def main():\n    store = SQLiteStore(Path(sys.argv[1]), ttl=60, max_bytes=10**6)\n"
        "    await store.save_new(Conversation('c_atexit0001', sys.argv[2], None, []))\n"
        "anyio.run(main)\n"  # exits without closing the store
    )  # fmt: skip
    subprocess.run([sys.executable, "-c", script, str(path), owner], check=True, timeout=60)
    assert "c_atexit0001" in stored_items(path)


def commits_in_wal(path: Path) -> int:
    """Transactions in the SQLite file's write-ahead log: its frames that end a commit (a frame
    header's second word is the database's size after a commit, else 0), of the log's salt."""
    wal = path.with_name(path.name + "-wal").read_bytes()
    page, salt = int.from_bytes(wal[8:12], "big"), wal[16:24]
    frames = range(32, len(wal) - 24, 24 + page)
    return sum(1 for at in frames if wal[at + 8 : at + 16] == salt and int.from_bytes(wal[at + 4 : at + 8], "big"))


async def queued_behind_a_lock(path: Path, store: SQLiteStore, owner: str, *writes: Conversation) -> None:
    """One write held up by another process's lock while ``writes`` and a reply's record queue
    behind it, the way a call's turn and record are queued one after the other."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process writing: the writer waits with what it took
    async with anyio.create_task_group() as tasks:
        try:
            await store.save_new(conversation("c_held000001", owner, "held up"))
            await anyio.sleep(0.05)  # the writer takes it and waits for the lock (or takes it with the next ones)
            for write in writes:
                await store.save_new(write)
            tasks.start_soon(functools.partial(store.save_reply, "r_group00001", owner, record("reply"), later=True))
            await anyio.sleep(0.01)  # the task queues its write, then waits for its commit
        finally:
            blocker.execute("ROLLBACK")
    blocker.close()


async def test_writes_queued_together_are_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, ttl=60, max_bytes=10**6)
    owner = await store.owner_tag(SecretStr(KEY))
    await store.save_new(conversation("c_group00001", owner, "first"))
    await store.recent_conversations(owner, 5)  # a read of everything: waits for every queued write
    keep_log = sqlite3.connect(path)  # open while the log is read: the file's last connection to close empties it
    before = commits_in_wal(path)
    await queued_behind_a_lock(path, store, owner, conversation("c_group00002", owner, "second"))
    # At most two commits: the held-up one, then the turn and the record queued behind it together.
    assert commits_in_wal(path) - before <= 2
    keep_log.close()
    assert {"c_held000001", "c_group00002", "r_group00001"} <= set(stored_items(path))
    await store.aclose()


async def test_a_write_that_fails_takes_no_other_with_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, ttl=60, max_bytes=10**6)
    owner = await store.owner_tag(SecretStr(KEY))
    await store.save_new(conversation("c_group00001", owner, "first"))
    taken = conversation("c_group00001", owner, "taken")  # a new conversation under an id already stored
    await queued_behind_a_lock(path, store, owner, conversation("c_group00002", owner, "second"), taken)
    items = stored_items(path)
    assert {"c_held000001", "c_group00002", "r_group00001"} <= set(items)
    assert items["c_group00001"][1]["turns"][0]["messages"][0]["content"] == "first"
    assert "the conversation id c_group00001 is taken" in caplog.text
    await store.aclose()


async def test_writes_over_the_cap_together_are_written_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, ttl=60, max_bytes=3000)
    owner = await store.owner_tag(SecretStr(KEY))
    # Each fits alone, not both: queued together, the later one pushes the earlier one out, as one at a time.
    await store.save_new(conversation("c_crowded001", owner, "a" * 1800))
    await store.save_new(conversation("c_crowded002", owner, "b" * 1800))
    await store.aclose()
    assert set(stored_items(path)) == {"c_crowded002"}


async def test_a_read_of_one_item_does_not_wait_for_another_items_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, ttl=60, max_bytes=10**6)
    owner = await store.owner_tag(SecretStr(KEY))
    await store.save_new(conversation("c_readfirst1", owner, "first"))
    await store.recent_conversations(owner, 5)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer cannot write while another process holds the lock
    try:
        await store.save_new(conversation("c_readlater1", owner, "queued"))
        with anyio.fail_after(5):  # a guard against a hang: the write stays queued until the lock goes
            found = await store.load("c_readfirst1", owner)
        assert found is not None and found.turns[0]["messages"][0]["content"] == "first"
        assert "c_readlater1" not in stored_items(path)  # it answered while the other write waited
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await store.load("c_readlater1", owner) is not None  # a read of that item waits for its write
    await store.aclose()


async def test_two_servers_at_once_continue_each_others_conversations_without_losing_a_turn(
    relay: FakeRelay, home: Path
) -> None:
    async with Client(stdio(relay, home)) as a, Client(stdio(relay, home)) as b:
        cid = conversation_of(await a.call_tool("send_message", ask("echo:start")))
        assert conversation_of(await b.call_tool("send_message", ask("echo:from b", conversation_id=cid))) == cid
        results: list[CallToolResult] = []

        async def call(client: Client, text: str) -> None:
            results.append(await client.call_tool("send_message", ask(text, conversation_id=cid)))

        for round_ in range(6):  # both continue the same id at once
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call, a, f"echo:a{round_}")
                tasks.start_soon(call, b, f"echo:b{round_}")
        listed = await a.call_tool("list_conversations", {"conversation_id": cid})
    on_main = sorted(int(notes_of(r).split("turn ")[1].split(":")[0]) for r in results if conversation_of(r) == cid)
    branches = [r for r in results if conversation_of(r) != cid]
    assert all(f"a branch of {cid}" in notes_of(r) for r in branches)
    assert on_main == list(range(3, 3 + len(on_main)))  # every turn on the id is one the store kept, none twice
    assert len(on_main) + len(branches) == 12  # nothing lost: each call either continued the id or branched
    assert listed.structured_content is not None and listed.structured_content["turns"] == 2 + len(on_main)


# --- the file: where, which modes, what is in it -----------------------------------------


async def test_files_are_private_and_hold_no_key(relay: FakeRelay, home: Path) -> None:
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([LONG])))
    async with Client(stdio(relay, home, AITOEARN_MAX_RESULT_CHARS="3000")) as client:
        first = await client.call_tool("send_message", ask("secret plans"))
        await client.call_tool("send_message", ask("more", conversation_id=conversation_of(first)))
        folder = state(home)
        names = sorted(p.name for p in folder.iterdir())
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
        reply_file = Path(first.structured_content["truncated"]["path"])  # type: ignore[index]
        assert stat.S_IMODE(reply_file.parent.stat().st_mode) == 0o700 and reply_file.parent.is_relative_to(home)
        assert stat.S_IMODE(reply_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert names == [STORE_FILE, f"{STORE_FILE}-shm", f"{STORE_FILE}-wal"]
    assert set(modes.values()) == {0o600}, modes
    everything = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert b"secret plans" in everything  # the store is really there ...
    assert KEY.encode() not in everything and KEY.encode("utf-16-le") not in everything  # ... and the key is not


async def test_memory_writes_nothing(relay: FakeRelay, home: Path) -> None:
    async with Client(make_server(relay, conversations="memory")) as client:
        cid = conversation_of(await client.call_tool("send_message", ask("a")))
        again = await client.call_tool("send_message", ask("b", conversation_id=cid))
        listed = await client.call_tool("list_conversations", {})
    assert conversation_of(again) == cid
    assert [c["id"] for c in listed.structured_content["conversations"]] == [cid]  # type: ignore[index]
    assert list(home.rglob("*")) == []


async def test_a_file_the_user_names_is_used(relay: FakeRelay, home: Path) -> None:
    target = home / "elsewhere" / "mine.db"
    async with Client(make_server(relay, conversations=f"sqlite://{target}")) as client:
        result = await client.call_tool("send_message", ask("a"))
        cid = conversation_of(result)
    with sqlite3.connect(target) as db:  # the conversation and the call's reply record
        assert sorted(db.execute("SELECT id FROM items").fetchall()) == sorted([(cid,), (reply_of(result),)])
    assert not state(home).exists()


async def test_a_damaged_file_is_a_clear_error_and_the_rest_still_works(relay: FakeRelay, home: Path) -> None:
    state(home).mkdir(parents=True)
    (state(home) / STORE_FILE).write_bytes(b"this is not a database" * 100)
    async with Client(make_server(relay)) as client:
        models = await client.call_tool("list_models", {})
        continued = await client.call_tool("send_message", ask("x", conversation_id="c_abcdefgh12"))
        fresh = await client.call_tool("send_message", ask("x"))
        listed = await client.call_tool("list_conversations", {})
    path = str(state(home) / STORE_FILE)
    assert not models.is_error
    for text in (continued.content[0].text, notes_of(fresh), listed.content[0].text):  # type: ignore[union-attr]
        assert path in text and "move it away" in text and "AITOEARN_CONVERSATIONS=memory" in text
        assert "Traceback" not in text
    assert continued.is_error and "Nothing was sent" in continued.content[0].text  # type: ignore[union-attr]
    assert not fresh.is_error and fresh.content[0].text == "Hello, world."  # type: ignore[union-attr]
    assert listed.is_error and len(relay.requests_to(MESSAGES)) == 1


async def test_an_unwritable_folder_is_a_clear_error(relay: FakeRelay, home: Path) -> None:
    if os.getuid() == 0:
        blocker = home / "blocked"
        blocker.write_text("a file where the folder should be")
        target = blocker / "store.db"
    else:
        (home / "ro").mkdir(mode=0o500)
        target = home / "ro" / "store.db"
    async with Client(make_server(relay, conversations=str(target))) as client:
        fresh = await client.call_tool("send_message", ask("x"))
    assert not fresh.is_error and str(target) in notes_of(fresh) and "could not be stored" in notes_of(fresh)


async def test_a_newer_schema_is_refused_clearly(home: Path) -> None:
    path = home / "store.db"
    store = SQLiteStore(path, ttl=60, max_bytes=10**6)
    await store.owner_tag(SecretStr(KEY))
    await store.aclose()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    newer = SQLiteStore(path, ttl=60, max_bytes=10**6)
    with pytest.raises(Exception) as refused:
        await newer.owner_tag(SecretStr(KEY))
    message = str(refused.value)
    assert "schema version '99'" in message and "upgrade aitoearn-mcp" in message and str(path) in message
    with sqlite3.connect(home / "other.db") as db:
        db.execute("CREATE TABLE notes (x)")
    with pytest.raises(Exception, match="another program"):
        await SQLiteStore(home / "other.db", ttl=60, max_bytes=10**6).owner_tag(SecretStr(KEY))


# --- one contract, three stores ----------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        store: Store = MemoryStore(ttl=0.6, max_bytes=20_000)
    elif request.param == "sqlite":
        store = SQLiteStore(tmp_path / "s.db", ttl=0.6, max_bytes=20_000)
    else:
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisStore(redis_server.url, ttl=0.6, max_bytes=20_000)
    yield store
    await store.aclose()


def conversation(cid: str, owner: str, text: str, turns: int = 1) -> Conversation:
    turn = {"messages": [user(text)], "reply": [{"type": "text", "text": "ok"}], "channel": None, "model": "gpt-5.5"}
    return Conversation(cid, owner, None, [turn] * turns)


def record(text: str, status: str = "complete") -> str:
    return json.dumps({"status": status, "model": "gpt-5.5", "route": "messages", "text": text, "message": None,
                       "error": None, "conversation_id": None, "started": 1.0, "updated": 2.0}, ensure_ascii=False)  # fmt: skip


async def test_replies_cancel_and_listing_in_every_store(any_store: Store) -> None:
    store = any_store
    unique = str(time.monotonic_ns())[-10:]  # the Redis is shared by the session: keys and ids of this test alone
    alice = await store.owner_tag(SecretStr(f"sk-alice-{unique}"))
    bob = await store.owner_tag(SecretStr(f"sk-bob-{unique}"))
    ids = [f"c_{unique}{n}aaaa" for n in range(3)]
    for n, cid in enumerate(ids):
        assert await store.save(conversation(cid, alice, f"  question   number {n} " + "word " * 40), expected_turns=0)
    assert await store.save(conversation(f"c_{unique}bobbbb", bob, "bob's"), expected_turns=0)
    await store.load(ids[0], alice)  # a use: now the most recent
    recent = await store.recent_conversations(alice, 2)
    assert [c.id for c in recent] == [ids[0], ids[2]]
    assert recent[0].turns == 1 and recent[0].models == ("gpt-5.5",)
    assert recent[0].first_words.startswith("question number 0 word") and len(recent[0].first_words) <= 80
    assert [c.id for c in await store.recent_conversations(bob, 10)] == [f"c_{unique}bobbbb"]

    rid = f"r_{unique}reply"
    await store.save_reply(rid, alice, record("部分", "running"))
    assert json.loads(await store.load_reply(rid, alice) or "")["text"] == "部分"
    assert await store.load_reply(rid, bob) is None and not await store.request_cancel(rid, bob)
    assert not await store.cancels_requested([rid])
    assert await store.request_cancel(rid, alice) and await store.cancels_requested([rid]) == {rid}
    await store.save_reply(rid, alice, record("部分完了", "cancelled"))  # the running process writes on
    assert await store.cancels_requested([rid]) == {rid}  # ... and the request is kept
    many = [f"r_{unique}m{n:04d}" for n in range(1200)]  # one call for every running reply, however many
    carol = await store.owner_tag(SecretStr(f"sk-carol-{unique}"))
    for other in many[::400]:
        await store.save_reply(other, carol, record("…", "running"))
    assert await store.request_cancel(many[800], carol)
    assert await store.cancels_requested([*many, rid]) == {many[800], rid}
    await store.save_reply(rid, bob, record("hijack"))  # another owner cannot replace it
    assert json.loads(await store.load_reply(rid, alice) or "")["text"] == "部分完了"
    [summary] = await store.recent_replies(alice, 5)
    assert (summary.id, summary.status, summary.model, summary.characters) == (rid, "cancelled", "gpt-5.5", 4)
    assert await store.recent_replies(bob, 5) == []
    assert await store.load_reply(ids[0], alice) is None  # a conversation id is not a reply
    assert await store.load(rid, alice) is None

    with pytest.raises(TooLargeToStoreError, match="over the store's cap"):  # counted in bytes: 4 per emoji
        await store.save(conversation(f"c_{unique}emoji", alice, "😀" * 5_001), expected_turns=0)
    with pytest.raises(TooLargeToStoreError):
        await store.save_reply(f"r_{unique}emoji", alice, record("😀" * 5_001))
    await anyio.sleep(0.7)
    assert await store.load(ids[0], alice) is None and await store.recent_conversations(alice, 5) == []
    assert await store.load_reply(rid, alice) is None and not await store.cancels_requested([rid])


async def test_a_call_that_failed_before_any_text_is_stored_but_not_listed(any_store: Store) -> None:
    store = any_store
    unique = str(time.monotonic_ns())[-10:]
    owner = await store.owner_tag(SecretStr(f"sk-listing-{unique}"))
    empty, partial, ran = f"r_{unique}empty", f"r_{unique}partl", f"r_{unique}ranxx"
    await store.save_reply(partial, owner, record("half a reply", "failed"))
    await store.save_reply(empty, owner, record("", "failed"))
    await store.save_reply(ran, owner, record("", "running"))  # handed out while running: listed ...
    assert [r.id for r in await store.recent_replies(owner, 5)] == [ran, partial]
    await store.save_reply(ran, owner, record("", "failed"))  # ... until it failed with no text
    assert json.loads(await store.load_reply(ran, owner) or "")["status"] == "failed"  # its id still answers
    assert json.loads(await store.load_reply(empty, owner) or "")["status"] == "failed"  # a use: not listed again
    assert [(r.id, r.status) for r in await store.recent_replies(owner, 1)] == [(partial, "failed")]


async def test_list_conversations_leaves_out_calls_that_failed_before_any_text(relay: FakeRelay, home: Path) -> None:
    refused = Reply.json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "nope"}})
    relay.enqueue(MESSAGES, *[refused] * 3)
    async with Client(make_server(relay)) as client:
        for _ in range(3):
            assert (await client.call_tool("send_message", ask("fails"))).is_error
        ok = await client.call_tool("send_message", ask("works"))
        listed = await client.call_tool("list_conversations", {})
        resources = await client.list_resources()
    assert [r["id"] for r in listed.structured_content["replies"]] == [reply_of(ok)]  # type: ignore[index]
    assert listed.content[0].text.count("aitoearn://replies/") == 1  # type: ignore[union-attr]
    assert [str(r.uri) for r in resources.resources if "/replies/" in str(r.uri)] == [
        f"aitoearn://replies/{reply_of(ok)}"
    ]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_one_key_cannot_push_out_another_keys_items(kind: str, tmp_path: Path) -> None:
    cap = 1_000_000
    store: Store = MemoryStore(3600, cap) if kind == "memory" else SQLiteStore(tmp_path / "s.db", 3600, cap)
    alice, mallory = await store.owner_tag(SecretStr(KEY)), await store.owner_tag(SecretStr("sk-mallory-0123456"))
    assert await store.save(conversation("c_alice0001", alice, "mine"), expected_turns=0)
    await store.save_reply("r_alice0001", alice, record("my long reply"))
    for n in range(25):  # 25 items of 120 KB each: three times the cap
        assert await store.save(conversation(f"c_mallory{n:04}", mallory, "x" * 120_000), expected_turns=0)
    assert await store.load("c_alice0001", alice) is not None
    assert await store.load_reply("r_alice0001", alice) is not None
    kept = await store.recent_conversations(mallory, 100)
    assert 5 <= len(kept) < 9 and kept[0].id == "c_mallory0024"  # the newest of hers stay, within the cap
    # Emoji count 4 bytes each: two 200,000-character conversations do not fit in 1 MB.
    assert await store.save(conversation("c_emoji0001", mallory, "😀" * 200_000), expected_turns=0)
    assert await store.save(conversation("c_emoji0002", mallory, "😀" * 200_000), expected_turns=0)
    assert await store.load("c_emoji0001", mallory) is None and await store.load("c_emoji0002", mallory) is not None
    await store.aclose()


async def test_one_key_cannot_push_out_another_over_http_in_memory(relay: FakeRelay) -> None:
    three_mb = "x" * 3_000_000
    relay.route(MESSAGES, lambda body: Reply.sse(sse.text_reply([three_mb if b"flood" in body else "mine"])))
    server = HttpServer(relay, env={"AITOEARN_CONVERSATIONS": "memory"})
    try:
        async with http_client(server.url, {"X-Api-Key": KEY}) as alice:
            cid = conversation_of(await alice.call_tool("send_message", ask("keep this")))
        async with http_client(server.url, {"X-Api-Key": "sk-mallory-0123456789"}) as mallory:
            for _ in range(25):
                flood = await mallory.call_tool("send_message", ask("flood"))
                assert not flood.is_error
        async with http_client(server.url, {"X-Api-Key": KEY}) as alice:
            again = await alice.call_tool("send_message", ask("still there?", conversation_id=cid))
    finally:
        server.stop()
    assert conversation_of(again) == cid


async def test_an_item_over_the_cap_is_not_kept_and_the_result_says_so(relay: FakeRelay, home: Path) -> None:
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply(["😀" * 3000])))
    async with Client(make_server(relay, conversation_max_bytes=10_000)) as client:
        result = await client.call_tool("send_message", ask("many emoji"))
    assert not result.is_error and result.content[0].text == "😀" * 3000  # type: ignore[union-attr]
    assert "could not be stored" in notes_of(result) and "over the store's cap of 10,000 bytes" in notes_of(result)
    assert "conversation_id" not in (result.structured_content or {})


# --- Redis restarted ----------------------------------------------------------------------


async def test_redis_restarted_empty_keeps_replicas_in_agreement(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    proc = start_redis(port, str(tmp_path))
    a, b = RedisStore(url, ttl=60), RedisStore(url, ttl=60)
    try:
        owner = await a.owner_tag(SecretStr(KEY))
        assert await b.owner_tag(SecretStr(KEY)) == owner
        proc.terminate()
        proc.wait(10)
        proc = start_redis(port, str(tmp_path))  # empty: no secret, no conversations
        # Both were idle: their pooled connections are stale. The first call still works.
        assert await b.save(conversation("c_afterrestart", await b.owner_tag(SecretStr(KEY)), "x"), expected_turns=0)
        assert await a.owner_tag(SecretStr(KEY)) == owner  # the same secret was put back
        assert await a.load("c_afterrestart", owner) is not None
        late = RedisStore(url, ttl=60)  # a replica started after the restart agrees too
        assert await late.owner_tag(SecretStr(KEY)) == owner
        await late.aclose()
    finally:
        await a.aclose()
        await b.aclose()
        proc.terminate()
        proc.wait(10)


# --- what the model sees -----------------------------------------------------------------


async def test_listing_shows_only_the_callers_items_over_http(relay: FakeRelay, home: Path) -> None:
    relay.route(MESSAGES, lambda body: Reply.sse(sse.text_reply([LONG if b"long" in body else "short"])))
    server = HttpServer(relay, env={"HOME": str(home), "AITOEARN_MAX_RESULT_CHARS": "3000"})
    try:
        async with http_client(server.url, {"X-Api-Key": KEY}) as alice:
            opened = await alice.call_tool("send_message", ask("first question from alice"))
            first = conversation_of(opened)
            second = await alice.call_tool("send_message", ask("second turn", conversation_id=first))
            long = await alice.call_tool("send_message", ask("a long one please"))
            reply_uri = long.structured_content["truncated"]["uri"]  # type: ignore[index]
            listed = await alice.call_tool("list_conversations", {})
            resources = await alice.list_resources()
            whole = await alice.read_resource(f"aitoearn://conversations/{first}")
            shown = await alice.call_tool("list_conversations", {"conversation_id": first})
        async with http_client(server.url, {"X-Api-Key": "sk-bob-0123456789"}) as bob:
            bobs = conversation_of(await bob.call_tool("send_message", ask("bob's question")))
            bob_listed = await bob.call_tool("list_conversations", {})
            bob_resources = await bob.list_resources()
            with pytest.raises(MCPError, match="unknown or has expired"):
                await bob.read_resource(f"aitoearn://conversations/{first}")
    finally:
        server.stop()
    structured = listed.structured_content or {}
    ids = [c["id"] for c in structured["conversations"]]
    assert ids == [conversation_of(long), first]  # newest first, alice's only
    assert structured["conversations"][1]["turns"] == 2
    assert structured["conversations"][1]["first_words"] == "first question from alice"
    # every call's reply is kept (get_reply reads it), newest first
    alices = [f"aitoearn://replies/{reply_of(r)}" for r in (long, second, opened)]
    assert alices[0] == reply_uri and [r["uri"] for r in structured["replies"]] == alices
    text = listed.content[0].text  # type: ignore[union-attr]
    assert all(i in text for i in ids) and reply_uri in text and "first question from alice" in text
    uris = [str(r.uri) for r in resources.resources]
    assert reply_uri in uris and f"aitoearn://conversations/{first}" in uris and bobs not in " ".join(uris)
    turns = json.loads(whole.contents[0].text)["turns"]  # type: ignore[union-attr]
    assert [t["messages"][0]["content"] for t in turns] == ["first question from alice", "second turn"]
    assert "second turn" in shown.content[0].text and "second turn" in shown.structured_content["transcript"]  # type: ignore[union-attr,index]
    assert [c["id"] for c in (bob_listed.structured_content or {})["conversations"]] == [bobs]
    bob_uris = " ".join(str(r.uri) for r in bob_resources.resources)
    assert first not in bob_uris and reply_uri not in bob_uris


async def test_a_long_conversation_is_shown_in_pages(relay: FakeRelay, home: Path) -> None:
    async with Client(make_server(relay, max_result_chars=4000)) as client:
        cid = conversation_of(await client.call_tool("send_message", ask("turn one " + "words " * 100)))
        for n in range(2, 9):
            await client.call_tool("send_message", ask(f"turn {n} " + "words " * 100, conversation_id=cid))
        page = await client.call_tool("list_conversations", {"conversation_id": cid})
        structured = page.structured_content or {}
        rest = await client.call_tool("list_conversations", {"conversation_id": cid,
                                                            "from_turn": structured["next_from_turn"]})  # fmt: skip
    assert 1 < structured["to_turn"] < 8 and len(page.content[0].text) < 4000  # type: ignore[union-attr]
    assert f"from_turn {structured['next_from_turn']}" in page.content[0].text  # type: ignore[union-attr]
    assert f"── Turn {structured['next_from_turn']}" in rest.content[0].text  # type: ignore[union-attr]


async def test_a_conversation_id_as_a_reply_and_a_huge_branch_number_are_unknown(relay: FakeRelay, home: Path) -> None:
    async with Client(make_server(relay)) as client:
        cid = conversation_of(await client.call_tool("send_message", ask("a")))
        with pytest.raises(MCPError, match="unknown or has expired"):
            await client.read_resource(f"aitoearn://replies/{cid}")
        with pytest.raises(MCPError, match="unknown or has expired"):
            await client.read_resource(f"aitoearn://replies/{cid}/message")
        branch = await client.call_tool("send_message", ask("b", conversation_id=f"{cid}#{'9' * 5000}"))
    assert branch.is_error and "is unknown or has expired" in branch.content[0].text  # type: ignore[union-attr]


# --- reply files --------------------------------------------------------------------------


def test_reply_files_go_in_a_private_folder_and_expire(home: Path) -> None:
    from aitoearn_mcp.server._reply_files import reply_folder, save_reply_file

    folder = reply_folder()
    assert folder.is_relative_to(home)  # the user's cache folder, not a shared /tmp one
    folder.mkdir(parents=True, mode=0o777)
    folder.chmod(0o777)  # ours but open to all: narrowed before anything is written
    old = Path(save_reply_file("r_old0000001", "old", ttl=60))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(old.stat().st_mode) == 0o600
    os.utime(old, (time.time() - 120, time.time() - 120))
    fresh = Path(save_reply_file("r_new0000001", "新", ttl=60))
    assert not old.exists() and fresh.read_text(encoding="utf-8") == "新"  # the expired one went
    assert save_reply_file("r_new0000001", "新", ttl=60) == str(fresh)  # a reply is written once
    assert save_reply_file("r_old0000001", "again", ttl=60) == str(old)  # gone, so forgotten: written anew
    assert old.read_text(encoding="utf-8") == "again"


async def test_expired_reply_files_go_on_a_timer_too(relay: FakeRelay, home: Path) -> None:
    from aitoearn_mcp.server._reply_files import reply_folder

    left = reply_folder() / "r_left0000001.txt"  # by a server that did not exit cleanly
    left.parent.mkdir(parents=True, mode=0o700)
    left.write_text("old")
    os.utime(left, (time.time() - 120, time.time() - 120))
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([LONG])))
    async with Client(make_server(relay, max_result_chars=3000, conversation_ttl=1)) as client:
        result = await client.call_tool("send_message", ask("long"))
        path = Path(result.structured_content["truncated"]["path"])  # type: ignore[index]
        assert path.exists() and not left.exists()  # the write looked too
        left.write_text("old")
        os.utime(left, (time.time() - 120, time.time() - 120))
        with anyio.fail_after(20):  # no other reply is written: only the timer removes them
            while path.exists() or left.exists():
                await anyio.sleep(0.1)
        assert not (await client.call_tool("list_models", {})).is_error


async def test_every_folder_the_server_makes_is_private_and_existing_parents_are_left_alone(
    relay: FakeRelay, home: Path
) -> None:
    (home / ".local").mkdir(mode=0o755)  # the user's own: not ours to narrow
    (home / ".local").chmod(0o755)
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([LONG])))
    async with Client(make_server(relay, max_result_chars=3000)) as client:
        result = await client.call_tool("send_message", ask("long"))
    path = Path(result.structured_content["truncated"]["path"])  # type: ignore[index]
    made = [home / ".cache", home / ".cache" / "aitoearn-mcp", path.parent,
            home / ".local" / "state", state(home)]  # fmt: skip
    assert {str(folder.relative_to(home)): stat.S_IMODE(folder.stat().st_mode) for folder in made} == {
        str(folder.relative_to(home)): 0o700 for folder in made
    }
    assert stat.S_IMODE((home / ".local").stat().st_mode) == 0o755


async def test_a_named_store_files_new_folders_are_private(relay: FakeRelay, home: Path) -> None:
    target = home / "a" / "b" / "mine.db"
    async with Client(make_server(relay, conversations=f"sqlite://{target}")) as client:
        assert not (await client.call_tool("send_message", ask("a"))).is_error
    assert [stat.S_IMODE((home / p).stat().st_mode) for p in ("a", "a/b")] == [0o700, 0o700]


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to hand a folder to nobody")
async def test_another_users_reply_folder_is_never_used(relay: FakeRelay, home: Path) -> None:
    from aitoearn_mcp.server._reply_files import reply_folder

    folder = reply_folder()
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    os.chown(folder, 65534, 65534)  # nobody's, as another local user would have made it
    relay.enqueue(MESSAGES, Reply.sse(sse.text_reply([LONG])))
    async with Client(make_server(relay, max_result_chars=3000)) as client:
        result = await client.call_tool("send_message", ask("long"))
        full = await client.read_resource(result.structured_content["truncated"]["uri"])  # type: ignore[index]
    assert list(folder.iterdir()) == []
    assert result.structured_content is not None and result.structured_content["truncated"].get("path") is None
    assert full.contents[0].text == LONG  # type: ignore[union-attr]  # still readable by resource


async def test_start_up_opens_no_file(relay: FakeRelay, home: Path) -> None:
    probe = "import sys; from aitoearn_mcp import Config, create_server; create_server(Config()); " \
            "print('sqlite3' in sys.modules)"  # fmt: skip
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ}, check=True
    )
    assert loaded.stdout.strip() == "False"  # not even imported until a call needs the store
    async with Client(make_server(relay)) as client:
        await client.list_tools()
        assert not (await client.call_tool("list_models", {})).is_error
        assert not state(home).exists()
        await client.call_tool("send_message", ask("now it is needed"))
        assert (state(home) / STORE_FILE).exists()


def test_the_setting_names_a_store_or_says_what_it_takes(home: Path) -> None:
    from aitoearn_mcp import Config
    from aitoearn_mcp._config import ConfigError
    from aitoearn_mcp.store._open import open_store

    assert isinstance(open_store("", None, 10), SQLiteStore)
    assert open_store("", None, 10).path == state(home) / STORE_FILE  # type: ignore[attr-defined]
    assert open_store("", None, 10).ttl == 30 * 24 * 3600 and open_store("memory", None, 10).ttl == 3 * 3600  # type: ignore[attr-defined]
    assert isinstance(open_store("memory", 5, 10), MemoryStore)
    assert open_store("sqlite:///tmp/x.db", 5, 10).path == Path("/tmp/x.db")  # type: ignore[attr-defined]
    assert open_store("~/x.db", 5, 10).path == home / "x.db"  # type: ignore[attr-defined]
    for bad, said in (("x.db", "absolute path"), ("sqlite://x.db", "absolute path"),
                      ("postgres://u:pw@h/db", "got a postgres:// URL")):  # fmt: skip
        with pytest.raises(ConfigError, match=said) as refused:
            Config(conversations=bad)
        assert "pw" not in str(refused.value)
    assert Config.from_env({"AITOEARN_CONVERSATIONS": "memory"}).conversation_ttl is None


async def test_http_workers_on_one_machine_share_the_file(relay: FakeRelay, home: Path) -> None:
    server = HttpServer(relay, "--workers", "2", env={"HOME": str(home)})
    try:
        async with http_client(server.url) as client:
            cid = conversation_of(await client.call_tool("send_message", ask("echo:0")))
        for n in range(1, 7):  # a new connection each time: either worker may answer
            async with http_client(server.url) as client:
                result = await client.call_tool("send_message", ask(f"echo:{n}", conversation_id=cid))
            assert conversation_of(result) == cid and f"turn {n + 1}:" in notes_of(result)
    finally:
        server.stop()
    assert [m["content"] for m in relay.requests_to(MESSAGES)[-1].json()["messages"] if m["role"] == "user"] == [
        f"echo:{n}" for n in range(7)
    ]


async def test_the_resources_notice_follows_the_answers_once_for_calls_close_together(
    relay: FakeRelay, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notice is not part of the answer: it goes after it, and five calls answered within its
    delay share one (each call sent its own before its answer, five in all)."""
    monkeypatch.setattr("aitoearn_mcp.server._notices.LISTING_NOTICE_AFTER", 1.0)
    events: list[str] = []
    async with Client(make_server(relay)) as client, client.listen(resources_list_changed=True) as changes:

        async def call(n: int) -> None:
            await client.call_tool("send_message", ask(f"call {n}"))
            events.append("answer")

        async def watch() -> None:
            async for _ in changes:
                events.append("notice")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch)
            async with anyio.create_task_group() as calls:
                for n in range(5):
                    calls.start_soon(call, n)
            await anyio.sleep(3)  # the notice's delay, twice over, and then some
            tasks.cancel_scope.cancel()
    assert events == ["answer"] * 5 + ["notice"]


def test_an_earlier_protocol_session_is_told_after_its_answers(relay: FakeRelay, home: Path) -> None:
    """Claude Code, Codex and Gemini CLI speak 2025-06-18: the notification reaches their session
    after the answers it follows, never ahead of one, and at most one per call."""

    def rpc(id_: int | None, method: str, params: dict[str, Any]) -> bytes:
        return (
            json.dumps(
                {"jsonrpc": "2.0", "method": method, "params": params} | ({} if id_ is None else {"id": id_})
            ).encode()
            + b"\n"
        )

    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "AITOEARN_API_KEY": KEY,
           "AITOEARN_BASE_URL": relay.url + "/api/ai/"}  # fmt: skip
    proc = subprocess.Popen([SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(rpc(1, "initialize", hello) + rpc(None, "notifications/initialized", {})
                     + rpc(2, "tools/call", {"name": "send_message", "arguments": ask("a")})
                     + rpc(3, "tools/call", {"name": "send_message", "arguments": ask("b")}))  # fmt: skip
    proc.stdin.flush()
    seen: list[str] = []
    try:
        while "notice" not in seen or len([s for s in seen if s == "answer"]) < 2:
            message = json.loads(proc.stdout.readline())
            if message.get("id") in (2, 3):
                assert not message["result"].get("isError"), message
                seen.append("answer")
            elif message.get("method") == "notifications/resources/list_changed":
                seen.append("notice")
        proc.stdin.write(rpc(4, "ping", {}))  # anything more is on stdout before this answer
        proc.stdin.flush()
        time.sleep(0.5)
        proc.stdin.write(rpc(5, "ping", {}))
        proc.stdin.flush()
        while (message := json.loads(proc.stdout.readline())).get("id") != 5:
            if message.get("method") == "notifications/resources/list_changed":
                seen.append("notice")
    finally:
        proc.kill()
        proc.wait()
    assert seen[0] == "answer" and seen.count("answer") == 2 and 1 <= seen.count("notice") <= 2, seen


async def test_a_listening_host_is_told_when_its_resources_change(relay: FakeRelay, home: Path) -> None:
    """Claude Code lists resources once when it connects (2026-07-28) and again only when told."""
    async with Client(make_server(relay)) as client, client.listen(resources_list_changed=True) as changes:
        before = {str(r.uri) for r in (await client.list_resources()).resources}
        result = await client.call_tool("send_message", ask("a"))
        with anyio.fail_after(5):
            event = await anext(aiter(changes))
        after = {str(r.uri) for r in (await client.list_resources()).resources}
    assert type(event).__name__ == "ResourcesListChanged"
    assert after - before == {
        f"aitoearn://replies/{reply_of(result)}",
        f"aitoearn://conversations/{conversation_of(result)}",
    }
