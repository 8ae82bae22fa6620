"""MCP Tasks (``io.modelcontextprotocol/tasks``, 2026-07-28) for send_message, generate_image and generate_video,
where the client declares them: the host polls the delegation instead of the agent spending
turns on get_reply.

A task is a delegation seen through the extension: its task id is the reply id (get_reply and
``tasks/get`` read the same record), it belongs to the caller's key like the reply, and
``tasks/cancel`` stops it like get_reply's ``cancel`` (an image or a video: stops waiting; the
relay cannot stop one once submitted). A task is offered only on a
2026-07-28 request whose own capabilities declare the extension (the spec forbids a task to any
other), for one model (several models answer as send_message does), and only once its record is
in the store, so the first ``tasks/get`` resolves. Everything else is send_message unchanged.

The mapping and the Task JSON are pure; the ``Tasks`` extension wires them to the SDK.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import Context, require_client_extension
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolRequestParams, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field, SecretStr

from .._errors import MissingKeyError, StoreUnavailableError
from .._metrics import Metrics
from ._caller import Caller
from ._state import State

if TYPE_CHECKING:  # the call path loads with the first call
    from ..delegation._delegation import Delegation
    from ..delegation._record import ReplyRecord
    from ._tools import Tools

__all__ = ["TASKS", "Tasks", "declares_tasks", "task_json", "task_status"]

TASKS = "io.modelcontextprotocol/tasks"
TOOLS = ("send_message", "generate_image", "generate_video")
POLL_MS = 2000  # how often the host should poll: a reply is worth reading about every 2 s

TaskStatus = Literal["working", "completed", "failed", "cancelled"]


def task_status(record: ReplyRecord) -> TaskStatus:
    """The task's status for a reply's. A reply that failed (the relay refused, the stream broke)
    is a tool result with ``isError``, which the spec files under ``completed``: ``failed`` is
    only for JSON-RPC errors, and every failure here is answered as a tool result."""
    if record.status == "running":
        return "working"
    return "cancelled" if record.status == "cancelled" else "completed"


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_message(reply_id: str, record: ReplyRecord, now: float) -> str:
    """What the task's status means, in words a host may show the user or the model."""
    if record.media is not None:
        from ..views._media_view import media_status_message  # with the first call, not at start-up

        return media_status_message(reply_id, record, now)
    if record.status == "running":
        elapsed = max(now - record.started, 0.0)
        arrived = f"{record.chars:,} characters so far" if record.chars else "thinking, no text yet"
        return f"{record.model} is working on reply {reply_id}: {arrived} after {elapsed:.0f} s."
    if record.status == "cancelled":
        return (f"Cancelled after {len(record.text):,} characters of text (billing stopped); get_reply with "
                f"reply_id {reply_id!r} returns what arrived.")  # fmt: skip
    if record.status == "failed":
        return record.error or (record.notes[0] if record.notes else "The call failed.")
    return f"{record.model} replied: {len(record.text):,} characters."


def task_json(
    reply_id: str, record: ReplyRecord, *, ttl_ms: int, now: float, result: CallToolResult | None = None
) -> dict[str, Any]:
    """The Task (without ``resultType``): for a completed one, ``result`` is its CallToolResult."""
    task: dict[str, Any] = {
        "taskId": reply_id,
        "status": task_status(record),
        "statusMessage": status_message(reply_id, record, now),
        "createdAt": _iso(record.started),
        "lastUpdatedAt": _iso(max(record.updated, record.started)),
        "ttlMs": ttl_ms,
        "pollIntervalMs": POLL_MS,
    }
    if task["status"] == "completed":
        assert result is not None, "a completed task carries its result"
        task["result"] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return task


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request may be answered with a task: a 2026-07-28 request whose own
    capabilities (the connection's are the request's in that era) name the extension. Older
    wires cannot carry a task result at all."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and TASKS in capabilities.extensions)


class TaskParams(RequestParams):
    """``tasks/get``, ``tasks/cancel`` and ``tasks/update`` name their task; ``tasks/update``'s
    ``inputResponses`` answer nothing here (no task of ours asks for input), so they are ignored."""

    task_id: str = Field(alias="taskId", max_length=200)


