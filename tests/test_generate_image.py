"""generate_image and list_models kind image/video through real MCP clients (in-process, stdio,
HTTP) against the fake media relay, which also passes the chat routes on to the fake chat relay
(one base URL, as the real site)."""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ElicitResult, ListRootsResult, Root
from pydantic import SecretStr

from aitoearn_mcp import Config, create_server

from .conftest import KEY, HttpServer, http_client
from .fake_relay import FakeRelay
from .media.fake_media import Answer, FakeMedia, big_png, envelope, small_png
from .test_progress_cancel import SCRIPT

pytestmark = pytest.mark.anyio

PAID = ("/api/ai/image/", "/api/assets/", "/storage/")


@pytest.fixture
def media(relay: FakeRelay) -> Iterator[FakeMedia]:
    fake = FakeMedia().start()
    fake.key, fake.forward = KEY, relay.url
    yield fake
    fake.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "photo.png").write_bytes(small_png() + b"")
    return folder


def server(media: FakeMedia, **settings: Any) -> Any:
    return create_server(Config(base_url=media.url, api_key=SecretStr(KEY), **settings))


def roots(*folders: Path) -> Any:
    async def list_roots(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=f.as_uri(), name=f.name) for f in folders])  # type: ignore[arg-type]

    return list_roots


def answering(action: str, spend: bool = True) -> tuple[Any, list[str]]:
    asked: list[str] = []

    async def elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=action, content={"spend": spend} if action == "accept" else None)  # type: ignore[arg-type]

    return elicit, asked


def paid(media: FakeMedia) -> list[str]:
    return [r.path for r in media.requests if r.path.startswith(PAID)]


def done(*images: dict[str, Any]) -> Answer:
    """The image task's answer when it is done, with ``images``."""
    return Answer.json(envelope({"logId": "log-1", "status": "success", "points": 1, "images": list(images)}))


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def images_of(result: Any) -> list[Any]:
    from PIL import Image

    shown = []
    for block in result.content:
        if block.type == "image":
            data = base64.b64decode(block.data)
            assert len(data) <= 1_000_000
            picture = Image.open(io.BytesIO(data))
            picture.load()
            assert max(picture.size) <= 1568 and picture.width * picture.height <= 1_150_000
            shown.append(picture)
    return shown


# --- generating ---------------------------------------------------------------------------------


async def test_a_4k_image_is_saved_whole_shown_small_and_named_in_both_parts(media: FakeMedia, root: Path) -> None:
    async with Client(server(media), list_roots_callback=roots(root), mode="legacy") as client:
        result = await client.call_tool("generate_image", {"prompt": "a gradient", "size": "3840x2160",
                                                            "quality": "HIGH"})  # fmt: skip
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    assert structured is not None and next(iter(structured)) == "status" and structured["status"] == "complete"
    image = structured["images"][0]
    path = Path(image["path"])
    assert path.parent == root and path.read_bytes() == big_png()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert (image["width"], image["height"]) == (3840, 2160) and image["url"].endswith("/files/image.png")
    assert structured["credits"] == {"price": "4", "points": "1"}  # the catalogue's, and what the relay reported
    assert str(path) in text_of(result) and image["url"] in text_of(result) and "4 credits" in text_of(result)
    assert len(images_of(result)) == 1
    sent = media.to("/api/ai/image/generate/async")[0].json()
    assert sent == {"model": "gpt-image-2", "prompt": "a gradient", "response_format": "url", "size": "3840x2160",
                    "quality": "high"}  # fmt: skip
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary file left


async def test_b64_json_answers_are_saved_byte_for_byte(media: FakeMedia, root: Path) -> None:
    item = {"b64_json": base64.b64encode(small_png()).decode(), "revised_prompt": "a red square, translucent"}
    media.enqueue("/api/ai/image/task/log-1", done(item, item))
    async with Client(server(media), list_roots_callback=roots(root), mode="legacy") as client:
        result = await client.call_tool("generate_image", {"prompt": "red", "size": "1024x1024"})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    saved = [Path(i["path"]) for i in result.structured_content["images"]]
    assert len(set(saved)) == 2 and all(p.read_bytes() == small_png() for p in saved)  # never overwritten
    assert len(images_of(result)) == 2
    assert "a red square, translucent" in text_of(result)
    assert "2 credits in all" in text_of(result)


