"""The process and the command line, as real subprocesses: however a host quits (signals, the end
of stdin, in the orders real hosts use) calls in flight are cancelled upstream and the server
exits 0 at once without a traceback; a terminal run says what it is; ``--version`` and
``--help`` answer without the SDK; the stdio path loads nothing the SDK's own floor does not."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from .. import sse
from ..conftest import HELLO, KEY
from ..fake_relay import FakeRelay, Reply, slow_reply

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = str(Path(sys.executable).with_name("aitoearn-mcp"))
MESSAGES = "/api/ai/v1/messages"

INITIALIZE = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]  # fmt: skip
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "send_message", "arguments": HELLO}}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def env_for(relay: FakeRelay) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url}


def send(proc: subprocess.Popen[bytes], *messages: dict[str, object]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    proc.stdin.flush()


def collect(stream: IO[bytes]) -> list[bytes]:
    """Read a pipe to its end in a thread (a full pipe must never stall the server)."""
    lines: list[bytes] = []

    def read() -> None:
        lines.extend(stream)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# --- quitting -----------------------------------------------------------------------------------


def sigint_then_sigterm(proc: subprocess.Popen[bytes]) -> None:  # Claude Code
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)


def close_stdin_and_sigterm(proc: subprocess.Popen[bytes]) -> None:  # Codex
    assert proc.stdin is not None
    proc.stdin.close()
    proc.send_signal(signal.SIGTERM)


def sigterm_stdin_open(proc: subprocess.Popen[bytes]) -> None:  # Gemini CLI
    proc.send_signal(signal.SIGTERM)


def sigint_stdin_open(proc: subprocess.Popen[bytes]) -> None:  # Ctrl-C, or a host sending SIGINT only
    proc.send_signal(signal.SIGINT)


def close_stdin(proc: subprocess.Popen[bytes]) -> None:  # the MCP spec's stdio shutdown
    assert proc.stdin is not None
    proc.stdin.close()


def sigterm_then_close_stdin(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    assert proc.stdin is not None
    proc.stdin.close()


def sigterm_twice(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)


QUITS = [sigint_then_sigterm, close_stdin_and_sigterm, sigterm_stdin_open, sigint_stdin_open, close_stdin,
         sigterm_then_close_stdin, sigterm_twice]  # fmt: skip


@pytest.mark.parametrize("quit_", QUITS, ids=[q.__name__ for q in QUITS])
def test_a_host_quitting_mid_call_cancels_it_upstream_and_exits_0(
    relay: FakeRelay, quit_: Callable[[subprocess.Popen[bytes]], None]
) -> None:
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(600)]), delay=0.05))  # 30 s
    proc = subprocess.Popen([SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_for(relay))  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    out, err = collect(proc.stdout), collect(proc.stderr)
    try:
        send(proc, *INITIALIZE, CALL)
        wait_for(lambda: relay.requests_to(MESSAGES), 30, "the call to reach the relay")
        time.sleep(0.2)  # the reply is streaming
        quit_at = time.monotonic()
        quit_(proc)
        status = proc.wait(10)
        exited = time.monotonic() - quit_at
        wait_for(lambda: relay.hangups, 5, "the relay to see its connection closed")
    finally:
        proc.kill()
        proc.wait()
    stderr = b"".join(err).decode(errors="replace")
    assert status == 0, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert exited < 1.0, f"exited {exited:.2f} s after the host quit"
    assert relay.hangups[0] - quit_at < 1.0  # billing stopped
    assert not any(json.loads(line).get("id") == 2 for line in out if line.strip())  # nobody left to answer


def test_a_host_that_closed_our_stdout_ends_the_server_quietly() -> None:
    # A host that crashed: the next answer meets a broken pipe.
    proc = subprocess.Popen([SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PATH": os.environ["PATH"], "AITOEARN_API_KEY": KEY})  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    err = collect(proc.stderr)
    send(proc, INITIALIZE[0])
    assert json.loads(proc.stdout.readline())["id"] == 1
    proc.stdout.close()
    send(proc, INITIALIZE[1], TOOLS_LIST)
    try:
        status = proc.wait(10)  # stdin is still open: the broken pipe alone ends it
    finally:
        proc.kill()
        proc.wait()
    stderr = b"".join(err).decode(errors="replace")
    assert status == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_a_host_quitting_during_start_up_still_gets_status_0(relay: FakeRelay) -> None:
    # Headless hosts quit fast; a signal that lands while the SDK is still importing (0.3 s in: it
    # takes about 0.5 s here) is no crash.
    proc = subprocess.Popen([SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_for(relay))  # fmt: skip
    time.sleep(0.3)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr


def test_without_signal_handlers_in_the_event_loop_ctrl_c_still_exits_0(relay: FakeRelay) -> None:
    # Windows' event loop takes no signal handlers: the fallback is asyncio's own Ctrl-C handling.
    refuse = (
        "import asyncio, sys\n"
        "def refuse(*args, **kwargs): raise NotImplementedError\n"
        "asyncio.AbstractEventLoop.add_signal_handler = refuse\n"
        "asyncio.SelectorEventLoop.add_signal_handler = refuse\n"
        "from aitoearn_mcp.cli._main import main\n"
        "sys.exit(main())\n"
    )
    relay.enqueue(MESSAGES, slow_reply(sse.text_reply([f"w{i} " for i in range(600)]), delay=0.05))
    proc = subprocess.Popen([sys.executable, "-c", refuse], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(relay))  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    err = collect(proc.stderr)
    collect(proc.stdout)
    try:
        send(proc, *INITIALIZE, CALL)
        wait_for(lambda: relay.requests_to(MESSAGES), 30, "the call to reach the relay")
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        status = proc.wait(10)
        wait_for(lambda: relay.hangups, 5, "the relay to see its connection closed")
    finally:
        proc.kill()
        proc.wait()
    stderr = b"".join(err).decode(errors="replace")
    assert status == 0, stderr
    assert "Traceback" not in stderr, stderr


# --- a terminal ---------------------------------------------------------------------------------


def read_pty(fd: int, until: Callable[[bytes], bool], timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while not until(seen) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_in_a_terminal_it_says_what_it_is_keeps_serving_and_ctrl_c_ends_it_with_one_line(relay: FakeRelay) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal on stdin, stdout and stderr, as when a user runs it by hand
        os.execve(SCRIPT, [SCRIPT], env_for(relay))
    try:
        hint = read_pty(fd, lambda seen: b"Ctrl-C quits." in seen, 30)
        assert b"aitoearn-mcp: an MCP server speaking JSON-RPC on stdin/stdout" in hint
        assert b"claude mcp add --scope user aitoearn -e AITOEARN_API_KEY=sk-your-key -- uvx aitoearn-mcp" in hint
        os.write(fd, b"hello?\n")  # a user typing: the server keeps serving
        os.write(fd, json.dumps(INITIALIZE[0]).encode() + b"\n")
        answer = read_pty(fd, lambda seen: b'"serverInfo"' in seen and seen.endswith(b"\n"), 30)  # the whole line
        assert b'"aitoearn-mcp"' in answer
        os.write(fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
        rest = read_pty(fd, lambda seen: False, 5)
        _, status = os.waitpid(pid, 0)
    finally:
        with_pid_gone(pid)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    text = (hint + answer + rest).decode(errors="replace")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert rest.decode().replace("^C", "").strip() == "aitoearn-mcp: stopped.", rest


def with_pid_gone(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def test_under_a_host_it_prints_nothing_but_protocol(relay: FakeRelay) -> None:
    proc = subprocess.run([SCRIPT], input=b"", capture_output=True, env=env_for(relay), timeout=30)
    assert proc.returncode == 0
    assert proc.stdout == b"" and b"Ctrl-C" not in proc.stderr and b"stopped" not in proc.stderr


# --- start-up -----------------------------------------------------------------------------------


def imported(argv: list[str]) -> set[str]:
    """The modules a run of ``argv`` imported (``-X importtime``), after answering tools/list."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={"PATH": os.environ["PATH"], "AITOEARN_API_KEY": KEY})  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    err = collect(proc.stderr)
    send(proc, *INITIALIZE, TOOLS_LIST)
    for line in proc.stdout:
        if json.loads(line).get("id") == 2:
            break
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(30)
    time.sleep(0.1)  # the reader thread drains the pipe's end
    return module_names(b"".join(err).decode())


