"""One send_message call as the caller chose it: the model an alias meant, the models to try in
turn when it fails before any text arrived (``fallback``), and the day's credits counted. It is
the job a delegation runs; each model's own work stays a SendJob.

A model is left for the next only when nothing of its reply arrived, so nothing is billed twice,
and only for failures another model may not share: overload and rate limits after the retries,
a 5xx, no channel or the relay's AI call failing, the model refused on every route, and credits
run out in one credits scope while the next model draws on another. The caller's own faults (a
rejected key, an invalid request) stop the chain: every model would refuse them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .._errors import (
    CreditsError,
    IncompleteReplyError,
    InputError,
    InvalidModelError,
    RelayError,
    StoreUnavailableError,
    UnavailableError,
)
from .._untrusted import one_line
from ..relay._choose import Choice
from ..relay._credits import plain_decimal
from ._call import Call
from ._daily import DailyCap, call_estimate
from ._delegation import OnRetry
from ._record import ReplyRecord
from ._send import SendJob

__all__ = ["Candidate", "ChoiceJob", "why_not"]

logger = logging.getLogger("aitoearn_mcp")

# The relay's own words and codes for "no channel serves this model now": 19001 relay server
# unavailable, 12301 AI call failed.
_UNAVAILABLE_CODES = frozenset({19001, 12301, "19001", "12301"})
_NO_CHANNEL = re.compile(r"no (?:available )?channel|unavailable|无可用渠道|渠道不可用|暂不可用|服务不可用", re.I)
REASON_CHARS = 200


@dataclass(frozen=True)
class Candidate:
    job: SendJob
    choice: Choice  # what the caller wrote for it, and what an alias meant


def _reason(error: RelayError) -> str:
    detail = f" ({one_line(error.detail, REASON_CHARS)})" if error.detail else ""
    return f"{error.what.rstrip('.')}{detail}"


def why_not(call: Call) -> str | None:
    """Why the next model may answer instead: the failure, in words; None when it may not (the
    call answered, something of the reply arrived, or every model would fail the same way)."""
    outcome = call.outcome
    if not isinstance(outcome, RelayError) or call.accumulator.chars_received:
        return None
    error = outcome.cause if isinstance(outcome, IncompleteReplyError) else outcome
    if isinstance(error, UnavailableError | InvalidModelError | CreditsError):
        return _reason(error)
    if error.code in _UNAVAILABLE_CODES or _NO_CHANNEL.search(error.detail):
        return _reason(error)
    if error.status is not None and 500 <= error.status < 600:
        return _reason(error)
    return None


def _scope(job: SendJob) -> str | None:
    scope = job.entry.get("creditsScope") if job.entry else None
    return str(scope) if scope else None


@dataclass
class ChoiceJob:
    """The candidates in turn; ``reserved``: what the first one's call holds of today's cap."""

    candidates: list[Candidate]
    cap: DailyCap | None = None
    reserved: int = 0
    max_tokens: int = 0
    model: str = ""
    passed: list[tuple[str, str]] = field(default_factory=list)  # (model, why it did not answer)
    _current: int = 0

    def __post_init__(self) -> None:
        self.model = self.candidates[0].job.model

    @property
    def current(self) -> Candidate:
        return self.candidates[self._current]

    @property
    def news(self) -> int:
        return self.current.job.news

    def progress(self) -> tuple[int, str]:
        return self.current.job.progress()

    def running(self, started: float) -> ReplyRecord | None:
        return self.current.job.running(started)

    def crashed(self, exc: Exception) -> None:
        self.current.job.crashed(exc)

    async def run(self, on_retry: OnRetry) -> None:
        spent_scopes: set[str] = set()  # credits scopes found empty
        for index, candidate in enumerate(self.candidates):
            job = candidate.job
            if index and (skip := await self._skip(job, spent_scopes)) is not None:
                self.passed.append((job.model, skip))
                continue
            if index:  # the one before failed with nothing of its reply: let go of it, this one answers
                self.current.job.call = None
            self._current, self.model = index, job.model
            await job.run(on_retry)
            call = job.call
            if call is None:  # cut before its first attempt
                return
            why = why_not(call)
            if why is None or index == len(self.candidates) - 1:
                return
            if isinstance(call.outcome, CreditsError):
                if (scope := _scope(job)) is None:  # which pool ran dry is unknown: another model may share it
                    return
                spent_scopes.add(scope)
            self.passed.append((job.model, why))
            job.metrics.upstream(call.request.route, call.seconds, call.first_event)
            logger.info("send_message model=%s failed before any text (%s); trying the next model", job.model, why)
            await self._give_back()

    async def _skip(self, job: SendJob, spent_scopes: set[str]) -> str | None:
        """Why ``job`` is not tried (None: it is, its cap reservation made)."""
        if spent_scopes and (_scope(job) is None or _scope(job) in spent_scopes):
            return "not tried: it may draw on the same credits, which ran out"
        if self.cap is not None:
            try:
                self.reserved = await self.cap.reserve(call_estimate(job, self.max_tokens), f"a call to {job.model}")
            except (InputError, StoreUnavailableError) as exc:
                return f"not tried: {exc}"
        return None

    async def _give_back(self) -> None:
        if self.cap is not None and self.reserved:
            try:
                await self.cap.settle(self.reserved, None)
            except StoreUnavailableError:
                logger.warning("the daily credits count could not give back a reservation")
            self.reserved = 0

    async def settle(self, cancelled: bool) -> ReplyRecord | None:
        chosen = self.current
        record = await chosen.job.settle(cancelled)
        if record is None:  # cut before anything was sent: nothing of today's cap is spent
            await self._give_back()
            return None
        lead: list[str] = []
        members: dict[str, Any] = {}
        if chosen.choice.how:
            lead.append(f"[You asked for {chosen.choice.asked!r}: that is {chosen.choice.model} "
                        f"({chosen.choice.how}).]")  # fmt: skip
            members["alias"] = {"asked": chosen.choice.asked, "model": chosen.choice.model, "why": chosen.choice.how}
        if self.passed:
            said = "; ".join(f"{model} did not answer: {why}" for model, why in self.passed)
            outcome = f"{chosen.job.model} answered instead" if record.status == "complete" else (
                f"{chosen.job.model} was the last tried")  # fmt: skip
            lead.append(f"[Fallback: {said}. {outcome}.]")
            members["fallback"] = [{"model": model, "error": why} for model, why in self.passed]
        daily = await self._count(record)
        _amend(record, lead, members, daily)
        return record

    async def _count(self, record: ReplyRecord) -> tuple[str, dict[str, str]] | None:
        if self.cap is None:
            return None
        credits = (record.message or {}).get("credits") or {}
        estimate = credits.get("estimate") if isinstance(credits, dict) else None
        try:
            total = await self.cap.settle(self.reserved, Decimal(estimate) if estimate is not None else None)
        except StoreUnavailableError as exc:
            return f"[Today's credits could not be counted: {exc}.]", {}
        finally:
            self.reserved = 0
        return self.cap.note(total), {"today": total, "daily_limit": plain_decimal(self.cap.limit)}


def _amend(
    record: ReplyRecord, lead: list[str], members: dict[str, Any], daily: tuple[str, dict[str, str]] | None
) -> None:
    """The choice's notes in both parts: ``lead`` before the call's own notes, the day's total
    after its credits line and beside its ``credits``."""
    notes = [*lead, *record.notes]
    if daily is not None:
        line = daily[0]
        at = next((i + 1 for i, note in enumerate(notes) if "Credits:" in note), len(notes))
        notes.insert(at, line)
    record.notes = notes
    if record.message is None:
        return
    message = record.message
    message_notes = [*lead, *message.get("notes", [])]
    if daily is not None:
        message_notes.append(daily[0])
        if isinstance(message.get("credits"), dict) and daily[1]:
            message["credits"] = {**message["credits"], **daily[1]}
    message["notes"] = message_notes
    message.update(members)
