"""What the server's lifespan holds for the calls: the relay's client, the catalogue, the store
and the delegations running in this process. Each is built by the first call that uses it:
listing the tools needs none of them, so a server starting up loads none of their modules
(headless hosts list tools without waiting for a server still starting).
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

    from .._config import Config
    from .._metrics import Metrics
    from ..delegation._delegation import Delegations
    from ..delegation._drain import Drain
    from ..relay._catalogue import Catalogue
    from ..relay._client import RelayClient
    from ..store._protocol import Store

__all__ = ["State"]


class State:
    """``tasks``: the lifespan's task group, where delegations run; ``store`` and ``catalogue``:
    the server's own (they outlive a lifespan), built on first use too."""

    def __init__(
        self,
        config: Config,
        store: Callable[[], Store],
        tasks: TaskGroup,
        catalogue: Callable[[], Catalogue],
        *,
        drain: Drain | None,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._store_used = False
        self._config = config
        self._tasks = tasks
        self._catalogue = catalogue
        self._drain = drain
        self._metrics = metrics
        self._http: httpx2.AsyncClient | None = None

    @functools.cached_property
    def relay(self) -> RelayClient:
        from ..relay._client import RelayClient, new_http_client

        self._http = new_http_client(self._config)
        return RelayClient(self._config, self._http, metrics=self._metrics)

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
    ) -> AsyncIterator[State]:
        """Hold it while the server runs; then cut the delegations still running (their text is
        kept), and close the relay's client and the store once they have stopped."""
        state: State | None = None
        try:
            async with anyio.create_task_group() as tasks:
                state = cls(config, store, tasks, catalogue, drain=drain, metrics=metrics)
                try:
                    yield state
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            if state is not None and state._http is not None:
                await state._http.aclose()
            if state is not None and state._store_used:
                await state.store.aclose()
