"""OpenTelemetry integration: exemplars (down to a real Prometheus), GenAI span processor, OTel metrics out."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from exporter.config import Config, ConfigError
from exporter.labels import NO_ROUTE
from exporter.middleware import PrometheusMiddleware
from exporter.observations import LLMCall, ToolExecution
from exporter.otel import (
    GenAISpanProcessor,
    OtelMetricsSink,
    disable_exemplars,
    enable_exemplars,
    enable_otel_metrics,
    llm_call_from_span,
)
from exporter.recorder import Recorder

from ..support.metrics import all_samples, selector, series
from ..support.servers import ThreadServer, prometheus

T0 = 1_700_000_000_000_000_000  # span start, ns since the epoch
MODEL = "gen_ai.request.model"


@pytest.fixture
def tracer_provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    yield provider
    provider.shutdown()


def ids(span: trace.Span) -> dict[str, str]:
    ctx = span.get_span_context()
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def exemplars(registry: CollectorRegistry, sample_name: str) -> list[dict[str, str]]:
    return [
        dict(s.exemplar.labels)
        for family in registry.collect()
        for s in family.samples
        if s.name == sample_name and s.exemplar is not None
    ]


# -- exemplars ------------------------------------------------------------------------------------------


def test_exemplar_names_the_active_span_in_openmetrics(rec: Recorder, registry: CollectorRegistry) -> None:
    assert enable_exemplars(rec) is True
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        rec.http("GET", "/chat", 200, 0.3, 10, 20)
        rec.llm(LLMCall("gpt-4o", "openai", input_tokens=100, output_tokens=20, duration=1.5))
    expected = ids(span)
    assert exemplars(registry, "http_server_request_duration_seconds_bucket") == [expected]
    assert exemplars(registry, "gen_ai_client_operation_duration_seconds_bucket") == [expected]
    assert exemplars(registry, "gen_ai_client_token_usage_bucket") == [expected, expected]  # input, output
    text = generate_latest(registry).decode()
    line = f'# {{span_id="{expected["span_id"]}",trace_id="{expected["trace_id"]}"}} 0.3 '
    assert 'http_server_request_duration_seconds_bucket{http_request_method="GET"' in text
    assert line in text


def test_no_exemplar_without_a_span_or_when_not_sampled(rec: Recorder, registry: CollectorRegistry) -> None:
    assert enable_exemplars(rec) is True
    assert rec.exemplar is not None and rec.exemplar() is None
    rec.http("GET", "/chat", 200, 0.3, 10, 20)
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    with unsampled.start_as_current_span("request"):
        assert rec.exemplar() is None
        rec.http("GET", "/chat", 200, 0.3, 10, 20)
    assert (
        registry.get_sample_value(
            "http_server_request_duration_seconds_count",
            {"http_request_method": "GET", "http_route": "/chat", "http_response_status_code": "200"},
        )
        == 2.0
    )
    assert exemplars(registry, "http_server_request_duration_seconds_bucket") == []


def test_each_span_gets_its_own_exemplar_when_spans_alternate(rec: Recorder, registry: CollectorRegistry) -> None:
    # The source remembers the last span's exemplar: a span seen again after another, a span's child, and
    # no span after a span must each still get their own.
    assert enable_exemplars(rec) is True
    tracer = TracerProvider().get_tracer("test")
    source = rec.exemplar
    assert source is not None
    with tracer.start_as_current_span("a") as a:
        first = source()
        assert first == ids(a) and source() is first  # asked again in the same span: the same one
        with tracer.start_as_current_span("b") as b:
            assert source() == ids(b) != ids(a)
        assert source() == ids(a)
        rec.http("GET", "/chat", 200, 0.3, 10, 20)
    assert source() is None
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    with unsampled.start_as_current_span("c"):
        assert source() is None
        assert source() is None
    assert exemplars(registry, "http_server_request_duration_seconds_bucket") == [ids(a)]


@pytest.mark.parametrize(
    "bad",
    [{"__trace_id": "abc"}, {"trace_id": "x" * 130}],
    ids=["a reserved label name", "more than 128 characters"],
)
def test_an_exemplar_prometheus_would_refuse_is_left_out_and_the_request_kept(
    rec: Recorder, registry: CollectorRegistry, bad: dict[str, str]
) -> None:
    rec.set_exemplar_source(lambda: bad)
    rec.http("GET", "/chat", 200, 0.3, 10, 20)
    rec.http("GET", "/chat", 200, 0.3, 10, 20)
    rec.llm(LLMCall("gpt-4o", "openai", input_tokens=100, output_tokens=20, duration=1.5))
    labels = {"http_request_method": "GET", "http_route": "/chat", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 2.0
    assert registry.get_sample_value("http_server_request_body_size_bytes_sum", labels) == 20.0
    assert exemplars(registry, "http_server_request_duration_seconds_bucket") == []
    assert exemplars(registry, "gen_ai_client_operation_duration_seconds_bucket") == []
    assert (
        registry.get_sample_value(
            "gen_ai_client_operation_duration_seconds_count",
            {
                "gen_ai_provider_name": "openai",
                "gen_ai_request_model": "gpt-4o",
                "gen_ai_operation_name": "chat",
                "gen_ai_response_model": "",
                "error_type": "",
            },
        )
        == 1.0
    )


def test_disable_exemplars(rec: Recorder, registry: CollectorRegistry) -> None:
    enable_exemplars(rec)
    disable_exemplars(rec)
    with TracerProvider().get_tracer("test").start_as_current_span("request"):
        rec.http("GET", "/chat", 200, 0.3, 10, 20)
    assert exemplars(registry, "http_server_request_duration_seconds_bucket") == []


def test_exemplars_off_without_the_extra(rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # what `import` sees when it is not installed
    assert enable_exemplars(rec) is False
    assert rec.exemplar is None


def test_exemplars_off_in_multiprocess_mode(rec: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert enable_exemplars(rec) is False
    assert rec.exemplar is None


def test_import_exporter_does_not_import_opentelemetry() -> None:
    code = "import sys, exporter; print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.e2e
def test_prometheus_stores_the_trace_id_of_a_request(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    rec = Recorder(Config(), registry)
    seen: list[dict[str, str]] = []

    async def work(request: Request) -> PlainTextResponse:
        seen.append(ids(trace.get_current_span()))  # the span OTel's ASGI middleware started for this request
        return PlainTextResponse("ok")

    provider = TracerProvider()
    inner = PrometheusMiddleware(Starlette(routes=[Route("/work", work)]), recorder=rec)
    inner.startup()  # what the lifespan's startup runs
    assert rec.exemplar is not None  # the middleware turned exemplars on (config.otel.exemplars defaults to true)
    app = OpenTelemetryMiddleware(inner, tracer_provider=provider, exclude_spans=["receive", "send"])
    try:
        with ThreadServer(app) as server:
            urllib.request.urlopen(f"{server.url}/work", timeout=10).close()
            assert len(seen) == 1
            config = (
                "global: {scrape_interval: 1s}\n"
                "scrape_configs:\n"
                f"  - job_name: app\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
            )
            with prometheus(config, tmp_path / "prometheus", "--enable-feature=exemplar-storage") as url:
                data = _wait_for_exemplars(url, 'http_server_request_duration_seconds_bucket{http_route="/work"}')
    finally:
        provider.shutdown()
    assert [e["labels"] for series in data for e in series["exemplars"]] == [seen[0]]
    assert {series["seriesLabels"]["job"] for series in data} == {"app"}


def _wait_for_exemplars(base: str, query: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        now = time.time()
        params = urllib.parse.urlencode({"query": query, "start": now - 600, "end": now + 60})
        with urllib.request.urlopen(f"{base}/api/v1/query_exemplars?{params}", timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        if body["data"]:
            return list(body["data"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"no exemplars for {query} after {timeout}s")
        time.sleep(0.5)


# -- GenAI span processor -------------------------------------------------------------------------------


def end_span(
    provider: TracerProvider,
    attributes: dict[str, Any],
    *,
    seconds: float = 1.5,
    error: BaseException | None = None,
    name: str = "chat gpt-4o",
) -> trace.Span:
    span = provider.get_tracer("test").start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=T0)
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
    span.end(end_time=T0 + int(seconds * 1e9))
    return span


CURRENT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 200,
}
OLDER = {  # before gen_ai.provider.name / input_tokens, and before gen_ai.operation.name existed
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.prompt_tokens": 500,
    "gen_ai.usage.completion_tokens": 100,
}


CACHED = {  # an Anthropic call through an instrumentation that follows the current conventions
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.response.model": "claude-sonnet-4-5-20250929",
    "gen_ai.usage.input_tokens": 5000,  # cache reads and writes included, as the conventions define it
    "gen_ai.usage.cache_read.input_tokens": 3000,
    "gen_ai.usage.cache_creation.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 800,
    "gen_ai.usage.reasoning.output_tokens": 300,
}


def reference(model: str, provider: str, **usage: int) -> float:
    """genai-prices' own price of the usage (its names), in USD."""
    return float(calc_price(Usage(**usage), model, provider_id=provider).total_price)


