"""aitoearn-mcp: an MCP server for the chat models sold through AiToEarn's relay.

The public names load on first use, so ``aitoearn-mcp --version`` and ``--help`` answer
without importing the MCP SDK, and no module has to import the package root.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._config import Config, ConfigError
    from ._errors import (
        AuthError,
        CreditsError,
        IncompleteReplyError,
        InputError,
        InvalidModelError,
        MissingKeyError,
        RelayError,
        RelayTimeoutError,
        RequestRejectedError,
        UnavailableError,
    )
    from .relay._accumulator import MessageAccumulator, StreamFormatError
    from .relay._chat_accumulator import ChatCompletionAccumulator
    from .relay._client import RelayClient
    from .relay._reply import ReplyAccumulator
    from .relay._routes import Route
    from .server._server import create_server

# Each public name and the module that defines it.
_EXPORTS = {
    "AuthError": "_errors",
    "ChatCompletionAccumulator": "relay._chat_accumulator",
    "Config": "_config",
    "ConfigError": "_config",
    "CreditsError": "_errors",
    "IncompleteReplyError": "_errors",
    "InputError": "_errors",
    "InvalidModelError": "_errors",
    "MessageAccumulator": "relay._accumulator",
    "MissingKeyError": "_errors",
    "RelayClient": "relay._client",
    "RelayError": "_errors",
    "RelayTimeoutError": "_errors",
    "ReplyAccumulator": "relay._reply",
    "RequestRejectedError": "_errors",
    "Route": "relay._routes",
    "StreamFormatError": "relay._accumulator",
    "UnavailableError": "_errors",
    "create_server": "server._server",
}

__all__ = [
    "AuthError",
    "ChatCompletionAccumulator",
    "Config",
    "ConfigError",
    "CreditsError",
    "IncompleteReplyError",
    "InputError",
    "InvalidModelError",
    "MessageAccumulator",
    "MissingKeyError",
    "RelayClient",
    "RelayError",
    "RelayTimeoutError",
    "ReplyAccumulator",
    "RequestRejectedError",
    "Route",
    "StreamFormatError",
    "UnavailableError",
    "__version__",
    "create_server",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
