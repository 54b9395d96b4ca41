"""The ``llm`` API: context manager, decorator, one-shot record, signals, validation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from exporter import PrometheusMiddleware, llm
from exporter.config import Config
from exporter.context import reset_recorder, use_recorder
from exporter.llm import InvalidValueError
from exporter.observations import TOKEN_KINDS
from exporter.recorder import Recorder
from exporter.sinks import Sink

from ..support.metrics import series, value


class Evaluations(Sink):
    """Keeps what the recorder hands to sinks, to check timestamps."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float, float]] = []

    def on_evaluation(self, name: str, model: str, score: float, ts: float) -> None:
        self.seen.append((name, model, score, ts))


@pytest.fixture
def rec() -> Iterator[Recorder]:
    """A fresh recorder made current, as the middleware does for a request."""
    recorder = Recorder(Config(), CollectorRegistry())
    token = use_recorder(recorder)
    yield recorder
    reset_recorder(token)


def llm_labels(provider: str, model: str, response: str = "") -> dict[str, str]:
    return {"gen_ai_provider_name": provider, "gen_ai_request_model": model, "gen_ai_response_model": response}


def tokens(rec: Recorder, provider: str, model: str, kind: str, response: str = "") -> float | None:
    return value(rec, "llm_tokens_total", **llm_labels(provider, model, response), gen_ai_token_type=kind)


def usd(
    rec: Recorder, provider: str, model: str, kind: str, response: str = "", source: str = "estimated"
) -> float | None:
    labels = llm_labels(provider, model, response)
    return value(rec, "llm_cost_usd_total", **labels, gen_ai_token_type=kind, cost_source=source)


def missing(rec: Recorder, provider: str, model: str, reason: str) -> float | None:
    labels = {"gen_ai_provider_name": provider, "gen_ai_request_model": model, "reason": reason}
    return value(rec, "llm_exporter_missing_usage_total", **labels)


def duration_count(
    rec: Recorder, provider: str, model: str, error: str = "", op: str = "chat", response: str = ""
) -> float | None:
    return value(
        rec,
        "gen_ai_client_operation_duration_seconds_count",
        gen_ai_operation_name=op,
        **llm_labels(provider, model, response),
        error_type=error,
    )


OPENAI_RESPONSE = {
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}],
    "usage": {"prompt_tokens": 2000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 1000}},
}


# -- llm.call -------------------------------------------------------------------------------------------------


def test_call_context_manager_sets_tokens(rec: Recorder) -> None:
    with llm.call("gpt-4o", provider="openai") as c:
        c.input_tokens = 1000
        c.output_tokens = 200
        c.cached_input_tokens = 400
    # The kinds: 600 uncached input, 400 cache reads (input_tokens includes them), 200 output.
    assert tokens(rec, "openai", "gpt-4o", "input") == 600
    assert tokens(rec, "openai", "gpt-4o", "cache_read") == 400
    assert tokens(rec, "openai", "gpt-4o", "output") == 200
    # 600 x 2.50 + 400 x 1.25 = 2000 micro-dollars; 200 x 10.00
    assert usd(rec, "openai", "gpt-4o", "input") == pytest.approx(0.0015, abs=1e-12)
    assert usd(rec, "openai", "gpt-4o", "cache_read") == pytest.approx(0.0005, abs=1e-12)
    assert c.cost is not None and c.cost.output_usd == pytest.approx(0.002, abs=1e-12)
    assert c.cost.total_usd == pytest.approx(0.004, abs=1e-12) and c.cost.source == "estimated"
    assert value(rec, "llm_requests_total", **llm_labels("openai", "gpt-4o"), outcome="ok") == 1
    assert duration_count(rec, "openai", "gpt-4o") == 1


def test_call_times_the_body(rec: Recorder) -> None:
    with llm.call("gpt-4o", provider="openai"):
        time.sleep(0.05)
    total = value(
        rec,
        "gen_ai_client_operation_duration_seconds_sum",
        gen_ai_operation_name="chat",
        **llm_labels("openai", "gpt-4o"),
        error_type="",
    )
    assert total is not None and total >= 0.05


