"""Store.claim_reply, the take-over of a running reply no process looks after, in each store:
among claims made at once from two instances (two processes' worth of connections) on the record
they all read, exactly one wins; a claim on a record that changed since, another owner's, or an
unknown id wins nothing and leaves the record as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from aitoearn_mcp.store._memory import MemoryStore
from aitoearn_mcp.store._protocol import Store, new_reply_id
from aitoearn_mcp.store._redis import RedisStore
from aitoearn_mcp.store._sqlite import SQLiteStore

from ..conftest import RedisServer

pytestmark = pytest.mark.anyio

CLAIMS = 12


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two instances on one store (the memory store is one process's: the same instance twice)."""
    if request.param == "memory":
        store = MemoryStore(ttl=60, max_bytes=10**6)
        yield store, store
        return
    if request.param == "sqlite":
        first, second = (SQLiteStore(tmp_path / "store.sqlite3", ttl=60, max_bytes=10**6) for _ in range(2))
    else:
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        first, second = (RedisStore(redis_server.url, ttl=60, max_bytes=10**6) for _ in range(2))
    yield first, second
    await first.aclose()
    await second.aclose()


def record(claimant: str) -> str:
    return f'{{"status": "running", "model": "m", "started": 1.0, "updated": 2.0, "text": "{claimant}"}}'


async def test_of_claims_made_at_once_on_one_record_exactly_one_wins(two_stores: tuple[Store, Store]) -> None:
    first, second = two_stores
    reply_id, owner = new_reply_id(), "owner-a"
    stale = record("left by a stopped process")
    await first.save_reply(reply_id, owner, stale)
    won: list[str] = []

    async def claim(store: Store, claimant: str) -> None:
        if await store.claim_reply(reply_id, owner, stale, record(claimant)):
            won.append(claimant)

    async with anyio.create_task_group() as claims:
        for n in range(CLAIMS):
            claims.start_soon(claim, (first, second)[n % 2], f"claimant {n}")
    assert len(won) == 1, won
    assert await second.load_reply(reply_id, owner) == record(won[0])  # the winner's record is the one kept
    assert not await first.claim_reply(reply_id, owner, stale, record("late"))  # it changed since it was read


async def test_a_claim_on_another_owners_or_an_unknown_reply_wins_nothing(two_stores: tuple[Store, Store]) -> None:
    first, second = two_stores
    reply_id = new_reply_id()
    stale = record("left by a stopped process")
    await first.save_reply(reply_id, "owner-a", stale)
    assert not await second.claim_reply(reply_id, "owner-b", stale, record("another key"))
    assert not await second.claim_reply(new_reply_id(), "owner-a", stale, record("unknown id"))
    assert not await second.claim_reply("r_bad id", "owner-a", stale, record("malformed id"))
    assert await first.load_reply(reply_id, "owner-a") == stale
    assert await second.claim_reply(reply_id, "owner-a", stale, record("the owner"))
