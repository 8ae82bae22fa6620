"""The tool schemas lint clean under ``inspector --cli --strict``: no type arrays (a host that
maps schemas onto a one-type dialect, like Gemini's function declarations, rejects or drops
them), nothing untyped. The Inspector comes from the npm registry (tests/node.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .node import MODULES, NODE, ensure_node
from .test_progress_cancel import SCRIPT

INSPECTOR = MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"

# A server whose output schema has the type array ours had: shows the lint can fail.
CONTROL = """
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import func_metadata


async def echo() -> dict:
    return {}


schema = {"type": "object", "properties": {"stop_reason": {"type": ["string", "null"]}}}
meta = func_metadata(echo).model_copy(update={"output_schema": schema})
tool = Tool(fn=echo, name="echo", description="Echo.", parameters={"type": "object"}, fn_metadata=meta, is_async=True)
MCPServer("control", tools=[tool]).run("stdio")
"""


@pytest.fixture(scope="module")
def inspector() -> Path:
    ensure_node()
    return INSPECTOR


def lint(inspector: Path, *command: str) -> tuple[dict[str, Any], str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run([str(NODE), str(inspector), "--cli", "--strict", "--format", "json", *command,
                           "--method", "tools/list"], capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_our_tool_schemas_lint_clean(inspector: Path) -> None:
    envelope, stderr = lint(inspector, SCRIPT)
    tools = envelope["result"]["tools"]
    assert sorted(tool["name"] for tool in tools) == [
        "generate_image", "generate_video", "get_reply", "list_conversations", "list_models", "send_message",
    ]  # fmt: skip
    with_output = sorted(tool["name"] for tool in tools if "outputSchema" in tool)
    assert with_output == [
        "generate_image",
        "generate_video",
        "get_reply",
        "list_models",
        "send_message",
    ]  # their output schemas were linted too
    assert "schemaFindings" not in envelope, envelope.get("schemaFindings")
    assert "Warning" not in stderr and "Error" not in stderr, stderr


def test_the_lint_reports_a_type_array(inspector: Path, tmp_path: Path) -> None:
    control = tmp_path / "control.py"
    control.write_text(CONTROL)
    envelope, stderr = lint(inspector, sys.executable, str(control))
    [finding] = envelope["schemaFindings"][0]["findings"]
    assert finding["rule"] == "type-union" and finding["path"] == "properties.stop_reason"
    assert "Warning" in stderr