def test_genai_spans_become_token_and_cost_metrics(rec: Recorder, registry: CollectorRegistry) -> None:
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    end_span(provider, CURRENT, seconds=1.5)
    end_span(provider, OLDER, seconds=0.5)

    openai = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}
    current = {**openai, "gen_ai_response_model": "gpt-4o-2024-08-06"}
    older = {**openai, "gen_ai_response_model": ""}
    value = selector(registry)
    assert value("llm_tokens_total", {**current, "gen_ai_token_type": "input"}) == 1000
    assert value("llm_tokens_total", {**current, "gen_ai_token_type": "output"}) == 200
    assert value("llm_tokens_total", {**older, "gen_ai_token_type": "input"}) == 500
    assert value("llm_tokens_total", {**older, "gen_ai_token_type": "output"}) == 100
    estimated = {"cost_source": "estimated"}
    for labels, n_in, n_out in ((current, 1000, 200), (older, 500, 100)):
        assert value("llm_cost_usd_total", {**labels, **estimated, "gen_ai_token_type": "input"}) == pytest.approx(
            reference("gpt-4o", "openai", input_tokens=n_in), abs=1e-12
        )
        assert value("llm_cost_usd_total", {**labels, **estimated, "gen_ai_token_type": "output"}) == pytest.approx(
            reference("gpt-4o", "openai", output_tokens=n_out), abs=1e-12
        )
        assert value("llm_requests_total", {**labels, "outcome": "ok"}) == 1
    duration = {**current, "gen_ai_operation_name": "chat", "error_type": ""}
    assert value("gen_ai_client_operation_duration_seconds_count", duration) == 1
    assert value("gen_ai_client_operation_duration_seconds_sum", duration) == 1.5
    usage = {**older, "gen_ai_operation_name": "chat", "gen_ai_token_type": "input"}
    assert value("gen_ai_client_token_usage_sum", usage) == 500
    assert value("gen_ai_client_token_usage_count", usage) == 1
    provider.shutdown()


