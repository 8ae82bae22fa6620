"""JSON written by orjson where its text reads back exactly as the standard library's would.

A fifty-turn conversation is read, sent and stored again on every call that continues it: the
standard library spends about 1.5 ms on its JSON, orjson a tenth of that. orjson differs in
three ways, each kept from the caller here: it writes NaN and infinity as ``null`` (json writes
them, or refuses them), it refuses integers past 64 bits and lone surrogates (json writes them),
and it reads an integer past 64 bits as a float. So text is written by orjson only when nothing
of the first two is in the value, and read by orjson only when orjson wrote it.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

__all__ = ["exact_dumps"]


def exact_dumps(value: Any) -> bytes | None:
    """orjson's compact UTF-8 text of ``value``, or None when it would not be what json writes
    (a non-finite float, an integer past 64 bits, a lone surrogate, a key that is not a string,
    nesting past orjson's limit): the caller writes it with json instead. Reading orjson's text
    back with orjson gives ``value`` again."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return None
    # A non-finite float comes out as null: only text with a null needs looking at (rare in a body).
    if b"null" in encoded and not _finite(value):
        return None
    # A copy: orjson's bytes keep the 4 KiB it started writing into (a request body held while
    # its call runs cost 3.7 KiB more per running call); the copy holds only the text.
    return bytes(memoryview(encoded))


def _finite(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif isinstance(node, float) and not math.isfinite(node):
            return False
    return True
