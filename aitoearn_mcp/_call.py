"""One send_message call on the relay: the routes tried in turn, progress reported beside it,
and a cancel scope the drain can use at the end of a shutdown's grace period."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from pydantic import SecretStr

from ._drain import Drain
from ._errors import IncompleteReplyError, InvalidModelError, RelayError, ShuttingDownError
from ._notices import log_to_client, report_progress
from ._relay import RelayClient
from ._reply import ReplyAccumulator
from ._request import PreparedRequest

__all__ = ["Call", "outcome_label", "send_on_routes"]

logger = logging.getLogger("aitoearn_mcp")


@dataclass
class Call:
    """One send_message call on its way: where it went, what arrived, how long it took."""

    request: PreparedRequest
    accumulator: ReplyAccumulator
    outcome: dict[str, Any] | RelayError
    seconds: float
    first_event: float | None


async def _collect(
    relay: RelayClient, request: PreparedRequest, key: SecretStr, ctx: Context, drain: Drain | None
) -> Call:
    """Run the call with the progress reporter beside it. Errors come back as values: raised
    through the task group they would arrive wrapped in an ExceptionGroup."""
    accumulator = ReplyAccumulator()
    started = time.monotonic()
    first_event: list[float] = []
    outcome: dict[str, Any] | RelayError | None = None
    scope = anyio.CancelScope()  # cancelled by the drain when the grace period runs out
    with drain.track(scope) if drain else contextlib.nullcontext(), scope:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(report_progress, ctx, accumulator)
            try:
                outcome = await relay.send_message(
                    request.route, request.body, key, accumulator,
                    on_retry=functools.partial(log_to_client, ctx),
                    on_first_event=lambda: first_event.append(time.monotonic() - started),
                )  # fmt: skip
            except RelayError as exc:
                outcome = exc.with_traceback(None)  # kept, its frames are not: no cycle holds the reply
            finally:
                tasks.cancel_scope.cancel()
    if outcome is None:  # the drain cancelled the call at the end of its grace period
        shutting_down = ShuttingDownError()
        outcome = shutting_down if not accumulator.started else IncompleteReplyError(
            shutting_down, accumulator.message(partial=True), accumulator.text()
        )  # fmt: skip
    return Call(request, accumulator, outcome, time.monotonic() - started, first_event[0] if first_event else None)


async def send_on_routes(
    relay: RelayClient, prepared: list[PreparedRequest], key: SecretStr, ctx: Context, drain: Drain | None
) -> Call:
    """Send on the first route; when the relay does not know the model there, on the next."""
    for attempt in prepared[:-1]:
        call = await _collect(relay, attempt, key, ctx, drain)
        if not isinstance(call.outcome, InvalidModelError):
            return call
        logger.info("send_message model not accepted on route %s; trying the next route", attempt.route)
    return await _collect(relay, prepared[-1], key, ctx, drain)


def outcome_label(outcome: dict[str, Any] | RelayError) -> str:
    """``ok`` or the error's kind: ``auth``, ``credits``, ``incomplete``, ... (a bounded set)."""
    if not isinstance(outcome, RelayError):
        return "ok"
    name = type(outcome).__name__.removesuffix("Error")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_") or "relay"
