"""How answers end, the tools they ask for, and how fast streams come: finish reasons, tool calls, time per
output token and the gaps between chunks, from every input (response capture, the ``llm`` API, ``/track``).

Bodies come from the fake provider (tests/support/providers.py), asked with its magic models for tool
calls, truncated and filtered answers; stream times are set exactly (explicit clock values, or the
virtual clock through the middleware).
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from exporter import Config, LLMCall, Recorder, llm
from exporter.capture.response import JsonCapture, SseCapture
from exporter.config import TPOT_BUCKETS
from exporter.observations import CHUNK_GAP_BUCKETS, FINISH_REASONS, ChunkGaps, finish_reason

from ..support.asgi import call, http_scope, wrap
from ..support.metrics import series, value
from ..support.providers import FILTERED, TOOL_CALLS, TOOLS, TRUNCATED, answer_for, provider_app
from ..support.virtual_time import VirtualClock, virtual_time
from ..support.virtual_time import run as run_virtual

PROMPT = "what is the weather in Paris"
N_OUT = len(answer_for(PROMPT))  # the fake's output tokens for PROMPT
CAP = 1_048_576


def _request(provider: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    if provider == "openai":
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return "/v1/chat/completions", body
    if provider == "anthropic":
        body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": PROMPT}]}
        return "/v1/messages", {**body, "stream": stream}
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{method}", {"contents": [{"parts": [{"text": PROMPT}]}]}


@cache
def body(provider: str, model: str, stream: bool) -> bytes:
    """The fake provider's answer to PROMPT, as sent on the wire (uncompressed)."""
    path, request = _request(provider, model, stream)
    with TestClient(provider_app()) as client:
        response = client.post(path, json=request, headers={"accept-encoding": "identity"})
    assert response.status_code == 200
    return response.content


def read(provider: str, model: str, stream: bool, pieces: list[bytes] | None = None) -> LLMCall:
    """What response capture reads from the answer, fed in ``pieces`` (default: whole)."""
    data = body(provider, model, stream)
    capture = SseCapture(CAP) if stream else JsonCapture(CAP)
    for i, piece in enumerate(pieces or [data]):
        capture.feed(piece, 0.1 + i / 1024)
    found = capture.finish(0.0, 1.0, 200)
    assert isinstance(found, LLMCall), found
    return found


PROVIDERS = ("openai", "anthropic", "gemini")
# The normalised finish reason of each magic model's answer. Gemini says STOP for an answer that asks for
# functions: it is a stop there.
EXPECTED = {
    "openai": {"gpt-4o": "stop", TOOL_CALLS: "tool_calls", TRUNCATED: "length", FILTERED: "content_filter"},
    "anthropic": {"gpt-4o": "stop", TOOL_CALLS: "tool_calls", TRUNCATED: "length", FILTERED: "content_filter"},
    "gemini": {"gpt-4o": "stop", TOOL_CALLS: "stop", TRUNCATED: "length", FILTERED: "content_filter"},
}
CASES = [(p, m, s) for p in PROVIDERS for m in EXPECTED[p] for s in (False, True)]


@pytest.mark.parametrize(("provider", "model", "stream"), CASES)
def test_finish_reason_and_tool_calls_of_each_provider_answer(provider: str, model: str, stream: bool) -> None:
    found = read(provider, model, stream)
    assert found.finish_reasons == (EXPECTED[provider][model],)
    assert found.tool_calls == (TOOLS if model == TOOL_CALLS else ())
    assert found.output_tokens == N_OUT  # the usage is read as before


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *cuts})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stream_cut_at_every_byte_reads_the_same(provider: str) -> None:
    data = body(provider, TOOL_CALLS, True)
    whole = read(provider, TOOL_CALLS, True)
    for at in range(1, len(data)):
        found = read(provider, TOOL_CALLS, True, [data[:at], data[at:]])
        assert (found.finish_reasons, found.tool_calls, found.output_tokens) == (
            whole.finish_reasons,
            whole.tool_calls,
            whole.output_tokens,
        ), at


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PROVIDERS), st.lists(st.integers(min_value=1, max_value=20_000), max_size=40))
def test_a_stream_cut_anywhere_reads_the_same(provider: str, cuts: list[int]) -> None:
    data = body(provider, TOOL_CALLS, True)
    found = read(provider, TOOL_CALLS, True, _split(data, [c % len(data) for c in cuts]))
    assert found.tool_calls == TOOLS
    assert found.finish_reasons == (EXPECTED[provider][TOOL_CALLS],)


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events)


