"""The exact body each relay route gets for one send_message call."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import InputError
from .._json import exact_dumps
from ._routes import Route

__all__ = ["MAX_REQUEST_BYTES", "PreparedRequest", "encode_body", "prepare_request"]

MAX_REQUEST_BYTES = 50 * 1024 * 1024  # the relay's documented body limit


@dataclass(frozen=True)
class PreparedRequest:
    route: Route
    body: bytes
    dropped: tuple[str, ...]  # fields with no meaning on this route, left out
    max_tokens: int | None  # what was asked for; None: the model's own limit
    path: str = ""  # the route's path for this model (the Gemini route names it); empty: route.path


def encode_body(body: Mapping[str, Any]) -> bytes:
    encoded = exact_dumps(body)  # what json writes, ten times faster: a long conversation is sent on every call
    if encoded is None:  # json says what is wrong (NaN, a lone surrogate), or writes what orjson cannot
        try:
            encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except ValueError as exc:
            raise InputError(f"Invalid arguments for send_message: {exc}. Nothing was sent.") from None
    if len(encoded) > MAX_REQUEST_BYTES:
        raise InputError(
            f"Invalid arguments for send_message: the request is {len(encoded):,} bytes, over the relay's "
            f"{MAX_REQUEST_BYTES:,}-byte limit; fix: send fewer or smaller messages or attachments. Nothing was sent."
        )
    return encoded


def prepare_request(
    route: Route, arguments: Mapping[str, Any], max_tokens: int, entry: Mapping[str, Any] | None
) -> PreparedRequest:
    """``arguments`` are the caller's, validated, with nulls removed; ``max_tokens`` theirs or the
    default. The Anthropic route gets them as given (extra fields and all) with ``max_tokens`` and
    ``stream: true``; the OpenAI-compatible and Gemini routes get their translation."""
    if route is Route.MESSAGES:
        body = {**arguments, "max_tokens": max_tokens, "stream": True}
        return PreparedRequest(route, encode_body(body), (), max_tokens)
    given = max_tokens if "max_tokens" in arguments else None
    if route is Route.GEMINI:
        from ._gemini_translate import to_gemini  # here: only image models load it

        translation = to_gemini(arguments, entry)
        path = route.path_for(str(arguments["model"]))
        return PreparedRequest(route, encode_body(translation.body), translation.dropped, given, path)
    from ._translate import to_chat_completions  # here: a server that only uses the Messages route never loads it

    translation = to_chat_completions(arguments, entry)
    return PreparedRequest(route, encode_body(translation.body), translation.dropped, given)
