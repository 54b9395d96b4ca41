from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

from exporter.config import Config
from exporter.labels import OVERFLOW
from exporter.observations import LLMCall
from exporter.prometheus.families import Metrics
from exporter.prometheus.fastpath import FastValue, SharedValue, observer, owned_observer, shared, unlocked
from exporter.recorder import Recorder

from ..support.metrics import value


def test_label_guard_caps_and_counts_each_fold() -> None:
    registry = CollectorRegistry()
    guard = Metrics(registry, label_cap=2).guard
    assert [guard("label", v) for v in ("a", "b", "a", "c", "d", "b")] == ["a", "b", "a", OVERFLOW, OVERFLOW, "b"]
    assert guard("label", OVERFLOW) == OVERFLOW  # an already folded value is not counted again
    assert guard("other", "x") == "x"  # caps are per label
    assert registry.get_sample_value("llm_exporter_label_overflow_total", {"label": "label"}) == 2


@pytest.mark.parametrize("value", [0.0, 0.005, 0.0051, 0.3, 1.0, 299.9, 300.0, 1e6])
def test_observer_fills_the_same_buckets_as_observe(value: float) -> None:
    buckets = (0.005, 0.01, 0.5, 1.0, 300.0)
    plain = Histogram("plain", "", registry=CollectorRegistry(), buckets=buckets)
    fast = Histogram("fast", "", registry=CollectorRegistry(), buckets=buckets)
    plain.observe(value)
    observer(fast)(value)

    def samples(h: Histogram, name: str) -> list[tuple[str, dict[str, str], float]]:
        return [(s.name[len(name) :], s.labels, s.value) for s in h.collect()[0].samples if "_created" not in s.name]

    assert samples(fast, "fast") == samples(plain, "plain")


def test_unlocked_values_keep_counts_and_exemplars() -> None:
    registry = CollectorRegistry()
    child = unlocked(Histogram("h", "", ["route"], registry=registry, buckets=(1.0, 2.0)).labels("/x"))
    assert type(child._sum) is FastValue
    observe = observer(child)
    observe(0.5)
    observe(1.5)
    child.observe(1.8, {"trace_id": "abc"})
    assert registry.get_sample_value("h_count", {"route": "/x"}) == 3
    assert registry.get_sample_value("h_sum", {"route": "/x"}) == pytest.approx(3.8)
    assert registry.get_sample_value("h_bucket", {"route": "/x", "le": "1.0"}) == 1
    assert b'h_bucket{le="2.0",route="/x"} 3.0 # {trace_id="abc"} 1.8' in openmetrics(registry)


def test_unlocked_increments_from_threads_are_exact() -> None:
    # The reason the request path may go without prometheus_client's lock: `+=` on the value does not
    # release the GIL. Many threads, many increments, nothing lost.
    registry = CollectorRegistry()
    child = unlocked(Histogram("t", "", registry=registry, buckets=(1.0,)))
    observe = observer(child)

    def work() -> None:
        for _ in range(50_000):
            observe(0.5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.get_sample_value("t_count", {}) == 400_000
    assert registry.get_sample_value("t_bucket", {"le": "1.0"}) == 400_000


def test_label_names_lists_every_dynamic_label() -> None:
    from exporter.labels import LABEL_NAMES

    registry = CollectorRegistry()
    metrics = Metrics(registry, tenant=True)
    used = {name for family in vars(metrics).values() if hasattr(family, "_labelnames") for name in family._labelnames}
    assert used == LABEL_NAMES


def test_every_histogram_has_its_own_bucket_key() -> None:
    from exporter.config import Config

    keys = ("http_request_body_size", "http_response_body_size", "confidence", "evaluation_score", "feedback_rating")
    config = Config.from_mapping({"buckets": {key: [i + 1.0, 100.0] for i, key in enumerate(keys)}})
    metrics = Metrics(CollectorRegistry(), buckets=config.buckets)
    families = (
        metrics.http_request_size,
        metrics.http_response_size,
        metrics.confidence,
        metrics.evaluation,
        metrics.feedback,
    )
    assert [tuple(f._upper_bounds) for f in families] == [(i + 1.0, 100.0, float("inf")) for i in range(5)]


def test_label_guard_replaces_what_cannot_be_written_as_utf8() -> None:
    registry = CollectorRegistry()
    guard = Metrics(registry, label_cap=2).guard
    assert [guard("model", v) for v in ("gpt-\ud800", "gpt-?", "ok")] == ["gpt-?", "gpt-?", "ok"]
    assert guard("model", "\udfff") == OVERFLOW  # a third value past the cap of 2


def test_shared_values_take_the_owner_lock_free_and_every_other_thread_locked() -> None:
    # One owner adding without a lock while other threads add through inc(): two attributes, nothing lost.
    registry = CollectorRegistry()
    child = shared(Histogram("s", "", registry=registry, buckets=(1.0,)))
    assert type(child._sum) is SharedValue
    owned, locked = owned_observer(child), observer(child)
    assert owned is not None
    threads = [threading.Thread(target=lambda: [locked(2.0) for _ in range(20_000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(50_000):
        owned(0.5)
    for t in threads:
        t.join()
    assert registry.get_sample_value("s_count", {}) == 130_000
    assert registry.get_sample_value("s_bucket", {"le": "1.0"}) == 50_000
    assert registry.get_sample_value("s_sum", {}) == 185_000.0
    assert shared(child) is child and type(child._sum) is SharedValue  # idempotent: the values are kept


def alongside_threads(record: Callable[[int], None], here: int) -> None:
    """``record(here)`` in this thread while four others each run ``record(10_000)``."""
    threads = [threading.Thread(target=record, args=(10_000,)) for _ in range(4)]
    for t in threads:
        t.start()
    record(here)
    for t in threads:
        t.join()


def test_llm_calls_from_the_owner_and_from_threads_are_all_counted() -> None:
    # The owner (the first thread to record) goes through its rows without locks; sync handlers' threads
    # take the locked path to the same series.
    registry = CollectorRegistry()
    rec = Recorder(Config.from_mapping({"drift": {"enabled": False}}), registry)

    def record(n: int) -> None:
        for _ in range(n):
            rec.llm(LLMCall("gpt-4o", "openai", input_tokens=3, output_tokens=4, duration=0.5, route="/chat"))

    record(1)  # this thread owns the lock-free path
    alongside_threads(record, 19_999)
    assert value(registry, "llm_requests_total", gen_ai_request_model="gpt-4o") == 60_000
    assert value(registry, "llm_tokens_total", gen_ai_token_type="input") == 180_000
    assert value(registry, "llm_tokens_total", gen_ai_token_type="output") == 240_000
    assert value(registry, "gen_ai_client_operation_duration_seconds_count", gen_ai_request_model="gpt-4o") == 60_000
    assert value(registry, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == 240_000


def test_quality_signals_from_the_owner_and_from_threads_are_all_counted() -> None:
    registry = CollectorRegistry()
    rec = Recorder(Config.from_mapping({"drift": {"enabled": False}}), registry)
    rec.start()  # this thread owns the lock-free path

    def record(n: int) -> None:
        for _ in range(n):
            rec.confidence(0.5, "booking", "gpt-4o")
            rec.event("handoff")

    alongside_threads(record, 20_000)
    rec.close()
    assert value(registry, "llm_confidence_count", label="booking") == 60_000
    assert value(registry, "llm_predictions_total", label="booking") == 60_000
    assert value(registry, "llm_events_total", event="handoff") == 60_000