def test_call_records_the_exception_class_and_reraises(rec: Recorder) -> None:
    with pytest.raises(TimeoutError), llm.call("claude-haiku-4-5", provider="anthropic") as c:
        c.input_tokens = 10
        raise TimeoutError("upstream took too long")
    assert missing(rec, "anthropic", "claude-haiku-4-5", "response_without_usage") is None
    assert value(rec, "llm_requests_total", **llm_labels("anthropic", "claude-haiku-4-5"), outcome="error") == 1
    assert duration_count(rec, "anthropic", "claude-haiku-4-5", error="TimeoutError") == 1
    assert tokens(rec, "anthropic", "claude-haiku-4-5", "input") == 10


def test_async_call_with_usage_and_first_token(rec: Recorder) -> None:
    async def handler() -> None:
        async with llm.call("gpt-4o-mini", provider="openai", operation="chat") as c:
            await asyncio.sleep(0.01)
            c.first_token()
            c.first_token()  # only the first one counts
            assert c.usage(OPENAI_RESPONSE) is True

    asyncio.run(handler())
    # The model asked for, and the one that answered (which prices the call).
    answered = ("openai", "gpt-4o-mini")
    dated = "gpt-4o-mini-2024-07-18"
    assert tokens(rec, *answered, "input", dated) == 1000
    assert tokens(rec, *answered, "cache_read", dated) == 1000
    assert tokens(rec, *answered, "output", dated) == 100
    # 1000 x 0.15 + 1000 x 0.075 = 225 micro-dollars
    assert usd(rec, *answered, "input", dated) == pytest.approx(0.00015, abs=1e-12)
    assert usd(rec, *answered, "cache_read", dated) == pytest.approx(0.000075, abs=1e-12)
    labels = llm_labels(*answered, dated)
    assert value(rec, "gen_ai_client_time_to_first_token_seconds_count", **labels) == 1
    ttft = value(rec, "gen_ai_client_time_to_first_token_seconds_sum", **labels)
    assert ttft is not None and ttft >= 0.01


def test_async_call_error(rec: Recorder) -> None:
    async def handler() -> None:
        async with llm.call("gemini-2.5-flash", provider="gcp.gemini"):
            raise ConnectionError

    with pytest.raises(ConnectionError):
        asyncio.run(handler())
    assert duration_count(rec, "gcp.gemini", "gemini-2.5-flash", error="ConnectionError") == 1


def test_usage_reads_sdk_objects_and_infers_the_provider(rec: Recorder) -> None:
    # Attribute access, as the SDKs' response objects offer: Anthropic's Message, Gemini's (snake_case) response.
    claude = SimpleNamespace(
        type="message",
        model="claude-sonnet-4-5",
        usage=SimpleNamespace(
            input_tokens=100, output_tokens=50, cache_read_input_tokens=900, cache_creation_input_tokens=None
        ),
    )
    with llm.call("claude-sonnet-4-5") as c:
        assert c.usage(claude)
    assert (c.input_tokens, c.output_tokens, c.cached_input_tokens) == (1000, 50, 900)
    assert tokens(rec, "anthropic", "claude-sonnet-4-5", "input", "claude-sonnet-4-5") == 100
    assert tokens(rec, "anthropic", "claude-sonnet-4-5", "cache_read", "claude-sonnet-4-5") == 900

    gemini = SimpleNamespace(
        candidates=[],
        model_version="gemini-2.5-pro",
        usage_metadata=SimpleNamespace(
            prompt_token_count=70, candidates_token_count=30, thoughts_token_count=None, cached_content_token_count=None
        ),
    )
    with llm.call("gemini-2.5-pro") as c:
        assert c.usage(gemini)
    assert tokens(rec, "gcp.gemini", "gemini-2.5-pro", "output", "gemini-2.5-pro") == 30


