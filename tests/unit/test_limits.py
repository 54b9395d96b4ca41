"""Holding under attack and misconfiguration: each reproduction of the probe, with exact values.

The series budget (one /track request of 10,000 events), token counts no float can hold, a client's
Content-Length claim, JSON integers of thousands of digits, MLflow key collisions, drift baselines kept
off the request path, and config values that must be refused with the key named.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from exporter.checks import MAX_INT, TOO_LARGE
from exporter.collector import create_app
from exporter.config import Config, ConfigError
from exporter.drift.stats import NumericBaseline
from exporter.labels import OVERFLOW
from exporter.mlflow_bridge.windows import WindowAggregator, metric_part, summarize
from exporter.observations import LLMCall
from exporter.prometheus.families import worst_case_series
from exporter.recorder import Recorder
from exporter.wiring import drift_sink

from ..support import REPO
from ..support.asgi import call, http_scope, wrap
from ..support.metrics import value

BUDGET = Config().series_budget
JSON_BODY = [(b"content-type", b"application/json")]


def series(registry: CollectorRegistry) -> dict[str, int]:
    """Series (exposition lines) per family, by the family's name in the registry."""
    return {family.name: len(family.samples) for family in registry.collect()}


def folded(registry: CollectorRegistry, family: str) -> float | None:
    """Observations of new label combinations past ``family``'s budget."""
    return value(registry, "llm_exporter_label_overflow_total", label=family)


def llm_samples(registry: CollectorRegistry) -> list[Any]:
    """Every sample of the families an LLM call records into."""
    names = ("llm_requests", "llm_tokens", "llm_cost_usd", "gen_ai_client_token_usage")
    return [s for family in registry.collect() if family.name in names for s in family.samples]


def post(rec: Recorder, events: list[dict[str, Any]]) -> Any:
    body = json.dumps(events, separators=(",", ":")).encode()
    assert len(body) <= rec.config.collector.max_body_bytes
    client = TestClient(create_app(rec.config, rec))
    return client.post("/track", content=body, headers={"content-type": "application/json"})


def no_drift(**config: Any) -> Config:
    return Config.from_mapping({"drift": {"enabled": False}, **config})


# -- the series budget ----------------------------------------------------------------------------------------


def test_one_track_request_of_10000_llm_events_stays_within_the_budget(registry: CollectorRegistry) -> None:
    """100 models x 100 providers in one request once made 610,224 series; now each family holds its
    budget at most, the combinations past it share one overflow series, and no token is lost."""
    rec = Recorder(no_drift(), registry)
    events = [
        {
            "type": "llm",
            "model": f"m{i % 100:02d}",
            "provider": f"p{i // 100:02d}",
            "input_tokens": 3,
            "output_tokens": 4,
            "duration": 1,
        }
        for i in range(10_000)
    ]
    response = post(rec, events)
    assert (response.status_code, response.json()) == (202, {"accepted": 10_000})

    counts = series(registry)
    assert max(counts.values()) <= BUDGET
    assert sum(counts.values()) <= worst_case_series(rec.config) == 65_633
    # Each family the calls reach is full: its share of the budget, the overflow child included.
    assert counts["llm_requests"] == 1250 * 2  # _total and _created per child
    assert counts["llm_tokens"] == 1250 * 2
    assert counts["gen_ai_client_token_usage"] == 138 * 18  # 14 buckets, +Inf, count, sum, created
    assert counts["gen_ai_client_operation_duration_seconds"] == 119 * 21  # 17 buckets
    # Every one of the 10,000 (provider, model) pairs is new: past the first 1249, each is folded and counted.
    assert folded(registry, "llm_requests_total") == 10_000 - 1249
    assert folded(registry, "llm_tokens_total") == 20_000 - 1249  # one pair per token type
    assert folded(registry, "gen_ai_client_token_usage") == 20_000 - 137
    assert folded(registry, "gen_ai_client_operation_duration_seconds") == 10_000 - 118
    overflow = {"gen_ai_provider_name": OVERFLOW, "gen_ai_request_model": OVERFLOW, "http_route": OVERFLOW}
    assert value(registry, "llm_requests_total", **overflow, outcome=OVERFLOW) == 10_000 - 1249
    tokens = [
        s.value for f in registry.collect() if f.name == "llm_tokens" for s in f.samples if s.name.endswith("total")
    ]
    assert sum(tokens) == 70_000  # nothing lost: the folded tokens are in the overflow series
    # Models and providers stayed within their label caps: only the budget folded anything.
    assert folded(registry, "gen_ai_request_model") is None
    assert folded(registry, "gen_ai_provider_name") is None


