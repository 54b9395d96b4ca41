"""Zero-code capture: start_capture / feed / finish driven directly on a real Recorder and registry."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from exporter.capture.encoding import PIECE, Decoded, decoder_for
from exporter.capture.loads import loads
from exporter.capture.request import requested_model
from exporter.capture.response import JsonCapture, SseCapture, start_capture
from exporter.capture.usage import COUNT_FIELDS
from exporter.config import CaptureConfig, Config
from exporter.observations import LLMCall
from exporter.recorder import Recorder

from ..support.metrics import series, value
from ..support.pricing import by_kind, reference_usd

JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
START, END = 100.0, 101.5  # perf_counter values handed to finish(): a 1.5 s request


def gunzip() -> Any:
    decode = decoder_for(b"gzip")
    assert decode
    return decode


def recorder() -> Recorder:
    return Recorder(Config(), CollectorRegistry())


def llm(provider: str, model: str) -> dict[str, str]:
    """The labels of a captured call: with no request to read, the answer's model stands in for the request's."""
    return {"gen_ai_provider_name": provider, "gen_ai_request_model": model, "gen_ai_response_model": model}


def tokens(rec: Recorder, provider: str, model: str, kind: str) -> float | None:
    return value(rec, "llm_tokens_total", **llm(provider, model), gen_ai_token_type=kind)


def cost(rec: Recorder, provider: str, model: str, kind: str) -> float | None:
    return value(rec, "llm_cost_usd_total", **llm(provider, model), gen_ai_token_type=kind, cost_source="estimated")


def requests(rec: Recorder, provider: str, model: str, outcome: str = "ok") -> float | None:
    return value(rec, "llm_requests_total", **llm(provider, model), outcome=outcome)


def ttft(rec: Recorder, provider: str, model: str, stat: str = "sum") -> float | None:
    return value(rec, f"gen_ai_client_time_to_first_token_seconds_{stat}", **llm(provider, model))


def missing_usage(rec: Recorder) -> dict[tuple[tuple[str, str], ...], float]:
    return series(rec, "llm_exporter_missing_usage_total")


def capture_errors(rec: Recorder, fmt: str) -> float:
    return value(rec, "llm_exporter_capture_errors_total", format=fmt) or 0.0


def run(
    rec: Recorder,
    headers: list[tuple[bytes, bytes]],
    chunks: Sequence[bytes],
    *,
    times: Sequence[float] | None = None,
    status: int = 200,
    config: CaptureConfig | None = None,
) -> None:
    capture = start_capture(headers, config or CaptureConfig())
    assert capture is not None
    for i, chunk in enumerate(chunks):
        capture.feed(chunk, times[i] if times else START + 0.1)
    rec.captured(capture.finish(START, END, status))


def sse(*events: dict[str, Any] | str, sep: bytes = b"\n", names: bool = False) -> list[bytes]:
    """One chunk per event; ``names`` adds Anthropic's ``event:`` lines."""
    out = []
    for ev in events:
        if isinstance(ev, str):
            out.append(b"data: " + ev.encode() + sep + sep)
            continue
        head = f"event: {ev['type']}".encode() + sep if names else b""
        out.append(head + b"data: " + json.dumps(ev, ensure_ascii=False).encode() + sep + sep)
    return out


# -- payloads with known counts ------------------------------------------------------------------------------

OPENAI_CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 200},
    },
}
OPENAI_RESPONSES = {
    "id": "resp_1",
    "object": "response",
    "model": "gpt-4.1-mini-2025-04-14",
    "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}],
    "usage": {
        "input_tokens": 300,
        "input_tokens_details": {"cached_tokens": 100},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 350,
    },
}
ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "usage": {
        "input_tokens": 100,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 50,
        "output_tokens": 200,
    },
}
GEMINI_RESPONSE = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "finishReason": "STOP"}],
    "usageMetadata": {
        "promptTokenCount": 400,
        "cachedContentTokenCount": 100,
        "candidatesTokenCount": 60,
        "thoughtsTokenCount": 40,
        "totalTokenCount": 500,
    },
    "modelVersion": "gemini-2.5-flash",
}

