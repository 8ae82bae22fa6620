"""generate_video's preparation: everything the caller named is checked before anything is sent
or spent, then it is a RenderJob for a delegation to run.

In order: which references are local files (refused over HTTP, as ``files`` are), the roots they
and the save folder must be inside, the files opened and bounded on their descriptors, the
request against the model's catalogue entry (counts, formats, sizes, mode, resolution, ratio,
duration; a local file stands in as a placeholder URL named like it until it is uploaded), the
save folder, then the spend guard, then the daily cap (the price reserved of the key's day). The
model must be within AITOEARN_MODELS, and only allowed models are offered in the refusals. Only
the public catalogue is fetched before that; uploads and the submit happen in the delegation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import SecretStr

from .._config import Config
from .._errors import InputError
from ..delegation._daily import DailyCap
from ..delegation._media_job import Upload
from ..delegation._render import RenderJob, VideoAsk
from ..media._download import safe_filename
from ..media._models import VideoModel
from ..media._prices import video_price
from ..media._validate import MediaFacts, PreparedVideo, VideoRequest, check_video
from ..relay._choose import allowed_within, check_media_model
from ._dto import GenerateVideoInput
from ._files import OpenedFile, open_files, save_folder
from ._roots import Roots, allowed_roots, client_gives_roots
from ._spend import check_spend
from ._state import State

__all__ = ["prepare_video"]

TOOL = "generate_video"
_URL_SCHEMES = ("https", "http", "data", "asset")
_PLACEHOLDER = "https://upload.invalid/{index}/{name}"  # .invalid never resolves: it cannot reach the relay
DAILY_FIX = "choose a shorter `duration`, a lower `resolution` or a cheaper model (list_models kind video)"

LOCAL_OVER_HTTP = (
    "Invalid arguments for generate_video: {field} {value!r} is a local path, and a shared server does not read "
    "its own disk for callers; fix: pass an https URL instead. Nothing was sent."
)
SAVE_TO_OVER_HTTP = (
    "Invalid arguments for generate_video: `save_to` is not available over HTTP (a shared server does not write "
    "to folders a caller names); fix: leave it out (the video's URL is in the result). Nothing was sent."
)


def _refuse(message: str) -> InputError:
    return InputError(f"Invalid arguments for {TOOL}: {message}. Nothing was sent.")


def _is_url(value: str) -> bool:
    return urlsplit(value).scheme.lower() in _URL_SCHEMES


def _references(args: GenerateVideoInput) -> list[tuple[str, str]]:
    """Every reference as (field, value), in the order given."""
    named: list[tuple[str, str]] = []
    for kind in ("images", "videos", "audios"):
        named += [(f"{kind}[{i}]", value) for i, value in enumerate(getattr(args, kind) or [])]
    if args.image_tail is not None:
        named.append(("image_tail", args.image_tail))
    return named


async def _save_folder(args: GenerateVideoInput, roots: Roots, ctx: Context[Any, Any], config: Config) -> str | None:
    """The folder the video goes to, checked; None when it is not downloaded. Over HTTP the roots
    are the server's own (AITOEARN_FILES_ROOTS, else its cache folder)."""
    if not args.download:
        return None
    folder = await save_folder(args.save_to, roots, client_roots=client_gives_roots(ctx), configured=config.files_roots,
                               tool=TOOL, kind="videos")  # fmt: skip
    return str(folder)


def _cheaper(prepared: PreparedVideo, models: Sequence[VideoModel], limit: Decimal) -> str:
    """Concrete cheaper choices within ``limit``: a shorter duration, another resolution, another
    model offering the mode (each at its cheapest resolution for the same duration)."""
    entry, mode = prepared.entry, prepared.mode
    resolution, seconds = prepared.body.get("resolution"), prepared.body.get("duration")
    choices: list[str] = []
    if isinstance(seconds, int | float):
        shorter = [(d, p) for d in sorted(entry.durations) if d < seconds
                   and (p := video_price(entry, resolution=resolution, seconds=d, mode=mode)) is not None
                   and p <= limit]  # fmt: skip
        if shorter:
            d, p = shorter[-1]
            choices.append(f"`duration` {d:g} s or less ({p} credits at {d:g} s)")
        for other in entry.resolutions:
            price = video_price(entry, resolution=other, seconds=seconds, mode=mode)
            if other != resolution and price is not None and price <= limit:
                choices.append(f"`resolution` {other} ({price} credits)")
        for model in models:
            if model.name == entry.name or (model.modes and mode not in model.modes):
                continue
            priced = [(p, r) for r in model.resolutions or [None]
                      if (p := video_price(model, resolution=r, seconds=seconds, mode=mode)) is not None]  # fmt: skip
            if priced and (best := min(priced, key=lambda item: item[0]))[0] <= limit:
                choices.append(f"`model` {model.name} ({best[0]} credits{f' at {best[1]}' if best[1] else ''})")
    if not choices:
        return "a shorter duration, a lower resolution or a cheaper model from the video catalogue"
    return ", or ".join(choices[:4])


