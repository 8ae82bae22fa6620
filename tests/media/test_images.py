"""Image checks and previews (Pillow), including decompression bombs."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest

from aitoearn_mcp._errors import InputError
from aitoearn_mcp.media._images import MAX_PREVIEW_BYTES, MAX_PREVIEW_SIDE, inspect_image, preview, sniffed_mime

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


def _encoded(image: Any, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _mean_difference(a: Any, b: Any) -> float:
    """Mean absolute difference per pixel and channel, in levels of 0-255."""
    from PIL import ImageChops, ImageStat

    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / len(a.getbands())


def _opened(data: bytes) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _fine_drawing(size: tuple[int, int]) -> Any:
    """RGBA: stripes 3 and 5 px apart (what a careless downscale turns into moiré), a fractal,
    and transparency that fades across."""
    from PIL import Image, ImageDraw

    width, height = size
    columns, rows = Image.new("L", size), Image.new("L", size)
    for x in range(0, width, 3):
        ImageDraw.Draw(columns).line([(x, 0), (x, height)], fill=255)
    for y in range(0, height, 5):
        ImageDraw.Draw(rows).line([(0, y), (width, y)], fill=255)
    fractal = Image.effect_mandelbrot(size, (-2.2, -1.4, 0.8, 1.4), 100)
    return Image.merge("RGBA", (columns, rows, fractal, Image.linear_gradient("L").resize(size)))


def test_downscaled_preview_stays_close_to_a_reference_resize() -> None:
    """The scaling alone (a PNG preview is lossless) against Lanczos: 5.6 levels here with
    bilinear (2.2 bicubic); nearest neighbour gave 23, a box filter 15, half the resolution 31."""
    from PIL import Image

    original = _fine_drawing((2048, 2048))
    shown = preview(_encoded(original, "PNG"))
    assert (shown.mime_type, shown.width, shown.height) == ("image/png", 1072, 1072)  # within 1.15 MP
    decoded = _opened(shown.data)
    assert decoded.mode == "RGBA"  # the transparency is kept
    reference = original.resize(decoded.size, Image.Resampling.LANCZOS)
    assert _mean_difference(decoded, reference) < 8
    assert _mean_difference(decoded.getchannel("A"), reference.getchannel("A")) < 1


@pytest.mark.parametrize(("size", "levels"), [((2048, 2048), 0), ((3840, 2160), 0), ((1536, 1024), 1)])
def test_scaling_in_two_bands_gives_the_pixels_of_one_resize(size: tuple[int, int], levels: int) -> None:
    """The preview is scaled in two bands on two threads: the same pixels as one bilinear resize
    where the cut falls on a source row (2048² to 1072², 4K to 1429×804), within a level where
    none is near the middle (1536×1024 to 1313×875). Opaque RGBA: a lossless PNG preview."""
    from PIL import Image, ImageChops

    original = _fine_drawing(size)
    original.putalpha(255)
    shown = preview(_encoded(original, "PNG"))
    assert shown.mime_type == "image/png"
    reference = original.resize((shown.width, shown.height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    differences = ImageChops.difference(_opened(shown.data), reference).getextrema()
    assert max(high for _, high in differences) == levels


def test_photo_preview_loses_no_more_than_a_quality_85_jpeg() -> None:
    """A photo's preview is a JPEG: against a Lanczos resize, no further off than that resize
    saved at quality 85 (+0.4 levels; quality 60 came out 0.6-0.7 further)."""
    from PIL import Image, ImageFilter

    size = (2048, 2048)
    grain = Image.effect_noise(size, 60).filter(ImageFilter.GaussianBlur(1.5))
    original = Image.merge("RGB", (Image.linear_gradient("L").resize(size), grain,
                                   Image.effect_mandelbrot(size, (-2.2, -1.4, 0.8, 1.4), 100)))  # fmt: skip
    shown = preview(_encoded(original, "PNG"))
    assert shown.mime_type == "image/jpeg" and (shown.width, shown.height) == (1072, 1072)
    reference = original.resize((shown.width, shown.height), Image.Resampling.LANCZOS)
    floor = _mean_difference(_opened(_encoded(reference, "JPEG", quality=85)), reference)
    assert _mean_difference(_opened(shown.data), reference) < floor + 0.4


def test_large_jpeg_decodes_at_reduced_scale_and_a_cut_one_is_still_refused() -> None:
    from PIL import Image

    original = Image.effect_mandelbrot((3840, 2160), (-2.2, -1.4, 0.8, 1.4), 100).convert("RGB")
    data = _encoded(original, "JPEG", quality=90)
    shown = preview(data)
    assert (shown.width, shown.height) == (1429, 804)  # within 1.15 MP
    assert (shown.original.width, shown.original.height) == (3840, 2160)  # the full size, not the draft's
    reference = original.resize((1429, 804), Image.Resampling.LANCZOS)
    assert _mean_difference(_opened(shown.data), reference) < 1.5
    with pytest.raises(InputError, match="damaged or cut short"):
        preview(data[: len(data) - 2000])


def test_exif_orientation_is_applied() -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: shown rotated a quarter turn
    landscape = Image.effect_mandelbrot((3000, 1500), (-2.2, -1.4, 0.8, 1.4), 100).convert("RGB")
    shown = preview(_encoded(landscape, "JPEG", exif=exif))
    assert (shown.width, shown.height) == (758, 1516)
    assert _opened(shown.data).size == (758, 1516)


def test_sniffed_mime() -> None:
    from PIL import Image

    tiny = Image.new("RGB", (4, 4))
    assert [sniffed_mime(_encoded(tiny, f)) for f in ("PNG", "JPEG", "WEBP", "GIF")] == [
        "image/png", "image/jpeg", "image/webp", "image/gif"]  # fmt: skip
    assert sniffed_mime(b"<html>nope</html>") is None and sniffed_mime(b"") is None


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
