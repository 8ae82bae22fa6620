"""The fake relay in its own process, so it never competes with what is measured.

A request's last message says what to answer: ``bench deltas=N delay=SECONDS`` (the content
passes unchanged through both routes). The Anthropic route answers Anthropic events, the OpenAI
route ``chat.completion.chunk`` objects, one delta each. Replies are encoded once per size and
sent in 16 KiB chunks (or one event per chunk when slow). Prints the relay's URL on stdout,
then serves until killed.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import sse
from tests.fake_relay import FakeRelay, Reply, slow_reply, thinking_reply


def events(deltas: int) -> list[dict]:
    return sse.text_reply([f"tok{i} " for i in range(deltas)], output_tokens=deltas)


def chunks(deltas: int) -> list[dict]:
    return sse.chat_text_reply([f"tok{i} " for i in range(deltas)])


@functools.lru_cache(maxsize=16)
def fast_chunks(deltas: int, openai: bool) -> tuple[bytes, ...]:
    body = sse.encode_chat(chunks(deltas)) if openai else sse.encode(events(deltas))
    return tuple(sse.split_every(body, 16 * 1024))


def spec(body: bytes) -> tuple[int, float, float]:
    """deltas, seconds between them, and seconds of silence (pings only, a model thinking) first."""
    content = json.loads(body)["messages"][-1]["content"]
    words = content.split() if content.startswith("bench ") else []
    fields = dict(word.split("=", 1) for word in words if "=" in word)
    return int(fields.get("deltas", 12)), float(fields.get("delay", 0)), float(fields.get("think", 0))


def answer(body: bytes, *, openai: bool) -> Reply:
    deltas, delay, think = spec(body)
    if think and not openai:
        return thinking_reply(events(deltas), silence=think)
    if delay:
        if openai:
            return Reply(chunks=[sse.encode_chat([c], done=False) for c in chunks(deltas)], delay=delay)
        return slow_reply(events(deltas), delay=delay)
    return Reply(chunks=list(fast_chunks(deltas, openai)))


if __name__ == "__main__":
    relay = FakeRelay().start()
    relay.route("/api/ai/v1/messages", functools.partial(answer, openai=False))
    relay.route("/api/ai/chat/completions", functools.partial(answer, openai=True))
    print(relay.url, flush=True)
    while True:
        time.sleep(3600)
