"""The catalogue items of the three public media catalogues, parsed leniently.

The relay adds fields and its live values drift from the docs (``720P`` beside ``720p``, ``4k``
outside the SPEC's enum): every field but ``name`` is optional, unknown fields are kept (in
``model_extra``), values are kept exactly as the catalogue spells them, and a field of the wrong
type is dropped on its own instead of losing the whole model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._untrusted import MAX_NAME_CHARS, bounded

__all__ = [
    "AudioConstraints",
    "ImageEditModel",
    "ImageModel",
    "ImagePrice",
    "ImagesConstraints",
    "InputConstraints",
    "VideoConstraints",
    "VideoDefaults",
    "VideoModel",
    "VideoPrice",
    "parse_items",
]

logger = logging.getLogger("aitoearn_mcp")

MAX_FIELD_CHARS = 2000  # a label, a description or a tag; never a page


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class ImagePrice(_Lenient):
    """One ``pricing`` row of an image model: flat credits per image of ``size``."""

    size: str | None = None
    price: Decimal | None = None
    origin_price: Decimal | None = Field(default=None, alias="originPrice")


class VideoPrice(_Lenient):
    """One ``pricing`` row of a video model. A row with ``duration`` is the whole price of a video
    that long; a row without it is credits per second (see ``_prices``)."""

    resolution: str | None = None
    mode: str | None = None
    duration: int | float | None = None
    price: Decimal | None = None
    origin_price: Decimal | None = Field(default=None, alias="originPrice")


class ImagesConstraints(_Lenient):
    max_count: int | None = Field(default=None, alias="maxCount")


class VideoConstraints(_Lenient):
    max_count: int | None = Field(default=None, alias="maxCount")
    formats: list[str] = Field(default_factory=list)
    min_duration: float | None = Field(default=None, alias="minDuration")
    max_duration: float | None = Field(default=None, alias="maxDuration")
    max_total_duration: float | None = Field(default=None, alias="maxTotalDuration")
    max_size_mb: float | None = Field(default=None, alias="maxSizeMb")
    min_aspect_ratio: float | None = Field(default=None, alias="minAspectRatio")
    max_aspect_ratio: float | None = Field(default=None, alias="maxAspectRatio")
    min_width: int | None = Field(default=None, alias="minWidth")
    max_width: int | None = Field(default=None, alias="maxWidth")
    min_pixels: int | None = Field(default=None, alias="minPixels")
    max_pixels: int | None = Field(default=None, alias="maxPixels")
    min_fps: float | None = Field(default=None, alias="minFps")
    max_fps: float | None = Field(default=None, alias="maxFps")


class AudioConstraints(_Lenient):
    max_count: int | None = Field(default=None, alias="maxCount")
    formats: list[str] = Field(default_factory=list)
    min_duration: float | None = Field(default=None, alias="minDuration")
    max_duration: float | None = Field(default=None, alias="maxDuration")
    max_total_duration: float | None = Field(default=None, alias="maxTotalDuration")
    max_size_mb: float | None = Field(default=None, alias="maxSizeMb")


class InputConstraints(_Lenient):
    images: ImagesConstraints | None = None
    videos: VideoConstraints | None = None
    audios: AudioConstraints | None = None


class VideoDefaults(_Lenient):
    resolution: str | None = None
    aspect_ratio: str | None = Field(default=None, alias="aspectRatio")
    duration: int | float | None = None


class _Model(_Lenient):
    name: str
    label: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    credits_scope: str | None = Field(default=None, alias="creditsScope")


class ImageModel(_Model):
    """An item of ``GET /api/ai/models/image/generation`` (text to image). An empty ``styles``
    means the model takes no ``style``."""

    sizes: list[str] = Field(default_factory=list)
    qualities: list[str] = Field(default_factory=list)
    styles: list[str] = Field(default_factory=list)
    pricing: list[ImagePrice] = Field(default_factory=list)


class ImageEditModel(_Model):
    """An item of ``GET /api/ai/models/image/edit`` (image to image; a reference is required)."""

    sizes: list[str] = Field(default_factory=list)
    max_input_images: int | None = Field(default=None, alias="maxInputImages")
    pricing: list[ImagePrice] = Field(default_factory=list)


class VideoModel(_Model):
    """An item of ``GET /api/ai/models/video/generation``."""

    modes: list[str] = Field(default_factory=list)
    resolutions: list[str] = Field(default_factory=list)
    durations: list[int | float] = Field(default_factory=list)
    max_input_images: int | None = Field(default=None, alias="maxInputImages")
    input_constraints: InputConstraints | None = Field(default=None, alias="inputConstraints")
    aspect_ratios: list[str] = Field(default_factory=list, alias="aspectRatios")
    defaults: VideoDefaults = Field(default_factory=VideoDefaults)
    pricing: list[VideoPrice] = Field(default_factory=list)


_M = TypeVar("_M", bound=BaseModel)


def _one(cls: type[_M], raw: dict[str, Any]) -> _M | None:
    """``raw`` as ``cls``; a field that fails validation is dropped and the rest tried again
    (so a future type change in one field costs that field, not the model)."""
    data = dict(raw)
    for _ in range(len(data) + 1):
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            bad.discard("name")
            if not bad & data.keys():
                return None
            for field_name in bad:
                data.pop(field_name, None)
    return None


def parse_items(cls: type[_M], data: Iterable[Any]) -> list[_M]:
    """The usable items of a catalogue's ``data`` array: objects with a ``name`` string, each
    string bounded. Items without a usable name are skipped (nothing could select them)."""
    items: list[_M] = []
    skipped = 0
    for raw in data:
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
            skipped += 1
            continue
        item = _one(cls, bounded(dict(raw), MAX_FIELD_CHARS))
        if item is None:
            skipped += 1
        else:
            items.append(item)
    if skipped:
        logger.warning("The %s catalogue had %d unusable item(s); they were skipped", cls.__name__, skipped)
    return items
