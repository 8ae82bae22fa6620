"""generate_image's work, and list_models for kinds image and video.

generate_image checks everything before anything is sent or spent: the arguments, the model,
size, quality and style against the catalogue, the reference files (opened inside the roots),
the save folder, then the price against the spend guard. Then it is an ImageJob for a
delegation to run: local references uploaded (streamed from the open descriptors), the image
made, and every image saved whole (atomically: a cut download or an image that does not decode
leaves nothing) and previewed.

Decisions where the issue is silent:

* ``model`` omitted: the catalogue's first model (the image-generation catalogue, or the edit
  catalogue when ``images`` are given).
* ``size`` omitted: the relay picks the size and its price is not known in advance, so the
  spend guard weighs the model's most expensive size.
* Results are always asked for as links (``response_format: url``: AiToEarn re-hosts them);
  an answer carrying ``b64_json`` instead is saved from those bytes.
* The relay's asynchronous route (submit, then poll the log id): an image may take longer than
  a host waits, and the record keeps the log id so any process can collect it.
* ``save_to`` omitted: the client's first root, else the first of AITOEARN_FILES_ROOTS, else
  the user's cache folder (``images`` in it, private).
* Over HTTP (a shared server): local paths (``images``, ``mask``, ``save_to``) are refused as
  ``files`` are, and nothing is saved to the server's disk: the result carries the link and
  the preview.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import SecretStr

from .._config import Config
from .._errors import InputError, RelayError
from ..delegation._daily import DailyCap
from ..delegation._image_job import ImageAsk, ImageJob
from ..delegation._media_job import Upload
from ..media._catalogue import Catalogue
from ..media._models import ImageEditModel, ImageModel
from ..media._net import is_loopback_http
from ..media._validate import (
    ImageEditRequest,
    ImageRequest,
    PreparedImage,
    PreparedImageEdit,
    check_image,
    check_image_edit,
)
from ..relay._choose import allowed_within, check_media_model
from ..relay._credits import plain_decimal
from ..views._media_models_view import image_models_result, video_models_result
from ..views._result import error_result
from ._dto import GenerateImageInput, ListModelsInput
from ._files import OpenedFile, open_files, save_folder
from ._roots import allowed_roots, client_gives_roots
from ._spend import check_spend
from ._state import State

__all__ = ["media_models", "prepare_image"]

OP = "generate_image"
DAILY_FIX = "choose a smaller `size` or a cheaper model (list_models kind image)"

LOCAL_OVER_HTTP = (
    f"Invalid arguments for {OP}: `{{field}}` is a local path, and local paths are not available over HTTP (a shared "
    "server does not read or write its own disk for callers); fix: pass an https URL of the image, and leave "
    "`save_to` out (the result carries the image's link). Nothing was sent."
)


def failed(message: str) -> CallToolResult:
    """An error result; ``status`` and ``error`` lead the structured content."""
    return error_result(message, {"status": "failed", "error": message})


def _stale_note(kind: str, catalogue: Catalogue[Any]) -> list[str]:
    if not catalogue.stale:
        return []
    return [f"The {kind} catalogue could not be refreshed ({catalogue.error}); this is the last good copy."]


async def media_models(
    args: ListModelsInput, state: State, key: SecretStr | None, budget: int, allowed: tuple[str, ...] = ()
) -> CallToolResult:
    """list_models for ``kind`` image or video: the models within ``allowed`` (AITOEARN_MODELS)."""
    if args.channel is not None or args.modality is not None:
        return failed(f"Invalid arguments for list_models: `channel` and `modality` filter chat models only; fix: "
                      f"leave them out with kind {args.kind}.")  # fmt: skip
    client = state.media(key)
    catalogue = state.media_catalogue
    try:
        if args.kind == "image":
            generation = await catalogue.image_models(client, refresh=args.refresh)
            edits = await catalogue.image_edit_models(client, refresh=args.refresh)
            notes = _stale_note("image-generation", generation) + _stale_note("image-edit", edits)
            return image_models_result(generation.models, edits.models, detail=args.detail, budget=budget,
                                       notes=notes, allowed=allowed)  # fmt: skip
        videos = await catalogue.video_models(client, refresh=args.refresh)
    except RelayError as exc:
        return failed(str(exc))
    return video_models_result(videos.models, detail=args.detail, budget=budget,
                               notes=_stale_note("video-generation", videos), allowed=allowed)  # fmt: skip


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return (parts.scheme.lower() == "https" and bool(parts.hostname)) or is_loopback_http(value)


def _placeholder(index: int) -> str:
    return f"https://local.invalid/reference-{index}"


def _guard_price(price: Decimal | None, entry: ImageModel | ImageEditModel) -> Decimal | None:
    """The price the guard weighs: the size's, or with no size the most expensive listed."""
    if price is not None:
        return price
    prices = [row.price for row in entry.pricing if row.price is not None]
    return max(prices) if prices else None