async def test_a_local_reference_is_uploaded_byte_for_byte_without_the_key(media: FakeMedia, root: Path) -> None:
    reference = root / "photo.png"
    async with Client(server(media), list_roots_callback=roots(root), mode="legacy") as client:
        result = await client.call_tool("generate_image", {"prompt": "make it blue", "images": [str(reference),
                                        "https://cdn.example.com/other.png"], "size": "1024x1024"})  # fmt: skip
    assert not result.is_error, text_of(result)
    (asset_id,) = media.stored
    assert media.stored[asset_id] == reference.read_bytes()
    headers = media.storage_headers[asset_id]
    assert "x-api-key" not in headers and not any(KEY in v for v in headers.values())
    body = media.to("/api/ai/image/edit/async")[0].json()
    assert body["image"] == [f"{media.url}/files/asset-{asset_id}", "https://cdn.example.com/other.png"]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"size": "1000x1000"}, "1024x1024"),
        ({"size": "1024x1024", "quality": "ultra"}, "auto, high, medium, low"),
        ({"size": "1024x1024", "style": "vivid"}, "omit it"),
        ({"model": "dall-e-3"}, "gpt-image-2"),
        ({"prompt": "x" * 4001}, "4000"),
        ({"mask": "https://cdn.example.com/m.png"}, "`images`"),
    ],
)
async def test_invalid_choices_are_refused_naming_valid_values_before_any_request(
    media: FakeMedia, root: Path, arguments: dict[str, Any], named: str
) -> None:
    async with Client(server(media), list_roots_callback=roots(root), mode="legacy") as client:
        result = await client.call_tool("generate_image", {"prompt": "a cat", **arguments})
    assert result.is_error and named in text_of(result)
    assert result.structured_content is not None and result.structured_content["status"] == "failed"
    assert named in result.structured_content["error"]
    assert paid(media) == []


