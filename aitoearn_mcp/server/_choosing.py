"""From what send_message names to the jobs its delegations run: aliases resolved on the cached
catalogue, the allowlist checked, the fallback chain and the panel's judge prepared, and the
day's credits reserved, all before anything is sent.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio
from pydantic import SecretStr

from .._config import Config
from .._errors import InputError
from .._metrics import Metrics
from ..delegation._daily import DailyCap, call_estimate
from ..delegation._delegation import Delegation, Delegations, Retag
from ..delegation._fallback import Candidate, ChoiceJob
from ..delegation._panel import JUDGE_SYSTEM, JudgeJob
from ..delegation._send import SendJob, prepare_job
from ..delegation._turns import Continuation
from ..relay._choose import AliasCache, Aliases, Choice, check_allowed, family_of
from ._dto import SendMessageInput, unknown_fields
from ._state import State

__all__ = ["Plan", "aliases_for", "aliases_over", "aliases_view", "plan_send"]


_ALIASES = AliasCache()  # built once per catalogue version, not per call


def aliases_over(entries: Sequence[Mapping[str, Any]], config: Config) -> Aliases:
    return _ALIASES.get(entries, config.model_aliases, config.allowed_models)


async def aliases_for(config: Config, state: State, key: SecretStr | None) -> Aliases:
    """The aliases over the catalogue as this call reads it (cached; refreshed when stale)."""
    return aliases_over(await state.catalogue.listed(state.relay, key), config)


def aliases_view(aliases: Aliases, config: Config) -> dict[str, Any]:
    """What list_models shows of the aliases: each → its model now, the configured ones that
    match nothing, the allowlist."""
    shown: dict[str, Any] = {"aliases": aliases.table()}
    if unmatched := aliases.unmatched():
        shown["unmatched"] = unmatched
    if config.allowed_models:
        shown["allowed"] = list(config.allowed_models)
    return shown


def _choose(config: Config, aliases: Aliases, name: str, field: str) -> Choice:
    choice = aliases.resolve(name, field=field)
    check_allowed(choice.model, config.allowed_models, aliases.entries, tool="send_message", field=field)
    return choice


@dataclass
class Plan:
    """The jobs to start: one per model (a panel's members), and the judge's over them."""

    members: list[ChoiceJob]
    judge: JudgeJob | None = None

    async def start(self, delegations: Delegations, owner: str, retag: Retag | None = None) -> list[Delegation]:
        """Start every job; the delegations the caller waits for (the judge alone, for a judged panel).
        The host's stop while they start: none goes on."""
        started: list[Delegation] = []
        try:
            for job in self.members:
                started.append(await delegations.start(job, owner, retag))
            if self.judge is None:
                return started
            self.judge.members = list(started)
            started.append(await delegations.start(self.judge, owner, retag))
            return started[-1:]
        except anyio.get_cancelled_exc_class():
            for delegation in started:
                delegation.cancel()
            raise

    async def give_back(self) -> None:
        """Return what the jobs reserved of today's cap (they were never started)."""
        for job in self.members:
            if job.cap is not None and job.reserved:
                await job.cap.settle(job.reserved, None)


async def plan_send(
    request: SendMessageInput, given: dict[str, Any], continuation: Continuation, key: SecretStr, *,
    config: Config, state: State, metrics: Metrics,
) -> Plan:  # fmt: skip
    """Every check before anything is sent; InputError names the field and the fix."""
    aliases = await aliases_for(config, state, key)
    field = "models" if request.models else "model"
    chosen = [_choose(config, aliases, name, field) for name in request.models or [str(request.model)]]
    models = [choice.model for choice in chosen]
    if len(set(models)) < len(models):
        said = ", ".join(f"{c.asked!r} → {c.model}" for c in chosen)
        raise InputError(f"Invalid arguments for send_message: `models` name the same model twice ({said}); fix: "
                         "pass distinct models. Nothing was sent.")  # fmt: skip
    fallback_names = request.fallback if request.fallback is not None else list(config.fallback)
    fallback = [_choose(config, aliases, name, "fallback") for name in fallback_names]
    prepare = functools.partial(prepare_job, max_tokens=request.max_tokens, key=key, route_setting=config.route,
                                relay=state.relay, catalogue=state.catalogue, store=state.store,
                                metrics=metrics)  # fmt: skip
    cap = None
    if config.max_credits_per_day is not None:
        owner = await state.store.owner_tag(key)
        cap = DailyCap(state.store, owner, Decimal(str(config.max_credits_per_day)))

    async def chain(first: Choice, others: Sequence[Choice], arguments: dict[str, Any],
                    start: Continuation) -> ChoiceJob:  # fmt: skip
        tried: dict[str, Choice] = {}
        for choice in (first, *others):
            tried.setdefault(choice.model, choice)  # each model once, in order
        unknown = unknown_fields(arguments)  # said in the reply's notes
        candidates = [Candidate(await prepare(c.model, given=arguments, continuation=start, unknown=unknown), c)
                      for c in tried.values()]  # fmt: skip
        return ChoiceJob(candidates, cap=cap, max_tokens=request.max_tokens)

    single = request.judge is None and not request.models
    members = [await chain(choice, fallback if single else (), given, continuation) for choice in chosen]
    plan = Plan(members)
    try:
        for job in members:
            if cap is not None:
                first = job.candidates[0].job
                job.reserved = await cap.reserve(call_estimate(first, request.max_tokens), f"a call to {first.model}")
    except BaseException:
        await plan.give_back()
        raise
    if request.judge is not None:
        judge = _choose(config, aliases, request.judge, "judge")

        async def make_judge(messages: list[dict[str, Any]]) -> ChoiceJob:
            arguments = {"messages": messages, "system": JUDGE_SYSTEM}
            job = await chain(judge, fallback, arguments, Continuation(None, None, False))
            if cap is not None:
                first: SendJob = job.candidates[0].job
                job.reserved = await cap.reserve(call_estimate(first, request.max_tokens), f"the judge {first.model}")
            return job

        names = [*aliases.names, *aliases.families, *(family_of(m) for m in models), *models]
        request_text = {"messages": given["messages"], "system": given.get("system")}
        plan.judge = JudgeJob([], request_text, make_judge, names, judge.model)
    return plan
