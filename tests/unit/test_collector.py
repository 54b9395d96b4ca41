"""The /track collector: every 4xx with the wrong field named, batches, the legacy payload, exact values."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from exporter.collector import Collector, create_app
from exporter.config import Config
from exporter.recorder import Recorder
from exporter.sinks import Sink

from ..support import REPO
from ..support.metrics import series, value
from ..support.servers import HOST, ThreadServer, free_port, wait_http

SEED = {
    "business_id": "test-business",
    "response_time_ms": 1500,
    "tokens_used": 150,
    "api_cost_usd": 0.002,
    "intent_detected": "general",
    "appointment_requested": False,
    "user_message_length": 45,
    "ai_response_length": 120,
    "response_type": "text",
}
HUGE = 10**400  # a valid JSON integer that no float can hold
TOO_LARGE = "integer too large: expected at most 2**53 (9007199254740992) in absolute value"
LLM = {"type": "llm", "model": "gpt-4o", "provider": "openai", "input_tokens": 3, "output_tokens": 1, "cost_usd": 0.25}


class Features(Sink):
    """Keeps what sinks are told about drift features and events, to check the legacy mapping."""

    def __init__(self) -> None:
        self.features: list[tuple[str, float | str]] = []
        self.events: list[tuple[str, str | None, int]] = []

    def on_feature(self, name: str, value: float | str, ts: float) -> None:
        self.features.append((name, value))

    def on_event(self, name: str, tenant: str | None, ts: float, count: int = 1) -> None:
        self.events.append((name, tenant, count))

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "features": len(self.features)}


def make(**config: Any) -> tuple[Collector, CollectorRegistry, Features]:
    registry = CollectorRegistry()
    recorder = Recorder(Config.from_mapping({"drift": {"enabled": False}, **config}), registry)
    sink = Features()
    recorder.add_sink(sink)
    return create_app(recorder=recorder), registry, sink


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://collector") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def track_events(registry: CollectorRegistry) -> tuple[float | None, float | None]:
    name = "llm_exporter_track_events_total"
    return value(registry, name, result="accepted"), value(registry, name, result="rejected")


# -- 4xx: every case names what is wrong -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "field", "message"),
    [
        ({"type": "llm"}, "model", "required field is missing"),
        ({**LLM, "model": ""}, "model", "expected a non-empty string"),
        ({**LLM, "model": 7}, "model", "expected a non-empty string"),
        ({**LLM, "model": "m" * 257}, "model", "expected a string of at most 256 characters, got 257"),
        ({**LLM, "output_tokens": -1}, "output_tokens", "expected an integer >= 0"),
        ({**LLM, "output_tokens": 1.5}, "output_tokens", "expected an integer >= 0"),
        ({**LLM, "input_tokens": True}, "input_tokens", "expected an integer >= 0"),
        ({**LLM, "input_tokens": "3"}, "input_tokens", "expected an integer >= 0"),
        (
            {"type": "llm", "model": "m", "cached_input_tokens": 1},
            "cached_input_tokens",
            "expected at most input_tokens (0); input_tokens includes them",
        ),
        (
            {**LLM, "cached_input_tokens": 4},
            "cached_input_tokens",
            "expected at most input_tokens (3); input_tokens includes them",
        ),
        ({**LLM, "duration": -0.1}, "duration", "expected a number >= 0"),
        (
            {**LLM, "duration": 1, "duration_ms": 1000},
            "duration_ms",
            "give duration (seconds) or duration_ms (milliseconds), not both",
        ),
        ({**LLM, "ttft_ms": "fast"}, "ttft_ms", "expected a number >= 0"),
        ({**LLM, "cost_usd": -1}, "cost_usd", "expected a number >= 0"),
        ({**LLM, "error_type": 5}, "error_type", "expected a string"),
        ({**LLM, "tenant": ["a"]}, "tenant", "expected a string"),
        ({**LLM, "timestamp": 0}, "timestamp", "expected a number >= 1"),
        ({**LLM, "timestamp": 1e12}, "timestamp", "expected a Unix time in seconds, not in the future"),
        (
            {**LLM, "input_token": 3},
            "input_token",
            "unknown field; expected one of: cache_audio_read_tokens, cache_image_read_tokens, "
            "cache_write_1h_tokens, cache_write_tokens, cached_input_tokens, chunk_gaps, cost_usd, duration, "
            "duration_ms, error_type, finish_reasons, input_audio_tokens, input_image_tokens, input_tokens, model, "
            "operation, output_audio_tokens, output_image_tokens, output_reasoning_tokens, output_tokens, provider, "
            "response_model, tenant, timestamp, tool_calls, ttft, ttft_ms, type",
        ),
        ({"type": "confidence"}, "value", "required field is missing"),
        ({"type": "confidence", "value": 1.2}, "value", "expected a number between 0 and 1"),
        ({"type": "confidence", "value": 0.5, "label": None, "model": 1}, "model", "expected a string"),
        ({"type": "evaluation", "score": 0.5}, "name", "required field is missing"),
        ({"type": "evaluation", "name": "faithfulness", "score": -0.1}, "score", "expected a number between 0 and 1"),
        ({"type": "feedback", "rating": 0}, "rating", "expected a number between 1 and 5"),
        ({"type": "feedback", "rating": 6}, "rating", "expected a number between 1 and 5"),
        ({"type": "event"}, "name", "required field is missing"),
        ({"type": "event", "name": "x", "count": 0}, "count", "expected an integer >= 1"),
        (
            {"type": "http", "method": "GET", "route": "/a", "status": 99, "duration": 1},
            "status",
            "expected an integer between 100 and 599",
        ),
        (
            {"type": "http", "method": "GET", "route": "/a", "status": 200},
            "duration",
            "required field is missing (give duration in seconds or duration_ms in milliseconds)",
        ),
        (
            {"type": "http", "method": "GET", "route": "users/1", "status": 200, "duration": 1},
            "route",
            "expected a route template starting with '/', e.g. /users/{id}",
        ),
        ({"type": "feature", "name": "f", "value": [1]}, "value", "expected a finite number or a string"),
        ({"type": "feature", "name": "f", "value": True}, "value", "expected a finite number or a string"),
        ({"type": "feature", "name": "f"}, "value", "required field is missing"),
        (
            {"type": "nope"},
            "type",
            "expected one of: llm, confidence, evaluation, feedback, event, http, tool, feature",
        ),
        (
            {"model": "gpt-4o"},
            "type",
            "required field is missing; expected one of: llm, confidence, evaluation, feedback, event, http, tool, "
            "feature",
        ),
        ({**SEED, "response_time_ms": -5}, "response_time_ms", "expected a number >= 0"),
        ({**SEED, "tokens_used": "150"}, "tokens_used", "expected an integer >= 0"),
        ({**SEED, "appointment_requested": "yes"}, "appointment_requested", "expected true or false"),
        ({**SEED, "business_id": 42}, "business_id", "expected a string"),
        ({**SEED, "user_message_length": -1}, "user_message_length", "expected an integer >= 0"),
        # JSON integers of any length: beyond 2**53 a float is not exact, beyond ~1.8e308 it overflows.
        ({"type": "confidence", "value": HUGE}, "value", "expected a number between 0 and 1"),
        ({**LLM, "input_tokens": HUGE}, "input_tokens", TOO_LARGE),
        ({**LLM, "output_tokens": 2**53 + 1}, "output_tokens", TOO_LARGE),
        ({**LLM, "cost_usd": HUGE}, "cost_usd", TOO_LARGE),
        (
            {**LLM, "finish_reasons": "finished"},
            "finish_reasons",
            "expected one of stop, length, tool_calls, content_filter, error, other (or a provider's value such as "
            "end_turn)",
        ),
        ({**LLM, "tool_calls": "search"}, "tool_calls", "expected a list of tool names, one per tool call"),
        ({**LLM, "tool_calls": [3]}, "tool_calls", "expected a list of tool names: expected a non-empty string"),
        ({**LLM, "chunk_gaps": 0.1}, "chunk_gaps", "expected a list of seconds between content chunks"),
        (
            {**LLM, "chunk_gaps": [0.1, "x"]},
            "chunk_gaps",
            "expected a list of seconds between content chunks: expected a number >= 0",
        ),
        (
            {"type": "tool", "name": "search"},
            "duration",
            "required field is missing (give duration in seconds or duration_ms in milliseconds)",
        ),
        ({"type": "tool", "name": "", "duration": 1}, "name", "expected a non-empty string"),
        ({"type": "event", "name": "x", "count": HUGE}, "count", TOO_LARGE),
        ({"type": "feature", "name": "f", "value": HUGE}, "value", TOO_LARGE),
        ({"type": "feature", "name": "f", "value": -HUGE}, "value", TOO_LARGE),
        ({**SEED, "tokens_used": HUGE}, "tokens_used", TOO_LARGE),
        ({**SEED, "response_time_ms": HUGE}, "response_time_ms", TOO_LARGE),
    ],
)
def test_422_names_the_wrong_field_and_records_nothing(event: dict[str, Any], field: str, message: str) -> None:
    app, registry, _ = make()
    # The bad event is the fourth of a batch: nothing of the batch is recorded, the index says which.
    response = call(app, "POST", "/track", json=[LLM, LLM, LLM, event])
    assert response.status_code == 422
    assert response.json() == {"errors": [{"index": 3, "field": field, "message": message}]}
    assert (
        value(
            registry,
            "llm_requests_total",
            http_route="__none__",
            gen_ai_provider_name="openai",
            gen_ai_request_model="gpt-4o",
            outcome="ok",
        )
        is None
    )
    assert track_events(registry) == (0.0, 4.0)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "confidence", "value": HUGE, "label": "booking", "model": "gpt-4o"}, "value"),
        ({**LLM, "input_tokens": HUGE}, "input_tokens"),
        ({"type": "event", "name": "x", "count": HUGE}, "count"),
        ({"type": "feature", "name": "f", "value": HUGE}, "value"),
    ],
)
def test_a_huge_integer_in_the_second_event_records_nothing_of_the_batch(event: dict[str, Any], field: str) -> None:
    app, registry, sink = make()
    first = {"type": "event", "name": "first"}
    response = call(app, "POST", "/track", json=[first, event])
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert value(registry, "llm_events_total", event="first") is None
    assert (sink.events, sink.features) == ([], [])
    assert track_events(registry) == (0.0, 2.0)


def test_integers_up_to_2_to_the_53_are_exact() -> None:
    app, registry, _ = make()
    batch = [{**LLM, "input_tokens": 2**53, "cost_usd": 2**53}, {"type": "event", "name": "x", "count": 2**53}]
    assert call(app, "POST", "/track", json=batch).json() == {"accepted": 2}
    llm = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "gen_ai_response_model": ""}
    assert value(registry, "llm_tokens_total", **llm, gen_ai_token_type="input") == 2.0**53
    assert value(registry, "llm_events_total", event="x") == 2.0**53


def test_422_names_every_wrong_field_of_every_event() -> None:
    app, registry, _ = make()
    batch = [
        {"type": "llm", "model": "", "output_tokens": -1, "colour": "red"},
        LLM,
        "not an object",
        {"type": "feedback", "rating": 9, "model": 3},
    ]
    response = call(app, "POST", "/track", json=batch)
    assert response.status_code == 422
    assert response.json() == {
        "errors": [
            {"index": 0, "field": "model", "message": "expected a non-empty string"},
            {"index": 0, "field": "output_tokens", "message": "expected an integer >= 0"},
            {"index": 0, "field": "colour", "message": response.json()["errors"][2]["message"]},
            {"index": 2, "field": "(event)", "message": "expected a JSON object, got a string"},
            {"index": 3, "field": "rating", "message": "expected a number between 1 and 5"},
            {"index": 3, "field": "model", "message": "expected a string"},
        ]
    }
    assert response.json()["errors"][2]["message"].startswith("unknown field; expected one of: ")
    assert track_events(registry) == (0.0, 4.0)


@pytest.mark.parametrize("body", [b"3", b'"event"', b"null", b"true"])
def test_422_body_must_be_an_object_or_a_list(body: bytes) -> None:
    app, registry, _ = make()
    response = call(app, "POST", "/track", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {
        "errors": [{"index": 0, "field": "(body)", "message": "expected a JSON object or a list of them"}]
    }


@pytest.mark.parametrize(
    ("content", "content_type", "field", "message"),
    [
        (b"{}", "text/plain", "Content-Type", "expected application/json, got text/plain"),
        (
            b"a=1",
            "application/x-www-form-urlencoded",
            "Content-Type",
            "expected application/json, got application/x-www-form-urlencoded",
        ),
        (
            b'{"type": "llm",',
            "application/json",
            "(body)",
            "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 16 (char 15)",
        ),
        (b"", "application/json", "(body)", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            b'{"type": "confidence", "value": NaN}',
            "application/json",
            "(body)",
            "not valid JSON: NaN is not a JSON number",
        ),
        (b"\xff\xfe{", "application/json", "(body)", None),
    ],
)
def test_415_not_json(content: bytes, content_type: str, field: str, message: str | None) -> None:
    app, registry, _ = make()
    response = call(app, "POST", "/track", content=content, headers={"content-type": content_type})
    assert response.status_code == 415
    [error] = response.json()["errors"]
    assert error["field"] == field
    if message is not None:
        assert error["message"] == message
    else:
        assert error["message"].startswith("not valid JSON: ")
    assert track_events(registry) == (0.0, 0.0)


def test_json_content_types_and_none_are_accepted() -> None:
    app, registry, _ = make()
    for content_type in ("application/json; charset=utf-8", "application/vnd.track+json", None):
        headers = {"content-type": content_type} if content_type else {}
        response = call(app, "POST", "/track", content=json.dumps(LLM).encode(), headers=headers)
        assert (response.status_code, response.json()) == (202, {"accepted": 1})
    assert track_events(registry) == (3.0, 0.0)


def test_413_content_length_over_the_cap() -> None:
    app, registry, _ = make(collector={"max_body_bytes": 100})
    body = json.dumps([LLM, LLM]).encode()
    response = call(app, "POST", "/track", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {
        "errors": [{"field": "(body)", "message": f"body of {len(body)} bytes; at most 100 (collector.max_body_bytes)"}]
    }
    assert track_events(registry) == (0.0, 0.0)


def test_413_counts_while_reading_and_never_reads_past_the_cap() -> None:
    """No Content-Length (chunked): the body is counted as it arrives and reading stops at the cap."""
    app, registry, _ = make(collector={"max_body_bytes": 100})
    chunks = [b"[" + b" " * 39] + [b" " * 40] * 9
    received: list[int] = []
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(len(received))
        return {"type": "http.request", "body": chunks[len(received) - 1], "more_body": len(received) < len(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/track", "headers": [(b"content-type", b"application/json")]}
    asyncio.run(app(scope, receive, send))
    assert len(received) == 3  # 120 bytes > 100: the 7 other chunks were never asked for
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {
        "errors": [{"field": "(body)", "message": "body of at least 120 bytes; at most 100 (collector.max_body_bytes)"}]
    }


def test_413_too_many_events() -> None:
    app, registry, _ = make(collector={"max_events": 5})
    response = call(app, "POST", "/track", json=[LLM] * 6)
    assert response.status_code == 413
    assert response.json() == {
        "errors": [{"field": "(body)", "message": "6 events in one request; at most 5 (collector.max_events)"}]
    }
    assert track_events(registry) == (0.0, 6.0)
    assert call(app, "POST", "/track", json=[LLM] * 5).json() == {"accepted": 5}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Bearer s3cret2", "Basic czNjcmV0", "Bearers3cret"])
def test_401_without_the_bearer_token(authorization: str | None) -> None:
    app, registry, _ = make(collector={"token": "s3cret"})
    headers = {"authorization": authorization} if authorization else {}
    response = call(app, "POST", "/track", json=LLM, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="track"'
    assert response.json() == {
        "errors": [{"field": "Authorization", "message": "expected the header 'Authorization: Bearer <token>'"}]
    }
    assert track_events(registry) == (0.0, 0.0)
    ok = call(app, "POST", "/track", json=LLM, headers={"authorization": "Bearer s3cret"})
    assert (ok.status_code, ok.json()) == (202, {"accepted": 1})


@pytest.mark.parametrize("authorization", ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret "])
def test_the_bearer_scheme_is_case_insensitive(authorization: str) -> None:
    # RFC 9110: the scheme is case-insensitive; the token itself is compared exactly (in constant time).
    app, registry, _ = make(collector={"token": "s3cret"})
    response = call(app, "POST", "/track", json=LLM, headers={"authorization": authorization})
    assert (response.status_code, response.json()) == (202, {"accepted": 1})
    assert track_events(registry) == (1.0, 0.0)


def test_405_and_404() -> None:
    app, _, _ = make()
    response = call(app, "GET", "/track")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert response.json() == {"errors": [{"field": "(method)", "message": "expected POST"}]}
    assert call(app, "POST", "/health").status_code == 405
    missing = call(app, "GET", "/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not found; this collector serves POST /track, GET /metrics and GET /health"}


# -- what gets recorded ------------------------------------------------------------------------------------


def test_seed_payload_exact_values_without_tenant_label() -> None:
    app, registry, sink = make()
    response = call(app, "POST", "/track", json=SEED)
    assert (response.status_code, response.json()) == (202, {"accepted": 1})
    llm = {"gen_ai_provider_name": "unknown", "gen_ai_request_model": "unknown", "gen_ai_response_model": ""}
    duration = {**llm, "gen_ai_operation_name": "chat", "error_type": ""}
    assert value(registry, "gen_ai_client_operation_duration_seconds_count", **duration) == 1.0
    assert value(registry, "gen_ai_client_operation_duration_seconds_sum", **duration) == 1.5
    assert value(registry, "gen_ai_client_operation_duration_seconds_bucket", **duration, le="1.28") == 0.0
    assert value(registry, "gen_ai_client_operation_duration_seconds_bucket", **duration, le="2.56") == 1.0
    assert value(registry, "llm_tokens_total", **llm, gen_ai_token_type="output") == 150.0
    assert value(registry, "llm_tokens_total", **llm, gen_ai_token_type="input") is None
    # The cost the service reported, as one figure: the provider's, not estimated, not split.
    assert series(registry, "llm_cost_usd_total") == {
        tuple(
            sorted({**llm, "gen_ai_token_type": "unsplit", "cost_source": "provider", "http_route": "__none__"}.items())
        ): 0.002
    }
    assert value(registry, "llm_requests_total", **llm, outcome="ok") == 1.0
    assert value(registry, "llm_predictions_total", gen_ai_request_model="unknown", label="general") == 1.0
    assert value(registry, "llm_confidence_count", gen_ai_request_model="unknown", label="general") is None
    assert value(registry, "llm_events_total", event="appointment_requested") is None  # it was false
    assert sink.features == [
        ("predicted_label", "general"),
        ("user_message_length", 45.0),
        ("ai_response_length", 120.0),
        ("response_type", "text"),
    ]
    assert track_events(registry) == (1.0, 0.0)


def test_seed_payload_with_tenant_label_and_appointment() -> None:
    app, registry, sink = make(tenant_label=True)
    payload = {**SEED, "appointment_requested": True}
    assert call(app, "POST", "/track", json=[payload, payload]).json() == {"accepted": 2}
    llm = {
        "gen_ai_provider_name": "unknown",
        "gen_ai_request_model": "unknown",
        "gen_ai_response_model": "",
        "tenant": "test-business",
    }
    assert value(registry, "llm_tokens_total", **llm, gen_ai_token_type="output") == 300.0
    cost = value(registry, "llm_cost_usd_total", **llm, gen_ai_token_type="unsplit", cost_source="provider")
    assert cost == 0.004
    assert value(registry, "llm_requests_total", **llm, outcome="ok") == 2.0
    assert value(registry, "llm_events_total", event="appointment_requested", tenant="test-business") == 2.0
    assert sink.events == [("appointment_requested", "test-business", 1)] * 2


def test_legacy_cost_without_tokens_is_the_providers_cost() -> None:
    """``api_cost_usd`` without ``tokens_used``: what the call cost, as the service was billed."""
    app, registry, _ = make()
    payload = {"business_id": "b", "api_cost_usd": 0.002, "response_time_ms": 1500}
    assert call(app, "POST", "/track", json=payload).json() == {"accepted": 1}
    llm = {"gen_ai_provider_name": "unknown", "gen_ai_request_model": "unknown", "gen_ai_response_model": ""}
    assert value(registry, "llm_cost_usd_total", **llm, gen_ai_token_type="unsplit", cost_source="provider") == 0.002
    assert series(registry, "llm_tokens_total") == {}
    assert series(registry, "llm_exporter_unpriced_tokens_total") == {}


def test_legacy_payload_ignores_fields_it_does_not_know_and_takes_model() -> None:
    app, registry, _ = make()
    payload = {"business_id": "b", "response_time_ms": 250, "session_id": "abc", "model": "gpt-4o", "api_cost_usd": 0}
    assert call(app, "POST", "/track", json=payload).json() == {"accepted": 1}
    duration = {"gen_ai_provider_name": "unknown", "gen_ai_request_model": "gpt-4o", "gen_ai_operation_name": "chat"}
    labels = {**duration, "gen_ai_response_model": "", "error_type": ""}
    assert value(registry, "gen_ai_client_operation_duration_seconds_sum", **labels) == 0.25


def test_a_list_of_1000_events_in_one_post() -> None:
    app, registry, sink = make()
    batch: list[dict[str, Any]] = []
    for i in range(200):
        batch += [
            LLM,
            {**LLM, "duration_ms": 500, "ttft": 0.25, "timestamp": 1_700_000_000 + i},
            {"type": "confidence", "value": 0.5, "label": "booking", "model": "gpt-4o"},
            {"type": "event", "name": "human_handoff", "count": 2},
            {"type": "evaluation", "name": "faithfulness", "score": 0.75, "model": "gpt-4o"}
            if i % 2
            else {"type": "feedback", "rating": 4, "model": "gpt-4o"},
        ]
    assert len(batch) == 1000
    response = call(app, "POST", "/track", json=batch)
    assert (response.status_code, response.json()) == (202, {"accepted": 1000})
    llm = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "gen_ai_response_model": ""}
    # Each call: 3 input + 1 output tokens, and the $0.25 it was billed (exact in binary), as given.
    assert value(registry, "llm_tokens_total", **llm, gen_ai_token_type="input") == 1200.0
    assert value(registry, "llm_tokens_total", **llm, gen_ai_token_type="output") == 400.0
    assert value(registry, "llm_cost_usd_total", **llm, gen_ai_token_type="unsplit", cost_source="provider") == 100.0
    assert value(registry, "llm_requests_total", **llm, outcome="ok") == 400.0
    duration = {**llm, "gen_ai_operation_name": "chat", "error_type": ""}
    assert value(registry, "gen_ai_client_operation_duration_seconds_count", **duration) == 200.0
    assert value(registry, "gen_ai_client_operation_duration_seconds_sum", **duration) == 100.0
    assert value(registry, "gen_ai_client_time_to_first_token_seconds_sum", **llm) == 50.0
    model = {"gen_ai_request_model": "gpt-4o"}
    assert value(registry, "llm_confidence_count", **model, label="booking") == 200.0
    assert value(registry, "llm_confidence_sum", **model, label="booking") == 100.0
    assert value(registry, "llm_predictions_total", **model, label="booking") == 200.0
    assert value(registry, "llm_events_total", event="human_handoff") == 400.0
    assert value(registry, "llm_evaluation_score_count", **model, evaluation="faithfulness") == 100.0
    assert value(registry, "llm_evaluation_score_sum", **model, evaluation="faithfulness") == 75.0
    assert value(registry, "llm_feedback_rating_count", **model) == 100.0
    assert value(registry, "llm_feedback_rating_sum", **model) == 400.0
    assert sink.events == [("human_handoff", None, 2)] * 200
    assert track_events(registry) == (1000.0, 0.0)


def test_http_and_feature_events() -> None:
    app, registry, sink = make()
    batch = [
        {
            "type": "http",
            "method": "post",
            "route": "/chat/{id}",
            "status": 201,
            "duration_ms": 250,
            "request_bytes": 100,
            "response_bytes": 2000,
        },
        {"type": "http", "method": "BREW", "route": "/pot", "status": 418, "duration": 0.5},
        {"type": "feature", "name": "prompt_language", "value": "de"},
        {"type": "feature", "name": "retrieved_documents", "value": 4},
        {"type": "llm", "model": "gpt-4o", "error_type": "timeout", "duration": 30},
    ]
    assert call(app, "POST", "/track", json=batch).json() == {"accepted": 5}
    http = {"http_request_method": "POST", "http_route": "/chat/{id}", "http_response_status_code": "201"}
    assert value(registry, "http_server_request_duration_seconds_sum", **http) == 0.25
    assert value(registry, "http_server_request_body_size_bytes_sum", **http) == 100.0
    assert value(registry, "http_server_response_body_size_bytes_sum", **http) == 2000.0
    other = {"http_request_method": "_OTHER", "http_route": "/pot", "http_response_status_code": "418"}
    assert value(registry, "http_server_request_duration_seconds_count", **other) == 1.0
    assert sink.features == [("prompt_language", "de"), ("retrieved_documents", 4.0)]
    llm = {"gen_ai_provider_name": "unknown", "gen_ai_request_model": "gpt-4o", "gen_ai_response_model": ""}
    assert value(registry, "llm_requests_total", **llm, outcome="error") == 1.0
    duration = {**llm, "gen_ai_operation_name": "chat", "error_type": "timeout"}
    assert value(registry, "gen_ai_client_operation_duration_seconds_sum", **duration) == 30.0


def test_label_values_are_capped() -> None:
    app, registry, _ = make(label_cap=2)
    batch = [{"type": "event", "name": f"e{i}"} for i in range(4)]
    assert call(app, "POST", "/track", json=batch).json() == {"accepted": 4}
    assert value(registry, "llm_events_total", event="e1") == 1.0
    assert value(registry, "llm_events_total", event="__overflow__") == 2.0
    assert value(registry, "llm_exporter_label_overflow_total", label="event") == 2.0


def test_static_labels_apply_to_collected_metrics() -> None:
    app, registry, _ = make(labels={"service": "chat"})
    assert call(app, "POST", "/track", json={"type": "event", "name": "x"}).json() == {"accepted": 1}
    assert value(registry, "llm_events_total", event="x", service="chat") == 1.0
    assert call(app, "GET", "/health").json()["events"] == {"accepted": 1, "rejected": 0}


def test_an_empty_list_is_accepted() -> None:
    app, registry, _ = make()
    assert call(app, "POST", "/track", json=[]).json() == {"accepted": 0}
    assert track_events(registry) == (0.0, 0.0)


# -- /health, /metrics, lifespan ---------------------------------------------------------------------------


def test_health_includes_sink_health() -> None:
    app, _, _ = make()
    call(app, "POST", "/track", json=SEED)
    call(app, "POST", "/track", json={"type": "x"})
    response = call(app, "GET", "/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "events": {"accepted": 1, "rejected": 1},
        "sinks": {"Features": {"status": "ok", "features": 4}},
    }


class Down(Sink):
    def health(self) -> dict[str, Any]:
        return {"state": "degraded", "since": datetime.date(2025, 1, 2)}


class Broken(Sink):
    def health(self) -> dict[str, Any]:
        raise OSError("disk gone")


def test_health_says_degraded_when_a_sink_is() -> None:
    app, _, _ = make()
    app.recorder.add_sink(Down())
    app.recorder.add_sink(Broken())
    response = call(app, "GET", "/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "events": {"accepted": 0, "rejected": 0},
        "sinks": {
            "Features": {"status": "ok", "features": 0},
            "Down": {"state": "degraded", "since": "2025-01-02"},
            "Broken": {"status": "error", "error": "OSError('disk gone')"},
        },
    }


def test_metrics_endpoint_serves_the_recorders_registry() -> None:
    app, _, _ = make()
    call(app, "POST", "/track", json={"type": "event", "name": "appointment_requested"})
    response = call(app, "GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'llm_events_total{event="appointment_requested"} 1.0' in response.text.splitlines()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"type": "llm", "model": "gpt-\\ud800"}', "model"),
        (b'{"type": "event", "name": "signup", "tenant": "\\udfff"}', "tenant"),
        (b'{"type": "feature", "name": "f\\ud83d", "value": 1}', "name"),
    ],
)
def test_422_for_a_lone_surrogate_and_metrics_still_render(body: bytes, field: str) -> None:
    # JSON allows "\ud800"; as a label value it could never be written out, and every scrape would fail.
    app, registry, features = make()
    response = call(app, "POST", "/track", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    message = "expected valid Unicode text (it holds a lone surrogate escape)"
    assert response.json() == {"errors": [{"index": 0, "field": field, "message": message}]}
    assert track_events(registry) == (0.0, 1.0)
    assert (features.features, features.events) == ([], [])
    assert call(app, "GET", "/metrics").status_code == 200


def test_metrics_endpoint_honours_metrics_auth() -> None:
    app, _, _ = make(auth={"bearer_token": "m"})
    assert call(app, "GET", "/metrics").status_code == 401
    assert call(app, "GET", "/metrics", headers={"authorization": "Bearer m"}).status_code == 200


class Closing(Sink):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_lifespan_closes_only_a_recorder_it_created() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(Config.from_mapping({"drift": {"enabled": False}}), registry)
    sink = Closing()
    recorder.add_sink(sink)
    app = Collector(recorder.config, recorder, owns_recorder=True)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert sink.closed == 1
    assert create_app(recorder=recorder).owns_recorder is False


# -- through a real uvicorn ---------------------------------------------------------------------------------


def test_real_server_limits_and_accepts() -> None:
    app, registry, _ = make(collector={"max_body_bytes": 1000, "token": "t"})
    auth = {"authorization": "Bearer t"}

    async def chunked(n: int) -> AsyncIterator[bytes]:
        yield b"["
        for _ in range(n):
            yield json.dumps(LLM).encode() + b","
        yield json.dumps(LLM).encode() + b"]"

    with ThreadServer(app) as server:
        with httpx.Client(base_url=server.url) as client:
            assert client.post("/track", json=[LLM] * 3, headers=auth).json() == {"accepted": 3}
            assert client.post("/track", json=[LLM] * 30, headers=auth).status_code == 413
            assert client.post("/track", json=LLM).status_code == 401

        async def stream(n: int) -> httpx.Response:
            async with httpx.AsyncClient(base_url=server.url) as client:
                return await client.post("/track", content=chunked(n), headers=auth)

        small = asyncio.run(stream(2))
        assert (small.status_code, small.json()) == (202, {"accepted": 3})
        large = asyncio.run(stream(100))
        assert large.status_code == 413
        assert large.json()["errors"][0]["message"].startswith("body of at least ")
    assert track_events(registry) == (6.0, 0.0)


def test_llm_exporter_collector_command(tmp_path: Path) -> None:
    """``llm-exporter collector`` (the CLI calls ``serve``) with a config file; SIGTERM shuts it down gracefully."""
    port = free_port()
    config = tmp_path / "llm-exporter.yaml"
    config.write_text("collector:\n  token: s3cret\ntenant_label: true\ndrift:\n  enabled: false\n")
    args = [sys.executable, "-m", "exporter", "collector", "--port", str(port), "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://{HOST}:{port}"
        wait_http(f"{url}/health", timeout=60, proc=proc)
        with httpx.Client(base_url=url) as client:
            assert client.post("/track", json=SEED).status_code == 401
            accepted = client.post("/track", json=SEED, headers={"authorization": "Bearer s3cret"})
            assert (accepted.status_code, accepted.json()) == (202, {"accepted": 1})
            text = client.get("/metrics").text
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # uvicorn shuts down gracefully, then re-raises the signal so a supervisor sees why it ended.
    assert proc.returncode == -signal.SIGTERM, out
    assert "Application shutdown complete." in out
    line = (
        'llm_tokens_total{gen_ai_provider_name="unknown",gen_ai_request_model="unknown",gen_ai_response_model="",'
        'gen_ai_token_type="output",http_route="__none__",tenant="test-business"} 150.0'
    )
    assert line in text.splitlines()


# -- tests/servers.py's readiness wait (process() uses it for Prometheus, Alertmanager and MLflow) ----------


class Starting:
    """Answers 503 to the first ``busy`` requests, like Prometheus's ``/-/ready`` while it starts, then 200."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.hits = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.hits += 1
        status = 503 if self.hits <= self.busy else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_wait_http_takes_a_503_as_not_ready_yet() -> None:
    app = Starting(busy=3)
    with ThreadServer(app, lifespan="off") as server:
        wait_http(f"{server.url}/-/ready", timeout=30)
        assert app.hits == 4  # three 503s, then the 200
        app.hits = 0
        wait_http(f"{server.url}/-/ready", timeout=30, any_answer=True)
        assert app.hits == 1  # the first 503 is an answer
        app.busy = 10**9
        with pytest.raises(TimeoutError, match=r"was not ready within 0\.2s \(last answer 503\)"):
            wait_http(f"{server.url}/-/ready", timeout=0.2)


