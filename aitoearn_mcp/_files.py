"""Files the server reads for the caller, so an agent can show a model a file without first
reading it into its own context.

Only files inside the allowed roots are read: the client's MCP roots when it offers them,
otherwise the server's working directory, plus AITOEARN_FILES_ROOTS. Paths are resolved
(``..`` and symlinks) before the check, and nothing outside is opened.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ._errors import InputError

__all__ = ["attach_files", "read_files", "roots_from_uris"]

_IMAGES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


def _refuse(message: str) -> InputError:
    return InputError(f"Invalid arguments for send_message: {message}. Nothing was sent.")


def roots_from_uris(uris: Iterable[str]) -> list[Path]:
    """The local directories among MCP roots (``file://`` URIs)."""
    roots = []
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme == "file":
            roots.append(Path(unquote(parts.path)))
    return roots


def _media_type(data: bytes) -> str | None:
    for magic, media_type in _IMAGES.items():
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _resolve(raw: str, roots: Sequence[Path], field: str) -> Path:
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    try:
        path = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise _refuse(f"`{field}` {raw!r} does not exist or cannot be resolved; fix: pass an existing file") from None
    resolved_roots = [root.resolve() for root in roots]
    if not any(path == root or path.is_relative_to(root) for root in resolved_roots):
        allowed = ", ".join(str(root) for root in resolved_roots)
        raise _refuse(
            f"`{field}` {raw!r} is outside the allowed roots ({allowed}); fix: pass a file inside them, or add its "
            "directory to the client's roots or to AITOEARN_FILES_ROOTS"
        )
    if not path.is_file():
        raise _refuse(f"`{field}` {raw!r} is not a regular file")
    return path


def read_files(paths: Sequence[str], roots: Sequence[Path], max_bytes: int) -> list[dict[str, Any]]:
    """Content blocks for ``paths``: text files as text blocks headed with their path, PNG, JPEG,
    GIF and WebP as image blocks, PDF as a document block. Everything is checked (roots, size,
    kind) before the first byte of any file is read."""
    resolved = [_resolve(raw, roots, f"files[{i}]") for i, raw in enumerate(paths)]
    sizes = [path.stat().st_size for path in resolved]
    if sum(sizes) > max_bytes:
        biggest = max(range(len(sizes)), key=sizes.__getitem__)
        raise _refuse(
            f"`files` add up to {sum(sizes):,} bytes, over the {max_bytes:,}-byte budget "
            f"(AITOEARN_FILES_MAX_BYTES; the largest is files[{biggest}], {sizes[biggest]:,} bytes); fix: send fewer "
            "or smaller files, or the relevant part as text in `messages`"
        )
    blocks: list[dict[str, Any]] = []
    for i, (raw, path) in enumerate(zip(paths, resolved, strict=True)):
        data = path.read_bytes()
        media_type = _media_type(data)
        encoded = base64.b64encode(data).decode() if media_type else ""
        if media_type == "application/pdf":
            source = {"type": "base64", "media_type": media_type, "data": encoded}
            blocks.append({"type": "document", "title": path.name, "source": source})
        elif media_type:
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}})
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None or "\x00" in text:
                raise _refuse(
                    f"`files[{i}]` {raw!r} is neither text (UTF-8) nor a PNG, JPEG, GIF, WebP image or a PDF; fix: "
                    "send a supported file, or describe its content in `messages`"
                )
            blocks.append({"type": "text", "text": f"File: {path}\n\n{text}"})
    return blocks


def attach_files(messages: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with ``blocks`` put before the content of the last user turn (documents
    before the question, as models read best)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        return [*messages, {"role": "user", "content": blocks}]
    turn = messages[last]
    content = turn["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}] if content else []
    return [*messages[:last], {**turn, "content": [*blocks, *content]}, *messages[last + 1 :]]
