"""Files the server reads for the caller, so an agent can show a model a file without first
reading it into its own context, or opens for an upload (generate_video's local references).

Only files inside the allowed roots (see ``_roots``) are read. Other local users may swap what
is on disk while the server reads it, so each file is opened exactly once and checked on the
open descriptor: on POSIX the resolved path is walked from the root's own descriptor one
component at a time without following any symbolic link (a folder swapped for a link out of the
root fails to open), the file is opened non-blocking (a named pipe swapped in cannot stall the
server) and must be a regular file by ``fstat``, and no more than the budget + 1 bytes are read
from it. Windows has neither ``dir_fd`` nor ``O_NOFOLLOW``: there the opened file must be the
one at the checked path (same volume and file index, and the path still resolves to itself).
All of it runs on a worker thread, never on the event loop.
"""

from __future__ import annotations

import base64
import errno
import functools
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from .._errors import InputError
from .._paths import cache_dir, private_dir
from ._roots import Roots

__all__ = ["OpenedFile", "attach_files", "folder_inside", "open_files", "read_files", "save_folder"]

_IMAGES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}

_WALK = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
_COMMON = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)
_FILE_FLAGS = _COMMON | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS = _COMMON | getattr(os, "O_DIRECTORY", 0)
_CHUNK = 1024 * 1024

# Kernel files: their sizes are made up, some never end (pagemap) or fail to read (mem), and
# they hold the server's own memory and environment (its key). Never a file a user means.
_KERNEL_TREES = (Path("/proc"), Path("/sys")) if sys.platform.startswith("linux") else ()

_SWAPPED = "changed while it was being opened (a folder or the file was replaced, e.g. by a symbolic link)"


def _refuse(message: str, tool: str = "send_message") -> InputError:
    return InputError(f"Invalid arguments for {tool}: {message}. Nothing was sent.")


@dataclass(frozen=True)
class _Checked:
    field: str
    raw: str
    path: Path  # resolved
    root: Path  # the resolved root it is inside
    tool: str = "send_message"


def _media_type(data: bytes) -> str | None:
    for magic, media_type in _IMAGES.items():
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _check(raw: str, field: str, roots: Roots, tool: str = "send_message") -> _Checked:
    """Resolve ``raw`` and check it is inside a root; nothing is opened yet."""
    refuse = functools.partial(_refuse, tool=tool)
    if "\x00" in raw:
        raise refuse(f"`{field}` contains a NUL byte, which no file name can hold; fix: pass the path without it")
    if not roots.paths:
        raise refuse(f"`{field}` {raw!r} cannot be read: no folder is allowed, because {roots.why_none}")
    try:
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            candidate = roots.paths[0] / candidate
        path = candidate.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise refuse(f"`{field}` {raw!r} does not exist or cannot be resolved; fix: pass an existing file") from None
    resolved_roots = [root.resolve() for root in roots.paths]
    root = next((r for r in resolved_roots if path == r or path.is_relative_to(r)), None)
    if root is None:
        allowed = ", ".join(str(r) for r in resolved_roots)
        why = f" (only these: {roots.why_none})" if roots.why_none else ""
        raise refuse(
            f"`{field}` {raw!r} is outside the allowed roots ({allowed}){why}; fix: pass a file inside them, or add "
            "its directory to the client's roots or to AITOEARN_FILES_ROOTS"
        )
    if any(path == tree or path.is_relative_to(tree) for tree in _KERNEL_TREES):
        raise refuse(
            f"`{field}` {raw!r} is a kernel file ({path}), not a file on disk; fix: copy what you need into a file "
            "inside the roots, or put it in `messages`"
        )
    return _Checked(field, raw, path, root, tool)


def _open_error(checked: _Checked, exc: OSError) -> InputError:
    head = f"`{checked.field}` {checked.raw!r}"
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return _refuse(f"{head} {_SWAPPED}; fix: pass a file that is not being replaced", checked.tool)
    if exc.errno == errno.ENOENT:
        return _refuse(f"{head} was removed while it was being opened; fix: pass an existing file", checked.tool)
    if exc.errno == errno.ENXIO:
        return _refuse(f"{head} is not a regular file (a socket); fix: pass a regular file", checked.tool)
    return _refuse(
        f"{head} cannot be opened ({exc.strerror or exc}); fix: pass a file the server can read", checked.tool
    )


