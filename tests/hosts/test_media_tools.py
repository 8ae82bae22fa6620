"""Issue 24's "done when" in the real hosts: from Claude Code, Codex and Gemini CLI a user asks for
an image or a video in words, sees the image (or the cover) in the conversation, and finds the
full file on disk.

Each host runs headless against its scripted model API (``model_api.py``), with our stdio server
behind the recording wrapper, pointed at the fake media relay (``tests/media/fake_media.py``).
The fake serves, for ``generate_image``, a 1024×1024 photo-like PNG of about 1.3 MB (over the
1 MB preview bound, so the server shows a JPEG preview of it), and a video that is ready at its
first poll (with a 64×48 PNG cover). The scripted model calls ``generate_image`` once; or
``generate_video`` with a short ``wait_seconds``, then ``get_reply`` until the video is complete.
The test reads, from the request the host then sent to the model API, what came back for that
call (``test_image_results.py``'s readers), and the saved file from the path the model read.
``docs/hosts.md`` ("Images and videos from this server") has the figures. 6 runs, about 80 s.
"""

from __future__ import annotations

import functools
import io
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aitoearn_mcp.media._images import preview

from ..conftest import KEY
from ..media.fake_media import VIDEO_BYTES, FakeMedia, small_png
from . import model_api
from .harness import PATIENCE, Run, once_per_case
from .test_claude_code import claude
from .test_codex import codex
from .test_gemini import gemini
from .test_image_results import READERS, Part, _image_info

pytestmark = pytest.mark.timeout(900)

LAUNCHERS: dict[str, Callable[..., Run]] = {"claude-code": claude, "codex": codex, "gemini": gemini}
IMAGE_ASK = {"prompt": "A lighthouse on a cliff at dusk, in watercolour.", "size": "1024x1024"}
VIDEO_ASK = {"model": "seedance-2-fast-beta", "prompt": "A red kite over the sea at dawn.", "wait_seconds": 0.5}
REPLY_ID = re.compile(r"\br_[A-Za-z0-9_-]{10,}")
READY = re.compile(r'"status"\s*:\s*"complete"|The video is ready')
GET_REPLIES = 5  # get_reply calls the model makes at most before it gives up on the video


