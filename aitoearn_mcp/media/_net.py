"""Small HTTP helpers shared by the client, uploads and downloads.

Requests that leave the relay (the storage PUT, result downloads) must carry no credential:
``keyless`` removes every header that could hold one, including any default header the caller
configured on the shared ``httpx2.AsyncClient`` whose value contains the key.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx2
from pydantic import SecretStr

from .._errors import InputError

__all__ = ["CREDENTIAL_HEADERS", "is_loopback_http", "keyless", "require_safe_url"]

CREDENTIAL_HEADERS = ("x-api-key", "authorization", "proxy-authorization", "cookie", "x-goog-api-key")


def keyless(request: httpx2.Request, key: SecretStr | None) -> httpx2.Request:
    """``request`` without credential headers (in place, returned for chaining)."""
    secret = key.get_secret_value() if key is not None else ""
    for name in list(request.headers.keys()):
        if name.lower() in CREDENTIAL_HEADERS or (secret and secret in request.headers.get(name, "")):
            del request.headers[name]
    return request


def is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        return False
    if parts.hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def require_safe_url(url: str, what: str) -> str:
    """``url`` when it is https (or http to this machine's loopback, for local tests), else an
    InputError: files are never fetched or sent in clear over the network."""
    if not isinstance(url, str) or not url:
        raise InputError(f"{what}: no URL was given")
    parts = urlsplit(url)
    if (parts.scheme.lower() == "https" and parts.hostname) or is_loopback_http(url):
        return url
    shown = url if len(url) <= 100 else url[:100] + "…"
    raise InputError(f"{what}: {shown!r} is not an https URL; only https (or http on loopback) is used")
