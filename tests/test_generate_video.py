"""generate_video through real MCP clients (in-process, stdio, HTTP) against the fake media relay:
a video is a delegation like a long reply (running with a reply_id, collected by get_reply,
progress while it renders, a cancel that stops the polling), kept in the store so another HTTP
replica on one Redis or a restarted stdio server finishes it; refusals come before anything is
sent or spent."""

from __future__ import annotations

import base64
import io
import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult
from pydantic import SecretStr

from aitoearn_mcp import Config, create_server
from aitoearn_mcp.media._poll import poll_task
from aitoearn_mcp.media._results import VideoStatus, video_status

from .conftest import HttpServer, RedisServer, http_client
from .media.fake_media import KEY, VIDEO_BYTES, Answer, FakeMedia, small_png
from .test_files_and_budget import offering_roots
from .test_progress_cancel import SCRIPT

pytestmark = pytest.mark.anyio

SUBMIT = "/api/ai/video/generations"
STATUS = "/api/ai/video/generations/"
FAST = {"model": "seedance-2-fast-beta", "prompt": "A red kite over the sea at dawn."}  # 48 credits: 6 s at 720p
ODD_STEPS = ["排队中", "Stage-2/3: motion", "postprocess…"]  # status strings no client knows


@pytest.fixture
def fake() -> Any:
    server = FakeMedia().start()
    server.video_steps = []  # done at the first poll (2 s) unless a test wants a longer render
    yield server
    server.stop()


def server(fake: FakeMedia, folder: Path, **settings: Any) -> Any:
    config = Config(base_url=fake.url, api_key=SecretStr(KEY), files_roots=(str(folder),), **settings)
    return create_server(config)


def local(fake: FakeMedia, folder: Path, extensions: list[Any] | None = None, **settings: Any) -> Client:
    """In-process, with a client that offers ``folder`` as its root (the default save folder)."""
    return Client(server(fake, folder, **settings), list_roots_callback=offering_roots(folder), extensions=extensions)


def stdio(fake: FakeMedia, folder: Path, **env: str) -> StdioServerParameters:
    environment = {"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": fake.url, "PATH": os.environ["PATH"],
                   "HOME": os.environ["HOME"], "AITOEARN_FILES_ROOTS": str(folder), **env}  # fmt: skip
    return StdioServerParameters(command=SCRIPT, env=environment, cwd=str(folder))


def texts(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, texts(result)
    return result.structured_content


def running(result: CallToolResult) -> str:
    assert not result.is_error, texts(result)
    content = structured(result)
    assert list(content)[:2] == ["status", "reply_id"] and content["status"] == "running"
    assert content["reply_id"] in content["next"] and "get_reply" in content["next"]
    assert content["reply_id"] in texts(result) and "get_reply" in texts(result)
    return content["reply_id"]


def assert_collected(result: CallToolResult, reply_id: str, fake: FakeMedia) -> Path:
    """Complete: the file is the one served, path and URL in both parts, the cover an image."""
    assert not result.is_error, texts(result)
    content = structured(result)
    assert list(content)[:5] == ["status", "reply_id", "path", "video_url", "cover_url"], content
    assert content["status"] == "complete" and content["reply_id"] == reply_id
    path = Path(content["path"])
    assert path.is_absolute() and path.read_bytes() == VIDEO_BYTES
    assert content["video_url"].startswith(fake.url) and content["video_url"].endswith(".mp4")
    words = texts(result)
    for fact in (str(path), content["video_url"], content["cover_url"], "48"):
        assert fact in words, fact  # Gemini CLI shows only the text
    assert content["credits"] == {"price": "48", "points": "48"} and content["mode"] == "text2video"
    assert content["mode_derived"] is True and "derived" in words
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(images[0].data))) as cover:
        assert cover.size == (64, 48)  # the fake's cover, previewed
    return path


