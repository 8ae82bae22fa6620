"""The package's layering, read from its source: data flows one way, down the layers, and no
module imports its way back into itself.

Each subpackage is a layer; the shared basics (the modules at the package's top) sit at the
bottom, the command line at the top. A module may import its own subpackage and any layer below
its own; every import counts, at module level or inside a function, typing-only too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aitoearn_mcp"

# Lowest first. Layers on one rank may not import each other.
LAYERS: dict[str, int] = {
    "basics": 0,  # _config, _errors, _json, _keys, _metrics, _paths, _untrusted, _version
    "relay": 1,
    "store": 2,
    "media": 2,
    "delegation": 3,
    "views": 4,
    "server": 5,
    "transports": 6,
    "cli": 7,
    "entry": 8,  # the package root's public names, __main__, asgi
}
ENTRY_MODULES = {"aitoearn_mcp", "aitoearn_mcp.__main__", "aitoearn_mcp.asgi"}


def layer_of(module: str) -> str:
    if module in ENTRY_MODULES:
        return "entry"
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "basics"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The package modules an ``import from`` names (a submodule, or the module it reads from)."""
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    if not base.startswith("aitoearn_mcp"):
        return []
    found = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.append(candidate if candidate in MODULES else base)
    return found


def _modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


MODULES = _modules()


def imports() -> dict[str, list[tuple[str, int]]]:
    """Every module's imports of other package modules, with their line numbers."""
    graph: dict[str, list[tuple[str, int]]] = {}
    for module, path in MODULES.items():
        edges: list[tuple[str, int]] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                edges += [(t, node.lineno) for t in resolve(module, path.name == "__init__.py", node)]
            elif isinstance(node, ast.Import):
                edges += [(a.name, node.lineno) for a in node.names if a.name.startswith("aitoearn_mcp")]
        graph[module] = [(t, line) for t, line in edges if t != module and t in MODULES]
    return graph


def test_every_import_runs_down_the_layers() -> None:
    wrong = []
    for module, edges in imports().items():
        here = layer_of(module)
        for target, line in edges:
            there = layer_of(target)
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target} "
                             f"({there}, rank {LAYERS[there]}) from {here} (rank {LAYERS[here]})")  # fmt: skip
    assert not wrong, "imports that run back up the layers:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = {m: sorted({t for t, _ in edges}) for m, edges in imports().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_subpackage_says_what_it_owns() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "import" in doc.lower(), (
            f"{init.relative_to(PACKAGE.parent)} must say what it owns and may import"
        )
        assert init.parent.name in LAYERS, f"{init.parent.name} has no place in LAYERS"


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    """The walk finds an upward import, relative or absolute, at module level or in a function."""
    relay_module = "aitoearn_mcp.relay._client"
    tree = ast.parse("from ..server._tools import Tools\ndef f():\n    from aitoearn_mcp.views import _budget\n")
    found = [t for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for t in resolve(relay_module, False, n)]
    assert found == ["aitoearn_mcp.server._tools", "aitoearn_mcp.views._budget"]
    assert all(LAYERS[layer_of(t)] > LAYERS[layer_of(relay_module)] for t in found)
