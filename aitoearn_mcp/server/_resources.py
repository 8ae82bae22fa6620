"""The resources: a reply's full text and Message, a conversation whole, and ``resources/list``
with the caller's own recent items (MCPServer lists only static resources; these depend on who
asks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ListResourcesResult, PaginatedRequestParams

from ..views._uris import CONVERSATION_URI, REPLY_URI
from ._caller import Caller

if TYPE_CHECKING:
    from ._listing import Listing
    from ._tools import Tools

__all__ = ["add_resources"]

_TOO_LARGE = "of a send_message reply (get_reply pages it too)"


def add_resources(server: MCPServer, work: Callable[[], Tools], listing: Callable[[], Listing], caller: Caller) -> None:
    """Register the three resource templates and the per-caller ``resources/list`` on ``server``;
    ``work`` and ``listing`` are built on first use."""

    @server.resource(REPLY_URI, name="reply", mime_type="text/plain", description=f"The full text {_TOO_LARGE}.")
    async def read_reply(reply_id: str, ctx: Context) -> str:
        return (await work().stored_reply(reply_id, *caller(ctx))).text

    @server.resource(
        REPLY_URI + "/message", name="reply-message", mime_type="application/json",
        description=f"The full Message {_TOO_LARGE}.",
    )  # fmt: skip
    async def read_reply_message(reply_id: str, ctx: Context) -> str:
        return json.dumps((await work().stored_reply(reply_id, *caller(ctx))).message or {}, ensure_ascii=False)

    @server.resource(
        CONVERSATION_URI, name="conversation", mime_type="application/json",
        description="A conversation whole: system prompt and every turn (messages, reply, model).",
    )  # fmt: skip
    async def read_conversation(conversation_id: str, ctx: Context) -> str:
        return await listing().read_conversation(conversation_id, ctx)

    async def list_resources(request: Any, params: PaginatedRequestParams | None) -> ListResourcesResult:
        mine = await listing().caller_resources(Context(request_context=request, mcp_server=server))
        return ListResourcesResult(resources=[*await server.list_resources(), *mine])

    server._lowlevel_server.add_request_handler("resources/list", PaginatedRequestParams, list_resources)  # pyright: ignore[reportPrivateUsage]