def test_usage_accumulates_stream_events(rec: Recorder) -> None:
    events = [
        {"type": "message_start", "message": {"model": "claude-haiku-4-5", "usage": {"input_tokens": 12}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "message_delta", "usage": {"output_tokens": 7}},
    ]
    with llm.call("claude-haiku-4-5", provider="anthropic") as c:
        for event in events:
            c.usage(event)
    assert tokens(rec, "anthropic", "claude-haiku-4-5", "input", "claude-haiku-4-5") == 12
    assert tokens(rec, "anthropic", "claude-haiku-4-5", "output", "claude-haiku-4-5") == 7


def test_a_stream_that_never_shows_usage_is_counted_as_missing(rec: Recorder) -> None:
    # OpenAI chunks without stream_options.include_usage: the call counts, its tokens are not made up.
    chunks = [
        {"object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06", "choices": [{"delta": {"content": "a"}}]},
        {"object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06", "choices": [{"delta": {}}]},
    ]
    with llm.call("gpt-4o", provider="openai") as c:
        for chunk in chunks:
            assert c.usage(chunk) is False
    assert c.cost is None
    assert missing(rec, "openai", "gpt-4o", "stream_without_usage") == 1
    assert value(rec, "llm_requests_total", **llm_labels("openai", "gpt-4o", "gpt-4o-2024-08-06"), outcome="ok") == 1
    for name in ("llm_tokens_total", "llm_cost_usd_total", "llm_exporter_unpriced_tokens_total"):
        assert series(rec, name) == {}, name


def test_usage_reads_every_kind_the_provider_reports(rec: Recorder) -> None:
    response = {
        "object": "chat.completion",
        "model": "gpt-4o-audio-preview-2024-12-17",
        "choices": [],
        "usage": {
            "prompt_tokens": 3000,
            "completion_tokens": 900,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 1200},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 700},
        },
    }
    with llm.call("gpt-4o-audio-preview", provider="openai") as c:
        assert c.usage(response)
    got = {k: tokens(rec, "openai", "gpt-4o-audio-preview", k, response["model"]) for k in TOKEN_KINDS}
    expected = dict.fromkeys(TOKEN_KINDS)
    expected.update(input=776, cache_read=1024, input_audio=1200, output=200, output_audio=700)
    assert got == expected


def test_usage_of_something_else_leaves_counts_alone(rec: Recorder) -> None:
    with llm.call("gpt-4o", provider="openai") as c:
        c.input_tokens = 5
        assert c.usage({"text": "no usage here"}) is False
        assert c.usage("plain string") is False
    assert tokens(rec, "openai", "gpt-4o", "input") == 5


def test_explicit_recorder_wins_over_the_current_one(rec: Recorder) -> None:
    other = Recorder(Config(), CollectorRegistry())
    with llm.call("gpt-4o", provider="openai", recorder=other) as c:
        c.output_tokens = 3
    assert tokens(other, "openai", "gpt-4o", "output") == 3
    assert tokens(rec, "openai", "gpt-4o", "output") is None


def test_cost_given_by_the_caller_is_used_as_is(rec: Recorder) -> None:
    with llm.call("acme-13b", provider="acme") as c:
        c.input_tokens = 300
        c.output_tokens = 100
        c.cost_usd = 0.004
    # One figure, as given: not split into kinds it does not tell, and marked as the provider's.
    assert usd(rec, "acme", "acme-13b", "unsplit", source="provider") == 0.004
    assert [dict(labels)["gen_ai_token_type"] for labels in series(rec, "llm_cost_usd_total")] == ["unsplit"]
    assert c.cost is not None and (c.cost.total_usd, c.cost.source, c.cost.input_usd) == (0.004, "provider", None)
    assert tokens(rec, "acme", "acme-13b", "input") == 300
    assert series(rec, "llm_exporter_unpriced_tokens_total") == {}


# -- llm.track ------------------------------------------------------------------------------------------------


def test_track_sync_function_takes_usage_from_the_result(rec: Recorder) -> None:
    @llm.track(model="gpt-4o-mini", provider="openai")
    def ask(question: str) -> dict[str, Any]:
        return OPENAI_RESPONSE

    assert ask("hi") is OPENAI_RESPONSE
    assert ask.__name__ == "ask"
    assert tokens(rec, "openai", "gpt-4o-mini", "input", "gpt-4o-mini-2024-07-18") == 1000
    assert duration_count(rec, "openai", "gpt-4o-mini", response="gpt-4o-mini-2024-07-18") == 1


def test_track_async_function_records_errors(rec: Recorder) -> None:
    @llm.track(model="o3", provider="openai", operation="chat")
    async def ask(fail: bool) -> dict[str, Any]:
        if fail:
            raise ValueError("bad prompt")
        return {"model": "o3", "usage": {"prompt_tokens": 10, "completion_tokens": 20}}

    asyncio.run(ask(False))
    with pytest.raises(ValueError, match="bad prompt"):
        asyncio.run(ask(True))
    assert value(rec, "llm_requests_total", **llm_labels("openai", "o3", "o3"), outcome="ok") == 1
    assert value(rec, "llm_requests_total", **llm_labels("openai", "o3"), outcome="error") == 1
    assert duration_count(rec, "openai", "o3", error="ValueError") == 1
    assert tokens(rec, "openai", "o3", "output", "o3") == 20


