"""Saving results to the caller's folder: a URL streamed to disk, or bytes already in hand.

Nothing half-written is ever visible under the final name: the bytes go to a hidden temporary
file in the same folder (same file system, so the last step is atomic), which is removed on any
failure or cancellation, and is then linked to its final name, which fails rather than replace
a file already there (the next free ``name-1.ext``, ``name-2.ext``… is taken instead).

Files are created with mode 0600 (``tempfile.mkstemp``; private to the server's user, whatever
the umask) and keep it: a generated image is the user's, not every local account's.

Downloads are https only (http only to loopback, for tests), carry no key or other credential
header, follow at most ``MAX_REDIRECTS`` redirects (each checked the same way), stop at
``max_bytes`` and check the length the server declared, so a cut connection is an error.
"""

from __future__ import annotations

import contextlib
import errno
import mimetypes
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import anyio.to_thread
import httpx2
from pydantic import SecretStr

from .._errors import InputError, RelayError, RequestRejectedError, UnavailableError
from ._net import keyless, require_safe_url

__all__ = ["Downloaded", "download", "fetch", "safe_filename", "save_bytes"]

MAX_REDIRECTS = 5
MAX_NAME_CHARS = 120
MAX_SUFFIX = 1000

_EXTENSIONS = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif",
    "video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm",
    "audio/mpeg": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav",
}  # fmt: skip


@dataclass(frozen=True)
class Downloaded:
    """A file saved in full: where, how many bytes, and its media type (from the server's
    Content-Type, else guessed from the name)."""

    path: Path
    size: int
    media_type: str | None


def safe_filename(name: str, *, media_type: str | None = None, default: str = "download") -> str:
    """A plain file name from untrusted text (a URL's last path segment, a suggested name): no
    folders, no leading dot, only letters, digits, ``.``, ``-`` and ``_``, at most
    ``MAX_NAME_CHARS``; an extension from ``media_type`` when it has none."""
    base = unquote(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._-") or default
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = ext[:10] if ext else ""
    if not ext and media_type:
        ext = (_EXTENSIONS.get(media_type) or mimetypes.guess_extension(media_type) or "").lstrip(".")
    stem = stem[: MAX_NAME_CHARS - len(ext) - 1] or default
    return f"{stem}.{ext}" if ext else stem


def _folder(folder: str | os.PathLike[str]) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"save folder {str(path)!r} does not exist or is not a folder; fix: create it first")
    return path


def _publish(temp: str, folder: Path, name: str) -> Path:
    """Give the finished temporary file its final name without replacing any file: a hard link
    (fails if the name exists) then removing the temporary name. Where hard links are not
    supported, the final name is reserved with O_EXCL and the file renamed over the reservation."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    for number in range(MAX_SUFFIX):
        candidate = folder / (name if number == 0 else f"{stem}-{number}{'.' + ext if ext else ''}")
        try:
            os.link(temp, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            try:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                continue
            os.replace(temp, candidate)
            return candidate
        os.unlink(temp)
        return candidate
    raise InputError(f"save folder {str(folder)!r} already holds {name!r} and {MAX_SUFFIX} numbered copies")


class _Sink:
    """A temporary file in ``folder``; removed unless ``publish`` ran."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        descriptor, self.temp = tempfile.mkstemp(prefix=f".{name[:60]}.", suffix=".part", dir=folder)
        self.file = os.fdopen(descriptor, "wb")
        self.size = 0

    async def write(self, chunk: bytes) -> None:
        await anyio.to_thread.run_sync(self.file.write, chunk)
        self.size += len(chunk)

    def publish(self) -> Path:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return _publish(self.temp, self.folder, self.name)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


async def save_bytes(
    data: bytes, folder: str | os.PathLike[str], name: str, *, media_type: str | None = None
) -> Downloaded:
    """Save ``data`` (e.g. a decoded ``b64_json`` image) untouched under ``name`` in ``folder``,
    by the same rules as downloads (temporary file, no overwrite, 0600)."""
    path = _folder(folder)
    sink = _Sink(path, safe_filename(name, media_type=media_type))
    try:
        await sink.write(data)
        final = await anyio.to_thread.run_sync(sink.publish)
    except BaseException:
        sink.discard()
        raise
    return Downloaded(final, len(data), media_type or mimetypes.guess_type(final.name)[0])


