"""Requests checked against the chosen model's catalogue entry before anything is sent.

A refused request costs nothing and its message names the field, the values the catalogue
allows and the nearest one; a request the relay refuses may already have cost a round trip
(and for video, minutes). Values are matched forgivingly (``720p`` for a model listing
``720P``, ``1024X1024`` for ``1024x1024``) and sent as the catalogue spells them.

Where the catalogue is silent, the public guide's numbers apply (see ``_GUIDE_LIMITS``); the
catalogue wins wherever it states a value ("live catalogue values override the docs").
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from .._errors import InputError
from ._models import AudioConstraints, ImageEditModel, ImageModel, VideoConstraints, VideoModel
from ._prices import image_price, video_price

__all__ = [
    "MAX_PROMPT_CHARS",
    "VIDEO_MODES",
    "ImageEditRequest",
    "ImageRequest",
    "MediaFacts",
    "Prepared",
    "PreparedImage",
    "PreparedImageEdit",
    "PreparedVideo",
    "VideoRequest",
    "check_image",
    "check_image_edit",
    "check_video",
    "derive_mode",
    "reference_limits",
]

MAX_PROMPT_CHARS = 4000  # counted as the relay's JavaScript validator counts: UTF-16 code units
VIDEO_MODES = ("text2video", "image2video", "flf2video", "multi-image2video", "multi-ref", "video2video")
RESPONSE_FORMATS = ("url", "b64_json")
_REFERENCE_SCHEMES = ("https", "http", "data", "asset")
MAX_LISTED = 30

# The guide's reference-media counts (images, videos, audios) per model family, used only where
# the catalogue item has no ``inputConstraints`` for that kind. Longest prefix first.
_GUIDE_LIMITS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("grok-imagine-video-1.5", (1, 0, 0)),
    ("grok-imagine-video", (7, 1, 0)),
    ("happyhorse", (9, 1, 0)),
    ("doubao-seedance", (9, 3, 3)),
    ("seedance", (9, 3, 3)),
)


@dataclass(frozen=True)
class ImageRequest:
    """Text to image (``POST /api/ai/image/generate``). ``size``, ``quality`` and ``style`` are
    optional: omitted, the relay picks (and the price of its pick is not known here)."""

    model: str
    prompt: str
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: str = "url"


@dataclass(frozen=True)
class ImageEditRequest:
    """Image to image (``POST /api/ai/image/edit``). ``images`` are URLs (upload local files
    first); ``mask`` is a PNG URL the size of the first image whose transparent areas are
    repainted."""

    model: str
    prompt: str
    images: Sequence[str]
    mask: str | None = None
    size: str | None = None
    response_format: str = "url"


@dataclass(frozen=True)
class MediaFacts:
    """What the caller knows about one reference file (e.g. one it just uploaded), checked
    against the model's ``inputConstraints``; every field may be unknown."""

    size_bytes: int | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None


@dataclass(frozen=True)
class VideoRequest:
    """``POST /api/ai/video/generations``. Omitted ``mode`` is derived from the inputs (see
    ``derive_mode``); omitted ``resolution``, ``ratio`` and ``duration`` take the catalogue's
    defaults (or its only choice). ``image_tail`` is the last frame of ``flf2video``.
    ``facts`` maps a reference URL to what is known about that file."""

    model: str
    prompt: str
    mode: str | None = None
    images: Sequence[str] = ()
    image_tail: str | None = None
    videos: Sequence[str] = ()
    audios: Sequence[str] = ()
    resolution: str | None = None
    ratio: str | None = None
    duration: float | None = None
    facts: Mapping[str, MediaFacts] = field(default_factory=dict)


_EntryT = TypeVar("_EntryT", ImageModel, ImageEditModel, VideoModel)


@dataclass(frozen=True)
class Prepared(Generic[_EntryT]):
    """A request that passed the checks: ``body`` is what will be sent, ``entry`` the model's
    catalogue item, ``price`` the estimated credits (None: the catalogue has no price for it),
    ``notes`` what was filled in or derived, in words for the user."""

    body: dict[str, Any]
    entry: _EntryT
    price: Decimal | None
    notes: tuple[str, ...] = ()
    valid_models: tuple[str, ...] = ()


class PreparedImage(Prepared[ImageModel]):
    pass


