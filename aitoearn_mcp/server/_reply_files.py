"""Reply files: a reply too large for one result, written where an agent with file tools can
page through it (stdio: the server and the agent share a machine).

The folder is the user's own cache folder, checked to be the user's and private (a shared
``/tmp`` folder let another local user swap the file the agent was told to read). A file goes
when its stored reply would expire (checked when another is written, and on a timer: a server
may run for days), and the files this process wrote go at a clean exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import stat
import time
from pathlib import Path

from .._config import Config
from .._paths import cache_dir, private_dir
from ..store._open import default_ttl

__all__ = ["expire_reply_files", "remove_written", "reply_folder", "reply_ttl", "save_reply_file"]


_written: set[Path] = set()  # by this process: removed at exit


def reply_folder() -> Path:
    return cache_dir() / "replies"


def reply_ttl(config: Config) -> float:
    """Seconds a reply is kept after its last use: as long as conversations, in this store."""
    return config.conversation_ttl or default_ttl(config.conversations)


def save_reply_file(reply_id: str, text: str, ttl: float) -> str:
    """Write the reply to a file readable by this user only (once: a reply this process wrote
    is not written again); remove files older than ``ttl`` seconds. Raises OSError when the
    folder is not private or the file cannot be written."""
    path = reply_folder() / f"{reply_id}.txt"
    if path in _written:  # before any disk work: each page of a long reply asks again
        return str(path)
    folder = private_dir(path.parent)
    _remove_expired(folder, ttl)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    if not _written:
        atexit.register(remove_written)
    _written.add(path)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    return str(path)


def _remove_expired(folder: Path, ttl: float) -> None:
    cutoff = time.time() - ttl
    with os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):  # another process may remove it first
                if entry.name.startswith("r_") and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    _written.discard(Path(entry.path))  # what this process keeps count of shrinks too
                    os.unlink(entry.path)


def expire_reply_files(ttl: float) -> None:
    """Remove the files older than ``ttl`` seconds, if the folder is there and the user's own (a
    single lstat when there is nothing to do); never raises."""
    folder = reply_folder()
    try:
        found = os.lstat(folder)
        if stat.S_ISDIR(found.st_mode) and (not hasattr(os, "getuid") or found.st_uid == os.getuid()):
            _remove_expired(folder, ttl)
    except OSError:  # no folder yet, or one that cannot be read: nothing of ours to remove
        pass


def remove_written() -> None:
    """Remove the reply files this process wrote (at exit: the stored reply stays readable by
    resource while the store keeps it)."""
    for path in list(_written):
        with contextlib.suppress(OSError):
            path.unlink()
        _written.discard(path)
