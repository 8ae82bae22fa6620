"""Which store ``AITOEARN_CONVERSATIONS`` names, and how long it keeps an item by default. Apart
from the stores, so that none of them imports the module that picks between them."""

from __future__ import annotations

from .._paths import store_file
from ._memory import MemoryStore
from ._protocol import Store

__all__ = ["FILE_TTL", "MEMORY_TTL", "default_ttl", "open_store"]

MEMORY_TTL = 3 * 3600.0  # in memory or Redis: a working session
FILE_TTL = 30 * 24 * 3600.0  # on disk: yesterday's thread is still there today


def default_ttl(setting: str) -> float:
    """How long an item is kept after its last use when AITOEARN_CONVERSATION_TTL is unset."""
    return MEMORY_TTL if setting == "memory" or setting.startswith(("redis://", "rediss://")) else FILE_TTL


def open_store(setting: str, ttl: float | None, max_bytes: int) -> Store:
    """The store ``AITOEARN_CONVERSATIONS`` names (checked by Config): empty → the SQLite file in
    the user's state directory; ``memory``; a file; a Redis URL. Nothing is opened yet."""
    from ._sqlite import SQLiteStore

    ttl = ttl or default_ttl(setting)
    if setting.startswith(("redis://", "rediss://")):
        from ._redis import RedisStore

        return RedisStore(setting, ttl, max_bytes)
    path = store_file(setting)
    if path is None:
        return MemoryStore(ttl, max_bytes)
    return SQLiteStore(path, ttl, max_bytes, private_folder=not setting)
