"""The spend guard: a paid call priced above AITOEARN_MAX_CREDITS_PER_CALL is refused before
anything is sent, naming the price, the setting and a cheaper choice.

(First cut: refusal only. Asking the user to confirm, where the client offers elicitation,
comes next and keeps this signature.)
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, InputRequiredResult

from .._config import Config
from ..views._result import error_result

__all__ = ["check_spend"]


async def check_spend(
    ctx: Context[Any, Any], config: Config, price: Decimal | None, *, tool: str, what: str, cheaper: str
) -> CallToolResult | InputRequiredResult | None:
    """None: go ahead. Otherwise the tool's result: a refusal (nothing was sent), or (where the
    client can ask its user) the round that asks, after which the call comes back.

    ``price``: the catalogue's credits for this call (None: unknown, not guarded); ``what``: the
    call in words ("a 15 s 1080p video on seedance-2-beta-1080p"); ``cheaper``: a cheaper choice
    in words ("a shorter duration or 720p")."""
    limit = Decimal(str(config.max_credits_per_call))
    if price is None or price <= limit:
        return None
    return error_result(
        f"Not sent: {what} costs {price} credits, over the limit of {limit} credits per call "
        f"(AITOEARN_MAX_CREDITS_PER_CALL). Fix: choose {cheaper}, or raise AITOEARN_MAX_CREDITS_PER_CALL "
        f"in the server's environment. Nothing was spent.",
        {"status": "refused", "error": "over the per-call credit limit", "price": str(price), "limit": str(limit)},
    )