def test_track_generators_time_the_whole_stream(rec: Recorder) -> None:
    chunks = [
        {"model": "gpt-4o", "choices": [{"delta": {"content": "a"}}]},
        {"model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 1}},
    ]

    @llm.track(model="gpt-4o")
    def stream() -> Iterator[dict[str, Any]]:
        yield from chunks

    @llm.track(model="gpt-4o")
    async def astream() -> AsyncIterator[dict[str, Any]]:
        for chunk in chunks:
            yield chunk

    async def consume() -> list[dict[str, Any]]:
        return [c async for c in astream()]

    assert list(stream()) == chunks
    assert asyncio.run(consume()) == chunks
    assert tokens(rec, "openai", "gpt-4o", "input", "gpt-4o") == 8
    labels = llm_labels("openai", "gpt-4o", "gpt-4o")
    assert value(rec, "gen_ai_client_time_to_first_token_seconds_count", **labels) == 2


# -- llm.record -------------------------------------------------------------------------------------------------


def test_record_one_shot(rec: Recorder) -> None:
    cost = llm.record(
        "gemini-2.5-flash",
        provider="gcp.gemini",
        operation="generate_content",
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cached_input_tokens=500_000,
        duration=2.5,
        ttft=0.4,
    )
    # 500k x 0.30 + 500k x 0.03; 1M x 2.50
    assert cost is not None
    assert cost.input_usd == pytest.approx(0.165, rel=1e-12)
    assert cost.output_usd == pytest.approx(2.5, rel=1e-12)
    labels = llm_labels("gcp.gemini", "gemini-2.5-flash")
    assert value(rec, "gen_ai_client_time_to_first_token_seconds_sum", **labels) == 0.4
    assert (
        value(
            rec,
            "gen_ai_client_operation_duration_seconds_sum",
            gen_ai_operation_name="generate_content",
            **labels,
            error_type="",
        )
        == 2.5
    )


def test_record_unknown_model(rec: Recorder) -> None:
    assert llm.record("acme-13b", provider="acme", input_tokens=30, output_tokens=12) is None
    assert tokens(rec, "acme", "acme-13b", "input") == 30
    assert value(rec, "llm_exporter_unpriced_tokens_total", **llm_labels("acme", "acme-13b")) == 42
    assert series(rec, "llm_cost_usd_total") == {}


def test_record_prices_the_model_that_answered(rec: Recorder) -> None:
    # gpt-4o-2024-05-13 has a price of its own (5 USD per 1M input), not gpt-4o's (2.50).
    cost = llm.record("gpt-4o", provider="openai", input_tokens=1000, response_model="gpt-4o-2024-05-13")
    assert cost is not None and cost.total_usd == pytest.approx(0.005, abs=1e-12)
    assert usd(rec, "openai", "gpt-4o", "input", "gpt-4o-2024-05-13") == pytest.approx(0.005, abs=1e-12)


def test_record_checks_that_parts_fit_their_totals(rec: Recorder) -> None:
    with pytest.raises(InvalidValueError, match="cache_write_1h_tokens: expected at most cache_write_tokens"):
        llm.record("m", input_tokens=10, cache_write_tokens=2, cache_write_1h_tokens=3)
    message = "input_tokens: expected at least cached_input_tokens [+] cache_write_tokens [+] .* [(]9[)]"
    with pytest.raises(InvalidValueError, match=message):
        llm.record("m", input_tokens=8, cached_input_tokens=5, cache_write_tokens=4)
    # Audio read from the cache is in both the cache reads and the audio input: counted once.
    llm.record("m", input_tokens=10, cached_input_tokens=6, input_audio_tokens=6, cache_audio_read_tokens=2)
    with pytest.raises(InvalidValueError, match="output_reasoning_tokens: expected at most output_tokens"):
        llm.record("m", output_tokens=1, output_reasoning_tokens=2)
    # Only the call that fits was recorded: 4 text and 2 audio cache reads, 4 audio tokens that were not.
    kinds = {dict(labels)["gen_ai_token_type"]: n for labels, n in series(rec, "llm_tokens_total").items()}
    assert kinds == {"cache_read": 4, "input_audio": 4, "cache_audio_read": 2}


def test_record_with_error_type(rec: Recorder) -> None:
    llm.record("gpt-4o", provider="openai", duration=0.1, error_type="RateLimitError")
    assert (
        value(rec, "llm_requests_total", http_route="__none__", **llm_labels("openai", "gpt-4o"), outcome="error") == 1
    )
    assert duration_count(rec, "openai", "gpt-4o", error="RateLimitError") == 1


# -- signals --------------------------------------------------------------------------------------------------


def test_signals(rec: Recorder) -> None:
    llm.confidence(0.9, label="booking", model="intent-v2")
    llm.confidence(0.5, label="booking", model="intent-v2")
    llm.evaluation("faithfulness", 0.75, model="gpt-4o")
    llm.feedback(4, model="gpt-4o")
    llm.event("appointment_requested")
    llm.event("appointment_requested", count=2)
    llm.feature("prompt_language", "de")
    assert value(rec, "llm_confidence_sum", gen_ai_request_model="intent-v2", label="booking") == 1.4
    assert value(rec, "llm_predictions_total", gen_ai_request_model="intent-v2", label="booking") == 2
    assert value(rec, "llm_evaluation_score_sum", evaluation="faithfulness", gen_ai_request_model="gpt-4o") == 0.75
    assert value(rec, "llm_feedback_rating_sum", gen_ai_request_model="gpt-4o") == 4
    assert value(rec, "llm_events_total", event="appointment_requested") == 3


def test_late_evaluation_gets_the_time_of_its_call(rec: Recorder) -> None:
    sink = Evaluations()
    rec.add_sink(sink)
    call_time = 1_700_000_000.0
    llm.record("gpt-4o", provider="openai", input_tokens=1, timestamp=call_time, request_id="req-1")
    with llm.call("gpt-4o", provider="openai", request_id="req-2"):
        pass
    before = time.time()
    llm.evaluation("answer_relevancy", 0.9, model="gpt-4o", request_id="req-1")
    llm.evaluation("answer_relevancy", 0.8, request_id="req-2")
    llm.evaluation("answer_relevancy", 0.7, timestamp=datetime.fromtimestamp(1_600_000_000, tz=UTC))
    llm.evaluation("answer_relevancy", 0.6, request_id="never-seen")
    assert sink.seen[0] == ("answer_relevancy", "gpt-4o", 0.9, call_time)
    assert sink.seen[1][3] <= before
    assert sink.seen[2][3] == 1_600_000_000.0
    assert sink.seen[3][3] >= before  # unknown id: recorded as of now


def test_request_id_memory_is_bounded() -> None:
    times = llm._RequestTimes(3)
    for i in range(5):
        times.put(f"r{i}", float(i))
    assert [times.get(f"r{i}") for i in range(5)] == [None, None, 2.0, 3.0, 4.0]


# -- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "field"),
    [
        (lambda: llm.confidence(1.2), "value"),
        (lambda: llm.confidence(-0.1), "value"),
        (lambda: llm.confidence(float("nan")), "value"),
        (lambda: llm.confidence("high"), "value"),  # type: ignore[arg-type]
        (lambda: llm.evaluation("faithfulness", 1.5), "score"),
        (lambda: llm.evaluation("", 0.5), "name"),
        (lambda: llm.evaluation("x", 0.5, timestamp=-5), "timestamp"),
        (lambda: llm.feedback(0), "rating"),
        (lambda: llm.feedback(6), "rating"),
        (lambda: llm.feedback(True), "rating"),
        (lambda: llm.event(""), "name"),
        (lambda: llm.event("x", count=0), "count"),
        (lambda: llm.feature("f", float("inf")), "value"),
        (lambda: llm.feature("f", None), "value"),  # type: ignore[arg-type]
        (lambda: llm.record("", input_tokens=1), "model"),
        (lambda: llm.record("m", input_tokens=-1), "input_tokens"),
        (lambda: llm.record("m", output_tokens=1.5), "output_tokens"),  # type: ignore[arg-type]
        (lambda: llm.record("m", cached_input_tokens=True), "cached_input_tokens"),  # type: ignore[arg-type]
        (lambda: llm.record("m", input_tokens=10, cached_input_tokens=11), "cached_input_tokens"),
        (lambda: llm.record("m", output_reasoning_tokens=-1), "output_reasoning_tokens"),
        (lambda: llm.record("m", input_tokens=4, input_audio_tokens=5), "input_audio_tokens"),
        (
            lambda: llm.record("m", input_tokens=4, input_image_tokens=3, cache_image_read_tokens=4),
            "cache_image_read_tokens",
        ),
        (lambda: llm.record("m", output_tokens=4, output_audio_tokens=3, output_image_tokens=2), "output_tokens"),
        (lambda: llm.record("m", response_model="\ud800"), "response_model"),
        (lambda: llm.record("m", duration=-0.1), "duration"),
        (lambda: llm.record("m", ttft=float("inf")), "ttft"),
        (lambda: llm.record("m", cost_usd=-1.0), "cost_usd"),
        (lambda: llm.record("m", provider=""), "provider"),
        (lambda: llm.record("gpt-\ud800", input_tokens=1), "model"),  # a lone surrogate: never a label value
        (lambda: llm.event("signup", tenant="\udfff"), "tenant"),
        (lambda: llm.confidence(0.5, label="\ud83d"), "label"),
        (lambda: llm.call(""), "model"),
        (lambda: llm.call(None), "model"),  # type: ignore[arg-type]
        (lambda: llm.track(model=""), "model"),
        (lambda: llm.track(lambda: None), "model"),  # type: ignore[arg-type]  # @llm.track without arguments
    ],
)
def test_bad_values_raise_naming_the_field(rec: Recorder, action: Any, field: str) -> None:
    before = [s for m in rec.registry.collect() for s in m.samples]
    with pytest.raises(ValueError) as err:
        action()
    assert isinstance(err.value, InvalidValueError)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: expected")
    assert [s for m in rec.registry.collect() for s in m.samples] == before  # nothing recorded, in any family


