"""Image and video jobs under hostile conditions, with real parts (the fake media relay, real MCP
clients in-process, a real redis-server, a real SQLite file): two replicas that see the same
stale lease at once, Redis crashing and coming back (empty, or with what it held) under a running
job, and the relay answering garbage in the middle of the polling."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr

from aitoearn_mcp.delegation import _media_job
from aitoearn_mcp.delegation._daily import DailyCap
from aitoearn_mcp.delegation._media_job import BAD_LOOKS
from aitoearn_mcp.delegation._record import ReplyRecord
from aitoearn_mcp.store._open import open_store
from aitoearn_mcp.store._protocol import STORE_DOWN

from .conftest import RedisServer, free_port, start_redis
from .media.fake_media import KEY, Answer, FakeMedia, Recorded
from .test_generate_video import FAST, local, running, structured, texts

pytestmark = pytest.mark.anyio

PICTURE = {"prompt": "A lighthouse at dusk, oil painting.", "size": "1024x1024"}
ASKS = {"image": ("generate_image", PICTURE, "/files/image.png"), "video": ("generate_video", FAST, "/files/vid-1.mp4")}
TAKEN_OVER = "taken over by this process"


@pytest.fixture
def fake() -> Any:
    server = FakeMedia().start()
    server.image_polls = 4  # done at the fourth look: about 7 s after the submit
    server.video_seconds = 6
    yield server
    server.stop()


def redis_url(request: pytest.FixtureRequest) -> str:
    """The session's real redis-server, started only by the tests that use it."""
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def saved_paths(result: CallToolResult) -> list[str]:
    content = structured(result)
    return [image["path"] for image in content["images"]] if "images" in content else [content["path"]]


async def counted_today(url: str) -> int:
    """The key's credits today (millionths), as the store every replica shares counts them."""
    store = open_store(url, None, 10**8)
    try:
        return await store.add_credits(await store.owner_tag(SecretStr(KEY)), DailyCap.today(), 0)
    finally:
        await store.aclose()


@pytest.mark.parametrize("store", ["sqlite", "redis"])
@pytest.mark.parametrize("kind", ["image", "video"])
async def test_two_replicas_that_see_one_stale_lease_at_once_take_it_over_once(
    fake: FakeMedia, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, store: str,
    kind: str,
) -> None:  # fmt: skip
    """A server stops with the job on the relay (its record left running, looked after by no
    one); two replicas on the same store, each asked twice at the same moment, all see the
    stale lease: exactly one takes the job over, the file is fetched and saved once, the day's
    credits are counted once, and every get_reply on either replica collects the same result."""
    url = redis_url(request) if store == "redis" else str(tmp_path / "state" / "store.sqlite3")
    tool, ask, download = ASKS[kind]
    settings: dict[str, Any] = {"conversations": url, "max_credits_per_day": 100.0}
    before = await counted_today(url)
    async with local(fake, tmp_path, **settings) as client:
        reply_id = running(await client.call_tool(tool, {**ask, "wait_seconds": 0.5}))
    submitted = await counted_today(url)
    caplog.set_level(logging.INFO, logger="aitoearn_mcp")
    results: list[CallToolResult] = []

    async def collect(client: Client) -> None:
        results.append(await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30}))

    async with (
        local(fake, tmp_path, **settings) as one,
        local(fake, tmp_path, **settings) as other,
        anyio.create_task_group() as both,
    ):
        for client in (one, other, one, other):
            both.start_soon(collect, client)
    assert caplog.text.count(TAKEN_OVER) == 1, caplog.text
    for result in results:
        assert structured(result)["status"] == "complete", texts(result)
        assert saved_paths(result) == saved_paths(results[0])
    assert len(fake.to(download)) == 1  # fetched once
    assert [p for p in tmp_path.iterdir() if p.is_file()] == [Path(p) for p in saved_paths(results[0])]
    price = {"image": 1, "video": 48}[kind]
    assert submitted - before == price * 1_000_000 and await counted_today(url) == submitted  # counted once


