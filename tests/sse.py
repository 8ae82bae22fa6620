"""Build Anthropic Messages streams as the relay sends them: event objects and SSE bytes."""

from __future__ import annotations

import json
from typing import Any

Event = dict[str, Any]


def message_start(model: str = "claude-sonnet-5", input_tokens: int = 12, **usage: Any) -> Event:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_01FAKE",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
        },
    }


def text_block(index: int, pieces: list[str], citations: list[Any] | None = None) -> list[Event]:
    events: list[Event] = [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
    ]
    events += [
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}} for p in pieces
    ]
    for citation in citations or []:
        events.append(
            {"type": "content_block_delta", "index": index, "delta": {"type": "citations_delta", "citation": citation}}
        )
    events.append({"type": "content_block_stop", "index": index})
    return events


def thinking_block(index: int, pieces: list[str], signature: str = "sig-AbC123==") -> list[Event]:
    start = {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    }
    deltas = [
        {"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": p}}
        for p in pieces
    ]
    sig = {"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": signature}}
    return [start, *deltas, sig, {"type": "content_block_stop", "index": index}]


def tool_use_block(index: int, name: str, json_pieces: list[str], tool_id: str = "toolu_01FAKE") -> list[Event]:
    start = {"type": "content_block_start", "index": index,
             "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}  # fmt: skip
    deltas = [
        {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}}
        for p in json_pieces
    ]
    return [start, *deltas, {"type": "content_block_stop", "index": index}]


def message_end(stop_reason: str = "end_turn", output_tokens: int = 42, stop_sequence: str | None = None,
                **usage: Any) -> list[Event]:  # fmt: skip
    return [
        {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
         "usage": {"output_tokens": output_tokens, **usage}},
        {"type": "message_stop"},
    ]  # fmt: skip


def text_reply(pieces: list[str], **end: Any) -> list[Event]:
    return [message_start(), *text_block(0, pieces), *message_end(**end)]


