"""The relay's chat model catalogue, cached: what ``list_models`` shows and what picks a
model's route and prices its calls."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import SecretStr

from .._errors import RelayError
from ._client import OnRetry, RelayClient

__all__ = ["Catalogue"]

# A send_message call reads the cached catalogue; it fetches it only when the cache is older
# than the TTL (never less than LOOKUP_MIN_AGE), waits LOOKUP_WAIT at most, and does not try
# again for LOOKUP_BACKOFF after a failure or a fetch that ran out of time: a model missing
# from the catalogue still gets its call, and a hung catalogue endpoint costs one wait, not one per call.
LOOKUP_MIN_AGE = 60.0
LOOKUP_WAIT = 5.0
LOOKUP_BACKOFF = 30.0
# The relay may answer each key with its own catalogue, so each key has its own cache (a caller
# never sees what another key's catalogue shows); the least recently used go first.
MAX_KEYS = 64


@dataclass
class _Cached:
    entries: list[dict[str, Any]] = field(default_factory=list)
    by_name: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    failed_at: float = float("-inf")
    lock: anyio.Lock = field(default_factory=anyio.Lock)


@dataclass
class Catalogue:
    """The model list per key, cached for ``ttl`` seconds; one fetch at a time per key."""

    ttl: float
    _caches: OrderedDict[bytes, _Cached] = field(default_factory=OrderedDict)

    def __contains__(self, name: object) -> bool:
        return any(name in cached.by_name for cached in self._caches.values())

    def _cache(self, key: SecretStr | None) -> _Cached:
        # A digest, not the key: the cache outlives the call and is not where a key should be.
        digest = hashlib.sha256(key.get_secret_value().encode("utf-8", "surrogatepass")).digest() if key else b""
        cached = self._caches.pop(digest, None) or _Cached()
        self._caches[digest] = cached
        while len(self._caches) > MAX_KEYS:
            self._caches.popitem(last=False)
        return cached

    async def get(
        self, relay: RelayClient, key: SecretStr | None, *, refresh: bool = False, on_retry: OnRetry | None = None
    ) -> list[dict[str, Any]]:
        cached = self._cache(key)
        async with cached.lock:
            if refresh or time.monotonic() - cached.fetched_at >= self.ttl:
                await _fetch(cached, relay, key, on_retry=on_retry)
            return cached.entries

    async def entry(self, name: str, relay: RelayClient, key: SecretStr | None) -> dict[str, Any] | None:
        """The model's catalogue entry, or None when the catalogue does not list it or cannot
        be had quickly."""
        return (await self._lookup(relay, key)).by_name.get(name)

    async def listed(self, relay: RelayClient, key: SecretStr | None) -> list[dict[str, Any]]:
        """The catalogue as a call reads it (aliases, the allowlist): as ``entry`` does, the cached
        list, fetched when stale within a short wait; empty when it cannot be had quickly."""
        return (await self._lookup(relay, key)).entries

    async def _lookup(self, relay: RelayClient, key: SecretStr | None) -> _Cached:
        cached = self._cache(key)
        now = time.monotonic()
        stale = now - cached.fetched_at >= max(self.ttl, LOOKUP_MIN_AGE)
        if stale and now - cached.failed_at >= LOOKUP_BACKOFF:
            with anyio.move_on_after(LOOKUP_WAIT) as waited:
                async with cached.lock:
                    if time.monotonic() - cached.fetched_at >= max(self.ttl, LOOKUP_MIN_AGE):
                        # On failure: route by the fallback rule; list_models reports the failure.
                        with contextlib.suppress(RelayError):
                            await _fetch(cached, relay, key, retries=0)
            if waited.cancelled_caught:  # a hung endpoint (or a fetch in another call) outlasted the wait
                cached.failed_at = time.monotonic()
        return cached


async def _fetch(
    cached: _Cached, relay: RelayClient, key: SecretStr | None, *, on_retry: OnRetry | None = None,
    retries: int | None = None,
) -> None:  # fmt: skip
    try:
        entries = await relay.list_models(key, on_retry=on_retry, max_retries=retries)
    except RelayError:
        cached.failed_at = time.monotonic()
        raise
    cached.entries = entries
    cached.by_name = {str(entry["name"]): entry for entry in entries}
    cached.fetched_at = time.monotonic()
