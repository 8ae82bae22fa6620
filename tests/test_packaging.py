"""server.json, pyproject and the package agree; server.json fits the registry schema; the
wheel and the sdist build from a clean uv and pass `twine check --strict` with their license and
metadata; the checkout runs through `uvx --from` before any release."""

from __future__ import annotations

import email
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import jsonschema
import pytest

import aitoearn_mcp

from .uv import UV, UVX, clean_env

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


def test_uvx_from_a_checkout_runs_the_server_before_any_release(tmp_path: Path) -> None:
    """The README's route that works before the PyPI release: `uvx --from <clone> aitoearn-mcp`."""
    env = clean_env(tmp_path)
    done = subprocess.run([str(UVX), "--from", str(ROOT), "aitoearn-mcp", "--version"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"aitoearn-mcp {aitoearn_mcp.__version__}"
    assert list((tmp_path / "uv-cache").iterdir())  # it ran from its own cache, not this venv
    # Installed, not run from the source tree: serving needs the package's data (input_schemas.json) too.
    rpc = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]  # fmt: skip
    server = subprocess.Popen([str(UVX), "--from", str(ROOT), "aitoearn-mcp"], env={**env, "AITOEARN_API_KEY": "sk-t"},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert server.stdin is not None and server.stdout is not None
    try:
        server.stdin.write("".join(json.dumps(m) + "\n" for m in rpc))
        server.stdin.flush()  # stdin stays open: its end is a host quitting
        answer = next(m for m in map(json.loads, server.stdout) if m.get("id") == 2)
    finally:
        server.kill()
        server.wait()
    listed = answer["result"]["tools"]
    assert {t["name"] for t in listed} == {
        "list_models",
        "send_message",
        "get_reply",
        "list_conversations",
        "generate_image",
        "generate_video",
    }
    assert all(t["inputSchema"]["properties"] for t in listed)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    env = clean_env(tmp_path_factory.mktemp("uv"))
    done = subprocess.run([str(UV), "build", "--out-dir", str(out), str(ROOT)], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


def test_twine_check_strict_passes_on_the_wheel_and_the_sdist(dists: dict[str, Path]) -> None:
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists.values())],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


def test_the_wheel_carries_the_license_the_typing_marker_and_the_metadata(dists: dict[str, Path]) -> None:
    wheel = zipfile.ZipFile(dists["wheel"])
    names = wheel.namelist()
    info = f"aitoearn_mcp-{aitoearn_mcp.__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names and "aitoearn_mcp/py.typed" in names
    assert "MIT License" in wheel.read(f"{info}/licenses/LICENSE").decode()
    metadata = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
    assert metadata["License-Expression"] == "MIT"
    urls = dict(value.split(", ", 1) for value in metadata.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Repository", "Issues", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in range(11, 15)} <= classifiers
    assert {"Typing :: Typed", "Operating System :: OS Independent"} <= classifiers
    assert any(c.startswith("Topic :: ") for c in classifiers)
    base = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    # The stdio install: the MCP SDK and its HTTP stack, pydantic, anyio, orjson (the stream loop's JSON) and
    # Pillow (image previews, loaded on first use); what only shared deployments need is in the extra.
    names = {re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower() for requirement in base}
    assert names == {"mcp", "httpx2", "pydantic", "anyio", "orjson", "pillow"}, base
    assert all(">=" in requirement for requirement in base), base
    # mcp-name (the MCP registry's ownership check) reaches PyPI in the long description
    assert f"mcp-name: {manifest()['name']}" in metadata.get_payload()


def test_the_sdist_carries_the_license_and_the_changelog(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "aitoearn_mcp/py.typed"} <= names


def test_every_dependency_has_a_floor_that_the_tested_versions_meet() -> None:
    """Every dependency has a lower bound, and the versions the tests run on satisfy it."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(text)
        assert any(spec.operator == ">=" for spec in requirement.specifier), text
        assert requirement.specifier.contains(version(requirement.name)), (text, version(requirement.name))


def test_the_changelog_has_unreleased_work_and_a_section_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## (\S+)", changelog, re.MULTILINE)
    assert sections[0] == "Unreleased" and aitoearn_mcp.__version__ in sections
    assert sections[1:] == sorted(sections[1:], key=lambda v: tuple(map(int, v.split("."))), reverse=True)
    unreleased = changelog.split("## Unreleased", 1)[1].split("\n## ", 1)[0]
    for work in ["get_reply", "store", "Hardening", "Host-shaped results", "bundle"]:
        assert work in unreleased, work
