from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from pydantic import SecretStr

from aitoearn_mcp.media._client import MediaClient
from aitoearn_mcp.media._models import ImageEditModel, ImageModel, VideoModel, parse_items

from .fake_media import IMAGE_EDIT, IMAGE_GENERATION, KEY, VIDEO_GENERATION, FakeMedia


@pytest.fixture
def fake() -> Iterator[FakeMedia]:
    server = FakeMedia().start()
    yield server
    server.stop()


@pytest.fixture
async def http(fake: FakeMedia) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=fake.url, timeout=httpx2.Timeout(10.0)) as client:
        yield client


@pytest.fixture
def client(http: httpx2.AsyncClient) -> MediaClient:
    return MediaClient(http, SecretStr(KEY), backoff_base=0.01)


@pytest.fixture
def image_models() -> list[ImageModel]:
    return parse_items(ImageModel, IMAGE_GENERATION)


@pytest.fixture
def edit_models() -> list[ImageEditModel]:
    return parse_items(ImageEditModel, IMAGE_EDIT)


@pytest.fixture
def video_models() -> list[VideoModel]:
    return parse_items(VideoModel, VIDEO_GENERATION)
