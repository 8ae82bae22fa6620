"""The native media client: image generation and editing, video tasks, catalogues and uploads.

It takes an ``httpx2.AsyncClient`` whose base URL (the AiToEarn site root) and timeouts the
caller configured, and the key as a ``SecretStr``. The key travels only as ``X-Api-Key`` to the
relay's own routes; it is never sent to the storage upload URL or a download, and it is hidden
from every error before one leaves this module.

Retries: reads (catalogues, task status) are retried on connection failures, timeouts and
busy answers. A POST that may have been billed (image, video) is retried only when the
connection failed before the request was sent; the asset routes (signing, confirming) are not
billed and are retried like reads.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import random
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import quote
from uuid import uuid4

import anyio
import anyio.to_thread
import httpx2
from pydantic import SecretStr

from .._errors import (
    InputError,
    MissingKeyError,
    RelayError,
    RelayTimeoutError,
    RequestRejectedError,
    UnavailableError,
)
from .._untrusted import MAX_NAME_CHARS, load_json, one_line, redact
from ..relay._client import read_capped
from ._envelope import ErrorContext, envelope_data, shape_error
from ._models import ImageEditModel, ImageModel, VideoModel, parse_items
from ._net import keyless, require_safe_url
from ._results import (
    ImageResult,
    ImageTask,
    ImageTaskStatus,
    UploadedAsset,
    VideoStatus,
    VideoTask,
    image_result,
    image_task_status,
    video_status,
    video_task,
)
from ._validate import PreparedImage, PreparedImageEdit, PreparedVideo

__all__ = [
    "IMAGE_EDIT_CATALOGUE_PATH",
    "IMAGE_GENERATION_CATALOGUE_PATH",
    "VIDEO_CATALOGUE_PATH",
    "MediaClient",
    "content_type_for",
]

logger = logging.getLogger("aitoearn_mcp")

IMAGE_GENERATION_CATALOGUE_PATH = "/api/ai/models/image/generation"
IMAGE_EDIT_CATALOGUE_PATH = "/api/ai/models/image/edit"
VIDEO_CATALOGUE_PATH = "/api/ai/models/video/generation"
MAX_JSON_BYTES = 64 * 1024 * 1024  # an image answer may carry base64 images of 4K PNGs
MAX_ERROR_BYTES = 64 * 1024
UPLOAD_CHUNK = 1024 * 1024
MAX_ID_CHARS = 200

_Retry = Literal["safe", "connect"]
_T = TypeVar("_T")

# Extensions the catalogue's formats and the storage need named exactly (mimetypes varies by OS).
_CONTENT_TYPES = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
    "mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm",
    "mp3": "audio/mpeg", "wav": "audio/wav", "m4a": "audio/mp4", "aac": "audio/aac", "ogg": "audio/ogg",
}  # fmt: skip


def content_type_for(filename: str) -> str:
    """The Content-Type for a file by its extension; ``application/octet-stream`` if unknown."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return _CONTENT_TYPES.get(ext) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _task_id(value: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise InputError(f"`{field}` must be the id the submit call returned (1 to {MAX_ID_CHARS} characters)")
    return quote(value.strip(), safe="")


class _FileChanged(Exception):
    """The file being uploaded ended before the size the relay was told."""


