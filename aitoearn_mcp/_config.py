"""Configuration: where the relay is, the user's key, and the limits of a call.

Everything comes from the environment (``AITOEARN_*``) with CLI flags on top; the key
comes from the environment only, since a key on a command line lands in process lists
and shell history.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from ._keys import key_problem
from ._paths import store_file

__all__ = [
    "DEFAULT_BASE_URL",
    "ROUTE_SETTINGS",
    "Config",
    "ConfigError",
    "HttpSettings",
    "normalize_base_url",
    "with_overrides",
]

DEFAULT_BASE_URL = "https://aitoearn.ai"
ROUTE_SETTINGS = ("auto", "messages", "chat-completions")  # AITOEARN_ROUTE: which relay route serves a model

# Path suffixes users paste: the SDK-style base URL (what Claude Code users put in
# ANTHROPIC_BASE_URL) and that plus /v1. The relay's routes live under the site root.
_Settings = TypeVar("_Settings", "Config", "HttpSettings")

_SDK_SUFFIXES = ("/api/ai/v1", "/api/ai")


class ConfigError(ValueError):
    """A setting has a value the server cannot start with."""


def normalize_base_url(raw: str, source: str = "AITOEARN_BASE_URL") -> str:
    """Return the site root for a pasted base URL, or raise ConfigError naming ``source`` (the
    setting or flag it came from).

    ``https://aitoearn.ai``, ``https://aitoearn.ai/`` and ``https://aitoearn.ai/api/ai/``
    all give ``https://aitoearn.ai``; a deployment under a path prefix keeps its prefix.
    """
    text = raw.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{source} must be an http(s) URL such as {DEFAULT_BASE_URL} or https://aitoearn.cn, got {text!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{source} must not carry a query or fragment, got {text!r}")
    path = parts.path.rstrip("/")
    for suffix in _SDK_SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _number(env: Mapping[str, str], name: str, default: float | None, *, integer: bool = False) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number of seconds"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if value < 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be zero or more, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")


def _names(raw: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped, each name once."""
    return tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))


def _aliases(raw: str) -> tuple[tuple[str, str], ...]:
    """``review=gpt-5.5,cheap=deepseek``: the last pair for a name wins."""
    pairs: dict[str, str] = {}
    for item in _names(raw):
        alias, equals, target = item.partition("=")
        if not equals:
            raise ConfigError(f"AITOEARN_MODEL_ALIASES must be comma-separated name=model pairs, got {item!r}")
        pairs[alias.strip()] = target.strip()
    return tuple(pairs.items())


def _check_conversations(setting: str) -> None:
    """AITOEARN_CONVERSATIONS: empty, ``memory``, a file (absolute path or ``sqlite:///…``), or Redis."""
    scheme = urlsplit(setting).scheme if "://" in setting else ""
    if scheme in ("redis", "rediss"):
        if importlib.util.find_spec("redis") is None:
            raise ConfigError(
                "AITOEARN_CONVERSATIONS names Redis: install the client with pip install 'aitoearn-mcp[shared]'"
            )
        return
    if scheme not in ("", "sqlite"):
        raise ConfigError(
            "AITOEARN_CONVERSATIONS must be empty (a file in your state directory), memory, an absolute file path "
            f"or sqlite:///path, or a redis:// or rediss:// URL; got a {scheme}:// URL"
        )
    try:
        store_file(setting)
    except ValueError as exc:
        raise ConfigError(f"AITOEARN_CONVERSATIONS: {exc}") from None