def _close(opened: Sequence[OpenedFile]) -> None:
    for item in opened:
        os.close(item.fd)


async def prepare_video(
    args: GenerateVideoInput, ctx: Context[Any, Any], config: Config, state: State, key: SecretStr, *, http: bool
) -> RenderJob | CallToolResult | InputRequiredResult:
    """The job for ``args``, or the result to answer with instead (the spend guard's, or the
    client's roots asked for first). Raises InputError for what the caller must fix (the daily
    cap's refusal too), RelayError when the catalogue cannot be read and StoreUnavailableError
    when the day's credits cannot be counted: nothing is sent either way. The job holds its
    reservation of the day's cap and its open files: one never started is settled to give both back."""
    references = _references(args)
    local = [(field, value) for field, value in references if not _is_url(value)]
    if http and local:
        field, value = local[0]
        raise InputError(LOCAL_OVER_HTTP.format(field=f"`{field}`", value=value))
    if http and args.save_to is not None:
        raise InputError(SAVE_TO_OVER_HTTP)
    roots = Roots(tuple(Path(p) for p in config.files_roots))
    if not http and (local or args.download):
        found = await allowed_roots(ctx, config.files_roots)
        if isinstance(found, InputRequiredResult):  # 2026-07-28: the call comes back with the client's roots
            return found
        roots = found
    save_to = await _save_folder(args, roots, ctx, config)  # before any file is opened
    opened = await open_files(local, roots, config.files_max_bytes, TOOL) if local else []
    try:
        placeholders = {item.field: _PLACEHOLDER.format(index=i, name=safe_filename(item.path.name))
                        for i, item in enumerate(opened)}  # fmt: skip
        facts = {placeholders[item.field]: MediaFacts(size_bytes=item.size) for item in opened}

        def url(field: str, value: str) -> str:
            return placeholders.get(field, value)

        def urls(kind: str) -> list[str]:
            return [url(f"{kind}[{i}]", v) for i, v in enumerate(getattr(args, kind) or [])]

        media = state.media(key)
        catalogue = await state.media_catalogue.video_models(media)
        model = check_media_model(args.model, config.allowed_models, [m.name for m in catalogue.models], tool=TOOL,
                                  kind="video")  # fmt: skip
        models = allowed_within(catalogue.models, config.allowed_models)
        request = VideoRequest(
            model=model, prompt=args.prompt, mode=args.mode, images=urls("images"),
            image_tail=url("image_tail", args.image_tail) if args.image_tail is not None else None,
            videos=urls("videos"), audios=urls("audios"), resolution=args.resolution, ratio=args.ratio,
            duration=args.duration, facts=facts,
        )  # fmt: skip
        prepared = check_video(request, models)
        body = prepared.body
        shape = " ".join(str(body[k]) for k in ("resolution", "ratio") if body.get(k))
        seconds = f"{body['duration']:g} s " if isinstance(body.get("duration"), int | float) else ""
        what = f"a {seconds}{shape + ' ' if shape else ''}video on {prepared.entry.name} ({prepared.mode})"
        limit = Decimal(str(config.max_credits_per_call))
        refused = await check_spend(ctx, config, prepared.price, tool=TOOL, what=what,
                                    cheaper=_cheaper(prepared, models, limit))  # fmt: skip
        if refused is not None:
            _close(opened)
            return refused
        notes = list(prepared.notes)
        if catalogue.stale:
            notes.append("the video catalogue could not be refreshed; this was checked against its last good copy")
        ask = VideoAsk(prepared.mode, prepared.mode_derived, body.get("resolution"), body.get("ratio"),
                       body.get("duration"), prepared.price, save_to, tuple(notes))  # fmt: skip
        uploads = [Upload(placeholders[item.field], item.fd, item.path.name, item.size) for item in opened]
        deadline_at = time.time() + config.deadline if config.deadline else None
        job = RenderJob(prepared.entry.name, media, state.media_http, key, ask, deadline_at, prepared=prepared,
                        uploads=uploads)  # fmt: skip
        if config.max_credits_per_day is not None:  # last: a refusal before it would leave the day counted
            owner = await state.store.owner_tag(key)
            cap = DailyCap(state.store, owner, Decimal(str(config.max_credits_per_day)))
            await job.hold.reserve(cap, prepared.price, what, DAILY_FIX)
    except BaseException:
        _close(opened)
        raise
    return job
