"""Translate an Anthropic Messages request into an OpenAI Chat Completions request. Pure.

``send_message`` keeps one interface, the Anthropic one; models the relay serves only on its
OpenAI-compatible route get the same request restated. What has no OpenAI meaning is dropped
and named (the result says so); what cannot be restated is refused before anything is sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import InputError
from ._accumulator import content_text

__all__ = ["ANTHROPIC_ONLY_FIELDS", "Translation", "reasoning_effort", "to_chat_completions"]

# Top-level request fields that only the Anthropic API knows; other extra fields pass through.
ANTHROPIC_ONLY_FIELDS = frozenset({"top_k", "container", "context_management", "mcp_servers", "service_tier"})
_HANDLED = frozenset({"model", "messages", "max_tokens", "system", "temperature", "top_p", "stop_sequences",
                      "thinking", "tools", "tool_choice", "metadata", "stream"})  # fmt: skip
# Model families that refuse ``max_tokens`` and take ``max_completion_tokens`` instead.
_COMPLETION_TOKENS_NAMES = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)
_PDF_CHANNELS = frozenset({"openai", "gemini"})


@dataclass(frozen=True)
class Translation:
    body: dict[str, Any]
    dropped: tuple[str, ...]  # paths of what was left out, e.g. "top_k", "messages[0].content[1].cache_control"


def reasoning_effort(budget_tokens: int) -> str:
    """Anthropic's thinking budget → the nearest OpenAI ``reasoning_effort``."""
    if budget_tokens < 4096:
        return "low"
    if budget_tokens < 16384:
        return "medium"
    return "high"


def to_chat_completions(arguments: Mapping[str, Any], entry: Mapping[str, Any] | None) -> Translation:
    """``arguments`` are validated send_message arguments (nulls already removed); ``entry`` is
    the model's catalogue entry, None when the catalogue does not list it."""
    t = _Translator(entry)
    model = str(arguments["model"])
    messages = t.system(arguments.get("system")) + t.messages(arguments["messages"])
    body: dict[str, Any] = {"model": model, "messages": messages}
    if "max_tokens" in arguments:  # not given: the model's own default, not a number it may refuse
        name = "max_completion_tokens" if t.needs_completion_tokens(model) else "max_tokens"
        body[name] = arguments["max_tokens"]
    for same in ("temperature", "top_p"):
        if same in arguments:
            body[same] = arguments[same]
    if "stop_sequences" in arguments:
        body["stop"] = arguments["stop_sequences"]
    t.thinking(arguments.get("thinking"), body)
    t.tools(arguments.get("tools"), arguments.get("tool_choice"), body)
    t.metadata(arguments.get("metadata"), body)
    for key, value in arguments.items():
        if key in ANTHROPIC_ONLY_FIELDS:
            t.dropped.append(key)
        elif key not in _HANDLED:
            body[key] = value  # a field the caller knows the relay takes
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return Translation(body, tuple(t.dropped))


