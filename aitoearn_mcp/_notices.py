"""What the server tells the client while a call runs: progress notifications and log
messages (retries), at the level the client asked for."""

from __future__ import annotations

import warnings
import weakref
from typing import Any, get_args

import anyio
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import EmptyResult, LoggingLevel, SetLevelRequestParams

from ._reply import ReplyAccumulator

__all__ = ["PROGRESS_INTERVAL", "log_to_client", "report_progress", "set_logging_level"]

PROGRESS_INTERVAL = 0.1  # seconds: at most 10 notifications a second, never 250 ms without one while text flows
PROGRESS_TAIL = 40  # characters of the latest text shown in a progress message

_LOG_LEVELS: list[str] = list(get_args(LoggingLevel))

# The level each handshake-era session asked for with logging/setLevel (default: everything).
_session_log_levels: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()


async def set_logging_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    _session_log_levels[ctx.session] = params.level
    return EmptyResult()


async def log_to_client(ctx: Context, message: str) -> None:
    """Retries go to the client's log too. MCP logging is deprecated in 2026-07-28 but it is
    what today's hosts show; the SDK's warning about it is not the user's business."""
    if _LOG_LEVELS.index(_session_log_levels.get(ctx.session, "debug")) > _LOG_LEVELS.index("warning"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await ctx.warning(message)


async def report_progress(ctx: Context, accumulator: ReplyAccumulator) -> None:
    """Send progress while text flows: strictly rising, at most one per PROGRESS_INTERVAL."""
    try:
        await ctx.report_progress(0, None, "Request sent; waiting for the first tokens")
        reported = 0
        while True:
            await anyio.sleep(PROGRESS_INTERVAL)
            received = accumulator.chars_received
            if received > reported:
                reported = received
                tail = " ".join(accumulator.latest_text(PROGRESS_TAIL).split())
                await ctx.report_progress(received, None, f"{received:,} characters received: …{tail}")
    finally:
        # The cancelled task's frame lives on in a reference cycle (its CancelledError's traceback)
        # until a full garbage collection: it must not keep the reply's memory that long.
        del accumulator
