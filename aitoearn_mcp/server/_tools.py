"""The tools' work: list_models reads the catalogue; send_message and generate_video start
delegations and wait for them as long as the host allows; get_reply waits, pages and cancels
(and takes over a video no process looks after); the reply resources read the same records.
The server loads this module, and the call path with it, on the first call: listing the tools
needs none of it.

Data flows one way: tool arguments → DTO → SendJob per model, or a RenderJob → Delegation
(relay → events → accumulator, or the video task polled → record) → result shaped from the record.
"""

from __future__ import annotations

import contextlib
import functools
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import SecretStr

from .._config import Config
from .._errors import InputError, MissingKeyError, RelayError, StoreUnavailableError
from .._metrics import Metrics
from ..delegation._daily import call_estimate
from ..delegation._delegation import Delegation, Delegations, Job, Resume, Retag
from ..delegation._record import ReplyRecord
from ..delegation._send import SendJob
from ..delegation._turns import begin
from ..store._protocol import STORE_DOWN, Store, owner_hmac
from ..views._hosts import client_name, profile_for, result_budget
from ..views._media_view import media_progress, media_view
from ..views._models_view import models_result
from ..views._reply_view import combined_view, reply_view
from ..views._result import error_result
from ._choosing import aliases_over, aliases_view, plan_send
from ._dto import (
    GenerateImageInput,
    GenerateVideoInput,
    GetReplyInput,
    ListModelsInput,
    parse_args,
    parse_send_message_args,
)
from ._files import attach_files, read_files
from ._notices import PROGRESS_INTERVAL, ProgressReporter, log_to_client, report_progress
from ._reply_files import reply_ttl, save_reply_file
from ._reply_images import with_previews
from ._roots import allowed_roots
from ._spend import check_spend
from ._state import State

__all__ = ["Tools"]

_MediaArgs = TypeVar("_MediaArgs", GenerateImageInput, GenerateVideoInput)
# A media tool's checks before anything is sent (prepare_image, prepare_video): its job, or the answer instead.
_Prepare = Callable[..., Awaitable[Job | CallToolResult | InputRequiredResult]]


FILES_OVER_HTTP = (
    "Invalid arguments for send_message: `files` is not available over HTTP (a shared server does not read its "
    "own disk for callers); fix: put the file's content in `messages` (text, image or document blocks). "
    "Nothing was sent."
)


def _request_price(jobs: list[SendJob], max_tokens: int) -> Decimal | None:
    """The credits the jobs may cost at most, estimated: each one's input plus ``max_tokens`` of
    output at its model's prices, summed (a model with no usable price adds nothing; none: None)."""
    known = [price for price in (call_estimate(job, max_tokens) for job in jobs) if price is not None]
    return sum(known, Decimal(0)) if known else None


def _outcome(record: ReplyRecord) -> str:
    if record.status == "complete":
        return "ok"
    return record.error_kind or "relay" if record.status == "failed" else record.status