def test_track_takes_finish_reasons_tool_calls_chunk_gaps_and_tool_runs() -> None:
    app, registry, _ = make()
    stream = {**LLM, "output_tokens": 11, "duration": 2.5, "ttft_ms": 500, "finish_reasons": ["end_turn", "length"]}
    events = [
        {**stream, "tool_calls": ["search", "search", "book"], "chunk_gaps": [0.001, 0.03, 0.03]},
        {"type": "tool", "name": "search", "duration_ms": 250},
        {"type": "tool", "name": "book", "duration": 1.5, "error_type": "TimeoutError"},
    ]
    response = call(app, "POST", "/track", json=events)
    assert response.status_code == 202 and response.json() == {"accepted": 3}
    assert value(registry, "llm_finish_reasons_total", reason="stop") == 1
    assert value(registry, "llm_finish_reasons_total", reason="length") == 1
    assert value(registry, "llm_tool_calls_total", gen_ai_tool_name="search") == 2
    assert value(registry, "llm_tool_calls_total", gen_ai_tool_name="book") == 1
    assert value(registry, "llm_time_per_output_token_seconds_sum") == 0.2  # (2.5 - 0.5) / 10
    gap = "gen_ai_client_operation_time_per_output_chunk_seconds"
    assert value(registry, f"{gap}_count") == 3 and value(registry, f"{gap}_bucket", le="0.04") == 3
    assert value(registry, f"{gap}_bucket", le="0.001") == 1
    tool = "gen_ai_execute_tool_duration_seconds"
    assert value(registry, f"{tool}_sum", gen_ai_tool_name="search", error_type="") == 0.25
    assert value(registry, f"{tool}_count", gen_ai_tool_name="book", error_type="TimeoutError") == 1
