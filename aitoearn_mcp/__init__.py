"""aitoearn-mcp: an MCP server for the chat models sold through AiToEarn's relay.

The public names load on first use, so ``aitoearn-mcp --version`` and ``--help`` answer
without importing the MCP SDK, and no module has to import the package root.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._accumulator import MessageAccumulator, StreamFormatError
    from ._chat_accumulator import ChatCompletionAccumulator
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
    from ._relay import RelayClient
    from ._reply import ReplyAccumulator
    from ._routes import Route
    from ._server import create_server

# Each public name and the module that defines it.
_EXPORTS = {
    "AuthError": "_errors",
    "ChatCompletionAccumulator": "_chat_accumulator",
    "Config": "_config",
    "ConfigError": "_config",
    "CreditsError": "_errors",
    "IncompleteReplyError": "_errors",
    "InputError": "_errors",
    "InvalidModelError": "_errors",
    "MessageAccumulator": "_accumulator",
    "MissingKeyError": "_errors",
    "RelayClient": "_relay",
    "RelayError": "_errors",
    "RelayTimeoutError": "_errors",
    "ReplyAccumulator": "_reply",
    "RequestRejectedError": "_errors",
    "Route": "_routes",
    "StreamFormatError": "_accumulator",
    "UnavailableError": "_errors",
    "create_server": "_server",
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
