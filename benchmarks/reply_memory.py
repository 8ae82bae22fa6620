"""Memory of one huge reply: ``python -m benchmarks.reply_memory [--mib 100] [--piece 1000]``.

The fake relay streams a whole reply of ``--mib`` MiB of text in deltas of ``--piece`` characters.
A stdio server (``python -m aitoearn_mcp``, a fresh process per setting) receives it through a
real MCP client. Printed per setting: the server's RSS before the call, its peak during the call
(VmHWM) and its RSS 2 s after the result, as increases over the RSS before; whether the relay saw
the stream closed; and how many characters the result kept. ``--server-path DIR`` runs another
checkout's package (``PYTHONPATH=DIR``), for a before/after comparison.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import child_pid, rss_kib  # noqa: E402
from tests import sse  # noqa: E402
from tests.fake_relay import FakeRelay, Reply  # noqa: E402

KEY = "sk-bench-memory-0123456789"
MIB = 1024 * 1024


@functools.lru_cache(maxsize=4)
def _chunks(total: int, piece: int) -> tuple[bytes, ...]:
    head = sse.encode([sse.message_start(), {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}])  # fmt: skip
    text = "x" * (piece - 9)
    body = [
        sse.encode([{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"{i:08d} {text}"}}
                    for i in range(start, min(start + 256, total // piece))], pings=False, comments=False)
        for start in range(0, total // piece, 256)
    ]  # fmt: skip
    tail = sse.encode([{"type": "content_block_stop", "index": 0}, *sse.message_end()])
    return (head, *body, tail)


def _answer(body: bytes) -> Reply:
    words = dict(w.split("=", 1) for w in json.loads(body)["messages"][-1]["content"].split() if "=" in w)
    if "bytes" not in words:
        return Reply.sse(sse.text_reply(["warm", " up"]))
    return Reply(chunks=list(_chunks(int(words["bytes"]), int(words["piece"]))))


async def measure(
    relay: FakeRelay, label: str, env: dict[str, str], size: int, piece: int, calls: int
) -> dict[str, Any]:
    environment = {"PATH": os.environ["PATH"], "AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url, **env}
    # -m puts the working directory first on the path: run in the checkout whose package is measured.
    params = StdioServerParameters(command=sys.executable, args=["-m", "aitoearn_mcp"], env=environment,
                                   cwd=env.get("PYTHONPATH", str(ROOT)))  # fmt: skip
    hangups = len(relay.hangups)
    with open(os.devnull, "w") as devnull:
        async with Client(stdio_client(params, errlog=devnull), read_timeout_seconds=600) as client:
            pid = child_pid("aitoearn_mcp")
            args = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "warm"}]}
            await client.call_tool("send_message", args)
            before = rss_kib(pid, "VmRSS")
            started = time.monotonic()
            big = {**args, "messages": [{"role": "user", "content": f"bytes={size} piece={piece}"}]}
            result = await client.call_tool("send_message", big)
            seconds = time.monotonic() - started
            peak = rss_kib(pid, "VmHWM")
            await anyio.sleep(2)
            after = rss_kib(pid, "VmRSS")
            kept = (result.structured_content or {}).get("truncated", {}).get("full_chars")
            for _ in range(calls - 1):  # the same reply again: does what is held grow with each call?
                await client.call_tool("send_message", big)
            await anyio.sleep(2 if calls > 1 else 0)
            after_all = rss_kib(pid, "VmRSS")
    return {
        "setting": label,
        "seconds": round(seconds, 2),
        "rss_before_mib": round(before / 1024),
        "peak_increase_mib": round((peak - before) / 1024),
        "held_after_mib": round((after - before) / 1024),
        f"held_after_{calls}_calls_mib": round((after_all - before) / 1024),
        "stream_closed": len(relay.hangups) > hangups,
        "chars_kept": kept,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100, help="size of the relay's reply (MiB of text)")
    parser.add_argument("--piece", type=int, default=1000, help="characters per text delta")
    parser.add_argument("--calls", type=int, default=5, help="calls in a row, for what stays held")
    parser.add_argument("--server-path", help="run the package from this checkout instead")
    args = parser.parse_args()
    size = args.mib * MIB
    relay = FakeRelay().start()
    relay.route("/api/ai/v1/messages", _answer)
    _chunks(size, args.piece)  # encoded once, before anything is measured
    extra = {"PYTHONPATH": args.server_path} if args.server_path else {}
    settings = [("default (32 MiB bound)", extra), ("AITOEARN_MAX_REPLY_BYTES=2 MiB", {**extra,
                "AITOEARN_MAX_REPLY_BYTES": str(2 * MIB)})]  # fmt: skip
    if args.server_path:
        settings = [(f"package from {args.server_path}", extra)]
    try:
        for label, env in settings:
            print(json.dumps(await measure(relay, label, env, size, args.piece, args.calls)), flush=True)
    finally:
        relay.stop()


if __name__ == "__main__":
    anyio.run(main)
