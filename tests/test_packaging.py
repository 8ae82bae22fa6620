"""server.json, pyproject and the package agree; server.json fits the registry schema; the
README's snippets parse."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

import jsonschema

import aitoearn_mcp

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "schemas" / "server.schema.2025-12-11.json"
SCHEMA_SHA256 = "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0"


def manifest() -> dict:
    return json.loads((ROOT / "server.json").read_text())


def test_versions_agree() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "aitoearn_mcp/_version.py"
    data = manifest()
    assert data["version"] == aitoearn_mcp.__version__
    assert data["packages"][0]["version"] == aitoearn_mcp.__version__
    assert data["packages"][0]["identifier"] == pyproject["project"]["name"] == "aitoearn-mcp"


def test_server_json_matches_the_vendored_registry_schema() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA.read_text())
    data = manifest()
    assert data["$schema"] == schema["$id"]
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(data)
    assert len(data["description"]) <= 100
    package = data["packages"][0]
    assert (package["registryType"], package["runtimeHint"], package["transport"]) == ("pypi", "uvx", {"type": "stdio"})
    env = {v["name"]: v for v in package["environmentVariables"]}
    assert env["AITOEARN_API_KEY"]["isRequired"] and env["AITOEARN_API_KEY"]["isSecret"]
    assert not env["AITOEARN_BASE_URL"]["isRequired"] and env["AITOEARN_BASE_URL"]["default"] == "https://aitoearn.ai"


def test_the_schema_check_can_fail() -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = {**manifest(), "name": "no-slash-here"}
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert errors


def test_readme_carries_the_registry_ownership_line_and_opens_with_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"mcp-name: {manifest()['name']}" in readme
    first_blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", readme, re.DOTALL)[:2]
    assert "aitoearn-mcp" in first_blocks[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert first_blocks[1].strip() in ci  # CI runs exactly the README's test command


def test_every_json_snippet_in_the_readme_parses() -> None:
    readme = (ROOT / "README.md").read_text()
    snippets = re.findall(r"```(?:json|jsonc)\n(.*?)```", readme, re.DOTALL)
    assert len(snippets) >= 5
    for snippet in snippets:
        json.loads(snippet)


def test_readme_shows_the_published_benchmark_run() -> None:
    from benchmarks.run import table

    figures = json.loads((ROOT / "docs" / "benchmark.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert table(figures) in readme  # the table is the one the published figures give
    assert figures["meta"]["command"] in readme and "docs/benchmark.png" in readme
    assert (ROOT / "docs" / "benchmark.png").read_bytes().startswith(b"\x89PNG")
