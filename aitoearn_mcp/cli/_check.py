"""``aitoearn-mcp check``: prove the setup works, in the words the tools would use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._config import Config
from .._errors import AuthError, MissingKeyError, RelayError
from ..relay._client import RelayClient, new_http_client
from ..relay._reply import ReplyAccumulator
from ..relay._request import prepare_request
from ..relay._routes import plan_route
from ..server._dto import parse_send_message_args

__all__ = ["mask", "run_check"]


def mask(secret: str) -> str:
    """What lets a user recognise the key: its length, and its last 4 characters unless it is
    under 12 characters long (too short to spare any)."""
    length = f"{len(secret)} characters"
    return f"{length}, ending …{secret[-4:]}" if len(secret) >= 12 else length


async def run_check(config: Config, *, send: bool, model: str | None, say: Callable[[str], None]) -> bool:
    """Print one line per check; True when every check passed."""
    ok = True
    say(f"Base URL:  {config.base_url} (site {config.site})")
    if config.api_key is None:
        say(f"API key:   FAIL not set. {MissingKeyError()}")
        ok = False
    else:
        say(f"API key:   set ({mask(config.api_key.get_secret_value())}, from AITOEARN_API_KEY)")
    async with new_http_client(config) as http:
        relay = RelayClient(config, http)
        entries: list[dict[str, Any]] = []
        unreadable: RelayError | None = None
        try:
            entries = await relay.list_models(config.api_key)
            channels = sorted({str(e.get("channel")) for e in entries})
            say(f"Catalogue: reachable, {len(entries)} chat models (channels: {', '.join(channels)})")
        except RelayError as exc:
            say(f"Catalogue: FAIL {exc}")
            unreadable = exc
            ok = False
        if not send:
            say("Send:      skipped (add --send to make one call with max_tokens 1; it spends a few credits)")
            return ok
        names = [str(e["name"]) for e in entries]
        anthropic = [str(e["name"]) for e in entries if e.get("channel") == "anthropic"]
        chosen = model or (anthropic[0] if anthropic else (names[0] if names else None))
        if chosen is None:
            say(f"Send:      FAIL {_nothing_to_send(unreadable)}")
            return False
        # The same request path as the tool: validated, routed by channel, streaming.
        request, given = parse_send_message_args(
            {"model": chosen, "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}
        )
        entry = next((e for e in entries if e["name"] == chosen), None)
        prepared = prepare_request(plan_route(config.route, entry).first, given, request.max_tokens, entry)
        try:
            message = await relay.send_message(prepared.route, prepared.body, config.api_key, ReplyAccumulator())
        except RelayError as exc:
            say(f"Send:      FAIL {exc}")
            return False
        usage = message.get("usage") or {}
        say(
            f"Send:      {chosen} answered on the {prepared.route} route (stop_reason {message.get('stop_reason')}, "
            f"{usage.get('input_tokens', '?')} in / {usage.get('output_tokens', '?')} out tokens; "
            "this spent a few credits)"
        )
    return ok


def _nothing_to_send(unreadable: RelayError | None) -> str:
    """Why no model could be picked: the catalogue's failure (a rejected key most often), not the flag."""
    if isinstance(unreadable, AuthError):
        return "not tried: the relay rejected the API key (see the Catalogue line); fix the key first"
    if unreadable is not None:
        return "not tried: the catalogue could not be read (see above); pass --model NAME to try one anyway"
    return "the relay lists no chat models to try; pass --model NAME"
