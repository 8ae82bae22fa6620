"""A fake AiToEarn media relay on a real loopback socket, speaking the documented forms.

A ``ThreadingHTTPServer`` in a daemon thread (so tests in any event loop can use it). It serves
the three public catalogues with the live data from the shared notes, the native envelope
(business errors as HTTP 200 with ``code != 0``), image generate/edit (sync and async) with
results as URLs it serves itself or as ``b64_json``, video tasks that walk through status
strings no client knows, uploads whose storage PUT refuses any key header and records the
bytes, and download targets (whole, cut short, oversized, redirected). Every request is
recorded, so a test can assert that nothing reached the relay.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "sk-aitoearn-MEDIAKEY-5d1e8b"

# --- catalogue data (live values from the shared notes) -------------------------------------
_TIERS = [
    (1, 21.1, ["1024x1024", "1536x1024", "1024x1536", "1408x1056", "1056x1408", "1360x1088", "1088x1360",
               "1536x864", "864x1536"]),
    (2, 39.3, ["1920x1920", "2304x1536", "1536x2304", "2176x1632", "1632x2176", "2080x1664", "1664x2080",
               "2560x1440", "1440x2560"]),
    (4, 71.2, ["2880x2880", "3504x2336", "2336x3504", "3264x2448", "2448x3264", "3200x2560", "2560x3200",
               "3840x2160", "2160x3840"]),
]  # fmt: skip
IMAGE_SIZES = [size for _, _, sizes in _TIERS for size in sizes]
IMAGE_PRICING = [{"size": size, "price": price, "originPrice": origin} for price, origin, sizes in _TIERS
                 for size in sizes]  # fmt: skip

IMAGE_GENERATION = [
    {"name": "gpt-image-2", "label": "GPT Image 2", "tags": ["Sale"], "creditsScope": "seedance", "sizes": IMAGE_SIZES,
     "qualities": ["auto", "high", "medium", "low"], "styles": [], "pricing": IMAGE_PRICING,
     "description": "GPT Image 2", "futureField": {"kept": True}},
]  # fmt: skip
IMAGE_EDIT = [
    {"name": "gpt-image-2", "label": "GPT Image 2", "tags": ["Sale"], "creditsScope": "seedance", "sizes": IMAGE_SIZES,
     "pricing": IMAGE_PRICING, "maxInputImages": 14, "description": "GPT Image 2"},
]  # fmt: skip

SEEDANCE_CONSTRAINTS = {
    "images": {"maxCount": 9},
    "videos": {"maxCount": 3, "formats": ["mp4", "mov"], "minDuration": 2, "maxDuration": 15, "maxTotalDuration": 15,
               "maxSizeMb": 50, "minAspectRatio": 0.4, "maxAspectRatio": 2.5, "minWidth": 300, "maxWidth": 6000,
               "minPixels": 409600, "maxPixels": 2086876, "minFps": 24, "maxFps": 60},
    "audios": {"maxCount": 3, "formats": ["wav", "mp3"], "minDuration": 2, "maxDuration": 15, "maxTotalDuration": 15,
               "maxSizeMb": 15},
}  # fmt: skip
SIX_RATIOS = ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16"]
SEVEN_RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"]


def _rows(resolution: str | None, seconds: range, per_second: float, origin: float | None = None,
          mode: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    for s in seconds:
        row: dict[str, Any] = {"duration": s, "price": round(per_second * s, 4)}
        if resolution is not None:
            row["resolution"] = resolution
        if mode is not None:
            row["mode"] = mode
        if origin is not None:
            row["originPrice"] = round(origin * s, 4)
        rows.append(row)
    return rows


VIDEO_GENERATION = [
    {"name": "seedance-2-fast-beta", "label": "Seedance 2.0 Fast Beta",
     "tags": ["Sale", "Supports human subject video generation", "Input videos do not count toward tokens"],
     "creditsScope": "seedance", "modes": ["text2video", "image2video", "multi-image2video", "multi-ref"],
     "resolutions": ["480p", "720p"], "durations": list(range(4, 16)), "maxInputImages": 9,
     "inputConstraints": SEEDANCE_CONSTRAINTS, "aspectRatios": SIX_RATIOS,
     "defaults": {"resolution": "720p", "aspectRatio": "16:9", "duration": 6},
     "pricing": _rows("480p", range(4, 16), 5.5, 6) + _rows("720p", range(4, 16), 8, 12),
     "description": "Seedance 2.0 Fast Beta"},
    {"name": "happyhorse-1.1", "label": "HappyHorse 1.1", "tags": [], "creditsScope": "general",
     "modes": ["text2video", "image2video", "multi-image2video", "video2video"], "resolutions": ["720P", "1080P"],
     "durations": list(range(3, 16)), "maxInputImages": 9, "aspectRatios": ["16:9", "9:16", "1:1", "4:3", "3:4"],
     "defaults": {"resolution": "720P", "aspectRatio": "9:16", "duration": 5},
     "pricing": _rows("720P", range(3, 16), 13) + _rows("1080P", range(3, 16), 23)
     + _rows("720P", range(3, 16), 26, mode="video2video") + _rows("1080P", range(3, 16), 46, mode="video2video"),
     "description": "HappyHorse"},
    {"name": "doubao-seedance-2-0-260128", "label": "Seedance 2.0", "tags": [], "creditsScope": "seedance",
     "modes": ["text2video", "image2video", "flf2video", "multi-image2video", "multi-ref"],
     "resolutions": ["720p", "1080p", "4k"], "durations": list(range(4, 16)), "maxInputImages": 9,
     "inputConstraints": SEEDANCE_CONSTRAINTS, "aspectRatios": SIX_RATIOS,
     "defaults": {"resolution": "720p", "aspectRatio": "9:16", "duration": 5},
     "pricing": _rows("720p", range(4, 16), 15) + _rows("1080p", range(4, 16), 36) + _rows("4k", range(4, 16), 72),
     "description": "Seedance 2.0"},
    {"name": "grok-imagine-video", "label": "Grok Imagine Video", "tags": [], "creditsScope": "general",
     "modes": ["text2video", "image2video", "multi-image2video", "video2video"], "resolutions": ["720p"],
     "durations": list(range(1, 16)), "maxInputImages": 7, "aspectRatios": SEVEN_RATIOS,
     "defaults": {"aspectRatio": "9:16", "duration": 8},
     "pricing": _rows("720p", range(1, 16), 8, mode="text2video") + _rows("720p", range(1, 16), 8, mode="image2video")
     + _rows("720p", range(1, 11), 8, mode="multi-image2video") + _rows("720p", range(1, 9), 8, mode="video2video"),
     "description": "Grok"},
    {"name": "grok-imagine-video-1.5", "label": "Grok Imagine Video 1.5", "tags": [], "creditsScope": "general",
     "modes": ["image2video"], "resolutions": ["720p"], "durations": list(range(1, 16)), "maxInputImages": 1,
     "aspectRatios": SEVEN_RATIOS, "defaults": {"aspectRatio": "9:16", "duration": 8},
     "pricing": _rows("720p", range(1, 16), 15), "description": "Grok 1.5"},
]  # fmt: skip

VIDEO_STEPS = ["queued", "in_progress", "rendering"]  # then done


@functools.cache
def big_png() -> bytes:
    """A 4K (3840×2160) PNG with enough noise that its preview cannot stay a PNG under 1 MB."""
    from PIL import Image

    size = (3840, 2160)
    red = Image.linear_gradient("L").resize(size)
    green = Image.effect_noise(size, 40)
    blue = Image.linear_gradient("L").rotate(90).resize(size)
    out = io.BytesIO()
    Image.merge("RGB", (red, green, blue)).save(out, "PNG", compress_level=1)
    return out.getvalue()


@functools.cache
def small_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (64, 48), (200, 30, 30, 128)).save(out, "PNG")
    return out.getvalue()


VIDEO_BYTES = bytes(range(256)) * 1200  # 307,200 bytes standing in for an mp4


def envelope(data: Any, code: int = 0, message: str = "请求成功") -> dict[str, Any]:
    body = {"data": data, "code": code, "message": message, "requestId": f"req-{code}"}
    if code:
        body["timestamp"] = 1785055818361
    return body


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    body: bytes = b""
    declared_length: int | None = None  # announce this many bytes (more than sent: a cut transfer; a stream's size)
    no_length: bool = False  # no Content-Length: the body ends when the connection closes
    # The body in pieces instead, ``declared_length`` bytes in all: a huge file never held whole.
    stream: Callable[[], Iterable[bytes]] | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Answer:
        return cls(status, body=json.dumps(data, ensure_ascii=False).encode())

    @classmethod
    def error(cls, code: int, message: str, data: Any = None) -> Answer:
        return cls.json(envelope({} if data is None else data, code, message))


class FakeMedia:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.queued: dict[str, list[Answer]] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.image_tasks: dict[str, int] = {}  # log id -> looks so far
        self.image_bodies: dict[str, dict[str, Any]] = {}
        self.image_polls = 2  # the look at which an image task is done (the first says "generating")
        self.assets: dict[str, dict[str, Any]] = {}
        self.stored: dict[str, bytes] = {}  # asset id -> bytes the storage PUT received
        self.storage_headers: dict[str, dict[str, str]] = {}
        self.upload_mode = "put"  # put | form | no_url | no_confirm_url
        self.files: dict[str, tuple[str, bytes]] = {}
        # Videos walk through these status strings, one per poll; with ``video_seconds`` set, by
        # the time since submit instead (e.g. 20 s for a realistic render, none for a fast test).
        self.video_steps: list[str] = list(VIDEO_STEPS)
        self.video_seconds: float | None = None
        self.video_points: float | None = 48  # what a submit says it charged; None: the answer has no points
        self.routes: dict[str, Callable[[Recorded], Answer]] = {}
        self.key = KEY  # the key the native routes accept
        self.forward: str | None = None  # paths this fake does not serve go there (the chat fake relay)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeMedia:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- scripting ----------------------------------------------------------------------
    def enqueue(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self.queued.setdefault(path, []).extend(answers)

    def count(self, prefix: str = "/api/") -> int:
        return sum(1 for r in self.requests if r.path.startswith(prefix))

    def to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    # --- answers ------------------------------------------------------------------------
    def answer(self, request: Recorded) -> Answer:
        path = request.path.split("?")[0]
        with self._lock:
            queue = self.queued.get(path)
            if queue:
                return queue.pop(0)
        if path in self.routes:
            return self.routes[path](request)
        if path == "/api/ai/models/image/generation":
            return Answer.json(envelope(IMAGE_GENERATION))
        if path == "/api/ai/models/image/edit":
            return Answer.json(envelope(IMAGE_EDIT))
        if path == "/api/ai/models/video/generation":
            return Answer.json(envelope(VIDEO_GENERATION))
        if path.startswith("/files/"):
            return self._file(path)
        if path.startswith("/storage/"):
            return self._storage(request, path.removeprefix("/storage/"))
        if self.forward is not None and not path.startswith(_MEDIA_PREFIXES):
            return _forwarded(self.forward, request)
        if path.startswith("/api/") and request.headers.get("x-api-key") != self.key:
            return Answer.error(401, "Unauthorized")
        if path in ("/api/ai/image/generate", "/api/ai/image/edit"):
            return Answer.json(envelope(self._image_data(request.json())))
        if path in ("/api/ai/image/generate/async", "/api/ai/image/edit/async"):
            log_id = f"log-{len(self.image_tasks) + 1}"
            self.image_tasks[log_id] = 0
            self.image_bodies[log_id] = request.json()
            return Answer.json(envelope({"logId": log_id, "status": "generating"}))
        if path.startswith("/api/ai/image/task/"):
            return self._image_task(path.removeprefix("/api/ai/image/task/"))
        if path == "/api/ai/video/generations" and request.method == "POST":
            return self._submit_video(request.json())
        if path.startswith("/api/ai/video/generations/"):
            return self._video_status(path.removeprefix("/api/ai/video/generations/"))
        if path == "/api/assets/uploadSign":
            return self._sign(request.json())
        if path.startswith("/api/assets/") and path.endswith("/confirm"):
            return self._confirm(path.split("/")[3])
        return Answer.json({"statusCode": 404, "message": "Not Found"}, status=404)

    def _file(self, path: str) -> Answer:
        name = path.removeprefix("/files/")
        if name in self.files:
            kind, data = self.files[name]
            return Answer(200, {"content-type": kind}, data)
        if name == "image.png":
            return Answer(200, {"content-type": "image/png"}, big_png())
        if name in ("small.png", "cover.png"):
            return Answer(200, {"content-type": "image/png"}, small_png())
        if name.endswith(".mp4"):
            return Answer(200, {"content-type": "video/mp4"}, VIDEO_BYTES)
        if name == "truncated.bin":
            return Answer(200, {"content-type": "application/octet-stream"}, b"x" * 5000, declared_length=10_000)
        if name == "big.bin":
            return Answer(200, {"content-type": "application/octet-stream"}, b"y" * 2_000_000)
        if name == "stream.bin":
            return Answer(200, {"content-type": "application/octet-stream"}, b"z" * 300_000, no_length=True)
        if name == "redirect":
            return Answer(302, {"location": "/files/small.png"})
        if name == "unsafe-redirect":
            return Answer(302, {"location": "http://example.com/files/small.png"})
        return Answer(404, {"content-type": "text/plain"}, b"no such file")

    def _image_data(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("response_format") == "b64_json":
            item = {"b64_json": base64.b64encode(small_png()).decode(), "revised_prompt": "a red square"}
        else:
            item = {"url": f"{self.url}/files/image.png", "revised_prompt": body.get("prompt")}
        return {"created": 1785055818, "list": [item], "usage": {"input_tokens": 12, "output_tokens": 4096,
                "total_tokens": 4108}, "background": "opaque", "output_format": "png", "quality": "high",
                "size": body.get("size", "1024x1024")}  # fmt: skip

    def _image_task(self, log_id: str) -> Answer:
        if log_id not in self.image_tasks:
            return Answer.error(12302, "无效的 AI 任务 ID")
        self.image_tasks[log_id] += 1
        body = self.image_bodies.get(log_id, {})
        if self.image_tasks[log_id] < self.image_polls:
            return Answer.json(envelope({"logId": log_id, "status": "generating", "points": 1}))
        if "fail" in str(body.get("prompt", "")):
            return Answer.json(envelope({"logId": log_id, "status": "failed", "points": 1,
                                         "errorMessage": "content policy: the prompt was refused"}))  # fmt: skip
        return Answer.json(envelope({"logId": log_id, "status": "success", "points": 1, "duration": 5300,
                                     "images": self._image_data(body)["list"]}))  # fmt: skip

    def _submit_video(self, body: dict[str, Any]) -> Answer:
        task_id = f"vid-{len(self.videos) + 1}"
        prompt = str(body.get("prompt", ""))
        self.videos[task_id] = {"polls": 0, "body": body, "submitted": time.monotonic(),
                                "fate": "fail" if "fail" in prompt else "expire" if "expire" in prompt else
                                "slow" if "slow" in prompt else "cut" if "cut" in prompt else "ok"}  # fmt: skip
        charged = {"points": self.video_points} if self.video_points is not None else {}
        return Answer.json(envelope({"id": task_id, "status": "queued", **charged}))

    def _video_status(self, task_id: str) -> Answer:
        task = self.videos.get(task_id)
        if task is None:
            return Answer.error(12302, "无效的 AI 任务 ID")
        step = task["polls"]
        task["polls"] += 1
        steps = self.video_steps
        if self.video_seconds is not None:  # by time: the step the render has reached, past the last when done
            steps = steps or VIDEO_STEPS
            elapsed = time.monotonic() - task["submitted"]
            step = int(elapsed / self.video_seconds * len(steps)) if elapsed < self.video_seconds else len(steps)
        data: dict[str, Any] = {"id": task_id, "model": task["body"].get("model"), "input": {"prompt": "…"},
                                "submittedAt": "2026-07-02T12:00:00.000Z", "startedAt": "2026-07-02T12:00:01.000Z"}  # fmt: skip
        if steps and (task["fate"] == "slow" or step < len(steps)):
            data["status"] = steps[min(step, len(steps) - 1)]
        elif task["fate"] == "fail":
            data |= {"status": "rendering", "error": {"message": "The content was refused by the safety check"}}
        elif task["fate"] == "expire":
            data["status"] = "EXPIRED"
        else:
            video = "truncated.bin" if task["fate"] == "cut" else f"{task_id}.mp4"  # cut: the download breaks off
            data |= {"status": "success", "videoUrl": f"{self.url}/files/{video}",
                     "coverUrl": f"{self.url}/files/cover.png", "mediaId": "m-1",
                     "finishedAt": "2026-07-02T12:03:00.000Z"}  # fmt: skip
        return Answer.json(envelope(data))

    def _sign(self, body: dict[str, Any]) -> Answer:
        asset_id = f"asset-{len(self.assets) + 1}"
        self.assets[asset_id] = {"filename": body.get("filename"), "type": body.get("type"), "size": body.get("size")}
        data: dict[str, Any] = {"id": asset_id, "path": f"u1/temp/{body.get('filename')}",
                                "url": f"{self.url}/files/signed-{asset_id}"}  # fmt: skip
        if self.upload_mode != "no_url":
            data["uploadUrl"] = f"{self.url}/storage/{asset_id}?X-Amz-Signature=abc"
        if self.upload_mode in ("form", "no_url"):
            data["uploadFields"] = {"key": f"u1/temp/{body.get('filename')}", "policy": "eyJ4Ijoxfq=="}
        return Answer.json(envelope(data))

    def _storage(self, request: Recorded, asset_id: str) -> Answer:
        self.storage_headers[asset_id] = request.headers
        if any(name in request.headers for name in ("x-api-key", "authorization", "cookie")) or any(
            KEY in value for value in request.headers.values()
        ):
            return Answer(403, {"content-type": "application/xml"},
                          b"<Error><Code>AccessDenied</Code><Message>credentials not expected</Message></Error>")  # fmt: skip
        if request.method == "PUT":
            self.stored[asset_id] = request.body
        elif request.method == "POST":
            self.stored[asset_id] = _form_file(request)
        else:
            return Answer(405)
        return Answer(200, {"etag": '"abc"'})

    def _confirm(self, asset_id: str) -> Answer:
        asset = self.assets.get(asset_id)
        if asset is None:
            return Answer.error(12750, "资源不存在")
        if asset_id not in self.stored:
            return Answer.error(12751, "资源上传失败")
        data = {"id": asset_id, "userId": "u1", "userType": "user", "path": f"u1/temp/{asset['filename']}",
                "type": asset["type"], "status": "confirmed", "size": len(self.stored[asset_id]),
                "mimeType": "image/png", "filename": asset["filename"]}  # fmt: skip
        if self.upload_mode != "no_confirm_url":
            data["url"] = f"{self.url}/files/asset-{asset_id}"
        return Answer.json(envelope(data))

    # --- HTTP ---------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _serve(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Recorded(self.command, self.path, headers, self._body())
                fake.requests.append(request)
                answer = fake.answer(request)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                length = answer.declared_length if answer.declared_length is not None else len(answer.body)
                if answer.no_length:
                    self.send_header("connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("content-length", str(length))
                self.end_headers()
                try:
                    for piece in answer.stream() if answer.stream is not None else (answer.body,):
                        self.wfile.write(piece)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client hung up (a timeout test)
                    self.close_connection = True
                    return
                if answer.declared_length is not None:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = _serve

        return Handler


_MEDIA_PREFIXES = ("/api/ai/image/", "/api/ai/video/", "/api/assets/", "/files/", "/storage/")


def _forwarded(base: str, request: Recorded) -> Answer:
    """``request`` answered by the server at ``base`` (the whole body read, then passed on): one
    base URL for the chat and the media routes, as the real site has."""
    import httpx2

    skip = ("host", "content-length", "transfer-encoding", "connection", "accept-encoding")
    headers = {k: v for k, v in request.headers.items() if k not in skip}
    with httpx2.Client(timeout=30) as client:
        response = client.request(request.method, base + request.path, headers=headers, content=request.body)
    kept = {k: v for k, v in response.headers.items() if k.lower() in ("content-type", "retry-after")}
    return Answer(response.status_code, kept, response.content)


def _form_file(request: Recorded) -> bytes:
    """The ``file`` part of a multipart form (the storage's form-POST variant)."""
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    for part in request.body.split(b"--" + boundary):
        head, _, rest = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return rest[: -len(b"\r\n")]
    raise AssertionError("no file part")
