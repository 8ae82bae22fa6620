"""The benchmark suite: ``python -m benchmarks.run`` from the repository root.

Starts the fake relay in its own process and measures, side by side in one run, the
aitoearn-mcp server against floors on the same machine. These machines are shared and
noisy, so every figure is a median over repeated runs, and comparisons are ratios (or
differences) taken pair by pair, A then B, never a lone absolute time.

Prints a table, writes the figures as JSON and draws one PNG chart (``--out``).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx2
import openai
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from benchmarks.choosing import choosing_rows
from benchmarks.media import image_row, media_rows
from benchmarks.procfs import child_pid, cpu_seconds, rss_kib

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
OURS = [PY, "-m", "aitoearn_mcp"]
OURS_SCRIPT = [str(Path(PY).with_name("aitoearn-mcp"))]  # what a host spawns (uvx runs the same script)
FLOOR = [PY, str(ROOT / "benchmarks" / "floor_server.py")]
KEY = "sk-bench"
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 (the servers' logs, for the whole run)


def median(values: list[float]) -> float:
    return statistics.median(values)


def message_args(deltas: int = 12, delay: float = 0.0, model: str = "claude-sonnet-5") -> dict[str, Any]:
    """A request the benchmark relay answers with ``deltas`` deltas, ``delay`` seconds apart."""
    return {
        "model": model,
        "max_tokens": 64000,
        "messages": [{"role": "user", "content": f"bench deltas={deltas} delay={delay}"}],
    }


OPENAI_MODEL = "deepseek-v4-pro"  # an openai-compatible channel in the fake relay's catalogue


class Bench:
    def __init__(self, relay_url: str, repeats: int) -> None:
        self.relay = relay_url
        self.repeats = repeats
        # The servers keep their default store (an SQLite file) in a home of their own.
        self.env = {"PATH": os.environ["PATH"], "AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay_url,
                    "HOME": tempfile.mkdtemp(prefix="aitoearn-bench-home-")}  # fmt: skip

    # --- 1. start-up -----------------------------------------------------------------------
    def spawn_to_tools_list(self, argv: list[str]) -> tuple[float, float]:
        """Seconds from spawning ``argv`` to its answer to ``tools/list``, sent with the handshake at
        once, as a host that does not wait does; and the CPU seconds the process spent until then
        (steadier than the wall clock on a busy machine)."""
        rpc = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=self.env)  # fmt: skip
        assert proc.stdin and proc.stdout
        proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in rpc))
        proc.stdin.flush()
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{argv} exited before answering tools/list")
            if json.loads(line).get("id") == 2:
                elapsed = time.perf_counter() - started
                break
        cpu = cpu_seconds(proc.pid)
        proc.kill()
        proc.wait()
        return elapsed, cpu

    def startup(self, ours: list[str] = OURS_SCRIPT) -> dict[str, Any]:
        """Ours (the console script hosts run) against the one-tool floor on the same SDK, in pairs
        whose order alternates, so a slow moment of this shared machine falls on both; the figures
        are medians of the pairwise differences, in wall-clock and in CPU time."""
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "floor": []}
        for i in range(self.repeats * 5):
            pair = [("ours", ours), ("floor", FLOOR)]
            for name, argv in pair[:: -1 if i % 2 else 1]:
                runs[name].append(self.spawn_to_tools_list(argv))
        wall = [a[0] - b[0] for a, b in zip(runs["ours"], runs["floor"], strict=True)]
        cpu = [a[1] - b[1] for a, b in zip(runs["ours"], runs["floor"], strict=True)]
        quartiles = statistics.quantiles(wall, n=4)
        return {
            "ours_s": median([r[0] for r in runs["ours"]]),
            "floor_s": median([r[0] for r in runs["floor"]]),
            "ratio": median([r[0] for r in runs["ours"]]) / median([r[0] for r in runs["floor"]]),
            "difference_ms": median(wall) * 1e3,
            "difference_iqr_ms": [quartiles[0] * 1e3, quartiles[2] * 1e3],
            "ours_cpu_ms": median([r[1] for r in runs["ours"]]) * 1e3,
            "floor_cpu_ms": median([r[1] for r in runs["floor"]]) * 1e3,
            "difference_cpu_ms": median(cpu) * 1e3,
            "pairs": len(wall),
            "goal": "<= +20 ms",
        }

    def installed_startup(self) -> dict[str, Any]:
        """``startup`` for the package as ``uvx`` has it: built into a wheel and installed (not
        editable: its modules in site-packages, byte-compiled by the installer), on the same
        dependencies."""
        with tempfile.TemporaryDirectory(prefix="aitoearn-wheel-") as folder:
            wheels, target = Path(folder) / "wheels", Path(folder) / "site"
            pip = [PY, "-m", "pip", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)],
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            [wheel] = wheels.glob("*.whl")
            subprocess.run([*pip, "install", "--no-deps", "--compile", "--target", str(target), str(wheel)], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            # The installed copy first on the path, before the editable checkout's.
            script = f"import sys; sys.path.insert(0, {str(target)!r}); from aitoearn_mcp.cli._main import main; main()"
            figures = self.startup([PY, "-c", script])
        return {**figures, "install": "wheel, pip install --target, byte-compiled"}

    # --- clients -----------------------------------------------------------------------------
    def stdio_client(self, argv: list[str], **env: str) -> Client:
        params = StdioServerParameters(command=argv[0], args=argv[1:], env={**self.env, **env})
        return Client(stdio_client(params, errlog=DEVNULL), read_timeout_seconds=600)

    async def direct_stream(self, http: httpx2.AsyncClient, deltas: int, delay: float = 0.0) -> float:
        """The bare floor: one httpx2 SSE loop that only JSON-decodes each event."""
        body = {**message_args(deltas, delay), "stream": True}
        started = time.perf_counter()
        async with http.stream("POST", self.relay + "/api/ai/v1/messages", json=body, headers={"x-api-key": KEY}) as r:
            async for event in httpx2.EventSource(r):
                if event.data:
                    json.loads(event.data)
        return time.perf_counter() - started

    async def direct_chat_stream(self, http: httpx2.AsyncClient, deltas: int) -> float:
        """The same floor on the OpenAI route: an httpx2 SSE loop that only JSON-decodes each chunk."""
        body = {"model": OPENAI_MODEL, "messages": message_args(deltas)["messages"], "stream": True}
        started = time.perf_counter()
        headers = {"authorization": f"Bearer {KEY}"}
        async with http.stream("POST", self.relay + "/api/ai/chat/completions", json=body, headers=headers) as r:
            async for event in httpx2.EventSource(r):
                if event.data and event.data != "[DONE]":
                    json.loads(event.data)
        return time.perf_counter() - started

    async def openai_sdk_stream(self, client: openai.AsyncOpenAI, deltas: int) -> float:
        started = time.perf_counter()
        messages: Any = message_args(deltas)["messages"]
        async with client.chat.completions.stream(model=OPENAI_MODEL, messages=messages) as stream:
            await stream.get_final_completion()
        return time.perf_counter() - started

    async def sdk_stream(self, client: anthropic.AsyncAnthropic, deltas: int) -> float:
        args = message_args(deltas)
        started = time.perf_counter()
        async with client.messages.stream(**args) as stream:
            await stream.get_final_message()
        return time.perf_counter() - started

    @staticmethod
    async def timed(call: Callable[[], Awaitable[Any]]) -> float:
        started = time.perf_counter()
        await call()
        return time.perf_counter() - started

    # --- 2. per-call overhead ----------------------------------------------------------------
    async def per_call(self) -> dict[str, Any]:
        calls = self.repeats * 40
        async with self.stdio_client(OURS) as ours, self.stdio_client(FLOOR) as floor, httpx2.AsyncClient() as http:
            for _ in range(5):  # warm up connections and caches
                await ours.call_tool("send_message", message_args())
                await self.direct_stream(http, 12)
            diffs, ours_t, direct_t, floor_t = [], [], [], []
            for _ in range(calls):
                a = await self.timed(lambda: ours.call_tool("send_message", message_args()))
                b = await self.direct_stream(http, 12)
                c = await self.timed(lambda: floor.call_tool("echo", {"text": "Say one sentence."}))
                ours_t.append(a)
                direct_t.append(b)
                floor_t.append(c)
                diffs.append(a - b)
        sdk_round_trip = median(floor_t)
        overhead = median(diffs)
        return {
            "send_message_ms": median(ours_t) * 1e3,
            "direct_httpx2_ms": median(direct_t) * 1e3,
            "overhead_ms": overhead * 1e3,
            "sdk_floor_tool_call_ms": sdk_round_trip * 1e3,
            "overhead_beyond_sdk_floor_ms": (overhead - sdk_round_trip) * 1e3,
            "goal": "overhead < 1.0 ms",
        }

    # --- 3. throughput, and 6. its scaling -------------------------------------------------
    async def side_by_side(
        self, ours: Callable[[], Awaitable[Any]], bare: Callable[[], Awaitable[float]],
        sdk: Callable[[], Awaitable[float]], sdk_name: str,
    ) -> dict[str, float]:  # fmt: skip
        """send_message, the bare loop and an SDK, ``repeats`` times each, pair by pair."""
        ours_t, bare_t, sdk_t, r_bare, r_sdk = [], [], [], [], []
        for _ in range(self.repeats):
            a, b, c = await self.timed(ours), await bare(), await sdk()
            ours_t.append(a)
            bare_t.append(b)
            sdk_t.append(c)
            r_bare.append(a / b)
            r_sdk.append(a / c)
        return {"send_message_s": median(ours_t), "bare_sse_s": median(bare_t), f"{sdk_name}_s": median(sdk_t),
                "ratio_vs_bare": median(r_bare), "ratio_vs_sdk": median(r_sdk)}  # fmt: skip

    async def throughput(self, sizes: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with httpx2.AsyncClient() as http:
            sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=self.relay + "/api/ai", http_client=http,
                                           default_headers={"x-api-key": KEY})  # fmt: skip
            for deltas in sizes:
                await self.direct_stream(http, deltas)  # the relay encodes each size once: do it before timing
                async with self.stdio_client(OURS) as ours:  # a fresh server: its peak RSS is this size's
                    await ours.call_tool("send_message", message_args(12))
                    figures = await self.side_by_side(
                        lambda d=deltas: ours.call_tool("send_message", message_args(d)),
                        lambda d=deltas: self.direct_stream(http, d),
                        lambda d=deltas: self.sdk_stream(sdk, d),
                        "anthropic_sdk",
                    )
                    peak = rss_kib(child_pid("aitoearn_mcp"))
                out[str(deltas)] = {
                    **figures,
                    "us_per_delta": figures["send_message_s"] / deltas * 1e6,
                    "bare_us_per_delta": figures["bare_sse_s"] / deltas * 1e6,
                    "server_peak_rss_mib": peak / 1024,
                }
        return out

    # --- 3b. throughput on the OpenAI-compatible route ---------------------------------------
    async def chat_throughput(self, deltas: int = 6000) -> dict[str, Any]:
        async with httpx2.AsyncClient() as http, self.stdio_client(OURS) as ours:
            sdk = openai.AsyncOpenAI(api_key=KEY, base_url=self.relay + "/api/ai", http_client=http)
            await self.direct_chat_stream(http, deltas)  # the relay encodes each size once: do it before timing
            await ours.call_tool("send_message", message_args(12, model=OPENAI_MODEL))
            figures = await self.side_by_side(
                lambda: ours.call_tool("send_message", message_args(deltas, model=OPENAI_MODEL)),
                lambda: self.direct_chat_stream(http, deltas),
                lambda: self.openai_sdk_stream(sdk, deltas),
                "openai_sdk",
            )
        return {"deltas": deltas, **figures, "goal": "<= 1.25x bare, <= 0.30x openai SDK"}

    # --- 3c. the added cost of a stored conversation ----------------------------------------
    async def conversation_cost(self, store: str, turns: int = 50) -> dict[str, Any]:
        """One call continuing a ``turns``-turn conversation (each turn ~1 KB asked, a sentence
        answered) minus the same call starting a new one, in-process: the server's own cost
        plus the larger request it sends. ``store``: memory, an SQLite file, or a Redis URL."""
        from pydantic import SecretStr

        from aitoearn_mcp import Config, create_server

        logging.getLogger("aitoearn_mcp").setLevel(logging.WARNING)  # in-process: no log line per call
        config = Config(base_url=self.relay, api_key=SecretStr(KEY), conversations=store)
        question = "bench deltas=12 delay=0 " + "context " * 128
        ask = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": question}]}
        async with Client(create_server(config)) as client:
            first = await client.call_tool("send_message", ask)
            cid = (first.structured_content or {})["conversation_id"]
            for _ in range(turns - 1):
                await client.call_tool("send_message", {**ask, "conversation_id": cid})
            # Branching after the last turn always continues the same 50 turns.
            continued = {**ask, "conversation_id": f"{cid}#{turns}"}
            for _ in range(5):
                await client.call_tool("send_message", continued)
                await client.call_tool("send_message", ask)
            diffs, with_t, without_t = [], [], []
            for _ in range(self.repeats * 15):
                a = await self.timed(lambda: client.call_tool("send_message", continued))
                b = await self.timed(lambda: client.call_tool("send_message", ask))
                with_t.append(a)
                without_t.append(b)
                diffs.append(a - b)
        kind = "memory" if store == "memory" else "redis" if store.startswith("redis") else "sqlite"
        return {"turns": turns, "store": kind, "with_ms": median(with_t) * 1e3,
                "without_ms": median(without_t) * 1e3, "added_ms": median(diffs) * 1e3,
                "goal": {"memory": "< 2 ms", "sqlite": "< 3 ms", "redis": "< 5 ms"}[kind]}  # fmt: skip

    async def conversation_rows(self) -> dict[str, Any]:
        """``conversation_cost`` on each store: memory, an SQLite file, a Redis server of its own."""
        from tests.conftest import RedisServer

        results = {"conversation_memory": await self.conversation_cost("memory")}
        with tempfile.TemporaryDirectory() as folder:
            results["conversation_sqlite"] = await self.conversation_cost(str(Path(folder) / "store.sqlite3"))
            redis = RedisServer(folder)
            try:
                results["conversation_redis"] = await self.conversation_cost(redis.url)
            finally:
                redis.stop()
        return results

    # --- 3b. delegations ----------------------------------------------------------------------
    async def delegation_memory(self, n: int = 300) -> dict[str, Any]:
        """Resident memory per running delegation beyond its text: ``n`` calls answered "running"
        at once (wait_seconds 0) while each model thinks (the relay sends only pings, so no
        text has arrived), over one stdio server."""
        slow = {**message_args(), "wait_seconds": 0}
        slow["messages"] = [{"role": "user", "content": "bench deltas=12 think=120"}]
        # In memory, where each record is held beside its delegation: SQLite's page cache (up to
        # 2 MiB a connection) is a fixed cost that would be spread over the sample as if per call.
        async with self.stdio_client(OURS, AITOEARN_CONVERSATIONS="memory") as client:
            for _ in range(3):  # warm: imports, the catalogue, the first relay connection
                await client.call_tool("send_message", message_args())
            pid = child_pid("aitoearn_mcp")
            await anyio.sleep(0.5)
            before = rss_kib(pid, "VmRSS")
            ids = []
            for _ in range(n):
                result = await client.call_tool("send_message", slow)
                assert (result.structured_content or {}).get("status") == "running", result
                ids.append(result.structured_content["reply_id"])  # type: ignore[index]
            await anyio.sleep(2)
            after = rss_kib(pid, "VmRSS")
            probe = await client.call_tool("get_reply", {"reply_id": ids[-1], "wait_seconds": 0})
            text_chars = (probe.structured_content or {}).get("text_chars", 0)
            for reply_id in ids:
                await client.call_tool("get_reply", {"reply_id": reply_id, "cancel": True})
        assert text_chars == 0, text_chars
        return {"delegations": n, "kib_per_delegation": (after - before) / n, "text_chars_each": text_chars,
                "goal": "< 50 KB"}  # fmt: skip

    async def get_reply_cost(self, store: str) -> dict[str, Any]:
        """get_reply on a complete reply minus a direct read of its record from the same store,
        pair by pair, in-process."""
        from pydantic import SecretStr

        from aitoearn_mcp import Config, create_server
        from aitoearn_mcp.store._open import open_store

        logging.getLogger("aitoearn_mcp").setLevel(logging.WARNING)
        config = Config(base_url=self.relay, api_key=SecretStr(KEY), conversations=store)
        shared = open_store(config.conversations, config.conversation_ttl, config.conversation_max_bytes)
        async with Client(create_server(config, store=shared)) as client:
            done = await client.call_tool("send_message", message_args(200))
            reply_id = (done.structured_content or {})["reply_id"]
            owner = await shared.owner_tag(SecretStr(KEY))
            diffs, via_tool, direct = [], [], []
            for _ in range(self.repeats * 30):
                a = await self.timed(lambda: client.call_tool("get_reply", {"reply_id": reply_id}))
                b = await self.timed(lambda: shared.load_reply(reply_id, owner))
                via_tool.append(a)
                direct.append(b)
                diffs.append(a - b)
        redis = store.startswith("redis")
        return {"store": "redis" if redis else "memory", "get_reply_ms": median(via_tool) * 1e3,
                "direct_read_ms": median(direct) * 1e3, "added_ms": median(diffs) * 1e3,
                "goal": "< 5 ms" if redis else "< 2 ms"}  # fmt: skip

    async def delegation_rows(self) -> dict[str, Any]:
        """Memory per running delegation, and get_reply against a direct read in memory and Redis."""
        from tests.conftest import RedisServer

        rows = {"delegation_memory": await self.delegation_memory(),
                "get_reply_memory": await self.get_reply_cost("memory")}  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            redis = RedisServer(folder)
            try:
                rows["get_reply_redis"] = await self.get_reply_cost(redis.url)
            finally:
                redis.stop()
        return rows

    # --- 4. fan-out ------------------------------------------------------------------------
    async def fan_out(self, n: int = 20) -> dict[str, Any]:
        slow = message_args(40, 0.25)
        ratios, one_t, many_t = [], [], []
        async with self.stdio_client(OURS) as client:
            for _ in range(max(1, self.repeats // 2)):
                one = await self.timed(lambda: client.call_tool("send_message", slow))

                async def many() -> None:
                    async with anyio.create_task_group() as tasks:
                        for _ in range(n):
                            tasks.start_soon(client.call_tool, "send_message", slow)

                together = await self.timed(many)
                one_t.append(one)
                many_t.append(together)
                ratios.append(together / one)
        return {"one_call_s": median(one_t), f"{n}_concurrent_s": median(many_t), "ratio": median(ratios),
                "goal": "<= 1.2"}  # fmt: skip

    # --- 7. capacity over HTTP: 1,000 calls in flight, and CPU per short call --------------------
    def http_process(self, argv: list[str], port: int, env: dict[str, str] | None = None,
                     cwd: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        """Start an HTTP server process (``env``: instead of the benchmark's) and wait until its
        port takes connections."""
        import socket

        proc = subprocess.Popen(argv, env=self.env if env is None else env, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        for _ in range(400):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return proc
            time.sleep(0.05)
        proc.kill()
        raise RuntimeError(f"{argv} did not start")

    @staticmethod
    def http_client(port: int, streams: int) -> Client:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        timeout = create_mcp_http_client().timeout
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=streams)
        http = httpx2.AsyncClient(timeout=timeout, limits=limits)
        return Client(
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http), read_timeout_seconds=600
        )

    async def capacity(self, n: int = 1000) -> dict[str, Any]:
        """``n`` concurrent send_message calls, each streaming 40 deltas 0.1 s apart."""
        port = 18000 + (os.getpid() + 7) % 1000
        proc = self.http_process([*OURS, "--transport", "streamable-http", "--port", str(port)], port)
        try:
            idle = rss_kib(proc.pid, "VmRSS")
            failures = 0
            async with self.http_client(port, n) as client:
                await client.list_tools()

                async def one() -> None:
                    nonlocal failures
                    result = await client.call_tool("send_message", message_args(40, 0.1))
                    failures += bool(result.is_error or not result.content[0].text.startswith("tok0 tok1"))  # type: ignore[union-attr]

                started = time.perf_counter()
                async with anyio.create_task_group() as tasks:
                    for _ in range(n):
                        tasks.start_soon(one)
                elapsed = time.perf_counter() - started
            peak = rss_kib(proc.pid)
        finally:
            proc.kill()
            proc.wait()
        return {"calls": n, "failures": failures, "wall_s": elapsed, "server_idle_rss_mib": idle / 1024,
                "server_peak_rss_mib": peak / 1024, "kib_per_call": (peak - idle) / n,
                "goal": "no failure, < 200 KiB per call"}  # fmt: skip

    async def cpu_per_call(self, calls: int = 700, deltas: int = 12, delay: float = 0.0,
                           at_once: int = 1) -> dict[str, Any]:  # fmt: skip
        """Server CPU time per call over HTTP (``deltas`` deltas, ``delay`` seconds apart, ``at_once``
        calls at a time), against two floors measured alike: a one-tool stateless MCPServer answering
        one call, and a direct httpx2 client reading the same stream."""
        ours_port, floor_port = 18000 + (os.getpid() + 11) % 1000, 18000 + (os.getpid() + 13) % 1000
        ours = self.http_process([*OURS, "--transport", "streamable-http", "--port", str(ours_port),
                                  "--log-level", "WARNING"], ours_port)  # fmt: skip
        floor = self.http_process([*FLOOR, str(floor_port)], floor_port)

        async def together(call: Callable[[], Awaitable[Any]]) -> None:
            async with anyio.create_task_group() as tasks:
                for _ in range(at_once):
                    tasks.start_soon(call)

        try:
            async with (
                self.http_client(ours_port, 4 * at_once) as a,
                self.http_client(floor_port, 4 * at_once) as b,
                httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=at_once)) as http,
            ):

                async def send() -> None:
                    await a.call_tool("send_message", message_args(deltas, delay))

                async def echo() -> None:
                    await b.call_tool("echo", {"text": "Say one sentence."})

                async def direct() -> None:
                    await self.direct_stream(http, deltas, delay)

                for _ in range(max(1, 20 // at_once)):  # warm up
                    await together(send)
                    await together(echo)
                    await together(direct)
                rounds = max(1, calls // self.repeats // at_once)
                per: dict[str, list[float]] = {"ours": [], "floor_server": [], "direct_httpx2": []}
                for _ in range(self.repeats):
                    before = cpu_seconds(ours.pid), cpu_seconds(floor.pid)
                    for _ in range(rounds):
                        await together(send)
                        await together(echo)
                    per["ours"].append((cpu_seconds(ours.pid) - before[0]) / (rounds * at_once))
                    per["floor_server"].append((cpu_seconds(floor.pid) - before[1]) / (rounds * at_once))
                    started = time.process_time()
                    for _ in range(rounds):
                        await together(direct)
                    per["direct_httpx2"].append((time.process_time() - started) / (rounds * at_once))
        finally:
            for proc in (ours, floor):
                proc.kill()
                proc.wait()
        figures = {name: median(values) * 1e3 for name, values in per.items()}
        floors = figures["floor_server"] + figures["direct_httpx2"]
        return {"ours_ms": figures["ours"], "floor_server_ms": figures["floor_server"],
                "direct_httpx2_ms": figures["direct_httpx2"], "over_floors_ms": figures["ours"] - floors,
                "deltas": deltas, "delay_s": delay, "at_once": at_once,
                "goal": "within 1 ms of the floors' sum" if delay == 0 else "within 2 ms of the floors' sum"}  # fmt: skip

    async def cpu_per_streaming_call(self) -> dict[str, Any]:
        """``cpu_per_call`` for calls that stream for 2 s (20 deltas 0.1 s apart), 10 at a time."""
        return await self.cpu_per_call(calls=10 * self.repeats, deltas=20, delay=0.1, at_once=10)

    # --- 5. memory under 200 concurrent HTTP streams ----------------------------------------
    async def http_memory(self, n: int = 200) -> dict[str, Any]:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        port = 18000 + os.getpid() % 1000
        proc = subprocess.Popen([*OURS, "--transport", "streamable-http", "--port", str(port)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            for _ in range(200):
                try:
                    if httpx2.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    time.sleep(0.05)
            idle = rss_kib(proc.pid, "VmRSS")
            limits = httpx2.Limits(max_connections=None, max_keepalive_connections=n)
            http = create_mcp_http_client()
            http = httpx2.AsyncClient(timeout=http.timeout, limits=limits)
            transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
            async with Client(transport) as client:
                slow = message_args(40, 0.1)
                started = time.perf_counter()
                async with anyio.create_task_group() as tasks:
                    for _ in range(n):
                        tasks.start_soon(client.call_tool, "send_message", slow)
                elapsed = time.perf_counter() - started
            return {"streams": n, "server_idle_rss_mib": idle / 1024, "server_peak_rss_mib": rss_kib(proc.pid) / 1024,
                    "wall_s": elapsed, "goal": "peak < 150 MiB"}  # fmt: skip
        finally:
            proc.kill()
            proc.wait()


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scaling = results["throughput"]
    sizes = [int(k) for k in scaling]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("send_message_s", "aitoearn-mcp send_message (stdio)"), ("bare_sse_s", "bare httpx2 SSE loop"),
                       ("anthropic_sdk_s", "anthropic SDK get_final_message")):  # fmt: skip
        left.plot(sizes, [scaling[str(s)][key] * 1e6 / s for s in sizes], marker="o", label=label)
    left.set_xscale("log")
    left.set_xlabel("deltas in the reply")
    left.set_ylabel("µs per delta (median)")
    left.set_title("Stream cost per delta: flat means linear")
    left.legend(fontsize=8)
    right.plot(sizes, [scaling[str(s)]["server_peak_rss_mib"] for s in sizes], marker="o", color="tab:red")
    right.set_ylim(bottom=0)
    right.set_xlabel("deltas in the reply")
    right.set_ylabel("server peak RSS (MiB)")
    right.set_title("Server peak RSS after replies of that size")
    meta = results["meta"]
    fig.suptitle(f"{meta['command']} · {meta['machine']} · {meta['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def http_cpu_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The rows of server CPU per HTTP call (a streaming row only in runs that measured it)."""
    measured = (("cpu_per_call", "server CPU per short HTTP call", "≤ +1 ms"),
                ("cpu_per_streaming_call", "server CPU per HTTP call streaming 2 s", "≤ +2 ms"))  # fmt: skip
    return [
        (label, f"{u['ours_ms']:.2f} vs floors {u['floor_server_ms']:.2f} + {u['direct_httpx2_ms']:.2f} ms",
         f"{u['over_floors_ms']:+.2f} ms", goal)
        for key, label, goal in measured if (u := results.get(key))
    ]  # fmt: skip


def conversation_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The rows of a stored conversation's added cost, one per store measured."""
    return [
        (f"50-turn conversation, {c['store']}", f"{c['with_ms']:.2f} − {c['without_ms']:.2f} ms", f"{c['added_ms']:.2f} ms",
         c["goal"])
        for key in ("conversation_memory", "conversation_sqlite", "conversation_redis") if (c := results.get(key))
    ]  # fmt: skip


def table(results: dict[str, Any]) -> str:
    s, p, f, m = results["startup"], results["per_call"], results["fan_out"], results["http_memory"]
    c = results["chat_throughput"]
    k = results["capacity"]
    replies = [results[k] for k in ("get_reply_memory", "get_reply_redis") if k in results]
    d = results.get("delegation_memory")
    im, rv, dl = (results.get(k) for k in ("media_image_overhead", "media_running_videos", "media_download_rss"))
    si = results.get("startup_installed")
    al, cap, jp = (results.get(k) for k in ("alias_resolution", "cap_check", "judged_panel"))
    t = results["throughput"]
    small, big = t[min(t, key=int)], t[max(t, key=int)]
    six = t.get("6000", small)
    rows = [
        ("start-up: spawn → tools/list", f"{s['ours_s'] * 1e3:.0f} ms vs floor {s['floor_s'] * 1e3:.0f} ms",
         f"{s['difference_ms']:+.0f} ms", "≤ +20 ms"),
        ("  CPU time until tools/list answered", f"{s['ours_cpu_ms']:.0f} ms vs floor {s['floor_cpu_ms']:.0f} ms",
         f"{s['difference_cpu_ms']:+.0f} ms", "≤ +20 ms"),
        *([("  from an installed wheel (as uvx runs it)", f"{si['ours_s'] * 1e3:.0f} ms vs floor "
            f"{si['floor_s'] * 1e3:.0f} ms", f"{si['difference_ms']:+.0f} ms", "≤ +20 ms")] if si else []),
        ("per call: send_message − direct httpx2", f"{p['send_message_ms']:.2f} − {p['direct_httpx2_ms']:.2f} ms",
         f"{p['overhead_ms']:.2f} ms", "< 1.0 ms"),
        ("  of which the SDK's own tool round trip", f"one-tool floor {p['sdk_floor_tool_call_ms']:.2f} ms",
         f"{p['overhead_beyond_sdk_floor_ms']:.2f} ms beyond", ""),
        ("throughput 6,000 deltas vs bare SSE loop", f"{six['send_message_s'] * 1e3:.0f} vs {six['bare_sse_s'] * 1e3:.0f} ms",
         f"{six['ratio_vs_bare']:.2f}x", "≤ 1.25x"),
        ("throughput 6,000 deltas vs anthropic SDK", f"{six['send_message_s'] * 1e3:.0f} vs {six['anthropic_sdk_s'] * 1e3:.0f} ms",
         f"{six['ratio_vs_sdk']:.2f}x", "≤ 0.30x"),
        ("OpenAI route 6,000 chunks vs bare SSE loop", f"{c['send_message_s'] * 1e3:.0f} vs {c['bare_sse_s'] * 1e3:.0f} ms",
         f"{c['ratio_vs_bare']:.2f}x", "≤ 1.25x"),
        ("OpenAI route 6,000 chunks vs openai SDK", f"{c['send_message_s'] * 1e3:.0f} vs {c['openai_sdk_s'] * 1e3:.0f} ms",
         f"{c['ratio_vs_sdk']:.2f}x", "≤ 0.30x"),
        *conversation_rows(results),
        *((f"get_reply on a complete reply, {g['store']}", f"{g['get_reply_ms']:.2f} − {g['direct_read_ms']:.2f} ms "
           "(direct store read)", f"{g['added_ms']:.2f} ms", g["goal"]) for g in replies),
        *([(f"running delegation, memory ({d['delegations']} at once)",
            f"{d['kib_per_delegation']:.1f} KiB each, RSS (models thinking: no text yet)",
            f"{d['kib_per_delegation'] * 1.024:.1f} KB", d["goal"])] if d else []),
        *([("image result: generate_image − relay + download", f"{im['generate_image_ms']:.0f} − "
            f"{im['relay_and_download_ms']:.0f} ms (2048×2048 PNG)", f"{im['overhead_ms']:.0f} ms", "< 150 ms")]
          if im else []),
        *([(f"running video ({rv['videos']} at once), memory", f"{rv['kib_per_video']:.1f} KiB each, RSS",
            f"{rv['kb_per_video']:.1f} KB", "< 100 KB"),
           (f"running video ({rv['videos']} at once), CPU", f"{rv['core_percent_all']:.2f}% of a core for all, "
            f"over {rv['window_s']:.0f} s", f"{rv['core_percent_per_video']:.3f}% each", "< 1% each")] if rv else []),
        *([("200 MiB video download, peak RSS", f"{dl['server_peak_rss_mib']:.1f} MiB (before "
            f"{dl['server_rss_before_mib']:.1f})", f"+{dl['peak_minus_before_mib']:.1f} MiB", "< 10 MB")]
          if dl else []),
        *([("alias resolution (per call)", f"{al['catalogue_models']}-model catalogue",
            f"{al['ms_per_call']:.3f} ms", "< 0.2 ms")] if al else []),
        *([("daily cap check (per call)", f"{cap['store']} store", f"{cap['ms_per_call']:.3f} ms", "< 0.2 ms")]
          if cap else []),
        *([("panel of 3 + judge vs slowest + judge", f"{jp['panel_and_judge_s']:.2f} vs "
            f"{jp['slowest_then_judge_s']:.2f} s", f"{jp['ratio']:.2f}x", "≤ 1.0x (within)")] if jp else []),
        ("fan-out: 20 slow calls vs 1", f"{f['20_concurrent_s']:.2f} vs {f['one_call_s']:.2f} s", f"{f['ratio']:.3f}x",
         "≤ 1.2x"),
        ("peak RSS after 6,000 deltas", f"{six['server_peak_rss_mib']:.1f} MiB", "", "< 80 MiB"),
        ("1,000 calls in flight over HTTP", f"{k['failures']} failed; {k['server_peak_rss_mib']:.0f} MiB peak "
         f"(idle {k['server_idle_rss_mib']:.0f})", f"{k['kib_per_call']:.0f} KiB/call", "0 failed, < 200 KiB"),
        *http_cpu_rows(results),
        ("peak RSS, 200 HTTP streams", f"{m['server_peak_rss_mib']:.1f} MiB (idle {m['server_idle_rss_mib']:.1f})", "",
         "< 150 MiB"),
        (f"µs/delta at {max(t, key=int)} vs {min(t, key=int)}", f"{big['us_per_delta']:.1f} vs {small['us_per_delta']:.1f}",
         f"{big['us_per_delta'] / small['us_per_delta']:.2f}x", "≤ 1.3x"),
        ("  bare SSE loop, same sizes", f"{big['bare_us_per_delta']:.1f} vs {small['bare_us_per_delta']:.1f}",
         f"{big['bare_us_per_delta'] / small['bare_us_per_delta']:.2f}x", ""),
        (f"peak RSS at {max(t, key=int)} vs {min(t, key=int)} deltas",
         f"{big['server_peak_rss_mib']:.1f} vs {small['server_peak_rss_mib']:.1f} MiB", "", ""),
    ]  # fmt: skip
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip() for r in
             [("measure", "figures (medians)", "result", "goal"), *rows]]  # fmt: skip
    lines.insert(1, "-+-".join("-" * w for w in width))
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    relay = subprocess.Popen([PY, str(ROOT / "benchmarks" / "relay_process.py")], stdout=subprocess.PIPE, text=True)
    assert relay.stdout is not None
    url = relay.stdout.readline().strip()
    try:
        bench = Bench(url, args.repeats)
        results: dict[str, Any] = {
            "meta": {
                "command": "python -m benchmarks.run" + (" --quick" if args.quick else ""),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "repeats": args.repeats,
            }
        }
        print("start-up ...", file=sys.stderr)
        results["startup"] = bench.startup()
        print("start-up from an installed wheel ...", file=sys.stderr)
        results["startup_installed"] = bench.installed_startup()
        print("per-call overhead ...", file=sys.stderr)
        results["per_call"] = await bench.per_call()
        print("throughput and scaling ...", file=sys.stderr)
        results["throughput"] = await bench.throughput(args.sizes)
        print("throughput on the OpenAI route ...", file=sys.stderr)
        results["chat_throughput"] = await bench.chat_throughput()
        print("stored conversations ...", file=sys.stderr)
        results.update(await bench.conversation_rows())
        print("delegations ...", file=sys.stderr)
        results.update(await bench.delegation_rows())
        print("fan-out ...", file=sys.stderr)
        results["fan_out"] = await bench.fan_out()
        print("memory under 200 HTTP streams ...", file=sys.stderr)
        results["http_memory"] = await bench.http_memory()
        print("capacity: 1,000 calls in flight ...", file=sys.stderr)
        results["capacity"] = await bench.capacity()
        print("CPU per short call over HTTP ...", file=sys.stderr)
        results["cpu_per_call"] = await bench.cpu_per_call()
        print("CPU per streaming call over HTTP ...", file=sys.stderr)
        results["cpu_per_streaming_call"] = await bench.cpu_per_streaming_call()
        print("images and videos ...", file=sys.stderr)
        results.update(await media_rows(args.repeats))
        print("choosing models: aliases, the daily cap, a judged panel ...", file=sys.stderr)
        results.update(await choosing_rows(args.repeats))
        return results
    finally:
        relay.kill()
        relay.wait()