@pytest.mark.parametrize("target", ["in-process", "stdio", "http"])
async def test_a_video_returns_running_then_get_reply_collects_it(fake: FakeMedia, tmp_path: Path, target: str) -> None:
    http: HttpServer | None = None
    if target == "http":
        http = HttpServer(fake, key=KEY, env={"AITOEARN_FILES_ROOTS": str(tmp_path)})  # type: ignore[arg-type]
        client = http_client(http.url)
    else:
        client = local(fake, tmp_path) if target == "in-process" else Client(stdio(fake, tmp_path))
    try:
        async with client:
            started = await client.call_tool("generate_video", {**FAST, "wait_seconds": 0.5})
            reply_id = running(started)
            collected = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
            again = await client.call_tool("get_reply", {"reply_id": reply_id})
    finally:
        if http is not None:
            http.stop()
    path = assert_collected(collected, reply_id, fake)
    assert path.parent == tmp_path.resolve()  # the first root
    assert structured(again) == structured(collected)  # read back from the store: the same
    assert len(fake.to(SUBMIT)) == 1 and fake.to(SUBMIT)[0].json()["mode"] == "text2video"
    if http is not None:
        assert KEY not in http.log()


async def test_progress_tells_the_relays_status_at_least_every_10_s_of_a_20_s_render(
    fake: FakeMedia, tmp_path: Path
) -> None:
    fake.video_steps, fake.video_seconds = ODD_STEPS, 20
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), message))

    async with local(fake, tmp_path) as client:
        result = await client.call_tool("generate_video", {**FAST, "wait_seconds": 60}, progress_callback=on_progress)
    assert_collected(result, structured(result)["reply_id"], fake)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    assert max(gaps) <= 10, gaps
    told = " ".join(message or "" for _, message in seen)
    assert "Stage-2/3: motion" in told and "s so far" in told  # the relay's own words and the time
    polls = fake.to(STATUS + "vid-1")
    assert 4 <= len(polls) <= 10  # backing off from 2 s towards 10 s, not hammering the relay


async def test_cancel_stops_polling_and_says_the_credits_may_be_spent(fake: FakeMedia, tmp_path: Path) -> None:
    fake.video_seconds = 120
    async with local(fake, tmp_path) as client:
        reply_id = running(await client.call_tool("generate_video", {**FAST, "wait_seconds": 2.5}))
        cancelled = await client.call_tool("get_reply", {"reply_id": reply_id, "cancel": True})
        polled = len(fake.to(STATUS + "vid-1"))
        await anyio.sleep(6)  # past the next two polls it would have made
        later = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 1})
    assert polled >= 1 and len(fake.to(STATUS + "vid-1")) == polled  # no status request after the cancel
    assert not cancelled.is_error and structured(cancelled)["status"] == "cancelled"
    for part in (texts(cancelled), " ".join(structured(cancelled)["notes"])):
        assert "no cancel for a video task" in part and "may be spent" in part and "48" in part
    assert structured(later)["status"] == "cancelled"
    assert list(tmp_path.iterdir()) == []


