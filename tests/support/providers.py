"""A fake LLM provider on a loopback port that answers as OpenAI, Anthropic and Gemini do on the wire.

JSON answers and server-sent event streams, in each provider's exact shapes (the official SDKs parse them),
with their rate-limit headers. Stream events are written in pieces that split events (and lines) across
HTTP chunks, with a pause between pieces so they reach the client as separate reads. Gemini's JSON answers
are gzip-compressed when the client accepts it, as Google's are.

Usage is a pure function of the request (:func:`words`), so a test can tell what each SDK will report:
input tokens are the words of the prompt plus ``PROMPT_OVERHEAD``; output tokens the words answered.
A model named ``rate-limited`` gets a 429 in the provider's error format; ``broken-model`` a 500;
``long-answer`` (OpenAI) an answer of ``LONG_WORDS`` words. ``tool-calls`` answers (same usage) by asking
for the tools of ``TOOLS``, in each provider's shape; ``truncated`` and ``filtered`` end the answer as cut
at the token limit and as stopped by a content filter (:data:`FINISH` has each provider's words for them).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

PROMPT_OVERHEAD = 3
RATE_LIMITED = "rate-limited"
BROKEN = "broken-model"
LONG, LONG_WORDS = "long-answer", 50_000
OPENAI_SNAPSHOT = "-2024-07-18"  # OpenAI answers with the dated snapshot of the model asked for
REQUEST_LIMIT, TOKEN_LIMIT = 500, 30_000
TOOL_CALLS, TRUNCATED, FILTERED = "tool-calls", "truncated", "filtered"
TOOLS = ("get_weather", "get_time")  # the tool calls a ``tool-calls`` answer asks for, in order
# How each provider says an answer ended, by magic model (any other model: the first value).
FINISH = {
    "openai": {TOOL_CALLS: "tool_calls", TRUNCATED: "length", FILTERED: "content_filter"},
    "anthropic": {TOOL_CALLS: "tool_use", TRUNCATED: "max_tokens", FILTERED: "refusal"},
    "gemini": {TOOL_CALLS: "STOP", TRUNCATED: "MAX_TOKENS", FILTERED: "SAFETY"},
}
DEFAULT_FINISH = {"openai": "stop", "anthropic": "end_turn", "gemini": "STOP"}
PIECE_PAUSE = 0.002  # seconds between the first pieces of a stream
PAUSED_PIECES = 40


def finish_of(provider: str, model: str) -> str:
    return FINISH[provider].get(model, DEFAULT_FINISH[provider])


def _arguments(i: int) -> str:
    return json.dumps({"city": "Paris"} if i == 0 else {})


def words(text: str) -> list[str]:
    return text.split()


def answer_for(prompt: str) -> list[str]:
    """The words of the answer to ``prompt``: its words reversed, then "done"."""
    return [*reversed(words(prompt)), "done"]


def prompt_tokens(prompt: str) -> int:
    return len(words(prompt)) + PROMPT_OVERHEAD


def remaining_tokens(prompt: str) -> int:
    """What the rate-limit headers say is left of the token limit after a call with ``prompt``."""
    return TOKEN_LIMIT - prompt_tokens(prompt) - len(answer_for(prompt))


def _limits_openai(prompt: str) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(REQUEST_LIMIT),
        "x-ratelimit-remaining-requests": str(REQUEST_LIMIT - 1),
        "x-ratelimit-limit-tokens": str(TOKEN_LIMIT),
        "x-ratelimit-remaining-tokens": str(remaining_tokens(prompt)),
        "x-ratelimit-reset-tokens": "6ms",
    }


def _limits_anthropic(prompt: str) -> dict[str, str]:
    return {
        "anthropic-ratelimit-requests-limit": str(REQUEST_LIMIT),
        "anthropic-ratelimit-requests-remaining": str(REQUEST_LIMIT - 1),
        "anthropic-ratelimit-tokens-limit": str(TOKEN_LIMIT),
        "anthropic-ratelimit-tokens-remaining": str(remaining_tokens(prompt)),
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:00Z",
    }


def _pieces(events: list[bytes]) -> list[bytes]:
    """The stream as written: each event cut in two (mid-line), the second half joined to the next event's
    first, so no write holds exactly one event."""
    data = b"".join(events)
    cuts = sorted({0, len(data)} | {sum(map(len, events[:i])) + len(e) // 2 for i, e in enumerate(events)})
    return [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


async def _stream(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for i, piece in enumerate(pieces):
        yield piece
        if i < PAUSED_PIECES:
            await asyncio.sleep(PIECE_PAUSE)


def _sse(events: list[bytes], headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(_stream(_pieces(events)), media_type="text/event-stream", headers=headers)


def _data(obj: Any, sep: bytes = b"\n\n") -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + sep


# -- OpenAI ---------------------------------------------------------------------------------------------


def _openai_prompt(body: dict[str, Any]) -> str:
    return " ".join(str(m.get("content", "")) for m in body.get("messages", []))


async def openai_chat(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model"))
    prompt = _openai_prompt(body)
    headers = _limits_openai(prompt)
    if model == RATE_LIMITED:
        error = {
            "message": "Rate limit reached for requests",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        # retry-after-ms: the SDK's retries come at once instead of after its backoff.
        limited = {**headers, "x-ratelimit-remaining-requests": "0", "retry-after-ms": "5"}
        return JSONResponse({"error": error}, status_code=429, headers=limited)
    if model == BROKEN:
        error = {"message": "The server had an error", "type": "server_error", "param": None, "code": None}
        return JSONResponse({"error": error}, status_code=500, headers={"retry-after-ms": "5"})
    answer = [f"w{i}" for i in range(LONG_WORDS)] if model == LONG else answer_for(prompt)
    usage = {
        "prompt_tokens": prompt_tokens(prompt),
        "completion_tokens": len(answer),
        "total_tokens": prompt_tokens(prompt) + len(answer),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    name = model + OPENAI_SNAPSHOT
    finish = finish_of("openai", model)
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(answer), "refusal": None}
        if model == TOOL_CALLS:
            message["content"] = None
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": tool, "arguments": _arguments(i)}}
                for i, tool in enumerate(TOOLS)
            ]
        completion = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": name,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        return JSONResponse(completion, headers=headers)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}] if delta or reason else []
        obj = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": name,
            "system_fingerprint": "fp_fake",
            "choices": choices,
            **extra,
        }
        if include_usage and "usage" not in extra:
            obj["usage"] = None
        return _data(obj)

    events = [chunk({"role": "assistant", "content": ""})]
    if model == TOOL_CALLS:
        # A call's id and name come in its first delta, its arguments in pieces in the later ones.
        for i, tool in enumerate(TOOLS):
            first = {"index": i, "id": f"call_{i}", "type": "function", "function": {"name": tool, "arguments": ""}}
            events.append(chunk({"tool_calls": [first]}))
            arguments = _arguments(i)
            for a in range(0, len(arguments), 5):
                events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[a : a + 5]}}]}))
    else:
        events += [chunk({"content": (" " if i else "") + w}) for i, w in enumerate(answer)]
    events.append(chunk({}, finish))
    if include_usage:
        events.append(chunk({}, None, usage=usage))
    events.append(b"data: [DONE]\n\n")
    return _sse(events, headers)


# -- Anthropic ------------------------------------------------------------------------------------------


def _anthropic_prompt(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages", []):
        content = message.get("content", "")
        if isinstance(content, list):
            content = " ".join(str(block.get("text", "")) for block in content)
        parts.append(str(content))
    return " ".join(parts)


async def anthropic_messages(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model"))
    prompt = _anthropic_prompt(body)
    headers = _limits_anthropic(prompt)
    if model == RATE_LIMITED:
        error = {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests exceeded"}}
        limited = {**headers, "anthropic-ratelimit-requests-remaining": "0", "retry-after-ms": "5"}
        return JSONResponse(error, status_code=429, headers=limited)
    if model == BROKEN:
        error = {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
        return JSONResponse(error, status_code=500, headers={"retry-after-ms": "5"})
    answer = answer_for(prompt)
    n_in = prompt_tokens(prompt)
    usage = {"input_tokens": n_in, "output_tokens": len(answer), "cache_creation_input_tokens": 0}
    usage["cache_read_input_tokens"] = 0
    finish = finish_of("anthropic", model)
    tool_blocks = [
        {"type": "tool_use", "id": f"toolu_{i}", "name": tool, "input": json.loads(_arguments(i))}
        for i, tool in enumerate(TOOLS)
    ]
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": " ".join(answer)}, *(tool_blocks if model == TOOL_CALLS else [])],
        "stop_reason": finish,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return JSONResponse(message, headers=headers)

    def event(name: str, obj: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\n" + _data(obj)

    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events = [
        event("message_start", {"type": "message_start", "message": start}),
        event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": _text("")}),
        event("ping", {"type": "ping"}),
    ]
    for i, w in enumerate(answer):
        delta = {"type": "text_delta", "text": (" " if i else "") + w}
        events.append(event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    if model == TOOL_CALLS:
        for i, block in enumerate(tool_blocks, 1):
            start_block = {"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}}
            partial = {"type": "input_json_delta", "partial_json": _arguments(i - 1)}
            events += [
                event("content_block_start", start_block),
                event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": partial}),
                event("content_block_stop", {"type": "content_block_stop", "index": i}),
            ]
    events += [
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": finish, "stop_sequence": None},
                "usage": {"output_tokens": len(answer)},
            },
        ),
        event("message_stop", {"type": "message_stop"}),
    ]
    return _sse(events, headers)


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


# -- Gemini ---------------------------------------------------------------------------------------------


def _gemini_prompt(body: dict[str, Any]) -> str:
    texts = [str(p.get("text", "")) for c in body.get("contents", []) for p in c.get("parts", [])]
    return " ".join(texts)


def _gemini_error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status_code=code)


async def gemini(request: Request) -> Response:
    model, _, method = request.path_params["call"].partition(":")
    body = await request.json()
    if model == RATE_LIMITED:
        return _gemini_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
    if model == BROKEN:
        return _gemini_error(500, "INTERNAL", "An internal error has occurred.")
    prompt = _gemini_prompt(body)
    answer = answer_for(prompt)
    n_in = prompt_tokens(prompt)

    tools = model == TOOL_CALLS

    def response(text: str, n_out: int, finish: bool) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": text}]
        if finish and tools:  # Gemini sends each function call whole, here in the last event
            parts += [{"functionCall": {"name": t, "args": json.loads(_arguments(i))}} for i, t in enumerate(TOOLS)]
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish_of("gemini", model)
        return {
            "candidates": [candidate],
            "usageMetadata": {"promptTokenCount": n_in, "candidatesTokenCount": n_out, "totalTokenCount": n_in + n_out},
            "modelVersion": model,
            "responseId": "fake-response",
        }

    if method == "generateContent":
        data = json.dumps(response(" ".join(answer), len(answer), True)).encode()
        headers = {"content-type": "application/json; charset=UTF-8"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            data = gzip.compress(data)
            headers["content-encoding"] = "gzip"
        return Response(data, headers=headers)
    if method == "streamGenerateContent" and request.query_params.get("alt") == "sse":
        # Each event carries the usage so far; Gemini separates events with CRLF pairs.
        events = [
            _data(response((" " if i else "") + w, i + 1, i == len(answer) - 1), b"\r\n\r\n")
            for i, w in enumerate(answer)
        ]
        return _sse(events, {})
    return _gemini_error(400, "INVALID_ARGUMENT", f"unsupported method {method}")


def provider_app() -> Starlette:
    """The fake provider: mount it on a ThreadServer and point the SDKs' base URLs at it."""
    return Starlette(
        routes=[
            Route("/v1/chat/completions", openai_chat, methods=["POST"]),
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
            # google-genai 3 sends to v1 by default, earlier versions (and most code) to v1beta.
            Route("/v1/models/{call:path}", gemini, methods=["POST"]),
            Route("/v1beta/models/{call:path}", gemini, methods=["POST"]),
        ]
    )


def sdk_env(url: str) -> dict[str, str]:
    """The variables the official SDKs read their endpoints and keys from, for the fake at ``url``."""
    return {
        "OPENAI_BASE_URL": f"{url}/v1",
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "GOOGLE_GEMINI_BASE_URL": url,
        "GEMINI_API_KEY": "gemini-test",
    }
