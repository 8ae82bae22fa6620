"""The daily credits count (Store.add_credits) in each store: exact under concurrent adds from
two instances (two processes' worth of connections), by owner and day, given back, and kept two
days from its last change."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
import redis

from aitoearn_mcp.store._memory import MemoryStore
from aitoearn_mcp.store._protocol import COUNT_SECONDS, Store
from aitoearn_mcp.store._redis import RedisStore
from aitoearn_mcp.store._sqlite import SQLiteStore

from ..conftest import RedisServer

pytestmark = pytest.mark.anyio


async def concurrent_adds(stores: list[Store], owner: str, day: str, each: int, times: int) -> None:
    async with anyio.create_task_group() as tasks:
        for store in stores:
            for _ in range(times):
                tasks.start_soon(store.add_credits, owner, day, each)


async def check(make: Callable[[], Store], shared: bool) -> None:
    first = make()
    second = make() if shared else first
    try:
        await concurrent_adds([first, second], "owner-a", "2026-07-01", 1_500_000, 20)
        assert await first.add_credits("owner-a", "2026-07-01", 0) == 60_000_000  # no add lost
        assert await second.add_credits("owner-a", "2026-07-01", -1_500_000) == 58_500_000  # given back
        assert await first.add_credits("owner-b", "2026-07-01", 0) == 0  # per owner
        assert await first.add_credits("owner-a", "2026-07-02", 7) == 7  # per day
    finally:
        await first.aclose()
        if second is not first:
            await second.aclose()


async def test_memory_count() -> None:
    await check(lambda: MemoryStore(3600, 1 << 20), shared=False)


async def test_sqlite_count_shared_by_two_instances_and_kept_two_days(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    await check(lambda: SQLiteStore(path, 3600, 1 << 20), shared=True)
    with sqlite3.connect(path) as db:
        expires = [row[0] for row in db.execute("SELECT expires FROM credits")]
    assert expires and all(COUNT_SECONDS - 60 < e - time.time() <= COUNT_SECONDS for e in expires)


async def test_sqlite_count_in_a_file_made_before_it(tmp_path: Path) -> None:
    """A file of the same schema version without the credits table (made before it) gains it."""
    path = tmp_path / "store.sqlite3"
    store = SQLiteStore(path, 3600, 1 << 20)
    await store.ping()
    await store.aclose()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE credits")
    again = SQLiteStore(path, 3600, 1 << 20)
    try:
        assert await again.add_credits("o", "2026-07-01", 5) == 5
    finally:
        await again.aclose()


async def test_redis_count_shared_and_kept_two_days(redis_server: RedisServer) -> None:
    await check(lambda: RedisStore(redis_server.url, 3600), shared=True)
    client = redis.Redis.from_url(redis_server.url)
    keys = list(client.scan_iter("aitoearn-mcp:credits:*"))
    assert keys and all(COUNT_SECONDS * 1000 - 60_000 < client.pttl(k) <= COUNT_SECONDS * 1000 for k in keys)
    client.close()