async def test_a_video_started_on_one_replica_is_collected_on_another(
    fake: FakeMedia, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Both replicas on one real Redis: while the first runs the video, the second reads its
    record; once the first is gone (SIGTERM, no grace), the second polls the relay itself."""
    env = {"AITOEARN_CONVERSATIONS": redis_server.url, "AITOEARN_FILES_ROOTS": str(tmp_path),
           "AITOEARN_SHUTDOWN_GRACE": "0"}  # fmt: skip
    fake.video_seconds = 5
    one, other = (HttpServer(fake, key=KEY, env=env) for _ in range(2))  # type: ignore[arg-type]
    try:
        async with http_client(one.url) as on_one, http_client(other.url) as on_other:
            first = running(await on_one.call_tool("generate_video", {**FAST, "wait_seconds": 0.5}))
            collected = await on_other.call_tool("get_reply", {"reply_id": first, "wait_seconds": 30})
            second = running(await on_one.call_tool("generate_video", {**FAST, "wait_seconds": 0.5}))
        one.proc.send_signal(signal.SIGTERM)  # the video is still rendering: its record is left for others
        with anyio.fail_after(20):
            while one.proc.poll() is None:
                await anyio.sleep(0.05)
        async with http_client(other.url) as on_other:
            adopted = await on_other.call_tool("get_reply", {"reply_id": second, "wait_seconds": 30})
    finally:
        one.stop()
        other.stop()
    assert_collected(collected, first, fake)
    assert_collected(adopted, second, fake)
    assert "taken over by this process" in other.log()
    assert len(fake.to(SUBMIT)) == 2  # nothing rendered twice
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vid-1.mp4", "vid-2.mp4"]  # each saved once


async def test_a_restarted_stdio_server_collects_a_video_started_before(fake: FakeMedia, tmp_path: Path) -> None:
    store = tmp_path / "state" / "store.sqlite3"
    folder = tmp_path / "videos"
    folder.mkdir()
    fake.video_seconds = 6
    params = stdio(fake, folder, AITOEARN_CONVERSATIONS=str(store))
    async with Client(params) as client:
        reply_id = running(await client.call_tool("generate_video", {**FAST, "wait_seconds": 0.5}))
    polled = len(fake.to(STATUS + "vid-1"))
    async with Client(params) as client:  # the host starts the server again
        collected = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
    assert_collected(collected, reply_id, fake)
    assert len(fake.to(STATUS + "vid-1")) > polled and len(fake.to(SUBMIT)) == 1


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"mode": "video2video"}, "`mode` 'video2video' is not offered"),
        ({"images": [f"https://cdn.example.com/{i}.png" for i in range(10)]}, "`images` has 10 items"),
        ({"duration": 3}, "`duration` 3 s is not offered"),
        ({"images": ["/etc/hostname"]}, "outside the allowed roots"),
        ({"duration": 10}, "costs 80 credits, over the limit of 50"),
        ({"save_to": "/"}, "`save_to` '/' is outside the allowed roots"),
    ],
)
async def test_refusals_come_before_anything_is_sent(
    fake: FakeMedia, tmp_path: Path, arguments: dict[str, Any], words: str
) -> None:
    async with local(fake, tmp_path, max_credits_per_call=50) as client:
        result = await client.call_tool("generate_video", {**FAST, **arguments})
    assert result.is_error and words in texts(result), texts(result)
    assert "Nothing was " in texts(result) and "fix" in texts(result).lower()
    assert [r.path for r in fake.requests if not r.path.startswith("/api/ai/models/")] == []


async def test_the_spend_guard_names_cheaper_choices(fake: FakeMedia, tmp_path: Path) -> None:
    async with local(fake, tmp_path, max_credits_per_call=50) as client:
        result = await client.call_tool("generate_video", {**FAST, "duration": 10})
    assert structured(result)["status"] == "refused" and structured(result)["price"] == "80"
    assert "`duration` 6 s or less (48 credits at 6 s)" in texts(result)
    assert "`resolution` 480p (55 credits)" not in texts(result)  # 55 is over the limit too
    assert "AITOEARN_MAX_CREDITS_PER_CALL" in texts(result)


async def test_local_paths_are_refused_over_http_and_urls_work(fake: FakeMedia, tmp_path: Path) -> None:
    image = tmp_path / "first.png"
    image.write_bytes(small_png())
    http = HttpServer(fake, key=KEY, env={"AITOEARN_FILES_ROOTS": str(tmp_path)})  # type: ignore[arg-type]
    try:
        async with http_client(http.url) as client:
            local = await client.call_tool("generate_video", {**FAST, "images": [str(image)]})
            saving = await client.call_tool("generate_video", {**FAST, "save_to": str(tmp_path)})
            url = await client.call_tool("generate_video", {**FAST, "images": [f"{fake.url}/files/small.png"],
                                                            "download": False, "wait_seconds": 30})  # fmt: skip
    finally:
        http.stop()
    assert local.is_error and "is a local path" in texts(local) and "https URL" in texts(local)
    assert saving.is_error and "`save_to` is not available over HTTP" in texts(saving)
    assert structured(url)["status"] == "complete" and structured(url)["path"] is None
    assert structured(url)["mode"] == "image2video" and "Not downloaded" in texts(url)
    assert fake.to(SUBMIT)[0].json()["images"] == [f"{fake.url}/files/small.png"]
    assert list(tmp_path.iterdir()) == [image]


async def test_a_local_reference_is_uploaded_without_the_key(fake: FakeMedia, tmp_path: Path) -> None:
    image = tmp_path / "first frame.png"
    image.write_bytes(small_png())
    async with local(fake, tmp_path) as client:
        result = await client.call_tool("generate_video", {**FAST, "images": [str(image)], "download": False,
                                                           "wait_seconds": 30})  # fmt: skip
    assert structured(result)["status"] == "complete", texts(result)
    assert list(fake.stored.values()) == [small_png()]  # the bytes, streamed from the open file
    assert all(KEY not in value for headers in fake.storage_headers.values() for value in headers.values())
    body = fake.to(SUBMIT)[0].json()
    assert body["images"] == [f"{fake.url}/files/asset-asset-1"] and body["mode"] == "image2video"


async def test_a_failed_video_says_what_failed_and_what_was_spent(fake: FakeMedia, tmp_path: Path) -> None:
    async with local(fake, tmp_path) as client:
        result = await client.call_tool("generate_video", {**FAST, "prompt": "make it fail", "wait_seconds": 30})
    assert result.is_error and structured(result)["status"] == "failed"
    for part in (texts(result), structured(result)["error"]):
        assert "refused by the safety check" in part and "vid-1" in part and "48 credits" in part
    assert list(tmp_path.iterdir()) == []


async def test_a_truncated_download_leaves_no_file(fake: FakeMedia, tmp_path: Path) -> None:
    async with local(fake, tmp_path) as client:
        result = await client.call_tool("generate_video", {**FAST, "prompt": "cut short", "wait_seconds": 30})
    content = structured(result)
    assert content["status"] == "complete" and content["path"] is None  # it was made and paid for: the URL
    assert "cut short" in content["download_error"] and content["video_url"] in texts(result)
    assert "Not downloaded" in texts(result)
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary file


async def test_a_download_that_drips_stops_at_the_deadline(fake: FakeMedia, tmp_path: Path) -> None:
    """A byte every 0.2 s never trips the read timeout; the delegation's deadline ends the download."""

    def drip() -> Iterator[bytes]:
        for _ in range(400):  # 80 s in all
            yield b"x"
            time.sleep(0.2)

    fake.enqueue("/files/vid-1.mp4", Answer(200, {"content-type": "video/mp4"}, declared_length=400, stream=drip))
    started = time.monotonic()
    async with local(fake, tmp_path, deadline=5) as client:
        result = await client.call_tool("generate_video", {**FAST, "wait_seconds": 60})
    content = structured(result)
    assert time.monotonic() - started < 20
    assert content["status"] == "complete" and content["path"] is None, content
    assert "AITOEARN_DEADLINE" in content["download_error"] and content["video_url"] in texts(result)
    assert [c.type for c in result.content].count("image") == 1  # the cover came first and is shown
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary file


async def test_a_host_with_mcp_tasks_gets_a_video_as_a_task(fake: FakeMedia, tmp_path: Path) -> None:
    from .delegation.test_tasks import TasksClient

    tasks = TasksClient()
    async with local(fake, tmp_path, [tasks]) as client:
        result = await client.call_tool("generate_video", FAST)
    [created] = tasks.created
    assert created.status == "working"
    assert any("Video on seedance-2-fast-beta" in p["statusMessage"] for p in tasks.polls if p["status"] == "working")
    assert_collected(result, created.task_id, fake)


# --- the status strings the relay may send ---------------------------------------------------

_FAILED = ("fail", "error", "expire", "cancel", "reject")
unknown = st.text(max_size=40).filter(lambda s: not any(word in s.lower() for word in _FAILED))


@given(statuses=st.lists(unknown, min_size=1, max_size=12))
@settings(max_examples=50, deadline=None)
def test_unknown_statuses_never_end_polling_until_a_url_or_an_error(statuses: list[str]) -> None:
    class Relay:
        def __init__(self) -> None:
            self.answers = [video_status({"id": "v", "status": s}, "v") for s in statuses]
            self.answers.append(video_status({"id": "v", "status": statuses[-1], "videoUrl": "https://x/v.mp4"}, "v"))

        async def video_status(self, task_id: str) -> VideoStatus:
            return self.answers.pop(0)

    relay = Relay()
    outcome = anyio.run(
        lambda: poll_task(relay.video_status, "v", what="video", timeout=60, first_delay=0, max_delay=0)
    )
    assert outcome.state == "finished" and relay.answers == []  # every unknown status was polled past
    assert all(video_status({"id": "v", "status": s}, "v").state == "running" for s in statuses)
    assert video_status({"status": statuses[0], "error": {"message": "x"}}, "v").state == "failed"