@pytest.mark.parametrize(
    ("attribute", "bad"),
    [
        ("input_tokens", -3),
        ("output_tokens", "12"),
        ("cached_input_tokens", 2.5),
        ("cache_write_1h_tokens", -1),
        ("output_reasoning_tokens", "3"),
        ("cost_usd", -0.5),
        ("response_model", 3),
    ],
)
def test_bad_attribute_on_a_call_raises_at_once(rec: Recorder, attribute: str, bad: Any) -> None:
    with llm.call("gpt-4o", provider="openai") as c, pytest.raises(InvalidValueError) as err:
        setattr(c, attribute, bad)
    assert err.value.field == attribute


def test_cached_above_input_fails_at_the_end_of_the_block(rec: Recorder) -> None:
    with pytest.raises(InvalidValueError) as err, llm.call("gpt-4o", provider="openai") as c:
        c.cached_input_tokens = 50
        c.input_tokens = 10
    assert err.value.field == "cached_input_tokens"
    assert list(rec.metrics.llm_requests.collect()[0].samples) == []


def test_every_kind_set_on_a_call_is_recorded(rec: Recorder) -> None:
    with llm.call("claude-sonnet-4-5", provider="anthropic") as c:
        c.input_tokens, c.cached_input_tokens, c.cache_write_tokens, c.cache_write_1h_tokens = 5000, 3000, 1500, 500
        c.output_tokens, c.output_reasoning_tokens = 800, 600
    kinds = {dict(labels)["gen_ai_token_type"]: n for labels, n in series(rec, "llm_tokens_total").items()}
    assert kinds == {"input": 500, "cache_read": 3000, "cache_write": 1000, "cache_write_1h": 500, "output": 200,
                     "output_reasoning": 600}  # fmt: skip
    # 500 x 3 + 3000 x 0.30 + 1000 x 3.75 + 500 x 6; 800 x 15 (thinking is billed as output), USD per 1M
    assert c.cost is not None and c.cost.total_usd == pytest.approx(0.02115, abs=1e-12)


def test_first_token_outside_the_block_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError):
        llm.call("gpt-4o").first_token()


def test_record_inside_a_handler_carries_the_route_of_the_request() -> None:
    recorder = Recorder(Config(), CollectorRegistry())

    async def answer(request: Any) -> PlainTextResponse:
        llm.record("gpt-4o", "openai", input_tokens=10, output_tokens=5)
        return PlainTextResponse("ok")

    app = PrometheusMiddleware(Starlette(routes=[Route("/answer/{id}", answer)]), recorder=recorder)
    with TestClient(app) as client:
        assert client.get("/answer/1").status_code == 200
        assert client.get("/answer/2").status_code == 200
    llm.record("gpt-4o", "openai", input_tokens=10, output_tokens=5, recorder=recorder)  # outside any request
    labels = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "outcome": "ok"}
    assert value(recorder, "llm_requests_total", **labels, http_route="/answer/{id}") == 2
    assert value(recorder, "llm_requests_total", **labels, http_route="__none__") == 1