# (payload, provider, model label, the tokens of each kind)
JSON_CASES = [
    # 1000 prompt tokens, 200 of them read from the cache
    (OPENAI_CHAT, "openai", "gpt-4o-2024-08-06", {"input": 800, "cache_read": 200, "output": 500}),
    (OPENAI_RESPONSES, "openai", "gpt-4.1-mini-2025-04-14", {"input": 200, "cache_read": 100, "output": 50}),
    # Anthropic's input_tokens leave the cache reads and writes out
    (
        ANTHROPIC_MESSAGE,
        "anthropic",
        "claude-sonnet-4-5-20250929",
        {"input": 100, "cache_read": 1000, "cache_write": 50, "output": 200},
    ),
    # promptTokenCount includes the cached content; candidatesTokenCount leaves the thinking out
    (
        GEMINI_RESPONSE,
        "gcp.gemini",
        "gemini-2.5-flash",
        {"input": 300, "cache_read": 100, "output": 60, "output_reasoning": 40},
    ),
]


@pytest.mark.parametrize(("payload", "provider", "model", "kinds"), JSON_CASES)
def test_json_response(payload: dict[str, Any], provider: str, model: str, kinds: dict[str, int]) -> None:
    rec = recorder()
    body = json.dumps(payload).encode()
    run(rec, JSON, [body[:7], body[7:]])
    assert by_kind(rec, "llm_tokens_total") == kinds
    expected = {kind: reference_usd(model, provider, {kind: n}) for kind, n in kinds.items()}
    assert by_kind(rec, "llm_cost_usd_total") == pytest.approx(expected, abs=1e-12)
    assert cost(rec, provider, model, "input") == pytest.approx(expected["input"], abs=1e-12)  # one call's series
    assert requests(rec, provider, model) == 1
    labels = llm(provider, model)
    assert value(rec, "gen_ai_client_operation_duration_seconds_sum", error_type="", **labels, **_op(provider)) == 1.5
    assert ttft(rec, provider, model, "count") is None  # a plain JSON response has no first token
    assert capture_errors(rec, "json") == 0


def _op(provider: str) -> dict[str, str]:
    return {"gen_ai_operation_name": "generate_content" if provider == "gcp.gemini" else "chat"}


def test_embeddings_response_counts_input_only() -> None:
    rec = recorder()
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 50_000, "total_tokens": 50_000},
    }
    run(rec, JSON, [json.dumps(body).encode()])
    assert by_kind(rec, "llm_tokens_total") == {"input": 50_000}
    assert cost(rec, "openai", "text-embedding-3-small", "input") == pytest.approx(0.001, rel=1e-12)
    usage = {**llm("openai", "text-embedding-3-small"), "gen_ai_operation_name": "embeddings"}
    assert value(rec, "gen_ai_client_token_usage_count", **usage, gen_ai_token_type="input") == 1


def test_unknown_model_counts_tokens_without_cost() -> None:
    rec = recorder()
    body = dict(OPENAI_CHAT, model="acme-llm-7b")
    run(rec, JSON, [json.dumps(body).encode()])
    assert by_kind(rec, "llm_tokens_total") == {"input": 800, "cache_read": 200, "output": 500}
    assert series(rec, "llm_cost_usd_total") == {}
    assert value(rec, "llm_exporter_unpriced_tokens_total", **llm("openai", "acme-llm-7b")) == 1500


def test_cached_tokens_without_cached_price_bill_at_input_price() -> None:
    rec = recorder()
    body = dict(OPENAI_CHAT, model="gpt-5-pro")  # no cached price in the table
    run(rec, JSON, [json.dumps(body).encode()])
    assert cost(rec, "openai", "gpt-5-pro", "input") == pytest.approx(800 * 15.0 / 1e6, rel=1e-12)
    assert cost(rec, "openai", "gpt-5-pro", "cache_read") == pytest.approx(200 * 15.0 / 1e6, rel=1e-12)


