"""Text from outside the server (the relay, callers) made safe to parse, show and log.

The relay is treated as hostile: its JSON may be nested past what Python and the SDK can
handle, its names and messages may be huge or carry line breaks, and it may echo the key.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_NAME_CHARS",
    "MIN_SECRET_CHARS",
    "bounded",
    "hide_secret",
    "load_json",
    "one_line",
    "redact",
    "too_deep",
]

# JSON from the relay may nest this deep. The SDK cannot serialise a result nested past ~250
# levels, and json.loads raises RecursionError near 1,000: far below both, far above any reply.
MAX_JSON_DEPTH = 64
MAX_NAME_CHARS = 200  # a model name, id, stop reason or request id echoed by the relay
MAX_LOG_CHARS = 2000  # one log line
# A shorter "key" is no real key, and hiding it would garble ordinary words of a reply.
MIN_SECRET_CHARS = 8
MAX_PREFIX_SCAN = 4000  # texts up to this long are searched for a cut key's beginning too

# Line breaks and other control characters (C0, DEL, C1, Unicode line/paragraph separators),
# and the bidirectional overrides that reorder how a terminal shows a line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_BRACKET = re.compile(r"[\[\]{}]")
_BYTES_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_BYTES_BRACKET = re.compile(rb"[\[\]{}]")


def one_line(text: str, limit: int) -> str:
    """``text`` as one printable line of at most about ``limit`` characters: control
    characters escaped (``\\n``, ``\\x1b``), the rest cut with a count of what was left out."""
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text) - limit:,} more characters]"
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def too_deep(data: str | bytes) -> bool:
    """Whether JSON text nests past MAX_JSON_DEPTH (cheap: most texts are too short or have too
    few brackets). JSON nesting past it opens and closes that many brackets; shorter text that
    is not JSON fails to parse within twice the depth, far from the recursion limit."""
    if len(data) <= 2 * MAX_JSON_DEPTH:
        return False
    if isinstance(data, bytes):
        if data.count(b"{") + data.count(b"[") <= MAX_JSON_DEPTH:
            return False
        brackets = _BYTES_BRACKET.finditer(_BYTES_STRING.sub(b"", data))
        opening = (b"[", b"{")
    else:
        if data.count("{") + data.count("[") <= MAX_JSON_DEPTH:
            return False
        brackets = _BRACKET.finditer(_STRING.sub("", data))
        opening = ("[", "{")
    depth = 0
    for bracket in brackets:
        depth += 1 if bracket.group() in opening else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def load_json(data: str | bytes) -> Any:
    """``json.loads`` for relay-supplied text; ValueError also when it nests past MAX_JSON_DEPTH."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if too_deep(text):
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text)
    except RecursionError:  # not reached with the depth check; kept as the last line of defence
        raise ValueError("JSON nested too deeply") from None


def bounded(value: Any, limit: int) -> Any:
    """``value`` with every string longer than ``limit`` cut, at any depth (for relay-echoed
    metadata: names, ids, fields we do not know)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, Mapping):
        return {bounded(k, limit): bounded(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [bounded(item, limit) for item in value]
    return value


def hide_secret(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced by ``[key]``. A short text (a name, an id, a message:
    what a length limit may have cut inside the key) loses any beginning of the secret too."""
    if len(secret) < MIN_SECRET_CHARS:
        return text
    if secret in text:
        text = text.replace(secret, "[key]")
    # Every longer beginning holds the shortest: one search settles the usual text without it.
    if len(text) <= MAX_PREFIX_SCAN and secret[:MIN_SECRET_CHARS] in text:
        for size in range(len(secret) - 1, MIN_SECRET_CHARS - 1, -1):
            if secret[:size] in text:
                text = text.replace(secret[:size], "[key]")
    return text


def redact(value: Any, secret: str) -> Any:
    """``value`` with ``secret`` hidden (see hide_secret) in every string, at any depth. Long
    strings without it are returned as they are (no copy of a long reply)."""
    if len(secret) < MIN_SECRET_CHARS:
        return value
    if isinstance(value, str):
        return hide_secret(value, secret)
    if isinstance(value, Mapping):
        return {redact(k, secret): redact(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item, secret) for item in value]
    return value


class _OneLineRecords(logging.Filter):
    """Every record of the package logger becomes one bounded, escaped line, whatever outside
    text (a model name, a relay message) its arguments carry: no forged log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: logging reports it
            return True
        record.msg, record.args = one_line(message, MAX_LOG_CHARS), ()
        return True


# Installed on import: every module that logs imports the relay client, which imports this.
logging.getLogger("aitoearn_mcp").addFilter(_OneLineRecords())
