"""Finding conversations and replies again, after the host's context was cleared or in a new
session: the ``list_conversations`` tool (every host offers tools; Gemini CLI offers the model
no resource tool), and the caller's own recent items in ``resources/list`` (Claude Code finds
resources through that list only), each readable whole by resource.

Everything listed is the caller's: the owner is the HMAC of the key the call came with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.types import CallToolResult, Resource, TextContent

from .._errors import InputError, StoreUnavailableError
from ..store._protocol import STORE_DOWN, Conversation, ConversationSummary, ReplySummary, Store, is_conversation_id
from ..views._budget import RESERVE, cut, weight
from ..views._result import error_result
from ..views._uris import CONVERSATION_URI, REPLY_URI
from ._caller import Caller
from ._dto import ListConversationsInput, parse_args

__all__ = ["Listing"]

LISTED = 20  # conversations (and replies) shown by the tool and in resources/list

_CONTINUE = "Pass an id as send_message's conversation_id to continue it (only the new messages)."


def _when(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(unix))


def _conversation_entry(summary: ConversationSummary) -> dict[str, Any]:
    return {"id": summary.id, "last_used": _when(summary.last_used), "turns": summary.turns,
            "models": list(summary.models), "first_words": summary.first_words}  # fmt: skip


def _reply_entry(summary: ReplySummary) -> dict[str, Any]:
    return {"id": summary.id, "last_used": _when(summary.last_used), "status": summary.status, "model": summary.model,
            "characters": summary.characters, "uri": REPLY_URI.format(reply_id=summary.id)}  # fmt: skip


def _render_content(content: Any) -> str:
    """A message's content as text: text verbatim, tool calls as compact JSON, media named."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind in ("tool_use", "server_tool_use"):
            parts.append(f"[{kind} {block.get('name')}: {json.dumps(block.get('input'), ensure_ascii=False)}]")
        elif kind == "tool_result":
            parts.append(f"[tool_result: {_render_content(block.get('content'))}]")
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            parts.append(f"[{kind} block]")
    return "\n".join(parts)


def _render_turn(number: int, turn: dict[str, Any]) -> str:
    lines = [f"── Turn {number}" + (f" · {turn['model']}" if turn.get("model") else "") + " ──"]
    for message in turn.get("messages", []):
        lines.append(f"[{message.get('role', 'user')}] {_render_content(message.get('content'))}")
    lines.append(f"[assistant] {_render_content(turn.get('reply'))}")
    return "\n".join(lines)


def conversation_page(conversation: Conversation, from_turn: int, budget: int) -> tuple[str, dict[str, Any]]:
    """Turns from ``from_turn`` as a transcript within the budget (text and structured content
    carry the same), and how to read the rest."""
    total = len(conversation.turns)
    room = budget - RESERVE
    header = f"Conversation {conversation.id}: {total} turns."
    if conversation.system is not None and from_turn == 1:
        header += f"\nSystem: {_render_content(conversation.system)}"
    shown: list[str] = []
    last = from_turn - 1
    for number in range(from_turn, total + 1):
        turn = _render_turn(number, conversation.turns[number - 1])
        if shown and weight(header) + sum(map(weight, shown)) + weight(turn) > room:
            break
        shown.append(turn)
        last = number
    transcript = cut("\n\n".join([header, *shown]), room)
    if last < total:
        more = (f"[Turns {last + 1}–{total} follow: call list_conversations with conversation_id "
                f"{conversation.id!r} and from_turn {last + 1}.]")  # fmt: skip
    elif len(transcript) < len("\n\n".join([header, *shown])):
        uri = CONVERSATION_URI.format(conversation_id=conversation.id)
        more = f"[Turn {last} is cut here: read the resource {uri}.]"
    else:
        more = f"[End of the conversation. {_CONTINUE}]"
    structured = {"conversation_id": conversation.id, "turns": total, "from_turn": from_turn, "to_turn": last,
                  "transcript": transcript, "next_from_turn": last + 1 if last < total else None,
                  "note": more}  # fmt: skip
    return f"{transcript}\n\n{more}", structured