def test_gemini_json_array_stream() -> None:
    rec = recorder()
    items = [
        {"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], "modelVersion": "gemini-2.5-pro",
         "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 1}},
        {"candidates": [{"content": {"parts": [{"text": "lo"}]}}], "modelVersion": "gemini-2.5-pro",
         "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20}},
    ]  # fmt: skip
    body = json.dumps(items).encode()
    cut = body.index(b'"text"') + 3  # the first "text" marker split across two chunks
    run(rec, JSON, [b"[", body[1:cut], body[cut:]], times=[100.05, 100.1, 100.2])
    assert tokens(rec, "gcp.gemini", "gemini-2.5-pro", "input") == 8
    assert tokens(rec, "gcp.gemini", "gemini-2.5-pro", "output") == 12
    assert cost(rec, "gcp.gemini", "gemini-2.5-pro", "output") == pytest.approx(12 * 10.0 / 1e6, rel=1e-12)
    assert ttft(rec, "gcp.gemini", "gemini-2.5-pro") == pytest.approx(0.2, abs=1e-12)


def test_a_long_gemini_array_stream_keeps_only_its_tail() -> None:
    rec = recorder()
    item = {"candidates": [{"content": {"parts": [{"text": "x" * 1000}]}}], "modelVersion": "gemini-2.5-pro"}
    items = [
        {**item, "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 250 * (i + 1)}} for i in range(1200)
    ]
    body = json.dumps(items).encode()
    assert len(body) > 1_300_000  # past the 1 MiB JSON cap: an array is a stream, not one body to parse
    capture = start_capture(JSON, CaptureConfig())
    assert capture is not None
    kept = 0
    for i in range(0, len(body), 1200):
        capture.feed(body[i : i + 1200], START + 0.1)
        kept = max(kept, sum(len(p) for p in capture._parts))  # type: ignore[union-attr]
    rec.captured(capture.finish(START, END, 200))
    assert kept <= 65_536 + 1200
    assert tokens(rec, "gcp.gemini", "gemini-2.5-pro", "input") == 8
    assert tokens(rec, "gcp.gemini", "gemini-2.5-pro", "output") == 300_000
    assert capture_errors(rec, "json") == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": "ok", "items": [1, 2, 3]}',  # some other API
        b'{"usage": {"cpu_seconds": 3}, "plan": "pro"}',  # a "usage" field, but no model: not an LLM response
        b'{"error": {"message": "rate limited", "type": "rate_limit_error"}}',
        b"",
        b"[1, 2, 3]",
    ],
)
def test_json_that_is_not_llm_output_is_ignored_silently(body: bytes) -> None:
    rec = recorder()
    run(rec, JSON, [body] if body else [])
    assert (
        value(
            rec,
            "llm_requests_total",
            http_route="__none__",
            gen_ai_provider_name="openai",
            gen_ai_request_model="unknown",
            outcome="ok",
        )
        is None
    )
    assert capture_errors(rec, "json") == 0
    assert list(rec.metrics.llm_requests.collect()[0].samples) == []


def test_truncated_llm_json_is_counted() -> None:
    rec = recorder()
    body = json.dumps(OPENAI_CHAT).encode()
    run(rec, JSON, [body[:-10]])
    assert capture_errors(rec, "json") == 1
    assert list(rec.metrics.llm_requests.collect()[0].samples) == []


def test_json_over_the_size_cap() -> None:
    rec = recorder()
    cfg = CaptureConfig(max_json_bytes=120)
    llm = json.dumps(OPENAI_CHAT).encode()
    run(rec, JSON, [llm[:40], llm[40:]], config=cfg)  # the first 120 bytes show a chat completion: counted
    assert capture_errors(rec, "json") == 1
    other = json.dumps({"rows": list(range(100))}).encode()
    run(rec, JSON, [other], config=cfg)  # some large non-LLM JSON: skipped, not counted
    cars = json.dumps([{"make": "Honda", "model": "Civic", "choices": ["red", "blue"]}] * 10).encode()
    run(rec, JSON, [cars], config=cfg)  # common keys, but no provider's response shape: not counted either
    assert capture_errors(rec, "json") == 1
    anthropic = json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "content": ["x" * 200]}).encode()
    run(rec, JSON, [anthropic], config=cfg)  # Anthropic's shape, usage past the cap: counted
    assert capture_errors(rec, "json") == 2
    assert list(rec.metrics.llm_requests.collect()[0].samples) == []
    run(rec, JSON, [llm], config=CaptureConfig(max_json_bytes=len(llm)))  # exactly at the cap: read
    assert tokens(rec, "openai", "gpt-4o-2024-08-06", "input") == 800


