"""Downloads and saved bytes: whole files only, size-bounded, never overwriting, nothing left on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx2
import pytest
from pydantic import SecretStr

from aitoearn_mcp._errors import InputError, RequestRejectedError, UnavailableError
from aitoearn_mcp.media._download import download, safe_filename, save_bytes

from .fake_media import KEY, VIDEO_BYTES, FakeMedia, big_png, small_png

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024 * 1024


async def test_download_equals_what_was_served(fake: FakeMedia, http: httpx2.AsyncClient, tmp_path: Path) -> None:
    saved = await download(http, f"{fake.url}/files/image.png", tmp_path, max_bytes=LIMIT)
    assert saved.path == tmp_path / "image.png" and saved.path.read_bytes() == big_png()
    assert saved.size == len(big_png()) and saved.media_type == "image/png"
    assert stat.S_IMODE(saved.path.stat().st_mode) == 0o600
    video = await download(http, f"{fake.url}/files/vid-9.mp4", tmp_path, max_bytes=LIMIT, name="clip")
    assert video.path.name == "clip.mp4" and video.path.read_bytes() == VIDEO_BYTES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "image.png"]  # no temporary files left


async def test_never_overwrites(fake: FakeMedia, http: httpx2.AsyncClient, tmp_path: Path) -> None:
    (tmp_path / "small.png").write_bytes(b"mine")
    first = await download(http, f"{fake.url}/files/small.png", tmp_path, max_bytes=LIMIT)
    second = await download(http, f"{fake.url}/files/small.png", tmp_path, max_bytes=LIMIT)
    assert (first.path.name, second.path.name) == ("small-1.png", "small-2.png")
    assert (tmp_path / "small.png").read_bytes() == b"mine"


async def test_truncated_and_oversized_leave_nothing(fake: FakeMedia, http: httpx2.AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match="cut short"):
        await download(http, f"{fake.url}/files/truncated.bin", tmp_path, max_bytes=LIMIT)
    with pytest.raises(RequestRejectedError, match="over the limit of 1,000,000 bytes"):  # declared too large
        await download(http, f"{fake.url}/files/big.bin", tmp_path, max_bytes=1_000_000)
    assert list(tmp_path.iterdir()) == []


async def test_oversized_without_a_declared_length(fake: FakeMedia, http: httpx2.AsyncClient, tmp_path: Path) -> None:
    """A server that sends no Content-Length is stopped at the limit while streaming."""
    with pytest.raises(RequestRejectedError, match="over the limit"):
        await download(http, f"{fake.url}/files/stream.bin", tmp_path, max_bytes=100_000)
    assert list(tmp_path.iterdir()) == []
    whole = await download(http, f"{fake.url}/files/stream.bin", tmp_path, max_bytes=300_000)
    assert whole.size == 300_000 and whole.path.read_bytes() == b"z" * 300_000


async def test_redirects_checked_and_keyless(fake: FakeMedia, tmp_path: Path) -> None:
    async with httpx2.AsyncClient(headers={"x-api-key": KEY}) as http:
        saved = await download(http, f"{fake.url}/files/redirect", tmp_path, max_bytes=LIMIT, key=SecretStr(KEY))
        assert saved.path.read_bytes() == small_png()
        with pytest.raises(InputError, match="not an https URL"):
            await download(http, f"{fake.url}/files/unsafe-redirect", tmp_path, max_bytes=LIMIT)
    assert all("x-api-key" not in r.headers for r in fake.requests)


async def test_refusals(fake: FakeMedia, http: httpx2.AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an https URL"):
        await download(http, "http://example.com/a.png", tmp_path, max_bytes=LIMIT)
    with pytest.raises(InputError, match="does not exist"):
        await download(http, f"{fake.url}/files/small.png", tmp_path / "missing", max_bytes=LIMIT)
    with pytest.raises(RequestRejectedError, match="HTTP 404"):
        await download(http, f"{fake.url}/files/gone.png", tmp_path, max_bytes=LIMIT)
    assert list(tmp_path.iterdir()) == []


async def test_save_bytes(tmp_path: Path) -> None:
    first = await save_bytes(small_png(), tmp_path, "../../etc/passwd", media_type="image/png")
    assert first.path.parent == tmp_path and first.path.name == "passwd.png"
    assert first.path.read_bytes() == small_png() and first.media_type == "image/png"
    again = await save_bytes(b"x", tmp_path, "passwd.png")
    assert again.path.name == "passwd-1.png"


def test_safe_filenames() -> None:
    assert safe_filename("/u1/ai/images/gpt-image-2/202607/abc.png") == "abc.png"
    assert safe_filename("..%2F..%2Fsecret") == "secret"
    assert safe_filename(".hidden") == "hidden"
    assert safe_filename("") == "download"
    assert safe_filename("a b;c.mp4") == "a_b_c.mp4"
    assert safe_filename("noext", media_type="video/mp4") == "noext.mp4"
    assert len(safe_filename("x" * 500 + ".png")) <= 120
    assert os.sep not in safe_filename("a\\b\\c.png")
