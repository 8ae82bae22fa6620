"""What the server knows of each MCP host, by the ``clientInfo.name`` it sends. Pure.

Hosts cut a tool call off after their own timeout and show the model only so much of a
result; a call must answer before the first and fit the second. Unknown hosts get the
strictest known values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mcp.types import InitializeRequestParams

__all__ = ["DEFAULT_PROFILE", "HostProfile", "client_name", "profile_for", "result_budget"]


@dataclass(frozen=True)
class HostProfile:
    """``wait_seconds``: how long a call may wait for a reply before answering "still running";
    ``max_result_chars``: the result budget (weighted characters, see ``_budget``)."""

    wait_seconds: float
    max_result_chars: int


# Claude Desktop (``claude-ai``) ends a tool call after about 60 s on macOS; the Inspector after 60 s.
# 40,000 weighted characters fit the strictest hosts with room for what they add: Claude Code shows
# JSON.stringify(structuredContent) inline up to 50,000 characters (and counts tokens only above
# 50,000 / 4); Codex cuts the middle of a result over about 48,000 bytes; weight / 2 is under 25,000
# tokens by a conservative count (see ``_budget``).
DEFAULT_PROFILE = HostProfile(wait_seconds=50.0, max_result_chars=40_000)

_KNOWN: dict[str, HostProfile] = {
    "claude-ai": DEFAULT_PROFILE,
    # Claude Code's MCP_TOOL_TIMEOUT defaults to far longer; 4 minutes keeps the agent informed.
    "claude-code": replace(DEFAULT_PROFILE, wait_seconds=240.0),
    "codex-mcp-client": DEFAULT_PROFILE,  # tool_timeout_sec defaults to 60 s
    # Gemini CLI waits 10 minutes by default (its per-server ``timeout``) and shows the model only
    # the text blocks, each whole (79,000 characters measured); it cuts only a result of a single
    # text block over 40,000 characters.
    "gemini-cli-mcp-client": replace(DEFAULT_PROFILE, wait_seconds=240.0, max_result_chars=75_000),
}


def profile_for(client_name: str | None) -> HostProfile:
    """The profile of the host that sent ``client_name`` (``clientInfo.name``); unknown hosts get
    the default."""
    return _KNOWN.get((client_name or "").strip().lower(), DEFAULT_PROFILE)


def client_name(params: InitializeRequestParams | None) -> str | None:
    """The host's ``clientInfo.name``; None when it sent none (2026-07-28 connections may not)."""
    return params.client_info.name if params is not None else None


def result_budget(configured: int | None, client_name: str | None) -> int:
    """The size budget of one result: ``AITOEARN_MAX_RESULT_CHARS`` when set, else the host's."""
    return configured if configured is not None else profile_for(client_name).max_result_chars