def test_a_lone_surrogate_from_a_response_is_replaced_and_metrics_render() -> None:
    # A response may say anything; a value that can't be written as UTF-8 must not break every scrape.
    rec = recorder()
    body = json.dumps({**OPENAI_CHAT, "model": "gpt-\ud800x"}).encode()
    assert b"\\ud800" in body
    run(rec, JSON, [body])
    assert tokens(rec, "openai", "gpt-?x", "input") == 800
    assert "gpt-?x" in generate_latest(rec.registry).decode()


def test_error_status_is_the_error_type() -> None:
    rec = recorder()
    run(rec, JSON, [json.dumps(OPENAI_CHAT).encode()], status=503)
    assert requests(rec, "openai", "gpt-4o-2024-08-06", "error") == 1
    labels = {**llm("openai", "gpt-4o-2024-08-06"), "gen_ai_operation_name": "chat", "error_type": "503"}
    assert value(rec, "gen_ai_client_operation_duration_seconds_count", **labels) == 1


@pytest.mark.parametrize(
    ("headers", "config", "kind"),
    [
        (JSON, CaptureConfig(), JsonCapture),
        ([(b"content-type", b"application/json; charset=utf-8")], CaptureConfig(), JsonCapture),
        ([(b"Content-Type", b"Application/JSON")], CaptureConfig(), JsonCapture),
        (SSE, CaptureConfig(), SseCapture),
        ([(b"content-type", b"text/html")], CaptureConfig(), None),
        ([(b"content-type", b"application/jsonl")], CaptureConfig(), None),
        ([(b"content-type", b"text/event-stream;charset=utf-8")], CaptureConfig(), SseCapture),
        ([], CaptureConfig(), None),
        (JSON + [(b"content-encoding", b"gzip")], CaptureConfig(), Decoded),
        (SSE + [(b"Content-Encoding", b"deflate")], CaptureConfig(), Decoded),
        (JSON + [(b"content-encoding", b"br")], CaptureConfig(), None),  # no decoder in the standard library
        (JSON + [(b"content-encoding", b"identity")], CaptureConfig(), JsonCapture),
        (JSON, CaptureConfig(enabled=False), None),
        (SSE, CaptureConfig(enabled=False), None),
    ],
)
def test_start_capture_by_content_type(
    headers: list[tuple[bytes, bytes]], config: CaptureConfig, kind: type | None
) -> None:
    capture = start_capture(headers, config)
    if kind is None:
        assert capture is None
    else:
        assert type(capture) is kind


# -- streams -----------------------------------------------------------------------------------------------

