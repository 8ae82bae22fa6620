"""What each host passes to its model when a tool result carries an image content block.

Claude Code, Codex and Gemini CLI (the versions pinned in ``tests/node.py``) each run headless
against their scripted model API, with ``image_server.py`` in our server's place (named
``aitoearn`` in the host's config, behind the recording wrapper). The scripted model calls one
of its tools once; the test reads, from the raw request the host then sent to the model API,
everything that came back for that call: the tool result itself and any part the host added
beside it in the same message. ``docs/hosts.md`` ("Images in tool results") has the figures.

Cases: ``render`` (text, a 168-character base64 PNG, structured content), ``render`` with
``big`` (the same with an 896,756-character base64 PNG), ``render_unstructured`` (text and the
small PNG, no structured content) and ``render_unstructured`` with ``big``. Hosts: Claude Code,
Codex, and Gemini CLI twice (gemini-2.5-pro, and gemini-3-flash-preview, for which the CLI takes
another path for images). 16 runs, about 95 s.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..fake_relay import FakeRelay
from . import image_server, model_api
from .harness import PATIENCE, Run, once_per_case
from .test_claude_code import claude
from .test_codex import codex
from .test_gemini import gemini

pytestmark = pytest.mark.timeout(900)

SERVER = [sys.executable, str(Path(image_server.__file__))]
CASES: dict[str, tuple[str, dict[str, Any], bool, bool]] = {  # case: tool, arguments, big, structured
    "small": ("render", {}, False, True),
    "big": ("render", {"big": True}, True, True),
    "unstructured": ("render_unstructured", {}, False, False),
    "big-unstructured": ("render_unstructured", {"big": True}, True, False),
}
# Gemini CLI puts images inside the function response only for models whose name starts with
# `gemini-3-` (`supportsMultimodalFunctionResponse`); `-m gemini-3-pro-preview` was resolved to
# gemini-3.1-pro-preview here, which does not, so the second Gemini run uses gemini-3-flash-preview.
LAUNCHERS: dict[str, Callable[..., Run]] = {"claude-code": claude, "codex": codex, "gemini": gemini,
                                            "gemini-3-flash": functools.partial(gemini, model="gemini-3-flash-preview")}  # fmt: skip


@dataclass
class Part:
    """One piece of what the model API got back for our call."""

    where: str  # "result": inside the tool result; "beside": another part of the same message
    kind: str  # "text" or "image" (anything else: its own type, with its JSON as text)
    form: str  # the API's own name for it: "tool_result.image", "input_image", "inlineData"…
    text: str = ""
    mime: str = ""
    data: bytes = b""


def _image_info(data: bytes) -> str:
    """Format and size of an image, read from its header (PNG, JPEG, WebP, GIF)."""
    if data.startswith(b"\x89PNG"):
        width, height = struct.unpack(">II", data[16:24])
        return f"PNG {width}x{height}"
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i < len(data) - 9:
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return f"JPEG {width}x{height}"
            i += 2 + length
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:3] == b"GIF":
        return "GIF"
    return f"unknown ({data[:8]!r})"


def _data_url(url: str) -> tuple[str, bytes]:
    match = re.fullmatch(r"data:([^;,]+);base64,(.*)", url, re.DOTALL)
    return (match.group(1), base64.b64decode(match.group(2))) if match else ("", b"")


# --- the tool result in each API's request ----------------------------------------------------


# Each reader takes the requests the scripted model API got and finds the result of the model's
# ``call``-th call of our tools (0: the first) in the first request that carries it: that
# result, and what the host added beside it in the same message, as the model first read them.


def _anthropic(requests: list[tuple[str, Any]], call: int = 0) -> tuple[list[Part], Any, str]:
    for path, body in requests:
        if not path.startswith("/v1/messages") or "/count_tokens" in path:
            continue
        ours = [(message, block) for message in body.get("messages") or [] if isinstance(message.get("content"), list)
                for block in message["content"] if isinstance(block, dict) and block.get("type") == "tool_result"
                and str(block.get("tool_use_id", "")).startswith("toolu_ours_")]  # fmt: skip
        if len(ours) <= call:
            continue
        message, result = ours[call]
        parts = _anthropic_blocks("result", result.get("content"))
        parts += _anthropic_blocks("beside", [b for b in message["content"] if b is not result])
        return parts, message, str(body.get("model"))
    return [], None, ""


def _anthropic_blocks(where: str, content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Part(where, "text", "tool_result.content (string)", text=content)]
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(Part(where, "text", "text", text=block["text"]))
        elif block.get("type") == "image":
            source = block.get("source") or {}
            data = base64.b64decode(source["data"]) if source.get("type") == "base64" else b""
            parts.append(Part(where, "image", f"image/{source.get('type')}", mime=source.get("media_type", ""),
                              data=data, text=source.get("url", "")))  # fmt: skip
        else:
            parts.append(Part(where, str(block.get("type")), str(block.get("type")), text=json.dumps(block)))
    return parts


def _responses(requests: list[tuple[str, Any]], call: int = 0) -> tuple[list[Part], Any, str]:
    for path, body in requests:
        if not path.rstrip("/").endswith("/responses"):
            continue
        items = [item for item in body.get("input") or [] if isinstance(item, dict)]
        outputs = [i for i, item in enumerate(items) if item.get("type") == "function_call_output"
                   and str(item.get("call_id", "")).startswith("call_ours_")]  # fmt: skip
        if len(outputs) <= call:
            continue
        index = outputs[call]
        parts = _responses_content("result", items[index].get("output"))
        for item in items[index + 1 :]:  # anything the host added after the output, before the model's turn
            parts += _responses_content("beside", item.get("content") if item.get("type") == "message" else [item])
        return parts, items[index:], str(body.get("model"))
    return [], None, ""


def _responses_content(where: str, output: Any) -> list[Part]:
    if isinstance(output, str):
        return [Part(where, "text", "output (string)", text=output)]
    parts = []
    for item in output or []:
        kind = item.get("type")
        if kind in ("input_text", "output_text"):
            parts.append(Part(where, "text", kind, text=item.get("text", "")))
        elif kind == "input_image":
            mime, data = _data_url(item.get("image_url", ""))
            parts.append(Part(where, "image", f"input_image (detail {item.get('detail')})", mime=mime, data=data,
                              text="" if data else str(item.get("image_url", ""))[:200]))  # fmt: skip
        else:
            parts.append(Part(where, str(kind), str(kind), text=json.dumps(item)))
    return parts


def _gemini(requests: list[tuple[str, Any]], call: int = 0) -> tuple[list[Part], Any, str]:
    for path, body in requests:
        if ":generateContent" not in path and ":streamGenerateContent" not in path:
            continue
        # No call ids: our calls are the functions the CLI names ``mcp_aitoearn_<tool>``.
        ours = [(content, i) for content in body.get("contents") or [] for i, p in enumerate(content.get("parts") or [])
                if p.get("functionResponse", {}).get("name", "").startswith("mcp_aitoearn_")]  # fmt: skip
        if len(ours) <= call:
            continue
        content, index = ours[call]
        found = content["parts"]
        response = found[index]["functionResponse"]
        body_ = response.get("response")
        output = body_.get("output") if isinstance(body_, dict) and set(body_) == {"output"} else None
        text = output if isinstance(output, str) else json.dumps(body_, ensure_ascii=False)
        parts = [Part("result", "text", "functionResponse.response", text=text)]
        parts += _gemini_parts("result", response.get("parts") or [], "functionResponse.parts.")
        parts += _gemini_parts("beside", [p for i, p in enumerate(found) if i != index], "")
        return parts, content, path.split("/models/")[-1].split(":")[0]
    return [], None, ""


def _gemini_parts(where: str, found: list[dict[str, Any]], prefix: str) -> list[Part]:
    parts = []
    for part in found:
        if "text" in part:
            parts.append(Part(where, "text", prefix + "text", text=part["text"]))
        elif "inlineData" in part:
            inline = part["inlineData"]
            parts.append(Part(where, "image", prefix + "inlineData", mime=inline.get("mimeType", ""),
                              data=base64.b64decode(inline.get("data", ""))))  # fmt: skip
        else:
            parts.append(
                Part(where, next(iter(part), "?"), prefix + next(iter(part), "?"), text=json.dumps(part)[:500])
            )
    return parts


READERS = {"claude-code": _anthropic, "codex": _responses, "gemini": _gemini, "gemini-3-flash": _gemini}


# --- what reached the model ------------------------------------------------------------------


@dataclass
class Seen:
    host: str
    case: str
    parts: list[Part]
    raw: Any  # the message (or items) carrying the result, as the host sent it
    model: str  # the model the request was for

    @property
    def sent(self) -> bytes:
        return image_server.image(CASES[self.case][2])[0]

    @property
    def where(self) -> tuple[str, str]:
        return image_server.where(CASES[self.case][2], CASES[self.case][3])

    @property
    def images(self) -> list[Part]:
        return [part for part in self.parts if part.kind == "image"]

    @property
    def texts(self) -> str:
        return "\n".join(part.text for part in self.parts if part.kind == "text")

    @property
    def text_block(self) -> bool:
        """Our text block (its first line) reached the model."""
        return "Rendered a " in self.texts

    @property
    def structured(self) -> bool:
        """The structured content reached the model (as JSON: ``"width":64``)."""
        return re.search(r'"width"\s*:\s*\d+', self.texts) is not None

    @property
    def path_and_url(self) -> tuple[bool, bool]:
        path, url = self.where
        return path in self.texts, url in self.texts

    @property
    def base64_in_text(self) -> bool:
        return base64.b64encode(self.sent).decode()[:60] in self.texts

    @property
    def order(self) -> str:
        """What came back, in order: ``image``, and in text, ``text`` (our text block),
        ``structured`` (its JSON), ``source`` (Claude Code's ``[Image: source: <file>]``), ``note``
        (Gemini CLI's ``[Tool '…' provided the following image data…]``), ``wall`` (Codex's
        ``Wall time:`` line); ``beside:`` marks a part outside the tool result."""
        labels = []
        for part in self.parts:
            if part.kind == "image":
                found = ["image"]
            else:
                marks = {"text": "Rendered a ", "structured": '"width":', "source": "[Image: source: ",
                         "note": "provided the following image data", "wall": "Wall time: "}  # fmt: skip
                at = {name: part.text.find(mark) for name, mark in marks.items() if mark in part.text}
                found = ["+".join(sorted(at, key=at.__getitem__))] if at else []
            labels += [("beside:" if part.where == "beside" else "") + label for label in found]
        return ", ".join(labels)

    @property
    def saved_source(self) -> Path | None:
        """The file Claude Code names in ``[Image: source: <file>]``."""
        match = re.search(r"\[Image: source: ([^\]]+)\]", self.texts)
        return Path(match.group(1)) if match else None

    def summary(self) -> str:
        lines = [f"{self.host} {self.case} (model {self.model}): {self.order}"]
        for part in self.parts:
            if part.kind == "image":
                same = "bytes identical" if part.data == self.sent else f"re-encoded: {_image_info(part.data)}"
                lines.append(f"  {part.where} image [{part.form}] {part.mime} {len(part.data):,} bytes "
                             f"({len(base64.b64encode(part.data)):,} base64), {same}; sent {_image_info(self.sent)} "
                             f"{len(self.sent):,} bytes")  # fmt: skip
            elif part.where == "result":
                lines.append(f"  {part.where} {part.kind} [{part.form}] {len(part.text):,} chars: {part.text[:400]!r}")
        path, url = self.path_and_url
        source = self.saved_source
        saved = source is not None and source.exists() and source.read_bytes() == self.sent
        lines.append(f"  text block: {self.text_block}; structured: {self.structured}; path: {path}; url: {url}; "
                     f"base64 as text: {self.base64_in_text}; source file holds the bytes sent: {saved}")  # fmt: skip
        return "\n".join(lines)


@pytest.fixture(scope="module")
def seen(hosts_bin: Path, long_relay: FakeRelay, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Seen]:
    """``host/case`` -> what that host sent its model for that call (one run each, shared)."""

    def start(key: str) -> Run:
        host, case = key.split("/")
        tool, arguments, _, _ = CASES[case]
        script = model_api.Script(tool, arguments, patience=PATIENCE)
        return LAUNCHERS[host](hosts_bin, tmp_path_factory.mktemp(f"img-{host}-{case}"), long_relay, script,
                               server=SERVER)  # fmt: skip

    run_once = once_per_case(start)

    def get(key: str) -> Seen:
        run, script = run_once(key)
        host, case = key.split("/")
        assert run.returncode == 0, run.report()
        assert script.called == [CASES[case][0]], (script.called, run.report())
        parts, raw, model = READERS[host](script.requests)
        assert parts, f"no tool result reached the model API; {run.report()}"
        return Seen(host, case, parts, raw, model)

    return get


_CLAUDE = ("image/base64", "image/png", True)
_CLAUDE_BIG = ("image/base64", "image/jpeg", False)  # re-encoded, same 500x448
_CODEX = ("input_image (detail original)", "image/png", True)
_GEMINI = ("inlineData", "image/png", True)
# host: {case: (order (see Seen.order), (form, media type, same bytes as sent) of the image the model got, or None)}
EXPECTED: dict[str, dict[str, tuple[str, tuple[str, str, bool] | None]]] = {
    "claude-code": {
        "small": ("image, source, structured", _CLAUDE),
        "big": ("image, source, structured", _CLAUDE_BIG),
        "unstructured": ("text, image, source", _CLAUDE),
        "big-unstructured": ("text, image, source", _CLAUDE_BIG),
    },
    "codex": {
        "small": ("wall+structured", None),
        "big": ("wall+structured", None),
        "unstructured": ("wall, text, image", _CODEX),
        "big-unstructured": ("wall, text, image", _CODEX),
    },
    "gemini": {case: ("text+note, beside:image", _GEMINI) for case in CASES},
    "gemini-3-flash": {case: ("text+note", None) for case in CASES},
}


@pytest.mark.parametrize("host", list(LAUNCHERS))
@pytest.mark.parametrize("case", list(CASES))
def test_what_reaches_the_model(seen: Callable[[str], Seen], host: str, case: str) -> None:
    """Claude Code: the image as an Anthropic image block in the tool result (the big one
    re-encoded as JPEG), and a ``[Image: source: <file>]`` text naming a file with the bytes sent;
    with structured content, that instead of our text. Codex: with structured content only that,
    as text; without it, the text and the image as ``input_image``, bytes unchanged. Gemini CLI
    (gemini-2.5-pro): the text and a note in the function response, the image as an
    ``inlineData`` part beside it, bytes unchanged; never the structured content. Gemini CLI with
    gemini-3-flash-preview: the text and the note only; the image reaches the model nowhere."""
    result = seen(f"{host}/{case}")
    summary = result.summary()
    print(summary)
    order, image = EXPECTED[host][case]
    assert result.order == order, summary
    assert [(part.form, part.mime) for part in result.images] == ([image[:2]] if image else []), summary
    width, height = image_server.BIG if CASES[case][2] else image_server.SMALL
    for part in result.images:
        assert (part.data == result.sent) is image[2], summary  # type: ignore[index]
        assert _image_info(part.data).endswith(f" {width}x{height}"), summary
    assert result.path_and_url == (True, True), summary  # every host: from the text or from the structured content
    assert not result.base64_in_text, summary
    if host == "claude-code":
        source = result.saved_source
        assert source is not None and source.read_bytes() == result.sent, summary
