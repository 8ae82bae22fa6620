"""The fake media relay in its own process, so its CPU (encoding, serving 200 MB) never counts
against the server measured.

Serves ``tests/media/fake_media.py``'s routes with the benchmark key, and:

* ``/files/image.png`` (every generated image's link): a 2048×2048 PNG of gradients and noise
  (about 5.5 MB, encoded once at start-up at zlib level 6, as an image service would);
* an image task is done at its first look;
* videos whose prompt says ``slow`` keep rendering, through status strings no client knows;
  every other video is done at its first poll;
* a done video whose prompt says ``big``: a 200 MiB file, streamed with its Content-Length.

Prints the relay's URL on stdout, then serves until killed.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.media.fake_media import Answer, FakeMedia

KEY = "sk-bench"
BIG_VIDEO_BYTES = 200 * 1024 * 1024
UNKNOWN_STEPS = ["排队中", "Stage-2/3: motion", "postprocess…"]
_PIECE = bytes(range(256)) * 4096  # 1 MiB


def realistic_png() -> bytes:
    from PIL import Image

    size = (2048, 2048)
    red = Image.linear_gradient("L").resize(size)
    green = Image.effect_noise(size, 30)
    blue = Image.linear_gradient("L").rotate(90).resize(size)
    out = io.BytesIO()
    Image.merge("RGB", (red, green, blue)).save(out, "PNG", compress_level=6)
    return out.getvalue()


def big_video() -> Iterator[bytes]:
    for _ in range(BIG_VIDEO_BYTES // len(_PIECE)):
        yield _PIECE


class BenchMedia(FakeMedia):
    def _prompt(self, task_id: str) -> str:
        task = self.videos.get(task_id)
        return str(task["body"].get("prompt", "")) if task else ""

    def _video_status(self, task_id: str) -> Answer:
        if task_id in self.videos and "slow" not in self._prompt(task_id):
            self.videos[task_id]["polls"] = len(self.video_steps)  # done now
        return super()._video_status(task_id)

    def _file(self, path: str) -> Answer:
        name = path.removeprefix("/files/")
        if name.endswith(".mp4") and "big" in self._prompt(name.removesuffix(".mp4")):
            return Answer(200, {"content-type": "video/mp4"}, declared_length=BIG_VIDEO_BYTES, stream=big_video)
        return super()._file(path)


if __name__ == "__main__":
    relay = BenchMedia()
    relay.key = KEY
    relay.video_steps = UNKNOWN_STEPS
    relay.image_polls = 1
    relay.files["image.png"] = ("image/png", realistic_png())
    relay.start()
    print(relay.url, flush=True)
    while True:
        time.sleep(3600)
