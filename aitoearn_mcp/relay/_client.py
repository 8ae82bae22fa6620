"""The relay client: HTTP, retries, timeouts and error parsing for the relay's routes.

One ``httpx2.AsyncClient`` per process carries every call. The key travels per call
(streamable-HTTP deployments serve many callers) and is scrubbed from every error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

import anyio
import httpx2
import orjson
from pydantic import SecretStr

from .._config import Config
from .._errors import (
    IncompleteReplyError,
    MissingKeyError,
    RelayError,
    RelayTimeoutError,
    ReplyTooLargeError,
    UnavailableError,
)
from .._metrics import NO_METRICS, Metrics
from .._untrusted import MAX_JSON_DEPTH, MAX_NAME_CHARS, bounded, load_json, redact, too_deep
from .._version import __version__
from ._accumulator import MAX_FIELD_CHARS, StreamFormatError
from ._error_forms import error_from_response, provider_error, request_id_from, stream_error_text
from ._gemini_accumulator import is_gemini_response
from ._reply import ReplyAccumulator
from ._routes import Route
from ._sse import Event, EventTooLargeError, iter_events

__all__ = ["MODELS_PATH", "RelayClient", "new_http_client", "read_capped"]

logger = logging.getLogger("aitoearn_mcp")

MODELS_PATH = "/api/ai/models/chat"
MAX_EVENT_BYTES = 16 * 1024 * 1024  # one SSE event; a sane reply block is far smaller
MAX_ERROR_BODY_BYTES = 256 * 1024  # enough for any error text, never a whole page
MAX_JSON_BODY_BYTES = 64 * 1024 * 1024  # the catalogue; a whole JSON reply has the reply's limit
RETRY_AFTER_CAP = 60.0
DRAIN_SECONDS = 0.5  # longer waits are not worth holding an agent's call for

OnRetry = Callable[[str], Awaitable[None]]


class _LazyTransport(httpx2.AsyncBaseTransport):
    """Builds the connection pool, and with it the TLS context (25-50 ms of CA loading), on
    the first request instead of at start-up, where every host launch would pay for it."""

    def __init__(self, limits: httpx2.Limits) -> None:
        self._limits = limits
        self._transport: httpx2.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._transport is None:
            self._transport = httpx2.AsyncHTTPTransport(limits=self._limits)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


def new_http_client(config: Config) -> httpx2.AsyncClient:
    timeout = httpx2.Timeout(
        connect=config.connect_timeout,
        read=config.read_timeout,
        write=config.read_timeout,
        pool=config.connect_timeout,
    )
    return httpx2.AsyncClient(
        timeout=timeout,
        headers={"user-agent": f"aitoearn-mcp/{__version__}"},
        transport=_LazyTransport(httpx2.Limits(max_connections=None, max_keepalive_connections=20)),
    )


class _Failure(Exception):
    """A RelayError raised inside the request, carried out of the stream context."""


class RelayClient:
    """Calls the relay. ``backoff_base`` is the first retry delay in seconds."""

    def __init__(
        self, config: Config, http: httpx2.AsyncClient, *, backoff_base: float = 0.5, metrics: Metrics = NO_METRICS
    ) -> None:
        self._config = config
        self._http = http
        self._backoff_base = backoff_base
        self._metrics = metrics

    @property
    def http(self) -> httpx2.AsyncClient:
        """The process's HTTP client (a reply's image links are fetched with it, without the key)."""
        return self._http

    @property
    def max_reply_bytes(self) -> int:
        return self._config.max_reply_bytes

    async def list_models(
        self, key: SecretStr | None, *, on_retry: OnRetry | None = None, max_retries: int | None = None
    ) -> list[dict[str, Any]]:
        """The chat model catalogue, unwrapped from ``{code, message, data}``."""
        headers = {"accept": "application/json"}
        if key is not None:  # public route; the key does no harm and may unlock more
            headers["x-api-key"] = key.get_secret_value()

        async def attempt() -> list[dict[str, Any]]:
            async with self._http.stream("GET", self._config.base_url + MODELS_PATH, headers=headers) as response:
                body = await read_capped(response, MAX_JSON_BODY_BYTES)
                parsed = _json_or_none(body)
                if response.status_code == 200 and isinstance(parsed, dict) and parsed.get("code") == 0:
                    if isinstance(parsed.get("data"), list):
                        return _catalogue_entries(parsed["data"], key)
                    raise RelayError(
                        "The relay's model catalogue has an unexpected shape",
                        fix="check AITOEARN_BASE_URL points at the AiToEarn site",
                        request_id=request_id_from(response.headers, parsed),
                    )
                raise error_from_response(response.status_code, response.headers, body, now=time.time())

        return await self._with_retries(attempt, key, on_retry, what="list the models", max_retries=max_retries)

    async def send_message(
        self,
        route: Route,
        body: bytes,
        key: SecretStr | None,
        accumulator: ReplyAccumulator,
        *,
        on_retry: OnRetry | None = None,
        on_first_event: Callable[[], None] | None = None,
        path: str | None = None,
    ) -> dict[str, Any]:
        """POST the body to ``route`` (at ``path``: the Gemini route's names the model), stream the
        reply into ``accumulator`` and return the Message (Anthropic-shaped whichever protocol
        the relay spoke).

        Retries happen only before the relay answered 200: once it did, a second request
        could bill twice. A failure after that raises IncompleteReplyError with the
        partial message when anything arrived.
        """
        if key is None:
            raise MissingKeyError()
        accumulator.hide(key.get_secret_value())
        headers = {"accept": "text/event-stream", "content-type": "application/json"}
        if route is Route.MESSAGES:
            headers |= {"x-api-key": key.get_secret_value(), "anthropic-version": "2023-06-01"}
        elif route is Route.GEMINI:
            headers["x-goog-api-key"] = key.get_secret_value()
        else:  # the OpenAI-compatible route takes the key as a bearer token only
            headers["authorization"] = f"Bearer {key.get_secret_value()}"
        url = self._config.base_url + (path or route.path)
        max_bytes = self._config.max_reply_bytes

        async def attempt() -> dict[str, Any]:
            async with self._http.stream("POST", url, content=body, headers=headers) as response:
                content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
                if response.status_code != 200 or content_type != "text/event-stream":
                    is_json = response.status_code == 200 and content_type == "application/json"
                    raw = await read_capped(response, max_bytes + 1 if is_json else MAX_ERROR_BODY_BYTES)
                    if is_json and len(raw) > max_bytes:  # a cut JSON body cannot be read at all
                        raise _too_large(max_bytes, request_id_from(response.headers), streamed=False)
                    # A relay may answer a streamed request with one whole JSON reply.
                    try:
                        whole = is_json and accumulator.feed_whole(_json_or_none(raw))
                    except StreamFormatError as exc:
                        raise _stream_failure(exc, self._config, request_id_from(response.headers)) from None
                    if not whole:
                        raise error_from_response(response.status_code, response.headers, raw, now=time.time())
                    return accumulator.message()
                request_id = request_id_from(response.headers)
                try:
                    await _read_event_stream(response, accumulator, request_id, on_first_event, max_bytes)
                    return accumulator.message()
                except RelayError as exc:
                    raise _Failure(exc) from None
                except (httpx2.TransportError, StreamFormatError, EventTooLargeError) as exc:
                    raise _Failure(_stream_failure(exc, self._config, request_id)) from None

        try:
            return await self._with_retries(attempt, key, on_retry, what="send the message")
        except (_Failure, RelayTimeoutError) as exc:  # a deadline can fall before or during the reply
            raise _scrub(_with_partial(exc.args[0] if isinstance(exc, _Failure) else exc, accumulator), key) from None

    async def _with_retries(
        self,
        attempt: Callable[[], Awaitable[Any]],
        key: SecretStr | None,
        on_retry: OnRetry | None,
        *,
        what: str,
        max_retries: int | None = None,
    ) -> Any:
        deadline = self._config.deadline
        retries = self._config.max_retries if max_retries is None else max_retries
        try:
            with anyio.fail_after(deadline) if deadline else contextlib.nullcontext():
                for number in range(retries + 1):
                    try:
                        return await attempt()
                    except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                        error: RelayError = _connect_failure(exc, self._config)
                    except httpx2.TimeoutException:
                        raise _read_timeout(self._config, None) from None
                    except httpx2.TransportError as exc:
                        error = UnavailableError(
                            f"The connection to the relay failed before it answered ({type(exc).__name__})",
                            fix="try again shortly",
                        )
                    except RelayError as exc:
                        error = _scrub(exc, key)
                    if not error.retryable or number == retries:
                        raise error
                    self._metrics.retry(_retry_cause(error))
                    delay = self._delay(number, error.retry_after)
                    message = (
                        f"Could not {what} (attempt {number + 1} of {retries + 1}): "
                        f"{error.what}; retrying in {delay:.1f} s"
                    )
                    logger.warning(message)
                    if on_retry is not None:
                        await on_retry(message)
                    await anyio.sleep(delay)
        except TimeoutError:
            if deadline is None:
                raise
            raise RelayTimeoutError(
                f"The call ran past the overall deadline of {deadline:g} s",
                fix="raise AITOEARN_DEADLINE or --deadline, or ask for a shorter reply (smaller max_tokens)",
            ) from None
        raise AssertionError("unreachable")

    def _delay(self, number: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after <= RETRY_AFTER_CAP:
            return retry_after
        # Exponential with "equal jitter": never zero, never in lockstep with other callers.
        base = min(self._backoff_base * 2**number, 8.0)
        return base / 2 + random.uniform(0, base / 2)


def _with_partial(cause: RelayError, accumulator: ReplyAccumulator) -> RelayError:
    """The failure as the caller gets it: with what arrived, when anything did. No frames stay
    attached (and no local of send_message holds it): a traceback would tie the reply into a
    reference cycle that only a full garbage collection frees, holding its memory until then."""
    cause.__traceback__ = cause.__context__ = None
    if not accumulator.started:
        return cause
    return IncompleteReplyError(cause, accumulator.message(partial=True), accumulator.text())


def _scrub(error: RelayError, key: SecretStr | None) -> RelayError:
    """Remove the key from relay-supplied text (a relay may echo what it was sent). The partial
    reply of an IncompleteReplyError comes from the accumulator, which hides the key itself."""
    if key is None:
        return error
    error.hide(key.get_secret_value())
    if isinstance(error, IncompleteReplyError):
        error.cause.hide(key.get_secret_value())
    return error


async def read_capped(response: httpx2.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _catalogue_entries(data: list[Any], key: SecretStr | None) -> list[dict[str, Any]]:
    """The entries a caller can use (a name to pass as ``model``), each field bounded and the
    key hidden: the catalogue is relay text shown whole in list_models."""
    entries = [
        bounded(entry, MAX_FIELD_CHARS)
        for entry in data
        if isinstance(entry, dict) and isinstance(name := entry.get("name"), str) and 0 < len(name) <= MAX_NAME_CHARS
    ]
    return redact(entries, key.get_secret_value()) if key is not None else entries


def _retry_cause(error: RelayError) -> str:
    """A short, bounded label: the HTTP status, or what kind of failure it was."""
    if error.status is not None and error.status != 200:
        return str(error.status)
    return "connection" if error.status is None and error.code is None else "relay_overloaded"


def _too_large(limit: int, request_id: str | None, *, streamed: bool) -> ReplyTooLargeError:
    done = "stopped reading it and closed the stream, so the relay stops generating" if streamed else "did not read it"
    return ReplyTooLargeError(
        f"The reply passed the server's limit of {limit:,} bytes (AITOEARN_MAX_REPLY_BYTES); the server {done}",
        fix="ask for a shorter reply (a smaller max_tokens, or the task in parts), or raise AITOEARN_MAX_REPLY_BYTES",
        request_id=request_id,
    )


async def _read_event_stream(
    response: httpx2.Response,
    accumulator: ReplyAccumulator,
    request_id: str | None,
    on_first_event: Callable[[], None] | None,
    max_bytes: int,
) -> None:
    # Kept by hand so it can be resumed (to drain the connection) and closed.
    events = cast(AsyncGenerator[Event, None], iter_events(response.aiter_bytes(), MAX_EVENT_BYTES))
    received = 0  # bytes of event data: what the reply would hold in memory
    try:
        async for name, data in events:
            if name == "ping" or not data:
                continue
            if data == b"[DONE]":  # the end of an OpenAI stream
                accumulator.done()
                break
            received += len(data)
            if received > max_bytes:  # what arrived so far is kept; this event and the rest are not
                raise _too_large(max_bytes, request_id, streamed=True)
            try:  # load_json inlined, on orjson: this loop runs once per delta
                if too_deep(data):
                    raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:  # bytes that are not UTF-8, NaN, huge numbers: as json reads them
                    event = json.loads(data.decode("utf-8", "replace"))
            except ValueError as exc:
                if name == "error":  # the relay's own mid-stream failure, in plain text
                    raise stream_error_text(data.decode("utf-8", "replace"), request_id) from None
                raise StreamFormatError(f"an event's data is not JSON ({exc}): {data[:80]!r}") from None
            if type(event) is not dict:
                raise StreamFormatError(f"an event's data is not a JSON object: {data[:80]!r}")
            kind = event.get("type")
            if kind is None and "choices" not in event and not is_gemini_response(event):
                # not an OpenAI chunk nor a Gemini response: the type is on the event: line
                kind = event["type"] = "error" if "error" in event else name
            if kind == "error":
                error = event.get("error")
                raise provider_error(error if isinstance(error, dict) else event, status=200, request_id=request_id)
            if on_first_event is not None:
                on_first_event()
                on_first_event = None
            try:
                if accumulator.feed(event):
                    break
            except RecursionError:  # a structure the fold cannot copy; the depth check should stop it first
                raise StreamFormatError("an event nests too deeply") from None
        if not accumulator.ended:
            raise UnavailableError(
                f"The stream ended before {accumulator.expected_end}",
                fix="send the request again; the text received before the failure is kept below",
                request_id=request_id,
            )
        # The reply is complete. Read the end of the body (normally already here) so the
        # connection goes back to the pool instead of costing a new TLS handshake next call;
        # a relay that holds the stream open is not waited for.
        with anyio.move_on_after(DRAIN_SECONDS):
            async for _ in events:
                pass
    finally:
        await events.aclose()


def _json_or_none(raw: bytes) -> Any:
    try:
        return load_json(raw)
    except ValueError:
        return None


def _connect_failure(exc: Exception, config: Config) -> RelayError:
    if isinstance(exc, httpx2.ConnectTimeout):
        return UnavailableError(
            f"Could not connect to {config.site} within {config.connect_timeout:g} s (connect timeout)",
            fix="check the network and AITOEARN_BASE_URL, or raise AITOEARN_CONNECT_TIMEOUT or --connect-timeout",
        )
    return UnavailableError(
        f"Could not connect to {config.site}",
        fix="check the network and AITOEARN_BASE_URL",
    )


def _read_timeout(config: Config, request_id: str | None) -> RelayError:
    return RelayTimeoutError(
        f"The relay sent nothing for {config.read_timeout:g} s (idle read timeout)",
        fix="raise AITOEARN_READ_TIMEOUT or --read-timeout, or try again",
        request_id=request_id,
    )


def _stream_failure(exc: Exception, config: Config, request_id: str | None) -> RelayError:
    if isinstance(exc, httpx2.TimeoutException):
        return _read_timeout(config, request_id)
    if isinstance(exc, EventTooLargeError):
        return RelayError(
            f"The relay sent an event over {MAX_EVENT_BYTES:,} bytes",
            request_id=request_id,
            fix="send the request again",
        )
    if isinstance(exc, StreamFormatError):
        return RelayError(
            f"The relay sent a malformed stream: {exc}", fix="send the request again", request_id=request_id
        )
    return UnavailableError(
        f"The connection dropped mid-reply ({type(exc).__name__})", fix="send the request again", request_id=request_id
    )
