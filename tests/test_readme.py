"""The README and docs/: every JSON and TOML snippet parses, each host's snippets have the shape
that host reads and name the command and the key (Gemini CLI, from npm, runs its own), shell
snippets paste into bash, links work on PyPI, and every performance figure the prose quotes is
the published benchmark run's."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from benchmarks.run import table

from .node import MODULES, ensure_node

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
REPO = "https://github.com/aitoearn/aitoearn-mcp"
RAW = "https://raw.githubusercontent.com/aitoearn/aitoearn-mcp/main/"
HOSTS = ["Claude Code", "Claude Desktop", "Codex", "Gemini CLI", "Cursor", "VS Code"]
KEY = "sk-your-key"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(text: str, *languages: str) -> list[str]:
    return [body for language, body in FENCE.findall(text) if language in languages]


def section(text: str, heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)]
    return rest[: ends[0]] if ends else rest


def host(name: str) -> str:
    return section(section(README, "## Set up in your host"), f"### {name}")


def prose(text: str) -> str:
    """The text a reader reads as sentences: no code blocks, no inline code."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_json_and_toml_snippet_parses(path: Path) -> None:
    text = path.read_text()
    for snippet in blocks(text, "json", "jsonc"):
        json.loads(snippet)
    for snippet in blocks(text, "toml"):
        tomllib.loads(snippet)


def test_the_readme_has_snippets_for_every_host_and_they_parse() -> None:
    assert len(blocks(README, "json")) >= 4 and len(blocks(README, "toml")) == 1


@pytest.mark.parametrize("name", HOSTS)
def test_each_host_snippet_names_the_command_and_the_key(name: str) -> None:
    snippets = blocks(host(name), "sh", "json", "toml")
    assert snippets, f"no snippet for {name}"
    for snippet in snippets:
        assert "aitoearn-mcp" in snippet and "AITOEARN_API_KEY" in snippet, snippet


def test_claude_code_adds_the_server_for_every_project_from_pypi_or_a_clone() -> None:
    commands = [shlex.split(command) for command in blocks(host("Claude Code"), "sh")]
    for argv in commands:
        assert argv[:3] == ["claude", "mcp", "add"]
        assert argv[argv.index("--scope") + 1] == "user"
        assert argv[argv.index("-e") + 1] == f"AITOEARN_API_KEY={KEY}"
        assert argv.index("aitoearn") < argv.index("-e") < argv.index("--")
    assert [argv[argv.index("--") + 1 :] for argv in commands] == [
        ["uvx", "aitoearn-mcp"],
        ["uvx", "--from", "/absolute/path/to/aitoearn-mcp", "aitoearn-mcp"],  # the route tests/test_packaging.py runs
    ]
    assert "MCP_TOOL_TIMEOUT" in host("Claude Code")


@pytest.mark.parametrize("name", ["Claude Desktop", "Cursor"])
def test_claude_desktop_and_cursor_read_mcp_servers(name: str) -> None:
    [snippet] = blocks(host(name), "json")
    assert json.loads(snippet) == {
        "mcpServers": {"aitoearn": {"command": "uvx", "args": ["aitoearn-mcp"], "env": {"AITOEARN_API_KEY": KEY}}}
    }


def test_claude_desktop_starts_with_the_bundle() -> None:
    text = host("Claude Desktop")
    assert text.strip().startswith("Double-click the bundle") and text.index(".mcpb") < text.index("```json")
    assert ".mcpb" in text and f"{REPO}/releases/latest" in text


CODEX_SERVER_KEYS = {
    "command", "args", "env", "env_vars", "cwd", "enabled", "required", "startup_timeout_sec", "tool_timeout_sec",
    "default_tools_approval_mode", "enabled_tools", "disabled_tools",
}  # fmt: skip


def test_codex_snippets_use_codex_keys() -> None:
    [command] = blocks(host("Codex"), "sh")
    assert shlex.split(command) == ["codex", "mcp", "add", "aitoearn", "--env", f"AITOEARN_API_KEY={KEY}", "--", "uvx",
                                    "aitoearn-mcp"]  # fmt: skip
    [snippet] = blocks(host("Codex"), "toml")
    server = tomllib.loads(snippet)["mcp_servers"]["aitoearn"]
    assert set(server) <= CODEX_SERVER_KEYS, set(server) - CODEX_SERVER_KEYS
    assert (server["command"], server["args"], server["env"]) == ("uvx", ["aitoearn-mcp"], {"AITOEARN_API_KEY": KEY})
    assert server["default_tools_approval_mode"] in {"auto", "prompt", "writes", "approve"}  # Codex 0.169's variants
    assert isinstance(server["tool_timeout_sec"], int) and server["tool_timeout_sec"] > 60  # Codex's default: 60
    assert "~/.codex/config.toml" in host("Codex")


