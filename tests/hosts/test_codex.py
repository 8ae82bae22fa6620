"""Codex CLI 0.169.0 from npm (a native binary in a per-platform optional dependency), headless
(``codex exec``), over stdio, against a scripted OpenAI Responses API on loopback (a custom
``model_providers`` entry in a temporary CODEX_HOME), with our server behind it and the fake
relay behind that.

Codex defers MCP tools behind its ``tool_search`` tool: the scripted model searches for ours,
calls it, and records the ``function_call_output`` Codex sends back (all the model sees of it).
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ..fake_relay import FakeRelay
from . import model_api
from .harness import (
    PATIENCE,
    SIZES,
    Run,
    ServerEntry,
    Upstream,
    check_reply_reaches_model,
    check_the_rest_reaches_model,
    check_tools_ready_at_once,
    host_env,
    once_per_case,
    run_host,
    send_arguments,
)

# The first test installs the hosts from npm (about a minute); each host run has its own 90 s limit.
pytestmark = pytest.mark.timeout(900)

CLIENT_NAME = "codex-mcp-client"


def config_toml(api_url: str, entry: ServerEntry) -> str:
    env = ", ".join(f"{name} = {json.dumps(value)}" for name, value in entry.env.items())
    return f"""\
model = "gpt-5.5"
model_provider = "scripted"
check_for_update_on_startup = false

[model_providers.scripted]
name = "scripted"
base_url = "{api_url}/v1"
wire_api = "responses"
env_key = "SCRIPTED_API_KEY"

[mcp_servers.aitoearn]
command = {json.dumps(entry.command)}
args = {json.dumps(entry.args)}
env = {{ {env} }}
default_tools_approval_mode = "approve"
"""


def codex(hosts_bin: Path, tmp: Path, relay: Upstream, script: model_api.Script, *,
          server: list[str] | None = None) -> Run:  # fmt: skip
    """One headless run; ``server``: another stdio server in our entry's place (``ServerEntry.make``)."""
    entry = ServerEntry.make(tmp, relay, server)
    home = tmp / "codex-home"
    home.mkdir()
    with model_api.ModelAPI(model_api.responses(script)) as api:
        (home / "config.toml").write_text(config_toml(api.url, entry))
        env = host_env(hosts_bin, tmp, CODEX_HOME=str(home), SCRIPTED_API_KEY="sk-scripted")
        argv = [str(hosts_bin / "codex"), "exec", "--skip-git-repo-check", "--json", "Ask another model for the reply."]
        run = run_host(argv, env=env, cwd=tmp, entry=entry, script=script)
        assert not api.errors, api.errors
    return run, script


@pytest.fixture(scope="module")
def send(hosts_bin: Path, long_relay: FakeRelay, tmp_path_factory: pytest.TempPathFactory
         ) -> Callable[[str], Run]:  # fmt: skip
    """One run per reply size, shared by the tests of this module."""

    def start(case: str) -> Run:
        script = model_api.Script("send_message", send_arguments(SIZES[case]), patience=PATIENCE)
        return codex(hosts_bin, tmp_path_factory.mktemp(f"codex-{case}"), long_relay, script)

    return once_per_case(start)


def test_native_binary_installs_and_runs(hosts_bin: Path) -> None:
    version = subprocess.run([str(hosts_bin / "codex"), "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == "codex-cli 0.169.0", version.stdout + version.stderr


@pytest.mark.parametrize("case", list(SIZES))
def test_reply_reaches_the_model(send: Callable[[str], Run], case: str) -> None:
    check_reply_reaches_model("codex", send(case), case)


def test_handshake(send: Callable[[str], Run]) -> None:
    run, _ = send("short")
    name, version, protocol = run.entry.handshake()
    print(f"codex handshake: {run.report()}")
    assert (name, version) == (CLIENT_NAME, "0.169.0"), run.report()
    assert protocol == "2025-06-18", run.report()


def test_quit_ends_the_server_with_status_0(send: Callable[[str], Run]) -> None:
    run, _ = send("short")
    assert run.entry.quit_signals(), run.report()  # the host did end it (stdin closed and SIGTERM together)
    assert run.entry.exit_status() == 0, run.report()


def test_tools_are_ready_before_the_host_asks(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path) -> None:
    check_tools_ready_at_once(
        "codex", functools.partial(codex, hosts_bin, tmp_path, long_relay), ServerEntry.make(tmp_path, long_relay).env
    )


def test_the_rest_of_a_cut_reply_reaches_the_model(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path) -> None:
    check_the_rest_reaches_model("codex", functools.partial(codex, hosts_bin, tmp_path, long_relay), PATIENCE)
