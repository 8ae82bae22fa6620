"""What the server's lifespan holds for the calls: the relay's client, the catalogue, the store,
the media services (their HTTP client and catalogues) and the delegations running in this
process. Each is built by the first call that uses it: listing the tools needs none of them, so a
server starting up loads none of their modules (headless hosts list tools without waiting for a
server still starting).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

if TYPE_CHECKING:
    import httpx2
    from pydantic import SecretStr

    from .._config import Config
    from .._metrics import Metrics
    from ..delegation._delegation import Delegations
    from ..delegation._drain import Drain
    from ..media._catalogue import MediaCatalogue
    from ..media._client import MediaClient
    from ..relay._catalogue import Catalogue
    from ..relay._client import RelayClient
    from ..store._protocol import Store
    from ._notices import CallerBus, ListingNotices

__all__ = ["MEDIA_READ_TIMEOUT", "State"]

MEDIA_READ_TIMEOUT = 300.0  # a 4K image at high quality takes minutes, with nothing sent meanwhile


class State:
    """``tasks``: the lifespan's task group, where delegations run; ``store`` and ``catalogue``:
    the server's own (they outlive a lifespan), built on first use too; ``listeners``: the
    server's listen streams, by caller."""

    def __init__(
        self,
        config: Config,
        store: Callable[[], Store],
        tasks: TaskGroup,
        catalogue: Callable[[], Catalogue],
        *,
        drain: Drain | None,
        metrics: Metrics,
        listeners: CallerBus,
    ) -> None:
        self._store = store
        self._store_used = False
        self._config = config
        self._tasks = tasks
        self._catalogue = catalogue
        self._drain = drain
        self._metrics = metrics
        self._listeners = listeners
        self._http: httpx2.AsyncClient | None = None
        self._media_http: httpx2.AsyncClient | None = None

    @functools.cached_property
    def relay(self) -> RelayClient:
        from ..relay._client import RelayClient, new_http_client

        self._http = new_http_client(self._config)
        return RelayClient(self._config, self._http, metrics=self._metrics)

    @functools.cached_property
    def media_http(self) -> httpx2.AsyncClient:
        """The media routes' client (a MediaClient per caller's key wraps it), also used for uploads
        to storage and downloads, which carry no key: rooted at the site, and a read timeout of at
        least ``MEDIA_READ_TIMEOUT``, since a synchronous image call sends nothing until the image
        is made."""
        import httpx2

        from .._version import __version__

        read = max(self._config.read_timeout, MEDIA_READ_TIMEOUT)
        timeout = httpx2.Timeout(connect=self._config.connect_timeout, read=read, write=read,
                                 pool=self._config.connect_timeout)  # fmt: skip
        self._media_http = httpx2.AsyncClient(base_url=self._config.base_url, timeout=timeout,
                                              headers={"user-agent": f"aitoearn-mcp/{__version__}"})  # fmt: skip
        return self._media_http

    @functools.cached_property
    def media_catalogue(self) -> MediaCatalogue:
        from ..media._catalogue import MediaCatalogue

        return MediaCatalogue(ttl=self._config.models_cache_ttl)

    def media(self, key: SecretStr | None) -> MediaClient:
        """A media client for one caller's key (cheap: the HTTP client is shared)."""
        from ..media._client import MediaClient

        return MediaClient(self.media_http, key, max_retries=self._config.max_retries)

    @functools.cached_property
    def listing(self) -> ListingNotices:
        from ._notices import ListingNotices

        return ListingNotices(self._tasks, self._listeners)

    @property
    def store(self) -> Store:
        self._store_used = True
        return self._store()

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue()

    @functools.cached_property
    def delegations(self) -> Delegations:
        from ..delegation._delegation import Delegations

        return Delegations(self.store, self._tasks, self._drain)

    def every(self, seconds: float, work: Callable[[], None]) -> None:
        """Run ``work`` every ``seconds`` beside the calls until the lifespan ends, the first time
        after ``seconds``: start-up does no more than schedule it. ``work`` must not raise."""

        async def repeat() -> None:
            while True:
                await anyio.sleep(seconds)
                work()

        self._tasks.start_soon(repeat)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: Config,
        store: Callable[[], Store],
        catalogue: Callable[[], Catalogue],
        *,
        drain: Drain | None,
        metrics: Metrics,
        listeners: CallerBus,
    ) -> AsyncIterator[State]:
        """Hold it while the server runs; then cut the delegations still running (their text is
        kept), and close the relay's client and the store once they have stopped."""
        state: State | None = None
        try:
            async with anyio.create_task_group() as tasks:
                state = cls(config, store, tasks, catalogue, drain=drain, metrics=metrics, listeners=listeners)
                try:
                    yield state
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            if state is not None and state._http is not None:
                await state._http.aclose()
            if state is not None and state._media_http is not None:
                await state._media_http.aclose()
            if state is not None and state._store_used:
                await state.store.aclose()
