"""The three media catalogues, cached: fetched at most once per ``ttl``, shared by concurrent
callers, and kept when a refresh fails.

Behaviour, as for the chat catalogue: one fetch at a time per catalogue (callers that arrive
while it runs wait for it and use its result); a failed refresh keeps serving the last good
list, marked stale with the error, and is not retried for ``failure_backoff`` seconds (so a
down endpoint costs one wait, not one per call); with nothing cached a failure is raised.
The catalogues are public and answer the same for every key, so there is one cache, not one
per key, and no key is sent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

from .._errors import RelayError
from ._client import MediaClient
from ._models import ImageEditModel, ImageModel, VideoModel

__all__ = ["Catalogue", "MediaCatalogue"]

_M = TypeVar("_M", ImageModel, ImageEditModel, VideoModel)


@dataclass(frozen=True)
class Catalogue(Generic[_M]):
    """One catalogue as last fetched. ``stale`` with ``error``: the refresh failed and this is
    the previous list (``fetched_at`` is its wall-clock time)."""

    models: tuple[_M, ...]
    fetched_at: float
    stale: bool = False
    error: RelayError | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(model.name for model in self.models)

    def get(self, name: str) -> _M | None:
        return next((model for model in self.models if model.name == name), None)


@dataclass
class _Cache(Generic[_M]):
    current: Catalogue[_M] | None = None
    fetched_at: float = float("-inf")  # monotonic
    failed_at: float = float("-inf")
    error: RelayError | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)


class MediaCatalogue:
    """Cached image-generation, image-edit and video-generation catalogues."""

    def __init__(self, ttl: float = 300.0, *, failure_backoff: float = 30.0) -> None:
        self.ttl = ttl
        self.failure_backoff = failure_backoff
        self._images: _Cache[ImageModel] = _Cache()
        self._edits: _Cache[ImageEditModel] = _Cache()
        self._videos: _Cache[VideoModel] = _Cache()

    async def image_models(self, client: MediaClient, *, refresh: bool = False) -> Catalogue[ImageModel]:
        return await self._get(self._images, client.image_generation_models, refresh)

    async def image_edit_models(self, client: MediaClient, *, refresh: bool = False) -> Catalogue[ImageEditModel]:
        return await self._get(self._edits, client.image_edit_models, refresh)

    async def video_models(self, client: MediaClient, *, refresh: bool = False) -> Catalogue[VideoModel]:
        return await self._get(self._videos, client.video_generation_models, refresh)

    async def _get(
        self, cache: _Cache[_M], fetch: Callable[[], Awaitable[Sequence[_M]]], refresh: bool
    ) -> Catalogue[_M]:
        requested = time.monotonic()
        async with cache.lock:
            now = time.monotonic()
            if cache.fetched_at >= requested or cache.failed_at >= requested:
                pass  # another caller fetched (or failed) while this one waited: share its outcome
            elif refresh or now - cache.fetched_at >= self.ttl:
                if not refresh and now - cache.failed_at < self.failure_backoff:
                    pass  # failed moments ago: serve what there is
                else:
                    try:
                        models = tuple(await fetch())
                    except RelayError as exc:
                        cache.failed_at, cache.error = time.monotonic(), exc
                    else:
                        cache.current = Catalogue(models, time.time())
                        cache.fetched_at, cache.error = time.monotonic(), None
            if cache.error is not None and cache.failed_at > cache.fetched_at:
                if cache.current is None:
                    raise cache.error
                return Catalogue(cache.current.models, cache.current.fetched_at, stale=True, error=cache.error)
            assert cache.current is not None
            return cache.current
