from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_relay import FakeRelay

KEY = "sk-aitoearn-TESTKEY-7f3a9c"  # recognisable, so a leak scan can find it


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

    def __init__(self, relay: FakeRelay, *args: str, key: str | None = KEY, port: int | None = None) -> None:
        import os
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        self.port = port or free_port()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        env = {"PATH": os.environ["PATH"], "AITOEARN_BASE_URL": relay.url}
        if key:
            env["AITOEARN_API_KEY"] = key
        script = str(Path(sys.executable).with_name("aitoearn-mcp"))
        argv = [script, "--transport", "streamable-http", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(argv, env=env, stdout=self.stderr, stderr=self.stderr)
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
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
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
