"""Attacks on stdio `files` (issue 17, items 1-5): another local user swapping what is on disk
while the server reads it, roots that fail open, and paths no file can have. Each race runs
in a bounded loop against a real server; none may hang, leak an outside file or pass the budget."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import ErrorData, ListRootsResult, Root

from aitoearn_mcp.server import _files as _files

from .conftest import make_server
from .fake_relay import FakeRelay
from .test_progress_cancel import stdio

pytestmark = pytest.mark.anyio

MESSAGES = "/api/ai/v1/messages"
posix_only = pytest.mark.skipif(os.name != "posix", reason="named pipes and symlink swaps are POSIX attacks")


def ask(*files: str) -> dict[str, Any]:
    return {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "Read."}], "files": list(files)}


def answering(*uris: str) -> Any:
    async def list_roots(context: Any) -> ListRootsResult:
        # A client may send any URI; the typed model refuses to build one that is not file://.
        roots = [Root(uri=uri) if uri.startswith("file:") else Root.model_construct(uri=uri) for uri in uris]  # type: ignore[arg-type]
        return ListRootsResult(roots=roots)

    return list_roots


def text_of(result: Any) -> str:
    return result.content[0].text


@contextmanager
def swapping(*steps: str, pause: float = 0.0005, **paths: Path) -> Iterator[None]:
    """Another local user: a separate process that runs ``steps`` (Python expressions over
    ``os`` and ``paths``) round and round until the block ends, each state held for a while so a
    read can land in any of them (``pause``: 0.5 ms)."""
    script = "".join(f"{name} = {str(path)!r}\n" for name, path in paths.items())
    script = f"import os, sys, time\n{script}steps = [{', '.join(f'lambda: ({step})' for step in steps)}]\n"
    script += "print(flush=True)\nwhile True:\n  for step in steps:\n    try: step()\n    except OSError: pass\n"
    script += f"    time.sleep({pause})\n"
    attacker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert attacker.stdout is not None and attacker.stdout.readline() == b"\n"  # running
        yield
    finally:
        attacker.kill()
        attacker.wait(10)


# --- 1: a FIFO swapped in after the check ------------------------------------------------------------


@posix_only
async def test_a_named_pipe_swapped_in_never_blocks_the_server(relay: FakeRelay, tmp_path: Path) -> None:
    """A real stdio server: a blocking open() of a FIFO would freeze it (every call, cancel and
    shutdown), so each call must come back, and one after the attack must work."""
    root = tmp_path / "root"
    root.mkdir()
    target = root / "f.txt"
    target.write_text("a regular file")
    pipe, regular = root / ".pipe", root / ".regular"

    def to_regular() -> None:
        regular.write_text("a regular file")
        os.replace(regular, target)

    refused = 0
    async with Client(stdio(relay), list_roots_callback=answering(root.as_uri()), mode="legacy") as client:
        swaps = ("os.mkfifo(pipe), os.replace(pipe, target)",
                 "open(regular, 'w').write('a regular file'), os.replace(regular, target)")  # fmt: skip
        with swapping(*swaps, pause=0, pipe=pipe, regular=regular, target=target):
            for _ in range(200):
                with anyio.fail_after(10):
                    result = await client.call_tool("send_message", ask("f.txt"))
                if result.is_error:
                    refused += 1
                    text = text_of(result)
                    assert "files[0]" in text and "Nothing was sent" in text, text
                    assert "not a regular file" in text or "does not exist" in text, text
        to_regular()
        with anyio.fail_after(10):
            after = await client.call_tool("send_message", ask("f.txt"))
    assert not after.is_error, text_of(after)
    assert refused > 0  # the race was really run: some calls met the pipe


# --- 2: a folder swapped for a symlink out of the root ---------------------------------------------


@pytest.fixture(params=["walk", "compare"])
def opening(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of opening a file: the POSIX walk from the root's descriptor, and the Windows
    fallback (open, then compare with what is at the path), run here on POSIX."""
    if request.param == "compare":
        monkeypatch.setattr(_files, "_WALK", False)
    return request.param


