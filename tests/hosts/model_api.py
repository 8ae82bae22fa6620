"""Scripted model APIs on a real loopback socket, for driving MCP hosts headless.

Each host talks to its own vendor's API: Claude Code to Anthropic Messages, Codex to OpenAI
Responses, Gemini CLI to the Gemini API. The script is the same in all three: a plan says which
of our tools to call next, given the results so far; when the tool is offered the model calls it
(in Claude Code and Codex, which defer MCP tools, it first searches for it by name); each result
the host sends back is recorded (that text is what reached the model); when the plan is done the
model ends the turn with a short text. Every other request (titles, classifiers, token counts)
gets a short plain answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FINAL_TEXT = "Done: the tool answered."
_SEARCHES = 6  # searches for our first tool before the model gives up (the server may be starting)

Step = tuple[str, dict[str, Any]]  # (our tool's name, arguments)
Plan = Callable[[list[str]], Step | None]  # the results so far -> the next call, or None to finish


@dataclass
class Script:
    """Call ``tool`` with ``arguments`` once (or follow ``plan``), recording what comes back."""

    tool: str
    arguments: dict[str, Any]
    # Seconds the model takes before searching again when a search found nothing (a host that
    # does not wait for our server may not list it yet). 0: search at once, as fast as a host
    # could ask, which is what the start-up test needs; the size tests give the server time.
    patience: float = 0.0
    plan: Plan | None = None
    tool_results: list[str] = field(default_factory=list)  # what the host sent back, as the model reads it
    tool_names: list[str] = field(default_factory=list)  # the host's names of the tools it offered
    offered_schema: dict[str, Any] | None = None  # the first tool's input schema as the host showed it
    called: list[str] = field(default_factory=list)  # our tools the model called, in order
    requests: list[tuple[str, Any]] = field(default_factory=list)  # (path, body) of every request
    request_times: list[float] = field(default_factory=list)  # wall-clock time of each
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_step(self, results: list[str]) -> Step | None:
        with self.lock:
            # Each result as the model first read it, in the request right after the call: later
            # requests may carry it shortened (Gemini CLI masks old outputs), side requests none.
            self.tool_results += results[len(self.tool_results) :]
        if self.plan is not None:
            return self.plan(results)
        return None if results else (self.tool, self.arguments)

    def record(self, path: str, body: Any) -> None:
        with self.lock:
            self.requests.append((path, body))
            self.request_times.append(time.time())

    def offered(self, names: list[str], tool: str, schema: dict[str, Any] | None) -> None:
        with self.lock:
            if not self.called:
                self.tool_names, self.offered_schema = names, schema
            self.called.append(tool)

    def searches(self) -> int:
        """How often the model searches for a tool: patiently for the first (the server may still
        be starting), once for the others (the server is up: a miss means there is no such tool)."""
        return _SEARCHES if not self.called else 1

    def ours(self, name: str) -> str | None:
        """Which of the tools the model called a host's name stands for (``mcp__aitoearn__x``,
        ``mcp_aitoearn_x``, ``x``)."""
        return next((tool for tool in self.called if matches(name, tool)), None)


def matches(name: str, tool: str) -> bool:
    return name == tool or name.endswith("_" + tool)


class ModelAPI:
    """A threaded HTTP server answering with ``handle(method, path, body) -> (status, type, bytes)``."""

    def __init__(self, handle: Callable[[str, str, bytes], tuple[int, str, bytes]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    status, content_type, payload = handle(self.command, self.path, body)
                except Exception as error:  # a script bug must show, not hang the host
                    outer.errors.append(repr(error))
                    status, content_type, payload = 500, "application/json", json.dumps({"error": repr(error)}).encode()
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.errors: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ModelAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


def _sse(events: list[tuple[str | None, dict[str, Any]]]) -> bytes:
    out = []
    for name, data in events:
        out.append((f"event: {name}\n" if name else "") + f"data: {json.dumps(data, ensure_ascii=False)}\n\n")
    return "".join(out).encode()


def _json(status: int, body: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()


# --- Anthropic Messages (Claude Code) -------------------------------------------------------

_TOOL_SEARCH = "ToolSearch"


def anthropic(script: Script) -> Callable[[str, str, bytes], tuple[int, str, bytes]]:
    def handle(method: str, path: str, raw: bytes) -> tuple[int, str, bytes]:
        body = json.loads(raw) if raw else {}
        script.record(path, body)
        if "/count_tokens" in path:
            return _json(200, {"input_tokens": 100})
        if not path.startswith("/v1/messages"):
            return _json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
        tools = {tool.get("name", ""): tool for tool in body.get("tools") or []}
        blocks = [(message.get("role"), block) for message in body.get("messages") or []
                  if isinstance(message.get("content"), list) for block in message["content"]
                  if isinstance(block, dict)]  # fmt: skip
        calls = [block for role, block in blocks if role == "assistant" and block.get("type") == "tool_use"]
        results = {block.get("tool_use_id"): block for role, block in blocks if block.get("type") == "tool_result"}
        ours = [call for call in calls if call["id"].startswith("toolu_ours_")]
        if ours and ours[-1]["id"] not in results:  # a title or side request while our call runs
            return _anthropic_stream(body, [{"type": "text", "text": FINAL_TEXT}], "end_turn")
        step = script.next_step([_anthropic_text(results[call["id"]].get("content")) for call in ours])
        if step is None:
            return _anthropic_stream(body, [{"type": "text", "text": FINAL_TEXT}], "end_turn")
        tool, arguments = step
        offered = [name for name in tools if matches(name, tool)]
        if offered:
            script.offered(list(tools), tool, tools[offered[0]].get("input_schema"))
            call = {"type": "tool_use", "id": f"toolu_ours_{len(calls)}", "name": offered[0], "input": arguments}
            return _anthropic_stream(body, [call], "tool_use")
        # Our tools by their full name; Claude Code's own (ListMcpResourcesTool…) by theirs.
        query = f"select:{tool}" if tool[0].isupper() else f"select:mcp__aitoearn__{tool}"
        searches = [call for call in calls if call["name"] == _TOOL_SEARCH and call["input"].get("query") == query]
        if _TOOL_SEARCH in tools and len(searches) < script.searches():
            # The tool is deferred: ask for it by its full name, as a model that knows it would.
            if searches:
                time.sleep(script.patience)
            call = {"type": "tool_use", "id": f"toolu_search_{len(calls)}", "name": _TOOL_SEARCH,
                    "input": {"query": query, "max_results": 5}}  # fmt: skip
            return _anthropic_stream(body, [call], "tool_use")
        return _anthropic_stream(body, [{"type": "text", "text": FINAL_TEXT}], "end_turn")

    return handle


def _anthropic_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block["text"])
        else:
            parts.append(json.dumps(block, ensure_ascii=False))
    return "\n".join(parts)


def _anthropic_stream(
    request: dict[str, Any], blocks: list[dict[str, Any]], stop_reason: str
) -> tuple[int, str, bytes]:
    model = request.get("model", "claude-sonnet-4-5")
    usage = {"input_tokens": 100, "output_tokens": 1}
    if not request.get("stream"):
        message = {"id": "msg_scripted", "type": "message", "role": "assistant", "model": model, "content": blocks,
                   "stop_reason": stop_reason, "stop_sequence": None, "usage": {**usage, "output_tokens": 10}}  # fmt: skip
        return _json(200, message)
    start = {"type": "message_start", "message": {"id": "msg_scripted", "type": "message", "role": "assistant",
             "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}  # fmt: skip
    events: list[tuple[str | None, dict[str, Any]]] = [("message_start", start)]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}}))  # fmt: skip
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                           "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                             "input": {}}}))  # fmt: skip
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"], ensure_ascii=False)}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason,
                   "stop_sequence": None}, "usage": {"output_tokens": 10}}))  # fmt: skip
    events.append(("message_stop", {"type": "message_stop"}))
    return 200, "text/event-stream", _sse(events)


# --- OpenAI Responses (Codex) ---------------------------------------------------------------


def responses(script: Script) -> Callable[[str, str, bytes], tuple[int, str, bytes]]:
    def handle(method: str, path: str, raw: bytes) -> tuple[int, str, bytes]:
        body = json.loads(raw) if raw else {}
        script.record(path, body)
        if not path.rstrip("/").endswith("/responses"):
            return _json(404, {"error": {"message": path}})
        items = [item for item in body.get("input") or [] if isinstance(item, dict)]
        # Tools the request offers, and those an earlier tool search exposed.
        found = [tool for item in items if item.get("type") == "tool_search_output" for tool in item.get("tools") or []]
        tools = _responses_tools([*(body.get("tools") or []), *found])
        ours = [item for item in items if item.get("type") == "function_call"
                and str(item.get("call_id", "")).startswith("call_ours_")]  # fmt: skip
        outputs = {item.get("call_id"): item for item in items if item.get("type") == "function_call_output"}
        if ours and ours[-1]["call_id"] not in outputs:
            return _responses_stream([_message_item(FINAL_TEXT)])
        step = script.next_step([_responses_text(outputs[call["call_id"]].get("output")) for call in ours])
        if step is None:
            return _responses_stream([_message_item(FINAL_TEXT)])
        tool, arguments = step
        offered = [candidate for candidate in tools if matches(candidate.get("name", ""), tool)]
        if offered:
            script.offered([candidate.get("name", "") for candidate in tools], tool, offered[0].get("parameters"))
            call = {"type": "function_call", "id": f"fc_ours_{len(ours)}", "call_id": f"call_ours_{len(ours)}",
                    "name": offered[0]["name"], "arguments": json.dumps(arguments, ensure_ascii=False)}  # fmt: skip
            if offered[0].get("namespace"):
                call["namespace"] = offered[0]["namespace"]
            return _responses_stream([call])
        query = f"aitoearn {tool}"
        searches = [item for item in items if item.get("type") == "tool_search_call"
                    and (item.get("arguments") or {}).get("query") == query]  # fmt: skip
        if (
            any(candidate.get("type") == "tool_search" for candidate in body.get("tools") or [])
            and len(searches) < script.searches()
        ):
            # MCP tools are deferred: search for ours, as a model told about the server would.
            if searches:
                time.sleep(script.patience)
            number = sum(1 for item in items if item.get("type") == "tool_search_call")
            search = {"type": "tool_search_call", "id": f"tsc_{number}", "call_id": f"search_{number}",
                      "status": "completed", "execution": "client", "arguments": {"query": query, "limit": 8}}  # fmt: skip
            return _responses_stream([search])
        return _responses_stream([_message_item(FINAL_TEXT)])

    return handle


def _responses_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function tools, flattening namespaces (``{"type": "namespace", "name": …, "tools": […]}``)."""
    out = []
    for tool in tools:
        if tool.get("type") == "namespace":
            out += [{**inner, "namespace": tool.get("name")} for inner in tool.get("tools") or []]
        elif tool.get("type") == "function":
            out.append(tool)
    return out