class Tools:
    """The work behind list_models, send_message, get_reply and the reply resources, for one server."""

    def __init__(self, config: Config, *, http: bool, metrics: Metrics, progress_by_token: bool = False) -> None:
        self.config = config
        self.http = http
        self.metrics = metrics
        self.progress_by_token = progress_by_token
        self._secret = secrets.token_bytes(32)

    def _wants_progress(self, ctx: Context) -> bool:
        """Whether the client asked for progress: over stdio and HTTP, a progress token in the
        request's ``_meta``; in process, always (the SDK passes it by callback, with no token)."""
        return not self.progress_by_token or (ctx.request_context.meta or {}).get("progress_token") is not None

    async def _owner(self, store: Store, key: SecretStr) -> tuple[str, Retag | None]:
        """The key's tag in the store; while the store does not answer, one of this process's own,
        so a reply still reaches the caller that waits for it, with how to get the store's tag
        once it answers (the reply is stored under that one, for every process to find)."""
        try:
            return await store.owner_tag(key), None
        except StoreUnavailableError:
            return owner_hmac(self._secret, key), functools.partial(store.owner_tag, key)

    def wait_seconds(self, given: float | None, ctx: Context) -> float:
        """The argument, else AITOEARN_WAIT_SECONDS, else what the host (``clientInfo.name``) allows."""
        if given is not None:
            return float(given)
        if self.config.wait_seconds is not None:
            return self.config.wait_seconds
        return profile_for(client_name(ctx.session.client_params)).wait_seconds

    @property
    def reply_ttl(self) -> float:
        return reply_ttl(self.config)

    def budget(self, ctx: Context) -> int:
        """AITOEARN_MAX_RESULT_CHARS, else what the host (``clientInfo.name``) shows the model whole."""
        return result_budget(self.config.max_result_chars, client_name(ctx.session.client_params))

    def _save_file(self, reply_id: str, text: str) -> str | None:
        """The full reply as a file the agent can page through (stdio only: over HTTP the server's
        disk is not the caller's). A file that cannot be written is only left out."""
        if self.http:
            return None
        with contextlib.suppress(OSError):
            return save_reply_file(reply_id, text, self.reply_ttl)
        return None

    async def view(self, reply_id: str, record: ReplyRecord, budget: int, offset: int = 0) -> CallToolResult:
        """The record as a result: a video's (small, whatever the budget), or a reply's with a preview
        of each image it saved."""
        if record.media is not None:
            return media_view(reply_id, record, time.time())
        result = reply_view(reply_id, record, budget=budget, offset=offset, now=time.time(), save_file=self._save_file)
        return await with_previews(result, record, offset)

    def resume_for(self, state: State, key: SecretStr) -> Resume:
        """How this caller's request takes over a running video or image no process looks after."""

        def resume(record: ReplyRecord) -> Job | None:
            if record.media is None:
                return None
            from ..delegation._image_job import ImageJob  # here: only a media record needs them
            from ..delegation._render import RenderJob

            kind = ImageJob if record.media.get("kind") == "image" else RenderJob
            return kind.resume(record, media=state.media(key), http=state.media_http, key=key,
                               deadline=self.config.deadline)  # fmt: skip

        return resume

    # --- list_models -------------------------------------------------------------------------

    async def list_models(
        self, arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult:
        labels["outcome"] = "error"
        try:
            args = parse_args(ListModelsInput, "list_models", arguments)
            if args.kind != "chat":
                from ._media_tools import media_models

                result = await media_models(args, state, key, self.budget(ctx), self.config.allowed_models)
                labels["outcome"] = "error" if result.is_error else "ok"
                return result
            on_retry = functools.partial(log_to_client, ctx)
            entries = await state.catalogue.get(state.relay, key, refresh=args.refresh, on_retry=on_retry)
        except (InputError, RelayError) as exc:
            return error_result(str(exc))
        labels["outcome"] = "ok"
        aliases = aliases_over(entries, self.config)
        return models_result(aliases.entries, channel=args.channel, modality=args.modality, detail=args.detail,
                             budget=self.budget(ctx), aliases=aliases_view(aliases, self.config))  # fmt: skip

    # --- send_message ------------------------------------------------------------------------

    async def send_message(
        self, arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult | InputRequiredResult:
        """``labels`` (model, route, outcome) are filled in for the metrics as the call goes."""
        return await self._answered(await self.start_send(arguments, ctx, state, key, labels), ctx, state, key, labels)

    async def _answered(
        self, started: CallToolResult | InputRequiredResult | tuple[list[Delegation], float], ctx: Context,
        state: State, key: SecretStr | None, labels: dict[str, str],
    ) -> CallToolResult | InputRequiredResult:  # fmt: skip
        """What a start gave: the delegations answered once they end or the wait does, or the
        refusal (or the client's roots asked for first) as it is."""
        if not isinstance(started, tuple):
            return started
        return await self.answer(ctx, state, key, *started, labels)

    async def start_send(
        self, arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult | InputRequiredResult | tuple[list[Delegation], float]:
        """Check everything the caller named, then start a delegation per model: the delegations and
        how long the call may wait for them, or the refusal (nothing was sent)."""
        labels["outcome"] = "input_error"
        try:
            request, given = parse_send_message_args(arguments)
        except InputError as exc:
            return error_result(str(exc))
        if key is None:
            return error_result(str(MissingKeyError()))
        try:  # everything the caller named is checked before anything is sent
            continuation = await begin(state.store, request.conversation_id, key)
            if request.files:
                if self.http:
                    raise InputError(FILES_OVER_HTTP)
                roots = await allowed_roots(ctx, self.config.files_roots)
                if isinstance(roots, InputRequiredResult):  # 2026-07-28: the call comes back with the client's roots
                    labels["outcome"] = "input_required"
                    return roots
                blocks = await read_files(request.files, roots, self.config.files_max_bytes)
                given = {**given, "messages": attach_files(given["messages"], blocks)}
            plan = await plan_send(request, given, continuation, key, config=self.config, state=state,
                                   metrics=self.metrics)  # fmt: skip
        except InputError as exc:
            return error_result(str(exc))
        except StoreUnavailableError as exc:
            labels["outcome"] = "store_unavailable"
            return error_result(f"{STORE_DOWN} ({exc}). Nothing was sent.")
        jobs = [member.candidates[0].job for member in plan.members]  # a fallback runs only if the first fails
        models = [job.model for job in jobs]
        several = f"{len(jobs)} models ({', '.join(models)}) at once" if len(jobs) > 1 else models[0]
        what = f"this request to {several}, with up to {request.max_tokens:,} output tokens{' each' * (len(jobs) > 1)}"
        price = _request_price(jobs, request.max_tokens)
        cheaper = "a smaller max_tokens, fewer models or a cheaper model"
        refusal = await check_spend(ctx, self.config, price, tool="send_message", what=what, cheaper=cheaper)
        if refusal is not None:
            await plan.give_back()  # what it reserved of today's cap
            labels["outcome"] = "input_required" if isinstance(refusal, InputRequiredResult) else "refused"
            return refusal
        started = await plan.start(state.delegations, *await self._owner(state.store, key))
        return started, self.wait_seconds(request.wait_seconds, ctx)

    async def answer(
        self, ctx: Context, state: State, key: SecretStr | None, started: list[Delegation], seconds: float,
        labels: dict[str, str],
    ) -> CallToolResult:  # fmt: skip
        """Wait for the delegations (started with ``key``) up to ``seconds``, then answer with what
        they have; one still running is in the store before its reply id is handed out."""
        await self._wait(ctx, started, seconds, stop_on_cancel=True)
        for delegation in started:
            if not delegation.finished.is_set():
                await state.delegations.store_running(delegation)
        records = [delegation.snapshot() for delegation in started]
        state.listing.changed(ctx, key)
        if len(started) == 1:
            labels.update(route=records[0].route or "", outcome=_outcome(records[0]))
            return await self.view(started[0].id, records[0], self.budget(ctx))
        labels.update(model="", outcome="ok" if all(r.status == "complete" for r in records) else "several")
        share = max(self.budget(ctx) // len(started), 2000)  # the budget is shared
        return combined_view([(d.job.model, d.id, await self.view(d.id, record, share))
                              for d, record in zip(started, records, strict=True)])  # fmt: skip

    async def _wait(
        self,
        ctx: Context,
        delegations: list[Delegation],
        seconds: float,
        *,
        stop_on_cancel: bool,
        first: str | None = None,
    ) -> None:
        """Wait until every one has ended or ``seconds`` pass, telling the client of progress and
        retries. ``stop_on_cancel``: the host's own cancel of this request stops them (the user
        pressed stop); otherwise they go on."""

        def progress() -> tuple[int, str]:
            seen = [d.progress() for d in delegations]
            return sum(chars for chars, _ in seen), next((latest for chars, latest in reversed(seen) if chars), "")

        def video_line(elapsed: float) -> str:
            return media_progress(delegations[0].snapshot(), elapsed)

        # A video has no text: progress tells its stage and the relay's status instead.
        quiet = video_line if delegations[0].snapshot().media is not None else None
        if quiet is not None and first is None:
            first = quiet(time.time() - delegations[0].record.started)
        on_retry = functools.partial(log_to_client, ctx)
        for delegation in delegations:
            delegation.retry_listeners.add(on_retry)
        reporter = ProgressReporter(ctx, progress, since=delegations[0].record.started, first=first, quiet=quiet)
        # The wait ticks the reporter itself (no task beside it, which a short call would pay for),
        # and only for a client that asked for progress: otherwise it wakes once, at the end.
        interval = PROGRESS_INTERVAL if self._wants_progress(ctx) else math.inf
        deadline = anyio.current_time() + seconds
        try:
            if interval < math.inf:
                await reporter.begin()
            for delegation in delegations:
                while not delegation.finished.is_set() and (left := deadline - anyio.current_time()) > 0:
                    with anyio.move_on_after(min(interval, left)):
                        await delegation.finished.wait()
                    if not delegation.finished.is_set() and interval < left:
                        await reporter.tick()
        except anyio.get_cancelled_exc_class():
            if stop_on_cancel:
                for delegation in delegations:
                    delegation.cancel()
            raise
        finally:
            for delegation in delegations:
                delegation.retry_listeners.discard(on_retry)

    # --- generate_image and generate_video --------------------------------------------------

    async def generate_image(
        self, arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult | InputRequiredResult:
        return await self._answered(await self.start_image(arguments, ctx, state, key, labels), ctx, state, key, labels)

    async def generate_video(
        self, arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult | InputRequiredResult:
        return await self._answered(await self.start_video(arguments, ctx, state, key, labels), ctx, state, key, labels)

    async def start_image(
        self, arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult | InputRequiredResult | tuple[list[Delegation], float]:
        from ._media_tools import prepare_image  # here: only a media call needs the media services

        return await self._start_media("generate_image", GenerateImageInput, prepare_image, arguments, ctx, state,
                                       key, labels)  # fmt: skip

    async def start_video(
        self, arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult | InputRequiredResult | tuple[list[Delegation], float]:
        from ._video import prepare_video  # here: only a media call needs the media services

        return await self._start_media("generate_video", GenerateVideoInput, prepare_video, arguments, ctx, state,
                                       key, labels)  # fmt: skip

    async def _start_media(
        self, tool: str, model: type[_MediaArgs], prepare: _Prepare, arguments: dict[str, Any],
        ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str],
    ) -> CallToolResult | InputRequiredResult | tuple[list[Delegation], float]:  # fmt: skip
        """Check everything, then start the media job's delegation: it and how long the call may
        wait for it, or the answer instead (an error, the spend guard's, the client's roots asked
        for): nothing was sent or spent."""
        labels["outcome"] = "input_error"
        try:
            args = parse_args(model, tool, arguments)
        except InputError as exc:
            return error_result(str(exc))
        if key is None:
            return error_result(str(MissingKeyError()))
        labels["model"] = args.model or ""
        try:
            job = await prepare(args, ctx, self.config, state, key, http=self.http)
        except InputError as exc:
            return error_result(str(exc))
        except RelayError as exc:
            labels["outcome"] = "relay"
            return error_result(f"{exc} Nothing was sent.")
        except StoreUnavailableError as exc:  # the daily cap could not be counted
            labels["outcome"] = "store_unavailable"
            return error_result(f"{STORE_DOWN} ({exc}). Nothing was sent.")
        if isinstance(job, InputRequiredResult):
            labels["outcome"] = "input_required"
            return job
        if isinstance(job, CallToolResult):  # the spend guard's answer
            labels["outcome"] = "refused"
            return job
        labels["model"] = job.model
        try:
            delegation = await state.delegations.start(job, *await self._owner(state.store, key))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await job.settle(cancelled=True)  # never started: its reservation back, its files closed
            raise
        return [delegation], self.wait_seconds(args.wait_seconds, ctx)

    # --- get_reply ---------------------------------------------------------------------------

    async def get_reply(
        self, arguments: dict[str, Any], ctx: Context, state: State, key: SecretStr | None, labels: dict[str, str]
    ) -> CallToolResult:
        labels["outcome"] = "input_error"
        try:
            args = parse_args(GetReplyInput, "get_reply", arguments)
        except InputError as exc:
            return error_result(str(exc))
        if key is None:
            return error_result(str(MissingKeyError()))
        delegations = state.delegations
        resume = self.resume_for(state, key)
        try:
            owner, provisional = await self._owner(state.store, key)
            if provisional is None and (started_here := delegations.live(args.reply_id, owner_hmac(self._secret, key))):
                owner = started_here.owner  # started here while the store was down, not retagged yet
            if args.cancel:
                found = await delegations.cancel(args.reply_id, owner, resume)
            elif (live := delegations.live(args.reply_id, owner)) is not None:
                found = await self._wait_live(ctx, live, args.wait_seconds)
            else:
                found = await self._wait_remote(ctx, delegations, args.reply_id, owner, args.wait_seconds, resume)
        except StoreUnavailableError as exc:
            labels["outcome"] = "store_unavailable"
            return error_result(f"{STORE_DOWN} ({exc}); try get_reply again shortly.")
        if found is None:
            labels["outcome"] = "unknown"
            return error_result(
                f"Reply {args.reply_id!r} is unknown or has expired (replies are kept as long as conversations); "
                "fix: pass the reply_id of a send_message result made with the same key, or send the request again."
            )
        labels.update(model=found.model, route=found.route or "", outcome=_outcome(found))
        return await self.view(args.reply_id, found, self.budget(ctx), args.offset)

    async def _wait_live(self, ctx: Context, live: Delegation, wait: float | None) -> ReplyRecord:
        """A reply this process runs: wait for it, with progress; it goes on after the wait."""
        chars = live.progress()[0]
        first = None if live.snapshot().media else f"Waiting for reply {live.id} ({chars:,} characters so far)"
        await self._wait(ctx, [live], self.wait_seconds(wait, ctx), stop_on_cancel=False, first=first)
        return live.snapshot()

    async def _wait_remote(
        self, ctx: Context, delegations: Delegations, reply_id: str, owner: str, wait: float | None, resume: Resume
    ) -> ReplyRecord | None:
        """A reply another process runs (or one that has ended): poll its record, with progress;
        a video no process looks after is taken over here first."""
        latest: list[ReplyRecord] = []

        def progress() -> tuple[int, str]:
            return (latest[-1].chars, latest[-1].text[-200:]) if latest else (0, "")

        first = await delegations.read(reply_id, owner, resume)
        if (live := delegations.live(reply_id, owner)) is not None:  # taken over just now
            return await self._wait_live(ctx, live, wait)
        if first is None or first.done:
            return first
        latest.append(first)

        def video_line(elapsed: float) -> str:
            return media_progress(latest[-1], elapsed)

        quiet = video_line if first.media is not None else None
        waiting = f"Waiting for reply {reply_id} ({first.chars:,} characters so far)"
        if quiet is not None:
            waiting = quiet(time.time() - first.started)
        found: ReplyRecord | None = first
        async with anyio.create_task_group() as beside:
            if self._wants_progress(ctx):
                reporter = ProgressReporter(ctx, progress, since=first.started, first=waiting, quiet=quiet)
                beside.start_soon(report_progress, reporter)
            found = await delegations.wait(reply_id, owner, self.wait_seconds(wait, ctx), on_record=latest.append,
                                           resume=resume)  # fmt: skip
            beside.cancel_scope.cancel()
        return found

    # --- resources ---------------------------------------------------------------------------

    async def stored_reply(self, reply_id: str, state: State, key: SecretStr | None) -> ReplyRecord:
        found = None
        if key is not None:
            try:
                found = await state.delegations.read(reply_id, await state.store.owner_tag(key))
            except StoreUnavailableError as exc:  # a damaged store is not an unknown reply
                raise ResourceError(f"{STORE_DOWN} ({exc}).") from None
        if found is None:
            raise ResourceError(f"Reply {reply_id} is unknown or has expired; send the request again.")
        return found
