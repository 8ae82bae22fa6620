"""Choosing models: the cost per call of resolving an alias (and the allowlist) and of the daily
cap's check, and a judged panel of three against its slowest member plus the judge, one after
the other. ``python -m benchmarks.run --choosing`` runs these rows alone.

Goals: alias resolution and the cap check under 0.2 ms per call each; the judged panel within
the time of its slowest member plus the judge (the members run at once, the judge right after
the last).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import anyio
from mcp import Client
from pydantic import SecretStr

from tests import sse
from tests.fake_relay import CATALOGUE, FakeRelay, Reply, slow_reply

KEY = "sk-bench-choosing"
CHAT = "/api/ai/chat/completions"
MESSAGES = "/api/ai/v1/messages"


def _catalogue(size: int) -> list[dict[str, Any]]:
    """The fake relay's catalogue padded to ``size`` models in a dozen families."""
    families = ["claude", "gpt", "gemini", "deepseek", "kimi", "glm", "qwen", "grok", "llama", "mistral", "doubao", "o"]
    extra = [{**CATALOGUE[4], "name": f"{families[i % len(families)]}-{i // 12}.{i % 7}-{['pro', 'mini', 'x'][i % 3]}"}
             for i in range(size - len(CATALOGUE))]  # fmt: skip
    return [*CATALOGUE, *extra]


def _per_call_ms(work: Callable[[], Any], calls: int) -> float:
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        samples.append((time.perf_counter() - started) / calls * 1e3)
    return statistics.median(samples)


def alias_resolution(size: int = 60, calls: int = 2000) -> dict[str, Any]:
    """One call's work: the aliases over the catalogue it reads (built once per catalogue
    version), the name resolved, the allowlist checked."""
    from aitoearn_mcp.relay._choose import AliasCache, check_allowed

    entries = _catalogue(size)
    configured, patterns = (("review", "gpt-5.5"), ("cheap", "deepseek")), ("claude-*", "gpt-*", "gemini-*", "deep*")

    cache = AliasCache()

    def one() -> None:
        aliases = cache.get(entries, configured, patterns)
        choice = aliases.resolve("gemini")
        check_allowed(choice.model, patterns, aliases.entries, tool="send_message", field="model")

    return {"catalogue_models": size, "ms_per_call": _per_call_ms(one, calls), "goal": "< 0.2 ms"}


async def cap_check(calls: int = 2000) -> dict[str, Any]:
    """The daily cap per call in the memory store: the worst case estimated from the prepared
    request, reserved, then replaced by the reply's estimate (the store's own latency apart)."""
    from aitoearn_mcp.delegation._daily import DailyCap, call_estimate
    from aitoearn_mcp.relay._request import prepare_request
    from aitoearn_mcp.relay._routes import Route
    from aitoearn_mcp.store._memory import MemoryStore

    request = prepare_request(Route.MESSAGES, {"model": "claude-sonnet-5", "messages": [
        {"role": "user", "content": "Review this function for bugs: " + "def f(x): return x * 2\n" * 40}]},
        4096, CATALOGUE[0])  # fmt: skip

    class _Job:  # what call_estimate reads of a SendJob
        entry = CATALOGUE[0]
        prepared = (request,)

    cap = DailyCap(MemoryStore(3600, 1 << 20), "owner", Decimal(1_000_000))
    spent = Decimal("0.0125")
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(calls):
            reserved = await cap.reserve(call_estimate(_Job(), 4096), "a call")  # type: ignore[arg-type]
            await cap.settle(reserved, spent)
        samples.append((time.perf_counter() - started) / calls * 1e3)
    return {"store": "memory", "ms_per_call": statistics.median(samples), "goal": "< 0.2 ms"}


async def judged_panel(repeats: int) -> dict[str, Any]:
    """A panel of three (0.3, 0.6 and 0.9 s of streaming) with a judge (0.4 s), in one call,
    against the slowest member and then the judge, each its own call."""
    from aitoearn_mcp import Config, create_server

    seconds = {"claude-sonnet-5": 0.3, "gpt-5.5": 0.6, "deepseek-v4-pro": 0.9, "gemini-3.1-pro-preview": 0.4}

    def streaming(model: str, chat: bool) -> Reply:
        pieces = [f"word{i} " for i in range(10)]
        if chat:
            return Reply(chunks=[sse.encode_chat([c], done=False) for c in sse.chat_text_reply(pieces, model=model)],
                         delay=seconds[model] / 10)  # fmt: skip
        return slow_reply(sse.text_reply(pieces), seconds[model] / 10)

    import json

    logging.getLogger("aitoearn_mcp").setLevel(logging.WARNING)  # in-process: no log line per call
    relay = FakeRelay().start()
    relay.route(CHAT, lambda body: streaming(json.loads(body)["model"], True))
    relay.route(MESSAGES, lambda body: streaming(json.loads(body)["model"], False))
    question = {"messages": [{"role": "user", "content": "Which sort is stable?"}], "max_tokens": 512}
    panel = {**question, "models": ["claude-sonnet-5", "gpt-5.5", "deepseek-v4-pro"], "judge": "gemini"}
    server = create_server(Config(base_url=relay.url, api_key=SecretStr(KEY), conversations="memory"))
    together, apart, ratios = [], [], []
    try:
        async with Client(server) as client:
            await client.call_tool("list_models", {})  # the catalogue cached, as in a session

            async def timed(call: Callable[[], Awaitable[Any]]) -> float:
                started = time.perf_counter()
                result = await call()
                assert not getattr(result, "is_error", False), result
                return time.perf_counter() - started

            for _ in range(repeats):
                a = await timed(lambda: client.call_tool("send_message", panel))

                async def sequential() -> None:
                    await client.call_tool("send_message", {**question, "model": "deepseek-v4-pro"})
                    await client.call_tool("send_message", {**question, "model": "gemini-3.1-pro-preview"})

                b = await timed(sequential)
                together.append(a)
                apart.append(b)
                ratios.append(a / b)
    finally:
        relay.stop()
    return {"panel_and_judge_s": statistics.median(together), "slowest_then_judge_s": statistics.median(apart),
            "ratio": statistics.median(ratios), "goal": "<= 1.0 (within)"}  # fmt: skip


async def choosing_rows(repeats: int) -> dict[str, Any]:
    return {"alias_resolution": alias_resolution(), "cap_check": await cap_check(),
            "judged_panel": await judged_panel(repeats)}  # fmt: skip


if __name__ == "__main__":
    import json as _json

    print(_json.dumps(anyio.run(choosing_rows, 3), indent=2))
