"""Translate an Anthropic Messages request into the relay's Gemini ``streamGenerateContent``
body. Pure.

The relay's Gemini routes take the genai SDKs' form: ``{model, contents, config}``, with the
generation options (and, as in those SDKs, ``systemInstruction``) inside ``config``. The
system prompt goes there rather than into a first user part: the relay says an SDK needs only
its base URL and key swapped, so it passes ``config`` on whole, and the prompt keeps its role.
What has no Gemini meaning is dropped and named; what cannot be restated is refused before
anything is sent.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .._errors import InputError
from ._accumulator import content_text
from ._routes import outputs_images
from ._translate import ANTHROPIC_ONLY_FIELDS, Translation

__all__ = ["to_gemini"]

_HANDLED = frozenset({"model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k", "stop_sequences",
                      "stream"})  # fmt: skip
# Request fields with no meaning for the Gemini image models: dropped and named.
_DROPPED = frozenset({"thinking", "tools", "tool_choice", "metadata"}) | (ANTHROPIC_ONLY_FIELDS - {"top_k"})
_CONFIG_NAMES = {"temperature": "temperature", "top_p": "topP", "top_k": "topK", "stop_sequences": "stopSequences"}
_ROLES = {"user": "user", "assistant": "model"}


def to_gemini(arguments: Mapping[str, Any], entry: Mapping[str, Any] | None) -> Translation:
    """``arguments`` are validated send_message arguments (nulls removed); ``entry`` the model's
    catalogue entry, None when the catalogue does not list it. Extra fields the caller sends
    (``imageConfig``, ``responseModalities``, ...) go into ``config`` as given."""
    t = _Translator(entry)
    config: dict[str, Any] = {}
    if (system := arguments.get("system")) is not None:
        config["systemInstruction"] = {"parts": [{"text": t.system(system)}]}
    for name, gemini in _CONFIG_NAMES.items():
        if name in arguments:
            config[gemini] = arguments[name]
    if "max_tokens" in arguments:  # not given: the model's own limit (the 32000 default may be refused)
        config["maxOutputTokens"] = arguments["max_tokens"]
    if outputs_images(entry):
        config["responseModalities"] = ["TEXT", "IMAGE"]  # the image models' documented form; a caller's wins
    for key, value in arguments.items():
        if key in _DROPPED:
            t.dropped.append(key)
        elif key not in _HANDLED:
            config[key] = value
    body: dict[str, Any] = {"model": str(arguments["model"]), "contents": t.contents(arguments["messages"])}
    if config:
        body["config"] = config
    return Translation(body, tuple(t.dropped))


def _guess_type(url: str) -> str | None:
    return mimetypes.guess_type(urlsplit(url).path)[0]


class _Translator:
    def __init__(self, entry: Mapping[str, Any] | None) -> None:
        self.entry = entry
        self.dropped: list[str] = []
        self.model = str(entry.get("name")) if entry else "this model"

    def _note_extras(self, block: Mapping[str, Any], path: str, known: set[str]) -> None:
        self.dropped += [f"{path}.{key}" for key in block if key not in known]

    def system(self, system: Any) -> str:
        if isinstance(system, list):
            for i, block in enumerate(system):
                if block.get("type") != "text":
                    self.dropped.append(f"system[{i}] ({block.get('type')})")
                else:
                    self._note_extras(block, f"system[{i}]", {"type", "text"})
        return content_text(system)

    def contents(self, messages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            path = f"messages[{i}]"
            self._note_extras(message, path, {"role", "content"})
            content = message["content"]
            if isinstance(content, str):
                parts = [{"text": content}]
            else:
                parts = [part for j, block in enumerate(content) for part in self._parts(block, f"{path}.content[{j}]")]
            if parts:  # Gemini refuses a turn without parts; what made it empty is named already
                out.append({"role": _ROLES[str(message["role"])], "parts": parts})
        return out

    def _parts(self, block: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
        kind = block.get("type")
        if kind == "text":
            self._note_extras(block, path, {"type", "text", "citations"})
            return [{"text": str(block.get("text", ""))}]
        if kind == "image":
            return [self._image(block, path)]
        if kind == "document":
            return self._document(block, path)
        self.dropped.append(f"{path} ({kind})")  # tool_use, tool_result, thinking, server tool blocks
        return []

    def _image(self, block: Mapping[str, Any], path: str) -> dict[str, Any]:
        found = self.entry.get("inputModalities") if self.entry else None
        if isinstance(found, list) and "image" not in found:
            raise InputError(
                f"Invalid arguments for send_message: `{path}` is an image, but {self.model} takes "
                f"{', '.join(map(str, found)) or 'no'} input (list_models); fix: describe the image in text, or "
                "pick a model whose input includes image. Nothing was sent."
            )
        self._note_extras(block, path, {"type", "source"})
        return self._source(block.get("source") or {}, f"{path}.source", "image/png")

    def _source(self, source: Mapping[str, Any], path: str, default_type: str) -> dict[str, Any]:
        kind = source.get("type")
        if kind == "base64":
            return {"inlineData": {"mimeType": str(source.get("media_type") or default_type),
                                   "data": str(source.get("data", ""))}}  # fmt: skip
        if kind == "url":
            url = str(source.get("url", ""))
            file_data = {"fileUri": url}
            if mime := _guess_type(url):
                file_data["mimeType"] = mime
            return {"fileData": file_data}
        raise InputError(
            f"Invalid arguments for send_message: `{path}` of type {kind!r} cannot be sent on the relay's Gemini "
            "route; fix: send it as base64 or url source. Nothing was sent."
        )

    def _document(self, block: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
        source = block.get("source") or {}
        kind = source.get("type")
        title = str(block.get("title") or "")
        self._note_extras(block, path, {"type", "source", "title"})
        if kind == "text":
            data = str(source.get("data", ""))
            return [{"text": f"{title}\n\n{data}" if title else data}]
        if kind == "content":
            blocks = source.get("content") or []
            return [part for i, b in enumerate(blocks) for part in self._parts(b, f"{path}.source.content[{i}]")]
        return [self._source(source, f"{path}.source", "application/pdf")]
