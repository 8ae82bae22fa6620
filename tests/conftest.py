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
