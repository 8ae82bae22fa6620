"""Gemini CLI 0.61.0 from npm, headless (``gemini -p --yolo``), over stdio, against a scripted
Gemini API on loopback (``GOOGLE_GEMINI_BASE_URL``), with our server in a temporary HOME's
``.gemini/settings.json`` and the fake relay behind it.

The scripted model calls ``mcp_aitoearn_<tool>`` when offered and records the
``functionResponse`` the CLI sends back (all the model sees of our result).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..fake_relay import FakeRelay
from . import model_api
from .harness import (
    SIZES,
    Run,
    ServerEntry,
    Upstream,
    check_reply_reaches_model,
    check_the_rest_reaches_model,
    host_env,
    once_per_case,
    run_host,
    send_arguments,
)

# The first test installs the hosts from npm (about a minute); each host run has its own 90 s limit.
pytestmark = pytest.mark.timeout(900)

CLIENT_NAME = "gemini-cli-mcp-client"


def gemini(hosts_bin: Path, tmp: Path, relay: Upstream, script: model_api.Script, *,
           server: list[str] | None = None, model: str = "gemini-2.5-pro") -> Run:  # fmt: skip
    """One headless run; ``server``: another stdio server in our entry's place (``ServerEntry.make``)."""
    entry = ServerEntry.make(tmp, relay, server)
    home, work = tmp / "home", tmp / "work"
    (home / ".gemini").mkdir(parents=True)
    work.mkdir()
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "mcpServers": {"aitoearn": {"command": entry.command, "args": entry.args, "env": entry.env}},
    }
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    with model_api.ModelAPI(model_api.gemini(script)) as api:
        env = host_env(hosts_bin, home, GEMINI_API_KEY="scripted-key", GOOGLE_GEMINI_BASE_URL=api.url,
                       GEMINI_CLI_TRUST_WORKSPACE="true")  # fmt: skip
        argv = [str(hosts_bin / "gemini"), "-p", "Ask another model for the reply.", "--yolo", "-m", model,
                "-o", "json"]  # fmt: skip
        run = run_host(argv, env=env, cwd=work, entry=entry, script=script)
        assert not api.errors, api.errors
    return run, script


@pytest.fixture(scope="module")
def call(hosts_bin: Path, long_relay: FakeRelay, tmp_path_factory: pytest.TempPathFactory
         ) -> Callable[[str], Run]:  # fmt: skip
    """One run per case (a reply size, or ``list_models``), shared by the tests of this module."""

    def start(case: str) -> Run:
        if case == "list_models":
            # The CLI adds `wait_for_previous` to every tool's schema; its models set it.
            script = model_api.Script("list_models", {"wait_for_previous": False})
        else:
            script = model_api.Script("send_message", {**send_arguments(SIZES[case]), "wait_for_previous": False})
        return gemini(hosts_bin, tmp_path_factory.mktemp(f"gemini-{case}"), long_relay, script)

    return once_per_case(start)


@pytest.mark.parametrize("case", list(SIZES))
def test_reply_reaches_the_model(call: Callable[[str], Run], case: str) -> None:
    check_reply_reaches_model("gemini", call(case), case)


def test_host_control_argument_is_not_forwarded_to_the_relay(call: Callable[[str], Run], long_relay: FakeRelay) -> None:
    run, script = call("short")
    assert script.offered_schema is not None and "wait_for_previous" in script.offered_schema["properties"]
    assert run.entry.tool_call_arguments("send_message")[0].get("wait_for_previous") is False  # the CLI passes it on
    bodies: list[dict[str, Any]] = [r.json() for r in long_relay.requests_to("/api/ai/v1/messages")]
    ours = [body for body in bodies if body["messages"][-1]["content"] == f"reply:{SIZES['short']}"]
    assert ours, run.report()
    assert all("wait_for_previous" not in body for body in ours), ours[0].keys()


def test_list_models_works(call: Callable[[str], Run]) -> None:
    run, script = call("list_models")
    assert run.returncode == 0, run.report()
    assert len(script.tool_results) == 1, run.report()
    seen = script.tool_results[0]
    print(f"gemini list_models: {len(seen)} chars seen: {seen[:300]!r}")
    assert "claude-sonnet-5" in seen and "gpt-5.5" in seen, seen[:2000]
    assert "error" not in seen[:200].lower(), seen[:2000]


def test_handshake(call: Callable[[str], Run]) -> None:
    run, _ = call("short")
    name, version, protocol = run.entry.handshake()
    print(f"gemini handshake: {run.report()}")
    assert (name, version) == (CLIENT_NAME, "0.61.0"), run.report()
    assert protocol == "2025-06-18", run.report()


def test_quit_ends_the_server_with_status_0(call: Callable[[str], Run]) -> None:
    run, _ = call("short")
    assert run.entry.quit_signals(), run.report()  # the host did end it (SIGTERM, stdin left open)
    assert run.entry.exit_status() == 0, run.report()


def test_the_rest_of_a_cut_reply_reaches_the_model(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path) -> None:
    """Gemini CLI offers the model no resource tool: get_reply is its way to the rest."""
    check_the_rest_reaches_model(
        "gemini-cli", functools.partial(gemini, hosts_bin, tmp_path, long_relay), 0.0, wait_for_previous=False
    )
