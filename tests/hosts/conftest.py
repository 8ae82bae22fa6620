from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..fake_relay import FakeRelay
from ..node import ensure_hosts
from .harness import route_long_replies


@pytest.fixture(scope="session")
def hosts_bin() -> Path:
    """claude, codex, gemini and mcp-inspector from npm (installed on first use)."""
    return ensure_hosts()


@pytest.fixture(scope="module")
def long_relay() -> Iterator[FakeRelay]:
    """The fake relay, answering ``reply:N`` with N characters of numbered lines."""
    relay = FakeRelay().start()
    route_long_replies(relay)
    yield relay
    relay.stop()