@dataclass(frozen=True)
class Config:
    """Settings for one server process. ``api_key`` is a SecretStr: its repr is masked."""

    base_url: str = DEFAULT_BASE_URL
    api_key: SecretStr | None = field(default=None, repr=False)
    models_cache_ttl: float = 300.0
    max_retries: int = 2
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    deadline: float | None = 1800.0  # a delegation's whole life; None: unbounded (AITOEARN_DEADLINE=0)
    wait_seconds: float | None = None  # how long a call waits before answering "running"; None: by host
    route: str = "auto"
    # "": the SQLite file in the state directory; "memory"; a file; a redis:// URL (may hold a password)
    conversations: str = field(default="", repr=False)
    conversation_ttl: float | None = None  # None: 30 days in a file, 3 hours in memory or Redis
    conversation_max_bytes: int = 64 * 1024 * 1024  # least recently used of the largest holder go first
    files_roots: tuple[str, ...] = ()
    files_max_bytes: int = 30 * 1024 * 1024  # base64 makes it 40 MB: inside the relay's 50 MB body
    max_credits_per_call: float = 200.0  # any image and a short video; a paid call priced above it asks first
    max_result_chars: int | None = None  # weighted characters (see _budget); None: what the host shows (_hosts)
    max_reply_bytes: int = 32 * 1024 * 1024  # one reply's stream data; past it the stream is closed
    # Choosing models (docs/tools.md): name=target pairs over the catalogue's family aliases, the
    # allowlist (names or glob patterns; empty: every model), models tried in turn when one fails
    # before any text, and a per-key cap on a UTC day's credits (None: no cap).
    model_aliases: tuple[tuple[str, str], ...] = ()
    allowed_models: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()
    max_credits_per_day: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
        if self.api_key is not None and (problem := key_problem(self.api_key.get_secret_value(), "AITOEARN_API_KEY")):
            raise ConfigError(problem)
        if self.route not in ROUTE_SETTINGS:
            raise ConfigError(f"AITOEARN_ROUTE must be one of {', '.join(ROUTE_SETTINGS)}, got {self.route!r}")
        if self.max_retries < 0:
            raise ConfigError(f"max retries must be zero or more, got {self.max_retries}")
        for name in ("connect_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be more than zero seconds")
        if self.deadline is not None and self.deadline <= 0:
            raise ConfigError("deadline must be more than zero seconds")
        if self.wait_seconds is not None and self.wait_seconds < 0:
            raise ConfigError("AITOEARN_WAIT_SECONDS must be zero or more seconds")
        _check_conversations(self.conversations)
        if self.conversation_ttl is not None and self.conversation_ttl <= 0:
            raise ConfigError("AITOEARN_CONVERSATION_TTL must be more than zero seconds")
        if self.max_result_chars is not None and self.max_result_chars < 2000:
            raise ConfigError(f"AITOEARN_MAX_RESULT_CHARS must be 2000 or more, got {self.max_result_chars}")
        if self.max_reply_bytes < 1024:
            raise ConfigError(f"AITOEARN_MAX_REPLY_BYTES must be 1024 or more, got {self.max_reply_bytes}")
        if self.max_credits_per_call < 0:
            raise ConfigError(f"AITOEARN_MAX_CREDITS_PER_CALL must be zero or more, got {self.max_credits_per_call:g}")
        if self.max_credits_per_day is not None and not 0 < self.max_credits_per_day < 1e12:
            raise ConfigError(f"AITOEARN_MAX_CREDITS_PER_DAY must be more than zero, got {self.max_credits_per_day:g}")
        for alias, target in self.model_aliases:
            if not _MODEL_NAME.fullmatch(alias) or not _MODEL_NAME.fullmatch(target):
                raise ConfigError(
                    "AITOEARN_MODEL_ALIASES must be comma-separated name=model pairs such as "
                    f"review=gpt-5.5,cheap=deepseek, got {alias}={target!r}"
                )
        for name in (*self.allowed_models, *self.fallback):
            if not _MODEL_NAME.fullmatch(name.replace("*", "x").replace("?", "x").replace("[", "").replace("]", "")):
                raise ConfigError(f"AITOEARN_MODELS and AITOEARN_FALLBACK take model names, got {name!r}")

    @property
    def site(self) -> str:
        return urlsplit(self.base_url).netloc

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        key = env.get("AITOEARN_API_KEY", "").strip()
        deadline = _number(env, "AITOEARN_DEADLINE", 1800.0)
        max_result_chars = _number(env, "AITOEARN_MAX_RESULT_CHARS", None, integer=True)  # unset: per host
        return cls(
            base_url=env.get("AITOEARN_BASE_URL", "").strip() or DEFAULT_BASE_URL,
            api_key=SecretStr(key) if key else None,
            models_cache_ttl=_number(env, "AITOEARN_MODELS_CACHE_TTL", 300.0) or 0.0,
            max_retries=int(_number(env, "AITOEARN_MAX_RETRIES", 2, integer=True) or 0),
            connect_timeout=_number(env, "AITOEARN_CONNECT_TIMEOUT", 10.0) or 0.0,
            read_timeout=_number(env, "AITOEARN_READ_TIMEOUT", 120.0) or 0.0,
            deadline=deadline or None,
            wait_seconds=_number(env, "AITOEARN_WAIT_SECONDS", None),
            route=env.get("AITOEARN_ROUTE", "").strip() or "auto",
            conversations=env.get("AITOEARN_CONVERSATIONS", "").strip(),
            conversation_ttl=_number(env, "AITOEARN_CONVERSATION_TTL", None),
            conversation_max_bytes=int(
                _number(env, "AITOEARN_CONVERSATION_MAX_BYTES", 64 * 1024 * 1024, integer=True) or 0
            ),
            files_roots=tuple(p for p in env.get("AITOEARN_FILES_ROOTS", "").split(os.pathsep) if p.strip()),
            files_max_bytes=int(_number(env, "AITOEARN_FILES_MAX_BYTES", 30 * 1024 * 1024, integer=True) or 0),
            max_result_chars=None if max_result_chars is None else int(max_result_chars),
            max_reply_bytes=int(_number(env, "AITOEARN_MAX_REPLY_BYTES", 32 * 1024 * 1024, integer=True) or 0),
            max_credits_per_call=_number(env, "AITOEARN_MAX_CREDITS_PER_CALL", 200.0) or 0.0,
            model_aliases=_aliases(env.get("AITOEARN_MODEL_ALIASES", "")),
            allowed_models=_names(env.get("AITOEARN_MODELS", "")),
            fallback=_names(env.get("AITOEARN_FALLBACK", "")),
            max_credits_per_day=_number(env, "AITOEARN_MAX_CREDITS_PER_DAY", None) or None,
        )

    def to_env(self) -> dict[str, str]:
        """The settings as AITOEARN_* variables (not the key), for worker processes."""
        return {
            "AITOEARN_BASE_URL": self.base_url,
            "AITOEARN_MODELS_CACHE_TTL": str(self.models_cache_ttl),
            "AITOEARN_MAX_RETRIES": str(self.max_retries),
            "AITOEARN_CONNECT_TIMEOUT": str(self.connect_timeout),
            "AITOEARN_READ_TIMEOUT": str(self.read_timeout),
            "AITOEARN_DEADLINE": str(self.deadline or 0),
            "AITOEARN_WAIT_SECONDS": "" if self.wait_seconds is None else str(self.wait_seconds),
            "AITOEARN_ROUTE": self.route,
            "AITOEARN_CONVERSATIONS": self.conversations,
            "AITOEARN_CONVERSATION_TTL": str(self.conversation_ttl or ""),
            "AITOEARN_CONVERSATION_MAX_BYTES": str(self.conversation_max_bytes),
            "AITOEARN_FILES_ROOTS": os.pathsep.join(self.files_roots),
            "AITOEARN_FILES_MAX_BYTES": str(self.files_max_bytes),
            "AITOEARN_MAX_RESULT_CHARS": "" if self.max_result_chars is None else str(self.max_result_chars),
            "AITOEARN_MAX_REPLY_BYTES": str(self.max_reply_bytes),
            "AITOEARN_MAX_CREDITS_PER_CALL": str(self.max_credits_per_call),
            "AITOEARN_MODEL_ALIASES": ",".join(f"{alias}={target}" for alias, target in self.model_aliases),
            "AITOEARN_MODELS": ",".join(self.allowed_models),
            "AITOEARN_FALLBACK": ",".join(self.fallback),
            "AITOEARN_MAX_CREDITS_PER_DAY": "" if self.max_credits_per_day is None else str(self.max_credits_per_day),
        }


