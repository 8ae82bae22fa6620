"""Image and video jobs under hostile conditions, with real parts (the fake media relay, real MCP
clients in-process, a real redis-server, a real SQLite file): two replicas that see the same
stale lease at once, and the store going away under a running job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr

from aitoearn_mcp.delegation._daily import DailyCap
from aitoearn_mcp.store._open import open_store

from .conftest import RedisServer
from .media.fake_media import KEY, FakeMedia
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
