"""Where one short send_message call spends its time, phase by phase: ``python -m benchmarks.run
--phases`` (printed, not asserted; ``--profile`` adds cProfile's top functions over the same calls).

In-process (a memory transport, the default SQLite store in a file of its own), against the fake
relay in its own process. Each phase is timed by a wrapper put around the function that does it,
for this run only: the wall-clock time from its start to its end less its nested phases', medians
over the calls. A phase the answer does not wait for (a write left for after it) is listed apart:
it runs beside the answer's last steps or after them. The client's whole call minus the handler
is the SDK's part (the request parsed and routed, the result validated against the output schema
and serialised), shown beside a one-tool server's whole echo (the in-process floor).
"""

from __future__ import annotations

import cProfile
import functools
import inspect
import io
import logging
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-phases"

# (where the function is looked up, its name, the phase): a phase nested in another is named
# "outer/inner" and counted apart from it.
_HOOKS = (
    ("aitoearn_mcp.server._tools", "Tools.send_message", "handler"),  # less the phases below: its rest
    ("aitoearn_mcp.server._tools", "parse_send_message_args", "arguments → DTO"),
    ("aitoearn_mcp.server._tools", "begin", "conversation begin (store read)"),
    ("aitoearn_mcp.server._tools", "plan_send", "catalogue, aliases, plan"),
    ("aitoearn_mcp.server._tools", "check_spend", "spend check"),
    ("aitoearn_mcp.server._tools", "Tools._owner", "owner tag"),
    ("aitoearn_mcp.server._choosing", "Plan.start", "delegation start (task spawn)"),
    ("aitoearn_mcp.server._tools", "Tools._wait", "wait"),
    ("aitoearn_mcp.delegation._send", "SendJob.run", "wait/relay request + fold"),
    ("aitoearn_mcp.delegation._fallback", "ChoiceJob.settle", "wait/settle: notes, credits"),
    ("aitoearn_mcp.delegation._send", "record", "wait/settle: notes, credits/conversation turn write"),
    ("aitoearn_mcp.delegation._delegation", "Delegations._save", "wait/record save"),
    ("aitoearn_mcp.server._notices", "ListingNotices._notify", "resources changed notice"),
    ("aitoearn_mcp.server._tools", "Tools.view", "result view"),
)


