"""The media services layer: AiToEarn's native image, video and asset routes.

This subpackage owns everything between an MCP tool and the relay's media endpoints:

* the three public catalogues (image generation, image edit, video generation), parsed
  leniently and cached (``MediaCatalogue``);
* prices in credits from those catalogues (``image_price``, ``video_price``);
* checking a request against the chosen model's entry before anything is sent
  (``check_image``, ``check_image_edit``, ``check_video``: every refusal is an ``InputError``
  naming the field and the fix);
* the native client (``MediaClient``): image generate/edit (sync and async), video submit and
  status, uploads (sign, keyless PUT to storage, confirm), with the envelope's error codes
  mapped to the ``aitoearn_mcp._errors`` classes;
* saving results (``download``, ``save_bytes``: atomic, size-bounded, never overwriting),
  image previews (``preview``, ``inspect_image``; Pillow, imported lazily), and waiting for a
  video (``poll_video``).

Layering: it may import only ``aitoearn_mcp._config``, ``aitoearn_mcp._errors``,
``aitoearn_mcp._untrusted`` and ``aitoearn_mcp._version`` from this package, plus the standard
library, pydantic, anyio, httpx2 and (lazily) Pillow. Nothing here knows about MCP, tools,
roots or conversations; the tools layer opens the caller's files, configures the
``httpx2.AsyncClient`` (base URL = site root, timeouts) and turns the results into content.

A typical text-to-image call::

    client = MediaClient(http, key)
    models = await catalogue.image_models(client)
    prepared = check_image(ImageRequest(model="gpt-image-2", prompt="...", size="1024x1024"), models.models)
    # prepared.price is the estimated credits (None: not listed); show it before spending
    result = await client.generate_image(prepared)
"""

from __future__ import annotations

from ._catalogue import Catalogue, MediaCatalogue
from ._client import MediaClient, content_type_for
from ._download import Downloaded, download, safe_filename, save_bytes
from ._envelope import ErrorContext
from ._images import MAX_PREVIEW_BYTES, MAX_PREVIEW_SIDE, ImageInfo, Preview, inspect_image, preview
from ._models import (
    AudioConstraints,
    ImageEditModel,
    ImageModel,
    ImagePrice,
    ImagesConstraints,
    InputConstraints,
    VideoConstraints,
    VideoDefaults,
    VideoModel,
    VideoPrice,
)
from ._poll import OnProgress, PollOutcome, VideoStatusSource, poll_video
from ._prices import image_price, video_price
from ._results import (
    GeneratedImage,
    ImageResult,
    ImageTask,
    ImageTaskStatus,
    UploadedAsset,
    VideoStatus,
    VideoTask,
)
from ._validate import (
    MAX_PROMPT_CHARS,
    VIDEO_MODES,
    ImageEditRequest,
    ImageRequest,
    MediaFacts,
    Prepared,
    PreparedImage,
    PreparedImageEdit,
    PreparedVideo,
    VideoRequest,
    check_image,
    check_image_edit,
    check_video,
    derive_mode,
)

__all__ = [
    "MAX_PREVIEW_BYTES",
    "MAX_PREVIEW_SIDE",
    "MAX_PROMPT_CHARS",
    "VIDEO_MODES",
    "AudioConstraints",
    "Catalogue",
    "Downloaded",
    "ErrorContext",
    "GeneratedImage",
    "ImageEditModel",
    "ImageEditRequest",
    "ImageInfo",
    "ImageModel",
    "ImagePrice",
    "ImageRequest",
    "ImageResult",
    "ImageTask",
    "ImageTaskStatus",
    "ImagesConstraints",
    "InputConstraints",
    "MediaCatalogue",
    "MediaClient",
    "MediaFacts",
    "OnProgress",
    "PollOutcome",
    "Prepared",
    "PreparedImage",
    "PreparedImageEdit",
    "PreparedVideo",
    "Preview",
    "UploadedAsset",
    "VideoConstraints",
    "VideoDefaults",
    "VideoModel",
    "VideoPrice",
    "VideoRequest",
    "VideoStatus",
    "VideoStatusSource",
    "VideoTask",
    "check_image",
    "check_image_edit",
    "check_video",
    "content_type_for",
    "derive_mode",
    "download",
    "image_price",
    "inspect_image",
    "poll_video",
    "preview",
    "safe_filename",
    "save_bytes",
    "video_price",
]