def test_span_token_kinds_are_each_counted_once_and_priced(rec: Recorder, registry: CollectorRegistry) -> None:
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    end_span(provider, CACHED)
    labels = {
        "gen_ai_provider_name": "anthropic",
        "gen_ai_request_model": "claude-sonnet-4-5",
        "gen_ai_response_model": "claude-sonnet-4-5-20250929",
    }
    tokens = {dict(k)["gen_ai_token_type"]: v for k, v in series(registry, "llm_tokens_total").items()}
    assert tokens == {"input": 1000, "cache_read": 3000, "cache_write": 1000, "output": 500, "output_reasoning": 300}
    usd = {dict(k)["gen_ai_token_type"]: v for k, v in series(registry, "llm_cost_usd_total").items()}
    model = "claude-sonnet-4-5-20250929"
    expected = {
        "input": reference(model, "anthropic", input_tokens=1000),
        "cache_read": reference(model, "anthropic", input_tokens=3000, cache_read_tokens=3000),
        "cache_write": reference(model, "anthropic", input_tokens=1000, cache_write_tokens=1000),
        "output": reference(model, "anthropic", output_tokens=500),
        "output_reasoning": reference(model, "anthropic", output_tokens=300, output_reasoning_tokens=300),
    }
    assert usd == pytest.approx(expected, abs=1e-12)
    whole = reference(model, "anthropic", input_tokens=5000, cache_read_tokens=3000, cache_write_tokens=1000,
                      output_tokens=800, output_reasoning_tokens=300)  # fmt: skip
    assert sum(usd.values()) == pytest.approx(whole, abs=1e-12)
    # The OTel histogram keeps the totals, as the conventions define it.
    usage = {**labels, "gen_ai_operation_name": "chat"}
    assert registry.get_sample_value("gen_ai_client_token_usage_sum", {**usage, "gen_ai_token_type": "input"}) == 5000
    assert registry.get_sample_value("gen_ai_client_token_usage_sum", {**usage, "gen_ai_token_type": "output"}) == 800
    provider.shutdown()


