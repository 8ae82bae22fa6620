"""The relay's chat model catalogue, cached: what ``list_models`` shows and what picks a
model's route and prices its calls."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import SecretStr

from ._errors import RelayError
from ._relay import OnRetry, RelayClient

__all__ = ["Catalogue"]

# A send_message call reads the cached catalogue; it fetches it only when the cache is older
# than the TTL (never less than LOOKUP_MIN_AGE), waits LOOKUP_WAIT at most, and does not try
# again for LOOKUP_BACKOFF after a failure: a model missing from the catalogue still gets its call.
LOOKUP_MIN_AGE = 60.0
LOOKUP_WAIT = 5.0
LOOKUP_BACKOFF = 30.0


@dataclass
class Catalogue:
    """The model list, cached for ``ttl`` seconds; one fetch at a time."""

    ttl: float
    entries: list[dict[str, Any]] = field(default_factory=list)
    by_name: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    failed_at: float = float("-inf")
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    async def get(
        self, relay: RelayClient, key: SecretStr | None, *, refresh: bool = False, on_retry: OnRetry | None = None
    ) -> list[dict[str, Any]]:
        async with self.lock:
            if refresh or time.monotonic() - self.fetched_at >= self.ttl:
                await self._fetch(relay, key, on_retry=on_retry)
            return self.entries

    async def _fetch(
        self, relay: RelayClient, key: SecretStr | None, *, on_retry: OnRetry | None = None, retries: int | None = None
    ) -> None:
        try:
            entries = await relay.list_models(key, on_retry=on_retry, max_retries=retries)
        except RelayError:
            self.failed_at = time.monotonic()
            raise
        self.entries = entries
        self.by_name = {str(entry["name"]): entry for entry in entries}
        self.fetched_at = time.monotonic()

    async def entry(self, name: str, relay: RelayClient, key: SecretStr | None) -> dict[str, Any] | None:
        """The model's catalogue entry, or None when the catalogue does not list it or cannot
        be had quickly."""
        now = time.monotonic()
        stale = now - self.fetched_at >= max(self.ttl, LOOKUP_MIN_AGE)
        if stale and now - self.failed_at >= LOOKUP_BACKOFF:
            with anyio.move_on_after(LOOKUP_WAIT):
                async with self.lock:
                    if time.monotonic() - self.fetched_at >= max(self.ttl, LOOKUP_MIN_AGE):
                        # On failure: route by the fallback rule; list_models reports the failure.
                        with contextlib.suppress(RelayError):
                            await self._fetch(relay, key, retries=0)
        return self.by_name.get(name)