class MediaClient:
    """Calls the native media routes. ``key`` may be None for the public catalogues only."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        key: SecretStr | None,
        *,
        max_retries: int = 2,
        backoff_base: float = 0.5,
        max_json_bytes: int = MAX_JSON_BYTES,
    ) -> None:
        self._http = http
        self._key = key
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._max_json_bytes = max_json_bytes

    def __repr__(self) -> str:
        return f"MediaClient(base_url={str(self._http.base_url)!r}, key={'set' if self._key else 'none'})"

    # --- plumbing --------------------------------------------------------------------------

    def _headers(self, *, auth: bool) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if auth:
            if self._key is None:
                raise MissingKeyError()
            headers["x-api-key"] = self._key.get_secret_value()
        return headers

    def _hide(self, error: RelayError) -> RelayError:
        if self._key is not None:
            error.hide(self._key.get_secret_value())
        error.__cause__ = error.__context__ = None
        return error

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after <= 30:
            return retry_after
        base = min(self._backoff_base * 2**attempt, 8.0)
        return base / 2 + random.uniform(0, base / 2)

    async def _retrying(self, attempt: Callable[[], Awaitable[_T]], retry: _Retry, context: ErrorContext) -> _T:
        """Run ``attempt``; try again per ``retry``: "safe" on any transient failure, "connect"
        only when the connection failed before anything was sent."""
        for number in range(self._max_retries + 1):
            try:
                return await attempt()
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:  # PoolTimeout included: nothing sent
                error: RelayError = UnavailableError(
                    f"Could not {context.operation}: could not connect to the relay ({type(exc).__name__})",
                    fix="check the network and the base URL, then try again",
                )
                again = True
            except httpx2.TimeoutException:
                error = RelayTimeoutError(
                    f"Could not {context.operation}: the relay did not answer in time (read timeout)",
                    fix="try again"
                    + ("" if retry == "safe" else "; the request may have been processed, so check before resending"),
                )
                again = retry == "safe"
            except httpx2.TransportError as exc:
                error = UnavailableError(
                    f"Could not {context.operation}: the connection failed ({type(exc).__name__})",
                    fix="try again"
                    + ("" if retry == "safe" else "; the request may have been processed, so check before resending"),
                )
                again = retry == "safe"
            except RelayError as exc:
                error = exc
                again = retry == "safe" and exc.retryable
            error = self._hide(error)
            if not again or number == self._max_retries:
                raise error
            delay = self._delay(number, error.retry_after)
            logger.warning("Could not %s (attempt %d): %s; retrying in %.1f s", context.operation, number + 1,
                           error.what, delay)  # fmt: skip
            await anyio.sleep(delay)
        raise AssertionError("unreachable")

    async def _call(
        self,
        method: str,
        path: str,
        context: ErrorContext,
        *,
        retry: _Retry,
        auth: bool = True,
        json: Any = None,
    ) -> tuple[Any, str | None]:
        """The envelope's ``data`` and the request id, or the failure raised."""
        headers = self._headers(auth=auth)
        limit = self._max_json_bytes

        async def attempt() -> tuple[Any, str | None]:
            async with self._http.stream(method, path, json=json, headers=headers) as response:
                raw = await read_capped(response, limit + 1)
                if len(raw) > limit:
                    raise RequestRejectedError(
                        f"Could not {context.operation}: the relay's answer is over {limit:,} bytes",
                        fix="ask for url results instead of b64_json, or fewer images",
                    )
                data = envelope_data(response.status_code, response.headers, raw, context)
                request_id = _request_id(response.headers, raw)
                if self._key is not None:
                    data = redact(data, self._key.get_secret_value())
                return data, request_id

        return await self._retrying(attempt, retry, context)

    # --- catalogues (public) ---------------------------------------------------------------

    async def _catalogue(self, path: str, what: str) -> list[Any]:
        context = ErrorContext(operation=f"fetch the {what} catalogue")
        data, _ = await self._call("GET", path, context, retry="safe", auth=False)
        if not isinstance(data, list):
            raise shape_error(context, "a list of models")
        return data

    async def image_generation_models(self) -> list[ImageModel]:
        return parse_items(ImageModel, await self._catalogue(IMAGE_GENERATION_CATALOGUE_PATH, "image-generation"))

    async def image_edit_models(self) -> list[ImageEditModel]:
        return parse_items(ImageEditModel, await self._catalogue(IMAGE_EDIT_CATALOGUE_PATH, "image-edit"))

    async def video_generation_models(self) -> list[VideoModel]:
        return parse_items(VideoModel, await self._catalogue(VIDEO_CATALOGUE_PATH, "video-generation"))

    # --- images ----------------------------------------------------------------------------

    async def generate_image(self, prepared: PreparedImage) -> ImageResult:
        """``POST /api/ai/image/generate`` (synchronous; billed): the images, as hosted URLs or
        decoded ``b64_json`` per the request's ``response_format``."""
        return await self._image("/api/ai/image/generate", prepared.body, prepared.valid_models, "generate the image")

    async def edit_image(self, prepared: PreparedImageEdit) -> ImageResult:
        """``POST /api/ai/image/edit`` (synchronous; billed)."""
        return await self._image("/api/ai/image/edit", prepared.body, prepared.valid_models, "edit the image")

    async def _image(self, path: str, body: dict[str, Any], models: tuple[str, ...], what: str) -> ImageResult:
        context = ErrorContext(operation=what, valid_models=models)
        data, request_id = await self._call("POST", path, context, retry="connect", json=body)
        if not isinstance(data, Mapping):
            raise shape_error(context, "an object with a list of images")
        result = image_result(data, request_id)
        if not result.images:
            raise shape_error(context, "at least one image with a url or b64_json")
        return result

    async def submit_image_task(self, prepared: PreparedImage | PreparedImageEdit) -> ImageTask:
        """The asynchronous variant (``…/generate/async`` or ``…/edit/async``): credits are taken
        at submit; poll ``image_task``."""
        edit = isinstance(prepared, PreparedImageEdit)
        path = "/api/ai/image/edit/async" if edit else "/api/ai/image/generate/async"
        context = ErrorContext(operation="submit the image task", valid_models=prepared.valid_models)
        data, _ = await self._call("POST", path, context, retry="connect", json=prepared.body)
        log_id = data.get("logId") if isinstance(data, Mapping) else None
        if not isinstance(log_id, str) or not log_id:
            raise shape_error(context, "a logId")
        status = data.get("status") if isinstance(data, Mapping) else None
        return ImageTask(one_line(log_id, MAX_NAME_CHARS), status if isinstance(status, str) else None)

    async def image_task(self, log_id: str) -> ImageTaskStatus:
        """``GET /api/ai/image/task/{logId}``."""
        context = ErrorContext(operation="read the image task", task_id=log_id)
        path = f"/api/ai/image/task/{_task_id(log_id, 'log_id')}"
        data, _ = await self._call("GET", path, context, retry="safe")
        if not isinstance(data, Mapping):
            raise shape_error(context, "the task's status")
        return image_task_status(data, log_id)

    # --- video -----------------------------------------------------------------------------

    async def submit_video(self, prepared: PreparedVideo) -> VideoTask:
        """``POST /api/ai/video/generations`` (billed): the task id to poll, and ``points`` when
        the relay reports what it charged."""
        body = prepared.body
        counts = [f"{len(body[k])} {k}" for k in ("images", "videos", "audios") if body.get(k)]
        inputs = ", ".join(counts + (["a last frame"] if body.get("image_tail") else [])) or "text only"
        context = ErrorContext("submit the video", valid_models=prepared.valid_models, mode=prepared.mode,
                               inputs=inputs)  # fmt: skip
        data, request_id = await self._call("POST", "/api/ai/video/generations", context, retry="connect", json=body)
        task = video_task(data, request_id) if isinstance(data, Mapping) else None
        if task is None:
            raise shape_error(context, "a task id")
        return task

    async def video_status(self, task_id: str) -> VideoStatus:
        """``GET /api/ai/video/generations/{id}``, interpreted tolerantly (see ``VideoStatus``)."""
        context = ErrorContext(operation="read the video task", task_id=task_id)
        path = f"/api/ai/video/generations/{_task_id(task_id, 'task_id')}"
        data, _ = await self._call("GET", path, context, retry="safe")
        if not isinstance(data, Mapping):
            raise shape_error(context, "the task's status")
        return video_status(data, task_id)

    # --- uploads ---------------------------------------------------------------------------

    async def upload(
        self, fd: int, filename: str, *, asset_type: str = "temp", content_type: str | None = None
    ) -> UploadedAsset:
        """Upload the regular file open at ``fd`` (opened by the caller, e.g. inside its allowed
        roots; not closed here) as ``filename``: sign, send the bytes straight to storage
        without the key, confirm. Returns the confirmed URL to pass as a reference.

        The bytes are streamed from offset 0 in chunks on a worker thread, never read whole.
        ``asset_type`` is the relay's enum (``temp`` is its default; retention is unstated).
        """
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"upload: {filename!r} is not a regular file")
        size = info.st_size
        name = os.path.basename(filename.replace("\\", "/")) or "file"
        kind = content_type or content_type_for(name)
        sign_context = ErrorContext(operation="sign the upload", size=size)
        body = {"filename": name, "type": asset_type, "size": size}
        signed, _ = await self._call("POST", "/api/assets/uploadSign", sign_context, retry="safe", json=body)
        if not isinstance(signed, Mapping) or not isinstance(asset_id := signed.get("id"), str) or not asset_id:
            raise shape_error(sign_context, "an asset id and an upload URL")
        upload_url = signed.get("uploadUrl")
        fields = signed.get("uploadFields")
        if not isinstance(upload_url, str) or not upload_url:
            raise RelayError(
                "Could not upload the file: the relay's signing answer has no uploadUrl"
                + (" (only uploadFields, with no address to post them to)" if fields else ""),
                fix="try again; if it persists, this upload form is not supported by this server yet",
            )
        try:
            require_safe_url(upload_url, "the upload URL")
        except InputError as exc:
            raise RelayError(
                f"Could not upload the file: {exc}", fix="report this; the relay gave an unsafe address"
            ) from None
        if fields is not None and not (
            isinstance(fields, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
        ):
            raise RelayError(
                "Could not upload the file: the relay's uploadFields are not simple name/value strings",
                fix="report this; this upload form is not supported",
            )
        await self._send_to_storage(fd, size, name, kind, upload_url, dict(fields) if fields else None)
        confirm_context = ErrorContext(operation="confirm the upload", size=size)
        confirmed, _ = await self._call("POST", f"/api/assets/{_task_id(asset_id, 'id')}/confirm", confirm_context,
                                        retry="safe")  # fmt: skip
        confirmed = confirmed if isinstance(confirmed, Mapping) else {}
        url = confirmed.get("url") or signed.get("url")
        if not isinstance(url, str) or not url:
            raise shape_error(confirm_context, "the asset's url")

        def text(value: Any) -> str | None:
            return one_line(value, 2000) if isinstance(value, str) and value else None

        reported = confirmed.get("size")
        return UploadedAsset(
            id=one_line(asset_id, MAX_NAME_CHARS),
            url=url,
            path=text(confirmed.get("path")) or text(signed.get("path")),
            size=reported if isinstance(reported, int) and not isinstance(reported, bool) else size,
            mime_type=text(confirmed.get("mimeType")) or kind,
            status=text(confirmed.get("status")),
        )

    async def _send_to_storage(
        self, fd: int, size: int, name: str, kind: str, url: str, fields: dict[str, str] | None
    ) -> None:
        """PUT the bytes (or POST a form when the relay gave ``uploadFields``) to object storage:
        a request of its own, with no key or other credential header."""
        context = ErrorContext(operation="send the file to storage", size=size)
        if fields is None:
            prefix, suffix, kind_header = b"", b"", kind
        else:
            boundary = uuid4().hex
            parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(k)}"\r\n\r\n{v}\r\n'
                     for k, v in fields.items()]  # fmt: skip
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{_quoted(name)}"\r\n'
                         f"Content-Type: {kind}\r\n\r\n")  # fmt: skip
            prefix, suffix = "".join(parts).encode(), f"\r\n--{boundary}--\r\n".encode()
            kind_header = f"multipart/form-data; boundary={boundary}"
        length = len(prefix) + size + len(suffix)

        async def body() -> AsyncIterator[bytes]:
            if prefix:
                yield prefix
            sent = 0
            while sent < size:
                chunk = await anyio.to_thread.run_sync(_read_at, fd, min(UPLOAD_CHUNK, size - sent), sent)
                if not chunk:
                    raise _FileChanged()
                sent += len(chunk)
                yield chunk
            if suffix:
                yield suffix

        async def attempt() -> None:
            request = self._http.build_request(
                "PUT" if fields is None else "POST",
                url,
                content=body(),
                headers={"content-type": kind_header, "content-length": str(length)},
            )
            try:
                response = await self._http.send(keyless(request, self._key), stream=True, auth=None,
                                                 follow_redirects=False)  # fmt: skip
            except _FileChanged:
                raise RelayError(
                    f"Could not upload {name!r}: the file got shorter while it was being sent",
                    fix="upload it again once nothing is writing to it",
                ) from None
            try:
                if not 200 <= response.status_code < 300:
                    raw = await read_capped(response, MAX_ERROR_BYTES)
                    raise _storage_error(response.status_code, raw)
            finally:
                await response.aclose()

        await self._retrying(attempt, "connect", context)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _read_at(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows: no pread
    return os.read(fd, size)


def _storage_error(status: int, raw: bytes) -> RelayError:
    """Object storage answers errors in its own XML (``<Code>``, ``<Message>``)."""
    import re

    text = raw.decode("utf-8", "replace")
    found = [m.group(1) for tag in ("Code", "Message") if (m := re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S))]
    detail = ": ".join(found) if found else " ".join(re.sub(r"<[^>]+>", " ", text).split())[:200]
    what = f"Could not upload the file: the storage answered HTTP {status}"
    if status >= 500 or status in (408, 429):
        return UnavailableError(what, fix="upload the file again shortly", detail=detail, status=status)
    return RequestRejectedError(
        what, fix="upload again from the start (the signed address may have expired)", detail=detail, status=status
    )


def _request_id(headers: Mapping[str, str], raw: bytes) -> str | None:
    if value := headers.get("x-request-id") or headers.get("request-id"):
        return one_line(value, MAX_NAME_CHARS)
    try:
        parsed = load_json(raw)
    except ValueError:
        return None
    value = parsed.get("requestId") if isinstance(parsed, Mapping) else None
    return one_line(value, MAX_NAME_CHARS) if isinstance(value, str) and value else None