def test_gemini_cli_snippets() -> None:
    [command] = blocks(host("Gemini CLI"), "sh")
    argv = shlex.split(command)
    assert argv[:3] == ["gemini", "mcp", "add"] and argv[argv.index("-s") + 1] == "user"
    assert argv[argv.index("-e") + 1] == f"AITOEARN_API_KEY={KEY}"
    assert argv[-3:] == ["aitoearn", "uvx", "aitoearn-mcp"]
    [snippet] = blocks(host("Gemini CLI"), "json")
    server = json.loads(snippet)["mcpServers"]["aitoearn"]
    assert (server["command"], server["args"], server["env"]) == ("uvx", ["aitoearn-mcp"], {"AITOEARN_API_KEY": KEY})
    assert isinstance(server["timeout"], int) and server["timeout"] >= 60_000  # milliseconds


def test_vs_code_asks_for_the_key_as_a_secret() -> None:
    [snippet] = blocks(host("VS Code"), "json")
    config = json.loads(snippet)
    server = config["servers"]["aitoearn"]
    assert (server["type"], server["command"], server["args"]) == ("stdio", "uvx", ["aitoearn-mcp"])
    [reference] = re.findall(r"^\$\{input:([\w-]+)\}$", server["env"]["AITOEARN_API_KEY"])
    [prompt] = [i for i in config["inputs"] if i["id"] == reference]
    assert prompt["password"] is True


def test_the_route_before_the_release_and_the_gui_path_advice() -> None:
    start = section(README, "## Before you start")
    assert "uvx --from /absolute/path/to/aitoearn-mcp aitoearn-mcp" in start
    assert '"args": ["--from", "/absolute/path/to/aitoearn-mcp", "aitoearn-mcp"]' in start
    assert "/absolute/path/to/aitoearn-mcp/.venv/bin/aitoearn-mcp" in start
    assert "which uvx" in start and "where uvx" in start  # a GUI host that cannot find uvx
    assert "install.sh" in start and "install.ps1" in start  # how to get uv


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_shell_snippets_paste_into_bash(path: Path) -> None:
    text = path.read_text()
    assert "<your key>" not in text
    for snippet in blocks(text, "sh", "bash"):
        shlex.split(snippet.replace("\\\n", " "))  # balanced quotes
        assert not re.search(r"(?<![-\w])<[\w .-]+>", snippet), snippet  # `<key>` is a redirection in bash


def test_readme_links_are_absolute_and_point_at_files_that_exist() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    assert targets
    for target in targets:
        assert target.startswith("https://"), f"{target}: PyPI renders only absolute links"
        if target.startswith(f"{REPO}/blob/main/"):
            assert (ROOT / target.removeprefix(f"{REPO}/blob/main/").split("#")[0]).is_file(), target
        if target.startswith(RAW):
            assert (ROOT / target.removeprefix(RAW)).is_file(), target


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_relative_links_resolve(path: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if not target.startswith(("https://", "http://", "#")):
            assert (path.parent / target.split("#")[0]).exists(), f"{path.name}: {target}"


def test_host_set_up_comes_first_and_operators_material_lives_in_docs() -> None:
    headings = re.findall(r"^## (.+)$", README, re.MULTILINE)
    assert headings.index("Set up in your host") < headings.index("What the tools do")
    for merged_later in ["Long calls", "Conversations", "What each host shows the model", "Security"]:
        assert merged_later in headings
    lines = README.splitlines()
    end_of_set_up = next(
        i for i, line in enumerate(lines) if line.startswith("## ") and i > lines.index("## Set up in your host")
    )
    assert end_of_set_up < 175, end_of_set_up  # a host user finds everything near the top
    for doc in ["configuration", "operating", "performance", "development"]:
        assert f"{REPO}/blob/main/docs/{doc}.md" in README
    assert "--transport streamable-http" not in README and "PROMETHEUS" not in README


def test_the_readme_says_which_python_and_what_the_tests_download() -> None:
    floor = re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor is not None
    start = README.index("bash scripts/test")
    assert f"Python {floor.group(1)} or newer" in README[:start]  # running from a clone
    setup = README[start : README.index("mcp-name:")]
    named = ["redis-server", "Debian", "PyPI", "Node 22", "conformance", "Inspector", "mcpb", "TypeScript SDK",
             "Claude Code", "Codex", "Gemini CLI", "MB", "10 minutes", f"Python {floor.group(1)} or newer"]  # fmt: skip
    assert [word for word in named if word not in setup] == []


# --- performance figures ----------------------------------------------------------------------

FIGURE = re.compile(r"(?<![\w.,])(-?\d+(?:,\d{3})*(?:\.\d+)?)\s?(ms|s|x|MiB|KiB|µs)(?![\w])")


def published() -> dict[str, Any]:
    return json.loads((ROOT / "docs" / "benchmark.json").read_text())


def numbers(value: Any) -> list[float]:
    """Every number in the published run: its figures and the numbers in its goals."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers(item)]
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value), float(value) * 1000]  # seconds quoted as ms, too
    if isinstance(value, str):
        return [float(n) for n in re.findall(r"\d+(?:\.\d+)?", value)]
    return []


def unbacked_figures(text: str, figures: dict[str, Any]) -> list[str]:
    """The figures (a number with a unit) in ``text``'s prose that the published run does not give."""
    known = numbers(figures)
    missing = []
    for number, unit in FIGURE.findall(prose(text)):
        quoted = float(number.replace(",", ""))
        places = len(number.split(".")[1]) if "." in number else 0
        if not any(round(abs(k), places) == abs(quoted) for k in known):
            missing.append(f"{number} {unit}")
    return missing


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "docs" / "performance.md"], ids=lambda p: p.name)
def test_every_performance_figure_in_the_prose_is_the_published_runs(path: Path) -> None:
    assert unbacked_figures(path.read_text(), published()) == []
    if path.name == "performance.md":
        assert len(FIGURE.findall(prose(path.read_text()))) >= 20  # the check has figures to check