@functools.cache
def photo() -> bytes:
    """A 1024×1024 RGB PNG that compresses like a photo (gradients and seeded grain): 1,280,958
    bytes, over the server's 1 MB preview bound, as a generated 1024×1024 PNG usually is."""
    from PIL import Image

    size = (1024, 1024)
    red = Image.linear_gradient("L").resize(size)
    blue = Image.linear_gradient("L").rotate(90).resize(size)
    grain = bytes(96 + b // 4 for b in random.Random(24).randbytes(size[0] * size[1]))
    out = io.BytesIO()
    Image.merge("RGB", (red, Image.frombytes("L", size, grain), blue)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def media() -> Iterator[FakeMedia]:
    fake = FakeMedia().start()
    fake.key = KEY  # the key ServerEntry gives our server
    fake.files["image.png"] = ("image/png", photo())  # generate_image's link (``/files/image.png``)
    fake.video_steps = []  # ready at the first poll
    yield fake
    fake.stop()


def video_plan(results: list[str]) -> model_api.Step | None:
    """generate_video, then get_reply with the reply id it answered, until the video is ready."""
    if not results:
        return "generate_video", VIDEO_ASK
    reply_id = REPLY_ID.search(results[0])
    if reply_id is None or READY.search(results[-1]) or len(results) > GET_REPLIES:
        return None
    return "get_reply", {"reply_id": reply_id.group(0), "wait_seconds": 10}


@dataclass
class Seen:
    """One of our tool results as the host's model got it."""

    host: str
    parts: list[Part]

    @property
    def texts(self) -> str:
        return "\n".join(part.text for part in self.parts if part.kind == "text")

    @property
    def images(self) -> list[Part]:
        return [part for part in self.parts if part.kind == "image"]

    def path(self, field: str, words: str) -> Path | None:
        """The saved file's path, from the structured JSON's ``field`` or the text's ``words <path> (``."""
        found = re.search(rf'"{field}"\s*:\s*"([^"]+)"', self.texts) or re.search(rf"{words} (/\S+) \(", self.texts)
        return Path(found.group(1)) if found else None

    def summary(self, shown: bytes) -> str:
        """The tool result part by part, and any image beside it (``shown``: the preview our server sent)."""
        lines = [f"{self.host}:"]
        for part in self.parts:
            if part.kind == "image":
                same = "the server's preview, bytes identical" if part.data == shown else "re-encoded"
                lines.append(f"  {part.where} image [{part.form}] {part.mime} {_image_info(part.data)} "
                             f"{len(part.data):,} bytes ({same}; sent {_image_info(shown)} {len(shown):,} bytes)")  # fmt: skip
            elif part.where == "result":
                lines.append(f"  {part.where} {part.kind} [{part.form}] {len(part.text):,} chars: {part.text[:300]!r}")
        return "\n".join(lines)


@pytest.fixture(scope="module")
def run(hosts_bin: Path, media: FakeMedia, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """``host/image`` or ``host/video`` -> that host's run (one each, shared)."""

    def start(key: str) -> Run:
        host, tool = key.split("/")
        if tool == "image":
            script = model_api.Script("generate_image", IMAGE_ASK, patience=PATIENCE)
        else:
            script = model_api.Script("generate_video", {}, patience=PATIENCE, plan=video_plan)
        return LAUNCHERS[host](hosts_bin, tmp_path_factory.mktemp(f"media-{host}-{tool}"), media, script)

    return once_per_case(start)


def seen(done: Run, host: str, call: int) -> Seen:
    run, script = done
    parts = READERS[host](script.requests, call)[0]
    assert parts, f"our call {call} ({script.called}) reached the model API nowhere; {run.report()}"
    return Seen(host, parts)


# host: (the image part's form and media type, or None: no image reaches the model; how our result reads)
EXPECTED: dict[str, tuple[tuple[str, str] | None, str]] = {
    "claude-code": (("image/base64", "image/jpeg"), "structured"),
    "codex": (None, "structured"),
    "gemini": (("inlineData", "image/jpeg"), "text"),
}


@pytest.mark.parametrize("host", list(LAUNCHERS))
def test_an_image_reaches_the_model_and_the_file_is_on_disk(run: Callable[[str], Run], media: FakeMedia,
                                                            host: str) -> None:  # fmt: skip
    """The model reads the saved file's absolute path and the image's link (from the structured
    content on Claude Code and Codex, from the text on Gemini CLI); the preview reaches it where
    the host passes images; the file at that path is, byte for byte, the PNG the relay served."""
    done = run(f"{host}/image")
    result, script = done
    assert result.returncode == 0, result.report()
    assert script.called == ["generate_image"], (script.called, result.report())
    got = seen(done, host, 0)
    shown = preview(photo()).data
    summary = got.summary(shown)
    print(summary)
    image, reads = EXPECTED[host]
    structured = re.search(r'"status"\s*:\s*"complete"', got.texts) is not None
    assert (structured, "image generated by" in got.texts) == (reads == "structured", reads == "text"), summary
    assert f"{media.url}/files/image.png" in got.texts, summary
    path = got.path("path", "saved to")
    assert path is not None and path.is_absolute(), summary
    assert path.read_bytes() == photo(), summary
    assert [(part.form, part.mime) for part in got.images] == ([image] if image else []), summary
    for part in got.images:
        assert part.data == shown, summary  # the server's 1024×1024 JPEG preview, as it sent it
    print(f"{host}: saved to {path}")


@pytest.mark.parametrize("host", list(LAUNCHERS))
def test_a_video_is_collected_with_get_reply_and_its_cover_reaches_the_model(
    run: Callable[[str], Run], media: FakeMedia, host: str
) -> None:
    """generate_video answers running (the reply id reaches the model); get_reply collects it:
    the model reads the saved video's absolute path, its URL and the cover's URL, sees the cover
    where the host passes images, and the file at that path is the video the relay served."""
    done = run(f"{host}/video")
    result, script = done
    assert result.returncode == 0, result.report()
    assert script.called[0] == "generate_video" and set(script.called[1:]) == {"get_reply"}, (script.called,
                                                                                             result.report())  # fmt: skip
    first = seen(done, host, 0)
    assert REPLY_ID.search(first.texts) and "get_reply" in first.texts, first.summary(b"")
    last = seen(done, host, len(script.called) - 1)
    cover = preview(small_png()).data
    summary = "\n".join(f"{host} call {n} ({tool}): {seen(done, host, n).summary(cover)}"
                        for n, tool in enumerate(script.called))  # fmt: skip
    print(summary)
    assert READY.search(last.texts), summary
    for url in (r"/files/vid-\d+\.mp4", r"/files/cover\.png"):
        assert re.search(re.escape(media.url) + url, last.texts), summary
    path = last.path("path", "Saved to")
    assert path is not None and path.is_absolute(), summary
    assert path.read_bytes() == VIDEO_BYTES, summary
    image, _ = EXPECTED[host]
    assert [part.form for part in last.images] == ([image[0]] if image else []), summary
    for part in last.images:
        assert (part.mime, part.data) == ("image/png", cover), summary  # the cover's preview, as the server sent it
    print(f"{host}: video saved to {path}")
