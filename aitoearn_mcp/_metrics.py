"""The hooks the server calls to count what it does (calls, upstream time, retries); the base
records nothing. Stdio servers, and HTTP servers with metrics off, use it as it is; the HTTP
transport's Prometheus exporter fills them in (``transports/_prometheus.py``).
"""

from __future__ import annotations

from collections.abc import Container
from decimal import Decimal

__all__ = ["NO_METRICS", "Metrics"]


class Metrics:
    """The hooks the server calls; this base records nothing (stdio, or metrics off)."""

    def label_models(self, known: Container[str]) -> None:
        """Model names in ``known`` (the catalogue) are labels; any other counts as ``other``."""

    def call_started(self, tool: str) -> None: ...

    def call_finished(self, tool: str, model: str, route: str, outcome: str) -> None: ...

    def upstream(self, route: str, seconds: float, first_token: float | None) -> None: ...

    def streamed(self, model: str, route: str, chars: int, credits: Decimal | None) -> None: ...

    def retry(self, cause: str) -> None: ...


NO_METRICS = Metrics()