def _open(checked: _Checked) -> int:
    """A descriptor for the checked file, opened once without following a link or blocking."""
    parts = checked.path.relative_to(checked.root).parts
    if not parts:
        raise _refuse(
            f"`{checked.field}` {checked.raw!r} is not a regular file (a folder); fix: pass a file", checked.tool
        )
    if not _WALK:
        return _open_and_compare(checked)
    folder = os.open(checked.root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:  # a component swapped for a symbolic link fails here: ELOOP or ENOTDIR
            inner = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=folder)
    finally:
        os.close(folder)


def _open_and_compare(checked: _Checked) -> int:
    """Without ``dir_fd`` (Windows): open the path, then make sure it still resolves to itself
    (so inside the root) and that the file opened is the one there now (compared by ``fstat``
    on both descriptors, whose volume and file ids are filled alike)."""
    descriptor = os.open(checked.path, _FILE_FLAGS)
    try:
        if Path(os.path.realpath(checked.path)) == checked.path:
            again = os.open(checked.path, _FILE_FLAGS)
            try:
                if os.path.samestat(os.fstat(descriptor), os.fstat(again)):
                    return descriptor
            finally:
                os.close(again)
    except OSError:
        pass
    os.close(descriptor)
    raise _refuse(
        f"`{checked.field}` {checked.raw!r} {_SWAPPED}; fix: pass a file that is not being replaced", checked.tool
    )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def _read(checked: _Checked, limit: int) -> bytes:
    """The file's bytes, or its first ``limit`` + 1 when it is larger (the caller refuses it)."""
    try:
        descriptor = _open(checked)
    except OSError as exc:
        raise _open_error(checked, exc) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(
                f"`{checked.field}` {checked.raw!r} is not a regular file ({_kind(mode)}); fix: pass a regular file"
            )
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(descriptor, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise _refuse(
            f"`{checked.field}` {checked.raw!r} cannot be read ({exc.strerror or exc}); fix: pass a file the server "
            "can read"
        ) from None
    finally:
        os.close(descriptor)


def _over_budget(total: int, max_bytes: int, field: str, size: int, exact: bool) -> InputError:
    amount = f"{total:,} bytes" if exact else f"more than {max_bytes:,} bytes"
    return _refuse(
        f"`files` add up to {amount}, over the {max_bytes:,}-byte budget (AITOEARN_FILES_MAX_BYTES; the largest is "
        f"{field}, {size:,} bytes{'' if exact else ' or more'}); fix: send fewer or smaller files, or the relevant "
        "part as text in `messages`"
    )


def _block(checked: _Checked, data: bytes) -> dict[str, Any]:
    media_type = _media_type(data)
    encoded = base64.b64encode(data).decode() if media_type else ""
    if media_type == "application/pdf":
        source = {"type": "base64", "media_type": media_type, "data": encoded}
        return {"type": "document", "title": checked.path.name, "source": source}
    if media_type:
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise _refuse(
            f"`{checked.field}` {checked.raw!r} is neither text (UTF-8) nor a PNG, JPEG, GIF, WebP image or a PDF; "
            "fix: send a supported file, or describe its content in `messages`"
        )
    return {"type": "text", "text": f"File: {checked.path}\n\n{text}"}


def _read_files(paths: Sequence[str], roots: Roots, max_bytes: int) -> list[dict[str, Any]]:
    checked = [_check(raw, f"files[{i}]", roots) for i, raw in enumerate(paths)]
    sizes = []
    for item in checked:  # a first look by size, for a refusal naming the total; the reads below enforce it
        try:
            sizes.append(item.path.stat().st_size)
        except OSError:
            sizes.append(0)
    if sum(sizes) > max_bytes:
        biggest = max(range(len(sizes)), key=sizes.__getitem__)
        raise _over_budget(sum(sizes), max_bytes, checked[biggest].field, sizes[biggest], exact=True)
    blocks = []
    used = 0
    for item in checked:
        data = _read(item, max_bytes - used)
        used += len(data)
        if used > max_bytes:  # it grew, or was swapped for a larger one, after the first look
            raise _over_budget(used, max_bytes, item.field, len(data), exact=False)
        blocks.append(_block(item, data))
    return blocks


async def read_files(paths: Sequence[str], roots: Roots, max_bytes: int) -> list[dict[str, Any]]:
    """Content blocks for ``paths``: text files as text blocks headed with their path, PNG, JPEG,
    GIF and WebP as image blocks, PDF as a document block. Every path is checked against the
    roots before any file is opened; at most ``max_bytes`` are read in all."""
    # A cancelled call does not wait for the disk: the thread finishes and closes its files.
    work = functools.partial(_read_files, paths, roots, max_bytes)
    return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)