def _responses_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    parts = []
    for item in output or []:
        parts.append(item.get("text") if isinstance(item, dict) and "text" in item else json.dumps(item))
    return "\n".join(str(part) for part in parts)


def _message_item(text: str) -> dict[str, Any]:
    return {"type": "message", "id": "msg_scripted", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip


def _responses_stream(items: list[dict[str, Any]]) -> tuple[int, str, bytes]:
    response = {"id": "resp_scripted", "object": "response", "status": "in_progress", "output": []}
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("response.created", {"type": "response.created", "response": response})
    ]
    for index, item in enumerate(items):
        events.append(("response.output_item.done",
                       {"type": "response.output_item.done", "output_index": index, "item": item}))  # fmt: skip
    usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 10,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 110}  # fmt: skip
    done = {**response, "status": "completed", "output": items, "usage": usage}
    events.append(("response.completed", {"type": "response.completed", "response": done}))
    return 200, "text/event-stream", _sse(events)


# --- Gemini API (Gemini CLI) ----------------------------------------------------------------


def gemini(script: Script) -> Callable[[str, str, bytes], tuple[int, str, bytes]]:
    def handle(method: str, path: str, raw: bytes) -> tuple[int, str, bytes]:
        body = json.loads(raw) if raw else {}
        script.record(path, body)
        if ":countTokens" in path:
            return _json(200, {"totalTokens": 100})
        if ":generateContent" not in path and ":streamGenerateContent" not in path:
            return _json(404, {"error": {"code": 404, "message": path, "status": "NOT_FOUND"}})
        stream = ":streamGenerateContent" in path
        declarations = [d for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []]
        if not declarations:  # the CLI's own helpers (next speaker, routing, loop checks)
            config = body.get("generationConfig") or {}
            if config.get("responseMimeType") == "application/json":
                answer = {"reasoning": "The turn is over.", "next_speaker": "user", "model_choice": "flash"}
                return _gemini_answer([{"text": json.dumps(answer)}], stream)
            return _gemini_answer([{"text": FINAL_TEXT}], stream)
        parts = [part for content in body.get("contents") or [] for part in content.get("parts") or []]
        # No call ids here: our calls and their responses are told apart by name, in order.
        ours = [p["functionCall"] for p in parts if "functionCall" in p and script.ours(p["functionCall"]["name"])]
        answered = [p["functionResponse"] for p in parts
                    if "functionResponse" in p and script.ours(p["functionResponse"].get("name", ""))]  # fmt: skip
        if len(answered) < len(ours):
            return _gemini_answer([{"text": FINAL_TEXT}], stream)
        step = script.next_step([_gemini_text(response, parts) for response in answered])
        if step is None:
            return _gemini_answer([{"text": FINAL_TEXT}], stream)
        tool, arguments = step
        offered = [d for d in declarations if matches(d.get("name", ""), tool)]
        if not offered:
            return _gemini_answer([{"text": FINAL_TEXT}], stream)
        schema = offered[0].get("parametersJsonSchema") or offered[0].get("parameters")
        script.offered([d.get("name", "") for d in declarations], tool, schema)
        return _gemini_answer([{"functionCall": {"name": offered[0]["name"], "args": arguments}}], stream)

    return handle


def _gemini_text(response: dict[str, Any], parts: list[dict[str, Any]]) -> str:
    """The function response as the model reads it (the CLI sends ``{"output": text}``; anything
    else as JSON), plus any text parts the CLI sent after it."""
    body = response.get("response")
    texts = [
        body["output"] if isinstance(body, dict) and set(body) == {"output"} else json.dumps(body, ensure_ascii=False)
    ]
    after = parts[parts.index({"functionResponse": response}) + 1 :] if {"functionResponse": response} in parts else []
    texts += [p["text"] for p in after if "text" in p]
    return "\n".join(str(text) for text in texts)


def _gemini_answer(parts: list[dict[str, Any]], stream: bool) -> tuple[int, str, bytes]:
    chunk = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
             "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110},
             "modelVersion": "gemini-2.5-pro"}  # fmt: skip
    if stream:
        return 200, "text/event-stream", _sse([(None, chunk)])
    return _json(200, chunk)
