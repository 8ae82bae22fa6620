"""Malformed arguments are refused before any upstream call, with the field and the fix,
and the server keeps serving, whatever JSON is thrown at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from pydantic import ValidationError

from aitoearn_mcp.relay import _request as _request
from aitoearn_mcp.server._dto import ListModelsInput, SendMessageInput

from .conftest import HELLO, make_server
from .fake_relay import FakeRelay

MESSAGES = "/api/ai/v1/messages"
USER = [{"role": "user", "content": "hi"}]

BAD = [
    ({"model": "m", "messages": []}, "`messages`", "non-empty list"),
    ({"model": "m", "messages": [{"role": "system", "content": "be nice"}]}, "`messages[0].role`", "top-level `system`"),
    ({"model": "m", "messages": USER, "max_tokens": 0}, "`max_tokens`", "whole number from 1"),
    ({"model": "m", "messages": USER, "max_tokens": -5}, "`max_tokens`", "whole number from 1"),
    ({"model": "m", "messages": USER, "max_tokens": 1.5}, "`max_tokens`", "whole number"),
    ({"model": "m", "messages": USER, "max_tokens": "100"}, "`max_tokens`", "whole number"),
    ({"model": "m", "messages": USER, "max_tokens": True}, "`max_tokens`", "whole number"),
    ({"model": "m", "messages": USER, "max_tokens": 2**53}, "`max_tokens`", "whole number"),
    ({"messages": USER}, "`model` is required", "list_models"),
    ({"model": 7, "messages": USER}, "`model`", "list_models"),
    ({"model": "", "messages": USER}, "`model`", "list_models"),
    ({"model": "m", "messages": "hello"}, "`messages`", "non-empty list"),
    ({"model": "m", "messages": [{"role": "user", "content": 42}]}, "`messages[0].content`", "content blocks"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "`messages[0].content[0].type`",
     '"type"'),
    ({"model": "m", "messages": [{"role": "user"}]}, "`messages[0].content` is required", "content blocks"),
    ({"model": "m", "messages": USER, "temperature": "hot"}, "`temperature`", "0 to 1"),
    ({"model": "m", "messages": USER, "thinking": {"type": "enabled", "budget_tokens": 10}}, "`thinking.budget_tokens`",
     "1024"),
    ({"model": "m", "messages": USER, "tool_choice": {"type": "sometimes"}}, "`tool_choice.type`", "auto"),
    ({"model": "m", "messages": USER, "stop_sequences": "END"}, "`stop_sequences`", "list of strings"),
]  # fmt: skip


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[BlockingPortal, Client, FakeRelay]]:
    relay = FakeRelay().start()
    with start_blocking_portal("asyncio") as portal:
        client = Client(make_server(relay))
        with portal.wrap_async_context_manager(client):
            yield portal, client, relay
    relay.stop()


def call(served: tuple[BlockingPortal, Client, FakeRelay], tool: str, args: Any) -> Any:
    portal, client, _ = served
    return portal.call(client.call_tool, tool, args)


@pytest.mark.parametrize(("args", "field", "fix"), BAD)
def test_bad_input_is_refused_before_upstream(served: Any, args: dict[str, Any], field: str, fix: str) -> None:
    relay: FakeRelay = served[2]
    before = len(relay.requests_to(MESSAGES))
    result = call(served, "send_message", args)
    assert result.is_error
    text = result.content[0].text
    assert text.startswith("Invalid arguments for send_message:") and text.endswith("Nothing was sent.")
    assert field in text and fix in text, text
    assert len(relay.requests_to(MESSAGES)) == before
    assert not call(served, "send_message", HELLO).is_error  # still serving


def test_oversized_request_is_refused(served: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_request, "MAX_REQUEST_BYTES", 10_000)
    relay: FakeRelay = served[2]
    before = len(relay.requests_to(MESSAGES))
    result = call(served, "send_message", {"model": "m", "messages": [{"role": "user", "content": "长" * 5000}]})
    assert result.is_error and "over the relay's 10,000-byte limit" in result.content[0].text
    assert len(relay.requests_to(MESSAGES)) == before


def test_list_models_rejects_unknown_and_mistyped_arguments(served: Any) -> None:
    result = call(served, "list_models", {"refresh": "yes"})
    assert result.is_error and "`refresh`" in result.content[0].text and "true or false" in result.content[0].text
    result = call(served, "list_models", {"chanel": "anthropic"})
    assert result.is_error and "`chanel` is not an argument" in result.content[0].text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.sampled_from(["claude-sonnet-5", ""]),
        "messages": json_values | st.lists(st.fixed_dictionaries({}, optional={"role": st.sampled_from(
            ["user", "assistant", "system", 1]), "content": json_values}), max_size=3),
        "max_tokens": json_values,
        "system": json_values,
        "temperature": json_values,
    },
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tool=st.sampled_from(["send_message", "list_models"]),
    args=near_valid | st.dictionaries(st.text(max_size=8), json_values),
)
def test_arbitrary_json_never_crashes_and_invalid_never_goes_upstream(
    served: Any, tool: str, args: dict[str, Any]
) -> None:
    relay: FakeRelay = served[2]
    model = SendMessageInput if tool == "send_message" else ListModelsInput
    try:
        model.model_validate(args)
        valid = True
    except ValidationError:
        valid = False
    before = len(relay.requests)
    result = call(served, tool, args)
    if not valid:
        assert result.is_error and result.content[0].text.startswith(f"Invalid arguments for {tool}:")
        assert len(relay.requests) == before
    elif tool == "send_message":
        assert len(relay.requests_to(MESSAGES)) > 0
