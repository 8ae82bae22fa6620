"""The spend guard: a paid call priced above AITOEARN_MAX_CREDITS_PER_CALL goes ahead only when
the user confirms it; where the user cannot be asked, it is refused before anything is sent,
naming the price, the setting and a cheaper choice.

The user is asked through form elicitation, the way the connection's protocol allows: an
``elicitation/create`` request mid-call up to 2025-11-25 (answered within ``CONFIRM_WAIT``
seconds, else refused), an input-required round on 2026-07-28 (the SDK's resolver renders both
from one ``Elicit`` marker; the call then runs again with the answer, and the same question
finds it). Accept with ``spend`` true: go ahead. Decline, cancel, ``spend`` false, an error or
no answer in time: refused. A client that declares no form elicitation is never asked (it
could not answer: refused at once, never a hang).

A call that already had an input-required round for the client's roots (``_roots``) carries
that answer in ``request_state``; the confirmation's round is built by the same resolution so
the roots' answer rides along, else the next round would ask for the roots again, forever.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve, build_resolver_plans, resolve_arguments
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import BaseModel, Field, ValidationError

from .._config import Config
from ..relay._credits import plain_decimal
from ..views._result import error_result
from ._roots import ROOTS_ASK

__all__ = ["CONFIRM_WAIT", "SpendConfirmation", "check_spend"]

CONFIRM_WAIT = 120.0  # seconds the user has to answer a legacy elicitation/create before it counts as no


class SpendConfirmation(BaseModel):
    """What the form asks: one yes/no."""

    spend: bool = Field(description="Spend these credits and send the request")


def _form_elicitation(ctx: Context[Any, Any]) -> bool:
    """The client can show a form: ``elicitation`` declared with ``form``, or bare (the only
    shape before modes existed), as the SDK reads it."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _roots_in_play(ctx: Context[Any, Any]) -> bool:
    """This call already went through a roots round (its answer is in this request)."""
    key = ROOTS_ASK.wire_key
    return key in (ctx.input_responses or {}) or key in (ctx.request_state or "")


async def _ask(ctx: Context[Any, Any], question: str) -> ElicitationResult[SpendConfirmation] | InputRequiredResult:
    def ask_to_spend() -> Elicit[SpendConfirmation]:
        return Elicit(question, SpendConfirmation)

    # The resolver's wire key is its qualified name, the same on every round; its question
    # renders the same on every round (the price is the catalogue's), so the answer is found.
    wanted: dict[str, tuple[Resolve, bool]] = {"confirm": (Resolve(ask_to_spend), True)}
    if _roots_in_play(ctx):
        wanted["roots"] = ROOTS_ASK.entry
    resolved = await resolve_arguments(wanted, build_resolver_plans(wanted, set()), {}, ctx)
    if isinstance(resolved, InputRequiredResult):
        return resolved
    return resolved["confirm"]


async def check_spend(
    ctx: Context[Any, Any], config: Config, price: Decimal | None, *, tool: str, what: str, cheaper: str
) -> CallToolResult | InputRequiredResult | None:
    """None: go ahead. Otherwise the tool's result: a refusal (nothing was sent), or (on a
    2026-07-28 connection whose client can show a form) the round that asks, after which the
    call comes back and this is asked again, finding the answer.

    ``price``: the catalogue's credits for this call (None: unknown, not guarded); ``what``: the
    call in words ("a 15 s 1080p video on seedance-2-beta-1080p"); ``cheaper``: a cheaper choice
    in words ("a shorter duration or 720p")."""
    limit = Decimal(str(config.max_credits_per_call))
    if price is None or price <= limit:
        return None
    shown, shown_limit = plain_decimal(price), plain_decimal(limit)
    why = "the client cannot ask the user to confirm (it declares no form elicitation)"
    if _form_elicitation(ctx):
        question = (
            f"{tool}: {what} costs about {shown} AiToEarn credits, over the limit of {shown_limit} credits per "
            "call (AITOEARN_MAX_CREDITS_PER_CALL). Spend them?"
        )
        outcome: ElicitationResult[SpendConfirmation] | InputRequiredResult | None = None
        why = f"the user did not confirm within {CONFIRM_WAIT:g} s"
        with anyio.move_on_after(CONFIRM_WAIT):  # only a legacy request waits here; a round returns at once
            try:
                outcome = await _ask(ctx, question)
            except (MCPError, ToolError, ValidationError) as exc:
                why = f"asking the user failed ({type(exc).__name__})"
        if isinstance(outcome, InputRequiredResult):
            return outcome
        if isinstance(outcome, AcceptedElicitation):
            if outcome.data.spend:
                return None
            why = "the user answered no"
        elif outcome is not None:
            why = f"the user {'declined' if outcome.action == 'decline' else 'cancelled'}"
    return error_result(
        f"Not sent: {what} costs {shown} credits, over the limit of {shown_limit} credits per call "
        f"(AITOEARN_MAX_CREDITS_PER_CALL), and {why}. Fix: choose {cheaper}, ask the user to confirm the spend, "
        "or raise AITOEARN_MAX_CREDITS_PER_CALL in the server's environment. Nothing was spent.",
        {"status": "refused", "error": f"over the per-call credit limit; {why}", "price": shown, "limit": shown_limit},
    )
