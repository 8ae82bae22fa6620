"""The tool inputs: ``ClaudeChatProxyDto`` and the other tools' arguments as pydantic models.

The input models carry the docs the agent sees (``input_schema`` turns them into the schemas
in ``input_schemas.json``). Validation names the field and the fix; the caller's own arguments
(every extra field kept) go on to the request builder.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic.json_schema import GenerateJsonSchema, SkipJsonSchema

from .._errors import InputError

__all__ = [
    "INPUT_MODELS",
    "GenerateImageInput",
    "GenerateVideoInput",
    "GetReplyInput",
    "ListConversationsInput",
    "ListModelsInput",
    "SendMessageInput",
    "input_schema",
    "input_schemas_json",
    "parse_args",
    "parse_send_message_args",
    "unknown_fields",
]
MAX_TOKENS_LIMIT = 9007199254740991  # ClaudeChatProxyDto's maximum (2**53 - 1)
MAX_MODELS = 8
MAX_WAIT = 3600
MAX_REFERENCES = 20  # per kind; each model's own limit (at most 9 today) is checked against its catalogue entry
WAIT_DESCRIPTION = "Seconds to wait before answering status running with a reply_id (default: what the host allows)."

logger = logging.getLogger("aitoearn_mcp")

# Properties a host adds to every tool's schema and sends with the call, for itself: Gemini CLI's
# wait_for_previous (run after the tools called before it). Not ours nor the relay's: dropped.
HOST_CONTROL_FIELDS = frozenset({"wait_for_previous"})

# Optional fields: absent or null upstream alike; the schema shows only the real type.
None_ = SkipJsonSchema[None]
Name = Annotated[StrictStr, Field(min_length=1)]


class _Open(BaseModel):
    """An object the relay passes on: known fields checked, unknown fields kept."""

    model_config = ConfigDict(extra="allow")


class ContentBlock(_Open):
    type: StrictStr = Field(description="Block type: text, image, document, tool_use, tool_result, thinking, ...")


class InputMessage(_Open):
    role: Literal["user", "assistant"]
    content: StrictStr | list[ContentBlock] = Field(description="A string, or a list of Anthropic content blocks.")


class ThinkingConfig(_Open):
    type: StrictStr = Field(description='"enabled" (with budget_tokens), "adaptive" or "disabled".')
    budget_tokens: Annotated[StrictInt, Field(ge=1024)] | None_ = Field(
        None, description="Thinking budget: 1024 or more, less than max_tokens."
    )


class ToolDefinition(_Open):
    name: StrictStr
    description: StrictStr | None = None
    input_schema: dict[str, Any] | None_ = Field(None, description="JSON schema of the tool's input.")


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None_ = Field(None, description='Tool name, when type is "tool".')


class SendMessageInput(_Open):
    """Arguments of send_message: an Anthropic Messages request (``ClaudeChatProxyDto``)."""

    model: Name | None_ = Field(
        None,
        description="Model name from list_models (e.g. claude-sonnet-5) or an alias it lists "
        "(claude, gpt, gemini, ...).",
    )
    models: Annotated[list[Name], Field(min_length=2, max_length=MAX_MODELS)] | None_ = Field(
        None, description="Instead of model: 2-8 names; the same request goes to each at once, one reply each."
    )
    judge: Name | None_ = Field(
        None,
        description="With models: a model that reads their replies, anonymised, and writes a synthesis.",
    )
    fallback: Annotated[list[Name], Field(min_length=1, max_length=MAX_MODELS)] | None_ = Field(
        None,
        description="Models tried in turn if model (or judge) fails before any text (overloaded, unavailable).",
    )
    messages: list[InputMessage] = Field(
        min_length=1,
        description="Conversation so far (at least one message), oldest first, alternating user/assistant; "
        "the last is usually user.",
    )
    max_tokens: StrictInt = Field(
        32000, ge=1, le=MAX_TOKENS_LIMIT, description="Most tokens to generate: 1 or more, default 32000."
    )
    system: StrictStr | list[ContentBlock] | None_ = Field(None, description="System prompt.")
    temperature: Annotated[StrictFloat, Field(ge=0)] | None_ = Field(
        None, description="Randomness: 0 or more, 0-1 for Claude models."
    )
    top_p: Annotated[StrictFloat, Field(ge=0, le=1)] | None_ = Field(
        None, description="Nucleus sampling cut-off, 0 to 1."
    )
    top_k: Annotated[StrictInt, Field(ge=0)] | None_ = Field(
        None, description="Sample only from the top K tokens, 0 or more."
    )
    stop_sequences: list[StrictStr] | None_ = Field(None, description="Strings that end generation.")
    thinking: ThinkingConfig | None_ = Field(None, description="Extended thinking.")
    tools: list[ToolDefinition] | None_ = Field(None, description="Tools the model may call (returned as tool_use).")
    tool_choice: ToolChoice | None_ = Field(None, description="How the model picks among tools.")
    metadata: dict[str, Any] | None_ = Field(None, description='Request metadata, e.g. {"user_id": "..."}.')
    conversation_id: StrictStr | None_ = Field(
        None,
        description="Continue the conversation of an earlier result: its conversation_id (the stored turns go "
        "before `messages`), or id#N to branch after turn N.",
    )
    files: list[StrictStr] | None_ = Field(
        None,
        description="Paths the server reads and adds to the last user message: text, PNG, JPEG, GIF, WebP, PDF. "
        "Inside the client's roots or the server's directory; stdio only.",
    )
    wait_seconds: Annotated[StrictFloat | StrictInt, Field(ge=0, le=MAX_WAIT)] | None_ = Field(
        None, description=WAIT_DESCRIPTION
    )


class GetReplyInput(BaseModel):
    """Arguments of get_reply."""

    model_config = ConfigDict(extra="forbid")

    reply_id: StrictStr = Field(
        min_length=1, description="The reply_id of a send_message, generate_image or generate_video result."
    )
    wait_seconds: Annotated[StrictFloat | StrictInt, Field(ge=0, le=MAX_WAIT)] | None_ = Field(
        None, description=WAIT_DESCRIPTION
    )
    offset: StrictInt = Field(0, ge=0, description="Start at this character of the reply text (from next_offset).")
    cancel: StrictBool = Field(
        False,
        description="Stop the generation now (billing stops); an image or video: stop waiting (its credits may be "
        "spent).",
    )


References = Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(max_length=MAX_REFERENCES)]


class GenerateVideoInput(BaseModel):
    """Arguments of generate_video."""

    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(min_length=1, description="What the video shows: 1 to 4,000 characters.")
    model: Name = Field(description="Video model name, e.g. seedance-2-fast-beta (list_models kind: video).")
    mode: StrictStr | None_ = Field(
        None,
        description="One of the model's modes: text2video, image2video, flf2video, multi-image2video, multi-ref, "
        "video2video. Default: derived from the inputs.",
    )
    images: References | None_ = Field(
        None, description="Reference images: local paths (inside the roots; stdio only) or https URLs."
    )
    image_tail: StrictStr | None_ = Field(None, description="flf2video's last frame: a local path or https URL.")
    videos: References | None_ = Field(None, description="Reference videos: local paths or https URLs.")
    audios: References | None_ = Field(None, description="Reference audio: local paths or https URLs.")
    resolution: StrictStr | None_ = Field(None, description="e.g. 720p; default: the model's.")
    ratio: StrictStr | None_ = Field(None, description="Aspect ratio, e.g. 16:9; default: the model's.")
    duration: Annotated[StrictFloat | StrictInt, Field(gt=0)] | None_ = Field(
        None, description="Seconds, one the model lists; default: the model's."
    )
    wait_seconds: Annotated[StrictFloat | StrictInt, Field(ge=0, le=MAX_WAIT)] | None_ = Field(
        None, description=WAIT_DESCRIPTION
    )
    save_to: StrictStr | None_ = Field(
        None, description="Folder for the video, inside the roots (stdio). Default: the first root."
    )
    download: StrictBool = Field(True, description="Save the video to disk; false: only its URL.")


class ListModelsInput(BaseModel):
    """Arguments of list_models."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["chat", "image", "video"] = Field(
        "chat",
        description="chat (default): send_message's models; image: generate_image's (sizes by price, qualities, "
        "styles, edits); video: video models (modes, resolutions, durations, credits per second).",
    )
    refresh: StrictBool = Field(False, description="Bypass the 5-minute cache; default false.")
    channel: StrictStr | None_ = Field(None, description="chat only: anthropic, openai, gemini, deepseek, ...")
    modality: StrictStr | None_ = Field(None, description="chat only: text, image, audio or video, in or out.")
    detail: StrictStr | None_ = Field(None, description="A model name (of this kind): its full catalogue entry.")


