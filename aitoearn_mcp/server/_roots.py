"""The directories the server may read files from for one call (stdio ``files``).

A client without the roots capability gets the server's working directory; a client that
offers roots gets exactly what it grants, and nothing when it grants nothing, answers with
an error or lists no local directory: a client that offers roots has said where the agent
may read. AITOEARN_FILES_ROOTS is added either way.

Roots are asked for the way the connection's protocol allows: a ``roots/list`` request
mid-call up to 2025-11-25, an input-required round on 2026-07-28 (the SDK's resolver does
both; the call then runs again with the client's answer).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import ListRoots, Resolve, build_resolver_plans, resolve_arguments
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import InputRequiredResult, ListRootsResult
from pydantic import ValidationError

__all__ = ["ROOTS_ASK", "ROOTS_WAIT", "Roots", "allowed_roots", "roots_from_uris"]

ROOTS_WAIT = 5.0  # seconds a client has to answer roots/list before it counts as granting none

_FIX = (
    "fix: add the file's folder to the client's roots (its workspace or project folders), "
    "or to AITOEARN_FILES_ROOTS in the server's environment"
)


@dataclass(frozen=True)
class Roots:
    """Where files may be read from; ``why_none`` says why the client granted nothing."""

    paths: tuple[Path, ...]
    why_none: str = ""


def roots_from_uris(uris: Iterable[str]) -> list[Path]:
    """The local directories among MCP roots (``file://`` URIs)."""
    roots = []
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme == "file" and parts.path:
            roots.append(Path(unquote(parts.path)))
    return roots


def _ask_for_roots() -> ListRoots:
    return ListRoots()


_ASK = {"roots": (Resolve(_ask_for_roots), False)}
_PLANS = build_resolver_plans(_ASK, set())


@dataclass(frozen=True)
class _RootsQuestion:
    """The roots question as another resolution in the same call includes it (``_spend``), so an
    input-required round it makes carries the roots' answer on."""

    entry: tuple[Resolve, bool]
    wire_key: str


ROOTS_ASK = _RootsQuestion(_ASK["roots"], next(iter(_PLANS.values())).wire_key)


def client_gives_roots(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared roots (then its first root is the user's working folder)."""
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.roots is not None


async def allowed_roots(ctx: Context[Any, Any], extra: tuple[str, ...]) -> Roots | InputRequiredResult:
    """The roots for this call, or (on 2026-07-28) the input-required result that asks the
    client for them: return it as the tool's result, and the call comes back with the answer."""
    configured = tuple(Path(p) for p in extra)
    if not client_gives_roots(ctx):
        return Roots((Path.cwd(), *configured))
    why = f"the client offers roots but did not answer roots/list within {ROOTS_WAIT:g} s"
    with anyio.move_on_after(ROOTS_WAIT), warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)  # roots are deprecated in 2026-07-28
        try:
            resolved = await resolve_arguments(_ASK, _PLANS, {}, ctx)
        except MCPError as exc:
            resolved = None
            why = f"the client offers roots but answered roots/list with an error ({exc.error.message})"
        except (ToolError, ValidationError):  # an answer that is not a roots list: roots must be file:// URIs
            resolved = None
            why = "the client's roots are not local folders (file:// URIs)"
        if isinstance(resolved, InputRequiredResult):
            return resolved
        if resolved is not None:
            listed: ListRootsResult = resolved["roots"]
            uris = [str(root.uri) for root in listed.roots]
            granted = roots_from_uris(uris)
            if granted:
                return Roots((*granted, *configured))
            why = (
                "the client offers roots but granted none"
                if not uris
                else f"the client's roots are not local folders ({', '.join(uris[:3])})"
            )
    return Roots(configured, why_none=f"{why}; {_FIX}")
