"""The command line: serve over stdio (the default) or streamable HTTP."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from ._config import Config, ConfigError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aitoearn-mcp",
        description="MCP server for the chat models sold through AiToEarn's relay. "
        "The API key is read from AITOEARN_API_KEY only.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--base-url", help="site root or SDK base URL (env AITOEARN_BASE_URL; default https://aitoearn.ai)"
    )
    parser.add_argument(
        "--max-retries", type=int, help="retries before any reply byte arrived (env AITOEARN_MAX_RETRIES; 2)"
    )
    parser.add_argument("--connect-timeout", type=float, help="seconds (env AITOEARN_CONNECT_TIMEOUT; 10)")
    parser.add_argument(
        "--read-timeout", type=float, help="idle seconds between bytes (env AITOEARN_READ_TIMEOUT; 120)"
    )
    parser.add_argument("--deadline", type=float, help="overall seconds per call (env AITOEARN_DEADLINE; none)")
    parser.add_argument("--models-cache-ttl", type=float, help="seconds (env AITOEARN_MODELS_CACHE_TTL; 300)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = Config.from_env().with_overrides(
            base_url=args.base_url,
            max_retries=args.max_retries,
            connect_timeout=args.connect_timeout,
            read_timeout=args.read_timeout,
            deadline=args.deadline,
            models_cache_ttl=args.models_cache_ttl,
        )
    except ConfigError as exc:
        print(f"aitoearn-mcp: {exc}", file=sys.stderr)
        return 2

    from ._server import create_server  # after the config checks: a bad flag answers at once

    server = create_server(config)
    server.settings.log_level = args.log_level
    server.run("stdio")
    return 0
