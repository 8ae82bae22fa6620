"""Uploads: sign, the bytes straight to storage without the key, confirm."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from pydantic import SecretStr

from aitoearn_mcp._errors import InputError, RelayError, RequestRejectedError
from aitoearn_mcp.media._client import MediaClient, content_type_for

from .fake_media import KEY, FakeMedia

pytestmark = pytest.mark.anyio


@pytest.fixture
def clip(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks, not a multiple of the chunk size
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


async def test_upload_arrives_byte_for_byte_without_the_key(fake: FakeMedia, client: MediaClient,
                                                            clip: tuple[int, bytes]) -> None:  # fmt: skip
    fd, data = clip
    os.lseek(fd, 1000, os.SEEK_SET)  # the descriptor's position does not matter
    asset = await client.upload(fd, "/some/dir/clip.mp4")
    assert asset.url == f"{fake.url}/files/asset-asset-1"  # the confirmed URL
    assert asset.id == "asset-1" and asset.size == len(data) and asset.status == "confirmed"
    assert fake.stored["asset-1"] == data
    headers = fake.storage_headers["asset-1"]
    assert "x-api-key" not in headers and "authorization" not in headers
    assert not any(KEY in value for value in headers.values())
    assert headers["content-type"] == "video/mp4" and headers["content-length"] == str(len(data))
    sign = fake.to("/api/assets/uploadSign")[0]
    assert sign.json() == {"filename": "clip.mp4", "type": "temp", "size": len(data)}
    assert sign.headers["x-api-key"] == KEY
    assert fake.to("/api/assets/asset-1/confirm")[0].headers["x-api-key"] == KEY


async def test_default_key_header_on_the_shared_client_is_stripped(fake: FakeMedia, clip: tuple[int, bytes]) -> None:
    fd, data = clip
    async with httpx2.AsyncClient(base_url=fake.url, headers={"x-api-key": KEY, "x-other": f"Bearer {KEY}"}) as http:
        await MediaClient(http, SecretStr(KEY)).upload(fd, "clip.mp4", asset_type="userMedia")
    assert fake.stored["asset-1"] == data
    assert not any(KEY in value for value in fake.storage_headers["asset-1"].values())


async def test_form_post_variant(fake: FakeMedia, client: MediaClient, clip: tuple[int, bytes]) -> None:
    fd, data = clip
    fake.upload_mode = "form"
    asset = await client.upload(fd, "clip.mp4")
    assert fake.stored["asset-1"] == data and asset.url.endswith("asset-asset-1")
    assert fake.storage_headers["asset-1"]["content-type"].startswith("multipart/form-data; boundary=")


async def test_confirm_without_url_falls_back_to_the_signed_url(fake: FakeMedia, client: MediaClient,
                                                                clip: tuple[int, bytes]) -> None:  # fmt: skip
    fake.upload_mode = "no_confirm_url"
    asset = await client.upload(clip[0], "clip.mp4")
    assert asset.url == f"{fake.url}/files/signed-asset-1"


async def test_no_upload_url_is_a_clear_error(fake: FakeMedia, client: MediaClient, clip: tuple[int, bytes]) -> None:
    fake.upload_mode = "no_url"
    with pytest.raises(RelayError, match="no uploadUrl"):
        await client.upload(clip[0], "clip.mp4")
    assert not fake.stored


async def test_storage_refusal_is_reported(fake: FakeMedia, client: MediaClient, clip: tuple[int, bytes]) -> None:
    from .fake_media import Answer

    fake.routes["/storage/asset-1"] = lambda _: Answer(  # type: ignore[assignment]
        403, {"content-type": "application/xml"},
        b"<Error><Code>SignatureDoesNotMatch</Code><Message>expired</Message></Error>")  # fmt: skip
    with pytest.raises(RequestRejectedError) as caught:
        await client.upload(clip[0], "clip.mp4")
    assert "SignatureDoesNotMatch: expired" in str(caught.value) and "403" in str(caught.value)
    assert not fake.to("/api/assets/asset-1/confirm")


async def test_not_a_regular_file(client: MediaClient, tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(InputError, match="not a regular file"):
            await client.upload(fd, "folder")
    finally:
        os.close(fd)


def test_content_types() -> None:
    assert content_type_for("a.MOV") == "video/quicktime"
    assert content_type_for("a.mp3") == "audio/mpeg"
    assert content_type_for("a.jpeg") == "image/jpeg"
    assert content_type_for("noext") == "application/octet-stream"


async def test_file_that_shrinks_mid_upload(fake: FakeMedia, client: MediaClient, tmp_path: Path) -> None:
    path = tmp_path / "growing.mp4"
    path.write_bytes(b"a" * 3_000_000)
    fd = os.open(path, os.O_RDONLY)

    def sign_then_truncate(request):  # type: ignore[no-untyped-def]
        answer = fake._sign(request.json())
        os.truncate(path, 1000)  # another process cuts the file after it was measured
        return answer

    fake.routes["/api/assets/uploadSign"] = sign_then_truncate
    try:
        with pytest.raises(RelayError, match="got shorter"):
            await client.upload(fd, "growing.mp4")
    finally:
        os.close(fd)
    assert not fake.to("/api/assets/asset-1/confirm")