_CHUNK = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini"}
OPENAI_STREAM = sse(
    {**_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "usage": None},
    {**_CHUNK, "choices": [{"index": 0, "delta": {"content": "Héllo "}}], "usage": None},
    {**_CHUNK, "choices": [{"index": 0, "delta": {"content": "wörld 👋"}}], "usage": None},
    {**_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
    {**_CHUNK, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                                        "prompt_tokens_details": {"cached_tokens": 0}}},
    "[DONE]",
)  # fmt: skip
_MSG = {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001", "content": []}
ANTHROPIC_STREAM = sse(
    {"type": "message_start", "message": {**_MSG, "usage": {"input_tokens": 25, "cache_read_input_tokens": 10,
                                                            "cache_creation_input_tokens": 0, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Grüß "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "dich"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}},
    {"type": "message_stop"},
    names=True,
)  # fmt: skip
_GEM = {"modelVersion": "gemini-2.5-pro"}
GEMINI_STREAM = sse(
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "こんに"}]}}],
     "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3}, **_GEM},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "ちは"}]}}],
     "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 9}, **_GEM},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP"}],
     "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20}, **_GEM},
    sep=b"\r\n",
)  # fmt: skip
_RESP = {"id": "resp_2", "object": "response", "model": "gpt-5-mini-2025-08-07"}
RESPONSES_STREAM = sse(
    {"type": "response.created", "response": {**_RESP, "status": "in_progress", "error": None, "usage": None}},
    {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Bon"},
    {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "jour"},
    {"type": "response.completed", "response": {**_RESP, "status": "completed", "usage": {
        "input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1000}, "output_tokens": 300}}},
    names=True,
)  # fmt: skip

# (chunks, provider, model, uncached input, output, the tokens of each kind, operation, index of the first output event)
STREAM_CASES = [
    # The first event has an empty delta.
    (OPENAI_STREAM, "openai", "gpt-4o-mini", 12, 5, {"input": 12, "output": 5}, "chat", 1),
    # Input 25 outside the cache, 10 read from it. Output starts at content_block_delta.
    (
        ANTHROPIC_STREAM,
        "anthropic",
        "claude-haiku-4-5-20251001",
        25,
        15,
        {"input": 25, "cache_read": 10, "output": 15},
        "chat",
        3,
    ),
    (GEMINI_STREAM, "gcp.gemini", "gemini-2.5-pro", 8, 12, {"input": 8, "output": 12}, "generate_content", 0),
    (
        RESPONSES_STREAM,
        "openai",
        "gpt-5-mini-2025-08-07",
        1000,
        300,
        {"input": 1000, "cache_read": 1000, "output": 300},
        "chat",
        1,
    ),
]
STREAM_IDS = ["openai", "anthropic", "gemini", "responses"]


@pytest.mark.parametrize(
    ("chunks", "provider", "model", "n_in", "n_out", "kinds", "op", "first"), STREAM_CASES, ids=STREAM_IDS
)
def test_sse_stream(
    chunks: list[bytes],
    provider: str,
    model: str,
    n_in: int,
    n_out: int,
    kinds: dict[str, int],
    op: str,
    first: int,
) -> None:
    rec = recorder()
    times = [100.0 + 0.25 * (i + 1) for i in range(len(chunks))]
    run(rec, SSE, chunks, times=times)
    assert by_kind(rec, "llm_tokens_total") == kinds
    expected = {kind: reference_usd(model, provider, {kind: n}) for kind, n in kinds.items()}
    assert by_kind(rec, "llm_cost_usd_total") == pytest.approx(expected, abs=1e-12)
    assert requests(rec, provider, model) == 1
    assert ttft(rec, provider, model, "count") == 1
    assert ttft(rec, provider, model) == times[first] - START
    labels = {**llm(provider, model), "gen_ai_operation_name": op, "error_type": ""}
    assert value(rec, "gen_ai_client_operation_duration_seconds_sum", **labels) == 1.5
    assert capture_errors(rec, "sse") == 0 and missing_usage(rec) == {}


def test_sse_stream_without_usage_is_counted_as_missing_usage() -> None:
    # OpenAI without stream_options.include_usage: the call, its duration and TTFT count; no tokens, no cost.
    rec = recorder()
    chunks = [c for c in OPENAI_STREAM if b'"usage": {' not in c]
    run(rec, SSE, chunks, times=[100.5 + i for i in range(len(chunks))])
    assert requests(rec, "openai", "gpt-4o-mini") == 1
    assert ttft(rec, "openai", "gpt-4o-mini") == 1.5
    missing = {
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-4o-mini",
        "reason": "stream_without_usage",
    }
    assert missing_usage(rec) == {tuple(sorted(missing.items())): 1.0}
    for name in ("llm_tokens_total", "llm_cost_usd_total", "llm_exporter_unpriced_tokens_total"):
        assert series(rec, name) == {}, name
    assert series(rec, "gen_ai_client_token_usage_count") == {}


def test_json_answer_with_null_usage_is_counted_as_missing_usage() -> None:
    rec = recorder()
    run(rec, JSON, [json.dumps({**OPENAI_CHAT, "usage": None}).encode()])
    missing = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-2024-08-06"}
    assert missing_usage(rec) == {tuple(sorted({**missing, "reason": "response_without_usage"}.items())): 1.0}
    assert series(rec, "llm_tokens_total") == {} and series(rec, "llm_cost_usd_total") == {}
    # An error answer without usage is an error, not a missing usage.
    run(rec, JSON, [json.dumps({**OPENAI_CHAT, "usage": None}).encode()], status=500)
    assert requests(rec, "openai", "gpt-4o-2024-08-06", "error") == 1
    assert sum(missing_usage(rec).values()) == 1


def test_usage_whose_parts_exceed_the_total_is_counted_not_guessed() -> None:
    rec = recorder()
    wrong = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 150}}
    run(rec, JSON, [json.dumps({**OPENAI_CHAT, "usage": wrong}).encode()])
    missing = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-2024-08-06"}
    assert missing_usage(rec) == {tuple(sorted({**missing, "reason": "usage_inconsistent"}.items())): 1.0}
    assert series(rec, "llm_tokens_total") == {} and series(rec, "llm_cost_usd_total") == {}
    assert requests(rec, "openai", "gpt-4o-2024-08-06") == 1


def test_sse_error_event() -> None:
    rec = recorder()
    chunks = ANTHROPIC_STREAM[:4] + sse(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, names=True
    )
    run(rec, SSE, chunks)
    assert requests(rec, "anthropic", "claude-haiku-4-5-20251001", "error") == 1
    assert tokens(rec, "anthropic", "claude-haiku-4-5-20251001", "input") == 25
    labels = {**llm("anthropic", "claude-haiku-4-5-20251001"), "gen_ai_operation_name": "chat"}
    assert value(rec, "gen_ai_client_operation_duration_seconds_count", **labels, error_type="overloaded_error") == 1


def test_sse_responses_api_failure() -> None:
    rec = recorder()
    failed = {**_RESP, "status": "failed", "error": {"code": "server_error", "message": "boom"}, "usage": None}
    chunks = RESPONSES_STREAM[:2] + sse({"type": "response.failed", "response": failed}, names=True)
    run(rec, SSE, chunks)
    assert requests(rec, "openai", "gpt-5-mini-2025-08-07", "error") == 1
    labels = {**llm("openai", "gpt-5-mini-2025-08-07"), "gen_ai_operation_name": "chat", "error_type": "server_error"}
    assert value(rec, "gen_ai_client_operation_duration_seconds_count", **labels) == 1
    assert missing_usage(rec) == {}  # a failed call reports no usage: that is no news


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: hello\n\n", b"data: world\n\n"],  # plain-text events
        [b'data: {"user": 1, "status": "online"}\n\n', b'data: {"usage": {"cpu": 1}}\n\n'],  # some JSON feed
        [b": keep-alive\n\n", b"event: tick\ndata: 1\n\n"],
        [],
    ],
)
def test_sse_that_is_not_llm_output_is_ignored_silently(chunks: list[bytes]) -> None:
    rec = recorder()
    run(rec, SSE, chunks)
    assert list(rec.metrics.llm_requests.collect()[0].samples) == []
    assert capture_errors(rec, "sse") == 0