def test_http_events_over_method_route_and_status_stay_within_the_budget(registry: CollectorRegistry) -> None:
    rec = Recorder(no_drift(), registry)
    methods = ("GET", "POST", "PUT", "DELETE", "PATCH")
    events = [
        {
            "type": "http",
            "method": methods[i // 100 % 5],
            "route": f"/r/{i % 100}",
            "status": 100 + i // 500,
            "duration": 0.1,
        }
        for i in range(10_000)
    ]  # 10,000 distinct (method, route, status)
    assert post(rec, events).status_code == 202
    counts = series(registry)
    assert max(counts.values()) <= BUDGET
    # The three HTTP histograms share 92 combinations (2500 // 27, the duration's share).
    assert counts["http_server_request_duration_seconds"] == 92 * 27
    assert counts["http_server_request_body_size_bytes"] == counts["http_server_response_body_size_bytes"] == 92 * 15
    assert folded(registry, "http_server_request_duration_seconds") == 10_000 - 91
    overflow = {"http_request_method": OVERFLOW, "http_route": OVERFLOW, "http_response_status_code": OVERFLOW}
    assert value(registry, "http_server_request_duration_seconds_count", **overflow) == 10_000 - 91


def test_an_existing_series_never_asks_the_budget(registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget is asked where a child is created; the request path of an existing series is unchanged."""
    rec = Recorder(no_drift(), registry)
    call_ = LLMCall("gpt-4o", "openai", input_tokens=3, output_tokens=4, duration=0.5, ttft=0.1)
    route = rec.route("/chat")
    rec.http("POST", route, 200, 0.1, 10, 20, 0.05)
    rec.active("POST", route)(1)
    rec.llm(call_)

    def asked(*args: Any) -> Any:
        raise AssertionError("the budget was asked for an existing series")

    monkeypatch.setattr(rec.metrics, "admit", asked)
    rec.http("POST", route, 200, 0.1, 10, 20, 0.05)
    rec.active("POST", route)(-1)
    rec.llm(call_)
    labels = {"http_request_method": "POST", "http_route": "/chat", "http_response_status_code": "200"}
    assert value(registry, "http_server_request_duration_seconds_count", **labels) == 2
    assert (
        value(
            registry,
            "llm_tokens_total",
            gen_ai_provider_name="openai",
            gen_ai_request_model="gpt-4o",
            gen_ai_token_type="output",
            http_route="__none__",
        )
        == 8
    )


def test_the_budget_is_configurable(registry: CollectorRegistry) -> None:
    rec = Recorder(no_drift(series_budget=100), registry)
    for i in range(90):  # within the event label's cap of 100 values: only the budget folds
        rec.event(f"event-{i}")
    assert series(registry)["llm_events"] == 100  # 50 children of 2 series
    assert folded(registry, "llm_events_total") == 90 - 49
    assert value(registry, "llm_events_total", event=OVERFLOW) == 41
    assert folded(registry, "event") is None


def _fill(rec: Recorder, n: int) -> None:
    """Traffic with a new combination of every family's labels at each step."""
    for i in range(n):
        a, b = f"v{i % 97}", f"w{i // 97 % 89}"
        error = f"E{i % 7}" if i % 2 else None
        rec.llm(
            LLMCall(
                a,
                b,
                operation=f"op{i % 5}",
                input_tokens=3,
                output_tokens=4,
                duration=0.5,
                ttft=0.1,
                error_type=error,
                tenant=b,
            )
        )
        rec.confidence(0.5, a, b)
        rec.evaluation(a, 0.5, b)
        rec.feedback(3.0, a)
        rec.event(a, b)
        route = rec.route(f"/{a}")
        method = ("GET", "POST", "PUT")[i % 3]
        rec.http(method, route, 200 + i % 50, 0.1, 10, 10, 0.05)
        rec.active(method, route)(1)
        rec.http_exception(method, route, type(f"Error{i % 11}", (Exception,), {})())


@pytest.mark.parametrize("conventions", ["default", "gen_ai_latest_experimental"])
def test_the_worst_case_holds_when_every_family_is_full(registry: CollectorRegistry, conventions: str) -> None:
    config = no_drift(series_budget=300, tenant_label=True, gen_ai_conventions=conventions)
    rec = Recorder(config, registry)
    _fill(rec, 3000)
    counts = series(registry)
    assert max(counts.values()) <= 300
    budgeted = {"llm_tokens", "llm_requests", "llm_events", "llm_predictions", "http_server_exceptions"}
    assert all(counts[name] == 300 for name in budgeted)  # full: 150 children of 2 series each
    assert sum(counts.values()) <= worst_case_series(config)


def test_the_readme_states_the_worst_case_of_the_defaults_and_of_the_latest_names() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Series budget") : readme.index("## MLflow")]
    stated = [int(n.replace(",", "")) for n in re.findall(r"\*\*at most ([\d,]+) series\*\*", section)]
    latest = Config(gen_ai_conventions="gen_ai_latest_experimental")
    assert stated == [worst_case_series(Config()), worst_case_series(latest)] == [65_633, 65_623]


# -- token counts in provider answers -------------------------------------------------------------------------


def _answer(usage: str) -> bytes:
    head = '{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[],"usage":'
    return (head + usage + "}").encode()


def _serve(body: bytes, headers: list[tuple[bytes, bytes]] = JSON_BODY) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _run(app: Any, scope: dict[str, Any] | None = None) -> None:
    asyncio.run(call(app, scope or http_scope("/chat", "POST")))


@pytest.mark.parametrize(
    "usage",
    [
        '{"prompt_tokens":1e300,"completion_tokens":5}',  # once: llm_tokens_total 1e300, cost 2.5e294 USD
        '{"prompt_tokens":1' + "0" * 400 + ',"completion_tokens":5}',  # once: the call without its tokens
        '{"prompt_tokens":9007199254740993,"completion_tokens":5}',  # 2**53 + 1
        '{"prompt_tokens":12.5,"completion_tokens":5}',
        '{"prompt_tokens":-3,"completion_tokens":5}',
        '{"prompt_tokens":3,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":1e300}}',
    ],
)
def test_token_counts_past_2_53_or_not_whole_are_a_capture_error(usage: str) -> None:
    app, registry = wrap(_serve(_answer(usage)))
    _run(app)
    assert value(registry, "llm_exporter_capture_errors_total", format="json") == 1
    assert llm_samples(registry) == []


@pytest.mark.parametrize(
    "body",
    [
        {"id": "msg_1", "type": "message", "model": "claude", "usage": {"input_tokens": 1e300, "output_tokens": 1}},
        {"candidates": [], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2.5}, "modelVersion": "g"},
        # Each part within bounds, their sum (the input total) past them.
        {
            "id": "m",
            "type": "message",
            "model": "c",
            "usage": {"input_tokens": MAX_INT, "cache_read_input_tokens": 1, "output_tokens": 1},
        },
    ],
)
def test_other_providers_bad_counts_are_a_capture_error_too(body: dict[str, Any]) -> None:
    app, registry = wrap(_serve(json.dumps(body).encode()))
    _run(app)
    assert value(registry, "llm_exporter_capture_errors_total", format="json") == 1
    assert llm_samples(registry) == []


def test_a_stream_with_an_unusable_count_is_a_capture_error() -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o"}
    usage = '"usage":{"prompt_tokens":1e300,"completion_tokens":1}'
    chunks = [
        b"data: " + json.dumps({**chunk, "choices": [{"delta": {"content": "Hi"}}]}).encode() + b"\n\n",
        b"data: " + json.dumps({**chunk, "choices": []}).encode()[:-1] + b"," + usage.encode() + b"}\n\n",
        b"data: [DONE]\n\n",
    ]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    wrapped, registry = wrap(app)
    _run(wrapped)
    assert value(registry, "llm_exporter_capture_errors_total", format="sse") == 1
    assert (
        registry.get_sample_value(
            "llm_requests_total", {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "outcome": "ok"}
        )
        is None
    )


def test_the_largest_exact_count_is_recorded() -> None:
    app, registry = wrap(_serve(_answer(f'{{"prompt_tokens":{MAX_INT},"completion_tokens":5}}')))
    _run(app)
    labels = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "http_route": "__unmatched__"}
    assert value(registry, "llm_tokens_total", **labels, gen_ai_token_type="input") == MAX_INT
    assert registry.get_sample_value("llm_exporter_capture_errors_total", {"format": "json"}) is None  # none yet