def test_a_span_without_usage_is_counted_as_missing(rec: Recorder, registry: CollectorRegistry) -> None:
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    without = {k: v for k, v in CURRENT.items() if not k.startswith("gen_ai.usage.")}
    end_span(provider, without)
    end_span(provider, without, error=TimeoutError("slow"))  # a failed call reports none: that is no news
    missing = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "reason": "span_without_usage"}
    assert series(registry, "llm_exporter_missing_usage_total") == {tuple(sorted(missing.items())): 1.0}
    assert series(registry, "llm_tokens_total") == {} and series(registry, "llm_cost_usd_total") == {}
    assert series(registry, "llm_exporter_unpriced_tokens_total") == {}
    provider.shutdown()


def test_errors_from_error_type_or_span_status(rec: Recorder, registry: CollectorRegistry) -> None:
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude"}
    end_span(provider, {**base, "error.type": "timeout"}, error=TimeoutError("slow"))
    end_span(provider, base, error=ValueError("bad"))
    end_span(provider, {**base, "gen_ai.usage.input_tokens": 10})
    value = selector(registry)
    labels = {"gen_ai_provider_name": "anthropic", "gen_ai_request_model": "claude", "gen_ai_response_model": ""}
    assert value("llm_requests_total", {**labels, "outcome": "error"}) == 2
    assert value("llm_requests_total", {**labels, "outcome": "ok"}) == 1
    for error in ("timeout", "ValueError"):
        d = {**labels, "gen_ai_operation_name": "chat", "error_type": error}
        assert value("gen_ai_client_operation_duration_seconds_count", d) == 1
    provider.shutdown()


def test_non_genai_and_agent_spans_change_nothing(rec: Recorder, registry: CollectorRegistry) -> None:
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    before = all_samples(registry)
    end_span(provider, {}, name="empty")
    end_span(provider, {"http.request.method": "GET", "http.route": "/chat"}, name="GET /chat")
    # Agent spans may sum the usage of the model calls under them: counting them would count twice.
    agent = {**CURRENT, "gen_ai.operation.name": "invoke_agent"}
    end_span(provider, agent, name="invoke_agent helper")
    end_span(provider, {**OLDER, "llm.request.type": "rerank"}, name="rerank")  # not a model-call operation
    assert all_samples(registry) == before
    provider.shutdown()


