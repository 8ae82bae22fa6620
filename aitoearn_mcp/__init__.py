"""aitoearn-mcp: an MCP server for the chat models sold through AiToEarn's relay."""

__version__ = "0.2.0"

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