def _cheaper(entry: ImageModel | ImageEditModel) -> str:
    rows = sorted((row for row in entry.pricing if row.price is not None and row.size), key=lambda r: r.price or 0)
    if not rows:
        return "a smaller size"
    cheapest = rows[0].price
    sizes = ", ".join(str(row.size) for row in rows if row.price == cheapest)[:200]
    return f"a smaller size ({plain_decimal(cheapest or Decimal(0))} credits: {sizes})"


async def prepare_image(
    args: GenerateImageInput, ctx: Context[Any, Any], config: Config, state: State, key: SecretStr, *, http: bool
) -> ImageJob | CallToolResult | InputRequiredResult:
    """The job for ``args``, or the result to answer with instead (the spend guard's, or the
    client's roots asked for first). Raises InputError for what the caller must fix and
    RelayError when the catalogue cannot be read: nothing is sent either way."""
    references = list(args.images or [])
    edit = bool(references)
    if args.mask is not None and not edit:
        raise InputError(f"Invalid arguments for {OP}: `mask` needs `images` (the image to repaint); fix: pass the "
                         "image in `images`, or leave `mask` out. Nothing was sent.")  # fmt: skip
    if edit and (args.quality is not None or args.style is not None):
        which = "quality" if args.quality is not None else "style"
        raise InputError(f"Invalid arguments for {OP}: `{which}` is not taken when editing (with `images`); fix: "
                         "leave it out. Nothing was sent.")  # fmt: skip
    named = [(f"images[{i}]", value) for i, value in enumerate(references)]
    if args.mask is not None:
        named.append(("mask", args.mask))
    local = [(field, value) for field, value in named if not _is_url(value)]
    if http:
        wrong = next((field for field, _ in local), "save_to" if args.save_to is not None else None)
        if wrong is not None:
            raise InputError(LOCAL_OVER_HTTP.format(field=wrong))
    client = state.media(key)
    # The request, checked against the catalogue (local references stand in as placeholders).
    stand_in = {value: _placeholder(i) for i, (_, value) in enumerate(local)}
    if edit:
        edits = await state.media_catalogue.image_edit_models(client)
        name = check_media_model(args.model, config.allowed_models, [m.name for m in edits.models], tool=OP,
                                 kind="image-edit")  # fmt: skip
        request = ImageEditRequest(
            model=name, prompt=args.prompt,
            images=[stand_in.get(v, v) for v in references],
            mask=stand_in.get(args.mask, args.mask) if args.mask is not None else None, size=args.size,
        )  # fmt: skip
        prepared: PreparedImage | PreparedImageEdit = check_image_edit(
            request, allowed_within(edits.models, config.allowed_models)
        )
        stale = _stale_note("image-edit", edits)
    else:
        models = await state.media_catalogue.image_models(client)
        name = check_media_model(args.model, config.allowed_models, [m.name for m in models.models], tool=OP,
                                 kind="image")  # fmt: skip
        request_image = ImageRequest(
            model=name, prompt=args.prompt,
            size=args.size, quality=args.quality, style=args.style,
        )  # fmt: skip
        prepared = check_image(request_image, allowed_within(models.models, config.allowed_models))
        stale = _stale_note("image-generation", models)
    # Files: the roots (stdio), the references opened, the save folder.
    folder: Path | None = None
    opened: list[OpenedFile] = []
    if not http:
        roots = await allowed_roots(ctx, config.files_roots)
        if isinstance(roots, InputRequiredResult):  # 2026-07-28: the call comes back with the client's roots
            return roots
        folder = await save_folder(args.save_to, roots, client_roots=client_gives_roots(ctx),
                                   configured=config.files_roots, tool=OP, kind="images")  # fmt: skip
        opened = await open_files(local, roots, config.files_max_bytes, OP)
    try:
        # The spend guard, before anything is sent.
        entry = prepared.entry
        size = prepared.body.get("size")
        what = f"an image of {size} on {entry.name}" if size else f"an image on {entry.name} (size left to the relay)"
        price = _guard_price(prepared.price, entry)
        refusal = await check_spend(ctx, config, price, tool=OP, what=what, cheaper=_cheaper(entry))
        if refusal is not None:
            _close(opened)
            return refusal
        notes = [*prepared.notes, *stale]
        if folder is None:
            notes.append("Not saved on this server (HTTP): download the image from its link.")
        ask = ImageAsk(edit, size, prepared.body.get("quality"), price, str(folder) if folder else None,
                       tuple(notes))  # fmt: skip
        uploads = [Upload(stand_in[value], handle.fd, handle.path.name, handle.size)
                   for handle, (_, value) in zip(opened, local, strict=True)]  # fmt: skip
        deadline_at = time.time() + config.deadline if config.deadline else None
        job = ImageJob(entry.name, client, state.media_http, key, ask, deadline_at, prepared=prepared,
                       uploads=uploads)  # fmt: skip
        if config.max_credits_per_day is not None:  # last: a refusal before it would leave the day counted
            cap = DailyCap(state.store, await state.store.owner_tag(key), Decimal(str(config.max_credits_per_day)))
            await job.hold.reserve(cap, price, what, DAILY_FIX)
    except BaseException:
        _close(opened)
        raise
    return job


def _close(opened: list[OpenedFile]) -> None:
    for handle in opened:
        os.close(handle.fd)
