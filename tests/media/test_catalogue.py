"""Catalogue parsing (lenient), prices, and the cache (TTL, stale on error, one shared fetch)."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aitoearn_mcp._errors import UnavailableError
from aitoearn_mcp.media._catalogue import MediaCatalogue
from aitoearn_mcp.media._client import MediaClient
from aitoearn_mcp.media._models import ImageModel, VideoModel, parse_items
from aitoearn_mcp.media._prices import image_price, video_price

from .fake_media import IMAGE_SIZES, Answer, FakeMedia

pytestmark = pytest.mark.anyio


async def test_fetches_the_three_catalogues_without_a_key(fake: FakeMedia, client: MediaClient) -> None:
    images = await client.image_generation_models()
    edits = await client.image_edit_models()
    videos = await client.video_generation_models()
    assert [m.name for m in images] == ["gpt-image-2"]
    assert images[0].sizes == IMAGE_SIZES and len(images[0].sizes) == 27
    assert images[0].styles == [] and images[0].qualities == ["auto", "high", "medium", "low"]
    assert images[0].model_extra == {"futureField": {"kept": True}}
    assert edits[0].max_input_images == 14
    names = [m.name for m in videos]
    assert {"seedance-2-fast-beta", "happyhorse-1.1", "doubao-seedance-2-0-260128", "grok-imagine-video"} <= set(names)
    horse = next(m for m in videos if m.name == "happyhorse-1.1")
    assert horse.resolutions == ["720P", "1080P"]  # kept as given
    assert horse.input_constraints is None
    seedance = next(m for m in videos if m.name == "seedance-2-fast-beta")
    assert seedance.input_constraints and seedance.input_constraints.videos
    assert seedance.input_constraints.videos.formats == ["mp4", "mov"]
    assert seedance.defaults.aspect_ratio == "16:9"
    assert all("x-api-key" not in r.headers for r in fake.requests)  # public: no key sent


def test_lenient_parsing_keeps_what_it_can() -> None:
    raw = [
        {"name": "odd", "durations": "five", "resolutions": ["720p"], "pricing": [{"price": "3.5"}], "new": 1},
        {"label": "no name"},
        "not an object",
        {"name": "bare"},
    ]
    models = parse_items(VideoModel, raw)
    assert [m.name for m in models] == ["odd", "bare"]
    assert models[0].durations == [] and models[0].resolutions == ["720p"]  # the bad field alone is dropped
    assert models[0].pricing[0].price == Decimal("3.5")
    assert models[0].model_extra == {"new": 1}
    assert models[1].modes == [] and models[1].defaults.resolution is None


def test_image_prices(image_models: list[ImageModel]) -> None:
    model = image_models[0]
    assert image_price(model, "1024x1024") == Decimal(1)
    assert image_price(model, "2560X1440") == Decimal(2)
    assert image_price(model, "3840x2160") == Decimal(4)
    assert image_price(model, "999x999") is None
    assert image_price(model, None) is None
    assert model.pricing[0].origin_price == Decimal("21.1")


def test_video_prices(video_models: list[VideoModel]) -> None:
    by = {m.name: m for m in video_models}
    fast = by["seedance-2-fast-beta"]
    assert video_price(fast, resolution="480p", seconds=4) == Decimal(22)
    assert video_price(fast, resolution="720p", seconds=15) == Decimal(120)
    assert video_price(fast, resolution="720p", seconds=3) is None  # no row for 3 s
    assert video_price(fast, resolution="1080p", seconds=6) is None
    horse = by["happyhorse-1.1"]
    assert video_price(horse, resolution="720p", seconds=5, mode="text2video") == Decimal(65)  # case-insensitive
    assert video_price(horse, resolution="1080P", seconds=5, mode="video2video") == Decimal(230)
    doubao = by["doubao-seedance-2-0-260128"]
    assert video_price(doubao, resolution="4k", seconds=10) == Decimal(720)
    grok = by["grok-imagine-video"]
    assert video_price(grok, resolution="720p", seconds=10, mode="multi-image2video") == Decimal(80)
    assert video_price(grok, resolution="720p", seconds=12, mode="multi-image2video") is None  # priced only 1-10 s
    assert video_price(grok, resolution="720p", seconds=9, mode="video2video") is None  # priced only 1-8 s
    assert video_price(grok, resolution="720p", seconds=None) is None


@given(
    per_second=st.decimals(min_value=Decimal("0.1"), max_value=Decimal(100), places=2),
    seconds=st.integers(min_value=1, max_value=30),
)
def test_rows_without_duration_are_per_second(per_second: Decimal, seconds: int) -> None:
    model = VideoModel.model_validate(
        {
            "name": "m",
            "pricing": [{"resolution": "720p", "price": str(per_second)}, {"resolution": "1080p", "price": "999"}],
        }
    )
    assert video_price(model, resolution="720P", seconds=seconds) == per_second * seconds


@given(
    durations=st.sets(st.integers(min_value=1, max_value=20), min_size=1),
    seconds=st.integers(min_value=1, max_value=20),
)
def test_rows_with_duration_are_whole_prices(durations: set[int], seconds: int) -> None:
    rows = [{"duration": d, "price": d * 7 + 1} for d in durations]  # deliberately not linear
    model = VideoModel.model_validate({"name": "m", "pricing": rows})
    expected = Decimal(seconds * 7 + 1) if seconds in durations else None
    assert video_price(model, resolution=None, seconds=seconds) == expected


@given(mode=st.sampled_from(["text2video", "image2video", "video2video", "multi-ref"]))
def test_mode_rows_win_over_generic_rows(mode: str) -> None:
    model = VideoModel.model_validate({"name": "m", "pricing": [{"price": 1}, {"mode": "video2video", "price": 5}]})
    assert video_price(model, resolution="720p", seconds=2, mode=mode) == Decimal(10 if mode == "video2video" else 2)


async def test_cache_serves_within_ttl_and_concurrent_callers_share_one_fetch(
    fake: FakeMedia, client: MediaClient
) -> None:
    catalogue = MediaCatalogue(ttl=300)
    results = []

    async def get() -> None:
        results.append(await catalogue.video_models(client))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(get)
    assert len(fake.to("/api/ai/models/video/generation")) == 1
    assert all(r is results[0] for r in results)
    await catalogue.video_models(client)
    assert len(fake.to("/api/ai/models/video/generation")) == 1
    fresh = await catalogue.video_models(client, refresh=True)
    assert len(fake.to("/api/ai/models/video/generation")) == 2 and not fresh.stale


async def test_stale_on_error_then_recovers(fake: FakeMedia, client: MediaClient) -> None:
    catalogue = MediaCatalogue(ttl=0, failure_backoff=0)
    first = await catalogue.image_models(client)
    assert first.names == ("gpt-image-2",) and first.get("gpt-image-2") is not None
    fake.enqueue("/api/ai/models/image/generation", *[Answer(503, {"content-type": "text/html"},
                 b"<html><title>503 Service Unavailable</title></html>")] * 3)  # fmt: skip
    stale = await catalogue.image_models(client)
    assert stale.stale and isinstance(stale.error, UnavailableError)
    assert stale.names == ("gpt-image-2",)
    assert "503" in str(stale.error)
    again = await catalogue.image_models(client)
    assert not again.stale


async def test_failure_with_nothing_cached_is_raised(fake: FakeMedia, client: MediaClient) -> None:
    catalogue = MediaCatalogue(ttl=0, failure_backoff=60)
    fake.enqueue("/api/ai/models/image/edit", *[Answer.json({"oops": True})] * 3)
    with pytest.raises(Exception, match="not the relay's JSON envelope"):
        await catalogue.image_edit_models(client)
    with pytest.raises(Exception, match="not the relay's JSON envelope"):  # within the backoff: not fetched again
        await catalogue.image_edit_models(client)
    assert len(fake.to("/api/ai/models/image/edit")) == 1