class Partition:
    """A TCP proxy on loopback to a real Redis, which the test can cut (every connection closed,
    new ones refused) and restore on the same port: one replica's network to its store failing
    while the other's works."""

    def __init__(self, port: int) -> None:
        self.target, self.port = port, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        sockets, self._sockets = [*self._sockets, *filter(None, [self._listener])], []
        self._listener = None
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("kind", ["image", "video"])
async def test_a_replica_cut_off_from_redis_past_its_lease_stops_once_another_took_its_job_over(
    fake: FakeMedia, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, kind: str,
) -> None:  # fmt: skip
    """Replica A runs a job and loses its network to Redis for longer than the lease; replica B,
    asked for it, takes it over. Once A reaches Redis again, its next write finds B's record (not
    the one A wrote last): A stops, and the job is fetched, saved and collected once, on both."""
    monkeypatch.setattr(_media_job, "LEASE", 2.0)
    monkeypatch.setattr(_media_job, "ALIVE_EVERY", 0.5)
    fake.image_polls, fake.video_seconds = 7, 12  # done at about 12 s either way
    folder = tmp_path / "out"
    folder.mkdir()
    direct = redis_url(request)
    partition = Partition(int(direct.rsplit(":", 1)[1].split("/")[0]))
    tool, ask, download = ASKS[kind]
    caplog.set_level(logging.INFO, logger="aitoearn_mcp")
    try:
        async with (
            local(fake, folder, conversations=partition.url) as a,
            local(fake, folder, conversations=direct) as b,
        ):
            reply_id = running(await a.call_tool(tool, {**ask, "wait_seconds": 0.5}))
            partition.cut()
            await anyio.sleep(3)  # A's mark is older than the lease
            taken = await b.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 0})
            partition.restore()
            with anyio.fail_after(60):
                on_b = await b.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 40})
                on_a = await a.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 40})
    finally:
        partition.cut()
    assert structured(taken)["status"] == "running" and caplog.text.count(TAKEN_OVER) == 1, caplog.text
    assert "taken over by another process; this one stops it" in caplog.text
    for result in (on_b, on_a):
        assert structured(result)["status"] == "complete", texts(result)
        assert saved_paths(result) == saved_paths(on_b)
    assert len(fake.to(download)) == 1 and len(list(folder.iterdir())) == 1  # fetched and saved once


# --- Redis restarted under a running job ----------------------------------------------------------


class RestartableRedis:
    """A real redis-server this test owns, killed (SIGKILL: a crash) and started again on the same
    port; ``persist``: with an append-only file synced on every write, so it comes back with what it
    held, else empty."""

    def __init__(self, folder: Path, persist: bool) -> None:
        folder.mkdir()
        self.folder, self.persist, self.port = folder, persist, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = start_redis(self.port, str(self.folder), persist=self.persist)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


async def stored_status(url: str, reply_id: str) -> str | None:
    store = open_store(url, None, 10**8)
    try:
        raw = await store.load_reply(reply_id, await store.owner_tag(SecretStr(KEY)))
    finally:
        await store.aclose()
    return None if raw is None else ReplyRecord.from_json(raw).status


@pytest.mark.parametrize("finish", ["after the restart", "while Redis is down"])
@pytest.mark.parametrize("persist", [False, True], ids=["empty", "persisted"])
@pytest.mark.parametrize("kind", ["image", "video"])
async def test_a_redis_restart_under_a_running_job_neither_hangs_nor_loses_it(
    fake: FakeMedia, tmp_path: Path, kind: str, persist: bool, finish: str
) -> None:
    """Redis crashes while the job runs and comes back on the same port (empty, or with what it
    held). Meanwhile get_reply answers at once that the store is down (on either replica); once it
    is back, the job is collected on the replica that ran it and on the other, saved once, and the
    server goes on serving."""
    folder = tmp_path / "out"
    folder.mkdir()
    redis = RestartableRedis(tmp_path / "redis", persist)
    tool, ask, download = ASKS[kind]
    settings: dict[str, Any] = {"conversations": redis.url, "max_credits_per_day": 100.0}
    try:
        async with local(fake, folder, **settings) as runner, local(fake, folder, **settings) as other:
            reply_id = running(await runner.call_tool(tool, {**ask, "wait_seconds": 0.5}))
            redis.kill()
            with anyio.fail_after(20):  # a store that is down answers at once, it does not hang the call
                down = [
                    await c.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 5}) for c in (runner, other)
                ]
            if finish == "while Redis is down":
                with anyio.fail_after(30):
                    while not list(folder.iterdir()):
                        await anyio.sleep(0.2)
                await anyio.sleep(3)  # past its preview and its final record's write, which found no Redis
            redis.start()
            with anyio.fail_after(60):
                collected = await runner.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
                while await stored_status(redis.url, reply_id) != "complete":  # the store has the final record
                    await anyio.sleep(0.2)
                on_other = await other.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
                fetched = len(fake.to(download))
                after = await runner.call_tool(tool, {**ask, "wait_seconds": 30})
    finally:
        redis.kill()
    for result in down:
        assert result.is_error and STORE_DOWN in texts(result) and "try get_reply again" in texts(result), texts(result)
    for result in (collected, on_other):
        assert structured(result)["status"] == "complete", texts(result)
        assert saved_paths(result) == saved_paths(collected)
    assert structured(after)["status"] == "complete", texts(after)
    assert fetched == 1  # the job fetched once
    assert len(list(folder.iterdir())) == 2  # it and the one made afterwards, each once