def test_genai_span_is_the_exemplar_of_its_own_metrics(rec: Recorder, registry: CollectorRegistry) -> None:
    enable_exemplars(rec)
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        with tracer.start_as_current_span("chat gpt-4o", attributes=CURRENT) as span:
            pass
    # The span has ended (so is no longer current) when on_end runs; the exemplar still names it.
    assert exemplars(registry, "gen_ai_client_token_usage_bucket") == [ids(span), ids(span)]
    provider.shutdown()


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (
            CURRENT,
            LLMCall(
                "gpt-4o",
                "openai",
                "chat",
                1000,
                200,
                duration=1.5,
                timestamp=(T0 + 1_500_000_000) / 1e9,
                response_model="gpt-4o-2024-08-06",
            ),
        ),
        (
            CACHED,
            LLMCall(
                "claude-sonnet-4-5",
                "anthropic",
                "chat",
                5000,
                800,
                cached_input_tokens=3000,
                cache_write_tokens=1000,
                output_reasoning_tokens=300,
                duration=1.5,
                timestamp=(T0 + 1_500_000_000) / 1e9,
                response_model="claude-sonnet-4-5-20250929",
            ),
        ),
        (
            {**OLDER, "llm.request.type": "embedding"},
            LLMCall("gpt-4o", "openai", "embeddings", 500, 100, duration=1.5, timestamp=(T0 + 1_500_000_000) / 1e9),
        ),
        (  # only the response model; cached input tokens (current name); nonsense usage values ignored
            {
                "gen_ai.operation.name": "generate_content",
                "gen_ai.system": "gcp.gemini",
                "gen_ai.response.model": "gemini-2.0-flash",
                "gen_ai.usage.input_tokens": 300,
                "gen_ai.usage.cache_read.input_tokens": 100,
                "gen_ai.usage.output_tokens": "many",
            },
            LLMCall(
                "gemini-2.0-flash",
                "gcp.gemini",
                "generate_content",
                300,
                0,
                cached_input_tokens=100,
                duration=1.5,
                timestamp=(T0 + 1_500_000_000) / 1e9,
                response_model="gemini-2.0-flash",
            ),
        ),
    ],
)
def test_llm_call_from_span(attributes: dict[str, Any], expected: LLMCall, tracer_provider: TracerProvider) -> None:
    span = end_span(tracer_provider, attributes)
    operation = "embeddings" if "llm.request.type" in attributes else str(attributes.get("gen_ai.operation.name"))
    assert llm_call_from_span(span, operation) == expected  # type: ignore[arg-type]


def test_processor_errors_never_reach_the_application(registry: CollectorRegistry) -> None:
    class Broken(Recorder):
        def llm(self, call: LLMCall) -> None:  # type: ignore[override]
            raise RuntimeError("boom")

    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(Broken(Config(), registry)))
    end_span(provider, CURRENT)  # must not raise
    provider.shutdown()


# -- OpenTelemetry metrics out --------------------------------------------------------------------------


def otel_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        m.name: list(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }


def point(points: list[Any], **attrs: Any) -> Any:
    found = [p for p in points if dict(p.attributes) == attrs]
    assert len(found) == 1, [dict(p.attributes) for p in points]
    return found[0]


def test_otel_metrics_carry_the_streaming_and_agent_signals(registry: CollectorRegistry) -> None:
    rec = Recorder(Config(), registry)
    reader = InMemoryMetricReader()
    enable_otel_metrics(rec, MeterProvider(metric_readers=[reader]))
    stream = LLMCall(
        "gpt-4o", "openai", input_tokens=9, output_tokens=21, duration=2.5, ttft=0.5, finish_reasons=("tool_calls",)
    )
    for _ in range(2):
        rec.llm(replace(stream, tool_calls=("search", "search", "book")))
    rec.llm(LLMCall("gpt-4o", "openai", input_tokens=9, output_tokens=1, finish_reasons=("length",)))
    rec.tool(ToolExecution("search", 0.25))
    rec.tool(ToolExecution("search", 1.5, error_type="TimeoutError"))
    points = otel_points(reader)
    named = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    tpot = point(points["llm.time_per_output_token"], **named)
    assert (tpot.count, tpot.sum) == (2, 0.2)  # (2.5 - 0.5) / 20 each; the one-token answer has none
    assert point(points["llm.finish_reasons"], **named, reason="tool_calls").value == 2
    assert point(points["llm.finish_reasons"], **named, reason="length").value == 1
    assert point(points["llm.tool_calls"], **named, **{"gen_ai.tool.name": "search"}).value == 4
    assert point(points["llm.tool_calls"], **named, **{"gen_ai.tool.name": "book"}).value == 2
    ok = point(points["gen_ai.execute_tool.duration"], **{"gen_ai.tool.name": "search"})
    failed = point(
        points["gen_ai.execute_tool.duration"], **{"gen_ai.tool.name": "search", "error.type": "TimeoutError"}
    )
    assert (ok.count, ok.sum, failed.count, failed.sum) == (1, 0.25, 1, 1.5)
    # The same figures as /metrics.
    prom = registry.get_sample_value
    assert prom("llm_time_per_output_token_seconds_sum", {**PROM_NAMED, "gen_ai_response_model": ""}) == 0.2
    assert prom("llm_tool_calls_total", {**PROM_NAMED, "gen_ai_tool_name": "search"}) == 4
    assert prom("gen_ai_execute_tool_duration_seconds_count", {"gen_ai_tool_name": "search", "error_type": ""}) == 1


