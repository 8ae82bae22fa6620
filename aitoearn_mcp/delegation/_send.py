"""One send_message request as a job a delegation runs: prepared before anything is sent, then
sent on its routes, then settled into a reply record (notes, credits, the conversation stored).

Preparing checks everything the caller named, so a refusal comes before any upstream call;
sending may be cancelled (closing the relay stream); settling always runs, on whatever arrived.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from pydantic import SecretStr

from .._errors import IncompleteReplyError, InvalidModelError, RelayError, ShuttingDownError, StoreUnavailableError
from .._metrics import Metrics
from ..relay._catalogue import Catalogue
from ..relay._client import RelayClient
from ..relay._request import PreparedRequest, prepare_request
from ..relay._routes import Route, outputs_images, plan_route
from ..store._protocol import STORE_DOWN, Store
from ._call import Call, outcome_label, send_on_routes
from ._delegation import UNEXPECTED
from ._images import KeptImages, keep_images, reply_stem
from ._notes import Unknown, call_notes, unknown_note
from ._record import ReplyRecord
from ._turns import Continuation, record, with_history

__all__ = ["SendJob", "prepare_job"]

logger = logging.getLogger("aitoearn_mcp")

LATEST_CHARS = 200  # the latest text a progress report may show


def _unexpected(exc: Exception, call: Call) -> RelayError:
    error = RelayError(f"The server failed unexpectedly while reading the reply ({type(exc).__name__})",
                       fix="send the request again; the server's log has the details")  # fmt: skip
    accumulator = call.accumulator
    if not accumulator.started:
        return error
    return IncompleteReplyError(error, accumulator.message(partial=True), accumulator.text())


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
    call: Call | None = field(default=None, init=False, repr=False)  # the attempt on its way, its text filling

    @property
    def news(self) -> int:
        return self.call.accumulator.chars_received if self.call else 0

    def progress(self) -> tuple[int, str]:
        if self.call is None:
            return 0, ""
        accumulator = self.call.accumulator
        return accumulator.chars_received, accumulator.latest_text(LATEST_CHARS)

    def running(self, started: float) -> ReplyRecord | None:
        if self.call is None:
            return None
        accumulator = self.call.accumulator
        return ReplyRecord("running", self.model, started, time.time(), route=self.call.request.route.value,
                           text=accumulator.text(), chars=accumulator.chars_received)  # fmt: skip

    async def run(self, on_retry: Callable[[str], Awaitable[None]]) -> None:
        """The call on its routes, then its images saved (downloads, bounded by the deadline and
        stopped by a cancel like the call itself: settling has little time)."""
        await send_on_routes(self.relay, self.prepared, self.key, self._attempt, on_retry)
        call = self.call
        if call is not None and isinstance(call.outcome, dict):
            kept = await self._keep_images(call.outcome, fetch=True)
            call.outcome, call.image_notes = kept.message, kept.notes

    async def _keep_images(self, message: dict[str, Any], *, fetch: bool) -> KeptImages:
        return await keep_images(message, outputs_images=outputs_images(self.entry), http=self.relay.http,
                                 key=self.key, max_bytes=self.relay.max_reply_bytes, stem=reply_stem(self.model),
                                 fetch=fetch)  # fmt: skip

    async def _with_images(self, message: dict[str, Any], call: Call) -> tuple[dict[str, Any], list[str]]:
        """``message`` with its images saved (those the send left: a call cut or failed keeps its
        base64 ones too) and every image note of the call."""
        kept = await self._keep_images(message, fetch=False)
        return kept.message, [*call.image_notes, *kept.notes]

    def _attempt(self, call: Call) -> None:
        self.call = call

    def crashed(self, exc: Exception) -> None:
        if self.call is not None:
            self.call.outcome = _unexpected(exc, self.call)

    async def settle(self, cancelled: bool) -> ReplyRecord | None:
        """The record of a call that ended: complete, failed, or cut (``outcome`` None) by the
        caller's cancel (``cancelled``) or by the server shutting down; None when cut before its
        first attempt. Then the stream's memory goes (the record has it all)."""
        call = self.call
        if call is None:
            return None
        try:
            return await self._settled(call, cancelled)
        except Exception:
            logger.exception("send_message model=%s: unexpected failure while settling the reply", self.model)
            now = time.time()
            return ReplyRecord("failed", self.model, now, now, text=call.accumulator.text(), error=UNEXPECTED,
                               notes=[UNEXPECTED])  # fmt: skip
        finally:
            self.call = None

    async def _settled(self, call: Call, cancelled: bool) -> ReplyRecord:
        accumulator, attempt = call.accumulator, call.request
        outcome = call.outcome
        now = time.time()
        done = ReplyRecord("running", self.model, now, now, route=attempt.route.value, text=accumulator.text(),
                           chars=accumulator.chars_received)  # fmt: skip
        self.metrics.upstream(attempt.route, call.seconds, call.first_event)
        if outcome is None and cancelled:
            partial, image_notes = await self._with_images(accumulator.message(partial=True), call)
            notes, extras = self._notes(partial, attempt, image_notes)
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
            await self._failed(done, outcome, attempt, call)
            return done
        logger.info(
            "send_message model=%s route=%s stop_reason=%s chars=%d in %.2f s",
            self.model, attempt.route, outcome.get("stop_reason"), accumulator.chars_received, call.seconds,
        )  # fmt: skip
        outcome, image_notes = await self._with_images(outcome, call)
        notes, extras = self._notes(outcome, attempt, image_notes)
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

    def _notes(
        self, message: Mapping[str, Any], attempt: PreparedRequest, image_notes: list[str]
    ) -> tuple[list[str], dict[str, Any]]:
        """The call's notes, the image notes first (in both parts: where each image is saved)."""
        notes, extras = call_notes(
            message, route=attempt.route, dropped=attempt.dropped, max_tokens=attempt.max_tokens, entry=self.entry,
            unknown=self.unknown,
        )  # fmt: skip
        extras["notes"] = [*image_notes, *extras["notes"]]
        return [*image_notes, *notes], extras

    async def _failed(self, done: ReplyRecord, error: RelayError, attempt: PreparedRequest, call: Call) -> None:
        done.status = "failed"
        if isinstance(error, InvalidModelError):
            error.fix = await self._model_suggestion(attempt.route)
            error.args = (error.render(),)
        if not isinstance(error, IncompleteReplyError):
            # A field name mistyped may be what the relay refused: said beside its refusal.
            done.error, done.notes = str(error), [str(error), *filter(None, [unknown_note(self.unknown)])]
            return
        summary = f"{error} {len(error.text):,} characters of text arrived before the failure"
        partial, image_notes = await self._with_images(error.partial, call)
        notes, extras = self._notes(partial, attempt, image_notes)
        # Hosts that show only the structured content must see the failure too.
        extras["error"] = done.error = f"{summary}."
        done.message, done.text = {**partial, **extras}, error.text
        lead = f"{summary}; they follow." if error.text else f"{summary}."
        done.notes = [lead, *image_notes, notes[-1]]

    async def _model_suggestion(self, route: Route) -> str:
        model, entry = self.model, self.entry
        if entry is not None:
            other = Route.MESSAGES if route is Route.CHAT_COMPLETIONS else Route.CHAT_COMPLETIONS
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
