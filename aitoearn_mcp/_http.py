"""Streamable HTTP for shared deployments: stateless, so any number of processes behind any
load balancer serve the same clients, and keyed per caller.

Each request may carry its caller's own AiToEarn key (``X-Api-Key`` or ``Authorization:
Bearer``), used for that request only. The server's own key serves keyless requests only on
a loopback bind; on any other bind a keyless request gets HTTP 401.
"""

from __future__ import annotations

import dataclasses

from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__
from ._config import Config, HttpSettings
from ._server import create_server, key_from_headers

__all__ = ["MAX_BODY_BYTES", "app_from_env", "create_http_app"]

# The relay takes 50 MB; the JSON-RPC envelope around the same request needs a little more.
MAX_BODY_BYTES = 52 * 1024 * 1024

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


class _RequireCallerKey:
    """On a non-loopback bind, refuse MCP requests that carry no key of their own."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_mcp = scope["type"] == "http" and scope["path"].rstrip("/") == self.path and scope["method"] != "OPTIONS"
        if is_mcp and key_from_headers(Request(scope).headers) is None:
            response = JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": _NO_KEY}},
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="aitoearn-mcp"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_http_app(config: Config, settings: HttpSettings) -> ASGIApp:
    """The ASGI app: MCP at ``settings.path`` (stateless) and ``/healthz``."""
    # Off loopback the server's key must never serve a keyless caller: leave it out entirely.
    server = create_server(config if settings.loopback else dataclasses.replace(config, api_key=None), http=True)

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> Response:  # answers without touching the relay
        return JSONResponse({"status": "ok", "version": __version__})

    app = server.streamable_http_app(
        streamable_http_path=settings.path,
        stateless_http=True,
        json_response=False,  # SSE responses carry progress notifications
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=_security(settings),
        host=settings.host,
    )
    return app if settings.loopback else _RequireCallerKey(app, settings.path)


def app_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory``: the settings come from AITOEARN_* variables."""
    return create_http_app(Config.from_env(), HttpSettings.from_env())
