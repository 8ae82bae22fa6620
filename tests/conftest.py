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