async def _open(http: httpx2.AsyncClient, url: str, key: SecretStr | None) -> httpx2.Response:
    """The response for ``url`` after redirects, each hop checked and sent without credentials."""
    for _ in range(MAX_REDIRECTS + 1):
        require_safe_url(url, "download")
        request = keyless(http.build_request("GET", url, headers={"accept-encoding": "identity"}), key)
        try:
            response = await http.send(request, stream=True, auth=None, follow_redirects=False)
        except httpx2.TimeoutException:
            raise UnavailableError("Could not download the file: the server did not answer in time",
                                   fix="try again") from None  # fmt: skip
        except httpx2.TransportError as exc:
            raise UnavailableError(f"Could not download the file: the connection failed ({type(exc).__name__})",
                                   fix="try again") from None  # fmt: skip
        if response.status_code in (301, 302, 303, 307, 308) and (location := response.headers.get("location")):
            await response.aclose()
            url = urljoin(url, location)
            continue
        return response
    raise RequestRejectedError(f"Could not download the file: more than {MAX_REDIRECTS} redirects",
                               fix="check the URL")  # fmt: skip


async def download(
    http: httpx2.AsyncClient,
    url: str,
    folder: str | os.PathLike[str],
    *,
    max_bytes: int,
    name: str | None = None,
    key: SecretStr | None = None,
) -> Downloaded:
    """Stream ``url`` into ``folder`` (which must exist) as ``name`` (default: from the URL).

    ``key`` is only used to make sure no header carrying it is sent. Errors: InputError for a
    URL that is not https or a missing folder; RequestRejectedError when the file is over
    ``max_bytes`` or the server refuses; UnavailableError when the transfer is cut (the length
    the server declared did not arrive) or fails. No file is left behind on any error.
    """
    target = _folder(folder)
    response = await _open(http, url, key)
    try:
        if response.status_code != 200:
            gone = response.status_code in (403, 404, 410)
            cls = RequestRejectedError if response.status_code < 500 else UnavailableError
            raise cls(
                f"Could not download the file: the server answered HTTP {response.status_code}",
                fix="result links may expire; generate again or ask for a fresh link" if gone else "try again",
                status=response.status_code,
            )
        media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower() or None
        declared = _declared_length(response)
        if declared is not None and declared > max_bytes:
            raise _too_large(max_bytes, declared)
        final_url = str(response.url)
        filename = safe_filename(name or urlsplit(final_url).path, media_type=media_type)
        sink = _Sink(target, filename)
        try:
            async for chunk in _chunks(response):
                if sink.size + len(chunk) > max_bytes:
                    raise _too_large(max_bytes, None)
                await sink.write(chunk)
            if declared is not None and sink.size != declared:
                raise _truncated(sink.size, declared)
            path = await anyio.to_thread.run_sync(sink.publish)
        except BaseException:
            sink.discard()
            raise
        return Downloaded(path, sink.size, media_type or mimetypes.guess_type(path.name)[0])
    finally:
        await response.aclose()


async def fetch(
    http: httpx2.AsyncClient, url: str, *, max_bytes: int, key: SecretStr | None = None
) -> tuple[bytes, str | None]:
    """The bytes at ``url`` (e.g. a cover to preview) and their media type, by the same rules as
    ``download`` (https, no credentials, checked redirects, ``max_bytes``, the declared length
    checked), kept in memory."""
    response = await _open(http, url, key)
    try:
        if response.status_code != 200:
            cls = RequestRejectedError if response.status_code < 500 else UnavailableError
            raise cls(f"Could not download the file: the server answered HTTP {response.status_code}",
                      fix="try again", status=response.status_code)  # fmt: skip
        declared = _declared_length(response)
        if declared is not None and declared > max_bytes:
            raise _too_large(max_bytes, declared)
        chunks: list[bytes] = []
        size = 0
        async for chunk in _chunks(response):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes, None)
            chunks.append(chunk)
        if declared is not None and size != declared:
            raise _truncated(size, declared)
        media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower() or None
        return b"".join(chunks), media_type
    finally:
        await response.aclose()


async def _chunks(response: httpx2.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx2.RemoteProtocolError:  # the server closed before the body it announced was complete
        raise _truncated(None, _declared_length(response)) from None
    except httpx2.TimeoutException:
        raise UnavailableError("Could not download the file: the server stopped sending (read timeout)",
                               fix="try again") from None  # fmt: skip
    except httpx2.TransportError as exc:
        raise UnavailableError(f"Could not download the file: the connection failed ({type(exc).__name__})",
                               fix="try again") from None  # fmt: skip


def _declared_length(response: httpx2.Response) -> int | None:
    if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
        return None  # the declared length is of the encoded body, not of the bytes saved
    raw = response.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


def _too_large(limit: int, declared: int | None) -> RelayError:
    size = f" ({declared:,} bytes)" if declared is not None else ""
    return RequestRejectedError(
        f"Could not download the file: it is over the limit of {limit:,} bytes{size}; nothing was saved",
        fix="raise the download limit if the file is wanted",
    )


def _truncated(received: int | None, declared: int | None) -> RelayError:
    got = f"{received:,} of " if received is not None else ""
    of = f"{declared:,} bytes" if declared is not None else "the announced bytes"
    return UnavailableError(
        f"Could not download the file: the transfer was cut short ({got}{of} arrived); nothing was saved",
        fix="download it again",
    )
