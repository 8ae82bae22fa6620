"""Image checks and previews with Pillow (imported inside the functions: the server starts
without paying for it, and runs without it until an image is handled).

``preview`` makes what a host can show: the long side at most 1,568 px (what vision models
take without downscaling again) and at most 1 MB encoded; the original bytes are never
changed (save them with ``save_bytes``). Both functions are CPU-bound: call them on a worker
thread (``anyio.to_thread.run_sync``).

Decompression bombs: an image whose header declares more than ``max_pixels`` pixels (by
default Pillow's ``Image.MAX_IMAGE_PIXELS``, about 89 million) is refused before its pixels are
decoded, with an InputError, never a crash or an out-of-memory process.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import InputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["MAX_PREVIEW_BYTES", "MAX_PREVIEW_SIDE", "ImageInfo", "Preview", "inspect_image", "preview"]

MAX_PREVIEW_SIDE = 1568
MAX_PREVIEW_BYTES = 1_000_000  # 1 MB in decimal: under both readings of "1 MB"
_JPEG_QUALITIES = (90, 80, 70, 60, 50, 40)
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
         "TIFF": "image/tiff"}  # fmt: skip


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


def _open(data: bytes, max_pixels: int | None) -> tuple[PILImage.Image, ImageInfo]:
    """The decoded image (pixels loaded) and what it is, or an InputError."""
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        image = Image.open(io.BytesIO(data))
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
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise InputError(f"the image is refused as a decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"the image is damaged or cut short and does not decode ({exc})") from None
    fmt = image.format
    return image, ImageInfo(fmt, _MIME.get(fmt or "") or (Image.MIME.get(fmt) if fmt else None), width, height)


def inspect_image(data: bytes, *, max_pixels: int | None = None) -> ImageInfo:
    """Decode ``data`` fully (so a cut or corrupt file is caught) and say what it is."""
    image, info = _open(data, max_pixels)
    image.close()
    return info


def _encode(image: Any, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def preview(
    data: bytes,
    *,
    max_side: int = MAX_PREVIEW_SIDE,
    max_bytes: int = MAX_PREVIEW_BYTES,
    max_pixels: int | None = None,
) -> Preview:
    """A copy of the image for showing: long side ≤ ``max_side``, encoded ≤ ``max_bytes``.
    PNG when it fits (keeps transparency and sharp edges), else JPEG at falling quality, then
    smaller; EXIF orientation applied; animations give their first frame."""
    from PIL import Image, ImageOps

    image, info = _open(data, max_pixels)
    with image:
        picture = ImageOps.exif_transpose(image) or image
        if picture.mode not in ("RGB", "RGBA", "L", "LA"):
            picture = picture.convert("RGBA" if "A" in picture.getbands() or "transparency" in picture.info else "RGB")
        side = max_side
        while True:
            scaled = picture.copy()
            scaled.thumbnail((side, side), Image.Resampling.LANCZOS)
            encoded = _encode(scaled, "PNG", optimize=False, compress_level=6)
            if len(encoded) <= max_bytes:
                return Preview(encoded, "image/png", scaled.width, scaled.height, info)
            flat = scaled
            if scaled.mode in ("RGBA", "LA"):
                flat = Image.new("RGB", scaled.size, "white")
                flat.paste(scaled, mask=scaled.getchannel("A"))
            elif scaled.mode != "RGB" and scaled.mode != "L":
                flat = scaled.convert("RGB")
            for quality in _JPEG_QUALITIES:
                encoded = _encode(flat, "JPEG", quality=quality, optimize=True)
                if len(encoded) <= max_bytes:
                    return Preview(encoded, "image/jpeg", flat.width, flat.height, info)
            if side <= 64:
                raise InputError(f"the image cannot be previewed within {max_bytes:,} bytes")
            side = max(64, int(side * 0.75))
