"""The MCP server: two tools, their results, and where the caller's key comes from.

Data flows one way: tool arguments → DTO and request body → RelayClient → events →
MessageAccumulator → CallToolResult.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast, get_args

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    CallToolResult,
    ContentBlock,
    EmptyResult,
    LoggingLevel,
    SetLevelRequestParams,
    TextContent,
    ToolAnnotations,
)
from pydantic import ConfigDict, SecretStr

from . import __version__
from ._accumulator import MessageAccumulator
from ._config import Config
from ._dto import (
    MESSAGE_SCHEMA,
    MODELS_SCHEMA,
    ListModelsInput,
    SendMessageInput,
    build_message_body,
    input_schema,
    parse_list_models_args,
)
from ._errors import IncompleteReplyError, InputError, InvalidModelError, MissingKeyError, RelayError
from ._relay import RelayClient, new_http_client

__all__ = ["create_server", "key_from_headers"]

logger = logging.getLogger("aitoearn_mcp")

PROGRESS_INTERVAL = 0.1  # seconds: at most 10 notifications a second, never 250 ms without one while text flows
PROGRESS_TAIL = 40  # characters of the latest text shown in a progress message

INSTRUCTIONS = (
    "Delegate work to other models sold through AiToEarn: list_models shows the catalogue, "
    "send_message runs one Anthropic Messages request and returns the whole reply."
)

LIST_MODELS_DESCRIPTION = (
    "List the chat models the AiToEarn relay sells. One line per model: name (pass it as send_message's "
    "`model`), channel, input → output modalities, price in credits, description. Cached 5 minutes; "
    "`refresh: true` asks the relay again."
)

SEND_MESSAGE_DESCRIPTION = (
    "Send one Anthropic Messages request to a model from list_models and return the whole reply. "
    "Text content is the reply's text; structured content is the full Message (thinking and tool_use "
    "blocks, stop_reason, usage). Spends AiToEarn credits. Streams with progress; cancelling stops "
    "generation. Extra Anthropic fields are passed on unchanged."
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


@dataclass
class _Catalogue:
    """The model list, cached for ``ttl`` seconds; one fetch at a time."""

    ttl: float
    entries: list[dict[str, Any]] = field(default_factory=list)
    fetched_at: float = float("-inf")
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def get(
        self, relay: RelayClient, key: SecretStr | None, *, refresh: bool, ctx: Context
    ) -> list[dict[str, Any]]:
        async with self.lock:
            if refresh or time.monotonic() - self.fetched_at >= self.ttl:
                self.entries = await relay.list_models(key, on_retry=functools.partial(_log_to_client, ctx))
                self.fetched_at = time.monotonic()
            return self.entries


@dataclass
class _State:
    relay: RelayClient
    catalogue: _Catalogue


_LOG_LEVELS: list[str] = list(get_args(LoggingLevel))

# The level each handshake-era session asked for with logging/setLevel (default: everything).
_session_log_levels: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()


async def _set_logging_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    _session_log_levels[ctx.session] = params.level
    return EmptyResult()


async def _log_to_client(ctx: Context, message: str) -> None:
    """Retries go to the client's log too. MCP logging is deprecated in 2026-07-28 but it is
    what today's hosts show; the SDK's warning about it is not the user's business."""
    if _LOG_LEVELS.index(_session_log_levels.get(ctx.session, "debug")) > _LOG_LEVELS.index("warning"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await ctx.warning(message)


def _error_result(text: str, structured: dict[str, Any] | None = None) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured, is_error=True)


def _format_price(pricing: Any) -> str:
    if not isinstance(pricing, Mapping):
        return ""
    if "price" in pricing:
        return f"{pricing['price']} credits"
    tiers = pricing.get("tiers")
    if isinstance(tiers, list) and tiers and isinstance(tiers[0], Mapping):
        tier = tiers[0]
        text_in = (tier.get("input") or {}).get("text")
        text_out = (tier.get("output") or {}).get("text")
        more = f" (+{len(tiers) - 1} tier{'s' * (len(tiers) > 2)})" if len(tiers) > 1 else ""
        return f"in {text_in} / out {text_out} credits per 1K tokens{more}"
    return ""


