"""The allowlist (AITOEARN_MODELS) and the daily cap (AITOEARN_MAX_CREDITS_PER_DAY) on the media
tools, through real MCP clients against the fake media relay: list_models shows only the allowed
image and video models and says the allowlist; generate_video refuses a model outside it, and a
video that would take the key's day past the cap, before anything is sent; a video counts its
price (or the points the relay reported) toward the day once submitted, gives it back when it
never was, and a video taken over by a restarted server is not counted twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from .media.fake_media import Answer, FakeMedia
from .test_generate_video import FAST, SUBMIT, fake, local, running, stdio, structured, texts

pytestmark = pytest.mark.anyio
__all__ = ["fake"]  # the fixture, shared with test_generate_video

SEEDANCE_ONLY = ("seedance-*",)  # seedance-2-fast-beta; not doubao-seedance-2-0-260128, nor any image model
CAPPED = "this key has used about"


def upstream(fake: FakeMedia) -> list[str]:
    """Every request past the public catalogues: an upload, a submit, a poll."""
    return [r.path for r in fake.requests if not r.path.startswith("/api/ai/models/")]


def stores(tmp_path: Path) -> dict[str, str]:
    return {"memory": "memory", "sqlite": str(tmp_path / "state" / "store.sqlite3")}


async def test_list_models_shows_only_the_allowed_media_models_and_says_the_allowlist(
    fake: FakeMedia, tmp_path: Path
) -> None:
    async with local(fake, tmp_path, allowed_models=SEEDANCE_ONLY) as client:
        videos = await client.call_tool("list_models", {"kind": "video"})
        images = await client.call_tool("list_models", {"kind": "image"})
        hidden = await client.call_tool("list_models", {"kind": "video", "detail": "happyhorse-1.1"})
        hidden_image = await client.call_tool("list_models", {"kind": "image", "detail": "gpt-image-2"})
        shown = await client.call_tool("list_models", {"kind": "video", "detail": "seedance-2-fast-beta"})
    assert [m["name"] for m in structured(videos)["models"]] == ["seedance-2-fast-beta"]
    assert "happyhorse" not in texts(videos) and "doubao" not in texts(videos)
    assert structured(images)["models"] == [] and "gpt-image-2" not in texts(images)
    for result in (videos, images):
        assert structured(result)["allowed"] == ["seedance-*"]
        assert "Only these models are allowed here (AITOEARN_MODELS): seedance-*." in texts(result)
    for result, name in ((hidden, "happyhorse-1.1"), (hidden_image, "gpt-image-2")):
        assert result.is_error and f"`detail` {name!r} is not allowed on this server" in texts(result)
        assert "AITOEARN_MODELS=seedance-*" in texts(result)
    assert "the allowed video models in the catalogue are seedance-2-fast-beta" in texts(hidden)
    assert not shown.is_error and structured(shown)["entry"]["name"] == "seedance-2-fast-beta"


async def test_without_an_allowlist_every_media_model_is_listed(fake: FakeMedia, tmp_path: Path) -> None:
    async with local(fake, tmp_path) as client:
        videos = await client.call_tool("list_models", {"kind": "video"})
    assert len(structured(videos)["models"]) == 5 and "allowed" not in structured(videos)
    assert "AITOEARN_MODELS" not in texts(videos)


@pytest.mark.parametrize("model", ["happyhorse-1.1", "HappyHorse-1.1", "doubao-seedance-2-0-260128", "no-such-model"])
async def test_a_video_model_outside_the_allowlist_is_refused_before_anything_is_sent(
    fake: FakeMedia, tmp_path: Path, model: str
) -> None:
    async with local(fake, tmp_path, allowed_models=SEEDANCE_ONLY) as client:
        result = await client.call_tool("generate_video", {**FAST, "model": model})
    words = texts(result)
    assert result.is_error and f"`model` {model!r} is not allowed on this server" in words, words
    assert "AITOEARN_MODELS=seedance-*" in words and "Nothing was sent." in words
    assert "the allowed video models in the catalogue are seedance-2-fast-beta" in words
    assert upstream(fake) == []


async def test_an_allowlist_naming_no_listed_video_model_refuses_every_video(fake: FakeMedia, tmp_path: Path) -> None:
    async with local(fake, tmp_path, allowed_models=("gpt-*",)) as client:
        result = await client.call_tool("generate_video", FAST)
    assert result.is_error and "no video model in the catalogue is allowed on this server" in texts(result)
    assert "AITOEARN_MODELS=gpt-*" in texts(result) and upstream(fake) == []


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_video_counts_its_price_toward_the_day_and_the_next_is_refused(
    fake: FakeMedia, tmp_path: Path, store: str
) -> None:
    fake.video_points = None  # the relay says nothing of its charge: the catalogue's price (48) is counted
    settings: dict[str, Any] = {"conversations": stores(tmp_path)[store], "max_credits_per_day": 60.0}
    async with local(fake, tmp_path, **settings) as client:
        first = await client.call_tool("generate_video", {**FAST, "wait_seconds": 30})
        second = await client.call_tool("generate_video", {**FAST, "wait_seconds": 30})
    assert structured(first)["status"] == "complete", texts(first)
    assert structured(first)["credits"] == {"price": "48", "today": "48", "daily_limit": "60"}  # beside the price
    assert f"today (UTC) {CAPPED} 48 of its 60 credits (AITOEARN_MAX_CREDITS_PER_DAY)" in texts(first)
    words = texts(second)
    assert second.is_error and f"{CAPPED} 48 of its 60 credits today" in words, words
    assert "may cost up to 48 credits" in words and "seedance-2-fast-beta" in words
    assert "AITOEARN_MAX_CREDITS_PER_DAY" in words and "Nothing was sent." in words
    assert "shorter `duration`" in words and "max_tokens" not in words  # a fix that fits a video
    assert len(fake.to(SUBMIT)) == 1
    if store == "sqlite":  # the count is in the file: a new server process sees it
        async with local(fake, tmp_path, **settings) as client:
            again = await client.call_tool("generate_video", FAST)
        assert again.is_error and f"{CAPPED} 48 of its 60" in texts(again) and len(fake.to(SUBMIT)) == 1


async def test_the_points_the_relay_reported_are_what_the_day_counts(fake: FakeMedia, tmp_path: Path) -> None:
    fake.video_points = 10  # charged less than the catalogue's 48
    async with local(fake, tmp_path, conversations="memory", max_credits_per_day=60.0) as client:
        first = await client.call_tool("generate_video", {**FAST, "wait_seconds": 30})
        second = await client.call_tool("generate_video", {**FAST, "wait_seconds": 30})  # 10 + 48 fits under 60
        third = await client.call_tool("generate_video", FAST)  # 20 + 48 does not
    assert structured(first)["credits"] == {"price": "48", "points": "10", "today": "10", "daily_limit": "60"}
    assert structured(second)["credits"]["today"] == "20"
    assert third.is_error and f"{CAPPED} 20 of its 60 credits today" in texts(third)
    assert len(fake.to(SUBMIT)) == 2


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_video_that_fails_before_it_is_submitted_gives_its_reservation_back(
    fake: FakeMedia, tmp_path: Path, store: str
) -> None:
    fake.enqueue(SUBMIT, Answer.error(12001, "余额不足"))  # the relay refuses the submit: no task, nothing spent
    settings: dict[str, Any] = {"conversations": stores(tmp_path)[store], "max_credits_per_day": 60.0}
    async with local(fake, tmp_path, **settings) as client:
        failed = await client.call_tool("generate_video", {**FAST, "wait_seconds": 30})
        after = await client.call_tool("generate_video", {**FAST, "wait_seconds": 30})  # 48 fits again
    assert failed.is_error and structured(failed)["status"] == "failed", texts(failed)
    assert "not submitted" in texts(failed) and structured(failed)["credits"]["today"] == "0"
    assert structured(after)["status"] == "complete" and structured(after)["credits"]["today"] == "48"
    assert len(fake.to(SUBMIT)) == 2


async def test_todays_total_is_shown_while_a_video_renders_and_once_collected(fake: FakeMedia, tmp_path: Path) -> None:
    fake.video_seconds = 8
    settings: dict[str, Any] = {"conversations": "memory", "max_credits_per_day": 48.0, "allowed_models": SEEDANCE_ONLY}
    async with local(fake, tmp_path, **settings) as client:
        reply_id = running(await client.call_tool("generate_video", {**FAST, "wait_seconds": 0.5}))
        rendering = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 1})
        collected = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
    assert structured(rendering)["status"] == "running" and structured(rendering)["stage"] == "rendering"
    assert structured(rendering)["credits"]["today"] == "48"  # counted once submitted (exactly the cap: allowed)
    assert "used about 48 of its 48 credits" in texts(rendering)
    assert structured(collected)["status"] == "complete" and structured(collected)["credits"]["today"] == "48"


async def test_a_video_taken_over_by_a_restarted_server_is_not_counted_twice(fake: FakeMedia, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    fake.video_seconds = 6
    params = stdio(fake, folder, AITOEARN_CONVERSATIONS=str(tmp_path / "state" / "store.sqlite3"),
                   AITOEARN_MAX_CREDITS_PER_DAY="100")  # fmt: skip
    async with Client(params) as client:
        reply_id = running(await client.call_tool("generate_video", {**FAST, "wait_seconds": 0.5}))
    async with Client(params) as client:  # the host starts the server again: it finishes the video
        collected = await client.call_tool("get_reply", {"reply_id": reply_id, "wait_seconds": 30})
        refused = await client.call_tool("generate_video", {**FAST, "duration": 8})  # 48 + 64 > 100
    assert structured(collected)["status"] == "complete", texts(collected)
    assert structured(collected)["credits"]["today"] == "48"
    assert refused.is_error and f"{CAPPED} 48 of its 100 credits today" in texts(refused)  # not 96
    assert len(fake.to(SUBMIT)) == 1


# --- generate_image -------------------------------------------------------------------------------

PICTURE = {"prompt": "A lighthouse at dusk.", "size": "1920x1920"}  # 2 credits


async def test_an_image_model_outside_the_allowlist_is_refused_before_anything_is_sent(
    fake: FakeMedia, tmp_path: Path
) -> None:
    async with local(fake, tmp_path, allowed_models=SEEDANCE_ONLY) as client:
        named = await client.call_tool("generate_image", {**PICTURE, "model": "gpt-image-2"})
        default = await client.call_tool("generate_image", PICTURE)  # the default model is outside it too
    for result in (named, default):  # the catalogue's one image model is outside it
        words = texts(result)
        assert result.is_error and "no image model in the catalogue is allowed on this server" in words, words
        assert "AITOEARN_MODELS=seedance-*" in words and "Nothing was sent." in words
    assert upstream(fake) == []
    async with local(fake, tmp_path, allowed_models=("seedance-*", "gpt-image-*")) as client:
        other = await client.call_tool("generate_image", {**PICTURE, "model": "gpt-image-3"})
        allowed = await client.call_tool("generate_image", PICTURE)
    assert other.is_error and "`model` 'gpt-image-3' is not in the image-generation catalogue" in texts(other)
    assert not allowed.is_error, texts(allowed)
    assert len(fake.to("/api/ai/image/generate/async")) == 1  # the allowed one only


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_an_image_counts_its_price_toward_the_day_and_the_next_is_refused(
    fake: FakeMedia, tmp_path: Path, store: str
) -> None:
    async with local(fake, tmp_path, max_credits_per_day=3.0, conversations=stores(tmp_path)[store]) as client:
        first = await client.call_tool("generate_image", PICTURE)
        second = await client.call_tool("generate_image", PICTURE)  # 2 + 2 > 3
    assert not first.is_error, texts(first)
    assert structured(first)["credits"] == {"price": "2", "points": "1", "today": "2", "daily_limit": "3"}
    assert "today (UTC) this key has used about 2 of its 3 credits" in texts(first)
    assert second.is_error and CAPPED in texts(second) and "AITOEARN_MAX_CREDITS_PER_DAY" in texts(second)
    assert "choose a smaller `size`" in texts(second) and "Nothing was sent." in texts(second)
    assert len(fake.to("/api/ai/image/generate/async")) == 1