class PreparedImageEdit(Prepared[ImageEditModel]):
    pass


@dataclass(frozen=True)
class PreparedVideo(Prepared[VideoModel]):
    mode: str = "text2video"
    mode_derived: bool = False


# --- messages ---------------------------------------------------------------------------------


def _refuse(operation: str, message: str) -> InputError:
    return InputError(f"Invalid arguments for {operation}: {message}. Nothing was sent.")


def _listing(values: Sequence[object]) -> str:
    shown = ", ".join(str(v) for v in values[:MAX_LISTED])
    return shown + (f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else "")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


def _choice_error(operation: str, name: str, value: object, valid: Sequence[str], nearest: str | None) -> InputError:
    near = f" (nearest: {nearest})" if nearest else ""
    return _refuse(operation, f"`{name}` {_show(value)} is not offered; fix: pass one of {_listing(valid)}{near}")


def _close(value: str, valid: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(value.lower(), [v.lower() for v in valid], n=1, cutoff=0.5)
    return next((v for v in valid if found and v.lower() == found[0]), None)


# --- matching ---------------------------------------------------------------------------------


def _size_key(size: str) -> str:
    return size.strip().lower().replace("×", "x").replace("*", "x").replace(" ", "")


def _dimensions(size: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)x(\d+)", _size_key(size))
    return (int(match.group(1)), int(match.group(2))) if match else None


def _nearest_size(value: str, sizes: Sequence[str]) -> str | None:
    wanted = _dimensions(value)
    scored = [(s, d) for s in sizes if (d := _dimensions(s)) and d[0] > 0 and d[1] > 0]
    if not wanted or not scored or wanted[0] <= 0 or wanted[1] <= 0:
        return _close(value, sizes)
    w, h = wanted

    def distance(item: tuple[str, tuple[int, int]]) -> tuple[float, float]:
        _, (sw, sh) = item
        return (round(abs(math.log((sw / sh) / (w / h))), 2), abs(math.log((sw * sh) / (w * h))))

    return min(scored, key=distance)[0]


def _ratio_value(ratio: str) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[:/xX]\s*(\d+(?:\.\d+)?)\s*", ratio)
    if not match or float(match.group(2)) == 0:
        return None
    return float(match.group(1)) / float(match.group(2))


def _nearest_ratio(value: str, ratios: Sequence[str]) -> str | None:
    wanted = _ratio_value(value)
    scored = [(r, v) for r in ratios if (v := _ratio_value(r))]
    if wanted is None or wanted <= 0 or not scored:
        return None
    return min(scored, key=lambda item: abs(math.log(item[1] / wanted)))[0]


def _resolution_lines(resolution: str) -> float | None:
    text = resolution.strip().lower()
    if match := re.fullmatch(r"(\d+)\s*p", text):
        return float(match.group(1))
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)\s*k", text):
        return {1: 1080.0, 2: 1440.0, 4: 2160.0, 8: 4320.0}.get(int(float(match.group(1))), float(match.group(1)) * 540)
    return None


def _nearest_resolution(value: str, resolutions: Sequence[str]) -> str | None:
    wanted = _resolution_lines(value)
    scored = [(r, v) for r in resolutions if (v := _resolution_lines(r))]
    if wanted is None or not scored:
        return _close(value, resolutions)
    return min(scored, key=lambda item: abs(item[1] - wanted))[0]


def _pick(value: str, valid: Sequence[str], key: Any = str.lower) -> str | None:
    """The catalogue's spelling of ``value`` when it matches one forgivingly, else None."""
    wanted = key(value.strip())
    return next((v for v in valid if key(v.strip()) == wanted), None)


# --- common checks ----------------------------------------------------------------------------


