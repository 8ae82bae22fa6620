"""generate_image as a delegation, through real MCP clients against the fake media relay: an image
that outlasts the wait (a host's timeout: Claude Desktop's is about 60 s) comes back as status
running with a reply_id and get_reply collects it; a stdio server restarted on its SQLite file
collects an image started before; a failed task and a cancel say what was spent; a host with
MCP Tasks gets the image as a task."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from .media.fake_media import FakeMedia, big_png
from .test_generate_video import local, running, stdio, structured, texts

pytestmark = pytest.mark.anyio

SUBMIT = "/api/ai/image/generate/async"
TASK = "/api/ai/image/task/log-1"
PICTURE = {"prompt": "A lighthouse at dusk, oil painting.", "size": "1024x1024"}


@pytest.fixture
def fake() -> Any:
    server = FakeMedia().start()
    server.image_polls = 3  # done at the third look: about 5 s after the submit (looks at 1, 2.5, 4.75 s)
    yield server
    server.stop()


def assert_image(result: CallToolResult, reply_id: str, folder: Path) -> Path:
    """Complete: the file is the one served, its path and link in both parts, a preview shown."""
    assert not result.is_error, texts(result)
    content = structured(result)
    assert list(content)[:2] == ["status", "reply_id"] and content["status"] == "complete"
    assert content["reply_id"] == reply_id and content["task_id"] == "log-1"
    [image] = content["images"]
    path = Path(image["path"])
    assert path.parent == folder and path.read_bytes() == big_png()
    for fact in (str(path), image["url"], "1 credits an image"):
        assert fact in texts(result), fact  # Gemini CLI shows only the text
    assert content["credits"] == {"price": "1", "points": "1"}
    [shown] = [c for c in result.content if c.type == "image"]
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(shown.data))) as preview:
        assert preview.size == (1429, 804)  # the 3840×2160 image, scaled to what hosts accept
    return path


async def test_an_image_past_the_wait_is_running_then_get_reply_collects_it(fake: FakeMedia, tmp_path: Path) -> None:
    async with local(fake, tmp_path) as client:
        first = await client.call_tool("generate_image", {**PICTURE, "wait_seconds": 0.5})
        reply_id = running(first)
        assert structured(first)["stage"] in ("submitting", "generating")
        assert "Image on gpt-image-2" in texts(first) and "1 credits an image" in texts(first)
        collected = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
    assert_image(collected, reply_id, tmp_path)
    assert len(fake.to(SUBMIT)) == 1 and len(fake.to(TASK)) == 3


async def test_a_restarted_stdio_server_collects_an_image_started_before(fake: FakeMedia, tmp_path: Path) -> None:
    store = tmp_path / "state" / "store.sqlite3"
    folder = tmp_path / "images"
    folder.mkdir()
    params = stdio(fake, folder, AITOEARN_CONVERSATIONS=str(store))
    async with Client(params) as client:
        reply_id = running(await client.call_tool("generate_image", {**PICTURE, "wait_seconds": 0.5}))
    looked = len(fake.to(TASK))
    assert looked < 3 and list(folder.iterdir()) == []  # stopped while the image was being made
    async with Client(params) as client:  # the host starts the server again
        collected = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
    assert_image(collected, reply_id, folder)
    assert len(fake.to(SUBMIT)) == 1 and len(fake.to(TASK)) > looked  # collected, not made twice


async def test_a_failed_image_says_what_failed_and_what_was_spent(fake: FakeMedia, tmp_path: Path) -> None:
    async with local(fake, tmp_path) as client:
        result = await client.call_tool("generate_image", {**PICTURE, "prompt": "please fail"})
    assert result.is_error
    content = structured(result)
    assert list(content)[:3] == ["status", "reply_id", "error"] and content["status"] == "failed"
    for part in (texts(result), content["error"]):
        assert "content policy: the prompt was refused" in part and "log-1" in part and "may have been spent" in part
    assert list(tmp_path.iterdir()) == []


async def test_cancel_stops_looking_and_says_the_credits_may_be_spent(fake: FakeMedia, tmp_path: Path) -> None:
    fake.image_polls = 100
    async with local(fake, tmp_path) as client:
        reply_id = running(await client.call_tool("generate_image", {**PICTURE, "wait_seconds": 1.5}))
        cancelled = await client.call_tool("get_reply", {"reply_id": reply_id, "cancel": True})
        looked = len(fake.to(TASK))
        await anyio.sleep(3)  # past the next look it would have made
        later = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 1})
    assert looked >= 1 and len(fake.to(TASK)) == looked  # no look after the cancel
    assert not cancelled.is_error and structured(cancelled)["status"] == "cancelled"
    for part in (texts(cancelled), " ".join(structured(cancelled)["notes"])):
        assert "no cancel for an image task" in part and "may be spent" in part
    assert structured(later)["status"] == "cancelled"
    assert list(tmp_path.iterdir()) == []


async def test_a_host_with_mcp_tasks_gets_an_image_as_a_task(fake: FakeMedia, tmp_path: Path) -> None:
    from .delegation.test_tasks import TasksClient

    tasks = TasksClient()
    async with local(fake, tmp_path, [tasks]) as client:
        result = await client.call_tool("generate_image", PICTURE)
    [created] = tasks.created
    assert created.status == "working"
    assert any("Image on gpt-image-2" in p["statusMessage"] for p in tasks.polls if p["status"] == "working")
    assert_image(result, created.task_id, tmp_path)
