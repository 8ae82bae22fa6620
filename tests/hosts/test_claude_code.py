"""Claude Code 2.1.332 from npm, headless (``claude -p``), over stdio, against a scripted
Anthropic Messages API on loopback, with our server behind it and the fake relay behind that.

It negotiates 2026-07-28 and defers MCP tools behind ToolSearch: the scripted model selects
``mcp__aitoearn__send_message`` by name, calls it, and records the tool result Claude Code sends
back, which is all the model ever sees of our result.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import KEY
from ..fake_relay import FakeRelay
from . import model_api
from .harness import (
    PATIENCE,
    SERVER,
    SIZES,
    Run,
    Seen,
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

CLIENT_NAME = "claude-code"


def claude(hosts_bin: Path, tmp: Path, relay: Upstream, script: model_api.Script, *,
           server: list[str] | None = None, **server_env: str) -> Run:  # fmt: skip
    """One headless run; ``server``: another stdio server in our entry's place (``ServerEntry.make``)."""
    entry = ServerEntry.make(tmp, relay, server)
    entry.env.update(server_env)
    config = tmp / "mcp.json"
    stdio = {"type": "stdio", "command": entry.command, "args": entry.args, "env": entry.env}
    config.write_text(json.dumps({"mcpServers": {"aitoearn": stdio}}))
    (tmp / "home").mkdir()
    with model_api.ModelAPI(model_api.anthropic(script)) as api:
        env = host_env(hosts_bin, tmp / "home", ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-ant-scripted",
                       CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1")  # fmt: skip
        argv = [str(hosts_bin / "claude"), "-p", "Ask another model for the reply.", "--output-format", "json",
                "--mcp-config", str(config), "--strict-mcp-config", "--model", "claude-sonnet-4-5",
                "--allowedTools", "mcp__aitoearn", "ListMcpResourcesTool", "ReadMcpResourceTool"]  # fmt: skip
        run = run_host(argv, env=env, cwd=tmp, entry=entry, script=script)
        assert not api.errors, api.errors
    return run, script


@pytest.fixture(scope="module")
def send(hosts_bin: Path, long_relay: FakeRelay, tmp_path_factory: pytest.TempPathFactory
         ) -> Callable[[str], Run]:  # fmt: skip
    """One run per reply size, shared by the tests of this module."""

    def start(case: str) -> Run:
        script = model_api.Script("send_message", send_arguments(SIZES[case]), patience=PATIENCE)
        return claude(hosts_bin, tmp_path_factory.mktemp(f"claude-{case}"), long_relay, script)

    return once_per_case(start)


@pytest.mark.parametrize("case", list(SIZES))
def test_reply_reaches_the_model(send: Callable[[str], Run], case: str) -> None:
    check_reply_reaches_model("claude-code", send(case), case)


def test_handshake(send: Callable[[str], Run]) -> None:
    run, _ = send("short")
    name, version, protocol = run.entry.handshake()
    print(f"claude-code handshake: {run.report()}")
    assert (name, version) == (CLIENT_NAME, "2.1.332"), run.report()
    assert protocol == "2026-07-28", run.report()
    assert "server/discover" in run.entry.methods()


def test_quit_ends_the_server_with_status_0(send: Callable[[str], Run]) -> None:
    run, _ = send("short")
    assert run.entry.quit_signals(), run.report()  # the host did end it (SIGINT, then SIGTERM 100 ms later)
    assert run.entry.exit_status() == 0, run.report()


def test_mcp_add_user_scope_then_list_shows_it_connected(
    hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path
) -> None:
    """Issue 19.3: the README's one command, with the clone's server (no PyPI release needed)."""
    env = host_env(hosts_bin, tmp_path, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1")
    claude = str(hosts_bin / "claude")
    add = [claude, "mcp", "add", "--scope", "user", "aitoearn", "-e", f"AITOEARN_API_KEY={KEY}",
           "-e", f"AITOEARN_BASE_URL={long_relay.url}", "--", str(SERVER)]  # fmt: skip
    added = subprocess.run(add, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    assert "aitoearn" in json.loads((tmp_path / ".claude.json").read_text())["mcpServers"]
    listed = subprocess.run([claude, "mcp", "list"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    line = next((line for line in listed.stdout.splitlines() if line.startswith("aitoearn")), "")
    assert re.search(r"[✓✔] Connected", line), listed.stdout + listed.stderr
    assert KEY not in listed.stdout + listed.stderr


def test_tools_are_ready_before_the_host_asks(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path) -> None:
    check_tools_ready_at_once(
        "claude-code",
        functools.partial(claude, hosts_bin, tmp_path, long_relay),
        ServerEntry.make(tmp_path, long_relay).env,
    )


def test_the_rest_of_a_cut_reply_reaches_the_model(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path) -> None:
    check_the_rest_reaches_model("claude-code", functools.partial(claude, hosts_bin, tmp_path, long_relay), PATIENCE)


def test_claude_codes_resource_tools_find_a_cut_reply(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path) -> None:
    """Issue 16.3 and 18.3: a cut reply's resource is listed by ``resources/list``, which is all
    that Claude Code's ListMcpResourcesTool asks (it never lists templates). Claude Code lists a
    server's resources once, when it connects (it did not list again on
    ``notifications/resources/list_changed``), so the reply is found in the next session: the
    store keeps it across the host's restarts."""
    store = str(tmp_path / "store.sqlite3")
    for session in ("first", "second"):
        (tmp_path / session).mkdir()
    first = model_api.Script("send_message", send_arguments(SIZES["300k"]), patience=PATIENCE)
    run, first = claude(hosts_bin, tmp_path / "first", long_relay, first, AITOEARN_CONVERSATIONS=store)
    assert run.returncode == 0 and len(first.tool_results) == 1, run.report()
    uri = re.search(r"aitoearn://replies/r_[A-Za-z0-9_-]+", first.tool_results[0])
    assert uri is not None, first.tool_results[0][:2000]

    def plan(results: list[str]) -> model_api.Step | None:
        if not results:
            return "ListMcpResourcesTool", {"server": "aitoearn"}
        if len(results) == 1 and uri.group(0) in results[0]:
            return "ReadMcpResourceTool", {"server": "aitoearn", "uri": uri.group(0)}
        return None

    script = model_api.Script("ListMcpResourcesTool", {}, patience=PATIENCE, plan=plan)
    run, script = claude(hosts_bin, tmp_path / "second", long_relay, script, AITOEARN_CONVERSATIONS=store)
    assert run.returncode == 0, run.report()
    assert len(script.tool_results) >= 1, (script.called, run.report())
    read = Seen(script.tool_results[1], SIZES["300k"]).summary() if len(script.tool_results) > 1 else "not read"
    print(f"claude-code resources: listed {script.tool_results[0][:300]!r}; read by ReadMcpResourceTool: {read}")
    assert uri.group(0) in script.tool_results[0], script.tool_results[0][:2000]
