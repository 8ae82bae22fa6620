"""The MCP server: six tools and three resources wired to the work in ``_tools`` and
``_listing``, the tasks extension, and what the server keeps between calls.

Data flows one way: tool arguments → DTO → SendJob → Delegation (RelayClient → events →
ReplyAccumulator → record) → CallToolResult.

Listing the tools takes only the wiring, the names and descriptions and the published schemas:
the work behind them (the DTOs, the relay, the store, files, reply views) loads on the first call,
since headless hosts do not wait for a server still starting before they list its tools.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.inbound import x_mcp_header_map
from mcp.types import CallToolResult, SetLevelRequestParams, SubscriptionsListenRequestParams, ToolAnnotations

from .._config import Config
from .._metrics import NO_METRICS, Metrics
from .._version import __version__
from ..delegation._drain import Drain
from ._caller import Caller, key_from_headers, state_and_key
from ._descriptions import (
    GENERATE_IMAGE_DESCRIPTION,
    GENERATE_VIDEO_DESCRIPTION,
    GET_REPLY_DESCRIPTION,
    INSTRUCTIONS,
    LIST_CONVERSATIONS_DESCRIPTION,
    LIST_MODELS_DESCRIPTION,
    SEND_MESSAGE_DESCRIPTION,
)
from ._notices import CallerBus, set_logging_level
from ._registration import counted, registered
from ._resources import add_resources
from ._schemas import IMAGE_SCHEMA, MESSAGE_SCHEMA, MODELS_SCHEMA, VIDEO_SCHEMA
from ._state import State
from ._tasks import Tasks

if TYPE_CHECKING:
    from ..relay._catalogue import Catalogue
    from ..store._protocol import Store
    from ._listing import Listing
    from ._tools import Tools

__all__ = ["create_server"]

EXPIRE_EVERY = 600.0  # seconds between looks for expired reply files; more often when replies live shorter

_PAID = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)


def create_server(
    config: Config,
    *,
    http: bool = False,
    stdio: bool = False,
    drain: Drain | None = None,
    metrics: Metrics = NO_METRICS,
    store: Store | None = None,
) -> MCPServer:
    """Build the server; what calls use is built by the first call that needs it (listing the
    tools needs none of it), kept by the server's lifespan, and closed with it. ``http``:
    serving streamable HTTP, where the server never reads its own disk for a caller; ``stdio``:
    serving a host over stdio (over either, a client asks for progress with a token; in process,
    the default, the SDK passes it by callback, unseen, so it is always reported); ``drain``
    tracks calls in flight for a graceful shutdown; ``store`` defaults to the one the
    configuration names."""

    # Each built on first use: listing the tools needs none of them.
    @functools.cache
    def shared() -> Store:  # the server's: it outlives a lifespan
        if store is not None:
            return store
        from ..store._open import open_store

        return open_store(config.conversations, config.conversation_ttl, config.conversation_max_bytes)

    @functools.cache
    def work() -> Tools:
        from ._tools import Tools

        return Tools(config, http=http, metrics=metrics, progress_by_token=http or stdio)

    @functools.cache
    def listing() -> Listing:
        from ._listing import Listing

        return Listing(caller, lambda ctx: work().budget(ctx))

    @functools.cache
    def catalogue() -> Catalogue:  # the server's: it outlives a lifespan
        from ..relay._catalogue import Catalogue

        built = Catalogue(ttl=config.models_cache_ttl)
        metrics.label_models(built)
        return built

    def expire_reply_files() -> None:
        from ._reply_files import expire_reply_files, reply_ttl

        expire_reply_files(reply_ttl(config))

    # A listen stream hears of the changes made with its own key only (a shared deployment's
    # callers are not told of each other's work).
    listeners = CallerBus(lambda headers: key_from_headers(headers) or config.api_key)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[State]:
        async with State.open(config, shared, catalogue, drain=drain, metrics=metrics, listeners=listeners) as state:
            if not http:  # reply files are written in stdio mode only
                state.every(min(config.conversation_ttl or EXPIRE_EVERY, EXPIRE_EVERY), expire_reply_files)
            yield state

    caller: Caller = functools.partial(state_and_key, server_key=config.api_key)

    async def list_conversations(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        return await listing().list_conversations(arguments, ctx)

    tools = [
        registered(
            counted("list_models", lambda: work().list_models, caller, metrics), "list_models",
            "List AiToEarn chat models", LIST_MODELS_DESCRIPTION, MODELS_SCHEMA,
            ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True),
        ),
        registered(
            counted("send_message", lambda: work().send_message, caller, metrics), "send_message",
            "Ask another model (AiToEarn)", SEND_MESSAGE_DESCRIPTION, MESSAGE_SCHEMA, _PAID,
        ),
        # Not read-only: it can cancel a generation. Waiting and reading again are harmless.
        registered(
            counted("get_reply", lambda: work().get_reply, caller, metrics), "get_reply",
            "Collect a delegated reply", GET_REPLY_DESCRIPTION, MESSAGE_SCHEMA,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
        ),
        registered(
            counted("generate_image", lambda: work().generate_image, caller, metrics), "generate_image",
            "Generate an image (AiToEarn)", GENERATE_IMAGE_DESCRIPTION, IMAGE_SCHEMA, _PAID,
        ),
        registered(
            counted("generate_video", lambda: work().generate_video, caller, metrics), "generate_video",
            "Generate a video (AiToEarn)", GENERATE_VIDEO_DESCRIPTION, VIDEO_SCHEMA, _PAID,
        ),
        registered(
            list_conversations, "list_conversations", "List your AiToEarn conversations",
            LIST_CONVERSATIONS_DESCRIPTION, None,
            ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
        ),
    ]  # fmt: skip
    # send_message, generate_image and generate_video as MCP tasks for clients that declare the
    # tasks extension (2026-07-28).
    tasks = Tasks(work, caller, metrics)
    server = MCPServer("aitoearn-mcp", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, tools=tools,
                       extensions=[tasks], subscriptions=listeners)  # fmt: skip
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listeners.listen)
    # Over streamable HTTP (2026-07-28) the SDK checks each call's Mcp-Param-* headers against
    # the tool's input schema, walking the whole schema twice per call (send_message's has ~50
    # positions). Only a schema that declares such a header (x-mcp-header) has anything to check,
    # and the schemas are fixed: the SDK's lookup hook answers None for the others, once for all.
    with_headers = {t.name: t.parameters for t in tools if x_mcp_header_map(t.parameters)}
    lowlevel.get_tool_input_schema = with_headers.get
    # MCPServer has no public hook for logging/setLevel (gone in 2026-07-28, still sent by
    # handshake-era hosts); registering it also advertises the logging capability.
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_logging_level)
    add_resources(server, work, listing, caller)
    return server