@dataclass(frozen=True)
class OpenedFile:
    """A regular file opened for the caller inside the roots: ``fd`` is the caller's to close;
    ``size`` is the open file's own, read after opening."""

    field: str
    path: Path
    fd: int
    size: int


def _open_checked(item: _Checked) -> OpenedFile:
    try:
        descriptor = _open(item)
    except OSError as exc:
        raise _open_error(item, exc) from None
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise _refuse(f"`{item.field}` {item.raw!r} is not a regular file ({_kind(found.st_mode)}); fix: pass a "
                          "regular file", item.tool)  # fmt: skip
        try:  # the file opened is the one at the checked path now (not one swapped in since)
            same = os.path.samestat(found, os.stat(item.path, follow_symlinks=False))
        except OSError:
            same = False
        if not same:
            raise _refuse(f"`{item.field}` {item.raw!r} {_SWAPPED}; fix: pass a file that is not being replaced",
                          item.tool)  # fmt: skip
        os.set_blocking(descriptor, True)  # opened non-blocking against FIFOs; a regular file reads alike
        return OpenedFile(item.field, item.path, descriptor, found.st_size)
    except BaseException:
        os.close(descriptor)
        raise


def _open_files(paths: Sequence[tuple[str, str]], roots: Roots, max_bytes: int, tool: str) -> list[OpenedFile]:
    checked = [_check(raw, field, roots, tool) for field, raw in paths]  # every path before any is opened
    opened: list[OpenedFile] = []
    try:
        total = 0
        for item in checked:
            opened.append(_open_checked(item))
            total += opened[-1].size
            if total > max_bytes:
                size = opened[-1].size
                raise _refuse(f"the local files add up to more than {max_bytes:,} bytes (AITOEARN_FILES_MAX_BYTES; "
                              f"`{item.field}` is {size:,}); fix: pass smaller files, https URLs, or raise "
                              "AITOEARN_FILES_MAX_BYTES", tool)  # fmt: skip
    except BaseException:
        for item in opened:
            os.close(item.fd)
        raise
    return opened


async def open_files(paths: Sequence[tuple[str, str]], roots: Roots, max_bytes: int, tool: str) -> list[OpenedFile]:
    """Open each (field, path) for streaming (an upload), by the same rules as ``read_files``:
    inside the roots, no symbolic link or swapped folder followed, a regular file (a FIFO swapped
    in cannot stall the server), the open file compared with the one at the path, together at most
    ``max_bytes`` by the open descriptors. Nothing is read: the caller streams from them and closes them."""
    # Not abandoned on a cancel: the thread must hand back (or close) what it opened.
    return await anyio.to_thread.run_sync(functools.partial(_open_files, paths, roots, max_bytes, tool))


def _folder_inside(raw: str, field: str, roots: Roots, tool: str) -> Path:
    checked = _check(raw, field, roots, tool)
    if not checked.path.is_dir():
        raise _refuse(f"`{field}` {raw!r} is not a folder; fix: pass an existing folder inside the roots", tool)
    return checked.path


async def folder_inside(raw: str, field: str, roots: Roots, *, tool: str) -> Path:
    """``raw`` resolved: an existing folder inside the roots (files are then created in it
    exclusively, never replacing one: see ``media._download``)."""
    return await anyio.to_thread.run_sync(functools.partial(_folder_inside, raw, field, roots, tool))


def attach_files(messages: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with ``blocks`` put before the content of the last user turn (documents
    before the question, as models read best)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        return [*messages, {"role": "user", "content": blocks}]
    turn = messages[last]
    content = turn["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}] if content else []
    return [*messages[:last], {**turn, "content": [*blocks, *content]}, *messages[last + 1 :]]


async def save_folder(
    save_to: str | None, roots: Roots, *, client_roots: bool, configured: tuple[str, ...], tool: str, kind: str
) -> Path:
    """Where a tool saves what it made: ``save_to`` (a folder inside the roots); else the client's
    first root (``client_roots``: the client gave roots); else the first of AITOEARN_FILES_ROOTS;
    else the user's private cache folder ``kind`` (``images``, ``videos``). Never the working
    directory a client without roots gets for reading: for a desktop host that is wherever it
    started the server, often ``/``."""
    if save_to is not None:
        return await folder_inside(save_to, "save_to", roots, tool=tool)
    if client_roots and len(roots.paths) > len(configured):
        return roots.paths[0]
    if configured:
        return await folder_inside(configured[0], "AITOEARN_FILES_ROOTS", roots, tool=tool)
    return await anyio.to_thread.run_sync(lambda: private_dir(cache_dir() / kind))
