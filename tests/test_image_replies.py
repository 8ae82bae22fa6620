"""Image-output chat models: send_message returns each image of the reply as image content the
host shows (a preview within 1,568 px, 1.15 MP and 1 MB), saved whole to the user's cache folder, named
by path (and link) in both parts; the structured content and the store hold no image data.
Through ``mcp.Client`` in-process and over stdio, against the fake relay's three routes."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent, TextContent

from aitoearn_mcp._paths import cache_dir

from . import sse
from .conftest import KEY, make_server
from .fake_relay import GEMINI_STREAM, IMAGE_CATALOGUE, FakeRelay, Reply
from .test_progress_cancel import stdio

pytestmark = pytest.mark.anyio

MODEL = "gemini-3.1-flash-image-preview"
GEMINI = GEMINI_STREAM.format(model=MODEL)
DRAW = {"model": MODEL, "messages": [{"role": "user", "content": "画一只猫。"}]}
TEXT = "这是你的猫：一只橘猫 🐱。"


def png(width: int = 2400, height: int = 1500) -> bytes:
    """A noisy PNG (so its preview cannot stay a large PNG): bigger than any host shows whole."""
    from PIL import Image

    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def serve_images(relay: FakeRelay) -> None:
    relay.route("/api/ai/models/chat", lambda _: Reply.json(200, {"data": IMAGE_CATALOGUE, "code": 0,
                                                                  "message": "请求成功"}))  # fmt: skip


def images_folder() -> Path:
    return cache_dir() / "images"


def texts(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def shown(result: CallToolResult) -> list[ImageContent]:
    return [c for c in result.content if isinstance(c, ImageContent)]


def check_preview(block: ImageContent) -> tuple[int, int]:
    from PIL import Image

    data = base64.b64decode(block.data)
    assert len(data) <= 1_000_000
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert max(image.size) <= 1568 and image.width * image.height <= 1_150_000
        assert Image.MIME[image.format or ""] == block.mime_type
        return image.size


def saved(structured: dict[str, Any]) -> list[dict[str, Any]]:
    return [b["source"] for b in structured["content"] if b["type"] == "image"]


async def call(relay: FakeRelay, arguments: dict[str, Any], **settings: Any) -> CallToolResult:
    async with Client(make_server(relay, **settings)) as client:
        return await client.call_tool("send_message", arguments)


async def test_a_gemini_image_reply_is_shown_saved_and_named(relay: FakeRelay) -> None:
    serve_images(relay)
    image = png()
    events = sse.gemini_image_reply(
        ["这是你的猫：", "一只橘猫 🐱。"], [("image/png", base64.b64encode(image).decode())]
    )
    relay.enqueue(GEMINI, Reply.gemini(events, chunk=7777))
    result = await call(relay, DRAW)

    assert not result.is_error
    [request] = relay.requests_to(GEMINI)
    assert request.path == GEMINI + "?alt=sse"
    assert request.headers["x-goog-api-key"] == KEY  # the Gemini route's header, and only it
    assert "x-api-key" not in request.headers and "authorization" not in request.headers
    body = request.json()
    assert body["contents"] == [{"role": "user", "parts": [{"text": "画一只猫。"}]}]
    assert body["config"]["responseModalities"] == ["TEXT", "IMAGE"]

    [preview] = shown(result)
    assert check_preview(preview) == (1355, 847)  # downscaled within 1.15 MP, aspect kept
    structured = result.structured_content
    assert structured is not None and structured["route"] == "gemini"
    [reference] = saved(structured)
    path = Path(reference["path"])
    assert path.parent == images_folder() and path.suffix == ".png"
    assert path.read_bytes() == image  # byte for byte what the relay sent
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert reference == {"type": "saved", "path": str(path), "media_type": "image/png", "width": 2400,
                         "height": 1500, "bytes": len(image)}  # fmt: skip
    assert structured["content"][0] == {"type": "text", "text": TEXT}  # the text exact, Chinese and emoji too
    assert result.content[0] == TextContent(type="text", text=TEXT)
    for part in (texts(result), json.dumps(structured["notes"], ensure_ascii=False)):
        assert str(path) in part and "2400×1500" in part  # named in both parts
    assert len(json.dumps(structured)) < 5000  # no image data in the structured content
    assert structured["usage"]["output_tokens_by_modality"] == {"image": 1290}


async def test_the_conversation_keeps_the_path_not_the_image(relay: FakeRelay) -> None:
    serve_images(relay)
    relay.enqueue(GEMINI, Reply.gemini(sse.gemini_image_reply(["看："], [("image/png", base64.b64encode(png(300, 200))
                                                                          .decode())])))  # fmt: skip
    async with Client(make_server(relay)) as client:
        first = await client.call_tool("send_message", DRAW)
        assert first.structured_content is not None
        conversation = first.structured_content["conversation_id"]
        second = await client.call_tool("send_message", {"model": MODEL, "conversation_id": conversation,
                                                         "messages": [{"role": "user", "content": "再画一只。"}]})  # fmt: skip
    assert not second.is_error
    path = saved(first.structured_content)[0]["path"]
    body = relay.requests_to(GEMINI)[1].json()
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "看："},
            {"text": f"[Image saved to {path} (image/png, 300×200, {Path(path).stat().st_size:,} bytes)]"},
        ],
    }
    assert len(relay.requests_to(GEMINI)[1].body) < 2000  # no base64 replayed from the store


async def test_an_undecodable_inline_image_gives_a_note_and_no_file(relay: FakeRelay) -> None:
    serve_images(relay)
    before = set(images_folder().glob("*")) if images_folder().exists() else set()
    garbage = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 100).decode()
    relay.enqueue(GEMINI, Reply.gemini(sse.gemini_image_reply([TEXT], [("image/png", garbage), ("image/png", "%%%")])))
    result = await call(relay, DRAW)
    assert not result.is_error and not shown(result)
    structured = result.structured_content
    assert structured is not None
    assert [s["type"] for s in saved(structured)] == ["unsaved", "unsaved"]
    for part in (texts(result), " ".join(structured["notes"])):
        assert "Image 1 was not saved: the data is not an image Pillow can read" in part
        assert "Image 2 was not saved: its data is not valid base64" in part
    assert result.content[0] == TextContent(type="text", text=TEXT)
    assert set(images_folder().glob("*")) == before  # nothing written, no temporary file left


async def test_a_linked_file_that_is_no_image_or_is_cut_short_gives_a_note_and_no_file(relay: FakeRelay) -> None:
    """Links are decoded as they arrive: a page served as a PNG is refused once it has come (no
    file kept), and a transfer that breaks off is named as that, not as a damaged image."""
    serve_images(relay)
    before = set(images_folder().glob("*")) if images_folder().exists() else set()
    whole = png(800, 600)
    relay.route("/hosted/page.png", lambda _: Reply(headers={"content-type": "image/png"},
                                                    chunks=[b"<html>" + b"no image here " * 5000 + b"</html>"]))  # fmt: skip
    relay.route("/hosted/cut.png", lambda _: Reply(headers={"content-type": "image/png",
                                                            "content-length": str(len(whole))},
                                                   chunks=[whole[: len(whole) // 2]]))  # fmt: skip
    text = f"![a]({relay.url}/hosted/page.png) ![b]({relay.url}/hosted/cut.png)"
    chunks = [sse.chunk({"role": "assistant", "content": text}, model=MODEL), sse.chunk({}, "stop", model=MODEL),
              sse.chunk(model=MODEL, usage=sse.USAGE, choices=False)]  # fmt: skip
    relay.enqueue("/api/ai/chat/completions", Reply.chat(chunks))
    result = await call(relay, DRAW, route="chat-completions")
    assert not result.is_error and not shown(result)
    assert "page.png was not saved: the data is not an image Pillow can read" in texts(result)
    assert "cut.png was not saved: Could not download the file: the transfer was cut short" in texts(result)
    assert set(images_folder().glob("*")) == before  # nothing written, no temporary file left


async def test_an_image_over_the_reply_limit_is_a_clear_error_and_nothing_is_saved(relay: FakeRelay) -> None:
    serve_images(relay)
    before = set(images_folder().glob("*")) if images_folder().exists() else set()
    huge = base64.b64encode(os.urandom(300_000)).decode()
    relay.enqueue(GEMINI, Reply.gemini(sse.gemini_image_reply(["开始"], [("image/png", huge)])))
    result = await call(relay, DRAW, max_reply_bytes=100_000)
    assert result.is_error
    assert "passed the server's limit of 100,000 bytes" in texts(result) and "AITOEARN_MAX_REPLY_BYTES" in texts(result)
    assert set(images_folder().glob("*")) == before


async def test_anthropic_image_blocks_are_shown_and_saved(relay: FakeRelay) -> None:
    image = png(800, 600)
    start = {"type": "content_block_start", "index": 1, "content_block": {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": base64.b64encode(image).decode()}}}  # fmt: skip
    events = [sse.message_start(), *sse.text_block(0, ["Here:"]), start, {"type": "content_block_stop", "index": 1},
              *sse.message_end()]  # fmt: skip
    relay.enqueue("/api/ai/v1/messages", Reply.sse(events))
    result = await call(relay, {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "Draw."}]})
    [preview] = shown(result)
    assert check_preview(preview) == (800, 600)
    assert result.structured_content is not None
    [reference] = saved(result.structured_content)
    assert Path(reference["path"]).read_bytes() == image


async def test_openai_images_and_a_linked_image_are_saved_without_the_key(relay: FakeRelay) -> None:
    """On the OpenAI route (forced): ``message.images`` as a data URL, and a markdown link to a
    hosted image in the text of an image-output model, fetched without any credential."""
    serve_images(relay)
    inline, hosted = png(640, 480), png(1000, 1000)
    relay.route("/hosted/cat.png", lambda _: Reply(headers={"content-type": "image/png"}, chunks=[hosted]))
    link = f"{relay.url}/hosted/cat.png"
    text = f"两张图：![猫]({link})"
    data_url = "data:image/png;base64," + base64.b64encode(inline).decode()
    chunks = [sse.chunk({"role": "assistant", "content": text}, model=MODEL),
              sse.chunk({"images": [{"type": "image_url", "image_url": {"url": data_url}}]}, model=MODEL),
              sse.chunk({}, "stop", model=MODEL), sse.chunk(model=MODEL, usage=sse.USAGE, choices=False)]  # fmt: skip
    relay.enqueue("/api/ai/chat/completions", Reply.chat(chunks))
    result = await call(relay, DRAW, route="chat-completions")

    assert not result.is_error and result.content[0] == TextContent(type="text", text=text)
    assert [check_preview(p) for p in shown(result)] == [(640, 480), (1000, 1000)]
    assert result.structured_content is not None
    first, second = saved(result.structured_content)
    assert Path(first["path"]).read_bytes() == inline and Path(second["path"]).read_bytes() == hosted
    assert second["url"] == link and f"its link: {link}" in texts(result)
    [fetch] = relay.requests_to("/hosted/cat.png")
    assert not {"x-api-key", "authorization", "x-goog-api-key", "cookie"} & set(fetch.headers)
    assert all(KEY not in value for value in fetch.headers.values())


async def test_a_text_only_model_is_unchanged(relay: FakeRelay) -> None:
    serve_images(relay)
    result = await call(relay, {"model": "gemini-3.1-pro-preview", "messages": [{"role": "user", "content": "Hi"}]})
    assert not shown(result) and not relay.requests_to(GEMINI)
    assert result.structured_content is not None and result.structured_content["route"] == "chat-completions"


async def test_over_stdio_the_image_arrives_as_image_content(relay: FakeRelay) -> None:
    serve_images(relay)
    image = png(1600, 1600)
    relay.enqueue(GEMINI, Reply.gemini(sse.gemini_image_reply([TEXT], [("image/png", base64.b64encode(image)
                                                                         .decode())])))  # fmt: skip
    async with Client(stdio(relay, HOME=os.environ["HOME"])) as client:
        result = await client.call_tool("send_message", DRAW)
    [preview] = shown(result)
    assert check_preview(preview) == (1072, 1072)
    assert result.structured_content is not None
    [reference] = saved(result.structured_content)
    assert Path(reference["path"]).read_bytes() == image and reference["path"] in texts(result)
    assert result.content[0] == TextContent(type="text", text=TEXT)
