"""A conversation's stored JSON and a request body: written by orjson where that is exact, and
otherwise exactly as the standard library wrote them before (every value reads back equal)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from aitoearn_mcp._errors import InputError
from aitoearn_mcp.relay._request import encode_body
from aitoearn_mcp.store._protocol import Conversation

TURN = {
    "messages": [{"role": "user", "content": 'héllo ✓ \u2028 "quoted" \\ \x00 tab\t'}],
    "reply": [
        {"type": "thinking", "thinking": "hmm", "signature": "c2lnbmF0dXJl"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1, 2.5, None, True, -0.0, 1e300, 1e-7]}},
        {"type": "text", "text": "ok"},
    ],
    "channel": "anthropic",
    "model": "claude-sonnet-5",
}


def stored(turns: list[dict[str, Any]], system: Any = None) -> tuple[str, Conversation]:
    raw = Conversation("c_abcdefgh", "f" * 64, system, turns).to_json()
    return raw, Conversation.from_json("c_abcdefgh", raw)


def test_an_ordinary_conversation_is_written_compact_and_reads_back_equal() -> None:
    raw, back = stored([TURN, TURN], system=[{"type": "text", "text": "be brief"}])
    assert raw.startswith('{"owner":"')  # orjson's form
    assert back.turns == [TURN, TURN] and back.system == [{"type": "text", "text": "be brief"}]
    assert json.loads(raw) == {"owner": "f" * 64, "system": back.system, "turns": back.turns}
    assert math.copysign(1, back.turns[0]["reply"][1]["input"]["a"][4]) == -1  # -0.0 stays negative


@pytest.mark.parametrize(
    "odd",
    [float("nan"), float("inf"), -float("inf"), 123456789012345678901234567890, -(2**63) - 1, "\ud800 alone"],
    ids=["nan", "inf", "-inf", "big-int", "below-int64", "lone-surrogate"],
)
def test_what_orjson_cannot_write_exactly_is_written_by_json_and_reads_back_exactly(odd: Any) -> None:
    turn = {**TURN, "reply": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"x": odd}}]}
    raw, back = stored([TURN, turn])
    assert raw.startswith('{"owner": "')  # json's form: read by json, which keeps big integers
    found = back.turns[1]["reply"][0]["input"]["x"]
    assert type(found) is type(odd)
    assert found == odd or (isinstance(odd, float) and math.isnan(odd) and math.isnan(found))


def test_a_conversation_an_earlier_version_wrote_still_reads() -> None:
    old = json.dumps({"owner": "f" * 64, "system": "sys", "turns": [TURN]}, ensure_ascii=False)
    back = Conversation.from_json("c_abcdefgh", old.encode())
    assert back.system == "sys" and back.turns == [TURN]


def test_a_body_is_what_json_would_send() -> None:
    body = {"model": "m", "messages": [TURN["messages"][0], {"role": "assistant", "content": TURN["reply"]}],
            "max_tokens": 10, "stream": True, "big": 2**70}  # fmt: skip
    assert json.loads(encode_body(body)) == body


@pytest.mark.parametrize("odd", [float("nan"), float("inf")])
def test_a_body_with_a_non_finite_number_is_refused_before_sending(odd: float) -> None:
    with pytest.raises(InputError, match=r"Out of range float values are not JSON compliant.*Nothing was sent"):
        encode_body({"model": "m", "messages": [{"role": "user", "content": [{"type": "x", "n": odd}]}]})


def test_a_held_request_body_costs_its_own_size_not_orjsons_buffer() -> None:
    """A running call holds its body: orjson's bytes keep the 4 KiB it wrote into, a copy only the text."""
    import tracemalloc

    body = {"model": "claude-sonnet-5", "max_tokens": 512, "messages": [{"role": "user", "content": "hello " * 20}]}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [encode_body(body) for _ in range(200)]
        per_body = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()
    assert per_body < len(held[0]) + 200, per_body