@pytest.mark.parametrize("cut", [55, 80, 120, 150])
def test_llm_json_cut_off_before_its_usage_is_a_capture_error(cut: int) -> None:
    whole = json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, how are you?"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5},
        }
    ).encode()
    body = whole[:cut]
    assert b'"chat.completion"' in body and b'"usage' not in body and body[-1:] not in (b"}", b"]", b"\n")
    app, registry = wrap(_serve(body))
    _run(app)
    assert value(registry, "llm_exporter_capture_errors_total", format="json") == 1


def test_a_whole_llm_answer_without_usage_and_plain_json_are_no_error() -> None:
    for body in (
        b'{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[]}',
        b'{"rows": [1, 2',
        b"[1, 2, 3]",
    ):
        app, registry = wrap(_serve(body))
        _run(app)
        assert value(registry, "llm_exporter_capture_errors_total", format="json") is None, body


# -- the request body size --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reads", [False, True])
def test_request_size_is_the_bytes_that_arrived_not_content_length(reads: bool) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if reads:
            await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped, registry = wrap(app)
    scope = http_scope("/upload", "POST")
    scope["headers"] = [*scope["headers"], (b"content-length", b"99999999999999999999")]
    _run(wrapped, scope)
    labels = {"http_request_method": "POST", "http_route": "__unmatched__", "http_response_status_code": "200"}
    assert value(registry, "http_server_request_body_size_bytes_sum", **labels) == 0
    assert value(registry, "http_server_request_body_size_bytes_count", **labels) == 1


