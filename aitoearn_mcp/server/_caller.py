"""Who a call runs for: the caller's own key from an HTTP request's headers, and the state and
key every tool, resource and task runs with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from mcp.server.mcpserver import Context
from pydantic import SecretStr

from ._state import State

__all__ = ["Caller", "key_from_headers", "state_and_key"]

Caller = Callable[[Context], tuple[State, SecretStr | None]]


def key_from_headers(headers: Mapping[str, str] | None) -> SecretStr | None:
    """The caller's own key from an HTTP request: ``X-Api-Key`` or ``Authorization: Bearer``."""
    if not headers:
        return None
    if value := headers.get("x-api-key", "").strip():
        return SecretStr(value)
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return SecretStr(token.strip())
    return None


def state_and_key(ctx: Context, server_key: SecretStr | None) -> tuple[State, SecretStr | None]:
    """The lifespan's state and the key this call spends. Over HTTP a caller's own key wins; the
    transport layer decides whether the server's may serve at all."""
    return cast(State, ctx.request_context.lifespan_context), key_from_headers(ctx.headers) or server_key