def format_model_line(entry: Mapping[str, Any]) -> str:
    """name · channel · in → out · price · description, skipping what is missing."""
    modalities = ""
    if entry.get("inputModalities") or entry.get("outputModalities"):
        modalities = f"{','.join(entry.get('inputModalities') or [])} → {','.join(entry.get('outputModalities') or [])}"
    description = str(entry.get("description") or "").strip()
    if description in (entry.get("name"), entry.get("label")):
        description = ""
    if len(description) > 100:
        description = description[:99] + "…"
    parts = [str(entry["name"]), str(entry.get("channel") or ""), modalities, _format_price(entry.get("pricing"))]
    return " · ".join(part for part in [*parts, " ".join(description.split())] if part)


_STOP_NOTES = {
    "max_tokens": "[Reply cut off: it reached max_tokens ({max_tokens}). Raise max_tokens or ask it to continue.]",
    "stop_sequence": "[Stopped at the stop sequence {stop_sequence!r}.]",
    "tool_use": "[The model asks to use a tool: {tools}. Its tool_use blocks are in the structured content.]",
    "pause_turn": "[The model paused its turn; send the reply back as an assistant message to let it continue.]",
    "refusal": "[The model declined to answer.]",
}


def _stop_note(message: Mapping[str, Any], request: SendMessageInput) -> str:
    reason = message.get("stop_reason")
    if reason in (None, "end_turn"):
        return ""
    tools = ", ".join(str(b.get("name")) for b in message.get("content", []) if b.get("type") == "tool_use")
    template = _STOP_NOTES.get(str(reason), "[The reply stopped with stop_reason {reason!r}.]")
    return template.format(
        max_tokens=request.max_tokens, stop_sequence=message.get("stop_sequence"), tools=tools or "?", reason=reason
    )


def message_result(message: dict[str, Any], text: str, request: SendMessageInput) -> CallToolResult:
    """Text content: the reply text exactly as sent, then one line when it did not end normally."""
    content: list[ContentBlock] = [TextContent(type="text", text=text)] if text else []
    if note := _stop_note(message, request):
        content.append(TextContent(type="text", text=note))
    if not content:
        content.append(TextContent(type="text", text="[The reply has no text; see the structured content.]"))
    return CallToolResult(content=content, structured_content=message)


async def _report_progress(ctx: Context, accumulator: MessageAccumulator) -> None:
    """Send progress while text flows: strictly rising, at most one per PROGRESS_INTERVAL."""
    await ctx.report_progress(0, None, "Request sent; waiting for the first tokens")
    reported = 0
    while True:
        await anyio.sleep(PROGRESS_INTERVAL)
        received = accumulator.chars_received
        if received > reported:
            reported = received
            tail = " ".join(accumulator.latest_text(PROGRESS_TAIL).split())
            await ctx.report_progress(received, None, f"{received:,} characters received: …{tail}")