async def test_references_outside_the_roots_symlinks_and_fifos_are_refused_before_any_request(
    media: FakeMedia, root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(small_png())
    (root / "link.png").symlink_to(secret)
    os.mkfifo(root / "pipe.png")
    async with Client(server(media), list_roots_callback=roots(root), mode="legacy") as client:
        for path, words in ((secret, "outside the allowed roots"), (root / "link.png", "outside the allowed roots"),
                            (root / "pipe.png", "named pipe"), (root / "nothing.png", "does not exist")):  # fmt: skip
            result = await client.call_tool("generate_image", {"prompt": "edit", "images": [str(path)]})
            assert result.is_error and words in text_of(result), text_of(result)
            assert result.structured_content is not None and result.structured_content["status"] == "failed"
        outside = await client.call_tool("generate_image", {"prompt": "x", "save_to": str(tmp_path)})
        assert outside.is_error and "save_to" in text_of(outside)
    assert paid(media) == []


# --- failures after the relay answered ------------------------------------------------------------


@pytest.mark.parametrize(
    ("served", "words"),
    [
        ("missing.png", "HTTP 404"),
        ("truncated.bin", "cut short"),
        ("junk", "does not decode"),
    ],
)
async def test_a_link_that_does_not_give_an_image_leaves_nothing_and_says_so(
    media: FakeMedia, root: Path, served: str, words: str
) -> None:
    media.files["junk"] = ("image/png", b"\x89PNG\r\n\x1a\n not really")
    item = {"url": f"{media.url}/files/{served}"}
    media.enqueue("/api/ai/image/task/log-1", done(item))
    async with Client(server(media), list_roots_callback=roots(root), mode="legacy") as client:
        result = await client.call_tool("generate_image", {"prompt": "x", "size": "1024x1024"})
    assert result.is_error and words in text_of(result), text_of(result)
    assert item["url"] in text_of(result)  # the link of what was paid for
    assert result.structured_content is not None and result.structured_content["status"] == "failed"
    assert list(root.iterdir()) == [root / "photo.png"]  # nothing half-written


async def test_a_link_that_drips_stops_at_the_deadline_and_leaves_nothing(media: FakeMedia, root: Path) -> None:
    """A byte every 0.2 s never trips the read timeout; the delegation's deadline ends the download."""

    def drip() -> Iterator[bytes]:
        yield small_png()[:16]
        for _ in range(400):  # 80 s in all
            time.sleep(0.2)
            yield b"x"

    media.enqueue("/files/slow.png", Answer(200, {"content-type": "image/png"}, declared_length=416, stream=drip))
    item = {"url": f"{media.url}/files/slow.png"}
    media.enqueue("/api/ai/image/task/log-1", done(item))
    started = time.monotonic()
    async with Client(server(media, deadline=5), list_roots_callback=roots(root), mode="legacy") as client:
        result = await client.call_tool("generate_image", {"prompt": "x", "size": "1024x1024", "wait_seconds": 60})
    assert time.monotonic() - started < 20
    assert result.is_error and "AITOEARN_DEADLINE" in text_of(result) and item["url"] in text_of(result)
    assert list(root.iterdir()) == [root / "photo.png"]  # nothing half-written


@pytest.mark.parametrize(
    ("code", "words"),
    [(12001, "enough credits"), (401, "API key"), (12300, "gpt-image-2"), (10002, "validation"),
     (12752, "too large")],
)  # fmt: skip
async def test_media_error_codes_reach_the_agent_as_failed_results(
    media: FakeMedia, root: Path, code: int, words: str
) -> None:
    media.enqueue("/api/ai/image/generate/async", Answer.error(code, "relay says no"))
    async with Client(server(media), list_roots_callback=roots(root), mode="legacy") as client:
        result = await client.call_tool("generate_image", {"prompt": "x", "size": "1024x1024"})
    assert result.is_error and words in text_of(result), text_of(result)
    assert result.structured_content is not None
    assert (
        list(result.structured_content)[:3] == ["status", "reply_id", "error"]
        and result.structured_content["status"] == "failed"
    )


# --- list_models ----------------------------------------------------------------------------------


async def test_list_models_kind_image_and_video(media: FakeMedia) -> None:
    async with Client(server(media)) as client:
        images = await client.call_tool("list_models", {"kind": "image"})
        videos = await client.call_tool("list_models", {"kind": "video"})
        detail = await client.call_tool("list_models", {"kind": "video", "detail": "happyhorse-1.1"})
        unknown = await client.call_tool("list_models", {"kind": "image", "detail": "gpt-image-3"})
        filtered = await client.call_tool("list_models", {"kind": "video", "channel": "openai"})
    line = text_of(images).splitlines()[0]
    assert line.startswith("gpt-image-2 · text to image and edits (up to 14 reference images) · 1 credits: 1024x1024")
    assert "4 credits: 2880x2880" in line and "qualities auto,high,medium,low" in line
    (brief,) = images.structured_content["models"]  # type: ignore[index]
    assert brief["credits_per_image_by_size"]["2"][0] == "1920x1920" and brief["max_input_images"] == 14
    lines = text_of(videos).splitlines()
    assert lines[0].startswith("seedance-2-fast-beta · text2video,image2video,multi-image2video,multi-ref · 480p,720p")
    assert "credits/s 480p 5.5, 720p 8" in lines[0] and "refs 9 images 3 videos 3 audios" in lines[0]
    horse = next(m for m in videos.structured_content["models"] if m["name"] == "happyhorse-1.1")  # type: ignore[index]
    assert horse["credits_per_second"] == {"720P": "13", "1080P": "23", "720P video2video": "26",
                                           "1080P video2video": "46"}  # fmt: skip
    assert detail.structured_content["entry"]["pricing"][0] == {"resolution": "720P", "duration": 3, "price": "39"}  # type: ignore[index]
    assert unknown.is_error and "gpt-image-2" in text_of(unknown)
    assert filtered.is_error and "chat models only" in text_of(filtered)


# --- the spend guard ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_over_the_limit_without_elicitation_is_refused_before_any_request(
    media: FakeMedia, root: Path, mode: str
) -> None:
    async with Client(server(media, max_credits_per_call=1.0), list_roots_callback=roots(root), mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("generate_image", {"prompt": "x", "size": "1920x1920"})
        unsized = await client.call_tool("generate_image", {"prompt": "x"})  # weighed at the dearest size
        cheap = await client.call_tool("generate_image", {"prompt": "x", "size": "1024x1024"})
    assert result.is_error and "2 credits" in text_of(result) and "AITOEARN_MAX_CREDITS_PER_CALL" in text_of(result)
    assert "1024x1024" in text_of(result)  # the cheaper choice
    assert result.structured_content is not None and result.structured_content["status"] == "refused"
    assert unsized.is_error and "4 credits" in text_of(unsized)
    assert not cheap.is_error
    assert len(media.to("/api/ai/image/generate/async")) == 1


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(("action", "spend", "goes"), [("accept", True, True), ("accept", False, False),
                                                        ("decline", True, False), ("cancel", True, False)])  # fmt: skip
async def test_over_the_limit_the_user_is_asked_and_decides(
    media: FakeMedia, root: Path, mode: str, action: str, spend: bool, goes: bool
) -> None:
    elicit, asked = answering(action, spend)
    async with Client(server(media, max_credits_per_call=1.0), list_roots_callback=roots(root),
                      elicitation_callback=elicit, mode=mode) as client:  # type: ignore[arg-type]  # fmt: skip
        result = await client.call_tool("generate_image", {"prompt": "x", "size": "1920x1920", "save_to": str(root)})
    assert len(asked) == 1 and "2 AiToEarn credits" in asked[0]
    assert result.is_error is not goes, text_of(result)
    assert len(media.to("/api/ai/image/generate/async")) == (1 if goes else 0)
    if not goes:
        assert result.structured_content is not None and result.structured_content["status"] == "refused"


async def test_roots_round_and_confirmation_round_together_on_2026_07_28(media: FakeMedia, root: Path) -> None:
    elicit, asked = answering("accept")
    async with Client(server(media, max_credits_per_call=1.0), list_roots_callback=roots(root),
                      elicitation_callback=elicit) as client:  # fmt: skip
        result = await client.call_tool("generate_image", {"prompt": "x", "size": "1920x1920",
                                                            "images": [str(root / "photo.png")]})  # fmt: skip
    assert not result.is_error, text_of(result)
    assert len(asked) == 1 and len(media.to("/api/ai/image/edit/async")) == 1 and len(media.stored) == 1


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_send_message_is_guarded_by_its_estimate(media: FakeMedia, relay: FakeRelay, mode: str) -> None:
    hello = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10000}
    elicit, asked = answering("decline")
    async with Client(server(media, max_credits_per_call=2.0), mode=mode) as plain:  # type: ignore[arg-type]
        refused = await plain.call_tool("send_message", hello)
        fine = await plain.call_tool("send_message", {**hello, "max_tokens": 100})
    async with Client(server(media, max_credits_per_call=2.0), elicitation_callback=elicit, mode=mode) as asking:  # type: ignore[arg-type]
        declined = await asking.call_tool("send_message", {**hello, "models": ["claude-sonnet-5", "claude-opus-4-8"],
                                                           "model": None, "max_tokens": 3000})  # fmt: skip
    # 10,000 output tokens at 0.3 per 1K: 3 credits; 3,000 on two models: 0.9 + 1.5 (a flat price), summed
    assert refused.is_error and "AITOEARN_MAX_CREDITS_PER_CALL" in text_of(refused)
    assert refused.structured_content is not None and refused.structured_content["status"] == "refused"
    assert not fine.is_error
    assert len(asked) == 1 and "2.4" in asked[0] and declined.is_error and "declined" in text_of(declined)
    assert len(relay.requests_to("/api/ai/v1/messages")) == 1


