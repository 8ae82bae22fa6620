"""Image checks and previews (Pillow), including decompression bombs."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from aitoearn_mcp._errors import InputError
from aitoearn_mcp.media._images import MAX_PREVIEW_BYTES, MAX_PREVIEW_SIDE, inspect_image, preview

from .fake_media import big_png, small_png


def _decode(data: bytes) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.format or "", image.size


def test_preview_of_a_4k_image_fits() -> None:
    original = big_png()
    shown = preview(original)
    assert max(shown.width, shown.height) <= MAX_PREVIEW_SIDE and len(shown.data) <= MAX_PREVIEW_BYTES
    assert shown.mime_type == "image/jpeg"  # the noisy PNG does not fit as PNG
    assert _decode(shown.data) == ("JPEG", (shown.width, shown.height))
    assert (shown.original.width, shown.original.height) == (3840, 2160)
    assert original == big_png()  # untouched


def test_small_image_stays_png() -> None:
    shown = preview(small_png())
    assert shown.mime_type == "image/png" and (shown.width, shown.height) == (64, 48)
    assert _decode(shown.data)[0] == "PNG"


def test_tight_byte_budget_still_fits() -> None:
    shown = preview(big_png(), max_bytes=50_000)
    assert len(shown.data) <= 50_000 and _decode(shown.data)[0] == "JPEG"


def test_not_an_image() -> None:
    with pytest.raises(InputError, match="not an image"):
        inspect_image(b"<html>nope</html>")
    with pytest.raises(InputError, match="damaged or cut short"):
        inspect_image(small_png()[:-30])
    assert inspect_image(small_png()).mime_type == "image/png"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [12_000, 60_000])  # over the limit, and over twice the limit
def test_decompression_bomb_is_refused(side: int) -> None:
    bomb = _png_header_only(side, side)
    with pytest.raises(InputError, match="decompression bomb"):
        inspect_image(bomb)
    with pytest.raises(InputError, match="decompression bomb"):
        preview(bomb)


def test_own_pixel_limit() -> None:
    with pytest.raises(InputError, match="over the limit of 1,000,000"):
        preview(big_png(), max_pixels=1_000_000)
