"""The MCP server: three tools and two resources wired to the work in ``_tools``, and where the
caller's key comes from.

Data flows one way: tool arguments → DTO → SendJob → Delegation (RelayClient → events →
ReplyAccumulator → record) → CallToolResult.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import CallToolResult, InputRequiredResult, SetLevelRequestParams, ToolAnnotations
from pydantic import ConfigDict, SecretStr

from . import _listing
from ._catalogue import Catalogue
from ._config import Config
from ._delegation import Delegations
from ._drain import Drain
from ._dto import (
    MESSAGE_SCHEMA,
    MODELS_SCHEMA,
    GetReplyInput,
    ListModelsInput,
    SendMessageInput,
    input_schema,
    parse_list_models_args,
)
from ._errors import InputError, RelayError
from ._metrics import NO_METRICS, Metrics
from ._models_view import models_result
from ._notices import log_to_client, set_logging_level
from ._relay import RelayClient, new_http_client
from ._result import REPLY_URI, error_result
from ._store import Store, open_store
from ._tasks import Tasks
from ._tools import State, Tools
from ._version import __version__

__all__ = ["create_server", "key_from_headers"]

Result = CallToolResult | InputRequiredResult  # input required: 2026-07-28's way to ask for the client's roots

INSTRUCTIONS = (
    "Delegate work to other models sold through AiToEarn (GPT, Gemini, DeepSeek, Claude and more): list_models "
    "shows the catalogue; send_message asks one model, or several at once for second opinions; a long reply "
    "comes back as status running with a reply_id: collect it with get_reply."
)

LIST_MODELS_DESCRIPTION = (
    "List the chat models AiToEarn sells: name (send_message's `model`), channel, modalities, price in "
    "credits, description. Filter by `channel` or `modality`; `detail: NAME` gives a model's full entry. "
    "Cached 5 minutes; `refresh: true` asks again."
)

SEND_MESSAGE_DESCRIPTION = (
    "Delegate to another model or ask for a second opinion: one Anthropic Messages request to any model from "
    "list_models (GPT, Gemini, DeepSeek, Claude, ...), or with `models` to 2-8 of them at once. Returns the whole "
    "reply: text, and the full Message as structured content (thinking, tool_use, usage, route, credits, notes). "
    "A reply that outlasts `wait_seconds` returns status running with a reply_id while the model goes on: collect "
    "it with get_reply. Spends AiToEarn credits; cancelling this call stops generation."
)

GET_REPLY_DESCRIPTION = (
    "Collect a send_message reply by its reply_id: waits up to `wait_seconds` while it runs, then returns it "
    "like send_message does. A long reply comes in parts: pass the result's next_offset as `offset`. "
    "`cancel: true` stops the generation (billing stops) and returns what arrived."
)


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
    drain: Drain | None = None,
    metrics: Metrics = NO_METRICS,
    store: Store | None = None,
) -> MCPServer:
    """Build the server; the relay's HTTP client and the delegations open with the server's
    lifespan and the store closes with it. ``http``: serving streamable HTTP, where the server
    never reads its own disk for a caller; ``drain`` tracks calls in flight for a graceful
    shutdown; ``store`` defaults to the one the configuration names."""
    catalogue = Catalogue(ttl=config.models_cache_ttl)
    if store is None:
        store = open_store(config.conversations, config.conversation_ttl, config.conversation_max_bytes)
    metrics.label_models(catalogue)
    work = Tools(config, http=http, metrics=metrics)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[State]:
        shared = cast(Store, store)
        try:
            async with new_http_client(config) as client, Delegations(shared, drain).open() as delegations:
                yield State(RelayClient(config, client, metrics=metrics), catalogue, shared, delegations)
        finally:
            await shared.aclose()

    def state_and_key(ctx: Context) -> tuple[State, SecretStr | None]:
        # Over HTTP a caller's own key wins; the transport layer decides whether the server's may serve.
        return cast(State, ctx.request_context.lifespan_context), key_from_headers(ctx.headers) or config.api_key

    def counted(name: str, handler: Callable[..., Awaitable[Result]]) -> Callable[..., Any]:
        async def call(arguments: dict[str, Any], ctx: Context) -> Result:
            metrics.call_started(name)
            labels = {"model": str(arguments.get("model", "")), "route": "", "outcome": "cancelled"}
            try:
                return await handler(arguments, ctx, *state_and_key(ctx), labels)
            finally:
                metrics.call_finished(name, **labels)

        return call

    async def list_models(
        arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult:
        labels["outcome"] = "error"
        try:
            args = parse_list_models_args(arguments)
            on_retry = functools.partial(log_to_client, ctx)
            entries = await state.catalogue.get(state.relay, key, refresh=args.refresh, on_retry=on_retry)
        except (InputError, RelayError) as exc:
            return error_result(str(exc))
        labels["outcome"] = "ok"
        return models_result(entries, args, work.budget(ctx))

    async def read_reply(reply_id: str, ctx: Context) -> str:
        return (await work.stored_reply(reply_id, *state_and_key(ctx))).text

    async def read_reply_message(reply_id: str, ctx: Context) -> str:
        return json.dumps((await work.stored_reply(reply_id, *state_and_key(ctx))).message or {}, ensure_ascii=False)

    def tool(fn: Any, name: str, title: str, description: str, params: dict[str, Any], output: dict[str, Any],
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
            counted("list_models", list_models), "list_models", "List AiToEarn chat models", LIST_MODELS_DESCRIPTION,
            input_schema(ListModelsInput), MODELS_SCHEMA,
            ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True),
        ),
        tool(
            counted("send_message", work.send_message), "send_message", "Ask another model (AiToEarn)",
            SEND_MESSAGE_DESCRIPTION, input_schema(SendMessageInput), MESSAGE_SCHEMA,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True),
        ),
        # Not read-only: it can cancel a generation. Waiting and reading again are harmless.
        tool(
            counted("get_reply", work.get_reply), "get_reply", "Collect a delegated reply", GET_REPLY_DESCRIPTION,
            input_schema(GetReplyInput), MESSAGE_SCHEMA,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
        ),
    ]  # fmt: skip
    # send_message as an MCP task for clients that declare the tasks extension (2026-07-28).
    tasks = Tasks(work, state_and_key, metrics)
    server = MCPServer("aitoearn-mcp", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, tools=tools,
                       extensions=[tasks])  # fmt: skip
    # MCPServer has no public hook for logging/setLevel (gone in 2026-07-28, still sent by
    # handshake-era hosts); registering it also advertises the logging capability.
    server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_logging_level)  # pyright: ignore[reportPrivateUsage]
    too_large = "of a send_message reply (get_reply pages it too)"
    server.resource(REPLY_URI, name="reply", mime_type="text/plain", description=f"The full text {too_large}.")(
        read_reply
    )
    server.resource(
        REPLY_URI + "/message", name="reply-message", mime_type="application/json",
        description=f"The full Message {too_large}.",
    )(read_reply_message)  # fmt: skip
    _listing.register(server, store, lambda ctx: state_and_key(ctx)[1], work.budget)
    return server
