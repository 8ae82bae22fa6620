"""Image checks and previews with Pillow (imported inside the functions: the server starts
without paying for it, and runs without it until an image is handled).

``preview`` makes what a host can show: the long side at most 1,568 px and at most 1.15
megapixels (what Claude keeps of a larger image; other vision models keep less) and at most
1 MB encoded; the original bytes are never
changed (save them with ``save_bytes``). Both functions are CPU-bound: call them on a worker
thread (``anyio.to_thread.run_sync``).

Decompression bombs: an image whose header declares more than ``max_pixels`` pixels (by
default Pillow's ``Image.MAX_IMAGE_PIXELS``, about 89 million) is refused before its pixels are
decoded, with an InputError, never a crash or an out-of-memory process.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast

from .._errors import InputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from ._download import Arriving

__all__ = [
    "MAX_PREVIEW_AREA", "MAX_PREVIEW_BYTES", "MAX_PREVIEW_SIDE", "ImageInfo", "Preview", "inspect_image", "preview",
    "sniffed_mime",
]  # fmt: skip

MAX_PREVIEW_SIDE = 1568
MAX_PREVIEW_AREA = 1_150_000  # pixels: a larger image Claude scales down to this itself
MAX_PREVIEW_BYTES = 1_000_000  # 1 MB in decimal: under both readings of "1 MB"
_JPEG_QUALITIES = (85, 75, 65, 55, 45)
_FEW_COLOURS = 256  # at most this many distinct colours: drawn, not photographed; PNG keeps its edges
_ORIENTATION = 0x0112  # the EXIF tag that says how a camera held the picture
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
         "TIFF": "image/tiff"}  # fmt: skip
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"BM", "image/bmp"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))  # fmt: skip


@dataclass(frozen=True)
class ImageInfo:
    format: str | None
    mime_type: str | None
    width: int
    height: int


@dataclass(frozen=True)
class Preview:
    data: bytes = field(repr=False)
    mime_type: str
    width: int
    height: int
    original: ImageInfo


def _open(data: bytes | Arriving, max_pixels: int | None, fit: int | None = None) -> tuple[PILImage.Image, ImageInfo]:
    """The decoded image (pixels loaded) and what it is, or an InputError; ``data`` may still be
    arriving (decoded as it comes, on this worker thread). ``fit``: the side the
    image will be scaled within; a JPEG larger than twice that decodes at 1/2, 1/4 or 1/8 scale
    (libjpeg scales in the DCT: a 3840×2160 JPEG took 41 ms instead of 113, and came out as close
    to a Lanczos resize; every byte is still decoded, so a cut file is still caught). ``ImageInfo``
    keeps the full size."""
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        source = io.BytesIO(data) if isinstance(data, bytes) else cast("IO[bytes]", data)  # a file, as BytesIO is
        image = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise InputError(f"the image is refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"the data is not an image Pillow can read ({type(exc).__name__})") from None
    width, height = image.size
    if limit is not None and width * height > limit:
        image.close()
        raise InputError(
            f"the image declares {width:,}×{height:,} = {width * height:,} pixels, over the limit of {limit:,} "
            "(a decompression bomb, or simply too large to handle); it was not decoded"
        )
    if fit is not None and (target := _target(width, height, fit)) != (width, height):
        image.draft(None, target)  # does nothing but for JPEG; never smaller than ``target``
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise InputError(f"the image is refused as a decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"the image is damaged or cut short and does not decode ({exc})") from None
    fmt = image.format
    return image, ImageInfo(fmt, _MIME.get(fmt or "") or (Image.MIME.get(fmt) if fmt else None), width, height)


def _target(width: int, height: int, side: int) -> tuple[int, int]:
    """The size of ``width``×``height`` within ``side``×``side`` and MAX_PREVIEW_AREA, aspect kept."""
    scale = min(1.0, side / max(width, height), math.sqrt(MAX_PREVIEW_AREA / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _within(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The size of ``width``×``height`` fitted within ``box``, as Pillow's ``thumbnail`` fits it:
    never larger, the side that does not fill the box rounded to the nearer aspect."""
    x, y = box
    if x >= width and y >= height:
        return width, height
    aspect = width / height
    if x / y >= aspect:
        x = max(min(math.floor(y * aspect), math.ceil(y * aspect), key=lambda n: abs(aspect - n / y)), 1)
    else:
        y = max(min(math.floor(x / aspect), math.ceil(x / aspect), key=lambda n: abs(aspect - x / n) if n else 0), 1)
    return x, y


