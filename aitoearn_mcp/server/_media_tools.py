"""generate_image's work, and list_models for kinds image and video.

generate_image checks everything before anything is sent or spent: the arguments, the model,
size, quality and style against the catalogue, the reference files (opened inside the roots),
the save folder, then the price against the spend guard. Only then are local references
uploaded (streamed from the open descriptors), the image made, and every image saved whole
(atomically: a cut download or an image that does not decode leaves nothing) and previewed.

Decisions where the issue is silent:

* ``model`` omitted: the catalogue's first model (the image-generation catalogue, or the edit
  catalogue when ``images`` are given).
* ``size`` omitted: the relay picks the size and its price is not known in advance, so the
  spend guard weighs the model's most expensive size.
* Results are always asked for as links (``response_format: url``: AiToEarn re-hosts them);
  an answer carrying ``b64_json`` instead is saved from those bytes.
* ``save_to`` omitted: the client's first root, else the first of AITOEARN_FILES_ROOTS, else
  the user's cache folder (``images`` in it, private).
* Over HTTP (a shared server): local paths (``images``, ``mask``, ``save_to``) are refused as
  ``files`` are, and nothing is saved to the server's disk: the result carries the link and
  the preview.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import SecretStr

from .._config import Config
from .._errors import InputError, MissingKeyError, RelayError
from ..media._catalogue import Catalogue
from ..media._download import fetch, safe_filename, save_bytes
from ..media._images import MAX_PREVIEW_BYTES, ImageInfo, Preview, inspect_image, preview, sniffed_mime
from ..media._models import ImageEditModel, ImageModel
from ..media._net import is_loopback_http
from ..media._results import GeneratedImage, ImageResult
from ..media._validate import ImageEditRequest, ImageRequest, check_image, check_image_edit
from ..relay._credits import plain_decimal
from ..views._image_view import MAX_PREVIEW_TOTAL, ShownImage, image_result
from ..views._media_models_view import image_models_result, video_models_result
from ..views._result import error_result
from ._dto import GenerateImageInput, ListModelsInput, parse_args
from ._files import OpenedFile, open_files, save_folder
from ._roots import allowed_roots, client_gives_roots
from ._spend import check_spend
from ._state import State

__all__ = ["MAX_IMAGE_BYTES", "generate_image", "media_models"]

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # one generated image downloaded; a 4K PNG is about 25 MB
OP = "generate_image"

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


async def media_models(args: ListModelsInput, state: State, key: SecretStr | None, budget: int) -> CallToolResult:
    """list_models for ``kind`` image or video."""
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
                                       notes=notes)  # fmt: skip
        videos = await catalogue.video_models(client, refresh=args.refresh)
    except RelayError as exc:
        return failed(str(exc))
    return video_models_result(videos.models, detail=args.detail, budget=budget,
                               notes=_stale_note("video-generation", videos))  # fmt: skip


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


def _name(model: str, image: GeneratedImage, index: int, media_type: str | None) -> str:
    if image.url:
        from_url = safe_filename(urlsplit(image.url).path, media_type=media_type, default="")
        if from_url and "." in from_url:
            return from_url
    ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}.get(media_type or "")
    return safe_filename(f"{model}-{index + 1}.{ext or 'png'}")


async def _keep(
    state: State, key: SecretStr, model: str, image: GeneratedImage, index: int, folder: Path | None, room: int
) -> ShownImage:
    """One image saved whole into ``folder`` (None: not saved), checked to decode, and its
    preview when ``room`` allows. A link is fetched into memory (the preview needs the bytes
    anyway: no second read from disk, no thread hop per chunk), then decoded and previewed on a
    worker thread while the bytes are written and synced: neither waits for the other."""
    want_preview = room >= MAX_PREVIEW_BYTES

    def checked(data: bytes) -> tuple[ImageInfo, Preview | None]:
        """Decoded once: the preview's decode checks the image too."""
        try:
            if want_preview:
                shown = preview(data)
                return shown.original, shown
            return inspect_image(data), None
        except InputError as exc:
            if image.data is None:
                raise InputError(f"the file at the image's link does not decode as an image ({exc})") from None
            raise

    served_type = None
    if image.data is not None:
        data = image.data
    else:
        assert image.url is not None
        data, served_type = await fetch(state.media_http, image.url, max_bytes=MAX_IMAGE_BYTES, key=key)
    name = _name(model, image, index, sniffed_mime(data) or served_type)
    info, shown, path = await _checked_while_saved(data, checked, folder, name)
    why = None if want_preview else (
        f"previews are limited to {MAX_PREVIEW_TOTAL:,} bytes per result; open the file or the link")  # fmt: skip
    return ShownImage(url=image.url, path=str(path) if path else None, size_bytes=len(data),
                      media_type=info.mime_type, width=info.width, height=info.height,
                      revised_prompt=image.revised_prompt, preview=shown, why_not_shown=why)  # fmt: skip


