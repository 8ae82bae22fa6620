"""The native client against the fake relay: results, the envelope's error codes, the key kept
out of every message, and retries only where they cannot bill twice."""

from __future__ import annotations

import httpx2
import pytest
from pydantic import SecretStr

from aitoearn_mcp._errors import (
    AuthError,
    CreditsError,
    InvalidModelError,
    MissingKeyError,
    RelayError,
    RelayTimeoutError,
    RequestRejectedError,
    UnavailableError,
)
from aitoearn_mcp.media._client import MediaClient
from aitoearn_mcp.media._images import inspect_image
from aitoearn_mcp.media._models import ImageEditModel, ImageModel, VideoModel
from aitoearn_mcp.media._validate import (
    ImageEditRequest,
    ImageRequest,
    VideoRequest,
    check_image,
    check_image_edit,
    check_video,
)

from .fake_media import KEY, Answer, FakeMedia, small_png

pytestmark = pytest.mark.anyio

GENERATE = "/api/ai/image/generate"


def image(models: list[ImageModel], **kw: object):  # type: ignore[no-untyped-def]
    return check_image(ImageRequest(**{"model": "gpt-image-2", "prompt": "a red fox", "size": "1024x1024", **kw}),  # type: ignore[arg-type]
                       models)  # fmt: skip


async def test_generate_image_url(fake: FakeMedia, client: MediaClient, image_models: list[ImageModel]) -> None:
    result = await client.generate_image(image(image_models))
    assert result.images[0].url == f"{fake.url}/files/image.png"
    assert result.images[0].revised_prompt == "a red fox"
    assert result.size == "1024x1024" and result.usage["total_tokens"] == 4108 and result.output_format == "png"
    sent = fake.to(GENERATE)[0]
    assert sent.headers["x-api-key"] == KEY
    assert sent.json() == {"model": "gpt-image-2", "prompt": "a red fox", "response_format": "url",
                           "size": "1024x1024"}  # fmt: skip


async def test_generate_image_b64(client: MediaClient, image_models: list[ImageModel]) -> None:
    result = await client.generate_image(image(image_models, response_format="b64_json"))
    assert result.images[0].url is None and result.images[0].data == small_png()
    assert inspect_image(result.images[0].data).mime_type == "image/png"
    assert "data=" not in repr(result)  # image bytes are not dumped into logs


async def test_edit_image(fake: FakeMedia, client: MediaClient, edit_models: list[ImageEditModel]) -> None:
    prepared = check_image_edit(ImageEditRequest(model="gpt-image-2", prompt="make it blue",
                                                 images=["https://assets.aitoearn.ai/a.png"]), edit_models)  # fmt: skip
    result = await client.edit_image(prepared)
    assert result.images[0].url
    assert fake.to("/api/ai/image/edit")[0].json()["image"] == "https://assets.aitoearn.ai/a.png"


async def test_async_image_task(client: MediaClient, image_models: list[ImageModel]) -> None:
    task = await client.submit_image_task(image(image_models))
    first = await client.image_task(task.log_id)
    assert first.state == "running" and first.status == "generating"
    done = await client.image_task(task.log_id)
    assert done.state == "finished" and done.images[0].url and done.points == 1


async def test_video_submit_and_status(fake: FakeMedia, client: MediaClient, video_models: list[VideoModel]) -> None:
    task = await client.submit_video(check_video(VideoRequest(model="seedance-2-fast-beta", prompt="p"), video_models))
    assert task.id == "vid-1" and task.points == 48 and task.status == "queued"
    seen = [await client.video_status(task.id) for _ in range(4)]
    assert [s.status for s in seen] == ["queued", "in_progress", "rendering", "success"]
    assert [s.state for s in seen] == ["running", "running", "running", "finished"]
    assert seen[-1].video_url == f"{fake.url}/files/vid-1.mp4" and seen[-1].cover_url
    assert fake.to("/api/ai/video/generations")[0].json()["mode"] == "text2video"


CODES = [
    (401, "Unauthorized", AuthError, "rejected the API key"),
    (12001, "用户Credits不足", CreditsError, "not have enough credits"),
    (12300, "无效的 AI 模型", InvalidModelError, "gpt-image-2"),
    (12310, "unsupported mode", RequestRejectedError, "mode text2video"),
    (12311, "unsupported input", RequestRejectedError, "combination of inputs"),
    (12302, "无效的 AI 任务 ID", RequestRejectedError, "does not know the task id"),
    (12750, "资源不存在", RequestRejectedError, "not found"),
    (12751, "资源上传失败", UnavailableError, "upload the file again"),
    (12752, "资源过大", RequestRejectedError, "too large"),
    (10002, "prompt must be shorter", RequestRejectedError, "Relay said: code 10002: prompt must be shorter"),
    (15999, "something new", RequestRejectedError, "code 15999"),
]


