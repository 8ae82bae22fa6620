"""The command line: serve over stdio (the default) or streamable HTTP, or check the setup.

Everything past argument parsing is imported where it is first needed: ``--version`` and
``--help`` answer without the MCP SDK, and serving stdio loads nothing of HTTP mode.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from .._version import __version__

if TYPE_CHECKING:
    from .._config import Config, HttpSettings

__all__ = ["main"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Started in a terminal, the server says what it is: it waits for JSON-RPC, not for typing.
TERMINAL_HINT = (
    "aitoearn-mcp: an MCP server speaking JSON-RPC on stdin/stdout; add it to a host "
    "(claude mcp add --scope user aitoearn -e AITOEARN_API_KEY=sk-your-key -- uvx aitoearn-mcp) "
    "instead of running it here. Ctrl-C quits."
)
STOPPED = "aitoearn-mcp: stopped."
# Said once at start-up without a key: otherwise the first sign is every call failing.
NO_KEY_STDIO = (
    "AITOEARN_API_KEY is not set: every call will fail until it is set in this server's environment "
    "(create a key in Settings → API Key on the AiToEarn site)."
)
NO_KEY_HTTP = (
    "AITOEARN_API_KEY is not set: each caller must send its own key (X-Api-Key or Authorization: Bearer), "
    "or its calls fail."
)


def _settings_flags() -> argparse.ArgumentParser:
    # SUPPRESS: a flag not given leaves no attribute, so the check subcommand's copy of a
    # flag does not overwrite the one given before it.
    flags = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    relay = flags.add_argument_group("relay (the key is read from AITOEARN_API_KEY only)")
    relay.add_argument("--base-url", help="site root or SDK base URL (AITOEARN_BASE_URL; https://aitoearn.ai)")
    relay.add_argument("--max-retries", type=int, help="retries before any reply byte (AITOEARN_MAX_RETRIES; 2)")
    relay.add_argument("--connect-timeout", type=float, help="seconds (AITOEARN_CONNECT_TIMEOUT; 10)")
    relay.add_argument("--read-timeout", type=float, help="idle seconds between bytes (AITOEARN_READ_TIMEOUT; 120)")
    relay.add_argument("--deadline", type=float, help="seconds a call may run in all (AITOEARN_DEADLINE; 1800)")
    relay.add_argument(
        "--wait-seconds",
        type=float,
        help="seconds a call waits before answering 'running' with a reply_id (AITOEARN_WAIT_SECONDS; by host)",
    )
    relay.add_argument("--models-cache-ttl", type=float, help="seconds (AITOEARN_MODELS_CACHE_TTL; 300)")
    relay.add_argument(
        "--route",
        choices=["auto", "messages", "chat-completions"],
        help="relay route for send_message: by the model's channel, or always one (AITOEARN_ROUTE; auto)",
    )
    return flags


def _parser() -> argparse.ArgumentParser:
    flags = _settings_flags()
    parser = argparse.ArgumentParser(
        prog="aitoearn-mcp",
        parents=[flags],
        description="MCP server for the chat models sold through AiToEarn's relay. Serves stdio by default.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    http = parser.add_argument_group("streamable HTTP")
    http.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    http.add_argument("--host", help="bind address (AITOEARN_HTTP_HOST; 127.0.0.1)")
    http.add_argument("--port", type=int, help="(AITOEARN_HTTP_PORT; 8000)")
    http.add_argument("--path", help="MCP endpoint path (AITOEARN_HTTP_PATH; /mcp)")
    http.add_argument(
        "--allowed-host",
        action="append",
        help="a Host name clients use, e.g. a proxy's public name; repeatable (AITOEARN_HTTP_ALLOWED_HOSTS)",
    )
    http.add_argument("--workers", type=int, help="uvicorn worker processes (AITOEARN_HTTP_WORKERS; 1)")
    http.add_argument(
        "--shutdown-grace",
        type=float,
        help="seconds calls in flight may finish after SIGTERM (AITOEARN_SHUTDOWN_GRACE; 30)",
    )
    http.add_argument(
        "--metrics", action=argparse.BooleanOptionalAction, help="serve /metrics (AITOEARN_METRICS; on for loopback)"
    )
    http.add_argument("--metrics-port", type=int, help="serve /metrics on this port instead (AITOEARN_METRICS_PORT)")
    commands = parser.add_subparsers(dest="command", metavar="{check}")
    check = commands.add_parser("check", parents=[flags], help="check the base URL, key and catalogue, then exit")
    check.add_argument("--send", action="store_true", help="also make one max_tokens=1 call (spends a few credits)")
    check.add_argument("--model", help="model for --send (default: the first anthropic-channel model)")
    return parser


# What a host runs: no arguments. Serving then starts without building the parser, part of a
# start-up that headless hosts do not wait for (a test holds these to the parser's defaults).
NO_ARGUMENTS = argparse.Namespace(log_level="INFO", transport="stdio", command=None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv) if argv else NO_ARGUMENTS
    if args.command is None and args.transport == "stdio":
        # Until the server takes the signals over, a host quitting during start-up (headless hosts
        # quit fast) ends it as Ctrl-C does: status 0, not -15.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args)
    except KeyboardInterrupt:  # before serving began, or where the event loop takes no signal handlers
        return 130 if args.command == "check" else 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    import logging

    from .._config import Config, ConfigError, HttpSettings, normalize_base_url, with_overrides

    given = vars(args)
    try:
        if given.get("base_url") is not None:  # checked here, so that the error names the flag
            given["base_url"] = normalize_base_url(given["base_url"], "--base-url")
        config = with_overrides(
            Config.from_env(),
            **{name: given.get(name) for name in ("base_url", "max_retries", "connect_timeout", "read_timeout",
                                                  "deadline", "models_cache_ttl", "route", "wait_seconds")},
        )  # fmt: skip
        http = None
        if args.transport == "streamable-http":
            http = with_overrides(
                HttpSettings.from_env(),
                host=args.host, port=args.port, path=args.path, workers=args.workers,
                allowed_hosts=tuple(args.allowed_host) if args.allowed_host else None,
                shutdown_grace=args.shutdown_grace, metrics=args.metrics, metrics_port=args.metrics_port,
            )  # fmt: skip
    except ConfigError as exc:
        print(f"aitoearn-mcp: {exc}", file=sys.stderr)
        return 2

    if args.log_level != "DEBUG":
        logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per relay request is noise

    if args.command == "check":
        import anyio

        from ._check import run_check

        passed = anyio.run(lambda: run_check(config, send=args.send, model=args.model, say=print))
        return 0 if passed else 1

    # Plain lines on stderr. Set up first, so the SDK does not install its rich handler, which
    # took ~3 ms a call to lay out one log line.
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format=LOG_FORMAT)
    if config.api_key is None:
        logging.getLogger("aitoearn_mcp").warning(NO_KEY_STDIO if http is None else NO_KEY_HTTP)
    if http is None:
        return _serve_stdio(config)
    return _serve_http(config, http, args.log_level)


def _serve_stdio(config: Config) -> NoReturn:
    """Serve one host; 0 however it quits (SIGINT, SIGTERM, the end of stdin)."""
    interactive = os.isatty(0)
    if interactive:
        print(TERMINAL_HINT, file=sys.stderr, flush=True)
    try:
        import anyio

        from ..server._server import create_server
        from ..transports._stdio import serve_stdio

        anyio.run(serve_stdio, create_server(config, stdio=True))
    finally:
        # Stopping is under way: one more signal (Claude Code sends SIGTERM 100 ms after SIGINT)
        # must not turn a clean exit into status -15 or a traceback.
        for stopping in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping, signal.SIG_IGN)
        if interactive:
            print(f"\n{STOPPED}", file=sys.stderr)  # after the terminal's own "^C"
    _leave_now(0)


def _leave_now(status: int) -> NoReturn:
    """Exit without the interpreter's own shutdown, which takes ~150 ms to free the modules:
    Codex kills its servers about 35 ms after asking them to stop. Serving has ended and closed
    everything; the exit handlers (reply files, logging) still run."""
    import atexit

    atexit._run_exitfuncs()  # pyright: ignore[reportPrivateUsage]
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _serve_http(config: Config, http: HttpSettings, log_level: str) -> int:
    import logging

    from ..transports import _prometheus

    if http.metrics is None and http.metrics_port is None and http.loopback and not _prometheus.installed():
        # On by default here, but the extra is missing: say so once, or /metrics is a silent 404.
        logging.getLogger("aitoearn_mcp").warning(_prometheus.NOT_INSTALLED)
    if http.workers == 1:
        from ..transports._http import create_http_app, serve

        return serve(create_http_app(config, http), http, log_level.lower())
    import tempfile

    import uvicorn

    # Workers are separate processes that build the app from the environment; each drains on the
    # SIGTERM the supervisor forwards. Their metrics are summed through files in one folder.
    os.environ.update({**config.to_env(), **http.to_env()})
    from ..transports._connections import uvicorn_options

    with tempfile.TemporaryDirectory(prefix="aitoearn-mcp-metrics-") as folder:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", folder)
        uvicorn.run(
            "aitoearn_mcp.asgi:create_app",
            factory=True,
            host=http.host,
            port=http.port,
            workers=http.workers,
            log_level=log_level.lower(),
            **uvicorn_options(http),
        )
    return 0
