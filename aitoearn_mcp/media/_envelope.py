"""The native envelope ``{code, message, data}`` of the media routes, and its failures.

The native routes answer business errors with HTTP 200 and ``code != 0``: a 200 alone says
nothing. Each known code becomes the RelayError subclass a caller can act on, with a message
that says what happened and what to do; the relay's own words are shown as one bounded line
(``RelayError`` renders ``detail`` through ``_untrusted.one_line``) and the key is hidden from
every text by the client before the error leaves it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import (
    AuthError,
    CreditsError,
    InvalidModelError,
    RelayError,
    RequestRejectedError,
    UnavailableError,
)
from .._untrusted import MAX_NAME_CHARS, load_json, one_line
from ..relay._error_forms import error_from_response

__all__ = ["ErrorContext", "envelope_data", "response_error"]

_AUTH_FIX = (
    "check the AiToEarn API key; keys are bound to the site that issued them (aitoearn.cn or aitoearn.ai), "
    "so the base URL must be that site"
)
_CREDITS_FIX = "top up credits on the AiToEarn site (Seedance-scope models use the separate Seedance pool), or pick a cheaper size, resolution or duration"  # noqa: E501
_RETRY_FIX = "the relay is busy or failing; try again shortly"
MAX_LISTED_NAMES = 30


@dataclass(frozen=True)
class ErrorContext:
    """What the caller knows about the request, for errors that name it: the model names the
    catalogue offers (12300), the mode and inputs sent (12310/12311), the task id (12302), the
    file size (12752)."""

    operation: str = "call the media API"
    valid_models: Sequence[str] = field(default_factory=tuple)
    mode: str | None = None
    inputs: str | None = None
    task_id: str | None = None
    size: int | None = None


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(one_line(name, MAX_NAME_CHARS) for name in names[:MAX_LISTED_NAMES])
    more = len(names) - MAX_LISTED_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def envelope_error(
    body: Mapping[str, Any], *, status: int, request_id: str | None, context: ErrorContext
) -> RelayError:
    """The failure an envelope with ``code != 0`` reports."""
    code = body.get("code")
    message = body.get("message")
    if isinstance(message, list):  # NestJS validation pipes answer a list of messages
        message = "; ".join(str(item) for item in message)
    text = str(message or "")
    detail = f"code {code}: {text}" if text else f"code {code}"
    common: dict[str, Any] = {"detail": detail, "status": status, "code": code, "request_id": request_id}
    op = context.operation
    if code in (401, 403, 19000) or (code is None and status in (401, 403)):
        return AuthError(f"Could not {op}: the relay rejected the API key", fix=_AUTH_FIX, **common)
    if code == 12001:
        return CreditsError(f"Could not {op}: the account does not have enough credits", fix=_CREDITS_FIX, **common)
    if code == 12300:
        fix = (
            f"pass one of the catalogue's model names: {_names(context.valid_models)}"
            if context.valid_models
            else "pass a model name exactly as the media catalogue lists it (refresh the catalogue first)"
        )
        return InvalidModelError(f"Could not {op}: the relay does not accept this model", fix=fix, **common)
    if code in (12310, 12311):
        kind = "mode" if code == 12310 else "combination of inputs"
        parts = (f"mode {context.mode}" if context.mode else "", context.inputs or "")
        sent = ", ".join(part for part in parts if part)
        what = f"Could not {op}: the model does not support this {kind}" + (f" (sent: {sent})" if sent else "")
        return RequestRejectedError(
            what, fix="pick a mode the model's catalogue entry lists and the inputs that mode takes", **common
        )
    if code == 12302:
        task = f" {one_line(context.task_id, MAX_NAME_CHARS)}" if context.task_id else ""
        return RequestRejectedError(
            f"Could not {op}: the relay does not know the task id{task}",
            fix="pass the id the submit call returned, with the same API key and site that submitted it",
            **common,
        )
    if code == 12750:
        return RequestRejectedError(
            f"Could not {op}: the relay does not know this asset (not found)",
            fix="start the upload again from the signing step",
            **common,
        )
    if code == 12751:
        return UnavailableError(f"Could not {op}: the upload to storage failed", fix="upload the file again", **common)
    if code == 12752:
        size = f" ({context.size:,} bytes)" if context.size is not None else ""
        return RequestRejectedError(
            f"Could not {op}: the file is too large for the relay{size}",
            fix="send a smaller file (compress or trim it)",
            **common,
        )
    if code == 12801:
        return RequestRejectedError(
            f"Could not {op}: the material group does not exist", fix="omit the group or pass an existing one", **common
        )
    if code in (10002, 400):
        return RequestRejectedError(
            f"Could not {op}: the relay's validation refused the request",
            fix="correct the field the relay names",
            **common,
        )
    if code in (429, 500, 502, 503, 504, 529, 19001):
        return UnavailableError(f"Could not {op}: the relay failed to answer", fix=_RETRY_FIX, **common)
    return RequestRejectedError(
        f"Could not {op}: the relay refused the request with code {one_line(str(code), MAX_NAME_CHARS)}",
        fix="read the relay's message",
        **common,
    )


def _request_id(headers: Mapping[str, str], body: Any) -> str | None:
    for name in ("request-id", "x-request-id"):
        if value := headers.get(name):
            return value
    if isinstance(body, Mapping) and isinstance(value := body.get("requestId"), str) and value:
        return value
    return None


def response_error(status: int, headers: Mapping[str, str], raw: bytes, context: ErrorContext) -> RelayError:
    """Any failed answer: an envelope with ``code != 0`` (on any status), or else what the
    chat relay's parser makes of it (provider error bodies, a gateway's HTML page, 5xx)."""
    try:
        parsed: Any = load_json(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping) and "code" in parsed and parsed.get("code") not in (0, None):
        return envelope_error(parsed, status=status, request_id=_request_id(headers, parsed), context=context)
    error = error_from_response(status, headers, raw, now=time.time())
    error.what = f"Could not {context.operation}: {error.what[:1].lower()}{error.what[1:]}"
    if status == 200:  # a 200 that is not an envelope: HTML from a proxy, or another site
        error.what = f"Could not {context.operation}: the answer is not the relay's JSON envelope"
        error.fix = "check the base URL points at the AiToEarn site (https://aitoearn.ai or https://aitoearn.cn)"
    error.args = (error.render(),)
    return error


def envelope_data(status: int, headers: Mapping[str, str], raw: bytes, context: ErrorContext) -> Any:
    """``data`` of a successful envelope (HTTP 200, ``code`` 0), else the failure raised."""
    try:
        parsed: Any = load_json(raw)
    except ValueError:
        parsed = None
    if status == 200 and isinstance(parsed, Mapping) and parsed.get("code") == 0:
        return parsed.get("data")
    raise response_error(status, headers, raw, context)


def shape_error(context: ErrorContext, expected: str) -> RelayError:
    return RelayError(
        f"Could not {context.operation}: the relay's answer has an unexpected shape (expected {expected})",
        fix="try again; if it persists, the relay's API has changed and this server needs an update",
    )
