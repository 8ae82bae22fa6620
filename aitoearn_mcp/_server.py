"""The MCP server: two tools, their results, and where the caller's key comes from.

Data flows one way: tool arguments → DTO → route and request body → RelayClient → events →
ReplyAccumulator → CallToolResult.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import (
    CallToolResult,
    InputRequiredResult,
    ResourceLink,
    SetLevelRequestParams,
    ToolAnnotations,
)
from pydantic import ConfigDict, SecretStr

from . import _listing
from ._budget import fit_reply, weight
from ._call import outcome_label, send_on_routes
from ._catalogue import Catalogue
from ._config import Config
from ._drain import Drain
from ._dto import (
    MESSAGE_SCHEMA,
    MODELS_SCHEMA,
    ListModelsInput,
    SendMessageInput,
    input_schema,
    parse_list_models_args,
    parse_send_message_args,
)
from ._errors import (
    IncompleteReplyError,
    InputError,
    InvalidModelError,
    MissingKeyError,
    RelayError,
)
from ._files import attach_files, read_files
from ._hosts import client_name, result_budget
from ._metrics import NO_METRICS, Metrics
from ._models_view import models_result
from ._notices import log_to_client, set_logging_level
from ._relay import RelayClient, new_http_client
from ._reply_files import save_reply_file
from ._request import PreparedRequest, prepare_request
from ._result import REPLY_URI, call_notes, error_result, partial_reply_result, reply_result, truncation
from ._roots import allowed_roots
from ._routes import Route, plan_route
from ._store import Store, StoreUnavailableError, default_ttl, new_reply_id, open_store
from ._turns import begin, record, with_history
from ._version import __version__

__all__ = ["create_server", "key_from_headers"]

logger = logging.getLogger("aitoearn_mcp")

FILES_OVER_HTTP = (
    "Invalid arguments for send_message: `files` is not available over HTTP (a shared server does not read its "
    "own disk for callers); fix: put the file's content in `messages` (text, image or document blocks). "
    "Nothing was sent."
)
STORE_DOWN = "The conversation store (AITOEARN_CONVERSATIONS) could not be used"

INSTRUCTIONS = (
    "Delegate work to other models sold through AiToEarn: list_models shows the catalogue, "
    "send_message runs one Anthropic Messages request on any listed model and returns the whole reply."
)

LIST_MODELS_DESCRIPTION = (
    "List the chat models AiToEarn sells: name (send_message's `model`), channel, modalities, price in "
    "credits, description. Filter by `channel` or `modality`; `detail: NAME` gives a model's full entry. "
    "Cached 5 minutes; `refresh: true` asks again."
)

SEND_MESSAGE_DESCRIPTION = (
    "Send one Anthropic Messages request to any model from list_models and return the whole reply. "
    "Text content is the reply's text and notes; structured content is the full Message (thinking and "
    "tool_use blocks, stop_reason, usage) with route, credits estimate and notes. Spends AiToEarn credits. "
    "Streams with progress; cancelling stops generation. Extra Anthropic fields are passed on."
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
class _State:
    relay: RelayClient
    catalogue: Catalogue
    store: Store


def create_server(
    config: Config,
    *,
    http: bool = False,
    drain: Drain | None = None,
    metrics: Metrics = NO_METRICS,
    store: Store | None = None,
) -> MCPServer:
    """Build the server; the relay's HTTP client opens with the server's lifespan and the store
    closes with it. ``http``: serving streamable HTTP, where the server never reads its own disk
    for a caller; ``drain`` tracks calls in flight for a graceful shutdown; ``store`` defaults to
    the one the configuration names."""
    catalogue = Catalogue(ttl=config.models_cache_ttl)
    if store is None:
        store = open_store(config.conversations, config.conversation_ttl, config.conversation_max_bytes)
    metrics.label_models(catalogue)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[_State]:
        try:
            async with new_http_client(config) as client:
                yield _State(RelayClient(config, client, metrics=metrics), catalogue, cast(Store, store))
        finally:
            await cast(Store, store).aclose()

    def state_and_key(ctx: Context) -> tuple[_State, SecretStr | None]:
        # Over HTTP a caller's own key wins; the transport layer decides whether the server's may serve.
        state = cast(_State, ctx.request_context.lifespan_context)
        return state, key_from_headers(ctx.headers) or config.api_key

    def budget_for(ctx: Context) -> int:
        return result_budget(config.max_result_chars, client_name(ctx.session.client_params))

    async def list_models(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        metrics.call_started("list_models")
        outcome = "cancelled"
        try:
            result = await _list_models(arguments, ctx)
            outcome = "error" if result.is_error else "ok"
            return result
        finally:
            metrics.call_finished("list_models", "", "", outcome)

    async def _list_models(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        try:
            args = parse_list_models_args(arguments)
        except InputError as exc:
            return error_result(str(exc))
        state, key = state_and_key(ctx)
        try:
            on_retry = functools.partial(log_to_client, ctx)
            entries = await state.catalogue.get(state.relay, key, refresh=args.refresh, on_retry=on_retry)
        except RelayError as exc:
            return error_result(str(exc))
        return models_result(entries, args, budget_for(ctx))

    async def send_message(arguments: dict[str, Any], ctx: Context) -> CallToolResult | InputRequiredResult:
        metrics.call_started("send_message")
        labels = {"model": str(arguments.get("model", "")), "route": "", "outcome": "cancelled"}
        try:
            return await _send_message(arguments, ctx, labels)
        finally:
            metrics.call_finished("send_message", **labels)

    async def _send_message(
        arguments: dict[str, Any], ctx: Context, labels: dict[str, str]
    ) -> CallToolResult | InputRequiredResult:
        """``labels`` (model, route, outcome) are filled in for the metrics as the call goes."""
        labels["outcome"] = "input_error"
        try:
            request, given = parse_send_message_args(arguments)
        except InputError as exc:
            return error_result(str(exc))
        state, key = state_and_key(ctx)
        if key is None:
            return error_result(str(MissingKeyError()))
        try:  # everything the caller named is checked before anything is sent
            continuation = await begin(state.store, request.conversation_id, key)
            if request.files:
                if http:
                    raise InputError(FILES_OVER_HTTP)
                roots = await allowed_roots(ctx, config.files_roots)
                if isinstance(roots, InputRequiredResult):  # 2026-07-28: the call comes back with the client's roots
                    labels["outcome"] = "input_required"
                    return roots
                blocks = await read_files(request.files, roots, config.files_max_bytes)
                given = {**given, "messages": attach_files(given["messages"], blocks)}
            entry = await state.catalogue.entry(request.model, state.relay, key)
            channel = entry.get("channel") if entry else None
            full = with_history(given, continuation, channel)
            plan = plan_route(config.route, entry)
            prepared = [prepare_request(route, request, full, entry) for route in plan.routes]
        except InputError as exc:
            return error_result(str(exc))
        except StoreUnavailableError as exc:
            labels["outcome"] = "store_unavailable"
            return error_result(f"{STORE_DOWN} ({exc}). Nothing was sent.")
        call = await send_on_routes(state.relay, prepared, key, ctx, drain)
        attempt, accumulator, outcome = call.request, call.accumulator, call.outcome
        labels.update(route=attempt.route.value, outcome=outcome_label(outcome))
        metrics.upstream(attempt.route, call.seconds, call.first_event)
        if isinstance(outcome, RelayError):
            logger.info("send_message model=%s route=%s failed after %.2f s: %s",
                        request.model, attempt.route, call.seconds, type(outcome).__name__)  # fmt: skip
            metrics.streamed(request.model, attempt.route, accumulator.chars_received, None)
            return await _failure_result(outcome, request, attempt, entry, state, key, ctx)
        logger.info(
            "send_message model=%s route=%s stop_reason=%s chars=%d in %.2f s",
            request.model, attempt.route, outcome.get("stop_reason"), accumulator.chars_received, call.seconds,
        )  # fmt: skip
        notes, extras = call_notes(
            outcome, route=attempt.route, dropped=attempt.dropped, max_tokens=attempt.max_tokens, entry=entry
        )
        estimate = extras["credits"]["estimate"]
        metrics.streamed(request.model, attempt.route, accumulator.chars_received,
                         Decimal(estimate) if estimate is not None else None)  # fmt: skip
        try:
            conversation_id, note = await record(state.store, continuation, key, arguments=given, reply=outcome,
                                                 channel=channel)  # fmt: skip
            extras["conversation_id"] = conversation_id
        except StoreUnavailableError as exc:
            note = f"[The reply is complete, but the conversation could not be stored: {STORE_DOWN} ({exc}).]"
        notes.append(note)
        extras["notes"].append(note)  # hosts that show only the structured content learn how to continue too
        return reply_result(*await _within_budget(outcome, accumulator.text(), notes, extras, key, state,
                                                  budget_for(ctx)))  # fmt: skip

    async def _within_budget(
        message: dict[str, Any], text: str, notes: list[str], extras: dict[str, Any], key: SecretStr, state: _State,
        budget: int,
    ) -> tuple[dict[str, Any], str, list[str], ResourceLink | None]:  # fmt: skip
        """The structured content, the text shown and the notes: the whole reply, or its beginning
        and the full reply by reference when it is over the budget."""
        fitted = fit_reply({**message, **extras}, text, budget, weight("\n".join(notes)))
        if not fitted.cut:
            return fitted.message, text, notes, None
        reply_id = new_reply_id()
        try:
            owner = await state.store.owner_tag(key)
            record = {"status": "failed" if "error" in extras else "complete", "model": message.get("model"),
                      "route": extras.get("route"), "text": text, "message": message, "error": extras.get("error"),
                      "conversation_id": extras.get("conversation_id")}  # fmt: skip
            await state.store.save_reply(reply_id, owner, json.dumps(record, ensure_ascii=False))
        except StoreUnavailableError as exc:  # nothing may be lost: the whole reply, over the budget
            notes.append(f"[The reply is over the result budget, but could not be stored to read by reference: "
                         f"{STORE_DOWN} ({exc}); it is returned whole.]")  # fmt: skip
            return {**message, **extras, "notes": [*extras["notes"], notes[-1]]}, text, notes, None
        path = None
        if not http:  # the resource is the reference; a file that cannot be written is only left out
            with contextlib.suppress(OSError):
                path = save_reply_file(reply_id, text, config.conversation_ttl or default_ttl(config.conversations))
        truncated = truncation(reply_id, text, fitted.text, path, budget)
        structured = {**fitted.message, "truncated": truncated.details}
        structured["notes"] = [truncated.note, *structured.get("notes", [])]
        return structured, fitted.text, [truncated.note, *notes], truncated.link

    async def _failure_result(
        error: RelayError, request: SendMessageInput, attempt: PreparedRequest, entry: Mapping[str, Any] | None,
        state: _State, key: SecretStr, ctx: Context,
    ) -> CallToolResult:  # fmt: skip
        if isinstance(error, InvalidModelError):
            error.fix = await _model_suggestion(request.model, attempt.route, entry, state, key)
            error.args = (error.render(),)
        if not isinstance(error, IncompleteReplyError):
            return error_result(str(error))
        text = error.text
        summary = f"{error} {len(text):,} characters of text arrived before the failure"
        notes, extras = call_notes(
            error.partial, route=attempt.route, dropped=attempt.dropped, max_tokens=attempt.max_tokens, entry=entry
        )
        # Hosts that show only the structured content must see the failure too.
        extras["error"] = f"{summary}."
        if not text:
            return error_result(f"{summary}.\n{notes[-1]}", {**error.partial, **extras})
        lead = [f"{summary}; they follow.", notes[-1]]
        fitted = await _within_budget(error.partial, text, lead, extras, key, state, budget_for(ctx))
        return partial_reply_result(*fitted)

    async def _model_suggestion(
        model: str, route: Route, entry: Mapping[str, Any] | None, state: _State, key: SecretStr | None
    ) -> str:
        if entry is not None:
            other = Route.CHAT_COMPLETIONS if route is Route.MESSAGES else Route.MESSAGES
            return (
                f"list_models lists {model!r} (channel {entry.get('channel')}), but the relay refused it on its "
                f"{route.protocol} route; try again later, or set AITOEARN_ROUTE={other.value} (--route) on the server"
            )
        entries: list[dict[str, Any]] = []
        with anyio.move_on_after(5):  # a hint is not worth a long wait
            with contextlib.suppress(RelayError):
                entries = await state.catalogue.get(state.relay, key)
        names = [str(e["name"]) for e in entries if e["name"] != model]
        import difflib  # here: only a refused model name needs it, and start-up should not pay

        close = difflib.get_close_matches(model, names, n=3, cutoff=0.4)
        if close:
            return f"{model!r} is not accepted; the closest names from list_models are {', '.join(close)}"
        return f"{model!r} is not accepted; call list_models for the names the relay sells"

    async def read_reply(reply_id: str, ctx: Context) -> str:
        return (await _stored_reply(reply_id, ctx))[0]

    async def read_reply_message(reply_id: str, ctx: Context) -> str:
        return (await _stored_reply(reply_id, ctx))[1]

    async def _stored_reply(reply_id: str, ctx: Context) -> tuple[str, str]:
        state, key = state_and_key(ctx)
        found = None
        if key is not None:
            try:
                found = await state.store.load_reply(reply_id, await state.store.owner_tag(key))
            except StoreUnavailableError as exc:
                raise ResourceError(f"{STORE_DOWN} ({exc}).") from None
        if found is None:
            raise ResourceError(f"Reply {reply_id} is unknown or has expired; send the request again.")
        record = json.loads(found)
        return record["text"], json.dumps(record["message"], ensure_ascii=False)

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
    server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_logging_level)  # pyright: ignore[reportPrivateUsage]
    too_large = "of a send_message reply too large for one result"
    server.resource(REPLY_URI, name="reply", mime_type="text/plain", description=f"The full text {too_large}.")(
        read_reply
    )
    server.resource(
        REPLY_URI + "/message", name="reply-message", mime_type="application/json",
        description=f"The full Message {too_large}.",
    )(read_reply_message)  # fmt: skip
    _listing.register(server, store, lambda ctx: state_and_key(ctx)[1], budget_for)
    return server
