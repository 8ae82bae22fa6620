"""The stream loop's SSE decoder reads every stream as httpx2.EventSource does, however the bytes
are cut into chunks, and bounds what one event may hold."""

from __future__ import annotations

import pytest
from httpx2._sse import _SSEParser  # pyright: ignore[reportPrivateUsage]
from hypothesis import given
from hypothesis import strategies as st

from aitoearn_mcp.relay._sse import EventTooLargeError, SSEDecoder

NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])
VALUE = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"), max_size=20)
LINE = st.one_of(
    st.tuples(st.sampled_from(["data", "event", "id"]), st.sampled_from([":", ": ", ":  "]), VALUE).map("".join),
    st.tuples(st.just("retry: "), st.integers(0, 9999).map(str)).map("".join),
    st.sampled_from(["data", ": a comment", ":", "unknown: field", "data:", ""]),
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(LINE, max_size=30))
    ends = draw(st.lists(NEWLINES, min_size=len(lines), max_size=len(lines)))
    return "".join(line + end for line, end in zip(lines, ends, strict=True)).encode()


def reference(stream: bytes) -> list[tuple[str, str]]:
    parser = _SSEParser()
    events = [*parser.decode(stream.decode()), *parser.flush()]
    return [(e.event, e.data) for e in events]


def ours(stream: bytes, cuts: list[int]) -> list[tuple[str, str]]:
    decoder = SSEDecoder(1 << 20)
    found = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        found += decoder.feed(stream[start:cut])
        start = cut
    return [(name, data.decode()) for name, data in found]


@given(streams(), st.lists(st.integers(0, 400), max_size=12))
def test_any_stream_in_any_chunks_reads_as_httpx2_reads_it(stream: bytes, cuts: list[int]) -> None:
    cuts = [min(c, len(stream)) for c in cuts]
    if stream.endswith(b"\r"):  # httpx2 dispatches an unfinished event there (see the next test): add the blank line
        stream += b"\n"
    assert ours(stream, cuts) == reference(stream)


def test_a_stream_ending_in_a_bare_cr_mid_event_dispatches_nothing() -> None:
    """The specification drops an event the stream ends before its blank line; httpx2 dispatches one
    whose last line ends in a bare CR at the end of the stream (its flush turns that CR into a line
    and a blank one). The decoder follows the specification."""
    assert ours(b"data: cut\r", []) == []
    assert reference(b"data: cut\r") == [("message", "cut")]


def test_a_relay_stream_byte_by_byte() -> None:
    stream = (
        b'event: message_start\r\ndata: {"a":1}\r\n\r\n: keep-alive\n\nevent: ping\ndata: {}\n\n'
        b"data: line one\ndata: line two\n\n" + "data: 第0行\n\n".encode() + b"data: [DONE]\n\n"
    )
    assert (
        ours(stream, list(range(len(stream))))
        == reference(stream)
        == [
            ("message_start", '{"a":1}'),
            ("ping", "{}"),
            ("message", "line one\nline two"),
            ("message", "第0行"),
            ("message", "[DONE]"),
        ]
    )


def test_an_unfinished_event_at_the_end_is_not_an_event() -> None:
    assert ours(b"data: whole\n\ndata: cut off", []) == [("message", "whole")]


@pytest.mark.parametrize(
    "stream",
    [
        b"data: " + b"x" * 200,
        b"data: " + b"x" * 100 + b"\ndata: " + b"y" * 100 + b"\n",
        b"data: " + b"x" * 200 + b"\n\n",
    ],
)
def test_an_event_over_the_bound_is_refused_after_the_events_before_it(stream: bytes) -> None:
    decoder = SSEDecoder(150)
    assert decoder.feed(b"data: first\n\n" + stream) == [("message", b"first")]
    with pytest.raises(EventTooLargeError):
        decoder.check()
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"\n\n")
