"""Streamable HTTP for shared deployments: stateless, so any number of processes behind any
load balancer serve the same clients, and keyed per caller.

Each request may carry its caller's own AiToEarn key (``X-Api-Key`` or ``Authorization:
Bearer``), used for that request only. The server's own key serves keyless requests only on
a loopback bind; on any other bind a keyless request gets HTTP 401. Probes: ``/healthz``
(liveness), ``/readyz`` (503 while draining or when a configured Redis does not answer), and
``/metrics`` in Prometheus text format.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Generator
from typing import Any

import anyio
import pydantic_core
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._config import Config, HttpSettings
from .._keys import key_digest, key_problem
from .._metrics import NO_METRICS, Metrics
from .._version import __version__
from ..delegation._drain import Drain
from ..server._caller import key_from_headers
from ..server._server import create_server
from ..store._open import open_store
from ._bodies import IN_FLIGHT_BYTES, MAX_BODY_BYTES, BodyBudget, BoundedBody
from ._connections import uvicorn_options
from ._prometheus import PrometheusMetrics

__all__ = ["MAX_BODY_BYTES", "app_from_env", "create_http_app", "serve"]

RETRY_AFTER_SECONDS = 5  # what a draining server tells clients and load balancers

_NO_KEY = (
    "This aitoearn-mcp server is shared: send your own AiToEarn API key with each request in the "
    "X-Api-Key header (or Authorization: Bearer <key>). Keys are created in Settings → API Key on the AiToEarn site."
)


def _security(settings: HttpSettings) -> TransportSecuritySettings:
    hosts: list[str] = []
    if settings.loopback:
        hosts += ["127.0.0.1", "localhost", "[::1]"]
    elif not settings.wildcard:
        hosts.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    hosts += settings.allowed_hosts
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *(f"{host}:*" for host in hosts)],
        allowed_origins=[*origins, *(f"{origin}:*" for origin in origins)],
    )


class _DrainGate:
    """While draining, new MCP requests get 503 with Retry-After (a load balancer moves on);
    at start-up, the process's SIGTERM and SIGINT are taken over to drain first."""

    def __init__(self, app: ASGIApp, drain: Drain, path: str) -> None:
        self.app = app
        self.drain = drain
        self.path = path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":

            async def on_startup() -> Any:
                message = await receive()
                if message["type"] == "lifespan.startup" and threading.current_thread() is threading.main_thread():
                    self.drain.install_signal_handlers()
                return message

            await self.app(scope, on_startup, send)
            return
        if self.drain.draining and scope["type"] == "http" and scope["path"].rstrip("/") == self.path:
            response = JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": _DRAINING}},
                status_code=503,
                headers={"retry-after": str(RETRY_AFTER_SECONDS), "connection": "close"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


_DRAINING = "This aitoearn-mcp server is shutting down; send the request again (to another server)."

# A request body up to this size is read to learn its JSON-RPC id; larger ones (rare: big
# attachments) are passed on unread and can be cancelled by closing the connection only.
_PEEK_BYTES = 8 * 1024 * 1024

# A request id seen again from the same caller within this time is another client's: hosts
# number their requests 1, 2, 3..., and a cancel may still be on its way after its call ended.
_REUSE_SECONDS = 30.0


@dataclasses.dataclass
class _Calls:
    """The calls in flight under one (caller, client address, request id)."""

    scopes: list[anyio.CancelScope]
    shared: bool = False  # two calls used this name: a cancel could mean either, so it stops neither
    ended_at: float = 0.0


class _CancelByNotification:
    """Stateless HTTP answers every POST on its own, so a ``notifications/cancelled`` (what the
    TypeScript SDK sends when a host aborts a call) reaches no session that knows the call. This
    keeps the calls in flight by caller, client address and JSON-RPC id and cancels the one named,
    which closes its relay stream and stops the billing.

    Two clients with the same key (or both keyless on loopback) use the same ids, and nothing in
    a stateless request tells them apart; so a name two calls have used stops no call by
    notification: each client's own call still stops when it closes its response stream."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path.rstrip("/")
        self._names: dict[tuple[str, str, str], _Calls] = {}
        self._ended: collections.deque[tuple[float, tuple[str, str, str]]] = collections.deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while size <= _PEEK_BYTES:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        complete = not messages[-1].get("more_body", False)

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        rpc = _json_object(b"".join(m.get("body", b"") for m in messages)) if complete else None
        method = rpc.get("method") if rpc is not None else None
        if rpc is None or method not in ("notifications/cancelled", "tools/call"):
            await self.app(scope, replay, send)
            return
        key = key_from_headers(Request(scope).headers)
        caller = key_digest(key) if key else ""  # one caller's ids only
        address = str((scope.get("client") or ("",))[0])
        if method == "notifications/cancelled":
            params = rpc.get("params")
            request_id = params.get("requestId") if isinstance(params, dict) else None
            if self._cancel((caller, address, str(request_id))):
                await Response(status_code=202)(scope, replay, send)
                return
        if method != "tools/call" or "id" not in rpc:
            await self.app(scope, replay, send)
            return
        name = (caller, address, str(rpc["id"]))
        cancel_scope = anyio.CancelScope()
        self._start(name, cancel_scope)
        try:
            with cancel_scope:
                await self.app(scope, replay, send)
        finally:
            self._end(name, cancel_scope)

    def _start(self, name: tuple[str, str, str], scope: anyio.CancelScope) -> None:
        now = time.monotonic()
        while self._ended and self._ended[0][0] < now - _REUSE_SECONDS:  # forget names long unused
            ended_at, old = self._ended.popleft()
            calls = self._names.get(old)
            if calls is not None and not calls.scopes and calls.ended_at == ended_at:
                del self._names[old]
        calls = self._names.get(name)
        if calls is None:
            self._names[name] = _Calls([scope])
        else:  # in flight or lately ended under the same name: another client's
            calls.shared = True
            calls.scopes.append(scope)

    def _end(self, name: tuple[str, str, str], scope: anyio.CancelScope) -> None:
        calls = self._names[name]
        calls.scopes.remove(scope)
        if not calls.scopes:
            calls.ended_at = time.monotonic()
            self._ended.append((calls.ended_at, name))

    def _cancel(self, name: tuple[str, str, str]) -> bool:
        calls = self._names.get(name)
        if calls is None or calls.shared or len(calls.scopes) != 1:
            return False
        calls.scopes[0].cancel()
        return True


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:  # pydantic's parser, as the SDK's: it refuses JSON nested past its depth limit instead of recursing
        parsed = pydantic_core.from_json(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _caller_key_problem(headers: Headers) -> str | None:
    """Why the caller's own key cannot be used, naming the header it came in."""
    if headers.get("x-api-key", "").strip():
        return key_problem(headers["x-api-key"].strip(), "The X-Api-Key header's key")
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return key_problem(token.strip(), "The Authorization header's Bearer key")
    return None


class _CallerKey:
    """Refuses MCP requests whose key cannot be a key (401, naming the header), and on a
    non-loopback bind those that carry no key of their own."""

    def __init__(self, app: ASGIApp, path: str, *, required: bool) -> None:
        self.app = app
        self.path = path.rstrip("/")
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_mcp = scope["type"] == "http" and scope["path"].rstrip("/") == self.path and scope["method"] != "OPTIONS"
        if is_mcp:
            headers = Request(scope).headers
            problem = _caller_key_problem(headers)
            if problem is None and self.required and key_from_headers(headers) is None:
                problem = _NO_KEY
            if problem is not None:
                response = JSONResponse(
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": problem}},
                    status_code=401,
                    headers={"www-authenticate": 'Bearer realm="aitoearn-mcp"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _metrics(settings: HttpSettings) -> Metrics:
    if not settings.metrics_enabled:
        return NO_METRICS
    metrics = PrometheusMetrics()
    if settings.metrics_port is not None:
        import prometheus_client

        prometheus_client.start_http_server(settings.metrics_port, addr=settings.host, registry=metrics.registry)
    return metrics


def create_http_app(config: Config, settings: HttpSettings) -> ASGIApp:
    """The ASGI app: MCP at ``settings.path`` (stateless), ``/healthz``, ``/readyz`` and, when
    enabled on the main port, ``/metrics``."""
    drain = Drain(settings.shutdown_grace)
    metrics = _metrics(settings)
    store = open_store(config.conversations, config.conversation_ttl, config.conversation_max_bytes)
    # Off loopback the server's key must never serve a keyless caller: leave it out entirely.
    server = create_server(
        config if settings.loopback else dataclasses.replace(config, api_key=None),
        http=True, drain=drain, metrics=metrics, store=store,
    )  # fmt: skip

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> Response:  # liveness: answers without touching the relay
        return JSONResponse({"status": "ok", "version": __version__})

    @server.custom_route("/readyz", methods=["GET"])
    async def readyz(_: Request) -> Response:
        if drain.draining:
            return JSONResponse({"status": "draining"}, status_code=503, headers={"retry-after": "5"})
        if not await store.ping():
            return JSONResponse({"status": "conversation store (Redis) not answering"}, status_code=503)
        return JSONResponse({"status": "ready", "in_flight": drain.in_flight})

    if isinstance(metrics, PrometheusMetrics) and settings.metrics_port is None:

        @server.custom_route("/metrics", methods=["GET"])
        async def metrics_page(_: Request) -> Response:
            body, content_type = metrics.render()
            return Response(body, media_type=content_type)

    app = server.streamable_http_app(
        streamable_http_path=settings.path,
        stateless_http=True,
        json_response=False,  # SSE responses carry progress notifications
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=_security(settings),
        host=settings.host,
    )
    bounded = BoundedBody(_CancelByNotification(app, settings.path), settings.path, settings.body_timeout,
                          BodyBudget(IN_FLIGHT_BYTES))  # fmt: skip
    return _CallerKey(_DrainGate(bounded, drain, settings.path), settings.path, required=not settings.loopback)


def serve(app: ASGIApp, settings: HttpSettings, log_level: str) -> int:
    """Run one uvicorn process; 0 once it has drained and stopped."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # uvicorn re-raises the signal it stopped on, which would end the process with status
            # -15 after a clean drain; the app's drain takes the signals over at start-up.
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level, **uvicorn_options(settings)
    )
    _Server(config).run()
    return 0


def app_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory``: the settings come from AITOEARN_* variables."""
    settings = HttpSettings.from_env()
    uvicorn_options(settings)  # a worker process's connection limits (when it runs our protocol)
    return create_http_app(Config.from_env(), settings)