def test_the_figure_check_catches_a_figure_from_another_run() -> None:
    figures = published()
    share = figures["per_call"]["overhead_beyond_sdk_floor_ms"]
    assert unbacked_figures(f"Per call, this server's share is {share:.2f} ms.", figures) == []
    # figures no run gives (a plausible one, like 9.0 ms, may be this run's by chance)
    assert unbacked_figures("A stdio call took 98765.4 ms, against 87654.3 ms now.", figures) == [
        "98765.4 ms",
        "87654.3 ms",
    ]
    assert unbacked_figures("`9.0 ms` in code is not prose", figures) == []


def test_performance_doc_shows_the_published_table_and_chart() -> None:
    figures = published()
    doc = (ROOT / "docs" / "performance.md").read_text()
    assert table(figures) in doc  # the table is the one the published figures give
    assert figures["meta"]["command"] in doc and figures["meta"]["date"] in doc
    assert f"]({RAW}docs/benchmark.png)" in doc  # absolute: renders wherever the doc is shown
    assert (ROOT / "docs" / "benchmark.png").read_bytes().startswith(b"\x89PNG")


# --- a real host from npm -----------------------------------------------------------------------

GEMINI_CLI = MODULES / "@google" / "gemini-cli" / "bundle" / "gemini.js"


def gemini(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITOEARN_")} | {"HOME": str(home)}
    done = subprocess.run([str(ensure_node()), str(GEMINI_CLI), *args], env=env, cwd=home, capture_output=True,
                          text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_gemini_cli_takes_the_readme_command_and_the_entry_connects(tmp_path: Path) -> None:
    [command] = blocks(host("Gemini CLI"), "sh")
    gemini(tmp_path, *shlex.split(command)[1:])
    settings = tmp_path / ".gemini" / "settings.json"
    added = json.loads(settings.read_text())["mcpServers"]["aitoearn"]
    [snippet] = blocks(host("Gemini CLI"), "json")
    documented = json.loads(snippet)["mcpServers"]["aitoearn"]
    assert added == {key: value for key, value in documented.items() if key != "timeout"}  # the same entry
    (tmp_path / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(tmp_path): "TRUST_FOLDER"}))

    def status(command: str) -> str:
        """`gemini mcp list` for the documented entry run from ``command``."""
        settings.write_text(json.dumps({"mcpServers": {"aitoearn": {**documented, "command": command, "args": []}}}))
        return next(line for line in gemini(tmp_path, "mcp", "list").splitlines() if "aitoearn:" in line)

    # The route before the release: this checkout's virtualenv, by its absolute path.
    assert status(str(Path(sys.executable).with_name("aitoearn-mcp"))).endswith("Connected")
    assert status(str(tmp_path / "no-such-server")).endswith("Disconnected")  # the check can fail