class Listing:
    """The ``list_conversations`` tool, the conversation resource, and the caller's own items for
    ``resources/list``. ``caller``: the state and the key a request came with; ``budget``: the
    result size the asking host shows whole."""

    def __init__(self, caller: Caller, budget: Callable[[Context], int]) -> None:
        self._caller = caller
        self._budget = budget

    async def _mine(self, ctx: Context) -> tuple[Store, str | None]:
        """The store, and the caller's tag in it (None without a key)."""
        state, key = self._caller(ctx)
        return state.store, None if key is None else await state.store.owner_tag(key)

    async def list_conversations(self, arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        try:
            args = parse_args(ListConversationsInput, "list_conversations", arguments)
            store, owner = await self._mine(ctx)
            if owner is None:
                return error_result(
                    "No AiToEarn key: set AITOEARN_API_KEY (or send your key) to see your conversations."
                )
            if not args.conversation_id:
                conversations = await store.recent_conversations(owner, LISTED)
                return _listing(conversations, await store.recent_replies(owner, LISTED))
            conversation = await store.load(args.conversation_id.strip(), owner)
        except InputError as exc:
            return error_result(str(exc))
        except StoreUnavailableError as exc:
            return error_result(f"{STORE_DOWN} ({exc}).")
        if conversation is None:
            return error_result(f"Conversation {args.conversation_id!r} is unknown or has expired; call "
                                "list_conversations without arguments for yours.")  # fmt: skip
        if args.from_turn > len(conversation.turns):
            return error_result(f"Conversation {conversation.id} has turns 1 to {len(conversation.turns)}; fix: "
                                "from_turn within them.")  # fmt: skip
        text, structured = conversation_page(conversation, args.from_turn, self._budget(ctx))
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)

    async def read_conversation(self, conversation_id: str, ctx: Context) -> str:
        try:
            store, owner = await self._mine(ctx)
            found = None
            if owner and is_conversation_id(conversation_id):
                found = await store.load(conversation_id, owner)
        except StoreUnavailableError as exc:
            raise ResourceError(f"{STORE_DOWN} ({exc}).") from None
        if found is None:
            raise ResourceError(f"Conversation {conversation_id} is unknown or has expired.")
        return json.dumps({"conversation_id": found.id, "system": found.system, "turns": found.turns},
                          ensure_ascii=False)  # fmt: skip

    async def caller_resources(self, ctx: Context) -> list[Resource]:
        """The caller's recent replies and conversations; none while the store does not answer
        (the tool says what is wrong)."""
        try:
            store, owner = await self._mine(ctx)
            if owner is None:
                return []
            replies = await store.recent_replies(owner, LISTED)
            conversations = await store.recent_conversations(owner, LISTED)
        except StoreUnavailableError:
            return []
        return [*map(_reply_resource, replies), *map(_conversation_resource, conversations)]


def _listing(conversations: list[ConversationSummary], replies: list[ReplySummary]) -> CallToolResult:
    lines = [f"Your {len(conversations)} most recent conversations (newest first):" if conversations
             else "You have no stored conversations."]  # fmt: skip
    for c in conversations:
        models = ", ".join(c.models) or "?"
        lines.append(f"- {c.id} · {_when(c.last_used)} · {c.turns} turn{'s' * (c.turns != 1)} · {models} · "
                     f"{json.dumps(c.first_words, ensure_ascii=False)}")  # fmt: skip
    if replies:
        lines.append(f"\nYour {len(replies)} most recent stored replies (read one by its resource URI):")
        for r in replies:
            lines.append(f"- {REPLY_URI.format(reply_id=r.id)} · {_when(r.last_used)} · {r.status} · {r.model} · "
                         f"{r.characters:,} characters")  # fmt: skip
    lines.append(f"\n{_CONTINUE} To see one whole, call list_conversations with its conversation_id.")
    structured = {"conversations": [_conversation_entry(c) for c in conversations],
                  "replies": [_reply_entry(r) for r in replies], "note": lines[-1].strip()}  # fmt: skip
    return CallToolResult(content=[TextContent(type="text", text="\n".join(lines))], structured_content=structured)


def _reply_resource(summary: ReplySummary) -> Resource:
    return Resource(
        uri=REPLY_URI.format(reply_id=summary.id), name=f"reply {summary.id}", mime_type="text/plain",
        description=f"{summary.model} reply, {summary.status}, {summary.characters:,} characters, last used "
        f"{_when(summary.last_used)}",
    )  # fmt: skip


def _conversation_resource(summary: ConversationSummary) -> Resource:
    return Resource(
        uri=CONVERSATION_URI.format(conversation_id=summary.id), name=f"conversation {summary.id}",
        mime_type="application/json",
        description=f"{summary.turns} turns with {', '.join(summary.models) or '?'}, last used "
        f"{_when(summary.last_used)}: {summary.first_words}",
    )  # fmt: skip
