"""What the server publishes besides the tools' names and descriptions: the input schemas as
``input_schemas.json`` holds them, the output schemas (what structuredContent holds).

The input schemas are generated from the DTOs (``python scripts/input_schemas.py``; a test
fails while they differ) and read here, not built at start-up: building them took ~8 ms of
the time a host that does not wait gives a server to list its tools.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["IMAGE_SCHEMA", "INPUT_SCHEMAS", "INPUT_SCHEMAS_FILE", "MESSAGE_SCHEMA", "MODELS_SCHEMA", "VIDEO_SCHEMA"]


INPUT_SCHEMAS_FILE = Path(__file__).with_name("input_schemas.json")
INPUT_SCHEMAS: dict[str, dict[str, Any]] = json.loads(INPUT_SCHEMAS_FILE.read_text(encoding="utf-8"))

# Output schemas: what structuredContent holds. Open objects, since the relay adds fields.
# Nullable members as anyOf, not type arrays: clients that map schemas onto one-type dialects
# (the OpenAPI subset of Gemini function declarations) reject or drop type arrays. The usual
# case first: a client validating with jsonschema builds an error for each branch that fails,
# which made up 0.1 of its 0.23 ms per send_message result.
_NULLABLE_STRING: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
_NULL_OR_STRING: dict[str, Any] = {"anyOf": [{"type": "null"}, {"type": "string"}]}  # null unless one was hit
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}

MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "status and reply_id first; complete: the Anthropic Message plus route, credits, notes, "
    "conversation_id, next_offset (more text: get_reply with that offset); several models: replies, one each.",
    "properties": {
        "status": {"enum": ["complete", "running", "failed", "cancelled", "refused"]},
        "reply_id": {"type": "string"},
        "error": {"type": "string"},
        "notes": _STRINGS,
        "truncated": {"type": "object"},
        "conversation_id": {"type": "string"},
        "credits": {"type": "object"},
        "route": {"type": "string"},
        "next_offset": {"anyOf": [{"type": "null"}, {"type": "integer"}]},  # null unless the text was cut
        "replies": {"type": "array", "items": {"type": "object"}},
        "model": {"type": "string"},
        "stop_reason": _NULLABLE_STRING,
        "stop_sequence": _NULL_OR_STRING,
        "usage": {"type": "object"},
        "content": {
            "type": "array",
            "items": {"type": "object", "properties": {"type": {"type": "string"}}, "required": ["type"]},
        },
    },
    "required": ["status"],
}

MODELS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"enum": ["failed"]},  # a failed call: status and error instead of models
        "error": {"type": "string"},
        "notes": _STRINGS,
        "models": {
            "type": "array",
            "description": "chat: name, channel, input, output, price, description; image: name, credits per image "
            "by size, qualities, styles, edits, max_input_images; video: name, modes, resolutions, ratios, durations, "
            "max_references, credits_per_second, defaults.",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        },
        "entry": {"type": "object"},
    },
}

# An image's or a video's credits: the catalogue's price for the call, and what the relay reported
# charging when it did.
_CREDITS: dict[str, Any] = {
    "type": "object",
    "properties": {"price": _NULLABLE_STRING, "points": {"type": "string"}},
}

IMAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "status and reply_id first; complete: each image's saved path, link, size and revised prompt, "
    "and the credits; running: stage, relay_status, next; failed or refused: error (and the links of images made "
    "but not kept).",
    "properties": {
        "status": {"enum": ["complete", "running", "failed", "cancelled", "refused"]},
        "reply_id": {"type": "string"},
        "error": {"type": "string"},
        "notes": _STRINGS,
        "credits": _CREDITS,
        "model": {"type": "string"},
        "size": {"type": "string"},
        "quality": {"type": "string"},
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "url": {"type": "string"},
                    "width": {"type": "integer"},
                    "height": {"type": "integer"},
                    "bytes": {"type": "integer"},
                    "media_type": {"type": "string"},
                    "shown": {"type": "boolean"},
                    "revised_prompt": {"type": "string"},
                },
            },
        },
        "urls": _STRINGS,
        "saved": _STRINGS,
    },
    "required": ["status"],
}

VIDEO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "status and reply_id first; complete: path (the saved file), video_url, cover_url, notes, credits, "
    "duration, resolution, ratio, mode; running: stage, relay_status, next.",
    "properties": {
        "status": {"enum": ["complete", "running", "failed", "cancelled", "refused"]},
        "reply_id": {"type": "string"},
        "path": _NULLABLE_STRING,
        "video_url": _NULLABLE_STRING,
        "error": {"type": "string"},
        "notes": _STRINGS,
        "credits": _CREDITS,
    },
    "required": ["status"],
}
