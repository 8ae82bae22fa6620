"""Turning the relay's error answers into the exception hierarchy: the ``{code, message}``
wrapper, the provider's own ``error`` objects, an error inside a stream, an HTML page from a proxy,
and the headers that say when to retry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._errors import (
    AuthError,
    CreditsError,
    InvalidModelError,
    RelayError,
    RequestRejectedError,
    UnavailableError,
)
from .._untrusted import load_json

__all__ = ["error_from_response", "parse_retry_after", "provider_error", "request_id_from", "stream_error_text"]


_AUTH_FIX = (
    "check AITOEARN_API_KEY; keys are bound to the site that issued them, so a key from "
    "aitoearn.cn needs AITOEARN_BASE_URL=https://aitoearn.cn (and one from aitoearn.ai the default)"
)
_CREDITS_FIX = "top up credits on the AiToEarn site, or pick a cheaper model from list_models"
_MODEL_FIX = "pass a model name exactly as list_models returns it"
_RETRY_FIX = "the relay is busy or failing; try again shortly"


def _wrapper_error(body: Mapping[str, Any], status: int, request_id: str | None) -> RelayError:
    code = body.get("code")
    message = str(body.get("message") or "")
    detail = f"code {code}: {message}" if message else f"code {code}"
    common: dict[str, Any] = {"detail": detail, "status": status, "code": code, "request_id": request_id}
    if code in (401, 19000):
        return AuthError("The relay rejected the API key", fix=_AUTH_FIX, **common)
    if code == 12001:
        return CreditsError("The account is out of credits", fix=_CREDITS_FIX, **common)
    if code == 12300:
        return InvalidModelError("The relay does not accept this model", fix=_MODEL_FIX, **common)
    if code in (10002, 400):
        return RequestRejectedError(
            "The relay refused the request as invalid", fix="correct the arguments it names", **common
        )
    if code in (429, 500, 502, 503, 504, 529) or _sounds_overloaded(message):
        return UnavailableError("The relay failed to answer", fix=_RETRY_FIX, **common)
    return RequestRejectedError("The relay refused the request", fix="read the relay's message", **common)


# What a kind of failure is called, and its fix: (error class, what happened, fix).
_Kind = tuple[type[RelayError], str, str]
_REJECTED_KEY: _Kind = (AuthError, "The relay rejected the API key", _AUTH_FIX)
_NO_CREDITS: _Kind = (CreditsError, "The account is out of credits", _CREDITS_FIX)
_BAD_MODEL: _Kind = (InvalidModelError, "The relay does not accept this model", _MODEL_FIX)
_RATE_LIMITED: _Kind = (UnavailableError, "The relay is rate limiting this key", "wait and try again")
_INTERNAL: _Kind = (UnavailableError, "The relay had an internal error", _RETRY_FIX)

_ANTHROPIC_TYPES: dict[str, _Kind] = {
    "authentication_error": _REJECTED_KEY,
    "permission_error": (AuthError, "The API key may not use this", _AUTH_FIX),
    "invalid_request_error": (
        RequestRejectedError,
        "The relay refused the request as invalid",
        "correct the field it names",
    ),
    "not_found_error": (RequestRejectedError, "The relay could not find what was asked for", _MODEL_FIX),
    "request_too_large": (
        RequestRejectedError,
        "The request is too large for the relay",
        "send fewer or shorter messages",
    ),
    "rate_limit_error": _RATE_LIMITED,
    "api_error": _INTERNAL,
    "overloaded_error": (UnavailableError, "The relay is overloaded", _RETRY_FIX),
}


# OpenAI error codes (the relay's OpenAI-compatible route) that say more than the status.
_OPENAI_CODES: dict[str, _Kind] = {
    "invalid_api_key": _REJECTED_KEY,
    "model_not_found": _BAD_MODEL,
    "insufficient_quota": _NO_CREDITS,
    "context_length_exceeded": (
        RequestRejectedError,
        "The request is longer than the model's context window",
        "send fewer or shorter messages",
    ),
    "rate_limit_exceeded": _RATE_LIMITED,
    "server_error": _INTERNAL,
}

# Google's ``status`` names (the relay's Gemini route: ``{"error": {"code", "message", "status"}}``).
_GOOGLE_STATUSES: dict[str, _Kind] = {
    "UNAUTHENTICATED": _REJECTED_KEY,
    "PERMISSION_DENIED": (AuthError, "The API key may not use this", _AUTH_FIX),
    "RESOURCE_EXHAUSTED": _RATE_LIMITED,
    "INTERNAL": _INTERNAL,
    "UNAVAILABLE": (UnavailableError, "The relay is overloaded", _RETRY_FIX),
}


def provider_error(error: Mapping[str, Any], *, status: int | None, request_id: str | None) -> RelayError:
    """Map a provider's error object, in a body or a stream event: Anthropic's ``{"type",
    "message"}``, OpenAI's ``{"message", "type", "code"}`` or Google's ``{"code", "message", "status"}``."""
    kind = str(error.get("type") or "error")
    code = error.get("code")
    message = str(error.get("message") or "")
    label = str(code) if code not in (None, "") else kind
    detail = f"{label}: {message}" if message else label
    common: dict[str, Any] = {"detail": detail, "status": status, "code": label, "request_id": request_id}
    found = (_OPENAI_CODES.get(str(code)) or _OPENAI_CODES.get(kind) or _ANTHROPIC_TYPES.get(kind)
             or _GOOGLE_STATUSES.get(str(error.get("status"))))  # fmt: skip
    if "model" in message.lower() and (kind == "not_found_error" or (found is None and status == 404)):
        found = _BAD_MODEL
    elif found is None and status in (401, 403):
        found = _REJECTED_KEY
    if found is not None:
        cls, what, fix = found
        return cls(what, fix=fix, **common)
    if (status is not None and status in RETRYABLE_STATUSES) or _sounds_overloaded(message):
        return UnavailableError("The relay failed to answer", fix=_RETRY_FIX, **common)
    return RequestRejectedError("The relay refused the request", fix="read the relay's message", **common)


def stream_error_text(text: str, request_id: str | None) -> RelayError:
    """An ``event: error`` whose data is plain text (the relay's NestJS backend writes these)."""
    detail = " ".join(text.split())[:500]
    cls = UnavailableError if _sounds_overloaded(detail) else RelayError
    return cls("The relay reported an error mid-reply", detail=detail, fix="send the request again",
               request_id=request_id)  # fmt: skip


RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})