def _model(operation: str, name: str, models: Sequence[_EntryT], catalogue: str) -> _EntryT:
    if not models:
        raise _refuse(
            operation, f"the {catalogue} catalogue lists no models right now; fix: try again later (nothing to choose)"
        )
    names = [m.name for m in models]
    if not isinstance(name, str) or not name.strip():
        raise _refuse(operation, f"`model` is required; fix: pass one of {_listing(names)}")
    exact = next((m for m in models if m.name == name.strip()), None)
    found = exact or next((m for m in models if m.name.lower() == name.strip().lower()), None)
    if found is None:
        near = _close(name, names)
        hint = f" (did you mean {near}?)" if near else ""
        raise _refuse(
            operation,
            f"`model` {_show(name)} is not in the {catalogue} catalogue{hint}; fix: pass one of {_listing(names)}",
        )
    return found


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _prompt(operation: str, prompt: str) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise _refuse(operation, "`prompt` is empty; fix: describe what to make (1 to 4,000 characters)")
    if (length := _utf16_length(prompt)) > MAX_PROMPT_CHARS:
        raise _refuse(
            operation,
            f"`prompt` is {length:,} characters (UTF-16 units, as the relay counts), over the limit of "
            f"{MAX_PROMPT_CHARS:,}; fix: shorten it by {length - MAX_PROMPT_CHARS:,} or more",
        )
    return prompt


def _response_format(operation: str, value: str) -> str:
    if value not in RESPONSE_FORMATS:
        raise _refuse(operation, f"`response_format` {_show(value)} is not offered; fix: pass url or b64_json")
    return value