PROM_NAMED = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}


# The series the calls below make, in each: gpt-4o's input and output with and without an answering model and
# in a request (6), the five kinds of the cached Claude call, and acme's input (a token kind, or its unsplit
# provider cost).
COUNTS = {"llm_tokens_total": 12, "llm_cost_usd_total": 12}


def test_otel_metrics_carry_the_same_values(registry: CollectorRegistry) -> None:
    rec = Recorder(Config(labels={"service": "chat"}), registry)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    sink = enable_otel_metrics(rec, meters)
    assert enable_otel_metrics(rec, meters) is sink and rec.sinks == (sink,)
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    end_span(provider, CURRENT, seconds=1.5)
    end_span(provider, OLDER, seconds=0.5)
    end_span(provider, {**CURRENT, "error.type": "timeout"}, seconds=2.0, error=TimeoutError("slow"))
    rec.http("GET", "/chat", 200, 0.25, 10, 20)
    rec.http("POST", "/chat", 503, 0.5, 10, 20)
    rec.confidence(0.9, "booking", "gpt-4o")
    rec.evaluation("faithfulness", 0.75, "gpt-4o")
    rec.feedback(4, "gpt-4o")
    rec.event("human_handoff")

    end_span(provider, CACHED)
    rec.llm(LLMCall("acme-13b", "acme", input_tokens=10, cost_usd=0.5))  # a provider's figure, unsplit
    rec.llm(LLMCall("gpt-4o", "openai", input_tokens=7, output_tokens=3, route="/chat"))  # made in a request

    points = otel_points(reader)
    prom = registry.get_sample_value
    svc = {"service": "chat"}
    # Every token and cost series of /metrics has its OTel point, with the same value and attributes.
    names = {"gen_ai_token_type": "gen_ai.token.type", "cost_source": "cost_source", "service": "service"}
    names |= {f"gen_ai_{k}_{v}": f"gen_ai.{k}.{v}" for k, v in (("provider", "name"), ("request", "model"))}
    names["gen_ai_response_model"] = "gen_ai.response.model"
    names["http_route"] = "http.route"
    for prom_name, otel_name in (("llm_tokens_total", "llm.tokens"), ("llm_cost_usd_total", "llm.cost.usd")):
        found = series(registry, prom_name)
        assert (len(found), len(points[otel_name])) == (COUNTS[prom_name],) * 2, prom_name
        for labels, expected in found.items():
            # An empty label, or the route of a call made outside any request: an absent attribute.
            attrs = {names[k]: v for k, v in labels if v and v != NO_ROUTE}
            assert point(points[otel_name], **attrs).value == pytest.approx(expected, abs=1e-15)
    model = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", **svc}
    prom_model = {
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-4o",
        "gen_ai_response_model": "",
        **svc,
    }
    for token_type in ("input", "output"):
        usage = point(
            points["gen_ai.client.token.usage"],
            **model,
            **{"gen_ai.operation.name": "chat", "gen_ai.token.type": token_type},
        )
        prom_usage = {**prom_model, "gen_ai_operation_name": "chat", "gen_ai_token_type": token_type}
        assert (usage.count, usage.sum) == (
            prom("gen_ai_client_token_usage_count", prom_usage),
            prom("gen_ai_client_token_usage_sum", prom_usage),
        )
    answered = {**model, "gen_ai.response.model": "gpt-4o-2024-08-06"}
    # 1000 input tokens of the call that succeeded and 1000 of the one that failed
    assert point(points["llm.tokens"], **answered, **{"gen_ai.token.type": "input"}).value == 2000
    assert point(points["llm.requests"], **answered, outcome="ok").value == 1
    assert point(points["llm.requests"], **model, outcome="ok").value == 1
    assert point(points["llm.requests"], **answered, outcome="error").value == 1
    unsplit = {"gen_ai.provider.name": "acme", "gen_ai.request.model": "acme-13b", **svc, "cost_source": "provider"}
    assert point(points["llm.cost.usd"], **unsplit, **{"gen_ai.token.type": "unsplit"}).value == 0.5

    durations = points["gen_ai.client.operation.duration"]
    ok = point(durations, **answered, **{"gen_ai.operation.name": "chat"})
    assert (ok.count, ok.sum) == (1, 1.5)
    assert list(ok.explicit_bounds) == list(rec.config.buckets.llm_duration)
    failed = point(durations, **answered, **{"gen_ai.operation.name": "chat", "error.type": "timeout"})
    assert (failed.count, failed.sum) == (1, 2.0)

    http = points["http.server.request.duration"]
    get = point(http, **svc, **{"http.request.method": "GET", "http.route": "/chat", "http.response.status_code": 200})
    assert (get.count, get.sum) == (1, 0.25)
    post = point(
        http,
        **svc,
        **{"http.request.method": "POST", "http.route": "/chat", "http.response.status_code": 503, "error.type": "503"},
    )
    assert (post.count, post.sum) == (1, 0.5)
    assert list(get.explicit_bounds) == list(rec.config.buckets.http_duration)
    get_attrs = {**svc, "http.request.method": "GET", "http.route": "/chat", "http.response.status_code": 200}
    for name, size in (("http.server.request.body.size", 10), ("http.server.response.body.size", 20)):
        body = point(points[name], **get_attrs)
        assert (body.count, body.sum) == (1, size)
        assert list(body.explicit_bounds) == list(rec.config.buckets.http_request_body_size)
    active = rec.active("GET", "/chat")
    for delta in (1, 1, -1):  # two requests start, one ends
        active(delta)
    route = {"http.request.method": "GET", "http.route": "/chat"}
    in_flight = point(otel_points(reader)["http.server.active_requests"], **svc, **route)
    labels = {"http_request_method": "GET", "http_route": "/chat", **svc}
    assert in_flight.value == prom("http_server_active_requests", labels) == 1

    assert point(points["llm.confidence"], **svc, **{"gen_ai.request.model": "gpt-4o", "label": "booking"}).sum == 0.9
    assert point(points["llm.predictions"], **svc, **{"gen_ai.request.model": "gpt-4o", "label": "booking"}).value == 1
    evaluation = point(
        points["llm.evaluation.score"], **svc, evaluation="faithfulness", **{"gen_ai.request.model": "gpt-4o"}
    )
    assert evaluation.sum == 0.75
    assert point(points["llm.feedback.rating"], **svc, **{"gen_ai.request.model": "gpt-4o"}).sum == 4
    assert point(points["llm.events"], **svc, event="human_handoff").value == 1
    provider.shutdown()
    meters.shutdown()