_OVERLOAD_WORDS = re.compile(r"overload|too many requests|busy|繁忙|过载|稍后", re.IGNORECASE)


def _sounds_overloaded(message: str) -> bool:
    return bool(_OVERLOAD_WORDS.search(message))


def _summarise_page(text: str) -> str:
    """One line from a non-JSON body: an HTML <title> or the first words, never the page."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    line = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    line = " ".join(line.split())
    return line[:120] + ("…" if len(line) > 120 else "")


def request_id_from(headers: Mapping[str, str], body: Any = None) -> str | None:
    for name in ("request-id", "x-request-id", "x-amzn-requestid", "cf-ray"):
        if value := headers.get(name):
            return value
    if isinstance(body, Mapping):
        for name in ("requestId", "request_id"):
            if isinstance(value := body.get(name), str) and value:
                return value
    return None


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait per ``retry-after`` (delta seconds or HTTP date), or None."""
    from email.utils import parsedate_to_datetime

    raw = headers.get("retry-after", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def error_from_response(status: int, headers: Mapping[str, str], body: bytes, *, now: float) -> RelayError:
    """Turn any error answer of the relay into a RelayError.

    Handles the AiToEarn wrapper (``code != 0``, on any status), Anthropic error bodies,
    and anything else (a gateway's HTML page) by status and a one-line summary.
    """
    text = body.decode("utf-8", "replace")
    try:
        parsed: Any = load_json(text)
    except ValueError:
        parsed = None
    request_id = request_id_from(headers, parsed)
    error: RelayError
    if isinstance(parsed, Mapping) and isinstance(parsed.get("error"), Mapping):
        error = provider_error(parsed["error"], status=status, request_id=request_id)
    elif isinstance(parsed, Mapping) and "code" in parsed and parsed.get("code") != 0:
        error = _wrapper_error(parsed, status, request_id)
    else:
        summary = _summarise_page(text) if text.strip() else "empty body"
        if isinstance(parsed, Mapping) and parsed.get("message"):  # NestJS: {"statusCode", "message", "error"}
            said = parsed["message"]
            summary = ("; ".join(map(str, said)) if isinstance(said, list) else str(said))[:300]
        what = f"The relay answered HTTP {status}"
        common: dict[str, Any] = {"detail": summary, "status": status, "code": status, "request_id": request_id}
        if status in RETRYABLE_STATUSES:
            error = UnavailableError(what, fix=_RETRY_FIX, **common)
        elif status in (401, 403):
            error = AuthError(what, fix=_AUTH_FIX, **common)
        else:
            error = RequestRejectedError(what, fix="check AITOEARN_BASE_URL points at the AiToEarn site", **common)
    if status in RETRYABLE_STATUSES and not error.retryable and not isinstance(error, AuthError | CreditsError):
        # The status says "try again" even when the body's words do not.
        error = UnavailableError(
            error.what, fix=_RETRY_FIX, detail=error.detail, status=status, code=error.code, request_id=request_id
        )
    error.retry_after = parse_retry_after(headers, now)
    return error