def _references(operation: str, name: str, values: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        raise _refuse(operation, f"`{name}` must be a list of URLs, got one string; fix: pass [{_show(values)}]")
    checked = []
    for index, value in enumerate(values):
        scheme = urlsplit(value).scheme.lower() if isinstance(value, str) else ""
        if scheme not in _REFERENCE_SCHEMES:
            raise _refuse(
                operation,
                f"`{name}[{index}]` {_show(value)} is not a URL (https://…, data:…, or asset://…); fix: upload the "
                "local file first and pass the URL the upload returns",
            )
        checked.append(value)
    return checked


def _size(operation: str, size: str | None, sizes: Sequence[str]) -> str | None:
    if size is None:
        return None
    if not sizes:
        return size  # the catalogue lists none: nothing to check against
    found = _pick(size, sizes, key=_size_key)
    if found is None:
        raise _choice_error(operation, "size", size, sizes, _nearest_size(size, sizes))
    return found


# --- image ------------------------------------------------------------------------------------


def check_image(request: ImageRequest, models: Sequence[ImageModel]) -> PreparedImage:
    """``request`` checked against its model in the image-generation catalogue, as the body to send."""
    op = "generate_image"
    entry = _model(op, request.model, models, "image-generation")
    body: dict[str, Any] = {"model": entry.name, "prompt": _prompt(op, request.prompt)}
    body["response_format"] = _response_format(op, request.response_format)
    size = _size(op, request.size, entry.sizes)
    if size is not None:
        body["size"] = size
    if request.quality is not None:
        quality = _pick(request.quality, entry.qualities) if entry.qualities else request.quality
        if quality is None:
            near = _close(request.quality, entry.qualities)
            raise _choice_error(op, "quality", request.quality, entry.qualities, near)
        body["quality"] = quality
    if request.style is not None:
        if not entry.styles:
            raise _refuse(op, f"`style` is not supported by {entry.name} (its catalogue lists no styles); fix: omit it")
        style = _pick(request.style, entry.styles)
        if style is None:
            raise _choice_error(op, "style", request.style, entry.styles, _close(request.style, entry.styles))
        body["style"] = style
    notes = () if size else ("no size given: the relay picks one, and its price is not known in advance",)
    return PreparedImage(body, entry, image_price(entry, size), notes, tuple(m.name for m in models))


def check_image_edit(request: ImageEditRequest, models: Sequence[ImageEditModel]) -> PreparedImageEdit:
    """``request`` checked against its model in the image-edit catalogue, as the body to send."""
    op = "edit_image"
    entry = _model(op, request.model, models, "image-edit")
    body: dict[str, Any] = {"model": entry.name, "prompt": _prompt(op, request.prompt)}
    images = _references(op, "images", request.images)
    if not images:
        raise _refuse(op, "`images` is empty, and editing needs at least one image; fix: pass the image's URL")
    limit = entry.max_input_images
    if limit is not None and len(images) > limit:
        raise _refuse(
            op, f"`images` has {len(images)} items, over {entry.name}'s limit of {limit}; fix: pass at most {limit}"
        )
    body["image"] = images[0] if len(images) == 1 else images
    if request.mask is not None:
        body["mask"] = _references(op, "mask", [request.mask])[0]
    size = _size(op, request.size, entry.sizes)
    if size is not None:
        body["size"] = size
    body["response_format"] = _response_format(op, request.response_format)
    notes = () if size else ("no size given: the relay picks one, and its price is not known in advance",)
    return PreparedImageEdit(body, entry, image_price(entry, size), notes, tuple(m.name for m in models))


# --- video ------------------------------------------------------------------------------------


def derive_mode(modes: Sequence[str], *, images: int, videos: int, audios: int, image_tail: bool = False) -> str:
    """The mode the inputs imply: a last frame → flf2video; any video → video2video when the
    model has it, else multi-ref; any audio → multi-ref; 2+ images → multi-image2video; one
    image → image2video; nothing → text2video. (The relay derives it too when none is sent; the
    client derives it first so the request is checked and priced in that mode.)"""
    if image_tail:
        return "flf2video"
    if videos:
        return "video2video" if "video2video" in modes else "multi-ref"
    if audios:
        return "multi-ref"
    if images >= 2:
        return "multi-image2video"
    return "image2video" if images == 1 else "text2video"


def _limits(entry: VideoModel) -> tuple[int | None, int | None, int | None, str]:
    """Most images, videos and audios the model takes, and where the numbers come from."""
    constraints = entry.input_constraints
    guide = next((limits for prefix, limits in _GUIDE_LIMITS if entry.name.lower().startswith(prefix)), None)
    images = constraints.images.max_count if constraints and constraints.images else None
    videos = constraints.videos.max_count if constraints and constraints.videos else None
    audios = constraints.audios.max_count if constraints and constraints.audios else None
    source = "its catalogue entry"
    if guide and (images is None or videos is None or audios is None):
        source = "its catalogue entry and the AiToEarn video guide"
        images = guide[0] if images is None else images
        videos = guide[1] if videos is None else videos
        audios = guide[2] if audios is None else audios
    if entry.max_input_images is not None:
        images = entry.max_input_images if images is None else min(images, entry.max_input_images)
    return images, videos, audios, source


def reference_limits(entry: VideoModel) -> tuple[int | None, int | None, int | None]:
    """Most reference images, videos and audios ``entry`` takes (None: no limit known), from its
    catalogue entry and, where that is silent, the video guide."""
    return _limits(entry)[:3]


def _mode_inputs(op: str, mode: str, images: int, videos: int, audios: int, tail: bool, entry: VideoModel) -> None:
    """The inputs each documented mode takes (an unknown, newer mode is passed through)."""
    parts = {"images": images, "videos": videos, "audios": audios}
    given = ", ".join(f"{n} {k}" for k, n in parts.items() if n) or "no reference media"
    problem = ""
    if tail and mode != "flf2video":
        problem = "`image_tail` (a last frame) is only for mode flf2video"
    elif mode == "text2video" and (images or videos or audios):
        problem = f"mode text2video takes no reference media, got {given}"
    elif mode == "image2video" and (images != 1 or videos or audios):
        problem = f"mode image2video takes exactly 1 image, got {given}"
    elif mode == "flf2video" and (images != 1 or not tail or videos or audios):
        problem = f"mode flf2video takes 1 first frame in `images` and the last frame in `image_tail`, got {given}"
    elif mode == "multi-image2video" and (not images or videos or audios):
        problem = f"mode multi-image2video takes images only, got {given}"
    elif mode == "video2video" and (not videos or audios):
        problem = f"mode video2video takes at least 1 video (and no audio), got {given}"
    elif mode == "multi-ref" and not (images or videos or audios):
        problem = "mode multi-ref takes at least one reference image, video or audio, got none"
    if problem:
        raise _refuse(op, f"`mode` {problem}; fix: change the inputs or pick another of {entry.name}'s modes "
                          f"({_listing(entry.modes)})")  # fmt: skip


def _extension(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return None
    name = parts.path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[1].lower() if "." in name else None


def _check_files(
    op: str, name: str, urls: Sequence[str], rules: VideoConstraints | AudioConstraints | None,
    facts: Mapping[str, MediaFacts],
) -> None:  # fmt: skip
    """Formats (from the URL's extension, when it has one) and the facts the caller knows."""
    if rules is None:
        return
    formats = [f.lower().lstrip(".") for f in rules.formats]
    total = 0.0
    for index, url in enumerate(urls):
        field_name = f"{name}[{index}]"
        ext = _extension(url)
        if formats and ext is not None and ext not in formats:
            raise _refuse(op, f"`{field_name}` is a .{ext} file, a format the model does not take; fix: convert it to "
                              f"one of {_listing(formats)}")  # fmt: skip
        fact = facts.get(url)
        if fact is None:
            continue
        limit = rules.max_size_mb
        if fact.size_bytes is not None and limit is not None and fact.size_bytes > limit * 2**20:
            raise _refuse(op, f"`{field_name}` is {fact.size_bytes / 2**20:.1f} MB, over the limit of "
                              f"{rules.max_size_mb:g} MB; fix: compress or trim it")  # fmt: skip
        if fact.duration is not None:
            total += fact.duration
            low, high = rules.min_duration, rules.max_duration
            if (low is not None and fact.duration < low) or (high is not None and fact.duration > high):
                span = f"{low or 0:g}–{high:g} s" if high is not None else f"at least {low:g} s"
                raise _refuse(op, f"`{field_name}` lasts {fact.duration:g} s, outside {span}; "
                                  "fix: trim or extend it into that range")  # fmt: skip
        if isinstance(rules, VideoConstraints):
            _check_picture(op, field_name, fact, rules)
    if rules.max_total_duration is not None and total > rules.max_total_duration:
        raise _refuse(op, f"`{name}` last {total:g} s together, over the limit of {rules.max_total_duration:g} s; "
                          "fix: use fewer or shorter files")  # fmt: skip


def _check_picture(op: str, field_name: str, fact: MediaFacts, rules: VideoConstraints) -> None:
    def outside(value: float | None, low: float | None, high: float | None) -> bool:
        return value is not None and ((low is not None and value < low) or (high is not None and value > high))

    def number(value: float | None) -> str:
        return "" if value is None else f"{int(value):,}" if float(value).is_integer() else f"{value:g}"

    def span(low: float | None, high: float | None) -> str:
        return f"{number(low)}–{number(high)}"

    if outside(fact.width, rules.min_width, rules.max_width):
        raise _refuse(op, f"`{field_name}` is {fact.width} px wide, outside {span(rules.min_width, rules.max_width)} "
                          "px; fix: rescale it")  # fmt: skip
    if fact.width and fact.height:
        pixels = fact.width * fact.height
        if outside(pixels, rules.min_pixels, rules.max_pixels):
            allowed = span(rules.min_pixels, rules.max_pixels)
            raise _refuse(op, f"`{field_name}` has {pixels:,} pixels, outside {allowed}; fix: rescale it")
        if outside(fact.width / fact.height, rules.min_aspect_ratio, rules.max_aspect_ratio):
            raise _refuse(op, f"`{field_name}` has aspect ratio {fact.width / fact.height:.2f}, outside "
                              f"{span(rules.min_aspect_ratio, rules.max_aspect_ratio)}; fix: crop it")  # fmt: skip
    if outside(fact.fps, rules.min_fps, rules.max_fps):
        raise _refuse(op, f"`{field_name}` runs at {fact.fps:g} fps, outside {span(rules.min_fps, rules.max_fps)} fps; "
                          "fix: re-encode it")  # fmt: skip


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def check_video(request: VideoRequest, models: Sequence[VideoModel]) -> PreparedVideo:
    """``request`` checked against its model in the video-generation catalogue, as the body to send."""
    op = "generate_video"
    entry = _model(op, request.model, models, "video-generation")
    body: dict[str, Any] = {"model": entry.name, "prompt": _prompt(op, request.prompt)}
    notes: list[str] = []
    images = _references(op, "images", request.images)
    videos = _references(op, "videos", request.videos)
    audios = _references(op, "audios", request.audios)
    tail = _references(op, "image_tail", [request.image_tail])[0] if request.image_tail is not None else None

    # Counts, before the mode: "too many images" is the clearer message.
    max_images, max_videos, max_audios, source = _limits(entry)
    for name, items, limit in (("images", images, max_images), ("videos", videos, max_videos),
                               ("audios", audios, max_audios)):  # fmt: skip
        if limit is not None and len(items) > limit:
            fix = f"pass at most {limit}" if limit else f"omit `{name}`: this model takes none"
            raise _refuse(op, f"`{name}` has {len(items)} items, over {entry.name}'s limit of {limit} (from {source}); "
                              f"fix: {fix}")  # fmt: skip

    if request.mode is not None:
        mode = _pick(request.mode, entry.modes) if entry.modes else request.mode
        if mode is None:
            raise _choice_error(op, "mode", request.mode, entry.modes, _close(request.mode, entry.modes))
        derived = False
    else:
        mode = derive_mode(entry.modes, images=len(images), videos=len(videos), audios=len(audios),
                           image_tail=tail is not None)  # fmt: skip
        derived = True
        given = f"{len(images)} image(s), {len(videos)} video(s), {len(audios)} audio(s)"
        if entry.modes and mode not in entry.modes:
            raise _refuse(op, f"`mode` was not given and the inputs ({given}) imply {mode}, which {entry.name} does "
                              f"not offer; fix: pass inputs for one of its modes ({_listing(entry.modes)}) or "
                              "another model")  # fmt: skip
        notes.append(f"mode {mode} was derived from the inputs ({given})")
    _mode_inputs(op, mode, len(images), len(videos), len(audios), tail is not None, entry)
    body["mode"] = mode
    if images:
        body["images"] = images
    if tail is not None:
        body["image_tail"] = tail
    if videos:
        body["videos"] = videos
    if audios:
        body["audios"] = audios
    constraints = entry.input_constraints
    _check_files(op, "videos", videos, constraints.videos if constraints else None, request.facts)
    _check_files(op, "audios", audios, constraints.audios if constraints else None, request.facts)

    resolution = _video_choice(op, "resolution", request.resolution, entry.resolutions, entry.defaults.resolution,
                               _nearest_resolution, notes)  # fmt: skip
    ratio = _video_choice(op, "ratio", request.ratio, entry.aspect_ratios, entry.defaults.aspect_ratio,
                          _nearest_ratio, notes)  # fmt: skip
    if resolution is not None:
        body["resolution"] = resolution
    if ratio is not None:
        body["ratio"] = ratio
    duration = _duration(op, request.duration, entry, notes)
    if duration is not None:
        body["duration"] = duration
    price = video_price(entry, resolution=resolution, seconds=duration, mode=mode)
    if price is None:
        notes.append("the catalogue lists no price for this mode, resolution and duration")
    return PreparedVideo(body, entry, price, tuple(notes), tuple(m.name for m in models), mode=mode,
                         mode_derived=derived)  # fmt: skip


def _video_choice(
    op: str, name: str, value: str | None, valid: Sequence[str], default: str | None, nearest: Any, notes: list[str]
) -> str | None:
    if value is None:
        chosen = default if default is not None and (not valid or default in valid) else None
        if chosen is None and len(valid) == 1:
            chosen = valid[0]
        if chosen is not None:
            notes.append(f"{name} {chosen} is the catalogue's default")
        return chosen
    if not isinstance(value, str):
        raise _refuse(op, f"`{name}` must be a string such as {valid[0] if valid else '720p'}")
    if not valid:
        return value
    found = _pick(value, valid)
    if found is None:
        raise _choice_error(op, name, value, valid, nearest(value, valid))
    return found


def _duration(op: str, value: float | None, entry: VideoModel, notes: list[str]) -> int | float | None:
    durations = entry.durations
    if value is None:
        default = entry.defaults.duration
        chosen = default if default is not None and (not durations or default in durations) else None
        if chosen is None and len(durations) == 1:
            chosen = durations[0]
        if chosen is not None:
            notes.append(f"duration {chosen:g} s is the catalogue's default")
            return _number(chosen)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise _refuse(op, f"`duration` must be a number of seconds, got {_show(value)}")
    if durations and not any(float(d) == float(value) for d in durations):
        nearest = min(durations, key=lambda d: abs(float(d) - float(value)))
        listed = _span(durations)
        raise _refuse(op, f"`duration` {value:g} s is not offered by {entry.name}; fix: pass one of {listed} "
                          f"(nearest: {nearest:g})")  # fmt: skip
    return _number(value)


def _span(durations: Sequence[float]) -> str:
    ordered = sorted(durations)
    consecutive = all(b - a == 1 for a, b in itertools.pairwise(ordered))
    if consecutive and len(ordered) > 3:
        return f"{ordered[0]:g} to {ordered[-1]:g} (whole seconds)"
    return _listing([f"{d:g}" for d in ordered])