def test_sse_unreadable_usage_is_counted() -> None:
    rec = recorder()
    chunks = OPENAI_STREAM[:3] + [b'data: {"model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tok\n\n']
    run(rec, SSE, chunks)
    assert capture_errors(rec, "sse") == 1
    assert list(rec.metrics.llm_requests.collect()[0].samples) == []


def test_sse_line_over_the_cap_is_dropped_and_memory_stays_bounded() -> None:
    rec = recorder()
    cfg = CaptureConfig(max_json_bytes=1024)
    capture = start_capture(SSE, cfg)
    assert isinstance(capture, SseCapture)
    for chunk in OPENAI_STREAM[:2]:
        capture.feed(chunk, 100.5)
    # A 1 MB line without a newline, in 1 KB pieces: never buffered beyond the cap.
    for _ in range(1024):
        capture.feed(b"x" * 1024, 100.6)
        assert capture._tail_len <= 1024
    capture.feed(b"\n\n", 100.7)
    for chunk in OPENAI_STREAM[2:]:
        capture.feed(chunk, 100.8)
    rec.captured(capture.finish(START, END, 200))
    # The usage event came after the over-long line and was read: the call is complete.
    assert tokens(rec, "openai", "gpt-4o-mini", "output") == 5
    assert capture_errors(rec, "sse") == 0


