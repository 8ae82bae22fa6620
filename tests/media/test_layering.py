"""The media layer imports only what its layer allows (the rest of the package is moving)."""

from __future__ import annotations

import ast
from pathlib import Path

import aitoearn_mcp.media

ALLOWED_PACKAGE = {"_config", "_errors", "_untrusted", "_version"}
ALLOWED_THIRD_PARTY = {"pydantic", "anyio", "httpx2", "PIL"}


def test_imports_stay_inside_the_layer() -> None:
    import sys

    root = Path(aitoearn_mcp.media.__file__).parent
    for file in root.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert (node.module or "").split(".")[0] in ALLOWED_PACKAGE, (file.name, node.module)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                top = (node.module or "").split(".")[0]
                assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY or top == "__future__", (file, top)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, (file, top)


def test_pillow_is_not_imported_up_front() -> None:
    import subprocess
    import sys

    code = "import sys, aitoearn_mcp.media; print('PIL' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
