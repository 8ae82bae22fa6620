"""Images and videos (issue 24): what a generated image's result costs beyond the relay and the
download, what a video costs while it renders, and the memory a large download takes.
``python -m benchmarks.run --media`` runs these rows alone; ``--image`` only the image's.

The fake media relay runs in its own process (``media_process.py``), so serving a 5.5 MB PNG or
200 MiB never counts against the server. Servers keep their records in memory, where each is held
beside its delegation (as the chat delegation row does).

Goals: an image's result under 150 ms beyond the relay's answer and a direct download of the
image; a running video under 100 KB of memory and under 1% of a core while it waits; a 200 MB
download under 10 MB of peak memory.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from aitoearn_mcp.delegation._image_job import FIRST_LOOK
from benchmarks.media_process import BIG_VIDEO_BYTES, KEY
from benchmarks.procfs import child_pid, cpu_seconds, reset_peak_rss, rss_kib

ROOT = Path(__file__).resolve().parent.parent
OURS = [sys.executable, "-m", "aitoearn_mcp"]
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 (the servers' logs, for the whole run)
IMAGE = {"model": "gpt-image-2", "prompt": "A lighthouse at dusk, oil painting."}
VIDEO = {"model": "seedance-2-fast-beta"}  # 48 credits: under the default per-call limit


@contextlib.contextmanager
def media_relay() -> Iterator[str]:
    """The fake media relay's process, and its URL while it runs."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "media_process.py")], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def structured(result: CallToolResult) -> dict[str, Any]:
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"the call failed: {result.content}")
    return result.structured_content