@posix_only
async def test_a_folder_swapped_for_a_link_out_of_the_root_never_sends_the_outside_file(
    relay: FakeRelay, tmp_path: Path, opening: str
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "f.txt").write_text("inside the root")
    (outside / "f.txt").write_text("OUTSIDE-SECRET")
    sub, parked = root / "sub", root / ".parked"

    results = []
    async with Client(make_server(relay), list_roots_callback=answering(root.as_uri()), mode="legacy") as client:
        swaps = ("os.rename(sub, parked), os.symlink(outside, sub)", "os.unlink(sub), os.rename(parked, sub)")
        with swapping(*swaps, sub=sub, parked=parked, outside=outside):
            for _ in range(300):
                results.append(await client.call_tool("send_message", ask("sub/f.txt")))
    sent = [r.body.decode() for r in relay.requests_to(MESSAGES)]
    assert not any("OUTSIDE-SECRET" in body for body in sent)
    assert sent, "no call got through: the race did not run"
    assert all("OUTSIDE-SECRET" not in text_of(r) for r in results)


# --- 3: a small file swapped for a large one after the size check -----------------------------------


@posix_only
async def test_a_file_swapped_for_a_larger_one_never_passes_the_budget(
    relay: FakeRelay, tmp_path: Path, opening: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    small, large = root / ".small", root / ".large"
    small.write_text("seventeen bytes!\n")
    large.write_text("x" * 3_000_000)
    target, staged = root / "f.txt", root / ".staged"
    os.link(small, target)

    results = []
    server = make_server(relay, files_max_bytes=1_000_000)
    async with Client(server, list_roots_callback=answering(root.as_uri()), mode="legacy") as client:
        swaps = (
            "os.link(large, staged), os.replace(staged, target)",
            "os.link(small, staged), os.replace(staged, target)",
        )
        with swapping(*swaps, large=large, small=small, staged=staged, target=target):
            for _ in range(200):
                results.append(await client.call_tool("send_message", ask("f.txt")))
    sizes = [len(r.body) for r in relay.requests_to(MESSAGES)]
    assert sizes and max(sizes) < 1_000_000  # nothing over the budget ever went upstream
    refusals = [text_of(r) for r in results if r.is_error]
    assert refusals  # the race was really run
    for text in refusals:  # over the budget, or (comparing) a different file than the one checked
        assert "files[0]" in text and ("1,000,000-byte budget" in text or "changed while it was being opened" in text)


# --- 4: roots that fail open ------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder that is also the server's working directory (the old fallback)."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.md").write_text("project notes")
    monkeypatch.chdir(folder)
    return folder


async def _roots_error(context: Any) -> ErrorData:
    return ErrorData(code=-32603, message="roots are switched off")


@pytest.mark.parametrize(
    ("callback", "says", "mode"),
    [
        (answering(), "offers roots but granted none", "legacy"),
        (answering(), "offers roots but granted none", "auto"),
        # On 2026-07-28 a client that refuses the input round, or answers with non-file roots, fails the
        # call itself (the SDK refuses such params): the server never runs the tool with them.
        (_roots_error, "answered roots/list with an error (roots are switched off)", "legacy"),
        (answering("https://example.com/repo", "git://example.com/x"), "not local folders", "legacy"),
    ],
)
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")  # the non-file roots, on purpose
async def test_a_client_that_offers_roots_and_grants_none_gets_no_files(
    relay: FakeRelay, project: Path, callback: Any, says: str, mode: str
) -> None:
    async with Client(make_server(relay), list_roots_callback=callback, mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("send_message", ask("notes.md"))
        after = await client.call_tool("send_message", ask())
    text = text_of(result)
    assert result.is_error and says in text and "files[0]" in text, text
    assert "AITOEARN_FILES_ROOTS" in text and "client's roots" in text
    assert "project notes" not in text and relay.requests_to(MESSAGES)[0].json()["messages"][0]["content"] == "Read."
    assert not after.is_error and len(relay.requests_to(MESSAGES)) == 1


async def test_a_client_that_never_answers_roots_list_gets_no_files(relay: FakeRelay, project: Path) -> None:
    async def never(context: Any) -> ListRootsResult:
        await anyio.sleep(60)
        raise AssertionError("unreachable")

    async with Client(make_server(relay), list_roots_callback=never, mode="legacy") as client:
        with anyio.fail_after(15):
            result = await client.call_tool("send_message", ask("notes.md"))
    assert result.is_error and "did not answer roots/list within 5 s" in text_of(result), text_of(result)
    assert relay.requests_to(MESSAGES) == []


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_configured_roots_still_apply_when_the_client_grants_none(
    relay: FakeRelay, project: Path, tmp_path: Path, mode: str
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "spec.txt").write_text("the spec")
    server = make_server(relay, files_roots=(str(shared),))
    async with Client(server, list_roots_callback=answering(), mode=mode) as client:  # type: ignore[arg-type]
        ok = await client.call_tool("send_message", ask(str(shared / "spec.txt")))
        refused = await client.call_tool("send_message", ask(str(project / "notes.md")))
    assert not ok.is_error, text_of(ok)
    assert "the spec" in relay.requests_to(MESSAGES)[0].body.decode()
    assert refused.is_error and "outside the allowed roots" in text_of(refused)
    assert "granted none" in text_of(refused)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_clients_roots_are_asked_for_on_every_protocol(
    relay: FakeRelay, project: Path, tmp_path: Path, mode: str
) -> None:
    """On 2026-07-28 (auto) the roots come through an input-required round; the working
    directory must not stand in for them."""
    granted = tmp_path / "granted"
    granted.mkdir()
    (granted / "a.txt").write_text("granted file")
    async with Client(make_server(relay), list_roots_callback=answering(granted.as_uri()), mode=mode) as client:  # type: ignore[arg-type]
        ok = await client.call_tool("send_message", ask("a.txt"))
        cwd = await client.call_tool("send_message", ask(str(project / "notes.md")))
    assert not ok.is_error, text_of(ok)
    assert "granted file" in relay.requests_to(MESSAGES)[0].body.decode()
    assert cwd.is_error and "outside the allowed roots" in text_of(cwd)
    assert len(relay.requests_to(MESSAGES)) == 1


async def test_a_client_without_roots_gets_the_working_directory(relay: FakeRelay, project: Path) -> None:
    async with Client(make_server(relay), mode="auto") as client:
        result = await client.call_tool("send_message", ask("notes.md"))
    assert not result.is_error, text_of(result)
    assert "project notes" in relay.requests_to(MESSAGES)[0].body.decode()


# --- 5: paths no user file has ----------------------------------------------------------------------


async def test_a_path_with_a_nul_byte_is_refused_clearly(relay: FakeRelay, project: Path) -> None:
    async with Client(make_server(relay)) as client:
        result = await client.call_tool("send_message", ask("notes.md\x00.txt"))
    text = text_of(result)
    assert result.is_error and "`files[0]` contains a NUL byte" in text and "fix:" in text, text
    assert "Error executing tool" not in text and relay.requests_to(MESSAGES) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
@pytest.mark.parametrize("path", ["/proc/self/mem", "/proc/self/pagemap", "/proc/self/environ"])
async def test_kernel_files_under_a_root_of_slash_are_refused_clearly(relay: FakeRelay, path: str) -> None:
    async with Client(make_server(relay), list_roots_callback=answering("file:///"), mode="legacy") as client:
        with anyio.fail_after(20):
            result = await client.call_tool("send_message", ask(path))
    text = text_of(result)
    assert result.is_error and f"`files[0]` {path!r} is a kernel file" in text and "fix:" in text, text
    assert "Error executing tool" not in text and relay.requests_to(MESSAGES) == []


@posix_only
@pytest.mark.parametrize(
    ("make", "kind"),
    [(os.mkfifo, "a named pipe"), (os.mkdir, "a folder")],
)
async def test_what_is_not_a_regular_file_is_refused_naming_its_kind(
    relay: FakeRelay, project: Path, make: Callable[[Path], None], kind: str
) -> None:
    make(project / "odd")
    async with Client(make_server(relay)) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("send_message", ask("odd"))
    assert result.is_error and f"is not a regular file ({kind})" in text_of(result), text_of(result)