class GenerateImageInput(BaseModel):
    """Arguments of generate_image."""

    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(min_length=1, max_length=4000, description="What to make or change: 1-4000 characters.")
    model: Name | None_ = Field(
        None, description="From list_models kind image; default: the catalogue's first (edit catalogue with images)."
    )
    size: Name | None_ = Field(
        None,
        description='e.g. "1024x1024"; the price depends on it (list_models kind image). Default: the relay picks.',
    )
    quality: Name | None_ = Field(None, description="auto, high, medium or low, as the model lists.")
    style: Name | None_ = Field(None, description="One of the model's styles, if it lists any.")
    images: Annotated[list[Name], Field(min_length=1)] | None_ = Field(
        None,
        description="Reference images to edit: local paths (inside the roots; stdio only) or https URLs. "
        "With them the call is an edit.",
    )
    mask: Name | None_ = Field(
        None, description="With images: a PNG the size of the first, transparent where to repaint (path or URL)."
    )
    wait_seconds: Annotated[StrictFloat | StrictInt, Field(ge=0, le=MAX_WAIT)] | None_ = Field(
        None, description=WAIT_DESCRIPTION
    )
    save_to: Name | None_ = Field(
        None, description="Folder for the image files (inside the roots; stdio only). Default: the first root."
    )