class Tasks(Extension):
    """send_message and generate_video as tasks for clients that declare the extension. ``work``: the tools' work,
    built on first use; ``caller``: the state and the caller's key for a request, as the tools
    get them."""

    identifier = TASKS

    def __init__(self, work: Callable[[], Tools], caller: Caller, metrics: Metrics) -> None:
        self._work = work
        self._caller = caller
        self._metrics = metrics

    @property
    def _ttl_ms(self) -> int:
        return int(self._work().reply_ttl * 1000)

    def methods(self) -> Sequence[MethodBinding]:
        versions = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [
            MethodBinding("tasks/get", TaskParams, self._get, protocol_versions=versions),
            MethodBinding("tasks/cancel", TaskParams, self._cancel, protocol_versions=versions),
            MethodBinding("tasks/update", TaskParams, self._update, protocol_versions=versions),
        ]

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        arguments = params.arguments or {}
        if params.name not in TOOLS or not declares_tasks(ctx):
            return await call_next(ctx)
        context = Context(request_context=ctx, input_params=params)  # its input responses: roots
        state, key = self._caller(context)
        labels = {"model": str(arguments.get("model", "")), "route": "", "outcome": "cancelled"}
        self._metrics.call_started(params.name)
        work = self._work()
        start = {"send_message": work.start_send, "generate_image": work.start_image}.get(params.name, work.start_video)
        try:
            started = await start(dict(arguments), context, state, key, labels)
            if not isinstance(started, tuple):  # refused before anything was sent (or input required): as usual
                return started
            delegations, seconds = started
            first = delegations[0]
            try:
                stored = len(delegations) == 1 and await self._stored(state, first, key)
            except anyio.get_cancelled_exc_class():  # the host's stop before it had the task id: none goes on
                first.cancel()
                raise
            record = first.snapshot()
            if not stored or record.done:  # not durable, or over already: answered as usual, at once
                return await work.answer(context, state, key, delegations, seconds, labels)
            labels["outcome"] = "task"
            return {"resultType": "task", **task_json(first.id, record, ttl_ms=self._ttl_ms, now=record.updated)}
        finally:
            self._metrics.call_finished(params.name, **labels)

    @staticmethod
    async def _stored(state: State, delegation: Delegation, key: SecretStr | None) -> bool:
        """Put the record in the store under the key's tag, so any process answers ``tasks/get``
        for it (the spec's "durably created"); False when the store did not take it (or the
        delegation is under this process's own tag, the store being down): answered the usual way."""
        try:
            tag = await state.store.owner_tag(key) if key is not None else ""
        except StoreUnavailableError:
            return False
        return hmac.compare_digest(tag, delegation.owner) and await state.delegations.store_running(delegation)

    async def _owned(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> tuple[State, str, ReplyRecord]:
        """The caller's task, or the spec's errors: -32021 for a client that did not declare the
        extension, -32602 for a task that is unknown, expired or another key's."""
        require_client_extension(ctx, TASKS)
        state, key = self._caller(Context(request_context=ctx))
        if key is None:
            raise MCPError(INVALID_PARAMS, str(MissingKeyError()))
        try:
            owner = await state.store.owner_tag(key)  # a task exists only once stored: under the store's tag
            # A video no process looks after any more is taken over by the process the host polls.
            record = await state.delegations.read(task_id, owner, self._work().resume_for(state, key))
        except StoreUnavailableError as exc:
            raise MCPError(INTERNAL_ERROR, f"The reply store is not answering ({exc}); poll again shortly.") from None
        if record is None:
            raise MCPError(INVALID_PARAMS, "Failed to retrieve task: Task not found (or expired)")
        return state, owner, record

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        _, _, record = await self._owned(ctx, params.task_id)
        result = None
        if task_status(record) == "completed":
            work = self._work()
            result = await work.view(params.task_id, record, work.budget(Context(request_context=ctx)))
        now = datetime.now(UTC).timestamp()
        return {"resultType": "complete", **task_json(params.task_id, record, ttl_ms=self._ttl_ms, now=now,
                                                      result=result)}  # fmt: skip

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        state, owner, record = await self._owned(ctx, params.task_id)
        if not record.done:
            try:
                await state.delegations.cancel(params.task_id, owner)  # _owned took over an orphaned video
            except StoreUnavailableError as exc:
                raise MCPError(INTERNAL_ERROR, f"The reply store is not answering ({exc}); cancel again.") from None
        return {"resultType": "complete"}

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        await self._owned(ctx, params.task_id)
        return {"resultType": "complete"}
