"""Random /track batches and random provider-shaped answers through the collector and the middleware:
every scrape passes ``promtool check metrics``, every family stays within its series budget, the whole
exposition within the worst case, and no request fails because of metrics."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from starlette.testclient import TestClient

from exporter import PrometheusMiddleware
from exporter.collector import create_app
from exporter.config import Config
from exporter.labels import OVERFLOW
from exporter.prometheus.families import worst_case_series
from exporter.recorder import Recorder

from ..support.metrics import value
from ..support.servers import binary

BUDGET = 300  # small, so that random traffic reaches it within a few examples
CONFIG = Config.from_mapping({"series_budget": BUDGET, "label_cap": 30, "drift": {"enabled": False}})

names = st.one_of(
    st.sampled_from(["gpt-4o", "claude", "a?b", "a!b", "", " ", "__overflow__", "x" * 300, "\u00e9t\u00e9"]),
    st.text(alphabet="abcdefgh/:?-_. ", min_size=1, max_size=12),
)
# What providers and clients put where a count belongs: small and huge integers, the float64 edge,
# fractions, NaN and infinities (Python's json reads them), text, nothing.
numbers = st.one_of(
    st.integers(-5, 10**6),
    st.integers(2**53 - 2, 2**53 + 2),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(1e300),
    st.text(max_size=3),
    st.none(),
)


def events(name: Any, number: Any, status: Any) -> Any:
    """/track events of every type, their fields drawn from ``name``, ``number`` and ``status``."""
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("llm"), "model": name},
            optional={"provider": name, "input_tokens": number, "output_tokens": number, "duration": number},
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("http"),
                "method": st.sampled_from(["GET", "POST", "put", "BREW"]),
                "route": name.map(lambda n: "/" + n),
                "status": status,
                "duration": number,
            }
        ),
        st.fixed_dictionaries({"type": st.just("event"), "name": name}, optional={"count": number}),
        st.fixed_dictionaries(
            {"type": st.just("confidence"), "value": st.floats(0, 1)}, optional={"label": name, "model": name}
        ),
        st.fixed_dictionaries(
            {"type": st.just("evaluation"), "name": name, "score": st.floats(0, 1)}, optional={"model": name}
        ),
        st.fixed_dictionaries({"type": st.just("feature"), "name": name, "value": st.one_of(number, name)}),
    )


# Valid batches fill the families up to their budgets; the others (any wrong field refuses the whole
# batch) check that refusing is all that happens.
valid = events(st.text(alphabet="abcdefghij", min_size=1, max_size=5), st.integers(1, 10**6), st.integers(100, 599))
batches = st.one_of(
    st.lists(valid, min_size=1, max_size=60),
    st.lists(st.one_of(valid, events(names, numbers, numbers)), min_size=1, max_size=20),
)


@st.composite
def answers(draw: Any) -> tuple[bytes, bytes]:
    """(content type, body) of an OpenAI, Anthropic or Gemini answer or stream, possibly cut short."""
    model, a, b, c = draw(names), draw(numbers), draw(numbers), draw(numbers)
    shape = draw(st.sampled_from(["openai", "anthropic", "gemini", "sse"]))
    if shape == "openai":
        usage = {"prompt_tokens": a, "completion_tokens": b, "prompt_tokens_details": {"cached_tokens": c}}
        doc: Any = {"id": "c", "object": "chat.completion", "model": model, "choices": [], "usage": usage}
    elif shape == "anthropic":
        usage = {"input_tokens": a, "output_tokens": b, "cache_read_input_tokens": c}
        doc = {"id": "m", "type": "message", "model": model, "usage": usage}
    elif shape == "gemini":
        doc = {
            "candidates": [],
            "usageMetadata": {"promptTokenCount": a, "candidatesTokenCount": b},
            "modelVersion": model,
        }
    else:
        chunk = {"id": "c", "object": "chat.completion.chunk", "model": model}
        events = [
            {**chunk, "choices": [{"delta": {"content": "hi"}}]},
            {**chunk, "choices": [], "usage": {"prompt_tokens": a, "completion_tokens": b}},
        ]
        body = b"".join(b"data: " + _dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        return b"text/event-stream", body[: draw(st.integers(1, len(body)))]
    body = _dumps(doc)
    return b"application/json", body[: draw(st.integers(1, len(body)))]


def _dumps(doc: Any) -> bytes:
    # Python's json writes NaN and Infinity, and any integer: what a sloppy provider or proxy may send.
    return json.dumps(doc).encode()


def _provider_app(answer: dict[str, tuple[bytes, bytes]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        content_type, body = answer["next"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:], "more_body": False})

    return app


def test_random_traffic_keeps_every_scrape_valid_and_within_the_budget(tmp_path: Path) -> None:
    promtool = binary("promtool")
    registry = CollectorRegistry()
    rec = Recorder(CONFIG, registry)
    answer: dict[str, tuple[bytes, bytes]] = {}
    app = TestClient(PrometheusMiddleware(_provider_app(answer), recorder=rec))
    collector = TestClient(create_app(CONFIG, rec))
    worst = worst_case_series(CONFIG)
    scrape = tmp_path / "scrape.txt"

    # derandomize: the same examples every run, so the check below (the budget was reached) cannot be luck.
    @settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=batches, replies=st.lists(answers(), min_size=1, max_size=5), path=st.text("abc-_.~", max_size=8))
    def check(batch: list[dict[str, Any]], replies: list[tuple[bytes, bytes]], path: str) -> None:
        track = collector.post(
            "/track", content=json.dumps(batch).encode(), headers={"content-type": "application/json"}
        )
        assert track.status_code in (202, 413, 415, 422), track.text
        for reply in replies:
            answer["next"] = reply
            assert app.post("/" + path).status_code == 200  # capture never fails a request
        text = generate_latest(registry)
        scrape.write_bytes(text)
        with scrape.open("rb") as stdin:
            checked = subprocess.run([promtool, "check", "metrics"], stdin=stdin, capture_output=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        counts = {family.name: len(family.samples) for family in registry.collect()}
        assert max(counts.values()) <= BUDGET, counts
        assert sum(counts.values()) <= worst

    check()


def test_past_the_http_share_every_folded_request_is_counted() -> None:
    """200 routes of one method and status on a fresh recorder: exact overflow counts, and a valid bound."""
    registry = CollectorRegistry()
    collector = TestClient(create_app(CONFIG, Recorder(CONFIG, registry)))
    http = [{"type": "http", "method": "GET", "route": f"/r{i}", "status": 200, "duration": 0.1} for i in range(200)]
    assert collector.post("/track", json=http).status_code == 202
    counts = {family.name: len(family.samples) for family in registry.collect()}
    assert max(counts.values()) <= BUDGET, counts
    folded = {
        s.labels["label"]: s.value
        for f in registry.collect()
        if f.name == "llm_exporter_label_overflow"
        for s in f.samples
        if s.name.endswith("_total")
    }
    # label_cap 30: routes 31..200 become __overflow__ (170). The HTTP histograms' share is 300 // 27 = 11
    # combinations, the overflow one included: requests 1..10 have their own series, the other 190 fold.
    assert folded == {"http_route": 170.0, "http_server_request_duration_seconds": 190.0}
    duration = "http_server_request_duration_seconds_count"
    every = {"http_request_method": OVERFLOW, "http_route": OVERFLOW, "http_response_status_code": OVERFLOW}
    assert value(registry, duration, **every) == 190.0
