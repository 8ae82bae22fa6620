"""MCP Inspector CLI 2.12.0 from npm, over stdio, with our server behind it and the fake relay
behind that: what a plain client gets (both parts of the result), its handshake, its quit, and
its ``--strict`` schema portability check (issue 16, item 8)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ..fake_relay import FakeRelay
from .harness import SIZES, Seen, ServerEntry, assert_reaches_model, host_env, run_wait, send_arguments

# The first test installs the hosts from npm (about a minute); each host run has its own 90 s limit.
pytestmark = pytest.mark.timeout(900)

CLIENT_NAME = "inspector-cli"


def inspector(
    hosts_bin: Path, tmp: Path, relay: FakeRelay, *options: str
) -> tuple[subprocess.CompletedProcess[str], ServerEntry]:
    entry = ServerEntry.make(tmp, relay)
    env_options = [option for name, value in entry.env.items() for option in ("-e", f"{name}={value}")]
    argv = [str(hosts_bin / "mcp-inspector"), "--cli", *env_options, *options, "--", entry.command, *entry.args]
    done = subprocess.run(argv, env=host_env(hosts_bin, tmp), cwd=tmp, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    run_wait(entry)
    return done, entry


@pytest.mark.parametrize("case", list(SIZES))
def test_reply_reaches_the_client(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path, case: str) -> None:
    arguments = send_arguments(SIZES[case])
    done, entry = inspector(hosts_bin, tmp_path, long_relay, "--method", "tools/call", "--tool-name", "send_message",
                            "--tool-arg", f"model={arguments['model']}", f"messages={json.dumps(arguments['messages'])}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    seen = Seen(done.stdout, SIZES[case])
    print(f"inspector {case}: {seen.summary()}; content blocks {[block['type'] for block in result['content']]}")
    assert_reaches_model(seen)
    assert entry.exit_status() == 0, entry.events()[-4:]


def test_handshake_and_quit(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path) -> None:
    done, entry = inspector(hosts_bin, tmp_path, long_relay, "--method", "tools/list")
    assert done.returncode == 0, done.stderr[-2000:]
    name, version, protocol = entry.handshake()
    print(f"inspector handshake: {name} {version} {protocol}; quit {entry.quit_signals()}; exit {entry.exit_status()}")
    assert (name, version, protocol) == (CLIENT_NAME, "2.12.0", "2025-11-25")
    assert entry.quit_signals() == ["stdin-eof"]
    assert entry.exit_status() == 0


def test_strict_finds_no_schema_portability_problem(hosts_bin: Path, long_relay: FakeRelay, tmp_path: Path) -> None:
    done, _ = inspector(hosts_bin, tmp_path, long_relay, "--method", "tools/list", "--strict")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