class ListConversationsInput(BaseModel):
    """Arguments of list_conversations."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: StrictStr | None_ = Field(
        None, description="A conversation_id: show its turns. Leave it out to list your conversations and replies."
    )
    from_turn: StrictInt = Field(1, ge=1, description="First turn shown: 1 or more, default 1 (from next_from_turn).")


# Each tool's input model, by tool name: the schemas the tools publish.
INPUT_MODELS: dict[str, type[BaseModel]] = {
    "list_models": ListModelsInput,
    "send_message": SendMessageInput,
    "get_reply": GetReplyInput,
    "generate_video": GenerateVideoInput,
    "list_conversations": ListConversationsInput,
    "generate_image": GenerateImageInput,
}


class _CompactSchema(GenerateJsonSchema):
    """Pydantic's schema without the titles: agents pay for every character of it."""

    def generate(self, schema: Any, mode: Any = "validation") -> dict[str, Any]:
        result = super().generate(schema, mode)
        _strip_titles(result)
        return result


def _strip_titles(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("title", None)
        if node.get("default", 0) is None:
            del node["default"]
        for key, value in node.items():
            if key != "properties":
                _strip_titles(value)
            else:
                for prop in value.values():
                    _strip_titles(prop)
    elif isinstance(node, list):
        for item in node:
            _strip_titles(item)


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The tool input schema of ``model``, as ``input_schemas.json`` holds it."""
    schema = model.model_json_schema(schema_generator=_CompactSchema)
    schema.pop("description", None)  # the tool description says it
    if model.model_config.get("extra") == "allow":
        schema["additionalProperties"] = True
    return schema


def input_schemas_json() -> str:
    """Every tool's input schema, as ``input_schemas.json`` holds them."""
    return json.dumps({name: input_schema(model) for name, model in INPUT_MODELS.items()}, indent=2) + "\n"


# Fixes by the last named part of the field path; the first match wins.
_FIXES: dict[str, str] = {
    "messages": 'pass a non-empty list of {"role": "user"|"assistant", "content": ...} objects',
    "role": 'use "user" or "assistant"; put system instructions in the top-level `system` argument',
    "content": 'use a string, or a list of content blocks each with a "type" such as {"type": "text", "text": ...}',
    "model": "pass a model name from list_models, e.g. claude-sonnet-5",
    "max_tokens": "pass a whole number from 1 up (default 32000)",
    "type": 'give every content block a string "type"',
    "system": "use a string, or a list of text blocks",
    "temperature": "pass a number from 0 to 1",
    "top_p": "pass a number from 0 to 1",
    "top_k": "pass a whole number, 0 or more",
    "stop_sequences": "pass a list of strings",
    "thinking": 'pass {"type": "enabled", "budget_tokens": 1024 or more} or {"type": "disabled"}',
    "tools": 'pass a list of {"name", "description", "input_schema"} objects',
    "tool_choice": 'pass {"type": "auto"|"any"|"none"} or {"type": "tool", "name": ...}',
    "metadata": 'pass an object such as {"user_id": "..."}',
    "conversation_id": "pass the conversation_id of an earlier send_message result, or leave it out",
    "files": 'pass a list of file paths, e.g. ["notes.md"]',
    "models": f"pass 2 to {MAX_MODELS} distinct model names from list_models, or one name as `model`",
    "judge": "pass one model name or alias, with `models` (the panel it judges)",
    "fallback": f"pass 1 to {MAX_MODELS} model names or aliases, tried in turn after `model` (or `judge`)",
    "wait_seconds": f"pass a number of seconds from 0 to {MAX_WAIT}, or leave it out",
    "reply_id": "pass the reply_id of a send_message or get_reply result",
    "offset": "pass a whole number of characters, 0 or more (a result's next_offset)",
    "cancel": "pass true or false",
    "refresh": "pass true or false",
    "channel": 'pass a channel name such as "openai", or leave it out',
    "modality": 'pass a modality such as "image", or leave it out',
    "detail": "pass a model name from list_models, or leave it out",
    "from_turn": "pass a turn number, 1 or more (a result's next_from_turn)",
    "kind": 'pass "chat", "image" or "video"',
    "prompt": "pass a description of 1 to 4,000 characters",
    "size": 'pass a size from list_models kind image, e.g. "1024x1024", or leave it out',
    "quality": "pass one of the model's qualities (list_models kind image), or leave it out",
    "style": "pass one of the model's styles (list_models kind image), or leave it out",
    "images": f"pass a list of up to {MAX_REFERENCES} local paths or https URLs",
    "mask": "pass one PNG path or https URL, or leave it out",
    "save_to": "pass a folder path inside the roots, or leave it out",
    "mode": "pass one of the model's modes, or leave it out to derive it from the inputs",
    "image_tail": "pass one local path or https URL (flf2video's last frame)",
    "videos": f"pass a list of up to {MAX_REFERENCES} local paths or https URLs",
    "audios": f"pass a list of up to {MAX_REFERENCES} local paths or https URLs",
    "resolution": 'pass one of the model\'s resolutions, e.g. "720p", or leave it out',
    "ratio": 'pass one of the model\'s aspect ratios, e.g. "16:9", or leave it out',
    "duration": "pass a number of seconds the model lists, or leave it out",
    "download": "pass true or false",
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        # pydantic adds the union member it tried (e.g. "str", "list[ContentBlock]"): not a field.
        if isinstance(part, str) and (
            "[" in part or "-" in part or part[:1].isupper() or part in ("str", "int", "float", "bool", "none")
        ):
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "arguments"


def _explain(exc: ValidationError, tool: str) -> InputError:
    # An optional field's "or null" branch adds "Input should be None": never the useful half.
    errors = [e for e in exc.errors() if e["type"] != "none_required"] or exc.errors()
    paths = [_field_path(error["loc"]) for error in errors]
    seen: dict[str, str] = {}
    for path, error in zip(paths, errors, strict=True):
        # A union (content: string or blocks) reports every branch; keep the deepest.
        if path in seen or any(other.startswith(path + ".") or other.startswith(path + "[") for other in paths):
            continue
        named = [p for p in error["loc"] if isinstance(p, str) and p in _FIXES]
        fix = _FIXES[named[-1]] if named else ""
        message = error["msg"]
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not an argument of this tool"
        seen[path] = f"`{path}` {message}" + (f"; fix: {fix}" if fix else "")
    lines = list(seen.values())
    more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
    return InputError(f"Invalid arguments for {tool}: " + "; ".join(lines[:5]) + more + ". Nothing was sent.")


def _without_host_controls(arguments: dict[str, Any], tool: str) -> dict[str, Any]:
    dropped = HOST_CONTROL_FIELDS.intersection(arguments)
    if not dropped:
        return arguments
    logger.debug("%s: dropped the host's own arguments %s", tool, ", ".join(sorted(dropped)))
    return {name: value for name, value in arguments.items() if name not in dropped}


Arguments = TypeVar("Arguments", bound=BaseModel)


def parse_args(model: type[Arguments], tool: str, arguments: dict[str, Any]) -> Arguments:
    """``arguments`` checked by ``model`` (the host's own control arguments dropped first);
    InputError names each wrong field and its fix."""
    try:
        return model.model_validate(_without_host_controls(arguments, tool))
    except ValidationError as exc:
        raise _explain(exc, tool) from None


def parse_send_message_args(arguments: dict[str, Any]) -> tuple[SendMessageInput, dict[str, Any]]:
    """Validate send_message arguments; return them as the model and as the caller sent them,
    extra fields and all, less the known optional fields sent as null ("not given") and the
    host's own control arguments."""
    arguments = _without_host_controls(arguments, "send_message")
    try:
        request = SendMessageInput.model_validate(arguments)
    except ValidationError as exc:
        raise _explain(exc, "send_message") from None
    refusal = _model_choice_refusal(request)
    if refusal:
        raise InputError(f"Invalid arguments for send_message: {refusal}. Nothing was sent.")
    given = {
        k: v
        for k, v in arguments.items()
        if (v is not None or k not in SendMessageInput.model_fields) and k not in _SERVER_FIELDS
    }
    return request, given


def _model_choice_refusal(request: SendMessageInput) -> str:
    """Exactly one of ``model`` and ``models``, and no name twice."""
    if request.model is None and request.models is None:
        return f"`model` is required; fix: {_FIXES['model']} (or `models` with 2 to {MAX_MODELS} names)"
    if request.model is not None and request.models is not None:
        return "`model` and `models` are both given; fix: pass one model as `model`, or several as `models`, not both"
    if request.judge is not None and request.models is None:
        return f"`judge` needs `models`; fix: {_FIXES['judge']}, or leave `judge` out"
    if request.fallback is not None and request.models is not None and request.judge is None:
        return (f"`fallback` applies to `model` or to a panel's `judge`, not to `models`; fix: {_FIXES['fallback']}, "
                "or leave it out")  # fmt: skip
    names = request.models or []
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        return f"`models` names {', '.join(map(repr, twice))} more than once; fix: {_FIXES['models']}"
    return ""


# Arguments this server acts on itself; never sent upstream.
_SERVER_FIELDS = ("conversation_id", "files", "models", "wait_seconds", "judge", "fallback")

# Anthropic Messages request fields the input model leaves unchecked (the relay takes them).
_ANTHROPIC_FIELDS = frozenset({"stream", "container", "context_management", "mcp_servers", "service_tier"})


def unknown_fields(given: dict[str, Any]) -> tuple[tuple[str, str | None], ...]:
    """The top-level fields of ``given`` that are neither Anthropic Messages fields nor ours, each
    with the nearest known name (None: none is close): they go to the relay as sent, and the
    result says so, since a typo like `temprature` would otherwise be ignored in silence."""
    known = sorted(set(SendMessageInput.model_fields) | _ANTHROPIC_FIELDS)
    names = [name for name in given if name not in known]
    if not names:
        return ()
    import difflib  # here: only an unknown field needs it, and start-up should not pay

    return tuple((name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.75)), None)) for name in names)
