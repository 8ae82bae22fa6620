"""A stdio MCP server for the host tests only: tools whose results carry an image content block.

``python tests/hosts/image_server.py``. Independent of ``aitoearn_mcp`` (only the MCP SDK). Its
tools, each answering a text block, then an image block, then (``render`` only) structured content:

- ``render``: a 64×48 PNG of one colour, ``RGB``, about 100 bytes;
- ``render(big=true)``: a 500×448 PNG of seeded noise, 896,756 base64 characters (under 1 MB);
- ``render_unstructured``: the same as ``render``, without ``outputSchema`` or structured content.

The PNGs are the same bytes in every run (``png()``), so a test can compare what reached the
model with what the server sent. The text names the saved path and the URL as ``PATH`` and
``URL`` lines; the structured content has ``path``, ``url``, ``width`` and ``height``.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import BaseModel

RGB = (0xD0, 0x30, 0x80)  # a magenta no host would draw by itself
SMALL = (64, 48)
BIG = (500, 448)  # 500 × 448 × 3 bytes of noise: 672,566 bytes of PNG, 896,756 base64 characters


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, *, noise: bool) -> bytes:
    """An 8-bit RGB PNG: one colour (``RGB``), or noise from a fixed seed (it does not compress)."""
    if noise:
        rows = random.Random(20261125).randbytes(width * height * 3)
        raw = b"".join(b"\0" + rows[y * width * 3 : (y + 1) * width * 3] for y in range(height))
    else:
        raw = (b"\0" + bytes(RGB) * width) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    level = 0 if noise else 9  # noise: stored, so the size is known in advance
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, level))
        + _chunk(b"IEND", b"")
    )


def image(big: bool) -> tuple[bytes, int, int]:
    width, height = BIG if big else SMALL
    return png(width, height, noise=big), width, height


def where(big: bool, structured: bool) -> tuple[str, str]:
    """The saved path and the URL a result names (each case its own, so a test can tell them apart)."""
    name = f"render-{'big' if big else 'small'}-{'s' if structured else 'u'}"
    return f"/tmp/aitoearn-images/{name}.png", f"https://cdn.example.com/images/{name}.png"


def text(path: str, url: str, width: int, height: int) -> str:
    return f"Rendered a {width}x{height} PNG.\nPATH {path}\nURL {url}"


class Rendered(BaseModel):
    path: str
    url: str
    width: int
    height: int


server = MCPServer("aitoearn-images")


def _result(big: bool, structured: bool) -> CallToolResult:
    data, width, height = image(big)
    path, url = where(big, structured)
    content = [
        TextContent(type="text", text=text(path, url, width, height)),
        ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type="image/png"),
    ]
    if not structured:
        return CallToolResult(content=content)
    rendered = Rendered(path=path, url=url, width=width, height=height)
    return CallToolResult(content=content, structured_content=rendered.model_dump())


@server.tool()
def render(big: bool = False) -> Annotated[CallToolResult, Rendered]:
    """Render a test image: a text block with its path and URL, the PNG, and structured content."""
    return _result(big, structured=True)


@server.tool()
def render_unstructured(big: bool = False) -> CallToolResult:
    """Render a test image: a text block with its path and URL and the PNG; no structured content."""
    return _result(big, structured=False)


if __name__ == "__main__":
    server.run("stdio")