def _chat_chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": reason}
    return {"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [choice]}


def test_openai_tool_calls_count_distinct_indices_whatever_the_deltas_repeat() -> None:
    # Some servers repeat the name (or the id) in every delta of a call: each index is still one call.
    call_delta = {"index": 0, "id": "c0", "function": {"name": "lookup", "arguments": ""}}
    events = [
        _chat_chunk({"tool_calls": [call_delta]}),
        _chat_chunk({"tool_calls": [{**call_delta, "function": {"name": "lookup", "arguments": "{}"}}]}),
        _chat_chunk({"tool_calls": [{"index": 1, "id": "c1", "function": {"name": "lookup", "arguments": ""}}]}),
        _chat_chunk({}, "tool_calls"),
        {
            "object": "chat.completion.chunk",
            "model": "gpt-4o",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9},
        },
    ]
    capture = SseCapture(CAP)
    for i, event in enumerate(events):
        capture.feed(_sse(event), i / 8)
    found = capture.finish(0.0, 1.0, 200)
    assert isinstance(found, LLMCall)
    assert (found.tool_calls, found.finish_reasons) == (("lookup", "lookup"), ("tool_calls",))


def test_an_answer_without_a_finish_reason_records_none() -> None:
    events = [_chat_chunk({"content": "Hi"}), _chat_chunk({"content": " there"})]  # cut before the end
    capture = SseCapture(CAP)
    for i, event in enumerate(events):
        capture.feed(_sse(event), i / 8)
    found = capture.finish(0.0, 1.0, 200)
    assert isinstance(found, LLMCall)
    assert found.finish_reasons == () and found.missing_usage == "stream_without_usage"
    rec = Recorder(Config(), CollectorRegistry())
    rec.llm(found)
    assert series(rec, "llm_finish_reasons_total") == {}


# -- every provider's value, normalised ---------------------------------------------------------------------

# Each provider's documented values (OpenAI chat / Responses, Anthropic, Gemini's FinishReason, Bedrock's
# stopReason) and what they count as.
PROVIDER_VALUES = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
    "model_context_window_exceeded": "length",
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "LANGUAGE": "other",
    "OTHER": "other",
    "FINISH_REASON_UNSPECIFIED": "other",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "max_output_tokens": "length",
}


@pytest.mark.parametrize(("raw", "normalised"), PROVIDER_VALUES.items())
def test_each_provider_value_has_its_reason(raw: str, normalised: str) -> None:
    assert finish_reason(raw) == normalised


def test_the_installed_sdks_values_all_have_a_reason_of_their_own() -> None:
    # Every value the installed SDKs declare, but the catch-alls, maps to a reason of its own: a value added
    # by a new SDK release fails here rather than showing as "other" on a dashboard.
    import typing

    from anthropic.types import StopReason
    from google.genai import types
    from openai.types.chat.chat_completion import Choice

    gemini = {r.value for r in types.FinishReason}
    anthropic = set(typing.get_args(StopReason))
    openai = set(typing.get_args(Choice.model_fields["finish_reason"].annotation))
    assert {"end_turn", "refusal", "pause_turn"} <= anthropic and {"stop", "function_call"} <= openai
    unmapped = {v for v in gemini | anthropic | openai if finish_reason(v) == "other"}
    assert unmapped == {"FINISH_REASON_UNSPECIFIED", "OTHER", "LANGUAGE", "NO_IMAGE", "IMAGE_OTHER", "pause_turn"}
    assert set(FINISH_REASONS) == {"stop", "length", "tool_calls", "content_filter", "error", "other"}


