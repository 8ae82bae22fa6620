"""Server CPU per short ``send_message`` over HTTP, A against B, paired: two servers run at once
(two checkouts, or one with different settings), their calls take turns, and each round of
calls gives one difference. ``python -m benchmarks.run --http`` measures each figure in its own
run, where another process's load moves it by half a millisecond; taking turns call by call, the
load falls on both alike, and a change of a tenth of a millisecond shows.

    python -m benchmarks.http_ab OLD_CHECKOUT NEW_CHECKOUT [--env-b AITOEARN_CONVERSATIONS=memory]
    python -m benchmarks.http_ab OLD NEW --deltas 20 --delay 0.1 --at-once 10 --calls 20   # streaming

Prints each server's median CPU per call and the median (and quartiles) of B - A per round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import anyio
from mcp import Client

from benchmarks.procfs import cpu_seconds
from benchmarks.run import PY, ROOT, Bench, message_args


def _settings(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def _serve(bench: Bench, checkout: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """The checkout's server (its own package first on the path), answering on ``port``."""
    argv = [PY, "-m", "aitoearn_mcp", "--transport", "streamable-http", "--port", str(port), "--log-level", "WARNING"]
    return bench.http_process(argv, port, {**bench.env, **env, "PYTHONPATH": str(checkout)}, checkout)


async def paired(bench: Bench, a: tuple[Path, dict[str, str]], b: tuple[Path, dict[str, str]], rounds: int,
                 calls: int, deltas: int = 12, delay: float = 0.0, at_once: int = 1) -> dict[str, float]:  # fmt: skip
    """``calls`` calls of ``deltas`` deltas ``delay`` seconds apart per server and round,
    ``at_once`` at a time, the servers taking turns batch by batch."""
    ports = [18000 + (os.getpid() + 17 + i) % 1000 for i in range(2)]
    procs = [_serve(bench, checkout, env, port) for (checkout, env), port in zip((a, b), ports, strict=True)]
    try:
        async with (
            bench.http_client(ports[0], 4 * at_once) as first,
            bench.http_client(ports[1], 4 * at_once) as second,
        ):

            async def batch(client: Client) -> None:
                async with anyio.create_task_group() as tasks:
                    for _ in range(at_once):
                        tasks.start_soon(client.call_tool, "send_message", message_args(deltas, delay))

            for _ in range(30):  # warm up: the call path loads on the first call
                await first.call_tool("send_message", message_args())
                await second.call_tool("send_message", message_args())
            per_a: list[float] = []
            per_b: list[float] = []
            for _ in range(rounds):
                before = [cpu_seconds(proc.pid) for proc in procs]
                for _ in range(max(1, calls // at_once)):
                    await batch(first)
                    await batch(second)
                after = [cpu_seconds(proc.pid) for proc in procs]
                done = max(1, calls // at_once) * at_once
                per_a.append((after[0] - before[0]) / done * 1e3)
                per_b.append((after[1] - before[1]) / done * 1e3)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    differences = [y - x for x, y in zip(per_a, per_b, strict=True)]
    low, _, high = statistics.quantiles(differences, n=4)
    return {"a_ms": statistics.median(per_a), "b_ms": statistics.median(per_b),
            "b_minus_a_ms": statistics.median(differences), "q1_ms": low, "q3_ms": high}  # fmt: skip


async def main(options: argparse.Namespace) -> None:
    relay = subprocess.Popen([PY, str(ROOT / "benchmarks" / "relay_process.py")], stdout=subprocess.PIPE, text=True)
    assert relay.stdout is not None
    try:
        bench = Bench(relay.stdout.readline().strip(), 1)
        figures = await paired(bench, (options.a.resolve(), _settings(options.env_a)),
                               (options.b.resolve(), _settings(options.env_b)), options.rounds, options.calls,
                               options.deltas, options.delay, options.at_once)  # fmt: skip
    finally:
        relay.kill()
        relay.wait()
    print(f"A {figures['a_ms']:.2f} ms  B {figures['b_ms']:.2f} ms per call; B - A {figures['b_minus_a_ms']:+.3f} ms "
          f"(quartiles {figures['q1_ms']:+.3f} .. {figures['q3_ms']:+.3f}; {options.rounds} rounds of "
          f"{options.calls} calls each)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("a", type=Path, help="the checkout A's server runs from")
    parser.add_argument("b", type=Path, help="the checkout B's server runs from (the same one to compare settings)")
    parser.add_argument("--env-a", nargs="*", default=[], metavar="NAME=VALUE", help="settings for A's server only")
    parser.add_argument("--env-b", nargs="*", default=[], metavar="NAME=VALUE", help="settings for B's server only")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=50, help="calls of each server per round")
    parser.add_argument("--deltas", type=int, default=12, help="deltas in each reply")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between deltas (0.1: --http's streaming row)")
    parser.add_argument("--at-once", type=int, default=1, help="calls in flight at a time (10: the streaming row)")
    options = parser.parse_args()
    sys.exit(anyio.run(main, options))