def test_sse_over_long_line_that_hid_the_usage_is_counted() -> None:
    rec = recorder()
    cfg = CaptureConfig(max_json_bytes=100)
    run(rec, SSE, [*OPENAI_STREAM[:2], OPENAI_STREAM[4][:60], OPENAI_STREAM[4][60:]], config=cfg)
    assert capture_errors(rec, "sse") == 1


# -- chunk boundaries ------------------------------------------------------------------------------------------


def _totals(rec: Recorder, provider: str, model: str) -> tuple[Any, ...]:
    return (
        tokens(rec, provider, model, "input"),
        tokens(rec, provider, model, "output"),
        requests(rec, provider, model),
        ttft(rec, provider, model, "count"),
        capture_errors(rec, "sse"),
    )


@pytest.mark.parametrize(
    ("chunks", "provider", "model", "n_in", "n_out"), [c[:5] for c in STREAM_CASES], ids=STREAM_IDS
)
def test_sse_split_at_every_byte_boundary(
    chunks: list[bytes], provider: str, model: str, n_in: int, n_out: int
) -> None:
    """Every two-piece split and a byte-at-a-time feed give the same counts as whole events."""
    stream = b"".join(chunks)
    rec = recorder()
    runs = 0
    for cut in range(len(stream) + 1):
        run(rec, SSE, [stream[:cut], stream[cut:]])
        runs += 1
    run(rec, SSE, [stream[i : i + 1] for i in range(len(stream))])
    runs += 1
    assert _totals(rec, provider, model) == (n_in * runs, n_out * runs, runs, runs, 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(STREAM_CASES), cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=40))
def test_sse_any_chunking_gives_the_same_counts(case: tuple[Any, ...], cuts: list[int]) -> None:
    chunks, provider, model, n_in, n_out = case[:5]
    stream = b"".join(chunks)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    rec = recorder()
    run(rec, SSE, pieces)
    assert _totals(rec, provider, model) == (n_in, n_out, 1, 1, 0)


_LONG = sse({**_CHUNK, "choices": [{"index": 0, "delta": {"content": "x" * 300}}], "usage": None})
# Lines are at most 246 bytes, except the long content event (a cap of 250 drops it) and, with a cap of
# 200, the usage event too.
CAPPED_CASES = [
    (OPENAI_STREAM[:3] + _LONG + OPENAI_STREAM[3:], 250, (12, 5, 1, 1, 0)),
    (OPENAI_STREAM[:3] + _LONG + OPENAI_STREAM[3:], 200, (None, None, None, None, 1)),
    (_LONG + OPENAI_STREAM, 250, (12, 5, 1, 1, 0)),  # the first event is dropped: the next one decides
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CAPPED_CASES), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=40))
def test_sse_lines_over_the_cap_give_the_same_result_for_any_chunking(
    case: tuple[list[bytes], int, tuple[Any, ...]], cuts: list[int]
) -> None:
    chunks, cap, expected = case
    stream = b"".join(chunks)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    rec = recorder()
    run(rec, SSE, pieces, config=CaptureConfig(max_json_bytes=cap))
    assert _totals(rec, "openai", "gpt-4o-mini") == expected


def test_feed_and_finish_never_raise() -> None:
    rec = recorder()
    for headers in (JSON, SSE):
        capture = start_capture(headers, CaptureConfig())
        assert capture is not None
        capture.feed(b"\xff\xfe{garbage\r", 100.1)
        capture.feed(b'data: {"choices": [1, 2], "model": 5}\n\n', 100.2)
        capture.feed(b'data: {"choices": [], "model": "m", "usage": [1]}\n\n', 100.3)
        rec.captured(capture.finish(START, END, 200))


def test_a_compressed_body_is_inflated_in_bounded_pieces() -> None:
    big = json.dumps({**OPENAI_CHAT, "choices": [{"message": {"content": "x" * 200_000}}]}).encode()
    fed: list[int] = []

    class Sizes(JsonCapture):
        __slots__ = ()

        def feed(self, chunk: bytes, now: float) -> None:
            fed.append(len(chunk))
            super().feed(chunk, now)

    capture = Decoded(Sizes(CaptureConfig().max_json_bytes), gunzip(), whole=False)
    capture.feed(gzip.compress(big), START)
    assert max(fed) <= PIECE and sum(fed) == len(big)
    rec = recorder()
    rec.captured(capture.finish(START, END, 200))
    assert tokens(rec, "openai", "gpt-4o-2024-08-06", "cache_read") == 200