async def _checked_while_saved(
    data: bytes, checked: Callable[[bytes], tuple[ImageInfo, Preview | None]], folder: Path | None, name: str
) -> tuple[ImageInfo, Preview | None, Path | None]:
    """``checked(data)`` on a worker thread while ``data`` is saved as ``name`` in ``folder``; an
    image that does not decode leaves no file. Each side's failure is kept and raised after both
    ended (a task group would wrap it in an ExceptionGroup)."""
    outcome: list[tuple[ImageInfo, Preview | None]] = []
    not_an_image: list[InputError] = []

    async def check() -> None:
        try:
            outcome.append(await anyio.to_thread.run_sync(checked, data))
        except InputError as exc:
            not_an_image.append(exc)

    path: Path | None = None
    not_saved: InputError | OSError | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(check)
        if folder is not None:
            try:
                path = (await save_bytes(data, folder, name)).path
            except (InputError, OSError) as exc:
                not_saved = exc
    if not_an_image:
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)  # not an image: nothing half-useful is left behind
        raise not_an_image[0]
    if not_saved is not None:
        raise not_saved
    info, shown = outcome[0]
    return info, shown, path


async def generate_image(
    arguments: dict[str, Any], ctx: Context[Any, Any], state: State, key: SecretStr | None, labels: dict[str, str],
    *, config: Config, http: bool,
) -> CallToolResult | InputRequiredResult:  # fmt: skip
    labels["outcome"] = "input_error"
    try:
        args = parse_args(GenerateImageInput, "generate_image", arguments)
    except InputError as exc:
        return failed(str(exc))
    if key is None:
        return failed(str(MissingKeyError()))
    references = list(args.images or [])
    edit = bool(references)
    if args.mask is not None and not edit:
        return failed(f"Invalid arguments for {OP}: `mask` needs `images` (the image to repaint); fix: pass the image "
                      "in `images`, or leave `mask` out. Nothing was sent.")  # fmt: skip
    if edit and (args.quality is not None or args.style is not None):
        which = "quality" if args.quality is not None else "style"
        return failed(f"Invalid arguments for {OP}: `{which}` is not taken when editing (with `images`); fix: leave "
                      "it out. Nothing was sent.")  # fmt: skip
    named = [(f"images[{i}]", value) for i, value in enumerate(references)]
    if args.mask is not None:
        named.append(("mask", args.mask))
    local = [(field, value) for field, value in named if not _is_url(value)]
    if http:
        wrong = next((field for field, _ in local), "save_to" if args.save_to is not None else None)
        if wrong is not None:
            return failed(LOCAL_OVER_HTTP.format(field=wrong))
    client = state.media(key)
    labels["model"] = args.model or ""
    opened: list[OpenedFile] = []
    try:
        # The request, checked against the catalogue (local references stand in as placeholders).
        try:
            if edit:
                edits = await state.media_catalogue.image_edit_models(client)
                stand_in = {value: _placeholder(i) for i, (_, value) in enumerate(local)}
                request = ImageEditRequest(
                    model=args.model or (edits.models[0].name if edits.models else ""), prompt=args.prompt,
                    images=[stand_in.get(v, v) for v in references],
                    mask=stand_in.get(args.mask, args.mask) if args.mask is not None else None, size=args.size,
                )  # fmt: skip
                prepared: Any = check_image_edit(request, edits.models)
            else:
                models = await state.media_catalogue.image_models(client)
                request_image = ImageRequest(
                    model=args.model or (models.models[0].name if models.models else ""), prompt=args.prompt,
                    size=args.size, quality=args.quality, style=args.style,
                )  # fmt: skip
                prepared = check_image(request_image, models.models)
        except RelayError as exc:
            labels["outcome"] = "error"
            return failed(str(exc))
        labels["model"] = prepared.entry.name
        # Files: the roots (stdio), the references opened, the save folder.
        folder: Path | None = None
        if not http:
            roots = await allowed_roots(ctx, config.files_roots)
            if isinstance(roots, InputRequiredResult):
                labels["outcome"] = "input_required"
                return roots
            opened = await open_files(local, roots, config.files_max_bytes, OP)
            folder = await save_folder(args.save_to, roots, client_roots=client_gives_roots(ctx),
                                       configured=config.files_roots, tool=OP, kind="images")  # fmt: skip
        # The spend guard, before anything is sent.
        entry = prepared.entry
        size = prepared.body.get("size")
        what = f"an image of {size} on {entry.name}" if size else f"an image on {entry.name} (size left to the relay)"
        refusal = await check_spend(ctx, config, _guard_price(prepared.price, entry), tool=OP, what=what,
                                    cheaper=_cheaper(entry))  # fmt: skip
        if refusal is not None:
            labels["outcome"] = "input_required" if isinstance(refusal, InputRequiredResult) else "refused"
            return refusal
        labels["outcome"] = "error"
        # Uploads, then the image.
        body = dict(prepared.body)
        for handle, (field, value) in zip(opened, local, strict=True):
            asset = await client.upload(handle.fd, handle.path.name, asset_type="imageEdit")
            placeholder = _placeholder(local.index((field, value)))
            if field == "mask":
                body["mask"] = asset.url
            elif isinstance(body["image"], list):
                body["image"] = [asset.url if item == placeholder else item for item in body["image"]]
            else:
                body["image"] = asset.url
        final = type(prepared)(body, entry, prepared.price, prepared.notes, prepared.valid_models)
        made: ImageResult = await (client.edit_image(final) if edit else client.generate_image(final))
    except InputError as exc:
        return failed(str(exc))
    except RelayError as exc:
        return failed(str(exc))
    finally:
        for handle in opened:
            os.close(handle.fd)
    return await _answer(state, key, made, prepared, folder, edit, labels)


