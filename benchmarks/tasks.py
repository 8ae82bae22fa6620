"""What MCP Tasks cost beside the tools they stand for: ``python -m benchmarks.tasks``.

Over stdio against the fake relay, pair by pair (A then B, the median of the differences, as
in ``benchmarks.run``): ``tasks/get`` of a completed task against ``get_reply`` of the same
reply, and ``send_message`` answered with a task against the same call answered "running"
(``wait_seconds: 0``). Prints the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from tests.conftest import HELLO, KEY
from tests.delegation.test_tasks import CreateTask, GetTask, TasksClient, tasks_request
from tests.fake_relay import FakeRelay
from tests.test_progress_cancel import SCRIPT


async def pairwise(n: int, a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Medians of A and of A - B, in milliseconds."""
    times: list[float] = []
    gaps: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        await a()
        middle = time.perf_counter()
        await b()
        end = time.perf_counter()
        times.append((middle - start) * 1000)
        gaps.append(((middle - start) - (end - middle)) * 1000)
    return statistics.median(times), statistics.median(gaps)


async def main(n: int) -> None:
    relay = FakeRelay().start()
    env = {"AITOEARN_API_KEY": KEY, "AITOEARN_BASE_URL": relay.url, "PATH": os.environ["PATH"]}
    try:
        async with Client(StdioServerParameters(command=SCRIPT, env=env), extensions=[TasksClient()]) as client:
            created = await client.session.call_tool("send_message", HELLO, allow_claimed=True)
            assert isinstance(created, CreateTask)
            while (await tasks_request(client, GetTask, created.task_id))["status"] == "working":
                await anyio.sleep(0.05)

            async def task() -> None:
                assert isinstance(await client.session.call_tool("send_message", HELLO, allow_claimed=True), CreateTask)

            async def running() -> None:
                await client.session.call_tool("send_message", {**HELLO, "wait_seconds": 0}, allow_claimed=True)

            get, get_gap = await pairwise(
                n,
                lambda: tasks_request(client, GetTask, created.task_id),
                lambda: client.call_tool("get_reply", {"reply_id": created.task_id}),
            )
            start, start_gap = await pairwise(n, task, running)
    finally:
        relay.stop()
    print(f"stdio, {n} pairs, medians:")
    print(f"  tasks/get of a completed task     {get:6.2f} ms  ({get_gap:+.2f} ms against get_reply)")
    print(f"  send_message answered with a task {start:6.2f} ms  ({start_gap:+.2f} ms against 'running' at 0 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="What MCP Tasks cost beside the tools they stand for")
    parser.add_argument("-n", type=int, default=200, help="pairs per figure")
    anyio.run(main, parser.parse_args().n)
