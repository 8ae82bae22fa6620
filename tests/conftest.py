from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from .fake_relay import FakeRelay

KEY = "sk-aitoearn-TESTKEY-7f3a9c"  # recognisable, so a leak scan can find it


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Servers the tests run (in this process, or spawned with HOME passed on) keep their store
    and reply files in a temporary home, never in the user's real state directory."""
    import os

    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))
    for name in ("XDG_STATE_HOME", "XDG_CACHE_HOME"):
        os.environ.pop(name, None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    fake = FakeRelay().start()
    yield fake
    fake.stop()


def make_server(relay: FakeRelay, key: str | None = KEY, **settings: object):  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    from aitoearn_mcp import Config, create_server

    return create_server(Config(base_url=relay.url, api_key=SecretStr(key) if key else None, **settings))  # type: ignore[arg-type]


HELLO = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "Say hello."}]}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpServer:
    """A real ``aitoearn-mcp --transport streamable-http`` process on a loopback port."""

    def __init__(self, relay: FakeRelay, *args: str, key: str | None = KEY, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        import os
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        self.port = port or free_port()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        environment = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "AITOEARN_BASE_URL": relay.url,
                       **(env or {})}  # fmt: skip
        if key:
            environment["AITOEARN_API_KEY"] = key
        script = str(Path(sys.executable).with_name("aitoearn-mcp"))
        argv = [script, "--transport", "streamable-http", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(argv, env=environment, stdout=self.stderr, stderr=self.stderr)
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/mcp"
        self._wait()

    def _wait(self) -> None:
        import time

        import httpx2

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx2.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        if self.stderr.closed:
            return self._final_log
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        if self.stderr.closed:
            return
        self.proc.terminate()
        try:
            self.proc.wait(40)  # a drain may take its grace period
        except Exception:
            self.proc.kill()
        self._final_log = self.log()
        self.stderr.close()


@pytest.fixture
def http_server(relay: FakeRelay) -> Iterator[HttpServer]:
    server = HttpServer(relay)
    yield server
    server.stop()


def http_client(url: str, headers: dict[str, str] | None = None, mode: str = "auto"):  # type: ignore[no-untyped-def]
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    return Client(transport, mode=mode)  # type: ignore[arg-type]


def start_redis(port: int, folder: str, *, persist: bool = False) -> subprocess.Popen[bytes]:
    """A real ``redis-server`` on a loopback port (``scripts/test`` installs Debian's package), once
    it takes connections; ``persist``: with an append-only file synced on every write (a restart
    comes back with what it held), else nothing kept."""
    import shutil
    import socket

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run the tests with `bash scripts/test`, which installs it")
    keep = ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder, *keep],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")


class RedisServer:
    """A real ``redis-server`` on a loopback port, started by the tests."""

    def __init__(self, tmp: str) -> None:
        self.port = free_port()
        self.proc = start_redis(self.port, tmp)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()
