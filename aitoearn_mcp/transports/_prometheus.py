"""Prometheus metrics for shared deployments: what the server does, never what it carries.

Labels hold tool names, catalogue model names (any other name counts as ``other``, so a
caller cannot grow the label set), routes, outcomes and retry causes: never a key, a prompt or
a reply. ``prometheus_client`` comes with the ``shared`` extra; stdio servers never import it.
Under several worker processes (PROMETHEUS_MULTIPROC_DIR set) the figures are summed across them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Container
from decimal import Decimal
from typing import Any

from .._metrics import Metrics

__all__ = ["NOT_INSTALLED", "PrometheusMetrics", "installed"]

NOT_INSTALLED = (
    "/metrics is off: it needs prometheus-client, which comes with the shared extra "
    "(pip install 'aitoearn-mcp[shared]'); --no-metrics turns it off without this notice"
)

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
_FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)


def installed() -> bool:
    """Whether prometheus_client can be imported (without importing it)."""
    return importlib.util.find_spec("prometheus_client") is not None


class PrometheusMetrics(Metrics):
    def __init__(self) -> None:
        import prometheus_client as prom

        self._prom = prom
        self._known: Container[str] = ()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry = prom.CollectorRegistry()
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # In multiprocess mode values live in files; collection goes through MultiProcessCollector.
        register: Any = None if multiprocess else self.registry
        self._calls = prom.Counter("aitoearn_mcp_calls", "Tool calls by tool, model, route and outcome",
                                   ["tool", "model", "route", "outcome"], registry=register)  # fmt: skip
        self._in_flight = prom.Gauge("aitoearn_mcp_calls_in_flight", "Tool calls running now", ["tool"],
                                     registry=register, multiprocess_mode="livesum")  # fmt: skip
        self._latency = prom.Histogram("aitoearn_mcp_upstream_seconds", "Relay call duration, retries included",
                                       ["route"], buckets=_LATENCY_BUCKETS, registry=register)  # fmt: skip
        self._first = prom.Histogram("aitoearn_mcp_first_token_seconds", "Time from the request to the first event",
                                     ["route"], buckets=_FIRST_TOKEN_BUCKETS, registry=register)  # fmt: skip
        self._retries = prom.Counter("aitoearn_mcp_retries", "Relay requests retried, by cause", ["cause"],
                                     registry=register)  # fmt: skip
        self._chars = prom.Counter("aitoearn_mcp_streamed_characters", "Characters of replies streamed",
                                   ["model", "route"], registry=register)  # fmt: skip
        self._credits = prom.Counter("aitoearn_mcp_credits_estimate", "Estimated credits spent, by model", ["model"],
                                     registry=register)  # fmt: skip
        if multiprocess:
            from prometheus_client import multiprocess as mp

            mp.MultiProcessCollector(self.registry)

    def label_models(self, known: Container[str]) -> None:
        self._known = known

    def _model(self, model: str) -> str:
        return model if model in self._known else "other"

    def _child(self, metric: Any, *labels: str) -> Any:
        """The metric's child for these label values, looked up once: ``labels()`` takes a lock and
        checks the values each time. The values are bounded (see the module), so is this."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def call_started(self, tool: str) -> None:
        self._child(self._in_flight, tool).inc()

    def call_finished(self, tool: str, model: str, route: str, outcome: str) -> None:
        self._child(self._in_flight, tool).dec()
        self._child(self._calls, tool, self._model(model) if model else "", route, outcome).inc()

    def upstream(self, route: str, seconds: float, first_token: float | None) -> None:
        self._child(self._latency, route).observe(seconds)
        if first_token is not None:
            self._child(self._first, route).observe(first_token)

    def streamed(self, model: str, route: str, chars: int, credits: Decimal | None) -> None:
        self._child(self._chars, self._model(model), route).inc(chars)
        if credits is not None:
            self._child(self._credits, self._model(model)).inc(float(credits))

    def retry(self, cause: str) -> None:
        self._child(self._retries, cause).inc()

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
