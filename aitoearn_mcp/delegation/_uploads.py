"""Local references of a media job: opened and checked by the tool, uploaded by the job.

A checked request names each local file by a placeholder URL until its upload gives the real
one; ``uploaded_body`` does the uploads and puts the URLs in. Shared by images and videos.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import InputError
from ..media._client import MediaClient

__all__ = ["ALIVE_EVERY", "LEASE", "Upload", "uploaded_body"]

ALIVE_EVERY = 10.0  # seconds between marks that this process still looks after a media job
LEASE = 30.0  # a running media job whose mark is older than this is looked after by no one: take it over


@dataclass(frozen=True)
class Upload:
    """A local reference, opened and checked by the caller: ``placeholder`` stands for it in the
    checked request until the upload gives its URL. The job closes ``fd``."""

    placeholder: str
    fd: int
    name: str
    size: int  # as checked when it was opened


async def uploaded_body(
    media: MediaClient, uploads: list[Upload], body: dict[str, Any], *, asset_type: str, tool: str,
    on_each: Callable[[], None],
) -> dict[str, Any]:  # fmt: skip
    """``body`` with each local file's placeholder replaced by the URL its upload gave."""
    urls: dict[str, str] = {}
    for upload in uploads:
        if os.fstat(upload.fd).st_size != upload.size:  # the bound was checked on that size
            raise InputError(f"{upload.name!r} changed after it was checked ({upload.size:,} bytes then); "
                             f"fix: call {tool} again once nothing is writing to it")  # fmt: skip
        asset = await media.upload(upload.fd, upload.name, asset_type=asset_type)
        urls[upload.placeholder] = asset.url
        on_each()
    return {name: [urls.get(v, v) for v in value] if isinstance(value, list) else urls.get(value, value)
            for name, value in body.items()}  # fmt: skip
