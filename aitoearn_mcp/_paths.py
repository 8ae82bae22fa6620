"""Where this user's files go: the state directory (the conversation store) and the cache
directory (reply files), each private to the user.

Hand-written rather than platformdirs: three platforms, two directories, one rule each.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

__all__ = ["STORE_FILE", "cache_dir", "make_dirs", "private_dir", "state_dir", "store_file"]

APP = "aitoearn-mcp"


def _windows_local() -> Path:
    return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")


def state_dir() -> Path:
    """``$XDG_STATE_HOME/aitoearn-mcp`` (``~/.local/state/aitoearn-mcp``) on Linux,
    ``~/Library/Application Support/aitoearn-mcp`` on macOS, ``%LOCALAPPDATA%\\aitoearn-mcp`` on Windows."""
    if sys.platform == "win32":
        return _windows_local() / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / APP


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/aitoearn-mcp`` (``~/.cache/aitoearn-mcp``) on Linux,
    ``~/Library/Caches/aitoearn-mcp`` on macOS, ``%LOCALAPPDATA%\\aitoearn-mcp\\Cache`` on Windows."""
    if sys.platform == "win32":
        return _windows_local() / APP / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP


def private_dir(path: Path) -> Path:
    """``path`` as a directory only this user can enter: made 0700 when missing (parents too),
    narrowed to 0700 when it is ours. Raises PermissionError when it is a symlink, not a
    directory, or another user's: someone else could then swap the files put in it."""
    make_dirs(path)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode):
        raise PermissionError(f"{path} is not a directory (a symlink or a file); move it away")
    if hasattr(os, "getuid"):  # POSIX: ownership and mode say who else can write here
        if found.st_uid != os.getuid():
            raise PermissionError(f"{path} belongs to another user (uid {found.st_uid}); move it away")
        if stat.S_IMODE(found.st_mode) & 0o077:
            os.chmod(path, 0o700)
    return path


def make_dirs(path: Path) -> None:
    """Make ``path`` and each missing parent 0700 (``mkdir(parents=True, mode=...)`` gives the
    parents the umask's mode, so a new ``~/.cache`` could be listed by others); parents that
    existed are left as they are: they are not ours to change."""
    missing: list[Path] = []
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile: checked like any other
            folder.mkdir(mode=0o700)


STORE_FILE = "conversations.sqlite3"


def store_file(setting: str) -> Path | None:
    """The SQLite file an ``AITOEARN_CONVERSATIONS`` value names: empty → the one in the state
    directory; ``sqlite:///abs/path`` or an absolute path (``~`` expanded) → that file; None for
    ``memory`` and URLs. Raises ValueError for a relative path (hosts start servers anywhere)."""
    if not setting:
        return state_dir() / STORE_FILE
    if setting == "memory" or (("://" in setting) and not setting.startswith("sqlite://")):
        return None
    path = Path(setting.removeprefix("sqlite://")).expanduser()
    if not path.is_absolute():
        raise ValueError(f"the store file must be an absolute path, got {setting!r}")
    return path