@pytest.mark.parametrize("kind", ["image", "video"])
async def test_a_job_started_while_redis_is_down_is_stored_for_every_replica_once_it_is_back(
    fake: FakeMedia, tmp_path: Path, kind: str
) -> None:
    """Started while the store does not answer, a job runs under a tag of its process's own; once
    Redis is back its record is written under the key's tag in the store, so the other replica
    collects it too, and the replica that ran it finds it throughout."""
    folder = tmp_path / "out"
    folder.mkdir()
    redis = RestartableRedis(tmp_path / "redis", persist=False)
    tool, ask, download = ASKS[kind]
    settings: dict[str, Any] = {"conversations": redis.url}
    try:
        async with local(fake, folder, **settings) as runner, local(fake, folder, **settings) as other:
            redis.kill()
            reply_id = running(await runner.call_tool(tool, {**ask, "wait_seconds": 0.5}))
            redis.start()
            with anyio.fail_after(60):
                mine = await runner.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
                while await stored_status(redis.url, reply_id) != "complete":
                    await anyio.sleep(0.2)
                on_other = await other.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
    finally:
        redis.kill()
    for result in (mine, on_other):
        assert structured(result)["status"] == "complete", texts(result)
        assert saved_paths(result) == saved_paths(mine)
    assert len(fake.to(download)) == 1 and len(list(folder.iterdir())) == 1  # made and saved once


# --- a relay that answers garbage mid-poll ---------------------------------------------------------

GARBAGE = {
    "a proxy's HTML page": Answer(200, {"content-type": "text/html"}, b"<html><body>Bad gateway</body></html>"),
    "cut-off JSON": Answer(200, body=b'{"code": 0, "data": {"status": "gener'),
    "the wrong shape": Answer.json({"code": 0, "message": "ok", "data": ["not", "a", "task"]}),
    "a 502 page": Answer(502, {"content-type": "text/html"}, b"<html>502 Bad Gateway</html>"),
}
TASK_PATHS = {"image": "/api/ai/image/task/log-1", "video": "/api/ai/video/generations/vid-1"}


def garbage_on_the_second_look(fake: FakeMedia, kind: str, answer: Answer, times: int = 1) -> None:
    """The task's status route answers well, then ``answer`` ``times`` times, then well again."""
    looks = []

    def look(request: Recorded) -> Answer:
        looks.append(request)
        if 2 <= len(looks) < 2 + times:
            return answer
        task_id = request.path.rsplit("/", 1)[1]
        return fake._image_task(task_id) if kind == "image" else fake._video_status(task_id)

    fake.routes[TASK_PATHS[kind]] = look


@pytest.mark.parametrize("garbage", list(GARBAGE))
@pytest.mark.parametrize("kind", ["image", "video"])
async def test_one_garbage_answer_mid_poll_does_not_lose_a_paid_job(
    fake: FakeMedia, tmp_path: Path, kind: str, garbage: str
) -> None:
    """The task was submitted (paid for) and the relay answered a look well: one bad answer (a
    proxy's page, a cut-off body, a shape it never sends) is a passing fault, not the end of the
    job; the next look finds it and the file is saved."""
    tool, ask, download = ASKS[kind]
    fake.video_seconds = None
    fake.video_steps = ["queued", "rendering", "rendering"]
    garbage_on_the_second_look(fake, kind, GARBAGE[garbage])
    async with local(fake, tmp_path) as client:
        result = await client.call_tool(tool, {**ask, "wait_seconds": 60})
    assert structured(result)["status"] == "complete", texts(result)
    assert len(fake.to(TASK_PATHS[kind])) >= 3 and len(fake.to(download)) == 1


@pytest.mark.parametrize("kind", ["image", "video"])
async def test_garbage_that_goes_on_fails_the_job_saying_the_task_and_what_may_be_spent(
    fake: FakeMedia, tmp_path: Path, kind: str
) -> None:
    """Answers that stay garbage are not waited out to the deadline: after a few in a row the job
    fails, naming what the relay answered, the task and that its credits may have been spent."""
    tool, ask, download = ASKS[kind]
    garbage_on_the_second_look(fake, kind, GARBAGE["a proxy's HTML page"], times=100)
    async with local(fake, tmp_path) as client:
        result = await client.call_tool(tool, {**ask, "wait_seconds": 120})
        served = await client.call_tool("list_models", {"kind": kind})  # the server goes on
    words = texts(result)
    assert result.is_error and structured(result)["status"] == "failed", words
    task = TASK_PATHS[kind].rsplit("/", 1)[1]
    for fact in ("not the relay's JSON envelope", "Bad gateway", f"task {task}", "may have been spent"):
        assert fact in words, fact
    assert len(fake.to(TASK_PATHS[kind])) == 1 + BAD_LOOKS and fake.to(download) == []
    assert not served.is_error and list(tmp_path.iterdir()) == []
