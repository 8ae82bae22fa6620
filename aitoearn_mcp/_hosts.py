"""What the server knows of each MCP host, by the ``clientInfo.name`` it sends. Pure.

Hosts cut a tool call off after their own timeout and show the model only so much of a
result; a call must answer before the first and fit the second. Unknown hosts get the
strictest known values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["DEFAULT_PROFILE", "HostProfile", "profile_for"]


@dataclass(frozen=True)
class HostProfile:
    """``wait_seconds``: how long a call may wait for a reply before answering "still running";
    ``max_result_chars``: the result budget (weighted characters, see ``_budget``)."""

    wait_seconds: float
    max_result_chars: int


# Claude Desktop (``claude-ai``) ends a tool call after about 60 s on macOS; the Inspector after 60 s.
DEFAULT_PROFILE = HostProfile(wait_seconds=50.0, max_result_chars=40_000)

_KNOWN: dict[str, HostProfile] = {
    "claude-ai": DEFAULT_PROFILE,
    # Claude Code's MCP_TOOL_TIMEOUT defaults to far longer; 4 minutes keeps the agent informed.
    "claude-code": replace(DEFAULT_PROFILE, wait_seconds=240.0),
    # Gemini CLI waits 10 minutes by default (its per-server ``timeout``).
    "gemini-cli-mcp-client": replace(DEFAULT_PROFILE, wait_seconds=240.0),
}


def profile_for(client_name: str | None) -> HostProfile:
    """The profile of the host that sent ``client_name`` (``clientInfo.name``); unknown hosts get
    the default."""
    return _KNOWN.get((client_name or "").strip().lower(), DEFAULT_PROFILE)
