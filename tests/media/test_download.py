"""Downloads and saved bytes: whole files only, size-bounded, never overwriting, nothing left on failure."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import anyio
import httpx2
import pytest
from pydantic import SecretStr

from aitoearn_mcp._errors import InputError, RequestRejectedError, UnavailableError
from aitoearn_mcp.media._download import Arriving, checked_while_saved, download, fetch, safe_filename, save_bytes
from aitoearn_mcp.media._images import inspect_image, preview

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


def _reading(arriving: Arriving, *sizes: int) -> tuple[threading.Thread, list[bytes]]:
    """A thread reading ``arriving`` in ``sizes``, as a decode would."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(arriving.read(size) for size in sizes), daemon=True)
    reader.start()
    return reader, got


def test_arriving_reads_wait_for_the_bytes_or_the_end() -> None:
    arriving = Arriving()
    reader, got = _reading(arriving, 4, 6)
    arriving.add(b"ab")
    reader.join(0.2)
    assert reader.is_alive() and got == []  # two of the four bytes asked for: still waiting
    arriving.add(b"cdef")
    arriving.end()  # the second read gets what came, not the six it asked for
    reader.join(5)
    assert got == [b"abcd", b"ef"] and arriving.read() == b"" and arriving.value() == b"abcdef"
    assert (arriving.seek(1), arriving.readline(), arriving.tell()) == (1, b"bcdef", 6)  # io's readline


async def test_fetch_into_ends_the_arriving_bytes_however_it_ends(fake: FakeMedia, http: httpx2.AsyncClient) -> None:
    """A reader of a download that breaks off gets what came, then the end: it never waits on."""
    arriving = Arriving()
    reader, got = _reading(arriving, 1 << 30)
    with pytest.raises(UnavailableError, match="cut short"):
        await fetch(http, f"{fake.url}/files/truncated.bin", max_bytes=LIMIT, into=arriving)
    reader.join(5)
    assert not reader.is_alive() and len(got[0]) == arriving.size > 0
    whole = Arriving()
    data, media_type = await fetch(http, f"{fake.url}/files/image.png", max_bytes=LIMIT, into=whole)
    assert data == whole.value() == big_png() and media_type == "image/png"


def test_preview_of_arriving_bytes_equals_the_preview_of_the_whole() -> None:
    """Decoded as the bytes come, in small pieces from another thread: the same preview."""
    data, arriving = big_png(), Arriving()
    feeder = threading.Thread(target=lambda: [arriving.add(data[at : at + 7000]) for at in range(0, len(data), 7000)]
                              + [arriving.end()], daemon=True)  # fmt: skip
    feeder.start()
    shown = preview(arriving)
    feeder.join(5)
    assert shown == preview(data)
    cut = Arriving.whole(data[: len(data) // 2])
    with pytest.raises(InputError, match="damaged or cut short"):
        preview(cut)


async def test_a_download_cancelled_midway_ends_the_decode_and_leaves_nothing(tmp_path: Path) -> None:
    """The decode waits on the arriving bytes in a thread that cannot be cancelled: ending the
    bytes is what lets the cancelled call return."""
    data = big_png()

    async def stalls(into: Arriving) -> tuple[bytes, str | None]:
        into.add(data[: len(data) // 3])
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.move_on_after(0.5) as scope:
        await checked_while_saved(stalls, inspect_image, tmp_path, lambda data, served: "image.png")
    assert scope.cancelled_caught and list(tmp_path.iterdir()) == []
    _, info, saved = await checked_while_saved(lambda into: _whole(into, data), inspect_image, tmp_path,
                                               lambda data, served: "image")  # fmt: skip
    assert (info.width, info.height) == (3840, 2160) and saved is not None
    assert saved.path == tmp_path / "image.png" and saved.path.read_bytes() == data  # named from the served type


async def _whole(into: Arriving, data: bytes) -> tuple[bytes, str | None]:
    into.add(data)
    return data, "image/png"
