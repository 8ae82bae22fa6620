"""What an AiToEarn key may contain: visible ASCII only, as every HTTP header value.

A key with a line break, a space or a non-ASCII byte (a bad paste, a file saved with CRLF)
cannot go into the relay's ``x-api-key`` header; it is refused where it comes in, naming the
setting or header it came from, never echoing the key. Callers are told apart by the key's
digest (``key_digest``), never by the key itself.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = ["key_digest", "key_problem"]

_FIX = "copy the key again from Settings → API Key on the AiToEarn site"


def key_problem(key: str, source: str) -> str | None:
    """Why ``key`` (from ``source``, e.g. ``AITOEARN_API_KEY``) is not a usable key, or None."""
    if all("!" <= char <= "~" for char in key):
        return None
    if any(char in "\r\n" for char in key):
        what = "a line break (CR or LF)"
    elif any(not char.isascii() for char in key):
        what = "non-ASCII characters"
    else:
        what = "spaces or control characters"
    return f"{source} contains {what}, which no AiToEarn key has; fix: {_FIX}"


def key_digest(key: SecretStr) -> str:
    """The key's SHA-256, hex: the same for one caller's every request, and not the key."""
    return hashlib.sha256(key.get_secret_value().encode()).hexdigest()