class MediaBench:
    def __init__(self, relay_url: str, repeats: int) -> None:
        self.relay = relay_url
        self.repeats = repeats
        self.folder = Path(tempfile.mkdtemp(prefix="aitoearn-bench-media-"))  # the save folder (the only root)
        self.env = {"PATH": os.environ["PATH"], "AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay_url,
                    "HOME": tempfile.mkdtemp(prefix="aitoearn-bench-home-"), "AITOEARN_FILES_ROOTS": str(self.folder),
                    "AITOEARN_CONVERSATIONS": "memory"}  # fmt: skip

    def client(self) -> Client:
        """A fresh stdio server."""
        params = StdioServerParameters(command=OURS[0], args=OURS[1:], env=self.env)
        return Client(stdio_client(params, errlog=DEVNULL), read_timeout_seconds=600)

    def empty_folder(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()

    # --- an image's result beyond the relay and the download ---------------------------------
    async def direct_image(self, http: httpx2.AsyncClient) -> float:
        """The floor: the task submitted, looked at when the server first looks (the relay's
        answer), then its image link downloaded whole, with httpx2."""
        started = time.perf_counter()
        submitted = await http.post(self.relay + "/api/ai/image/generate/async",
                                    json={**IMAGE, "response_format": "url"}, headers={"x-api-key": KEY})  # fmt: skip
        await anyio.sleep(FIRST_LOOK)
        log_id = submitted.json()["data"]["logId"]
        answer = await http.get(f"{self.relay}/api/ai/image/task/{log_id}", headers={"x-api-key": KEY})
        url = answer.json()["data"]["images"][0]["url"]
        async with http.stream("GET", url) as got:
            async for _ in got.aiter_bytes():
                pass
        return time.perf_counter() - started

    async def image_overhead(self) -> dict[str, Any]:
        """generate_image through a stdio client minus the floor, pair by pair: the preview
        (downscale and encode), saving the file and shaping the result."""
        async with self.client() as ours, httpx2.AsyncClient() as http:
            for _ in range(2):  # warm: imports (Pillow), the catalogue, connections
                await ours.call_tool("generate_image", IMAGE)
                await self.direct_image(http)
            shown = structured(await ours.call_tool("generate_image", IMAGE))["images"][0]
            assert shown["shown"] and shown["path"], shown  # previewed and saved: what is measured
            self.empty_folder()
            diffs, ours_t, floor_t = [], [], []
            for _ in range(self.repeats * 3):
                started = time.perf_counter()
                result = await ours.call_tool("generate_image", IMAGE)
                a = time.perf_counter() - started
                b = await self.direct_image(http)
                structured(result)
                self.empty_folder()
                ours_t.append(a)
                floor_t.append(b)
                diffs.append(a - b)
        return {"image": f"{shown['width']}x{shown['height']} PNG, {shown['bytes']} bytes",
                "generate_image_ms": statistics.median(ours_t) * 1e3,
                "relay_and_download_ms": statistics.median(floor_t) * 1e3,
                "overhead_ms": statistics.median(diffs) * 1e3, "pairs": len(diffs), "goal": "< 150 ms"}  # fmt: skip

    # --- running videos: memory and CPU while they wait ----------------------------------------
    async def running_videos(self, n: int = 100, window: float = 30.0) -> dict[str, Any]:
        """``n`` generate_video calls answered "running" (wait_seconds 0) while the relay keeps each
        rendering through status strings no client knows: the server's RSS growth per video, and
        its CPU time over ``window`` seconds while they wait (polled with backoff)."""
        slow = {**VIDEO, "prompt": "bench slow render", "wait_seconds": 0, "download": False}
        async with self.client() as client:
            pid = child_pid("aitoearn_mcp")
            for _ in range(2):  # warm: imports, the catalogue, the relay connection
                warm = structured(await client.call_tool("generate_video", slow))
                await client.call_tool("get_reply", {"reply_id": warm["reply_id"], "cancel": True})
            await anyio.sleep(1)
            before = rss_kib(pid, "VmRSS")
            ids = []
            for _ in range(n):
                started = structured(await client.call_tool("generate_video", slow))
                assert started["status"] == "running", started
                ids.append(started["reply_id"])
            await anyio.sleep(1)  # every submit answered
            cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
            await anyio.sleep(window)
            cpu, wall = cpu_seconds(pid) - cpu_before, time.perf_counter() - wall_before
            after = rss_kib(pid, "VmRSS")
            probe = structured(await client.call_tool("get_reply", {"reply_id": ids[-1], "wait_seconds": 0}))
            for reply_id in ids:
                await client.call_tool("get_reply", {"reply_id": reply_id, "cancel": True})
        assert probe["status"] == "running", probe
        share = cpu / wall * 100
        return {"videos": n, "kib_per_video": (after - before) / n, "kb_per_video": (after - before) * 1.024 / n,
                "window_s": wall, "cpu_s_in_window": cpu, "core_percent_all": share,
                "core_percent_per_video": share / n,
                "goal": "< 100 KB and < 1% of a core per running video"}  # fmt: skip

    # --- a 200 MiB download's peak memory -----------------------------------------------------
    async def finished(self, client: Client, args: dict[str, Any]) -> dict[str, Any]:
        content = structured(await client.call_tool("generate_video", {**args, "wait_seconds": 120}))
        while content["status"] == "running":
            content = structured(await client.call_tool("get_reply", {"reply_id": content["reply_id"],
                                                                      "wait_seconds": 120}))  # fmt: skip
        assert content["status"] == "complete", content
        return content

    async def download_peak(self) -> dict[str, Any]:
        """A finished video of 200 MiB, saved (``download`` true) by a fresh server: its peak RSS
        during the call minus its RSS before (after one small video, so imports are not counted)."""
        async with self.client() as client:
            pid = child_pid("aitoearn_mcp")
            await self.finished(client, {**VIDEO, "prompt": "bench warm"})
            await anyio.sleep(0.5)
            reset_peak_rss(pid)
            before = rss_kib(pid, "VmRSS")
            started = time.perf_counter()
            content = await self.finished(client, {**VIDEO, "prompt": "bench big"})
            elapsed = time.perf_counter() - started
            peak = rss_kib(pid, "VmHWM")
        size = Path(content["path"]).stat().st_size
        self.empty_folder()
        assert size == BIG_VIDEO_BYTES, size
        return {"file_bytes": size, "server_rss_before_mib": before / 1024, "server_peak_rss_mib": peak / 1024,
                "peak_minus_before_mib": (peak - before) / 1024, "call_s": elapsed,
                "goal": "peak - before < 10 MB"}  # fmt: skip


async def image_row(repeats: int) -> dict[str, Any]:
    with media_relay() as url:
        return {"media_image_overhead": await MediaBench(url, repeats).image_overhead()}


async def media_rows(repeats: int) -> dict[str, Any]:
    with media_relay() as url:
        bench = MediaBench(url, repeats)
        return {
            "media_image_overhead": await bench.image_overhead(),
            "media_running_videos": await bench.running_videos(),
            "media_download_rss": await bench.download_peak(),
        }
