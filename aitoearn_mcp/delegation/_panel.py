"""A panel with a judge: 2-8 models answer the same request (each its own delegation, each reply
whole behind its reply id), then a judge reads the replies, anonymised, and writes the synthesis.

The judge is a delegation too, the one the caller waits for: it waits for the last member, so
the panel and its judge are one tool call, and a panel that outlasts the wait answers "running"
with the judge's reply id. The judge sees the request and the replies labelled A, B, C in an
order drawn at random per call; model names never reach it (model and family names inside a
reply are masked). A failed member is named and left out; with no reply at all there is no judge.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._errors import InputError, StoreUnavailableError
from ._delegation import Delegation, OnRetry
from ._fallback import ChoiceJob
from ._record import ReplyRecord, Status

__all__ = ["JUDGE_SYSTEM", "JudgeJob", "judge_prompt", "masker"]

LABELS = "ABCDEFGH"
REPLY_CHARS = 100_000  # of each reply given to the judge: a bounded request, whatever the panel wrote
MASK = "[a model]"

JUDGE_SYSTEM = (
    "You judge a panel: several assistants, labelled A, B, C, ..., answered the same request independently. "
    "Write a concise synthesis for the person who asked: 1. Where they agree. 2. Where they differ, and why "
    "(assumptions, evidence, errors). 3. Which answer is best for what, by label. Say so where one is wrong. "
    "Do not guess who wrote which answer."
)

MakeJudge = Callable[[list[dict[str, Any]]], Awaitable[ChoiceJob]]


def masker(names: Sequence[str]) -> Callable[[str], str]:
    """Replaces each of ``names`` (model names, their families, aliases) wherever it stands as a
    word, ignoring case, with ``[a model]``."""
    words = sorted({name for name in names if len(name) >= 2}, key=len, reverse=True)
    if not words:
        return lambda text: text
    pattern = re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, words)) + r")(?![\w-])", re.IGNORECASE)
    return lambda text: pattern.sub(MASK, text)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict):
            kind = block.get("type")
            parts.append(str(block.get("text", "")) if kind == "text" else f"[{kind}]")
    return "\n".join(parts)


def judge_prompt(request: dict[str, Any], replies: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The judge's messages: the request (its system prompt and messages, as text) and each
    ``(label, reply text)``."""
    asked = [f"System prompt: {_text(request['system'])}"] if request.get("system") else []
    asked += [f"{m.get('role', 'user').capitalize()}: {_text(m.get('content'))}" for m in request["messages"]]
    parts = ["The request:\n<request>\n" + "\n\n".join(asked) + "\n</request>"]
    for label, text in replies:
        shown = text[:REPLY_CHARS]
        if len(text) > REPLY_CHARS:
            shown += f"\n[… {len(text) - REPLY_CHARS:,} more characters not shown]"
        parts.append(f"Answer {label}:\n<answer {label}>\n{shown}\n</answer {label}>")
    parts.append("Write the synthesis.")
    return [{"role": "user", "content": "\n\n".join(parts)}]


@dataclass
class JudgeJob:
    """``members``: the panel's delegations, started; ``make_judge``: the judge's job for its
    messages (made when they are known; InputError when it may not be sent, e.g. the daily cap)."""

    members: list[Delegation]
    request: dict[str, Any]  # the caller's messages and system prompt
    make_judge: MakeJudge
    mask_names: list[str]
    model: str
    judge: ChoiceJob | None = None
    labels: dict[str, str] = field(default_factory=dict)  # member reply id → label
    refused: str = ""

    @property
    def news(self) -> int:
        return self.judge.news if self.judge is not None else 0

    def progress(self) -> tuple[int, str]:
        return self.judge.progress() if self.judge is not None else (0, "")

    def running(self, started: float) -> ReplyRecord | None:
        return self.judge.running(started) if self.judge is not None else None

    def crashed(self, exc: Exception) -> None:
        if self.judge is not None:
            self.judge.crashed(exc)
        else:
            self.refused = f"The server failed unexpectedly before the judge started ({type(exc).__name__})"

    async def run(self, on_retry: OnRetry) -> None:
        try:
            for member in self.members:
                await member.finished.wait()
        except anyio.get_cancelled_exc_class():  # the judged call was stopped: so is its panel
            for member in self.members:
                member.cancel()
            raise
        answered = [m for m in self.members if m.record.status == "complete" and m.record.text]
        order = list(range(len(answered)))
        secrets.SystemRandom().shuffle(order)
        mask = masker(self.mask_names)
        replies: list[tuple[str, str]] = []
        for label, index in zip(LABELS, order, strict=False):
            self.labels[answered[index].id] = label
            replies.append((label, mask(answered[index].record.text)))
        replies.sort()
        if not replies:
            self.refused = "No member of the panel replied, so there is no judgement"
            return
        try:
            self.judge = await self.make_judge(judge_prompt(self.request, replies))
        except (InputError, StoreUnavailableError) as exc:
            self.refused = f"The judge was not asked: {exc}"
            return
        self.model = self.judge.model
        await self.judge.run(on_retry)

    def _panel(self) -> tuple[list[str], list[dict[str, Any]]]:
        lines, entries = [], []
        for member in self.members:
            record, label = member.record, self.labels.get(member.id)
            entry: dict[str, Any] = {"label": label, "model": record.model, "reply_id": member.id,
                                     "status": record.status, "chars": len(record.text)}  # fmt: skip
            credits = (record.message or {}).get("credits")
            estimate = credits.get("estimate") if isinstance(credits, dict) else None
            if label is not None:
                entry["credits"] = estimate
                cost = f"about {estimate} credits" if estimate is not None else "credits unknown"
                lines.append(f"[Reply {label}: {record.model}, {len(record.text):,} characters, {cost}, reply_id "
                             f"{member.id} (get_reply gives it whole).]")  # fmt: skip
            else:
                reason = record.error or (record.notes[0] if record.notes else record.status)
                entry["error"] = reason
                lines.append(f"[{record.model} gave no reply for the judge ({record.status}): {reason} "
                             f"reply_id {member.id}.]")  # fmt: skip
            entries.append({k: v for k, v in entry.items() if v is not None or k == "credits"})
        return lines, entries

    async def settle(self, cancelled: bool) -> ReplyRecord:
        lines, entries = self._panel()
        record = await self.judge.settle(cancelled) if self.judge is not None else None
        if record is None:  # stopped, or refused, before the judge started
            now = time.time()
            status: Status
            if self.refused:
                error, status = f"{self.refused}.", "failed"
            else:
                error = "Cancelled before the judge started." if cancelled else "Stopped before the judge started."
                status = "cancelled" if cancelled else "failed"
            return ReplyRecord(status, self.model, now, now, error=error, notes=[error, *lines],
                               error_kind="panel")  # fmt: skip
        record.notes = [*lines, *record.notes]
        if record.message is not None:
            record.message["panel"] = entries
        return record
