"""What the media routes answer, as typed values (the relay's strings bounded, the key hidden).

A video's ``status`` string is not enumerated anywhere (sibling schemas use generating/success,
queued/in_progress/completed and succeeded), so ``VideoStatus.state`` is read from what is
present, not from the string: a ``videoUrl`` means finished, an ``error`` or a status that says
failed/error/expired/cancelled means failed, anything else is still running.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from .._untrusted import MAX_NAME_CHARS, bounded

__all__ = [
    "GeneratedImage",
    "ImageResult",
    "ImageTask",
    "ImageTaskStatus",
    "UploadedAsset",
    "VideoStatus",
    "VideoTask",
    "image_result",
    "video_status",
]

MAX_URL_CHARS = 8192
MAX_TEXT_CHARS = 16_000  # a revised prompt or an error message
MAX_RAW_CHARS = 4000  # each string of the raw answer kept for the caller

TaskState = Literal["running", "finished", "failed"]
_FAILED_WORDS = ("fail", "error", "expire", "cancel", "reject")


def _text(value: Any, limit: int = MAX_NAME_CHARS) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
        text = str(value)
        return text if len(text) <= limit else text[:limit] + "…"
    return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class GeneratedImage:
    """One image: its hosted ``url`` (AiToEarn re-hosts native results), or ``data`` (the
    decoded ``b64_json``), or both; ``revised_prompt`` when the model rewrote the prompt."""

    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    revised_prompt: str | None = None


@dataclass(frozen=True)
class ImageResult:
    images: tuple[GeneratedImage, ...]
    size: str | None = None
    quality: str | None = None
    output_format: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    created: int | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class ImageTask:
    """A submitted asynchronous image job: poll ``image_task(log_id)``."""

    log_id: str
    status: str | None = None


@dataclass(frozen=True)
class ImageTaskStatus:
    log_id: str
    state: TaskState
    status: str | None
    images: tuple[GeneratedImage, ...] = ()
    points: Decimal | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class VideoTask:
    """A submitted video: ``id`` to poll; ``points`` the credits the relay says it charged
    (when it says)."""

    id: str
    status: str | None = None
    points: Decimal | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class VideoStatus:
    """One look at a video task. ``status`` is the relay's own string, kept as sent."""

    id: str
    state: TaskState
    status: str | None = None
    video_url: str | None = None
    cover_url: str | None = None
    error_message: str | None = None
    model: str | None = None
    media_id: str | None = None
    finished_at: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class UploadedAsset:
    """A confirmed upload: ``url`` is the one to pass as a reference (the confirm answer's, or
    the signing answer's when confirm gave none)."""

    id: str
    url: str
    path: str | None = None
    size: int | None = None
    mime_type: str | None = None
    status: str | None = None


def _decode_b64(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def generated_images(items: Any) -> tuple[GeneratedImage, ...]:
    images = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        image = GeneratedImage(
            url=_text(item.get("url"), MAX_URL_CHARS),
            data=_decode_b64(item.get("b64_json")),
            revised_prompt=_text(item.get("revised_prompt"), MAX_TEXT_CHARS),
        )
        if image.url or image.data:
            images.append(image)
    return tuple(images)


def image_result(data: Mapping[str, Any], request_id: str | None) -> ImageResult:
    items = next((data[k] for k in ("list", "images", "data") if isinstance(data.get(k), list)), [])
    usage = data.get("usage")
    created = data.get("created")
    return ImageResult(
        images=generated_images(items),
        size=_text(data.get("size")),
        quality=_text(data.get("quality")),
        output_format=_text(data.get("output_format")),
        usage=bounded(dict(usage), MAX_NAME_CHARS) if isinstance(usage, Mapping) else {},
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        request_id=request_id,
    )


def _state(status: str | None, *, done: bool, failed: bool) -> TaskState:
    if done:
        return "finished"
    if failed or (status is not None and any(word in status.lower() for word in _FAILED_WORDS)):
        return "failed"
    return "running"


def _error_message(error: Any) -> str | None:
    if isinstance(error, Mapping):
        return _text(error.get("message"), MAX_TEXT_CHARS) or _text(error.get("code")) or "unspecified error"
    return _text(error, MAX_TEXT_CHARS)


def video_status(data: Mapping[str, Any], task_id: str) -> VideoStatus:
    status = _text(data.get("status"))
    video_url = _text(data.get("videoUrl"), MAX_URL_CHARS)
    error = _error_message(data.get("error")) if data.get("error") else None
    state = _state(status, done=video_url is not None, failed=error is not None)
    if state == "failed" and error is None:
        error = f"the relay reports status {status!r}"
    return VideoStatus(
        id=_text(data.get("id")) or task_id,
        state=state,
        status=status,
        video_url=video_url,
        cover_url=_text(data.get("coverUrl"), MAX_URL_CHARS),
        error_message=error,
        model=_text(data.get("model")),
        media_id=_text(data.get("mediaId")),
        finished_at=_text(data.get("finishedAt")),
        raw=bounded(dict(data), MAX_RAW_CHARS),
    )


def image_task_status(data: Mapping[str, Any], log_id: str) -> ImageTaskStatus:
    status = _text(data.get("status"))
    images = generated_images(data.get("images"))
    lowered = (status or "").lower()
    done = bool(images) or lowered in ("success", "succeeded", "completed")
    error = _text(data.get("errorMessage"), MAX_TEXT_CHARS)
    state = _state(status, done=done and not lowered.startswith("fail"), failed=error is not None and not images)
    return ImageTaskStatus(
        log_id=_text(data.get("logId")) or log_id,
        state=state,
        status=status,
        images=images,
        points=_decimal(data.get("points")),
        error_message=error,
    )


def video_task(data: Mapping[str, Any], request_id: str | None) -> VideoTask | None:
    task_id = _text(data.get("id")) or _text(data.get("taskId"))
    if task_id is None:
        return None
    return VideoTask(task_id, _text(data.get("status")), _decimal(data.get("points")), request_id)