def _modules_of_package() -> list[str]:
    package = ROOT / "aitoearn_mcp"
    return [".".join(("aitoearn_mcp", *p.relative_to(package).with_suffix("").parts)) for p in package.rglob("_*.py")]


def module_names(importtime: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", importtime)}


@pytest.mark.parametrize("flag", ["--version", "-V", "--help"])
def test_version_and_help_answer_without_importing_the_sdk(flag: str) -> None:
    from aitoearn_mcp._version import __version__

    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "aitoearn_mcp", flag], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0
    assert "aitoearn-mcp" in done.stdout
    if flag != "--help":
        assert done.stdout == f"aitoearn-mcp {__version__}\n"
    modules = module_names(done.stderr)
    assert "aitoearn_mcp.cli._main" in modules  # the measurement sees our imports at all
    assert not {m for m in modules if m.split(".")[0] in ("mcp", "pydantic", "httpx2", "anyio")}


@pytest.mark.parametrize("argv", [[], ["check"]])
def test_a_bad_base_url_flag_is_named_as_the_flag(argv: list[str]) -> None:
    done = subprocess.run([SCRIPT, "--base-url", "aitoearn.ai", *argv], capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], "AITOEARN_API_KEY": KEY})  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("aitoearn-mcp: --base-url must be an http(s) URL"), done.stderr
    assert "AITOEARN_BASE_URL" not in done.stderr


