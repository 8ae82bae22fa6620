"""A tool as MCPServer registers it: the arguments handed over as sent, with the published
schema beside them, and each call counted in the metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import ConfigDict, SecretStr

from .._metrics import Metrics
from ._caller import Caller
from ._schemas import INPUT_SCHEMAS
from ._state import State

__all__ = ["Handler", "ToolMethod", "counted", "registered"]

Result = CallToolResult | InputRequiredResult  # input required: 2026-07-28's way to ask for the client's roots
Handler = Callable[[dict[str, Any], Context], Awaitable[Result]]
# A tool's work: the arguments as sent, the request, its state and key, the metrics labels it fills in.
ToolMethod = Callable[[dict[str, Any], Context, State, SecretStr | None, dict[str, str]], Awaitable[Result]]


class _RawArguments(ArgModelBase):
    """Hands the tool the arguments as sent: the tool validates them itself, so a refusal can
    name the field and the fix, and fields the relay accepts but we do not model are kept."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


def counted(name: str, method: Callable[[], ToolMethod], caller: Caller, metrics: Metrics) -> Handler:
    """``method`` called with the caller's state and key, between the call's start and finish in
    the metrics (model, route and outcome as the method left them; "cancelled" if it never said).
    ``method`` is looked up per call, so the work behind it loads on the first call."""

    async def call(arguments: dict[str, Any], ctx: Context) -> Result:
        metrics.call_started(name)
        labels = {"model": str(arguments.get("model", "")), "route": "", "outcome": "cancelled"}
        try:
            return await method()(arguments, ctx, *caller(ctx), labels)
        finally:
            metrics.call_finished(name, **labels)

    return call


def registered(
    handler: Handler, name: str, title: str, description: str, output: dict[str, Any] | None,
    annotations: ToolAnnotations,
) -> Tool:  # fmt: skip
    """The SDK's entry for one tool: its published input schema, its output schema, ``handler``
    given the raw arguments and the request's context."""
    return Tool(
        fn=handler,
        name=name,
        title=title,
        description=description,
        parameters=INPUT_SCHEMAS[name],
        fn_metadata=FuncMetadata(arg_model=_RawArguments, output_schema=output),
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations,
    )
