"""One send_message call on the relay: the routes tried in turn. Cancelling it (a delegation's
scope) closes the relay stream; what arrived stays in the accumulator."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from .._errors import InvalidModelError, RelayError, detached
from ..relay._client import RelayClient
from ..relay._reply import ReplyAccumulator
from ..relay._request import PreparedRequest

__all__ = ["Call", "outcome_label", "send_on_routes"]

logger = logging.getLogger("aitoearn_mcp")


@dataclass
class Call:
    """One send_message call on its way: where it went, what arrived, how long it took."""

    request: PreparedRequest
    accumulator: ReplyAccumulator
    outcome: dict[str, Any] | RelayError | None = None  # None while it runs, or when it was cut
    seconds: float = 0.0
    first_event: float | None = None
    image_notes: list[str] = field(default_factory=list)  # where the reply's images were saved


async def _collect(relay: RelayClient, call: Call, key: SecretStr, on_retry: Callable[[str], Awaitable[None]]) -> None:
    """Run the call, filling ``call`` in as it goes. Errors come back as values."""
    started = time.monotonic()

    def first() -> None:
        call.first_event = time.monotonic() - started

    try:
        call.outcome = await relay.send_message(
            call.request.route,
            call.request.body,
            key,
            call.accumulator,
            on_retry=on_retry,
            on_first_event=first,
            path=call.request.path or None,
        )
    except RelayError as exc:
        call.outcome = detached(exc)
    finally:
        call.seconds = time.monotonic() - started


async def send_on_routes(
    relay: RelayClient,
    prepared: list[PreparedRequest],
    key: SecretStr,
    on_attempt: Callable[[Call], None],
    on_retry: Callable[[str], Awaitable[None]],
) -> Call:
    """Send on the first route; when the relay does not know the model there, on the next.
    ``on_attempt`` is told of each attempt before it starts (its accumulator fills live)."""
    for number, request in enumerate(prepared):
        call = Call(request, ReplyAccumulator())
        on_attempt(call)
        await _collect(relay, call, key, on_retry)
        if not isinstance(call.outcome, InvalidModelError) or number == len(prepared) - 1:
            return call
        logger.info("send_message model not accepted on route %s; trying the next route", request.route)
    raise AssertionError("no route planned")


def outcome_label(outcome: dict[str, Any] | RelayError) -> str:
    """``ok`` or the error's kind: ``auth``, ``credits``, ``incomplete``, ... (a bounded set)."""
    if not isinstance(outcome, RelayError):
        return "ok"
    name = type(outcome).__name__.removesuffix("Error")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_") or "relay"