# --- over stdio and HTTP --------------------------------------------------------------------------


async def test_over_stdio(media: FakeMedia, root: Path) -> None:
    env = {"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": media.url, "PATH": os.environ["PATH"],
           "HOME": os.environ["HOME"], "AITOEARN_FILES_ROOTS": str(root)}  # fmt: skip
    async with Client(StdioServerParameters(command=SCRIPT, env=env)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a gradient", "size": "2880x2880",
                                                            "images": [str(root / "photo.png")]})  # fmt: skip
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    saved = Path(result.structured_content["images"][0]["path"])
    assert saved.parent == root and saved.read_bytes() == big_png()  # AITOEARN_FILES_ROOTS, not the working directory
    assert len(images_of(result)) == 1
    assert list(media.stored.values()) == [small_png()]


async def test_without_roots_or_save_to_images_go_to_the_private_cache_folder(media: FakeMedia) -> None:
    from aitoearn_mcp._paths import cache_dir

    async with Client(server(media)) as client:  # no roots offered, none configured
        result = await client.call_tool("generate_image", {"prompt": "x", "size": "1024x1024"})
    assert result.structured_content is not None, text_of(result)
    saved = Path(result.structured_content["images"][0]["path"])
    assert saved.parent == cache_dir() / "images" and oct(saved.parent.stat().st_mode & 0o777) == "0o700"
    assert saved.read_bytes() == big_png()


async def test_over_http_links_and_previews_come_back_and_local_paths_are_refused(
    media: FakeMedia, relay: FakeRelay, root: Path
) -> None:
    http = HttpServer(relay, env={"AITOEARN_BASE_URL": media.url})
    try:
        async with http_client(http.url) as client:
            result = await client.call_tool("generate_image", {"prompt": "a gradient", "size": "1024x1024"})
            local = await client.call_tool("generate_image", {"prompt": "x", "images": [str(root / "photo.png")]})
            folder = await client.call_tool("generate_image", {"prompt": "x", "save_to": str(root)})
    finally:
        http.stop()
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    image = result.structured_content["images"][0]
    assert "path" not in image and image["url"].endswith("/files/image.png") and image["url"] in text_of(result)
    assert len(images_of(result)) == 1
    for refused in (local, folder):
        assert refused.is_error and "not available over HTTP" in text_of(refused)
    assert len(media.to("/api/ai/image/generate/async")) == 1 and media.stored == {}