def test_a_value_no_provider_documents_is_other_from_answers_and_refused_from_callers() -> None:
    assert finish_reason("brand_new_reason") == "other"
    with pytest.raises(llm.InvalidValueError, match="finish_reasons"):
        llm.record(
            "gpt-4o", "openai", finish_reasons="brand_new_reason", recorder=Recorder(Config(), CollectorRegistry())
        )


# -- time per output token and the gaps between chunks ---------------------------------------------------------


def _stream(times: list[float], n_out: int) -> LLMCall:
    """An OpenAI stream: a role chunk, a content chunk at each of ``times``, the finish and usage chunks."""
    capture = SseCapture(CAP)
    capture.feed(_sse(_chat_chunk({"role": "assistant", "content": ""})), 0.0625)
    for t in times:
        capture.feed(_sse(_chat_chunk({"content": "w"})), t)
    capture.feed(_sse(_chat_chunk({}, "stop")), times[-1])
    usage = {"prompt_tokens": 4, "completion_tokens": n_out}
    capture.feed(_sse({"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [], "usage": usage}), times[-1])
    found = capture.finish(0.0, 2.0, 200)
    assert isinstance(found, LLMCall)
    return found


def _bucket(rec: Recorder, name: str, le: float) -> float | None:
    return value(rec, f"{name}_bucket", gen_ai_provider_name="openai", le=str(le))


GAP = "gen_ai_client_operation_time_per_output_chunk_seconds"
TPOT = "llm_time_per_output_token_seconds"


def test_a_stream_with_known_chunk_times_gives_exact_gaps_and_time_per_output_token() -> None:
    # First token at 0.5 s; 8 more content chunks 1/128 s apart (7.8 ms: the le=0.01 bucket), then one after
    # 0.25 s (le=0.32); the stream ends at 2.0 s with 33 output tokens: (2.0 - 0.5) / 32 s per token.
    times = [0.5 + k / 128 for k in range(9)] + [0.5 + 8 / 128 + 0.25]
    found = _stream(times, 33)
    assert found.ttft == 0.5 and found.duration == 2.0
    assert found.chunk_gaps is not None and len(found.chunk_gaps) == 9
    rec = Recorder(Config(), CollectorRegistry())
    rec.llm(found)
    assert value(rec, f"{GAP}_count", gen_ai_provider_name="openai") == 9
    assert value(rec, f"{GAP}_sum", gen_ai_provider_name="openai") == 8 / 128 + 0.25
    assert _bucket(rec, GAP, 0.005) == 0
    assert _bucket(rec, GAP, 0.01) == 8
    assert _bucket(rec, GAP, 0.16) == 8
    assert _bucket(rec, GAP, 0.32) == 9
    assert value(rec, f"{TPOT}_count", gen_ai_provider_name="openai") == 1
    assert value(rec, f"{TPOT}_sum", gen_ai_provider_name="openai") == 1.5 / 32
    assert _bucket(rec, TPOT, 0.025) == 0  # 46.9 ms
    assert _bucket(rec, TPOT, 0.05) == 1


def test_a_call_seen_before_records_its_answer_signals_as_the_first_did() -> None:
    # The first call of a kind makes its row; the next ones go through it (the recorder's fast path) and must
    # record the finish reasons, tool calls, time per output token and gaps as the first one did.
    rec = Recorder(Config(), CollectorRegistry())
    times = [0.5 + k / 128 for k in range(9)] + [0.5 + 8 / 128 + 0.25]
    for _ in range(3):
        found = _stream(times, 33)
        found.tool_calls = ["search", "search", "book"]
        rec.llm(found)
    assert len(rec._llm_rows) == 1
    assert value(rec, "llm_finish_reasons_total", gen_ai_provider_name="openai", reason="stop") == 3
    assert value(rec, "llm_tool_calls_total", gen_ai_tool_name="search") == 6
    assert value(rec, "llm_tool_calls_total", gen_ai_tool_name="book") == 3
    assert value(rec, f"{TPOT}_count", gen_ai_provider_name="openai") == 3
    assert value(rec, f"{GAP}_count", gen_ai_provider_name="openai") == 27
    assert _bucket(rec, GAP, 0.01) == 24


def test_no_time_per_output_token_without_usage_or_with_one_token() -> None:
    rec = Recorder(Config(), CollectorRegistry())
    rec.llm(_stream([0.5, 0.75], 1))  # one token: no time between tokens
    rec.llm(LLMCall("gpt-4o", "openai", duration=2.0, ttft=0.5, missing_usage="stream_without_usage"))
    rec.llm(LLMCall("gpt-4o", "openai", output_tokens=40, duration=2.0, ttft=0.5, error_type="timeout"))
    rec.llm(LLMCall("gpt-4o", "openai", output_tokens=40, duration=2.0))  # not a stream
    assert series(rec, f"{TPOT}_count") == {}
    assert value(rec, f"{GAP}_count") == 1  # the one-token stream's gap is a gap all the same


def test_the_middleware_times_a_stream_on_the_virtual_clock() -> None:
    # Chunks 1/64 s apart on the virtual clock: the middleware's own clock readings place every gap.
    chunks = [_sse(_chat_chunk({"role": "assistant", "content": ""}))]
    chunks += [_sse(_chat_chunk({"content": f" w{i}"})) for i in range(6)]
    chunks += [_sse(_chat_chunk({}, "length"))]
    usage = {"prompt_tokens": 4, "completion_tokens": 11}
    chunks += [_sse({"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [], "usage": usage})]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i, chunk in enumerate(chunks):
            if 1 <= i <= 6:
                await asyncio.sleep(1 / 64)  # before the first token and each content chunk after it
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await asyncio.sleep(0.25)
        await send({"type": "http.response.body", "body": b""})

    middleware, _ = wrap(app)
    clock = VirtualClock()
    with virtual_time(clock) as loop:
        run_virtual(loop, call(middleware, http_scope("/chat", "POST")))
    rec = middleware.recorder
    assert value(rec, f"{GAP}_count") == 5 and value(rec, f"{GAP}_sum") == 5 / 64
    assert value(rec, f"{GAP}_bucket", le="0.01") == 0 and value(rec, f"{GAP}_bucket", le="0.02") == 5
    # First token at 2/64 s, the end at 7/64 + 0.25 s: (5/64 + 0.25) / 10 s per token.
    assert value(rec, f"{TPOT}_sum") == pytest.approx((5 / 64 + 0.25) / 10, abs=1e-12)
    assert value(rec, "llm_finish_reasons_total", reason="length") == 1


def test_chunk_gaps_bin_as_the_histogram_does() -> None:
    gaps = ChunkGaps.of([*CHUNK_GAP_BUCKETS, 5.0])
    assert gaps.counts == [1] * (len(CHUNK_GAP_BUCKETS) + 1)  # a bound is in its own bucket (le is <=)
    assert TPOT_BUCKETS[0] == 0.001 and TPOT_BUCKETS[-1] == 1.0


# -- the recorder's families, through the middleware ------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_middleware_counts_tool_calls_and_finish_reasons(provider: str, stream: bool) -> None:
    data = body(provider, TOOL_CALLS, stream)
    ctype = b"text/event-stream" if stream else b"application/json"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})
        for i in range(0, len(data), 97):
            await send({"type": "http.response.body", "body": data[i : i + 97], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    middleware, _ = wrap(app)
    asyncio.run(call(middleware, http_scope("/chat", "POST")))
    rec = middleware.recorder
    tools = series(rec, "llm_tool_calls_total")
    assert {dict(k)["gen_ai_tool_name"]: v for k, v in tools.items()} == {"get_weather": 1, "get_time": 1}
    reasons = series(rec, "llm_finish_reasons_total")
    assert {dict(k)["reason"]: v for k, v in reasons.items()} == {EXPECTED[provider][TOOL_CALLS]: 1}


def test_tool_names_are_capped() -> None:
    rec = Recorder(Config(label_cap=3), CollectorRegistry())
    rec.llm(LLMCall("gpt-4o", "openai", tool_calls=tuple(f"tool{i}" for i in range(5))))
    tools = {dict(k)["gen_ai_tool_name"]: v for k, v in series(rec, "llm_tool_calls_total").items()}
    assert tools == {"tool0": 1, "tool1": 1, "tool2": 1, "__overflow__": 2}
    assert value(rec, "llm_exporter_label_overflow_total", label="gen_ai_tool_name") == 2


# -- the llm API --------------------------------------------------------------------------------------------------


def test_an_llm_call_block_reads_finish_reason_and_tools_from_the_responses_it_is_given() -> None:
    rec = Recorder(Config(), CollectorRegistry())
    with llm.call("claude-sonnet-4-5", recorder=rec) as c:
        c.usage(json.loads(body("anthropic", TOOL_CALLS, False)))
    assert value(rec, "llm_finish_reasons_total", reason="tool_calls") == 1
    assert value(rec, "llm_tool_calls_total", gen_ai_tool_name="get_weather") == 1
    assert value(rec, "llm_tool_calls_total", gen_ai_tool_name="get_time") == 1


def test_an_llm_call_block_over_a_stream_times_its_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(Config(), CollectorRegistry())
    clock = VirtualClock(10.0)
    monkeypatch.setattr("exporter.llm.time.perf_counter", clock)
    with llm.call("gpt-4o", "openai", recorder=rec) as c:
        clock.now += 0.5
        for _ in range(4):
            c.chunk()  # the first token at 0.5 s, then three gaps of 1/8 s
            clock.now += 1 / 8
        c.output_tokens = 9
        c.finish_reasons = "length"
        c.tool_calls = ["search"]
    # The block ends at 0.5 + 4/8 s: (1.0 - 0.5) / 8 per token.
    assert value(rec, f"{TPOT}_sum") == 0.5 / 8
    assert value(rec, f"{GAP}_count") == 3 and value(rec, f"{GAP}_sum") == 3 / 8
    assert value(rec, "llm_finish_reasons_total", reason="length") == 1
    assert value(rec, "llm_tool_calls_total", gen_ai_tool_name="search") == 1


def test_llm_record_takes_every_new_field() -> None:
    rec = Recorder(Config(), CollectorRegistry())
    llm.record(
        "gemini-2.5-flash",
        "gcp.gemini",
        output_tokens=21,
        duration=3.0,
        ttft=1.0,
        finish_reasons=["MAX_TOKENS", "stop"],
        tool_calls=["a", "a"],
        chunk_gaps=[0.004, 0.004, 2.0],
        recorder=rec,
    )
    assert value(rec, f"{TPOT}_sum") == 0.1
    assert value(rec, "llm_finish_reasons_total", reason="length") == 1
    assert value(rec, "llm_finish_reasons_total", reason="stop") == 1
    assert value(rec, "llm_tool_calls_total", gen_ai_tool_name="a") == 2
    assert value(rec, f"{GAP}_bucket", le="0.005") == 2 and value(rec, f"{GAP}_bucket", le="+Inf") == 3


@pytest.mark.parametrize(
    ("field", "given", "message"),
    [
        ("tool_calls", "search", "expected a list of tool names, one per tool call"),
        ("tool_calls", ["search", ""], "expected a list of tool names: expected a non-empty string"),
        ("chunk_gaps", [0.1, -1], "expected a list of seconds between content chunks: expected a number >= 0"),
        ("finish_reasons", 3, "expected one of stop, length, tool_calls, content_filter, error, other"),
    ],
)
def test_llm_record_refuses_wrong_values_naming_the_field(field: str, given: Any, message: str) -> None:
    with pytest.raises(llm.InvalidValueError) as raised:
        llm.record("gpt-4o", **{field: given}, recorder=Recorder(Config(), CollectorRegistry()))
    assert raised.value.field == field and message in str(raised.value)
