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

An image is fetched into memory (``fetch``) and decoded on a worker thread as its bytes arrive
(``Arriving``, ``checked_while_saved``), then saved from memory while the preview is made: the
decode waits neither for the whole download nor for the disk, and nothing is read back.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mimetypes
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urljoin, urlsplit

import anyio
import anyio.to_thread
import httpx2
from pydantic import SecretStr

from .._errors import InputError, RelayError, RequestRejectedError, UnavailableError
from ._net import keyless, require_safe_url

__all__ = ["Arriving", "Downloaded", "checked_while_saved", "download", "fetch", "safe_filename", "save_bytes"]

Checked = TypeVar("Checked")

MAX_REDIRECTS = 5
MAX_NAME_CHARS = 120
MAX_SUFFIX = 1000
WRITE_BATCH = 1024 * 1024  # bytes gathered before a worker thread writes them: a hop per MiB, not per 64 KiB chunk

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
        self._pending: list[bytes] = []  # received, not yet written: at most WRITE_BATCH bytes
        self._pending_size = 0

    async def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self.size += len(chunk)
        if self._pending_size >= WRITE_BATCH:
            await anyio.to_thread.run_sync(self._write_pending)

    def _write_pending(self) -> None:
        self.file.writelines(self._pending)
        self._pending, self._pending_size = [], 0

    def publish(self) -> Path:
        self._write_pending()
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


class Arriving(io.BufferedIOBase):
    """A download's bytes as they arrive, read as a file (``readline`` and the rest from
    ``io``) by another thread: a read past what has come waits for it, or for the end. An image decodes on a worker
    thread while it downloads instead of after (the decode releases the GIL; the download never
    waits for it). Once ``end`` is called reads return what came, then nothing: a download that
    failed or was cancelled leaves the decode with a cut-short file, never waiting."""

    def __init__(self) -> None:
        super().__init__()
        self._data = bytearray()
        self._ended = False
        self._position = 0
        self._changed = threading.Condition()

    @classmethod
    def whole(cls, data: bytes) -> Arriving:
        arriving = cls()
        arriving.add(data)
        arriving.end()
        return arriving

    def add(self, chunk: bytes) -> None:
        with self._changed:
            self._data += chunk
            self._changed.notify_all()

    def end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def size(self) -> int:
        return len(self._data)

    def value(self) -> bytes:
        """Every byte, once the end has come (waits for it)."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended)
            return bytes(self._data)

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        with self._changed:
            self._changed.wait_for(lambda: self._ended or 0 <= size <= len(self._data) - self._position)
            end = len(self._data) if size < 0 else min(self._position + size, len(self._data))
            chunk = bytes(self._data[self._position : end])
            self._position += len(chunk)
            return chunk

    read1 = read

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        with self._changed:
            if whence == os.SEEK_END:
                self._changed.wait_for(lambda: self._ended)
            base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: len(self._data)}[whence]
            self._position = max(base + offset, 0)
            return self._position

    def tell(self) -> int:
        return self._position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


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
    http: httpx2.AsyncClient, url: str, *, max_bytes: int, key: SecretStr | None = None,
    into: Arriving | None = None,
) -> tuple[bytes, str | None]:  # fmt: skip
    """The bytes at ``url`` (e.g. a cover to preview) and their media type, by the same rules as
    ``download`` (https, no credentials, checked redirects, ``max_bytes``, the declared length
    checked), kept in memory: in ``into`` as they arrive when given (ended however the fetch
    ends, so a reader never waits for bytes that will not come)."""
    arriving = into or Arriving()
    try:
        return await _fetched(http, url, max_bytes, key, arriving)
    finally:
        arriving.end()


async def _fetched(
    http: httpx2.AsyncClient, url: str, max_bytes: int, key: SecretStr | None, arriving: Arriving
) -> tuple[bytes, str | None]:
    response = await _open(http, url, key)
    try:
        if response.status_code != 200:
            cls = RequestRejectedError if response.status_code < 500 else UnavailableError
            raise cls(f"Could not download the file: the server answered HTTP {response.status_code}",
                      fix="try again", status=response.status_code)  # fmt: skip
        declared = _declared_length(response)
        if declared is not None and declared > max_bytes:
            raise _too_large(max_bytes, declared)
        async for chunk in _chunks(response):
            if arriving.size + len(chunk) > max_bytes:
                raise _too_large(max_bytes, None)
            arriving.add(chunk)
        if declared is not None and arriving.size != declared:
            raise _truncated(arriving.size, declared)
        media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower() or None
        arriving.end()
        return arriving.value(), media_type
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


async def checked_while_saved(
    arrived: Callable[[Arriving], Awaitable[tuple[bytes, str | None]]],
    check: Callable[[Arriving], Checked],
    folder: Path | None,
    name: Callable[[bytes, str | None], str],
) -> tuple[bytes, Checked, Downloaded | None]:
    """``check`` (an image's decode) on a worker thread, reading the bytes while ``arrived`` brings
    them with their served type (``fetch(..., into=...)``), then saved as ``name(bytes, type)`` in
    ``folder`` (none: not saved) while ``check`` goes on: the decode waits on neither the network
    nor the disk, and nothing is read back. A ``check`` that raises InputError (not an image)
    leaves no file; a failed download wins over the cut-short decode it causes. Each side's
    failure is kept and raised after both ended (a task group would wrap it in an ExceptionGroup)."""
    incoming = Arriving()
    outcome: list[Checked] = []
    refused: list[InputError] = []

    async def run_check() -> None:
        try:
            outcome.append(await anyio.to_thread.run_sync(check, incoming))
        except InputError as exc:
            refused.append(exc)

    saved: Downloaded | None = None
    not_fetched: InputError | RelayError | None = None
    not_saved: InputError | OSError | None = None
    data, served = b"", None
    async with anyio.create_task_group() as group:
        group.start_soon(run_check)
        try:
            data, served = await arrived(incoming)
        except (InputError, RelayError) as exc:
            not_fetched = exc
        finally:
            incoming.end()  # a failed or cancelled download: the check ends at what came
        if not_fetched is None and folder is not None:
            try:
                saved = await save_bytes(data, folder, name(data, served), media_type=served)
            except (InputError, OSError) as exc:
                not_saved = exc
    if not_fetched is not None:
        raise not_fetched  # the cut-short decode it caused says less
    if refused:
        if saved is not None:
            with contextlib.suppress(OSError):
                os.unlink(saved.path)  # not an image: nothing half-useful is left behind
        raise refused[0]
    if not_saved is not None:
        raise not_saved
    return data, outcome[0], saved


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
