"""Server-sent events read from the bytes of a response: the relay's streams, one event at a
time, with the event's data left as bytes for the JSON decoder.

The stream loop runs once per delta, so its parsing is this server's own cost on every token:
framing by blank lines on bytes (no per-line text decoding, no per-event objects) follows the
SSE specification as ``httpx2.EventSource`` does (CR, LF and CRLF line ends, comments, the
``event``/``data`` fields, multi-line data, a partial event at the end dropped) at a fraction of
its cost. ``id`` and ``retry`` are read past: nothing here reconnects.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["EventTooLargeError", "SSEDecoder", "iter_events"]

Event = tuple[str, bytes]  # (event name, data): "message" when the stream names none
_NAMES: dict[bytes, str] = {}  # the few event names a relay uses, decoded once


class EventTooLargeError(Exception):
    """One event (or the unterminated rest of the stream) is larger than the bound."""


class SSEDecoder:
    """Bytes in, complete events out. ``max_event_bytes`` bounds what is held for one event: the
    events before one over it are returned, and the next ``feed`` (or ``check``) raises."""

    __slots__ = ("_buffer", "_data", "_event", "_max", "_over", "_pending", "_trailing_cr")

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._buffer = b""
        self._trailing_cr = False
        self._event = b""  # the event being read, carried over when its block spans chunks
        self._data: list[bytes] = []
        self._pending = False
        self._over = False

    def check(self) -> None:
        if self._over:
            raise EventTooLargeError(f"an event passed {self._max:,} bytes")

    def feed(self, chunk: bytes) -> list[Event]:
        self.check()
        if self._trailing_cr:  # a CR that ended the last chunk: its LF may open this one
            chunk = b"\r" + chunk
            self._trailing_cr = False
        if chunk.endswith(b"\r"):
            self._trailing_cr = True
            chunk = chunk[:-1]
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + chunk if self._buffer else chunk
        end = buffer.rfind(b"\n")
        if end < 0:  # no whole line yet
            self._hold(buffer)
            return []
        self._hold(buffer[end + 1 :])
        return self._lines(buffer[:end].split(b"\n"))

    def _hold(self, rest: bytes) -> None:
        self._buffer = rest
        self._over = self._over or len(rest) > self._max

    def _lines(self, lines: list[bytes]) -> list[Event]:
        events: list[Event] = []
        event, data, pending = self._event, self._data, self._pending
        for line in lines:
            if not line:  # a blank line ends the event
                if pending:
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    if len(payload) + len(event) > self._max:
                        self._over = True
                        return events
                    events.append((_name(event), payload))
                    event, data, pending = b"", [], False
                continue
            if line[0] == 58:  # ":" a comment
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
                pending = True
            elif name == b"event":
                event = value
                pending = True
            elif name in (b"id", b"retry"):
                pending = pending or name == b"id" or value.isdigit()
        self._over = self._over or (pending and sum(map(len, data)) + len(event) > self._max)
        self._event, self._data, self._pending = event, data, pending
        return events


def _name(event: bytes) -> str:
    name = _NAMES.get(event)
    if name is None:
        name = event.decode("utf-8", "replace") if event else "message"
        if len(_NAMES) < 64 and len(event) <= 64:
            _NAMES[event] = name
    return name


async def iter_events(chunks: AsyncIterable[bytes], max_event_bytes: int) -> AsyncIterator[Event]:
    """The events of a byte stream; a partial event at its end is dropped, as a browser would."""
    decoder = SSEDecoder(max_event_bytes)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
        decoder.check()
