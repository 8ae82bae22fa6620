"""One send_message call inside a conversation: what it continues, what it sends, what it stores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from .._errors import InputError
from ..store._protocol import Conversation, Store, history, new_conversation_id, parse_conversation_ref
from ._images import stored_block

__all__ = ["Continuation", "begin", "record", "with_history"]

_CONTINUE = "pass it as conversation_id to continue, with only the new messages"
_START_AGAIN = "start a new conversation by calling send_message without conversation_id, with the whole exchange"


@dataclass(frozen=True)
class Continuation:
    owner: str | None  # the key's tag; None until a new conversation is stored
    conversation: Conversation | None  # None: a new conversation
    branch: bool  # continuing from an earlier turn: the result gets a new id


async def begin(store: Store, ref: str | None, key: SecretStr) -> Continuation:
    """The conversation ``ref`` names, checked before anything is sent. Raises InputError for an
    id that is malformed, unknown, expired or another key's (all alike: nothing is revealed), and
    StoreUnavailableError when the store does not answer."""
    if ref is None:  # a new conversation needs the store only when it is saved
        return Continuation(None, None, False)
    owner = await store.owner_tag(key)
    parsed = parse_conversation_ref(ref)
    conversation = await store.load(parsed[0], owner) if parsed else None
    if parsed is None or conversation is None:
        raise InputError(
            f"Invalid arguments for send_message: `conversation_id` {ref!r} is unknown or has expired "
            f"(conversations are kept for a while after their last use); fix: {_START_AGAIN}. Nothing was sent."
        )
    after = parsed[1]
    if after is None or after == len(conversation.turns):
        return Continuation(owner, conversation, False)
    if not 1 <= after <= len(conversation.turns):
        raise InputError(
            f"Invalid arguments for send_message: `conversation_id` {ref!r} names turn {after}, but the conversation "
            f"has turns 1 to {len(conversation.turns)}; fix: branch after one of those. Nothing was sent."
        )
    conversation.turns = conversation.turns[:after]
    return Continuation(owner, conversation, True)


def with_history(arguments: Mapping[str, Any], continuation: Continuation, channel: str | None) -> dict[str, Any]:
    """The call's arguments with the stored turns before its messages and the stored system
    prompt unless a new one is given."""
    conversation = continuation.conversation
    if conversation is None:
        return dict(arguments)
    merged = {**arguments, "messages": [*history(conversation, channel), *arguments["messages"]]}
    if "system" not in arguments and conversation.system is not None:
        merged["system"] = conversation.system
    return merged


async def record(
    store: Store, continuation: Continuation, key: SecretStr, *, arguments: Mapping[str, Any],
    reply: Mapping[str, Any], channel: str | None,
) -> tuple[str, str]:  # fmt: skip
    """Store the completed turn; returns the conversation id and the note for the agent."""
    owner = continuation.owner or await store.owner_tag(key)
    # A saved image is kept as a line naming its file, not megabytes of base64 per turn.
    turn = {"messages": list(arguments["messages"]), "reply": [stored_block(b) for b in reply.get("content") or []],
            "channel": channel, "model": reply.get("model")}  # fmt: skip
    before = continuation.conversation
    system = arguments.get("system", before.system if before else None)
    if before is not None and not continuation.branch:
        updated = Conversation(before.id, owner, system, [*before.turns, turn])
        if await store.save(updated, expected_turns=len(before.turns)):
            return (
                updated.id,
                f"[Conversation {updated.id}, turn {len(updated.turns)}: pass it as conversation_id to continue.]",
            )
        # Another call continued the same conversation meanwhile: keep both, this one as a branch.
    turns = [*(before.turns if before else []), turn]
    created = Conversation(new_conversation_id(), owner, system, turns)
    await store.save_new(created)  # a store may write it after the answer: nothing can refuse a new id
    if before is None:
        return created.id, f"[Conversation {created.id}, turn 1: {_CONTINUE}.]"
    return created.id, (
        f"[Conversation {created.id}, turn {len(turns)}: a branch of {before.id}; pass it as conversation_id to "
        "continue this branch.]"
    )