async def rows_alone(args: argparse.Namespace, rows: Callable[[Bench], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """One group of rows (``--per-call``, ``--http``, ``--conversations``, ``--delegations``) against its own
    fake relay."""
    relay = subprocess.Popen([PY, str(ROOT / "benchmarks" / "relay_process.py")], stdout=subprocess.PIPE, text=True)
    assert relay.stdout is not None
    try:
        return await rows(Bench(relay.stdout.readline().strip(), args.repeats))
    finally:
        relay.kill()
        relay.wait()


async def http_cpu_rows_of(bench: Bench) -> dict[str, Any]:
    return {"cpu_per_call": await bench.cpu_per_call(), "cpu_per_streaming_call": await bench.cpu_per_streaming_call()}


if __name__ == "__main__":
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # in-process servers: no line per relay request
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--redraw", type=Path, help="only draw the chart and table from a JSON this wrote")
    parser.add_argument("--delegations", action="store_true", help="only the delegation rows (print them)")
    parser.add_argument("--choosing", action="store_true", help="only the rows of choosing models (print them)")
    parser.add_argument("--media", action="store_true", help="only the image and video rows (print them)")
    parser.add_argument("--conversations", action="store_true", help="only the 50-turn conversation rows (print them)")
    parser.add_argument("--image", action="store_true", help="only the image row of --media (print it)")
    parser.add_argument("--per-call", action="store_true", help="only the per-call rows over stdio (print them)")
    parser.add_argument("--http", action="store_true", help="only server CPU per HTTP call (print the rows)")
    parser.add_argument("--phases", action="store_true", help="only one short call's per-phase breakdown (print it)")
    parser.add_argument("--profile", action="store_true", help="with --phases: cProfile's top functions too")
    options = parser.parse_args()
    if options.redraw:
        figures = json.loads(options.redraw.read_text())
        draw(figures, options.redraw.with_suffix(".png"))
        print(table(figures))
        raise SystemExit(0)
    options.repeats = 2 if options.quick else 7
    if options.choosing:
        print(json.dumps(anyio.run(choosing_rows, options.repeats), indent=2))
        raise SystemExit(0)
    if options.delegations:
        print(json.dumps(anyio.run(rows_alone, options, Bench.delegation_rows), indent=2))
        raise SystemExit(0)
    if options.media:
        print(json.dumps(anyio.run(media_rows, options.repeats), indent=2))
        raise SystemExit(0)
    if options.conversations:
        figures = anyio.run(rows_alone, options, Bench.conversation_rows)
        print(json.dumps(figures, indent=2))
        print("\n".join(" | ".join(row) for row in conversation_rows(figures)))
        raise SystemExit(0)
    if options.image:
        print(json.dumps(anyio.run(image_row, options.repeats), indent=2))
        raise SystemExit(0)
    if options.per_call:
        print(json.dumps(anyio.run(rows_alone, options, Bench.per_call), indent=2))
        raise SystemExit(0)
    if options.http:
        figures = anyio.run(rows_alone, options, http_cpu_rows_of)
        print(json.dumps(figures, indent=2))
        print("\n".join(" | ".join(row) for row in http_cpu_rows(figures)))
        raise SystemExit(0)
    if options.phases:
        from benchmarks.phases import phase_rows, phases

        breakdown = anyio.run(functools.partial(phases, 60 if options.quick else 300, options.profile))
        if "profile" in breakdown:
            print(breakdown.pop("profile"))
        print(phase_rows(breakdown))
        raise SystemExit(0)
    options.sizes = [1000, 6000] if options.quick else [1000, 6000, 20000, 50000]
    figures = anyio.run(main, options)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "benchmark.json").write_text(json.dumps(figures, indent=2))
    draw(figures, options.out / "benchmark.png")
    print(table(figures))
    print(f"\nwrote {options.out / 'benchmark.json'} and {options.out / 'benchmark.png'}")