async def _answer(
    state: State, key: SecretStr, made: ImageResult, prepared: Any, folder: Path | None, edit: bool,
    labels: dict[str, str],
) -> CallToolResult:  # fmt: skip
    """Every image saved and previewed; a failure names what was made and where its link is."""
    entry = prepared.entry
    size = prepared.body.get("size") or made.size
    credits = plain_decimal(prepared.price) if prepared.price is not None else None
    each = f"{credits} credits per image (the catalogue's price for {size})" if credits else "no price known"
    count = len(made.images)
    price: Decimal | None = prepared.price
    total = f"; {plain_decimal(price * count)} in all" if price is not None and count > 1 else ""
    credits_note = f"Credits: {each}{total}; an estimate, AiToEarn's ledger is the truth."
    shown: list[ShownImage] = []
    room = MAX_PREVIEW_TOTAL
    for index, image in enumerate(made.images):
        try:
            kept = await _keep(state, key, entry.name, image, index, folder, room)
        except (InputError, RelayError) as exc:
            links = [i.url for i in made.images if i.url]
            where = f" The image links: {', '.join(links)}." if links else ""
            saved = [s.path for s in shown if s.path]
            also = f" Saved before the failure: {', '.join(saved)}." if saved else ""
            message = (
                f"The image was made (credits spent) but image {index + 1} of {count} could not be kept: {exc}."
                f"{where}{also} Fix: download it from its link, or call generate_image again."
            )
            return error_result(message, {"status": "failed", "error": message, "urls": links, "saved": saved})
        if kept.preview is not None:
            room -= len(kept.preview.data)
        shown.append(kept)
    labels["outcome"] = "ok"
    notes = list(prepared.notes)
    if folder is None:
        notes.append("Not saved on this server (HTTP): download the image from its link.")
    return image_result(shown, model=entry.name, size=size, quality=prepared.body.get("quality") or made.quality,
                        credits=credits, credits_note=credits_note, notes=notes, edit=edit)  # fmt: skip
