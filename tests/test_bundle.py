"""The Claude Desktop bundle: manifest.json passes `mcpb validate`, `mcpb pack` makes a .mcpb
holding the manifest, the package and what uv needs, and the packed bundle, started the way
Claude Desktop starts it (mcpb's own config resolution, then `uv run`), serves the tools with
the key and site the user typed in."""

from __future__ import annotations

import json
import subprocess
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client, StdioServerParameters

import aitoearn_mcp
from aitoearn_mcp._config import DEFAULT_BASE_URL

from .conftest import HELLO, KEY
from .fake_relay import FakeRelay
from .node import MODULES, PREFIX, ensure_node
from .uv import clean_env

ROOT = Path(__file__).resolve().parent.parent
MCPB = MODULES / "@anthropic-ai" / "mcpb" / "dist" / "cli" / "cli.js"
TOOLS = ["list_models", "send_message", "get_reply", "list_conversations", "generate_image", "generate_video"]
BUNDLE_FILES = {"manifest.json", "icon.png", "pyproject.toml", "README.md", "LICENSE", "bundle/main.py"}


def mcpb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ensure_node()), str(MCPB), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def manifest() -> dict[str, Any]:
    return json.loads((ROOT / "manifest.json").read_text())


def resolved_config(bundle: Path, user_config: dict[str, str]) -> dict[str, Any] | None:
    """What Claude Desktop runs for this bundle and these settings, by mcpb's own code."""
    script = """
    import { getMcpConfigForManifest } from "@anthropic-ai/mcpb";
    import { readFileSync } from "fs";
    const [dir, userConfig] = [process.argv[1], JSON.parse(process.argv[2])];
    const manifest = JSON.parse(readFileSync(dir + "/manifest.json", "utf-8"));
    const config = await getMcpConfigForManifest({ manifest, extensionPath: dir, systemDirs: {}, userConfig, pathSeparator: "/" });
    console.log(JSON.stringify(config ?? null));
    """
    done = subprocess.run([str(ensure_node()), "--input-type=module", "-e", script, str(bundle), json.dumps(user_config)],
                          capture_output=True, text=True, timeout=60, cwd=PREFIX, check=True)  # fmt: skip
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mcpb") / "aitoearn-mcp.mcpb"
    done = mcpb("pack", str(ROOT), str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_mcpb_validate_passes() -> None:
    done = mcpb("validate", str(ROOT / "manifest.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Manifest schema validation passes!" in done.stdout
    assert "ERROR" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("breakage", "complaint"),
    [
        (lambda m: m["user_config"]["api_key"].update(type="secret"), "user_config.api_key.type"),
        (lambda m: m["server"].update(type="docker"), "server.type"),
        (lambda m: m.update(icon="missing.png"), "Icon file not found"),
    ],
)
def test_a_broken_manifest_fails_validation(tmp_path: Path, breakage: Any, complaint: str) -> None:
    broken = manifest()
    breakage(broken)
    (tmp_path / "manifest.json").write_text(json.dumps(broken))
    (tmp_path / "icon.png").write_bytes((ROOT / "icon.png").read_bytes())
    done = mcpb("validate", str(tmp_path / "manifest.json"))
    assert done.returncode != 0 and complaint in done.stdout + done.stderr, done.stdout + done.stderr


def test_manifest_agrees_with_the_package_and_server_json() -> None:
    data = manifest()
    registry = json.loads((ROOT / "server.json").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert data["version"] == aitoearn_mcp.__version__ == registry["version"]
    assert data["description"] == registry["description"]
    assert data["license"] == project["license"] == "MIT"
    assert [tool["name"] for tool in data["tools"]] == TOOLS
    assert data["compatibility"]["runtimes"]["python"] == project["requires-python"]
    assert set(data["compatibility"]["platforms"]) == {"darwin", "win32", "linux"}
    key, site = data["user_config"]["api_key"], data["user_config"]["base_url"]
    assert key["sensitive"] is True and key["required"] is True
    assert site.get("sensitive") is not True and site["required"] is False and site["default"] == DEFAULT_BASE_URL
    assert data["server"]["mcp_config"]["env"] == {
        "AITOEARN_API_KEY": "${user_config.api_key}",
        "AITOEARN_BASE_URL": "${user_config.base_url}",
    }
    assert (ROOT / data["icon"]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_pack_holds_the_manifest_the_package_and_pyproject_and_nothing_else(packed: Path) -> None:
    names = set(zipfile.ZipFile(packed).namelist())
    source = ROOT / "aitoearn_mcp"
    package = {
        f"aitoearn_mcp/{p.relative_to(source).as_posix()}"
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "aitoearn_mcp/server/_server.py" in package and "aitoearn_mcp/py.typed" in package
    assert names == BUNDLE_FILES | package
    packed_manifest = json.loads(zipfile.ZipFile(packed).read("manifest.json"))
    assert packed_manifest == manifest()


def test_the_bundles_settings_become_the_servers_environment(packed: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    zipfile.ZipFile(packed).extractall(bundle)
    only_key = resolved_config(bundle, {"api_key": "sk-your-key"})
    assert only_key is not None
    assert only_key["env"] == {"AITOEARN_API_KEY": "sk-your-key", "AITOEARN_BASE_URL": DEFAULT_BASE_URL}
    assert only_key["command"] == "uv" and str(bundle) in only_key["args"]
    china = resolved_config(bundle, {"api_key": "sk-your-key", "base_url": "https://aitoearn.cn"})
    assert china is not None and china["env"]["AITOEARN_BASE_URL"] == "https://aitoearn.cn"
    assert resolved_config(bundle, {}) is None  # no key: Claude Desktop asks for it before starting


@pytest.mark.anyio
async def test_the_packed_bundle_serves_the_tools_as_claude_desktop_starts_it(
    packed: Path, tmp_path: Path, relay: FakeRelay
) -> None:
    bundle = tmp_path / "bundle"
    zipfile.ZipFile(packed).extractall(bundle)
    config = resolved_config(bundle, {"api_key": KEY, "base_url": relay.url})
    assert config is not None
    params = StdioServerParameters(command=config["command"], args=config["args"],
                                   env={**clean_env(tmp_path), **config["env"]})  # fmt: skip
    async with Client(params) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("send_message", HELLO)
    assert set(listed) <= set(TOOLS) and {"list_models", "send_message"} <= set(listed)
    assert not result.is_error
    sent = relay.requests_to("/api/ai/v1/messages")
    assert len(sent) == 1 and sent[0].headers["x-api-key"] == KEY


def test_the_release_workflow_builds_the_bundle_and_attaches_it_to_the_release() -> None:
    from .node import PACKAGES

    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())["jobs"]
    [mcpb_package] = [p for p in PACKAGES if p.startswith("@anthropic-ai/mcpb@")]
    packing = " ".join(step.get("run", "") for step in jobs["bundle"]["steps"])
    assert f"npx --yes {mcpb_package} validate manifest.json" in packing  # the version the tests ran
    assert f"npx --yes {mcpb_package} pack . " in packing and ".mcpb" in packing
    release = jobs["github-release"]
    assert "bundle" in release["needs"] and release["permissions"] == {"contents": "write"}
    creating = " ".join(step.get("run", "") for step in release["steps"])
    assert "gh release create" in creating and "*.mcpb" in creating
    checks = " ".join(step.get("run", "") for step in jobs["build"]["steps"])
    assert "manifest.json" in checks  # a tag whose bundle names another version fails
