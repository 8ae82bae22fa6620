"""The exception hierarchy: the relay's failures, the caller's input, the store's.

Every error renders as a short text an agent can act on: what happened, the relay's own
code or type and message, the fix, and the relay's request id when it sent one.
"""

from __future__ import annotations

from typing import Any

from ._untrusted import MAX_NAME_CHARS, MIN_SECRET_CHARS, hide_secret, one_line

__all__ = [
    "AuthError",
    "CreditsError",
    "IncompleteReplyError",
    "InputError",
    "InvalidModelError",
    "MissingKeyError",
    "RelayError",
    "RelayTimeoutError",
    "ReplyTooLargeError",
    "RequestRejectedError",
    "ShuttingDownError",
    "UnavailableError",
    "detached",
]

KEYS_PAGE = "Settings → API Key on the AiToEarn site that issued your key"
MAX_DETAIL_CHARS = 1000  # the relay's own words in an error: enough for any message, never a page


class InputError(ValueError):
    """Tool arguments that the server refuses before any upstream call."""


class RelayError(Exception):
    """A call to the relay did not produce a complete answer.

    ``retryable`` says whether the same request may be sent again: only when the
    relay produced no reply, and only for failures that can change on their own.
    """

    retryable = False
    # ``detail``, ``code`` and ``request_id`` are the relay's text, kept whole until the key is
    # hidden (a cut could leave half a key) and shown as one bounded line.

    def __init__(
        self,
        what: str,
        *,
        fix: str = "",
        detail: str = "",
        status: int | None = None,
        code: int | str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.what = what
        self.fix = fix
        self.detail = detail
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self.render())

    def hide(self, secret: str) -> None:
        """Replace ``secret`` wherever it appears: a relay may echo the key in any text it sends
        (its message, its request id, a code, a malformed event quoted in ``what``)."""
        if len(secret) < MIN_SECRET_CHARS:
            return
        for name in ("what", "fix", "detail", "request_id", "code"):
            if isinstance(value := getattr(self, name), str):
                setattr(self, name, hide_secret(value, secret))
        self.args = (self.render(),)

    def render(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.detail:
            parts.append(f"Relay said: {one_line(self.detail, MAX_DETAIL_CHARS).rstrip('.')}.")
        if self.fix:
            parts.append(f"Fix: {self.fix.rstrip('.')}.")
        if self.request_id:
            parts.append(f"Request id: {one_line(self.request_id, MAX_NAME_CHARS)}.")
        return " ".join(parts)

    def __str__(self) -> str:
        return self.render()


class MissingKeyError(RelayError):
    def __init__(self) -> None:
        super().__init__(
            "No AiToEarn API key is configured",
            fix=f"set AITOEARN_API_KEY in this server's environment (create a key in {KEYS_PAGE})",
        )


class AuthError(RelayError):
    """The relay rejected the key (401/403, wrapper codes 401 and 19000)."""


class CreditsError(RelayError):
    """The account has no credits left for this call (wrapper code 12001)."""


class InvalidModelError(RelayError):
    """The relay does not know the requested model (wrapper code 12300)."""


class RequestRejectedError(RelayError):
    """The relay refused the request as sent; sending it again will not help."""


class UnavailableError(RelayError):
    """Overload, rate limits, gateway failures, dropped connections before any reply."""

    retryable = True


class RelayTimeoutError(RelayError):
    """A configured time limit ran out."""


class ReplyTooLargeError(RelayError):
    """The reply passed AITOEARN_MAX_REPLY_BYTES: the rest was not read, and the stream was
    closed so the relay stops generating (and billing)."""


class ShuttingDownError(RelayError):
    """The server was shutting down and its grace period ran out while the call ran."""

    def __init__(self) -> None:
        super().__init__(
            "The server was shutting down and stopped this call at the end of its grace period",
            fix="send the request again (the load balancer routes it to a running server)",
        )


class IncompleteReplyError(RelayError):
    """The reply stopped before ``message_stop``; ``partial`` (the Message so far) and
    ``text`` (its text blocks) keep everything that arrived."""

    def __init__(self, cause: RelayError, partial: dict[str, Any], text: str) -> None:
        self.cause = cause
        self.partial = partial
        self.text = text
        super().__init__(
            f"The reply is incomplete: {cause.what[:1].lower()}{cause.what[1:]}",
            fix=cause.fix or "send the request again; the text received before the failure is kept below",
            detail=cause.detail,
            status=cause.status,
            code=cause.code,
            request_id=cause.request_id,
        )


def detached(error: RelayError) -> RelayError:
    """``error`` without its traceback and the exceptions it was raised from, for keeping as a
    value: their frames hold the call that failed (its reply too), in a cycle only a full
    garbage collection would free."""
    for part in (error, error.cause) if isinstance(error, IncompleteReplyError) else (error,):
        part.__traceback__ = part.__context__ = part.__cause__ = None
    return error


class StoreUnavailableError(Exception):
    """The conversation store cannot be used: Redis did not answer, the store file is damaged,
    unwritable or from a newer version. The message names the cause and the fix."""


class TooLargeToStoreError(StoreUnavailableError):
    """One item is larger than the store's byte cap: it is not kept (keeping it would push out
    everything else)."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(
            f"it is {size:,} bytes, over the store's cap of {cap:,} bytes (AITOEARN_CONVERSATION_MAX_BYTES)"
        )
