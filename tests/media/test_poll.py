"""Waiting for a video: done through unknown statuses, progress, a clean deadline, failures."""

from __future__ import annotations

import itertools

import anyio
import pytest

from aitoearn_mcp._errors import RequestRejectedError
from aitoearn_mcp.media._client import MediaClient
from aitoearn_mcp.media._models import VideoModel
from aitoearn_mcp.media._poll import PollOutcome, poll_task
from aitoearn_mcp.media._results import VideoStatus
from aitoearn_mcp.media._validate import VideoRequest, check_video

from .fake_media import Answer, FakeMedia

pytestmark = pytest.mark.anyio

FAST = {"first_delay": 0.02, "max_delay": 0.05, "progress_every": 0.1}


async def submit(client: MediaClient, models: list[VideoModel], prompt: str) -> str:
    task = await client.submit_video(check_video(VideoRequest(model="happyhorse-1.1", prompt=prompt), models))
    return task.id


async def test_reaches_done_through_unknown_statuses(fake: FakeMedia, client: MediaClient,
                                                     video_models: list[VideoModel]) -> None:  # fmt: skip
    task_id = await submit(client, video_models, "a horse")
    seen: list[tuple[str | None, float]] = []

    async def progress(status: VideoStatus | None, elapsed: float) -> None:
        seen.append((status.status if status else None, elapsed))

    outcome = await poll_task(client.video_status, task_id, what="video", timeout=10, on_progress=progress, **FAST)
    assert outcome.state == "finished" and outcome.status is not None
    assert outcome.status.video_url == f"{fake.url}/files/{task_id}.mp4" and outcome.status.cover_url
    changes = [status for i, (status, _) in enumerate(seen) if i == 0 or status != seen[i - 1][0]]
    assert changes == ["queued", "in_progress", "rendering"]  # the ticker may repeat one in between


async def test_progress_at_least_every_interval_even_when_status_requests_hang(
    fake: FakeMedia, client: MediaClient, video_models: list[VideoModel]
) -> None:
    import time

    task_id = await submit(client, video_models, "a slow horse")

    def hang(_: object) -> Answer:
        time.sleep(0.6)
        return Answer.error(12302, "gone")

    fake.routes[f"/api/ai/video/generations/{task_id}"] = hang  # type: ignore[assignment]
    times: list[float] = []

    async def progress(status: VideoStatus | None, elapsed: float) -> None:
        times.append(elapsed)

    with pytest.raises(RequestRejectedError):
        await poll_task(client.video_status, task_id, what="video", timeout=10, on_progress=progress, **FAST)
    assert len(times) >= 4  # ~0.6 s of silence, reported every 0.1 s
    assert all(b - a < 0.3 for a, b in itertools.pairwise(times))


async def test_deadline_is_an_outcome_that_keeps_the_id(client: MediaClient, video_models: list[VideoModel]) -> None:
    task_id = await submit(client, video_models, "a slow horse")
    outcome = await poll_task(client.video_status, task_id, what="video", timeout=0.4, **FAST)
    assert outcome == PollOutcome(task_id, "pending", outcome.status, outcome.elapsed, outcome.message)
    assert outcome.status is not None and outcome.status.status == "rendering"
    assert task_id in outcome.message and "collect it later" in outcome.message
    assert 0.35 <= outcome.elapsed < 2


async def test_failed_video(client: MediaClient, video_models: list[VideoModel]) -> None:
    task_id = await submit(client, video_models, "please fail")
    outcome = await poll_task(client.video_status, task_id, what="video", timeout=10, **FAST)
    assert outcome.state == "failed" and outcome.status is not None
    assert outcome.status.status == "rendering"  # the error object decides, not the string
    assert "safety check" in outcome.message
    expired_id = await submit(client, video_models, "expire")
    expired = await poll_task(client.video_status, expired_id, what="video", timeout=10, **FAST)
    assert expired.state == "failed" and expired.status and expired.status.status == "EXPIRED"


async def test_passing_failures_keep_polling(
    fake: FakeMedia, client: MediaClient, video_models: list[VideoModel]
) -> None:
    task_id = await submit(client, video_models, "a horse")
    busy = Answer(503, {"content-type": "text/plain"}, b"busy")
    fake.enqueue(f"/api/ai/video/generations/{task_id}", *[busy] * 3)  # one status call's retries all fail
    outcome = await poll_task(client.video_status, task_id, what="video", timeout=10, **FAST)
    assert outcome.state == "finished"


async def test_cancellable(client: MediaClient, video_models: list[VideoModel]) -> None:
    task_id = await submit(client, video_models, "a slow horse")
    with anyio.move_on_after(0.2) as scope:
        await poll_task(client.video_status, task_id, what="video", timeout=60, **FAST)
    assert scope.cancelled_caught