def test_a_compressed_body_that_is_no_answer_is_not_inflated_past_its_first_piece() -> None:
    listing = json.dumps([{"id": i, "name": "widget", "price": i * 3} for i in range(50_000)]).encode()
    inner = JsonCapture(CaptureConfig().max_json_bytes)
    capture = Decoded(inner, gunzip(), whole=True)
    capture.feed(gzip.compress(listing), START)
    assert capture.satisfied and inner._size == 0  # the reader never saw it
    assert capture.finish(START, END, 200) is None


@pytest.mark.parametrize(
    ("path", "first", "last", "model"),
    [
        ("/v1/chat/completions", b'{"model": "gpt-4o", "messages": []}', b"", "gpt-4o"),
        # The OpenAI SDK sends the messages first: a long prompt puts the model in the last chunk.
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"', b'}], "model":"o3"}', "o3"),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", b'{"contents": []}', b"", "gemini-2.5-flash"),
        (
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/converse",
            b"{}",
            b"",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        # A key inside a tool schema is an object, and a quote inside a string is escaped: neither names the model.
        ("/chat", b'{"tools": [{"parameters": {"properties": {"model": {"type": "string"}}}}]}', b"", None),
        ("/chat", b'{"messages": [{"content": "say \\"model\\": \\"x\\""}]}', b"", None),
        ("/models/123", b"", b"", None),
    ],
)
def test_the_request_names_its_model(path: str, first: bytes, last: bytes, model: str | None) -> None:
    assert requested_model(path, first, last or first) == model


def test_only_the_ends_of_a_large_request_body_are_searched() -> None:
    prompt = b'{"messages": [{"role": "user", "content": "' + b"x" * 1_000_000 + b'"}], '
    whole = prompt + b'"model": "gpt-4.1"}'
    assert requested_model("/v1/chat/completions", whole, whole) == "gpt-4.1"  # one chunk: its end is searched
    middle = b'{"a": 1, ' + b'"pad": "' + b"x" * 100_000 + b'", "model": "hidden", "b": "' + b"y" * 100_000 + b'"}'
    assert requested_model("/v1/chat/completions", middle, middle) is None  # neither end names it


@pytest.mark.parametrize(
    "doc",
    [
        b'{"usage": {"prompt_tokens": 512}, "model": "gpt-4o", "x": [1.5, -0.25e-3, true, null, "\\u00e9"]}',
        b" [1, 2] \n",
        b'{"a": NaN, "b": Infinity}',  # the standard library reads these; orjson refuses them
        b'"\\ud800"',  # a lone surrogate: the same
        b'{"a": 1e999}',
    ],
)
def test_the_fast_parser_reads_what_the_standard_library_reads(doc: bytes) -> None:
    got, expected = loads(doc), json.loads(doc)
    assert json.dumps(got) == json.dumps(expected)  # NaN != NaN: compare their text


@pytest.mark.parametrize("doc", [b'{"a": 1', b"", b"{'a': 1}", b"[" * 100_000])
def test_the_fast_parser_refuses_what_the_standard_library_refuses(doc: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)):
        json.loads(doc)
    with pytest.raises((ValueError, RecursionError)):
        loads(doc)


def test_an_answer_makes_its_call_in_the_field_order_of_llmcall() -> None:
    # _call makes an answer's LLMCall with one positional call, the counts in COUNT_FIELDS' order: a field
    # added or moved in LLMCall must move there too, or every captured count would land in the wrong field.
    assert [f.name for f in fields(LLMCall)] == [
        "model",
        "provider",
        "operation",
        *COUNT_FIELDS,
        "duration",
        "ttft",
        "error_type",
        "cost_usd",
        "tenant",
        "timestamp",
        "route",
        "response_model",
        "missing_usage",
        "finish_reasons",
        "tool_calls",
        "chunk_gaps",
    ]