class Timings:
    """The intervals each phase took in the call being measured (ns, perf_counter_ns)."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[int, int]]] = defaultdict(list)

    def wrap(self, original: Callable[..., Any], phase: str) -> Callable[..., Any]:
        spans = self.spans
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter_ns()
                try:
                    return await original(*args, **kwargs)
                finally:
                    spans[phase].append((start, time.perf_counter_ns()))

            return timed_async

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return original(*args, **kwargs)
            finally:
                spans[phase].append((start, time.perf_counter_ns()))

        return timed

    @contextmanager
    def hooked(self) -> Iterator[None]:
        import importlib

        undo: list[tuple[Any, str, Any]] = []
        try:
            for module_name, dotted, phase in _HOOKS:
                owner: Any = importlib.import_module(module_name)
                *path, name = dotted.split(".")
                for part in path:
                    owner = getattr(owner, part)
                original = owner.__dict__[name]
                undo.append((owner, name, original))
                setattr(owner, name, self.wrap(original, phase))
            yield
        finally:
            for owner, name, original in reversed(undo):
                setattr(owner, name, original)


def _exclusive(spans: dict[str, list[tuple[int, int]]]) -> tuple[dict[str, int], dict[str, int]]:
    """Each phase's time less its nested phases': those inside the phase they belong to (the
    handler, for a phase not nested in another), which the answer waits for, and those that are
    not (they run beside the answer or after it)."""
    waited: dict[str, int] = defaultdict(int)
    beside: dict[str, int] = defaultdict(int)
    for phase, intervals in spans.items():
        parent = phase.rsplit("/", 1)[0] if "/" in phase else "handler"
        for start, end in intervals:
            if phase == "handler":
                waited[phase] += end - start
            elif any(s <= start and end <= e for s, e in spans.get(parent, ())):
                waited[phase] += end - start
                waited[parent] -= end - start
            else:
                beside[phase] += end - start
    return waited, beside


async def _breakdown(relay: str, calls: int, profile: bool) -> dict[str, Any]:
    from aitoearn_mcp import Config, create_server
    from aitoearn_mcp.server._notices import LISTING_NOTICE_AFTER
    from benchmarks.floor_server import server as floor_server
    from benchmarks.run import Bench, message_args

    logging.getLogger("aitoearn_mcp").setLevel(logging.WARNING)
    timings = Timings()
    bench = Bench(relay, 1)  # its direct request: the per-call row's floor
    per_call: list[tuple[dict[str, int], dict[str, int], int]] = []
    direct_ns: list[int] = []
    floor_ns: list[int] = []
    profiler = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory() as folder:
        config = Config(base_url=relay, api_key=SecretStr(KEY), conversations=str(Path(folder) / "store.sqlite3"))
        async with (
            Client(create_server(config)) as ours,
            Client(floor_server) as floor,
            httpx2.AsyncClient() as http,
        ):
            with timings.hooked():
                for _ in range(10):  # warm: imports, the catalogue, the store file, the relay's connection
                    await ours.call_tool("send_message", message_args())
                    await floor.call_tool("echo", {"text": "Say one sentence."})
                for _ in range(calls):
                    timings.spans.clear()
                    if profiler:
                        profiler.enable()
                    start = time.perf_counter_ns()
                    result = await ours.call_tool("send_message", message_args())
                    end = time.perf_counter_ns()
                    if profiler:
                        profiler.disable()
                    assert not result.is_error, result
                    await anyio.sleep(LISTING_NOTICE_AFTER + 0.005)  # what was left for after the answer ends here
                    handler = timings.spans["handler"][0]
                    before, after = _exclusive(timings.spans)
                    before["SDK and transport"] = (end - start) - (handler[1] - handler[0])
                    per_call.append((before, after, end - start))
                    direct_ns.append(int(await bench.direct_stream(http, 12) * 1e9))
                    started = time.perf_counter_ns()
                    await floor.call_tool("echo", {"text": "Say one sentence."})
                    floor_ns.append(time.perf_counter_ns() - started)
    phases = [phase for _, _, phase in _HOOKS] + ["SDK and transport"]
    ms = lambda values: statistics.median(values) / 1e6  # noqa: E731
    later = [p for p in phases if any(a.get(p) for _, a, _ in per_call)]
    figures: dict[str, Any] = {
        "calls": calls,
        "call_ms": ms([total for _, _, total in per_call]),
        "direct_relay_ms": ms(direct_ns),
        "floor_echo_ms": ms(floor_ns),
        "before_answer_ms": {p: ms([b.get(p, 0) for b, _, _ in per_call]) for p in phases},
        "after_answer_ms": {p: ms([a.get(p, 0) for _, a, _ in per_call]) for p in later},
    }
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        figures["profile"] = out.getvalue()
    return figures


def phase_rows(figures: dict[str, Any]) -> str:
    """The breakdown as a table: each phase's median (a nested one indented under its parent)."""
    lines = [f"one short send_message, SQLite store, in-process: {figures['calls']} calls, medians (ms)",
             f"  whole call {figures['call_ms']:.3f}; a direct relay request {figures['direct_relay_ms']:.3f}; "
             f"the one-tool floor's echo {figures['floor_echo_ms']:.3f}"]  # fmt: skip
    for title, key in (("waited for by the answer", "before_answer_ms"),
                       ("not waited for (beside or after the answer)", "after_answer_ms")):  # fmt: skip
        if not figures[key]:
            continue
        lines.append(f"{title}:")
        for phase, value in figures[key].items():
            depth = phase.count("/")
            lines.append(f"  {'  ' * depth}{phase.rsplit('/', 1)[-1]:<{44 - 2 * depth}} {value:8.3f}")
    return "\n".join(lines)


async def phases(calls: int = 300, profile: bool = False) -> dict[str, Any]:
    relay = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "relay_process.py")], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    assert relay.stdout is not None
    try:
        return await _breakdown(relay.stdout.readline().strip(), calls, profile)
    finally:
        relay.kill()
        relay.wait()
