"""The MCP server: five tools and three resources wired to the work in ``_tools`` and
``_listing``, and where the caller's key comes from.

Data flows one way: tool arguments → DTO → SendJob → Delegation (RelayClient → events →
ReplyAccumulator → record) → CallToolResult.

Listing the tools takes only this module's names and descriptions and the published schemas: the
work behind them (the DTOs, the relay, the store, files, reply views) loads on the first call,
since headless hosts do not wait for a server still starting before they list its tools.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.shared.inbound import x_mcp_header_map
from mcp.types import (
    CallToolResult,
    InputRequiredResult,
    ListResourcesResult,
    PaginatedRequestParams,
    SetLevelRequestParams,
    ToolAnnotations,
)
from pydantic import ConfigDict, SecretStr

from .._config import Config
from .._metrics import NO_METRICS, Metrics
from .._version import __version__
from ..delegation._drain import Drain
from ..views._uris import CONVERSATION_URI, REPLY_URI
from ._descriptions import (
    GENERATE_IMAGE_DESCRIPTION,
    GENERATE_VIDEO_DESCRIPTION,
    GET_REPLY_DESCRIPTION,
    INSTRUCTIONS,
    LIST_CONVERSATIONS_DESCRIPTION,
    LIST_MODELS_DESCRIPTION,
    SEND_MESSAGE_DESCRIPTION,
)
from ._notices import set_logging_level
from ._schemas import IMAGE_SCHEMA, INPUT_SCHEMAS, MESSAGE_SCHEMA, MODELS_SCHEMA, VIDEO_SCHEMA
from ._state import State
from ._tasks import Tasks

if TYPE_CHECKING:
    from ..relay._catalogue import Catalogue
    from ..store._protocol import Store
    from ._listing import Listing
    from ._tools import Tools

__all__ = ["create_server", "key_from_headers"]

Result = CallToolResult | InputRequiredResult  # input required: 2026-07-28's way to ask for the client's roots

EXPIRE_EVERY = 600.0  # seconds between looks for expired reply files; more often when replies live shorter


class _RawArguments(ArgModelBase):
    """Hands the tool the arguments as sent: the tool validates them itself, so a refusal can
    name the field and the fix, and fields the relay accepts but we do not model are kept."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


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

        return Listing(state_and_key, lambda ctx: work().budget(ctx))

    @functools.cache
    def catalogue() -> Catalogue:  # the server's: it outlives a lifespan
        from ..relay._catalogue import Catalogue

        built = Catalogue(ttl=config.models_cache_ttl)
        metrics.label_models(built)
        return built

    def expire_reply_files() -> None:
        from ._reply_files import expire_reply_files, reply_ttl

        expire_reply_files(reply_ttl(config))

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[State]:
        async with State.open(config, shared, catalogue, drain=drain, metrics=metrics) as state:
            if not http:  # reply files are written in stdio mode only
                state.every(min(config.conversation_ttl or EXPIRE_EVERY, EXPIRE_EVERY), expire_reply_files)
            yield state

    def state_and_key(ctx: Context) -> tuple[State, SecretStr | None]:
        # Over HTTP a caller's own key wins; the transport layer decides whether the server's may serve.
        return cast(State, ctx.request_context.lifespan_context), key_from_headers(ctx.headers) or config.api_key

    def counted(name: str, handler: Callable[[Tools], Callable[..., Awaitable[Result]]]) -> Callable[..., Any]:
        async def call(arguments: dict[str, Any], ctx: Context) -> Result:
            metrics.call_started(name)
            labels = {"model": str(arguments.get("model", "")), "route": "", "outcome": "cancelled"}
            try:
                return await handler(work())(arguments, ctx, *state_and_key(ctx), labels)
            finally:
                metrics.call_finished(name, **labels)

        return call

    async def read_reply(reply_id: str, ctx: Context) -> str:
        return (await work().stored_reply(reply_id, *state_and_key(ctx))).text

    async def read_reply_message(reply_id: str, ctx: Context) -> str:
        return json.dumps((await work().stored_reply(reply_id, *state_and_key(ctx))).message or {}, ensure_ascii=False)

    async def list_conversations(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        return await listing().list_conversations(arguments, ctx)

    async def read_conversation(conversation_id: str, ctx: Context) -> str:
        return await listing().read_conversation(conversation_id, ctx)

    def tool(fn: Any, name: str, title: str, description: str, params: dict[str, Any], output: dict[str, Any] | None,
             annotations: ToolAnnotations) -> Tool:  # fmt: skip
        return Tool(
            fn=fn,
            name=name,
            title=title,
            description=description,
            parameters=params,
            fn_metadata=FuncMetadata(arg_model=_RawArguments, output_schema=output),
            is_async=True,
            context_kwarg="ctx",
            annotations=annotations,
        )

    tools = [
        tool(
            counted("list_models", lambda w: w.list_models), "list_models", "List AiToEarn chat models",
            LIST_MODELS_DESCRIPTION, INPUT_SCHEMAS["list_models"], MODELS_SCHEMA,
            ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True),
        ),
        tool(
            counted("send_message", lambda w: w.send_message), "send_message", "Ask another model (AiToEarn)",
            SEND_MESSAGE_DESCRIPTION, INPUT_SCHEMAS["send_message"], MESSAGE_SCHEMA,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True),
        ),
        # Not read-only: it can cancel a generation. Waiting and reading again are harmless.
        tool(
            counted("get_reply", lambda w: w.get_reply), "get_reply", "Collect a delegated reply",
            GET_REPLY_DESCRIPTION, INPUT_SCHEMAS["get_reply"], MESSAGE_SCHEMA,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
        ),
        tool(
            counted("generate_image", lambda w: w.generate_image), "generate_image", "Generate an image (AiToEarn)",
            GENERATE_IMAGE_DESCRIPTION, INPUT_SCHEMAS["generate_image"], IMAGE_SCHEMA,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True),
        ),
        tool(
            counted("generate_video", lambda w: w.generate_video), "generate_video", "Generate a video (AiToEarn)",
            GENERATE_VIDEO_DESCRIPTION, INPUT_SCHEMAS["generate_video"], VIDEO_SCHEMA,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True),
        ),
        tool(
            list_conversations, "list_conversations", "List your AiToEarn conversations",
            LIST_CONVERSATIONS_DESCRIPTION, INPUT_SCHEMAS["list_conversations"], None,
            ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
        ),
    ]  # fmt: skip
    # send_message and generate_video as MCP tasks for clients that declare the tasks extension (2026-07-28).
    tasks = Tasks(work, state_and_key, metrics)
    server = MCPServer("aitoearn-mcp", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, tools=tools,
                       extensions=[tasks])  # fmt: skip
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    # Over streamable HTTP (2026-07-28) the SDK checks each call's Mcp-Param-* headers against
    # the tool's input schema, walking the whole schema twice per call (send_message's has ~50
    # positions). Only a schema that declares such a header (x-mcp-header) has anything to check,
    # and the schemas are fixed: the SDK's lookup hook answers None for the others, once for all.
    with_headers = {t.name: t.parameters for t in tools if x_mcp_header_map(t.parameters)}
    lowlevel.get_tool_input_schema = with_headers.get
    # MCPServer has no public hook for logging/setLevel (gone in 2026-07-28, still sent by
    # handshake-era hosts); registering it also advertises the logging capability.
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_logging_level)
    too_large = "of a send_message reply (get_reply pages it too)"
    server.resource(REPLY_URI, name="reply", mime_type="text/plain", description=f"The full text {too_large}.")(
        read_reply
    )
    server.resource(
        REPLY_URI + "/message", name="reply-message", mime_type="application/json",
        description=f"The full Message {too_large}.",
    )(read_reply_message)  # fmt: skip
    server.resource(
        CONVERSATION_URI, name="conversation", mime_type="application/json",
        description="A conversation whole: system prompt and every turn (messages, reply, model).",
    )(read_conversation)  # fmt: skip

    async def list_resources(request: Any, params: PaginatedRequestParams | None) -> ListResourcesResult:
        # MCPServer lists only static resources; these depend on who asks.
        mine = await listing().caller_resources(Context(request_context=request, mcp_server=server))
        return ListResourcesResult(resources=[*await server.list_resources(), *mine])

    lowlevel.add_request_handler("resources/list", PaginatedRequestParams, list_resources)
    return server