def with_overrides(settings: _Settings, **changes: object) -> _Settings:
    """Apply the CLI flags the user gave (None means 'not given') over env-derived settings."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[type-var]


_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_WILDCARD = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class HttpSettings:
    """Where the streamable-HTTP endpoint listens, and which Host names it answers to.

    ``allowed_hosts`` are the names clients use to reach the server (a reverse proxy's
    public name); requests for any other Host are refused (DNS-rebinding protection).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    path: str = "/mcp"
    allowed_hosts: tuple[str, ...] = ()
    workers: int = 1
    shutdown_grace: float = 30.0
    metrics: bool | None = None  # None: on for a loopback bind, off otherwise
    metrics_port: int | None = None  # a separate port for /metrics (then on, whatever the bind)
    header_timeout: float = 10.0  # seconds a connection has to send a whole request head (slow clients)
    body_timeout: float = 120.0  # seconds a request has to send its whole body (50 MB at 0.4 MB/s)
    max_connections: int = 0  # open client connections; 0: half the process's open-file limit, at most 1000

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"AITOEARN_HTTP_{name.upper()} must be more than zero seconds")
        if not self.path.startswith("/"):
            raise ConfigError(f"the MCP path must start with '/', got {self.path!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"the port must be 1-65535, got {self.port}")
        if self.workers < 1:
            raise ConfigError(f"workers must be 1 or more, got {self.workers}")
        if self.shutdown_grace < 0:
            raise ConfigError(f"the shutdown grace must be zero or more seconds, got {self.shutdown_grace}")
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise ConfigError(f"the metrics port must be 1-65535, got {self.metrics_port}")
        if self.metrics_port is not None and self.workers > 1:
            raise ConfigError("--metrics-port serves one process: with --workers, /metrics on the main port sums them")
        if (self.metrics or self.metrics_port is not None) and importlib.util.find_spec("prometheus_client") is None:
            raise ConfigError("metrics need prometheus_client: pip install 'aitoearn-mcp[shared]'")
        if self.wildcard and not self.allowed_hosts:
            raise ConfigError(
                f"binding to all interfaces ({self.host or 'empty host'}) needs --allowed-host NAME "
                "(or AITOEARN_HTTP_ALLOWED_HOSTS): the host name clients use to reach this server"
            )

    @property
    def wildcard(self) -> bool:
        """Bound to all interfaces: no single address names the server."""
        return self.host in _WILDCARD

    @property
    def loopback(self) -> bool:
        """Only a loopback bind may serve requests without a key using the server's own key."""
        return self.host in _LOOPBACK

    @property
    def metrics_enabled(self) -> bool:
        """Asked for, or by default on loopback (and prometheus_client installed)."""
        if self.metrics is not None or self.metrics_port is not None:
            return bool(self.metrics) or self.metrics_port is not None
        return self.loopback and importlib.util.find_spec("prometheus_client") is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HttpSettings:
        env = os.environ if env is None else env
        allowed = tuple(name.strip() for name in env.get("AITOEARN_HTTP_ALLOWED_HOSTS", "").split(",") if name.strip())
        return cls(
            host=env.get("AITOEARN_HTTP_HOST", "").strip() or "127.0.0.1",
            port=int(_number(env, "AITOEARN_HTTP_PORT", 8000, integer=True) or 0),
            path=env.get("AITOEARN_HTTP_PATH", "").strip() or "/mcp",
            allowed_hosts=allowed,
            workers=int(_number(env, "AITOEARN_HTTP_WORKERS", 1, integer=True) or 0),
            shutdown_grace=_number(env, "AITOEARN_SHUTDOWN_GRACE", 30.0) or 0.0,
            metrics=_flag(env, "AITOEARN_METRICS"),
            metrics_port=int(port) if (port := _number(env, "AITOEARN_METRICS_PORT", None, integer=True)) else None,
            header_timeout=_number(env, "AITOEARN_HTTP_HEADER_TIMEOUT", 10.0) or 0.0,
            body_timeout=_number(env, "AITOEARN_HTTP_BODY_TIMEOUT", 120.0) or 0.0,
            max_connections=int(_number(env, "AITOEARN_HTTP_MAX_CONNECTIONS", 0, integer=True) or 0),
        )

    def to_env(self) -> dict[str, str]:
        return {
            "AITOEARN_HTTP_HOST": self.host,
            "AITOEARN_HTTP_PORT": str(self.port),
            "AITOEARN_HTTP_PATH": self.path,
            "AITOEARN_HTTP_ALLOWED_HOSTS": ",".join(self.allowed_hosts),
            "AITOEARN_HTTP_WORKERS": str(self.workers),
            "AITOEARN_SHUTDOWN_GRACE": str(self.shutdown_grace),
            "AITOEARN_METRICS": "" if self.metrics is None else str(int(self.metrics)),
            "AITOEARN_METRICS_PORT": str(self.metrics_port or ""),
            "AITOEARN_HTTP_HEADER_TIMEOUT": str(self.header_timeout),
            "AITOEARN_HTTP_BODY_TIMEOUT": str(self.body_timeout),
            "AITOEARN_HTTP_MAX_CONNECTIONS": str(self.max_connections),
        }
