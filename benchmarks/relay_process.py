"""The fake relay in its own process, so it never competes with what is measured.

A request's ``metadata.bench`` says what to answer: ``{"deltas": N, "delay": seconds}``.
Replies are encoded once per size and sent in 16 KiB chunks (or one event per chunk when
slow). Prints the relay's URL on stdout, then serves until killed.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import sse
from tests.fake_relay import FakeRelay, Reply, slow_reply


def events(deltas: int) -> list[dict]:
    return sse.text_reply([f"tok{i} " for i in range(deltas)], output_tokens=deltas)


@functools.lru_cache(maxsize=16)
def fast_chunks(deltas: int) -> tuple[bytes, ...]:
    return tuple(sse.split_every(sse.encode(events(deltas)), 16 * 1024))


def answer(body: bytes) -> Reply:
    bench = json.loads(body).get("metadata", {}).get("bench", {})
    deltas, delay = int(bench.get("deltas", 12)), float(bench.get("delay", 0))
    if delay:
        return slow_reply(events(deltas), delay=delay)
    return Reply(chunks=list(fast_chunks(deltas)))


if __name__ == "__main__":
    relay = FakeRelay().start()
    relay.route("/api/ai/v1/messages", answer)
    print(relay.url, flush=True)
    while True:
        time.sleep(3600)