@pytest.mark.parametrize(("code", "message", "cls", "needle"), CODES)
async def test_envelope_codes(fake: FakeMedia, client: MediaClient, image_models: list[ImageModel],
                              video_models: list[VideoModel], code: int, message: str, cls: type[RelayError],
                              needle: str) -> None:  # fmt: skip
    echoed = f"{message} (key {KEY})"  # a relay that echoes the key
    if code in (12310, 12311):
        fake.enqueue("/api/ai/video/generations", Answer.error(code, echoed))
        call = client.submit_video(check_video(VideoRequest(model="seedance-2-fast-beta", prompt="p"), video_models))
    elif code == 12302:
        fake.enqueue("/api/ai/video/generations/nope", Answer.error(code, echoed))
        call = client.video_status("nope")
    elif code in (12750, 12751, 12752):
        fake.enqueue("/api/assets/uploadSign", *[Answer.error(code, echoed)] * 3)
        import tempfile

        with tempfile.TemporaryFile() as file:
            file.write(b"abc")
            file.flush()
            with pytest.raises(cls) as caught:
                await client.upload(file.fileno(), "a.png")
        call = None
    else:
        fake.enqueue(GENERATE, Answer.error(code, echoed))
        call = client.generate_image(image(image_models))
    if call is not None:
        with pytest.raises(cls) as caught:
            await call
    text = str(caught.value)
    assert needle in text, text
    assert KEY not in text and KEY[:12] not in text and KEY not in repr(caught.value.args)
    assert "Fix:" in text


async def test_12300_lists_the_valid_names(
    fake: FakeMedia, client: MediaClient, video_models: list[VideoModel]
) -> None:
    fake.enqueue("/api/ai/video/generations", Answer.error(12300, "无效的 AI 模型"))
    with pytest.raises(InvalidModelError) as caught:
        await client.submit_video(check_video(VideoRequest(model="happyhorse-1.1", prompt="p"), video_models))
    assert "seedance-2-fast-beta" in str(caught.value) and "grok-imagine-video-1.5" in str(caught.value)


async def test_wrong_key_is_an_auth_error(http: httpx2.AsyncClient, image_models: list[ImageModel]) -> None:
    wrong = "sk-aitoearn-WRONGKEY-000000"
    with pytest.raises(AuthError) as caught:
        await MediaClient(http, SecretStr(wrong)).generate_image(image(image_models))
    assert wrong not in str(caught.value) and "aitoearn.cn" in str(caught.value)
    with pytest.raises(MissingKeyError):
        await MediaClient(http, None).generate_image(image(image_models))


async def test_html_and_non_json_bodies(fake: FakeMedia, client: MediaClient, image_models: list[ImageModel]) -> None:
    fake.enqueue(
        GENERATE, Answer(502, {"content-type": "text/html"}, b"<html><title>502 Bad Gateway</title>" + b"x" * 9000)
    )
    with pytest.raises(UnavailableError) as caught:
        await client.generate_image(image(image_models))
    assert "502" in str(caught.value) and len(str(caught.value)) < 600
    fake.enqueue(GENERATE, Answer(200, {"content-type": "text/html"}, b"<html><title>Login</title></html>"))
    with pytest.raises(RelayError, match="not the relay's JSON envelope"):
        await client.generate_image(image(image_models))
    fake.enqueue(GENERATE, Answer.json({"code": 0, "data": {"list": []}}))
    with pytest.raises(RelayError, match="unexpected shape"):
        await client.generate_image(image(image_models))


async def test_billed_posts_are_not_retried_but_reads_are(fake: FakeMedia, client: MediaClient,
                                                          image_models: list[ImageModel]) -> None:  # fmt: skip
    fake.enqueue(GENERATE, Answer(503, {"content-type": "text/plain"}, b"busy"), Answer.json({"code": 0}))
    with pytest.raises(UnavailableError):
        await client.generate_image(image(image_models))
    assert len(fake.to(GENERATE)) == 1
    fake.enqueue("/api/ai/video/generations/vid-x", Answer(503, {"content-type": "text/plain"}, b"busy"),
                 Answer.error(12302, "无效的 AI 任务 ID"))  # fmt: skip
    with pytest.raises(RequestRejectedError, match="vid-x"):
        await client.video_status("vid-x")
    assert len(fake.to("/api/ai/video/generations/vid-x")) == 2


async def test_connect_errors_are_retried_even_for_posts(image_models: list[ImageModel]) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        client = MediaClient(http, SecretStr(KEY), max_retries=2, backoff_base=0.01)
        with pytest.raises(UnavailableError, match="could not connect"):
            await client.generate_image(image(image_models))


async def test_read_timeout_on_a_post_says_it_may_have_run(fake: FakeMedia, image_models: list[ImageModel]) -> None:
    import time

    def slow(_: object) -> Answer:
        time.sleep(0.5)
        return Answer.json({"code": 0, "data": {"list": [{"url": "https://x/y.png"}]}})

    fake.routes[GENERATE] = slow  # type: ignore[assignment]
    async with httpx2.AsyncClient(base_url=fake.url, timeout=httpx2.Timeout(5.0, read=0.1)) as http:
        with pytest.raises(RelayTimeoutError, match="may have been processed"):
            await MediaClient(http, SecretStr(KEY)).generate_image(image(image_models))
    assert len(fake.to(GENERATE)) == 1


async def test_repr_hides_the_key(client: MediaClient) -> None:
    assert KEY not in repr(client) and "key=set" in repr(client)