async def _collect(
    relay: RelayClient, body: bytes, key: SecretStr, accumulator: MessageAccumulator, ctx: Context
) -> dict[str, Any] | RelayError:
    """Run the call with the progress reporter beside it. Errors come back as values: raised
    through the task group they would arrive wrapped in an ExceptionGroup."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_report_progress, ctx, accumulator)
        try:
            return await relay.send_message(body, key, accumulator, on_retry=functools.partial(_log_to_client, ctx))
        except RelayError as exc:
            return exc
        finally:
            tasks.cancel_scope.cancel()
    raise AssertionError("unreachable: the task group body returns or raises")  # for the type checker


def create_server(config: Config) -> MCPServer:
    """Build the server; the HTTP client opens with the server's lifespan and closes with it."""

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[_State]:
        async with new_http_client(config) as http:
            yield _State(relay=RelayClient(config, http), catalogue=_Catalogue(ttl=config.models_cache_ttl))

    def state_and_key(ctx: Context) -> tuple[_State, SecretStr | None]:
        # Over HTTP a caller's own key wins; the transport layer decides whether the server's may serve.
        state = cast(_State, ctx.request_context.lifespan_context)
        return state, key_from_headers(ctx.headers) or config.api_key

    async def list_models(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        try:
            args = parse_list_models_args(arguments)
        except InputError as exc:
            return _error_result(str(exc))
        state, key = state_and_key(ctx)
        try:
            entries = await state.catalogue.get(state.relay, key, refresh=args.refresh, ctx=ctx)
        except RelayError as exc:
            return _error_result(str(exc))
        lines = [format_model_line(entry) for entry in entries] or ["The relay lists no chat models."]
        return CallToolResult(
            content=[TextContent(type="text", text="\n".join(lines))], structured_content={"models": entries}
        )

    async def send_message(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        try:
            request, body = build_message_body(arguments)
        except InputError as exc:
            return _error_result(str(exc))
        state, key = state_and_key(ctx)
        if key is None:
            return _error_result(str(MissingKeyError()))
        accumulator = MessageAccumulator()
        started = time.monotonic()
        outcome = await _collect(state.relay, body, key, accumulator, ctx)
        elapsed = time.monotonic() - started
        if isinstance(outcome, RelayError):
            logger.info("send_message model=%s failed after %.2f s: %s", request.model, elapsed, type(outcome).__name__)
            return await _failure_result(outcome, request, state, key, ctx)
        logger.info(
            "send_message model=%s stop_reason=%s chars=%d in %.2f s",
            request.model, outcome.get("stop_reason"), accumulator.chars_received, elapsed,
        )  # fmt: skip
        return message_result(outcome, accumulator.text(), request)

    async def _failure_result(
        error: RelayError, request: SendMessageInput, state: _State, key: SecretStr | None, ctx: Context
    ) -> CallToolResult:
        if isinstance(error, InvalidModelError):
            error.fix = await _model_suggestion(request.model, state, key, ctx)
            error.args = (error.render(),)
        if not isinstance(error, IncompleteReplyError):
            return _error_result(str(error))
        text = error.text
        summary = f"{error} {len(text):,} characters of text arrived before the failure"
        if not text:
            return _error_result(summary + ".", error.partial)
        return CallToolResult(
            content=[TextContent(type="text", text=summary + "; they follow."), TextContent(type="text", text=text)],
            structured_content=error.partial,
            is_error=True,
        )

    async def _model_suggestion(model: str, state: _State, key: SecretStr | None, ctx: Context) -> str:
        entries: list[dict[str, Any]] = []
        with anyio.move_on_after(5):  # a hint is not worth a long wait
            with contextlib.suppress(RelayError):
                entries = await state.catalogue.get(state.relay, key, refresh=False, ctx=ctx)
        names = [str(entry["name"]) for entry in entries]
        close = difflib.get_close_matches(model, names, n=3, cutoff=0.4)
        if close:
            return f"{model!r} is not accepted; the closest names from list_models are {', '.join(close)}"
        return f"{model!r} is not accepted; call list_models for the names the relay sells"

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
            list_models, "list_models", "List AiToEarn chat models", LIST_MODELS_DESCRIPTION,
            input_schema(ListModelsInput), MODELS_SCHEMA,
            ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True),
        ),
        tool(
            send_message, "send_message", "Send a message to an AiToEarn model", SEND_MESSAGE_DESCRIPTION,
            input_schema(SendMessageInput), MESSAGE_SCHEMA,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True),
        ),
    ]  # fmt: skip
    server = MCPServer("aitoearn-mcp", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, tools=tools)
    # MCPServer has no public hook for logging/setLevel (gone in 2026-07-28, still sent by
    # handshake-era hosts); registering it also advertises the logging capability.
    server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_logging_level)  # pyright: ignore[reportPrivateUsage]
    return server