def _scaled(image: PILImage.Image, size: tuple[int, int]) -> PILImage.Image:
    """``image`` resized to ``size`` as Pillow's ``resize(size, BILINEAR, reducing_gap=2.0)``
    does it, in two horizontal bands on two threads (Pillow releases the GIL while it resamples:
    2048×2048 to 1072×1072 took 53 ms on one core). A band is the whole resize limited to its
    rows by a source box (the filter still reads across the cut), so both are the pixels of one
    resize where the cut falls on a source row, chosen so when such a row is near the middle
    (2048×2048 to 1072 and 4K to 1429×804: the same pixels; elsewhere within a level).

    Bilinear is in Pillow a true downscale filter, not point sampling: half bicubic's time, within
    1.8 levels of Lanczos on a noisy photo, 0.2 on smooth detail. From four times the size, an
    integer reduce first (one thread: the resize after it is small), as close as a fair resample;
    a reduce alone, a box average, is six times faster but lost fine lines (16.7 levels from
    Lanczos against 5.6)."""
    from PIL import Image

    if image.size == size:
        return image
    mode = image.mode
    if mode in ("LA", "RGBA"):  # resampled premultiplied, as ``resize`` does, once for both bands
        image = image.convert({"LA": "La", "RGBA": "RGBa"}[mode])
    width, height = size
    step = height // math.gcd(image.height, height)  # output rows spanning whole source rows
    cut = round(height / 2 / step) * step if 2 * step <= height else height // 2
    source_cut = cut * image.height / height
    bilinear = Image.Resampling.BILINEAR
    if cut == 0 or image.width >= 4 * width or image.height >= 4 * height:  # one row; or reduced first: cheap
        out = image.resize(size, bilinear, reducing_gap=2.0)
    else:
        with ThreadPoolExecutor(1) as other:
            upper = other.submit(image.resize, (width, cut), bilinear, (0, 0, image.width, source_cut))
            lower = image.resize((width, height - cut), bilinear, (0, source_cut, image.width, image.height))
            out = Image.new(image.mode, size)
            out.paste(upper.result(), (0, 0))
        out.paste(lower, (0, cut))
    return out.convert(mode) if out.mode != mode else out


def sniffed_mime(data: bytes) -> str | None:
    """The image type ``data``'s first bytes announce, without Pillow or decoding (to name a file
    saved while the image decodes); None when they announce none of the common types."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


def inspect_image(data: bytes | Arriving, *, max_pixels: int | None = None) -> ImageInfo:
    """Decode ``data`` fully (so a cut or corrupt file is caught) and say what it is."""
    image, info = _open(data, max_pixels)
    image.close()
    return info


def _encode(image: Any, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _as_is(image: Any, info: ImageInfo, data: bytes | Arriving, max_side: int, max_bytes: int) -> bytes | None:
    """The bytes themselves when they are the preview: a PNG or JPEG within both bounds, upright."""
    if not (
        info.format in ("PNG", "JPEG")
        and image.mode in ("RGB", "RGBA", "L", "LA", "P")
        and _target(info.width, info.height, max_side) == (info.width, info.height)
        and image.getexif().get(_ORIENTATION, 1) == 1
        and getattr(image, "n_frames", 1) == 1
    ):
        return None
    whole = data if isinstance(data, bytes) else data.value()
    return whole if len(whole) <= max_bytes else None


def preview(
    data: bytes | Arriving,
    *,
    max_side: int = MAX_PREVIEW_SIDE,
    max_bytes: int = MAX_PREVIEW_BYTES,
    max_pixels: int | None = None,
) -> Preview:
    """A copy of the image for showing: long side ≤ ``max_side``, at most MAX_PREVIEW_AREA pixels,
    encoded ≤ ``max_bytes``. The
    image itself when it already fits; else scaled down, as PNG when it has transparency or few
    colours (a diagram, a screenshot of text: sharp edges) and fits, otherwise as JPEG at falling
    quality, then smaller. A photo is never tried as PNG: encoding one took over a second and came
    out three times over the bound. EXIF orientation applied; animations give their first frame.
    ``data`` may still be arriving: it decodes as it comes."""
    from PIL import Image, ImageOps

    image, info = _open(data, max_pixels, fit=max_side)
    with image:
        if (whole := _as_is(image, info, data, max_side, max_bytes)) is not None:
            return Preview(whole, info.mime_type or "image/png", info.width, info.height, info)
        picture = image
        ImageOps.exif_transpose(picture, in_place=True)  # in place: a copy of 2048×2048 took 10-25 ms
        if picture.mode not in ("RGB", "RGBA", "L", "LA"):
            picture = picture.convert("RGBA" if "A" in picture.getbands() or "transparency" in picture.info else "RGB")
        scaled, size = picture, _target(picture.width, picture.height, max_side)  # ``image`` is not used again
        while True:
            scaled = _scaled(scaled, _within(scaled.width, scaled.height, size))
            if scaled.mode in ("RGBA", "LA") or scaled.getcolors(_FEW_COLOURS) is not None:
                encoded = _encode(scaled, "PNG", compress_level=1)
                if len(encoded) <= max_bytes:
                    return Preview(encoded, "image/png", scaled.width, scaled.height, info)
            flat = scaled
            if scaled.mode in ("RGBA", "LA"):
                flat = Image.new("RGB", scaled.size, "white")
                flat.paste(scaled, mask=scaled.getchannel("A"))
            for quality in _JPEG_QUALITIES:
                encoded = _encode(flat, "JPEG", quality=quality)
                if len(encoded) <= max_bytes:
                    return Preview(encoded, "image/jpeg", flat.width, flat.height, info)
            if max(size) <= 64:
                raise InputError(f"the image cannot be previewed within {max_bytes:,} bytes")
            size = (max(1, int(scaled.width * 0.75)), max(1, int(scaled.height * 0.75)))