def rich_reply() -> list[Event]:
    """Thinking, Chinese text with emoji, a citation, a tool call, cache usage: every delta type."""
    citation = {"type": "char_location", "cited_text": "天空是蓝色的", "document_index": 0,
                "document_title": "文档", "start_char_index": 0, "end_char_index": 6}  # fmt: skip
    return [
        message_start(cache_read_input_tokens=100, cache_creation_input_tokens=5,
                      cache_creation={"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 0}),
        *thinking_block(0, ["让我想想", "……天空", " why? 🤔"]),
        *text_block(1, ["你好，", "世界！🌍", "\r\n第二行\r\n", "天空是蓝色的。"], citations=[citation]),
        *tool_use_block(2, "get_weather", ['{"city": "北', '京", "days"', ": 3}"]),
        *message_end(stop_reason="tool_use", output_tokens=99, input_tokens=12),
    ]  # fmt: skip


def encode(events: list[Event], *, crlf: bool = False, pings: bool = True, comments: bool = True) -> bytes:
    """SSE bytes: ``event:``/``data:`` lines, with pings and comment lines between events."""
    nl = "\r\n" if crlf else "\n"
    out: list[str] = []
    for number, event in enumerate(events):
        if comments and number % 7 == 3:
            out.append(f": keep-alive comment{nl}{nl}")
        if pings and number % 5 == 2:
            out.append(f'event: ping{nl}data: {{"type": "ping"}}{nl}{nl}')
        data = json.dumps(event, ensure_ascii=False)
        out.append(f"event: {event['type']}{nl}data: {data}{nl}{nl}")
    return "".join(out).encode()


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- OpenAI Chat Completions chunks, as the relay's /api/ai/chat/completions streams them ----------


def chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None, *, model: str = "deepseek-v4-pro",
          usage: dict[str, Any] | None = None, choices: bool = True) -> Event:  # fmt: skip
    out: Event = {"id": "chatcmpl-FAKE", "object": "chat.completion.chunk", "created": 1764000000, "model": model,
                  "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
                  if choices else []}  # fmt: skip
    if usage is not None:
        out["usage"] = usage
    return out


USAGE = {"prompt_tokens": 120, "completion_tokens": 42, "total_tokens": 162,
         "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 7}}  # fmt: skip


def chat_text_reply(pieces: list[str], finish_reason: str = "stop", *, model: str = "deepseek-v4-pro",
                    usage: dict[str, Any] | None = None) -> list[Event]:  # fmt: skip
    first = chunk({"role": "assistant", "content": ""}, model=model)
    return [first, *(chunk({"content": p}, model=model) for p in pieces), chunk({}, finish_reason, model=model),
            chunk(model=model, usage=usage or USAGE, choices=False)]  # fmt: skip


def chat_rich_reply() -> list[Event]:
    """Reasoning, Chinese text with emoji, two tool calls streamed by index, a usage chunk."""
    return [
        chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
        *(chunk({"content": None, "reasoning_content": p}) for p in ["让我想想", "……天空", " why? 🤔"]),
        *(chunk({"content": p, "reasoning_content": None}) for p in ["你好，", "世界！🌍", "\r\n第二行\r\n"]),
        chunk({"tool_calls": [{"index": 0, "id": "call_A", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "北'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_B", "type": "function",
                               "function": {"name": "get_time", "arguments": '{"tz"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '京", "days": 3}'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": ': "Asia/Shanghai"}'}}]}),
        chunk({}, "tool_calls"),
        chunk(usage=USAGE, choices=False),
    ]  # fmt: skip


def encode_chat(chunks: list[Event], *, done: bool = True, crlf: bool = False, ids: bool = False) -> bytes:
    """SSE bytes as an OpenAI-compatible server writes them: ``data:`` lines only (``id:`` lines
    too with ``ids``, as AiToEarn's NestJS backend does), then ``data: [DONE]``."""
    nl = "\r\n" if crlf else "\n"
    out = [f"{f'id: {n}{nl}' if ids else ''}data: {json.dumps(c, ensure_ascii=False)}{nl}{nl}"
           for n, c in enumerate(chunks)]  # fmt: skip
    if done:
        out.append(f"data: [DONE]{nl}{nl}")
    return "".join(out).encode()


def encode_nest(events: list[Event]) -> bytes:
    """Anthropic events as AiToEarn's NestJS backend writes them: ``id:`` and ``data:``, no ``event:``."""
    return "".join(f"id: {n}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n" for n, e in enumerate(events)).encode()


# --- Gemini GenerateContentResponse events, as the relay's :streamGenerateContent streams them ----


def gemini_event(parts: list[dict[str, Any]] | None = None, finish: str | None = None, *,
                 model: str = "gemini-3.1-flash-image-preview", usage: dict[str, Any] | None = None) -> Event:  # fmt: skip
    candidate: Event = {"index": 0}
    if parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish is not None:
        candidate["finishReason"] = finish
    out: Event = {"candidates": [candidate], "modelVersion": model, "responseId": "resp-FAKE"}
    if usage is not None:
        out["usageMetadata"] = usage
    return out


GEMINI_USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 1310, "totalTokenCount": 1322,
                "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 20},
                                            {"modality": "IMAGE", "tokenCount": 1290}]}  # fmt: skip


def gemini_image_reply(pieces: list[str], images: list[tuple[str, str]], after: list[str] | None = None,
                       *, finish: str = "STOP", model: str = "gemini-3.1-flash-image-preview") -> list[Event]:  # fmt: skip
    """Text pieces, then each (mime type, base64) image as an inlineData part, then more text; the
    last event has only the finishReason and the usage (the documented form)."""
    events = [gemini_event([{"text": p}], model=model) for p in pieces]
    events += [gemini_event([{"inlineData": {"mimeType": mime, "data": data}}], model=model) for mime, data in images]
    events += [gemini_event([{"text": p}], model=model) for p in after or []]
    events.append(gemini_event(None, finish, model=model, usage=GEMINI_USAGE))
    return events


def encode_gemini(events: list[Event], *, crlf: bool = False) -> bytes:
    """``data: {json}`` lines only: no event names, no end marker (Google's SSE form)."""
    nl = "\r\n" if crlf else "\n"
    return "".join(f"data: {json.dumps(e, ensure_ascii=False)}{nl}{nl}" for e in events).encode()
