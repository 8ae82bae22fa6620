"""Requests checked against the catalogue before anything is sent: each refusal names the field
and the fix, and no request reaches the relay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aitoearn_mcp._errors import InputError
from aitoearn_mcp.media._client import MediaClient
from aitoearn_mcp.media._models import ImageEditModel, ImageModel, VideoModel
from aitoearn_mcp.media._validate import (
    ImageEditRequest,
    ImageRequest,
    MediaFacts,
    VideoRequest,
    check_image,
    check_image_edit,
    check_video,
    derive_mode,
)

from .fake_media import FakeMedia

pytestmark = pytest.mark.anyio

URL = "https://assets.aitoearn.ai/u/ref.png"


def refused(check, request, models, *needles: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as caught:
        check(request, models)
    message = str(caught.value)
    for needle in needles:
        assert needle in message, (needle, message)
    assert "Nothing was sent" in message
    return message


def test_image_refusals_name_the_field_and_fix(image_models: list[ImageModel]) -> None:
    refused(check_image, ImageRequest(model="gpt-image-3", prompt="x"), image_models,
            "`model`", "gpt-image-2", "did you mean")  # fmt: skip
    refused(check_image, ImageRequest(model="gpt-image-2", prompt=""), image_models, "`prompt`", "1 to 4,000")
    refused(check_image, ImageRequest(model="gpt-image-2", prompt="x" * 4001), image_models,
            "`prompt`", "4,001", "shorten it by 1")  # fmt: skip
    refused(check_image, ImageRequest(model="gpt-image-2", prompt="😀" * 2001), image_models,
            "`prompt`", "4,002", "UTF-16")  # fmt: skip
    message = refused(check_image, ImageRequest(model="gpt-image-2", prompt="x", size="1000x1000"), image_models,
                      "`size`", "1024x1024", "nearest: 1024x1024")  # fmt: skip
    assert "3840x2160" in message  # all 27 listed
    refused(check_image, ImageRequest(model="gpt-image-2", prompt="x", size="3800x2100"), image_models,
            "nearest: 3840x2160")  # fmt: skip
    refused(check_image, ImageRequest(model="gpt-image-2", prompt="x", quality="ultra"), image_models,
            "`quality`", "auto, high, medium, low")  # fmt: skip
    refused(check_image, ImageRequest(model="gpt-image-2", prompt="x", style="vivid"), image_models,
            "`style`", "not supported", "omit it")  # fmt: skip
    refused(check_image, ImageRequest(model="gpt-image-2", prompt="x", response_format="png"), image_models,
            "`response_format`", "url or b64_json")  # fmt: skip


def test_image_accepts_forgiving_spellings_and_prices(image_models: list[ImageModel]) -> None:
    prepared = check_image(ImageRequest(model="GPT-Image-2", prompt="a fox", size="2560X1440", quality="HIGH"),
                           image_models)  # fmt: skip
    assert prepared.body == {"model": "gpt-image-2", "prompt": "a fox", "response_format": "url",
                             "size": "2560x1440", "quality": "high"}  # fmt: skip
    assert prepared.price == 2
    bare = check_image(ImageRequest(model="gpt-image-2", prompt="a fox"), image_models)
    assert bare.price is None and "price is not known" in bare.notes[0]


def test_image_edit_checks(edit_models: list[ImageEditModel]) -> None:
    refused(check_image_edit, ImageEditRequest(model="gpt-image-2", prompt="x", images=[]), edit_models,
            "`images`", "at least one")  # fmt: skip
    refused(check_image_edit, ImageEditRequest(model="gpt-image-2", prompt="x", images=[URL] * 15), edit_models,
            "`images`", "15 items", "limit of 14")  # fmt: skip
    refused(check_image_edit, ImageEditRequest(model="gpt-image-2", prompt="x", images=["/home/me/cat.png"]),
            edit_models, "`images[0]`", "upload the local file first")  # fmt: skip
    refused(check_image_edit, ImageEditRequest(model="gpt-image-2", prompt="x", images=[URL], mask="mask.png"),
            edit_models, "`mask[0]`")  # fmt: skip
    one = check_image_edit(ImageEditRequest(model="gpt-image-2", prompt="x", images=[URL], size="1024x1536"),
                           edit_models)  # fmt: skip
    assert one.body["image"] == URL and one.price == 1
    two = check_image_edit(ImageEditRequest(model="gpt-image-2", prompt="x", images=[URL, URL]), edit_models)
    assert two.body["image"] == [URL, URL]


def v(**kw: object) -> VideoRequest:
    return VideoRequest(**{"model": "seedance-2-fast-beta", "prompt": "a cat surfing", **kw})  # type: ignore[arg-type]


def test_video_refusals(video_models: list[VideoModel]) -> None:
    refused(check_video, v(model="sora"), video_models, "`model`", "seedance-2-fast-beta", "happyhorse-1.1")
    refused(check_video, v(resolution="1080p"), video_models, "`resolution`", "480p, 720p", "nearest: 720p")
    refused(check_video, v(ratio="2:1"), video_models, "`ratio`", "21:9", "nearest: 16:9")
    refused(check_video, v(duration=20), video_models, "`duration`", "4 to 15", "nearest: 15")
    refused(check_video, v(duration=3), video_models, "nearest: 4")
    refused(check_video, v(mode="video2video", videos=["https://x/a.mp4"]), video_models,
            "`mode`", "text2video, image2video, multi-image2video, multi-ref")  # fmt: skip
    refused(check_video, v(mode="image2video"), video_models, "`mode`", "exactly 1 image")
    refused(check_video, v(images=[URL] * 10), video_models, "`images`", "10 items", "limit of 9")
    refused(check_video, v(model="happyhorse-1.1", audios=["https://x/a.mp3"]), video_models,
            "`audios`", "takes none", "video guide")  # fmt: skip
    refused(check_video, v(model="grok-imagine-video", videos=["https://x/a.mp4", "https://x/b.mp4"]), video_models,
            "`videos`", "limit of 1")  # fmt: skip
    refused(check_video, v(model="grok-imagine-video-1.5"), video_models,
            "`mode`", "imply text2video", "image2video")  # fmt: skip
    refused(check_video, v(videos=["https://x/clip.avi"]), video_models, "`videos[0]`", ".avi", "mp4, mov")
    refused(check_video, v(audios=["https://x/a.flac"]), video_models, "`audios[0]`", "wav, mp3")
    facts = {"https://x/a.mp4": MediaFacts(size_bytes=60 * 2**20)}
    refused(check_video, v(videos=["https://x/a.mp4"], facts=facts), video_models, "`videos[0]`", "50 MB")
    facts = {"https://x/a.mp4": MediaFacts(duration=1)}
    refused(check_video, v(videos=["https://x/a.mp4"], facts=facts), video_models, "`videos[0]`", "lasts 1 s")
    facts = {"https://x/a.mp4": MediaFacts(duration=10), "https://x/b.mp4": MediaFacts(duration=10)}
    refused(check_video, v(videos=["https://x/a.mp4", "https://x/b.mp4"], facts=facts), video_models,
            "`videos`", "20 s together", "15 s")  # fmt: skip
    facts = {"https://x/a.mp4": MediaFacts(width=3840, height=2160, fps=30)}
    refused(check_video, v(videos=["https://x/a.mp4"], facts=facts), video_models, "pixels", "2,086,876")
    facts = {"https://x/a.mp4": MediaFacts(width=1280, height=720, fps=15)}
    refused(check_video, v(videos=["https://x/a.mp4"], facts=facts), video_models, "15 fps", "24–60")
    refused(check_video, v(image_tail=URL, images=[URL], mode="image2video"), video_models,
            "`mode`", "image_tail")  # fmt: skip


def test_video_accepts_and_fills_defaults(video_models: list[VideoModel]) -> None:
    prepared = check_video(v(), video_models)
    assert prepared.body == {"model": "seedance-2-fast-beta", "prompt": "a cat surfing", "mode": "text2video",
                             "resolution": "720p", "ratio": "16:9", "duration": 6}  # fmt: skip
    assert prepared.mode_derived and any("derived" in note for note in prepared.notes)
    assert prepared.price == 48
    horse = check_video(v(model="happyhorse-1.1", resolution="1080p", duration=5, videos=["https://x/a.mp4"]),
                        video_models)  # fmt: skip
    assert horse.body["resolution"] == "1080P"  # sent as the catalogue spells it
    assert horse.mode == "video2video" and horse.price == 230
    upper = check_video(v(model="doubao-seedance-2-0-260128", resolution="4K", duration=10), video_models)
    assert upper.body["resolution"] == "4k" and upper.price == 720
    flf = check_video(v(model="doubao-seedance-2-0-260128", images=[URL], image_tail=URL), video_models)
    assert flf.mode == "flf2video" and flf.body["image_tail"] == URL
    multi = check_video(v(videos=["https://x/a.MP4"], audios=["https://x/a.mp3"],
                          facts={"https://x/a.MP4": MediaFacts(duration=5, width=1280, height=720, fps=30)}),
                        video_models)  # fmt: skip
    assert multi.mode == "multi-ref" and multi.price == 48
    grok = check_video(v(model="grok-imagine-video", images=[URL, URL], duration=12), video_models)
    assert grok.body["resolution"] == "720p"  # its only resolution
    assert grok.mode == "multi-image2video" and grok.price is None
    assert any("no price" in note for note in grok.notes)
    explicit = check_video(v(mode="MULTI-REF", images=[URL]), video_models)
    assert explicit.mode == "multi-ref" and not explicit.mode_derived


async def test_refusals_send_nothing(fake: FakeMedia, client: MediaClient, video_models: list[VideoModel]) -> None:
    await client.video_generation_models()
    before = fake.count()
    for request in (v(resolution="8k"), v(duration=99), v(model="nope"), v(prompt="")):
        with pytest.raises(InputError):
            await client.submit_video(check_video(request, video_models))
    assert fake.count() == before


MODES = ["text2video", "image2video", "flf2video", "multi-image2video", "multi-ref", "video2video"]


@given(
    modes=st.lists(st.sampled_from(MODES), unique=True),
    images=st.integers(0, 12),
    videos=st.integers(0, 4),
    audios=st.integers(0, 4),
)
def test_mode_derivation(modes: list[str], images: int, videos: int, audios: int) -> None:
    mode = derive_mode(modes, images=images, videos=videos, audios=audios)
    if videos:
        assert mode == ("video2video" if "video2video" in modes else "multi-ref")
    elif audios:
        assert mode == "multi-ref"
    else:
        assert mode == {0: "text2video", 1: "image2video"}.get(images, "multi-image2video")


@given(
    model=st.sampled_from(["seedance-2-fast-beta", "happyhorse-1.1", "doubao-seedance-2-0-260128",
                           "grok-imagine-video", "grok-imagine-video-1.5"]),
    images=st.integers(0, 10),
    videos=st.integers(0, 3),
    audios=st.integers(0, 3),
)  # fmt: skip
def test_derived_video_requests_are_consistent(model: str, images: int, videos: int, audios: int) -> None:
    """Whatever the inputs: either a clear refusal, or a body whose mode the model offers."""
    from aitoearn_mcp.media._models import parse_items

    from .fake_media import VIDEO_GENERATION

    models = parse_items(VideoModel, VIDEO_GENERATION)
    request = VideoRequest(model=model, prompt="p", images=[URL] * images,
                           videos=["https://x/v.mp4"] * videos, audios=["https://x/a.mp3"] * audios)  # fmt: skip
    try:
        prepared = check_video(request, models)
    except InputError as exc:
        assert "fix:" in str(exc) and "`" in str(exc)
        return
    assert prepared.mode in prepared.entry.modes
    assert len(prepared.body.get("images", [])) == images