def test_otel_metrics_exemplars_and_label_cap(registry: CollectorRegistry) -> None:
    rec = Recorder(Config(label_cap=2), registry)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    enable_otel_metrics(rec, meters)
    with TracerProvider().get_tracer("test").start_as_current_span("request") as span:
        rec.http("GET", rec.route("/a"), 200, 0.1, 0, 0)  # as the middleware calls it
    rec.http("GET", rec.route("/b"), 200, 0.1, 0, 0)
    rec.http("GET", rec.route("/c"), 200, 0.1, 0, 0)  # third route: past the cap of 2
    for model in ("m1", "m2", "m3", "m3"):
        rec.llm(LLMCall(model, "openai", duration=1.0))
    points = otel_points(reader)
    routes = sorted(p.attributes["http.route"] for p in points["http.server.request.duration"])
    assert routes == ["/a", "/b", "__overflow__"]
    models = {p.attributes[MODEL]: p.count for p in points["gen_ai.client.operation.duration"]}
    assert models == {"m1": 1, "m2": 1, "__overflow__": 2}
    overflow = registry.get_sample_value
    assert overflow("llm_exporter_label_overflow_total", {"label": "http_route"}) == 1
    assert overflow("llm_exporter_label_overflow_total", {"label": "gen_ai_request_model"}) == 2  # not counted twice
    http = points["http.server.request.duration"]
    first = point(http, **{"http.request.method": "GET", "http.route": "/a", "http.response.status_code": 200})
    assert [format(e.trace_id, "032x") for e in first.exemplars] == [ids(span)["trace_id"]]
    meters.shutdown()