def test_starting_without_a_key_says_so_once(relay: FakeRelay) -> None:
    from ..conftest import HttpServer

    env = {"PATH": os.environ["PATH"], "AITOEARN_BASE_URL": relay.url}
    stdio = subprocess.run([SCRIPT], input=b"", capture_output=True, env=env, timeout=30).stderr.decode()
    with_key = subprocess.run([SCRIPT], input=b"", capture_output=True, env=env_for(relay), timeout=30)
    http = HttpServer(relay, key=None)
    http.stop()
    assert stdio.count("AITOEARN_API_KEY is not set: every call will fail until it is set") == 1, stdio
    assert http.log().count("AITOEARN_API_KEY is not set: each caller must send its own key") == 1, http.log()
    assert "every call will fail" not in http.log() and with_key.stderr == b""


def test_serving_with_no_arguments_takes_the_parsers_defaults() -> None:
    from aitoearn_mcp.cli._main import NO_ARGUMENTS, _parser  # pyright: ignore[reportPrivateUsage]

    defaults = vars(_parser().parse_args([]))
    assert vars(NO_ARGUMENTS) == {name: defaults[name] for name in vars(NO_ARGUMENTS)}
    assert {name for name, value in defaults.items() if value is not None} <= set(vars(NO_ARGUMENTS))


def test_serving_stdio_lists_its_tools_with_nothing_beyond_the_sdks_floor_and_the_tools_surface() -> None:
    ours = imported(["-m", "aitoearn_mcp"])
    floor = imported([str(ROOT / "benchmarks" / "floor_server.py")])
    assert "aitoearn_mcp.server._server" in ours and "mcp.server.mcpserver" in floor
    packages = {m.split(".")[0] for m in floor}
    extra = {m.split(".")[0] for m in ours - floor if m.split(".")[0] not in packages}
    # Our own package and the argument parser: never HTTP mode's, the store's or the metrics' packages.
    assert extra <= {"aitoearn_mcp", "argparse", "runpy"}, extra - {"aitoearn_mcp", "argparse", "runpy"}
    for module in ("aitoearn_mcp.transports._http", "aitoearn_mcp.relay._translate", "sqlite3", "redis", "prometheus_client",
                   "difflib"):  # fmt: skip
        assert module not in ours, module
    # The call path loads with the first call: headless hosts list tools without waiting for a server.
    call_path = {f"aitoearn_mcp.{m}" for m in (
        "server._tools", "server._dto", "server._files", "server._roots", "server._listing", "delegation._send",
        "delegation._call", "delegation._turns", "delegation._delegation", "relay._request", "relay._client",
        "relay._catalogue", "views._reply_view", "views._models_view", "views._result", "store._protocol",
        "store._sqlite",
    )}  # fmt: skip
    assert call_path <= set(_modules_of_package()), call_path - set(_modules_of_package())  # the names are real
    assert not call_path & ours, call_path & ours


# --- check ----------------------------------------------------------------------------------------


def test_check_send_with_a_rejected_key_names_the_key(relay: FakeRelay) -> None:
    relay.enqueue("/api/ai/models/chat", Reply.json(200, {"data": {}, "code": 19000, "message": "API Key 无效"}))
    done = subprocess.run([SCRIPT, "check", "--send"], env=env_for(relay), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    send_line = next(line for line in done.stdout.splitlines() if line.startswith("Send:"))
    assert "API key" in send_line and "no model to try" not in send_line, done.stdout
    assert relay.requests_to(MESSAGES) == []  # nothing spent on a key the relay refused


def test_the_public_names_load_on_first_use() -> None:
    probe = (
        "import sys, aitoearn_mcp\n"
        "before = 'mcp' in sys.modules or 'pydantic' in sys.modules\n"
        "values = [getattr(aitoearn_mcp, name) for name in aitoearn_mcp.__all__]\n"
        "from aitoearn_mcp import create_server, RelayClient, Config\n"
        "print(before, 'mcp' in sys.modules, all(v is not None for v in values), aitoearn_mcp.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    version = re.search(r'__version__ = "([^"]+)"', (ROOT / "aitoearn_mcp" / "_version.py").read_text())
    assert version is not None
    assert done.stdout.split() == ["False", "True", "True", version.group(1)], done.stderr
    missing = subprocess.run([sys.executable, "-c", "import aitoearn_mcp; aitoearn_mcp.nope"], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert "AttributeError: module 'aitoearn_mcp' has no attribute 'nope'" in missing.stderr


# --- HTTP start-up ------------------------------------------------------------------------------


def test_metrics_without_the_shared_extra_are_logged_once_at_start_up(relay: FakeRelay) -> None:
    import httpx2

    from ..conftest import free_port

    port = free_port()
    without_prometheus = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if the shared extra were not installed\n"
        "from aitoearn_mcp.cli._main import main\n"
        "sys.exit(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", without_prometheus, "--transport", "streamable-http", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(relay))  # fmt: skip
    assert proc.stderr is not None
    err = collect(proc.stderr)
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx2.get(base + "/healthz", timeout=1).status_code == 200
            except httpx2.TransportError:
                return False

        wait_for(up, 30, "the HTTP server")
        assert httpx2.get(base + "/metrics").status_code == 404
    finally:
        proc.terminate()
        proc.wait(40)
    stderr = b"".join(err).decode()
    assert stderr.count("/metrics is off") == 1, stderr
    assert "pip install 'aitoearn-mcp[shared]'" in stderr