class _Translator:
    def __init__(self, entry: Mapping[str, Any] | None) -> None:
        self.entry = entry
        self.dropped: list[str] = []
        self.model = str(entry.get("name")) if entry else "this model"

    # --- what the model takes ---------------------------------------------------------------
    def needs_completion_tokens(self, model: str) -> bool:
        return bool(self.entry and self.entry.get("channel") == "openai") or bool(_COMPLETION_TOKENS_NAMES.match(model))

    def _modalities(self) -> list[str] | None:
        found = self.entry.get("inputModalities") if self.entry else None
        return [str(m) for m in found] if isinstance(found, list) else None

    def _check_image(self, path: str) -> None:
        modalities = self._modalities()
        if modalities is not None and "image" not in modalities:
            raise InputError(
                f"Invalid arguments for send_message: `{path}` is an image, but {self.model} takes "
                f"{', '.join(modalities) or 'no'} input (list_models); fix: describe the image in text, or pick a "
                "model whose input includes image. Nothing was sent."
            )

    def _takes_pdf(self) -> bool:
        if self.entry is None:
            return True  # not in the catalogue: let the relay decide
        modalities = self._modalities() or []
        return self.entry.get("channel") in _PDF_CHANNELS or bool({"file", "pdf", "document"} & set(modalities))

    # --- blocks ------------------------------------------------------------------------------
    def _note_extras(self, block: Mapping[str, Any], path: str, known: set[str]) -> None:
        self.dropped += [f"{path}.{key}" for key in block if key not in known]

    def _image(self, block: Mapping[str, Any], path: str) -> dict[str, Any]:
        self._check_image(path)
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
        elif source.get("type") == "url":
            url = str(source.get("url", ""))
        else:
            raise InputError(
                f"Invalid arguments for send_message: `{path}.source` of type {source.get('type')!r} cannot be sent "
                "on the relay's OpenAI-compatible route; fix: send the image as base64 or url source. Nothing was sent."
            )
        self._note_extras(block, path, {"type", "source"})
        return {"type": "image_url", "image_url": {"url": url}}

    def _document(self, block: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
        source = block.get("source") or {}
        kind = source.get("type")
        title = str(block.get("title") or "")
        self._note_extras(block, path, {"type", "source", "title"})
        if kind == "text":
            return [
                {"type": "text", "text": f"{title}\n\n{source.get('data', '')}" if title else source.get("data", "")}
            ]
        if kind == "content":
            blocks = source.get("content") or []
            return [part for i, b in enumerate(blocks) for part in self._user_parts(b, f"{path}.source.content[{i}]")]
        if kind == "base64" and source.get("media_type") == "application/pdf":
            if not self._takes_pdf():
                raise InputError(
                    f"Invalid arguments for send_message: `{path}` is a PDF, but {self.model} does not take PDF "
                    "documents; fix: send the document's text as a text block, or pick a model on the anthropic, "
                    "openai or gemini channel (list_models). Nothing was sent."
                )
            data = f"data:application/pdf;base64,{source.get('data', '')}"
            return [{"type": "file", "file": {"filename": title or "document.pdf", "file_data": data}}]
        raise InputError(
            f"Invalid arguments for send_message: `{path}.source` ({kind}, {source.get('media_type')}) cannot be sent "
            "on the relay's OpenAI-compatible route; fix: send a PDF as base64, or the text as a text document or "
            "text block. Nothing was sent."
        )

    def _user_parts(self, block: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
        """One user content block → OpenAI content parts (text, image_url, file)."""
        kind = block.get("type")
        if kind == "text":
            self._note_extras(block, path, {"type", "text", "citations"})
            return [{"type": "text", "text": str(block.get("text", ""))}]
        if kind == "image":
            return [self._image(block, path)]
        if kind == "document":
            return self._document(block, path)
        self.dropped.append(f"{path} ({kind})")
        return []

    # --- messages ----------------------------------------------------------------------------
    def system(self, system: Any) -> list[dict[str, Any]]:
        if system is None:
            return []
        if isinstance(system, list):
            for i, block in enumerate(system):
                if block.get("type") != "text":
                    self.dropped.append(f"system[{i}] ({block.get('type')})")
                else:
                    self._note_extras(block, f"system[{i}]", {"type", "text"})
        return [{"role": "system", "content": content_text(system)}]

    def messages(self, messages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            path = f"messages[{i}]"
            self._note_extras(message, path, {"role", "content"})
            content = message["content"]
            if isinstance(content, str):
                out.append({"role": message["role"], "content": content})
            elif message["role"] == "assistant":
                out.append(self._assistant(content, path))
            else:
                out += self._user(content, path)
        return out

    def _assistant(self, blocks: list[Mapping[str, Any]], path: str) -> dict[str, Any]:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for i, block in enumerate(blocks):
            where = f"{path}.content[{i}]"
            kind = block.get("type")
            if kind == "text":
                self._note_extras(block, where, {"type", "text", "citations"})
                texts.append(str(block.get("text", "")))
            elif kind == "tool_use":
                self._note_extras(block, where, {"type", "id", "name", "input"})
                arguments = json.dumps(block.get("input", {}), ensure_ascii=False, separators=(",", ":"))
                calls.append({"id": str(block.get("id", "")), "type": "function",
                              "function": {"name": str(block.get("name", "")), "arguments": arguments}})  # fmt: skip
            else:  # thinking, redacted_thinking, server tool blocks: no OpenAI form
                self.dropped.append(f"{where} ({kind})")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        if calls:
            message["tool_calls"] = calls
        return message

    def _user(self, blocks: list[Mapping[str, Any]], path: str) -> list[dict[str, Any]]:
        """Tool results become ``tool`` messages, first (they answer the assistant's calls);
        the rest of the turn follows as one user message."""
        tool_messages: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        for i, block in enumerate(blocks):
            where = f"{path}.content[{i}]"
            if block.get("type") != "tool_result":
                parts += self._user_parts(block, where)
                continue
            self._note_extras(block, where, {"type", "tool_use_id", "content", "is_error"})
            content = block.get("content", "")
            texts: list[str] = []
            for j, inner in enumerate(content if isinstance(content, list) else [{"type": "text", "text": content}]):
                if inner.get("type") == "text":
                    texts.append(str(inner.get("text", "")))
                elif inner.get("type") == "image":
                    # A tool message takes text only: the image follows in the user turn, labelled.
                    parts += [{"type": "text", "text": f"(image from tool result {block.get('tool_use_id')})"},
                              self._image(inner, f"{where}.content[{j}]")]  # fmt: skip
                else:
                    parts += self._user_parts(inner, f"{where}.content[{j}]")
            text = "\n".join(texts)
            if block.get("is_error"):
                text = f"Error: {text}"
            tool_messages.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text})
        if not parts:
            return tool_messages
        if all(part["type"] == "text" for part in parts):  # plain text: the form every provider takes
            return [*tool_messages, {"role": "user", "content": "\n".join(part["text"] for part in parts)}]
        return [*tool_messages, {"role": "user", "content": parts}]

    # --- options -----------------------------------------------------------------------------
    def thinking(self, thinking: Any, body: dict[str, Any]) -> None:
        if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
            body["reasoning_effort"] = reasoning_effort(int(thinking.get("budget_tokens") or 0))
        # "adaptive" and "disabled" leave the model's own default.

    def tools(self, tools: Any, choice: Any, body: dict[str, Any]) -> None:
        functions: list[dict[str, Any]] = []
        for i, tool in enumerate(tools or []):
            if tool.get("type") not in (None, "custom"):  # Anthropic's server tools (web_search_..., bash_...)
                self.dropped.append(f"tools[{i}] ({tool.get('type')})")
                continue
            self._note_extras(tool, f"tools[{i}]", {"type", "name", "description", "input_schema", "strict"})
            function: dict[str, Any] = {
                "name": tool["name"],
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
            }
            if tool.get("description") is not None:
                function["description"] = tool["description"]
            if "strict" in tool:
                function["strict"] = tool["strict"]
            functions.append({"type": "function", "function": function})
        if functions:
            body["tools"] = functions
        if not isinstance(choice, Mapping):
            return
        kind = choice.get("type")
        if kind == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[str(kind)]
        if choice.get("disable_parallel_tool_use") and functions:
            body["parallel_tool_calls"] = False

    def metadata(self, metadata: Any, body: dict[str, Any]) -> None:
        for key, value in (metadata or {}).items():
            if key == "user_id" and value is not None:
                body["user"] = str(value)
            else:
                self.dropped.append(f"metadata.{key}")