def test_otel_metrics_without_the_extra_is_a_config_error(rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", None)
    monkeypatch.delattr(sys.modules["opentelemetry"], "metrics", raising=False)
    with pytest.raises(ConfigError, match="otel.*metrics.*pip install"):
        enable_otel_metrics(rec)
    assert not any(isinstance(s, OtelMetricsSink) for s in rec.sinks)


# -- finish reasons and tool executions from spans ----------------------------------------------------------


def test_a_spans_finish_reasons_are_counted_normalised(rec: Recorder, registry: CollectorRegistry) -> None:
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    end_span(provider, {**CURRENT, "gen_ai.response.finish_reasons": ("stop", "length")})
    end_span(provider, {**CACHED, "gen_ai.response.finish_reasons": ("max_tokens",)})
    end_span(provider, CURRENT)  # none said: none counted
    provider.shutdown()
    reasons = {
        (dict(k)["gen_ai_provider_name"], dict(k)["reason"]): v
        for k, v in series(registry, "llm_finish_reasons_total").items()
    }
    assert reasons == {("openai", "stop"): 1, ("openai", "length"): 1, ("anthropic", "length"): 1}


def test_execute_tool_spans_give_tool_duration_and_errors_by_tool(rec: Recorder, registry: CollectorRegistry) -> None:
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    end_span(provider, tool, seconds=0.25, name="execute_tool search")
    end_span(provider, tool, seconds=2.0, name="execute_tool search")
    end_span(provider, tool, seconds=0.5, error=TimeoutError("slow"), name="execute_tool search")
    end_span(provider, {**tool, "gen_ai.tool.name": "lookup", "error.type": "not_found"}, seconds=0.125)
    provider.shutdown()
    get = selector(registry)
    name = "gen_ai_execute_tool_duration_seconds"
    assert get(f"{name}_count", {"gen_ai_tool_name": "search", "error_type": ""}) == 2
    assert get(f"{name}_sum", {"gen_ai_tool_name": "search", "error_type": ""}) == 2.25
    assert get(f"{name}_bucket", {"gen_ai_tool_name": "search", "error_type": "", "le": "0.32"}) == 1
    assert get(f"{name}_count", {"gen_ai_tool_name": "search", "error_type": "TimeoutError"}) == 1
    assert get(f"{name}_count", {"gen_ai_tool_name": "lookup", "error_type": "not_found"}) == 1
    # A tool run is no model call: no LLM call is counted for it.
    assert series(registry, "llm_requests_total") == {}


def test_tool_names_from_spans_are_capped(registry: CollectorRegistry) -> None:
    rec = Recorder(Config(label_cap=2), registry)
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor(rec))
    for i in range(4):
        end_span(provider, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"t{i}"}, seconds=0.1)
    provider.shutdown()
    counts = {
        dict(k)["gen_ai_tool_name"]: v
        for k, v in series(registry, "gen_ai_execute_tool_duration_seconds_count").items()
    }
    assert counts == {"t0": 1, "t1": 1, "__overflow__": 2}
