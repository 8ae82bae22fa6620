"""One send_message request as a job a delegation runs: prepared before anything is sent, then
sent on its routes, then settled into a reply record (notes, credits, the conversation stored).

Preparing checks everything the caller named, so a refusal comes before any upstream call;
sending may be cancelled; settling always runs, on whatever arrived.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio
from pydantic import SecretStr

from .._errors import IncompleteReplyError, InvalidModelError, RelayError, ShuttingDownError, StoreUnavailableError
from .._metrics import Metrics
from ..relay._catalogue import Catalogue
from ..relay._client import RelayClient
from ..relay._request import PreparedRequest, prepare_request
from ..relay._routes import Route, plan_route
from ..store._protocol import STORE_DOWN, Store
from ._call import Call, outcome_label, send_on_routes
from ._notes import Unknown, call_notes, unknown_note
from ._record import ReplyRecord
from ._turns import Continuation, record, with_history

__all__ = ["SendJob", "prepare_job"]

logger = logging.getLogger("aitoearn_mcp")


@dataclass
class SendJob:
    """Everything one model's call needs, checked; ``given``: the caller's arguments as the
    conversation keeps them."""

    model: str
    key: SecretStr
    prepared: list[PreparedRequest]  # one per route, in the order tried
    entry: Mapping[str, Any] | None
    channel: str | None
    continuation: Continuation
    given: dict[str, Any]
    relay: RelayClient
    catalogue: Catalogue
    store: Store
    metrics: Metrics
    unknown: Unknown = ()  # fields the caller sent that no one knows: sent as given, and said

    async def send(self, on_attempt: Callable[[Call], None], on_retry: Callable[[str], Awaitable[None]]) -> Call:
        return await send_on_routes(self.relay, self.prepared, self.key, on_attempt, on_retry)

    async def settle(self, call: Call, cancelled: bool) -> ReplyRecord:
        """The record of a call that ended: complete, failed, or cut (``outcome`` None) by the
        caller's cancel (``cancelled``) or by the server shutting down."""
        accumulator, attempt = call.accumulator, call.request
        outcome = call.outcome
        now = time.time()
        done = ReplyRecord("running", self.model, now, now, route=attempt.route.value, text=accumulator.text(),
                           chars=accumulator.chars_received)  # fmt: skip
        self.metrics.upstream(attempt.route, call.seconds, call.first_event)
        if outcome is None and cancelled:
            partial = accumulator.message(partial=True)
            notes, extras = self._notes(partial, attempt)
            note = (f"[Cancelled at your request after {len(done.text):,} characters of text: the relay stream was "
                    "closed, so billing stopped. What arrived is kept.]")  # fmt: skip
            extras["notes"] = [note, *extras["notes"]]
            done.status, done.message, done.notes, done.error = "cancelled", {**partial, **extras}, [note, *notes], None
            self.metrics.streamed(self.model, attempt.route, accumulator.chars_received, None)
            return done
        shutting_down = outcome is None  # the server stopped it: shutting down (past its grace period)
        if outcome is None:
            stopped = ShuttingDownError()
            outcome = stopped if not accumulator.started else IncompleteReplyError(
                stopped, accumulator.message(partial=True), accumulator.text()
            )  # fmt: skip
        done.error_kind = outcome_label(outcome)
        if isinstance(outcome, RelayError):
            how = "stopped by the server's shutdown" if shutting_down else f"failed: {type(outcome).__name__}"
            logger.info("send_message model=%s route=%s %s after %.2f s", self.model, attempt.route, how,
                        call.seconds)  # fmt: skip
            self.metrics.streamed(self.model, attempt.route, accumulator.chars_received, None)
            await self._failed(done, outcome, attempt)
            return done
        logger.info(
            "send_message model=%s route=%s stop_reason=%s chars=%d in %.2f s",
            self.model, attempt.route, outcome.get("stop_reason"), accumulator.chars_received, call.seconds,
        )  # fmt: skip
        notes, extras = self._notes(outcome, attempt)
        estimate = extras["credits"]["estimate"]
        self.metrics.streamed(self.model, attempt.route, accumulator.chars_received,
                              Decimal(estimate) if estimate is not None else None)  # fmt: skip
        try:
            conversation_id, note = await record(self.store, self.continuation, self.key, arguments=self.given,
                                                 reply=outcome, channel=self.channel)  # fmt: skip
            extras["conversation_id"] = done.conversation_id = conversation_id
        except StoreUnavailableError as exc:
            note = f"[The reply is complete, but the conversation could not be stored: {STORE_DOWN} ({exc}).]"
        extras["notes"].append(note)  # hosts that show only the structured content learn how to continue too
        done.status, done.message, done.notes = "complete", {**outcome, **extras}, [*notes, note]
        return done

    def _notes(self, message: Mapping[str, Any], attempt: PreparedRequest) -> tuple[list[str], dict[str, Any]]:
        return call_notes(
            message, route=attempt.route, dropped=attempt.dropped, max_tokens=attempt.max_tokens, entry=self.entry,
            unknown=self.unknown,
        )  # fmt: skip

    async def _failed(self, done: ReplyRecord, error: RelayError, attempt: PreparedRequest) -> None:
        done.status = "failed"
        if isinstance(error, InvalidModelError):
            error.fix = await self._model_suggestion(attempt.route)
            error.args = (error.render(),)
        if not isinstance(error, IncompleteReplyError):
            # A field name mistyped may be what the relay refused: said beside its refusal.
            done.error, done.notes = str(error), [str(error), *filter(None, [unknown_note(self.unknown)])]
            return
        summary = f"{error} {len(error.text):,} characters of text arrived before the failure"
        notes, extras = self._notes(error.partial, attempt)
        # Hosts that show only the structured content must see the failure too.
        extras["error"] = done.error = f"{summary}."
        done.message, done.text = {**error.partial, **extras}, error.text
        done.notes = [f"{summary}; they follow.", notes[-1]] if error.text else [f"{summary}.", notes[-1]]

    async def _model_suggestion(self, route: Route) -> str:
        model, entry = self.model, self.entry
        if entry is not None:
            other = Route.CHAT_COMPLETIONS if route is Route.MESSAGES else Route.MESSAGES
            return (
                f"list_models lists {model!r} (channel {entry.get('channel')}), but the relay refused it on its "
                f"{route.protocol} route; try again later, or set AITOEARN_ROUTE={other.value} (--route) on the server"
            )
        entries: list[dict[str, Any]] = []
        with anyio.move_on_after(5):  # a hint is not worth a long wait
            with contextlib.suppress(RelayError):
                entries = await self.catalogue.get(self.relay, self.key)
        names = [str(e["name"]) for e in entries if e["name"] != model]
        import difflib  # here: only a refused model name needs it, and start-up should not pay

        close = difflib.get_close_matches(model, names, n=3, cutoff=0.4)
        if close:
            return f"{model!r} is not accepted; the closest names from list_models are {', '.join(close)}"
        return f"{model!r} is not accepted; call list_models for the names the relay sells"


async def prepare_job(
    model: str, max_tokens: int, given: dict[str, Any], continuation: Continuation, key: SecretStr, *,
    route_setting: str, relay: RelayClient, catalogue: Catalogue, store: Store, metrics: Metrics, unknown: Unknown = (),
) -> SendJob:  # fmt: skip
    """The job for ``model``: its catalogue entry, the stored turns, the request per route.
    Raises InputError for anything the caller must fix (nothing is sent)."""
    entry = await catalogue.entry(model, relay, key)
    channel = entry.get("channel") if entry else None
    arguments = {**given, "model": model}
    full = with_history(arguments, continuation, channel)
    plan = plan_route(route_setting, entry)
    prepared = [prepare_request(route, full, max_tokens, entry) for route in plan.routes]
    return SendJob(model, key, prepared, entry, channel, continuation, arguments, relay, catalogue, store, metrics,
                   unknown)  # fmt: skip