# -- /track: integers of thousands of digits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "field", "message"),
    [
        ({"type": "llm", "model": "m", "input_tokens": "HUGE"}, "input_tokens", TOO_LARGE),
        ({"type": "llm", "model": "m", "duration": "-HUGE"}, "duration", "expected a number >= 0"),
        (
            {"type": "http", "method": "GET", "route": "/", "status": "HUGE", "duration": 1},
            "status",
            "expected an integer between 100 and 599",
        ),
        ({"type": "feature", "name": "x", "value": "HUGE"}, "value", TOO_LARGE),
        ({"tokens_used": "HUGE"}, "tokens_used", TOO_LARGE),
    ],
)
def test_an_integer_of_over_4300_digits_is_a_422_naming_its_field(
    event: dict[str, Any], field: str, message: str
) -> None:
    rec = Recorder(no_drift(), CollectorRegistry())
    digits = "9" * 4301
    body = json.dumps(event).replace('"-HUGE"', "-" + digits).replace('"HUGE"', digits).encode()
    response = TestClient(create_app(rec.config, rec)).post(
        "/track", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == {"errors": [{"index": 0, "field": field, "message": message}]}


# -- MLflow keys -------------------------------------------------------------------------------------------------


def test_event_names_that_differ_only_in_unsafe_characters_are_two_metrics() -> None:
    closed: list[Any] = []
    agg = WindowAggregator(60.0, closed.append, clock=lambda: 6000.0)
    agg.event("a?b", 6000.0, 3)
    agg.event("a!b", 6000.0, 5)
    agg.event("a_b", 6000.0, 7)
    window = agg.flush()
    assert window is not None
    assert summarize(window) == {
        "event_a_b_ed08611667_count": 3,
        "event_a_b_6680a6b3d6_count": 5,
        "event_a_b_count": 7,
    }
    assert metric_part("a?b") == "a_b_ed08611667"  # the same in every window and process


def test_model_names_that_differ_only_in_unsafe_characters_are_two_runs_of_keys() -> None:
    agg = WindowAggregator(60.0, lambda w: None, clock=lambda: 6000.0)
    agg.llm("org/model", 1, 2, None, None, None, False, 6000.0)
    agg.llm("org:model", 10, 20, None, None, None, False, 6000.0)
    window = agg.flush()
    assert window is not None
    got = {k: v for k, v in summarize(window).items() if k.endswith("/input_tokens")}
    assert got == {
        f"model/{metric_part('org/model')}/input_tokens": 1,
        f"model/{metric_part('org:model')}/input_tokens": 10,
    }
    assert len(got) == 2


# -- drift baselines off the request path -----------------------------------------------------------------------------


def test_the_baseline_is_built_on_the_scoring_thread_and_nothing_meanwhile_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built_on: list[str] = []
    build = NumericBaseline.from_values

    def spy(values: Any, resolution: int) -> NumericBaseline:
        built_on.append(threading.current_thread().name)
        return build(values, resolution)

    monkeypatch.setattr(NumericBaseline, "from_values", staticmethod(spy))
    now = 1_200_000.0
    rec = Recorder(
        Config.from_mapping({"drift": {"baseline_size": 1000, "resolution": 1000, "min_samples": 1}}),
        CollectorRegistry(),
    )
    sink = drift_sink(rec, clock=lambda: now)
    rec.add_sink(sink)
    try:
        request = threading.Thread(
            target=lambda: [sink.on_feature("x", float(i % 50), now) for i in range(1005)], name="request"
        )
        request.start()
        request.join()
        deadline = time.monotonic() + 10
        while sink._features["x"].baseline is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert built_on == ["llm-exporter-drift"]
        sink.score_now()
        # The 5 observations after the last baseline value waited in the backlog and were counted.
        assert rec.registry.get_sample_value("llm_drift_window_samples", {"feature": "x"}) == 5
    finally:
        sink.close()


# -- config: every value that would break at run time is refused, naming the key ---------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"auth": {"bearer_token": ""}},
            "auth.bearer_token: expected a non-empty secret (leave the key out for none), got ''",
        ),
        (
            {"auth": {"basic_username": "u", "basic_password": " "}},
            "auth.basic_password: expected a non-empty secret (leave the key out for none), got ' '",
        ),
        (
            {"collector": {"token": ""}},
            "collector.token: expected a non-empty secret (leave the key out for none), got ''",
        ),
        (
            {"mlflow": {"window_seconds": float("nan")}},
            "mlflow.window_seconds: expected a finite number, got float nan",
        ),
        (
            {"mlflow": {"window_seconds": float("inf")}},
            "mlflow.window_seconds: expected a finite number, got float inf",
        ),
        (
            {"mlflow": {"window_seconds": 1e300}},
            "mlflow.window_seconds: expected at most 86400 (a day: a run holds a day's windows), got 1e+300",
        ),
        ({"mlflow": {"window_seconds": 1e-300}}, "mlflow.window_seconds: expected at least 0.001 seconds, got 1e-300"),
        (
            {"drift": {"score_interval_seconds": 1e-9}},
            "drift.score_interval_seconds: expected at least 0.001 seconds, got 1e-09",
        ),
        (
            {"mlflow": {"shutdown_timeout_seconds": float("inf")}},
            "mlflow.shutdown_timeout_seconds: expected a finite number, got float inf",
        ),
        (
            {"mlflow": {"shutdown_timeout_seconds": 1e12}},
            "mlflow.shutdown_timeout_seconds: expected at most 3600 (an hour), got 1e+12",
        ),
        ({"drift": {"psi_threshold": float("nan")}}, "drift.psi_threshold: expected a finite number, got float nan"),
        ({"drift": {"epsilon": float("-inf")}}, "drift.epsilon: expected a finite number, got float -inf"),
        (
            {"buckets": {"http_duration": [float("nan")]}},
            "buckets.http_duration[0]: expected a finite number, got float nan",
        ),
        (
            {"buckets": {"llm_tokens": [1, float("inf")]}},
            "buckets.llm_tokens[1]: expected a finite number, got float inf",
        ),
        ({"buckets": {"confidence": list(range(101))}}, "buckets.confidence: expected at most 100 boundaries, got 101"),
        ({"collector": {"port": 99999}}, "collector.port: expected a port between 1 and 65535, got 99999"),
        ({"collector": {"port": 0}}, "collector.port: expected a port between 1 and 65535, got 0"),
        ({"metrics_port": 70000}, "metrics_port: expected a port between 1 and 65535, got 70000"),
        ({"drift": {"bins": 10**7}}, "drift.bins: expected an integer between 2 and 100, got 10000000"),
        (
            {"drift": {"resolution": 10**7}},
            "drift.resolution: expected an integer between drift.bins (10) and 1000, got 10000000",
        ),
        (
            {"drift": {"baseline_size": 10**9}},
            "drift.baseline_size: expected an integer between 1 and 100000, got 1000000000",
        ),
        ({"label_cap": 10**400}, f"label_cap: {TOO_LARGE}, got an integer of 1329 bits"),
        ({"series_budget": 0}, "series_budget: expected an integer between 1 and 1000000, got 0"),
    ],
)
def test_config_values_that_would_break_at_run_time_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(data, "c.yaml")
    assert str(info.value) == f"c.yaml: {message}"


def test_config_files_are_utf8_regular_and_small(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"labels: {service: caf\xe9}\n")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (1024 * 1024 + 1))
    digits = tmp_path / "digits.yaml"
    digits.write_text("label_cap: " + "9" * 5000 + "\n")
    cases = {
        latin: "(file): not UTF-8 text (byte 0xe9 at offset 21)",
        fifo: "(file): not a regular file (a directory, FIFO or device is never read)",
        tmp_path: "(file): not a regular file (a directory, FIFO or device is never read)",
        big: "(file): larger than the limit of 1048576 bytes",
    }
    for path, message in cases.items():
        with pytest.raises(ConfigError) as info:
            Config.from_yaml(path)
        assert str(info.value) == f"{path}: {message}"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(digits))}: \(file\): not valid YAML: Exceeds the limit"):
        Config.from_yaml(digits)
