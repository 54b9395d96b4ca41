"""The window aggregator: exact per-window sums, window boundaries, late results, bounded memory."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.mlflow_bridge.windows import (
    GAMMA,
    MAX_VALUE,
    OVERFLOW,
    Window,
    WindowAggregator,
    add,
    metric_part,
    quantiles,
    summarize,
    summarize_late,
)

W = 60.0
T0 = 1_700_000_040.0  # a window boundary (1_700_000_040 = 28_333_334 * 60)


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(clock: Clock | None = None, **kwargs: int) -> tuple[WindowAggregator, list[Window]]:
    closed: list[Window] = []
    return WindowAggregator(W, closed.append, clock=clock or Clock(), **kwargs), closed


def test_windows_close_when_time_passes_their_end() -> None:
    agg, closed = make()
    for i in range(3):
        agg.http(200, 0.1, T0 + i)
    agg.http(500, 0.2, T0 + W - 0.001)
    assert closed == []
    agg.http(200, 0.3, T0 + W)  # the first instant of the next window
    assert [w.index for w in closed] == [int(T0 // W)]
    first = summarize(closed[0])
    assert first["requests"] == 4
    assert first["errors"] == 1
    assert first["error_rate"] == 0.25
    agg.roll(T0 + 2 * W - 1)  # not past the end yet
    assert len(closed) == 1
    agg.roll(T0 + 2 * W)
    assert [summarize(w)["requests"] for w in closed] == [4, 1]
    assert agg.flush() is None  # nothing open


def test_idle_windows_are_not_opened() -> None:
    agg, closed = make()
    agg.event("signup", T0)
    agg.event("signup", T0 + 10 * W, count=3)
    assert [w.index - closed[0].index for w in closed] == [0]
    w = agg.flush()
    assert w is not None and w.index == closed[0].index + 10
    assert summarize(w) == {"event_signup_count": 3}


def test_llm_signals_per_window_and_per_model() -> None:
    agg, _ = make()
    agg.llm("gpt-4o", 100, 20, 0.25, 1.5, 0.2, False, T0)
    agg.llm("gpt-4o", 50, 10, 0.125, 2.5, None, True, T0 + 1)
    agg.llm("claude/sonnet:4", 10, 5, None, None, None, False, T0 + 2)
    agg.llm("", 1, 1, 0.5, None, None, False, T0 + 3)  # unknown model: only in the totals
    agg.confidence("gpt-4o", 0.5, T0)
    agg.confidence("gpt-4o", 1.0, T0)
    agg.feedback("claude/sonnet:4", 4.0, T0)
    agg.feedback("", 2.0, T0)
    agg.evaluation("faithfulness", "gpt-4o", 0.75, T0)
    agg.evaluation("faithfulness", "", 0.25, T0)
    w = agg.flush()
    assert w is not None
    s = summarize(w)
    assert "requests" not in s  # no HTTP observations in this window
    assert s["llm_calls"] == 4
    assert s["llm_errors"] == 1
    assert s["input_tokens"] == 161
    assert s["output_tokens"] == 36
    assert s["cost_usd"] == 0.875
    assert s["confidence_mean"] == 0.75
    assert s["confidence_count"] == 2
    assert s["feedback_mean"] == 3.0
    assert s["eval_faithfulness_mean"] == 0.5
    assert s["eval_faithfulness_count"] == 2
    assert s["model/gpt-4o/llm_calls"] == 2
    assert s["model/gpt-4o/cost_usd"] == 0.375
    assert s["model/gpt-4o/llm_errors"] == 1
    assert s["model/gpt-4o/eval_faithfulness_mean"] == 0.75
    assert s["model/gpt-4o/confidence_mean"] == 0.75
    assert s["model/gpt-4o/ttft_p95_seconds"] == pytest.approx(0.2, rel=0.01)
    assert s["model/gpt-4o/llm_latency_p95_seconds"] == pytest.approx(2.5, rel=0.01)
    assert s["model/claude_sonnet_4_712e6f588f/llm_calls"] == 1
    assert s["model/claude_sonnet_4_712e6f588f/cost_usd"] == 0.0
    assert s["model/claude_sonnet_4_712e6f588f/feedback_mean"] == 4.0
    assert "model/claude_sonnet_4_712e6f588f/llm_latency_p95_seconds" not in s
    assert not any(k.startswith("model//") or k.startswith("model/_/") for k in s)


def test_late_evaluations_belong_to_their_window() -> None:
    agg, closed = make()
    agg.http(200, 0.1, T0)
    agg.evaluation("relevancy", "m", 0.5, T0 + 1)  # on time
    agg.http(200, 0.1, T0 + W)  # window 0 closes
    agg.evaluation("relevancy", "m", 1.0, T0 + 2)  # late: window 0
    agg.evaluation("relevancy", "", 0.0, T0 + 3)  # late, no model
    agg.evaluation("relevancy", "m", 0.25, T0 + W + 1)  # on time, window 1
    assert summarize(closed[0])["eval_relevancy_mean"] == 0.5
    late = agg.take_late()
    assert [i for i, _ in late] == [closed[0].index]
    assert summarize_late(late[0][1]) == {
        "eval_relevancy_late_mean": 0.5,
        "eval_relevancy_late_count": 2,
        "model/m/eval_relevancy_late_mean": 1.0,
        "model/m/eval_relevancy_late_count": 1,
    }
    assert agg.take_late() == []  # handed out once...
    agg.evaluation("relevancy", "m", 0.0, T0 + 4)
    (index, scores), *_ = agg.take_late()
    assert summarize_late(scores)["model/m/eval_relevancy_late_mean"] == 0.5  # ...then cumulative
    w = agg.flush()
    assert w is not None and summarize(w)["eval_relevancy_mean"] == 0.25


def test_late_windows_are_bounded() -> None:
    agg, _ = make(late_windows=2)
    agg.http(200, 0.1, T0 + 10 * W)
    for i in range(5):
        agg.evaluation("e", "", 1.0, T0 + i * W)
    assert [i - int(T0 // W) for i, _ in agg.take_late()] == [3, 4]


def test_late_results_older_than_late_windows_are_dropped_and_counted() -> None:
    i0 = int(T0 // W)
    clock = Clock(T0 + 10 * W)
    agg, _ = make(clock, late_windows=3)
    agg.http(200, 0.1, T0 + 10 * W)
    for window in (6, 7, 9):  # the horizon is window 10 - 3 = 7
        agg.evaluation("e", "", 1.0, T0 + window * W)
    agg.evaluation("e", "", 1.0, 1.0)  # a timestamp of 1970: no run for 1970-01-01
    agg.evaluation("e", "", 1.0, T0 + 10 * W + 1)  # on time
    assert agg.late_dropped == 2
    assert [i - i0 for i, _ in agg.take_late()] == [7, 9]
    clock.t = T0 + 12 * W  # time moves on: window 7 is now past the horizon too
    agg.evaluation("e", "", 1.0, T0 + 7 * W)
    assert agg.late_dropped == 3
    assert agg.take_late() == []
    w = agg.flush()
    assert w is not None and w.index == i0 + 10 and summarize(w)["eval_e_count"] == 1


def test_no_window_is_opened_for_a_time_long_gone() -> None:
    agg, closed = make(Clock(T0), late_windows=5)
    agg.evaluation("e", "", 1.0, 1.0)  # the first observation: dropped, not a window of 1970
    assert agg.late_dropped == 1 and agg.flush() is None
    agg.llm("", 1, 1, None, None, None, False, 1.0)  # a caller's bad timestamp: counted now
    agg.evaluation("e", "", 0.5, T0 - 5 * W)  # within the horizon: late for a window never opened
    w = agg.flush()
    assert w is not None and w.index == int(T0 // W)
    assert summarize(w) == {"llm_calls": 1, "llm_errors": 0, "input_tokens": 1, "output_tokens": 1, "cost_usd": 0.0}
    assert [(i - int(T0 // W), summarize_late(s)) for i, s in agg.take_late()] == [
        (-5, {"eval_e_late_mean": 0.5, "eval_e_late_count": 1})
    ]
    assert closed == [] and agg.late_dropped == 1


def test_other_observations_with_a_past_time_count_in_the_current_window() -> None:
    agg, closed = make()
    agg.http(200, 0.1, T0 + W)
    agg.http(200, 0.1, T0)  # clock skew between threads: no window is reopened
    agg.roll(T0 + 2 * W)
    agg.feedback("", 5.0, T0 + W)  # after a roll closed it: the next window
    w = agg.flush()
    assert [summarize(x)["requests"] for x in closed] == [2]
    assert w is not None and w.index == closed[0].index + 1


def test_names_are_capped_per_window() -> None:
    agg, _ = make(max_keys=2)
    for i in range(5):
        agg.llm(f"model-{i}", 1, 1, None, None, None, False, T0)
        agg.event(f"event-{i}", T0)
        agg.evaluation(f"eval-{i}", "", 1.0, T0)
    w = agg.flush()
    assert w is not None
    assert set(w.models) == {"model-0", "model-1", OVERFLOW}
    assert w.models[OVERFLOW].llm_calls == 3
    assert w.events == {"event-0": 1, "event-1": 1, OVERFLOW: 3}
    assert w.total.evaluations[OVERFLOW] == [3.0, 3]


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, 1e-300, 1e300])
def test_odd_values_never_raise(value: float) -> None:
    agg, _ = make()
    agg.http(200, value, T0)
    agg.llm("m", 1, 1, None, value, value, False, T0)
    w = agg.flush()
    assert w is not None
    s = summarize(w)
    assert s["requests"] == 1
    assert 0.0 <= s["latency_p99_seconds"] <= MAX_VALUE


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=1e-4, max_value=1e4), min_size=1, max_size=300))
def test_quantiles_are_within_the_relative_accuracy(values: list[float]) -> None:
    sketch: dict[int, int] = {}
    for v in values:
        add(sketch, v)
    for q, estimate in zip((0.5, 0.95, 0.99), quantiles(sketch, (0.5, 0.95, 0.99)), strict=True):
        exact = float(np.quantile(values, q, method="inverted_cdf"))
        assert abs(estimate - exact) <= exact * (math.sqrt(GAMMA) - 1) * 1.0001


def test_memory_does_not_grow_with_the_count() -> None:
    agg, _ = make()
    rng = random.Random(7)
    for _ in range(200_000):
        agg.http(200, rng.lognormvariate(-2.0, 1.5), T0)
    w = agg.flush()
    assert w is not None and w.requests == 200_000
    # Buckets cover the value range, not the values: 1e-4 s .. 1e3 s is ~800 buckets at most.
    assert len(w.latency) < 1000


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("answer_relevancy", "answer_relevancy"),
        # Names MLflow would not take as they are: made safe, and kept apart by a hash of the whole name.
        ("meta-llama/Llama-3-8B", "meta-llama_Llama-3-8B_f86626800d"),
        ("llama3:8b", "llama3_8b_e6335d5749"),
        ("..", ".._7c076d0f9d"),
        ("", "_7d64c5272e"),
        ("a" * 300, "a" * 89 + "_a21399f24b"),
        ("a_b_ed08611667", "a_b_ed08611667_8fd68db7e0"),  # looks hashed: hashed again, never equal to one
    ],
)
def test_metric_part(name: str, expected: str) -> None:
    from mlflow.utils.validation import _validate_metric_name

    assert metric_part(name) == expected
    _validate_metric_name(f"model/{metric_part(name)}/eval_{metric_part(name)}_late_count")
