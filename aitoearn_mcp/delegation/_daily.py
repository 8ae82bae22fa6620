"""The daily cap (AITOEARN_MAX_CREDITS_PER_DAY): each key's credits on a UTC day, counted in the
store so every replica sharing it shares the count.

A call reserves its worst case before anything is sent (the input, estimated from its size,
plus ``max_tokens`` at the output price): the reservation is one atomic add, so concurrent
calls, in any process, cannot together pass the cap. One that would cross it is given back and
the call refused. When the call ends, the reservation is replaced by the reply's own estimate
(a cut reply too: the relay bills what it generated), so the day's count is the sum of the
estimates of the calls that ran.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

import anyio
import orjson

from .._errors import InputError, StoreUnavailableError
from ..relay._credits import estimate_request_credits, plain_decimal
from ..store._protocol import Store
from ._send import SendJob

__all__ = ["DailyCap", "DailyHold", "call_estimate"]

logger = logging.getLogger("aitoearn_mcp")

MICRO = Decimal(1_000_000)
CHAT_FIX = "lower max_tokens, pick a cheaper model from list_models"  # send_message's way to spend less


def call_estimate(job: SendJob, max_tokens: int) -> Decimal | None:
    """The most a call may cost by the catalogue: its input plus ``max_tokens`` at the output
    price (None: the catalogue has no usable price for the model)."""
    if job.entry is None:
        return None
    # orjson: the body is valid JSON of ours, and an integer past 64 bits read as a float counts the same.
    found = estimate_request_credits(job.entry.get("pricing"), orjson.loads(job.prepared[0].body), max_tokens)
    return None if found is None else found.amount


def _micro(amount: Decimal) -> int:
    return int((amount * MICRO).to_integral_value(ROUND_CEILING))


def _credits(micro: int) -> str:
    return plain_decimal((Decimal(micro) / MICRO).quantize(Decimal("0.000001")))


@dataclass
class DailyCap:
    """One key's count for today, in ``store`` under ``owner`` (its tag)."""

    store: Store
    owner: str
    limit: Decimal

    @staticmethod
    def today() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d")

    async def reserve(self, amount: Decimal | None, what: str, *, fix: str = CHAT_FIX, day: str | None = None) -> int:
        """Count ``amount`` now (millionths of a credit, returned) on ``day`` (default today);
        InputError, counting nothing, when it would take the day past the limit: ``fix`` is the
        caller's own way to spend less, said first. Raises StoreUnavailableError when the store
        cannot count (the cap is not skipped)."""
        micro = _micro(amount) if amount is not None else 0
        day = day or self.today()
        total = await self.store.add_credits(self.owner, day, micro)
        if micro and total > _micro(self.limit):
            before = await self.store.add_credits(self.owner, day, -micro)
            raise InputError(
                f"Not sent: {what} may cost up to {_credits(micro)} credits, and this key has used about "
                f"{_credits(before)} of its {plain_decimal(self.limit)} credits today (UTC; "
                "AITOEARN_MAX_CREDITS_PER_DAY); "
                f"fix: {fix}, wait for tomorrow (UTC), or raise AITOEARN_MAX_CREDITS_PER_DAY in the server's "
                "environment. Nothing was sent."
            )
        return micro

    async def settle(self, reserved: int, spent: Decimal | None, *, day: str | None = None) -> str:
        """Replace the reservation (made on ``day``, default today) by what the call cost;
        returns that day's total (credits)."""
        change = (_micro(spent) if spent is not None else 0) - reserved
        return _credits(await self.store.add_credits(self.owner, day or self.today(), change))

    def note(self, total: str) -> str:
        return (f"[Today (UTC) this key has used about {total} of its {plain_decimal(self.limit)} credits "
                "(AITOEARN_MAX_CREDITS_PER_DAY).]")  # fmt: skip


@dataclass
class DailyHold:
    """A media job's hold on today's cap: its price reserved before anything is sent, then
    replaced by what the relay took (or given back when nothing was submitted). ``today`` and
    ``limit`` ride in the record once counted, so a process that takes the job over shows them and
    counts nothing again."""

    cap: DailyCap | None = None
    reserved: int = 0  # millionths of a credit held until the job is submitted or not
    day: str | None = None  # the UTC day it is held on
    today: str | None = None  # the key's credits today once this job is counted
    limit: str | None = None

    @classmethod
    def counted(cls, media: Mapping[str, object]) -> DailyHold:
        """The hold of a job taken over from its record: counted already, or never held."""
        today, limit = media.get("today"), media.get("daily_limit")
        return cls(today=today if isinstance(today, str) else None, limit=limit if isinstance(limit, str) else None)

    async def reserve(self, cap: DailyCap, amount: Decimal | None, what: str, fix: str) -> None:
        """Hold ``amount`` of today's cap; InputError, holding nothing, when it would take the day past it."""
        self.cap, self.day = cap, cap.today()
        self.reserved = await cap.reserve(amount, what, fix=fix, day=self.day)

    async def count(self, spent: Decimal | None, tool: str) -> None:
        """The reservation replaced by ``spent`` (None: given back); a store that cannot count is
        logged, not fatal (the job goes on: the relay has it)."""
        if self.cap is None or self.day is None:
            return
        try:
            with anyio.CancelScope(shield=True):  # counted once: a cancel cannot land between the add and the reset
                self.today = await self.cap.settle(self.reserved, spent, day=self.day)
                self.reserved, self.day = 0, None
            self.limit = plain_decimal(self.cap.limit)
        except StoreUnavailableError as exc:
            self.reserved, self.day = 0, None
            logger.warning("%s: today's credits could not be counted (%s)", tool, exc)

    def fields(self) -> dict[str, str | None]:
        """What the record keeps: today's total and the limit, once counted."""
        return {"today": self.today, "daily_limit": self.limit} if self.today is not None else {}
