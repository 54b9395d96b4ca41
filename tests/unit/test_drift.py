"""Drift detection: exact statistics, seeded statistical behaviour, the sink's window and gauges,
baseline files, MLflow baselines and the ``llm-exporter baseline`` command."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from exporter.cli import main
from exporter.config import Config, ConfigError
from exporter.drift import DriftSink
from exporter.drift.baseline import baseline_document, load_baseline, save_baseline
from exporter.drift.stats import (
    CategoricalBaseline,
    NumericBaseline,
    histogram,
    js_distance,
    ks,
    mass_groups,
    psi,
    quantile,
    quantile_edges,
)
from exporter.observations import LLMCall
from exporter.recorder import Recorder
from exporter.wiring import drift_sink, recorder_for

from ..support import REPO

T0 = 60.0 * 20_000  # on a slot boundary, so window arithmetic below is exact


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


Make = Callable[..., tuple[DriftSink, CollectorRegistry, Clock]]
RECORDERS: dict[int, Recorder] = {}  # id(sink) -> the recorder the make fixture added it to


def recorder_of(sink: DriftSink) -> Recorder:
    return RECORDERS[id(sink)]


@pytest.fixture
def make() -> Iterator[Make]:
    """A DriftSink on a fresh registry with a fake clock; drift config keys as keyword arguments."""
    sinks: list[DriftSink] = []

    def factory(
        *, labels: dict[str, str] | None = None, mlflow_uri: str | None = None, start: bool = True, **drift: Any
    ) -> Any:
        registry = CollectorRegistry()
        data: dict[str, Any] = {"drift": drift, "labels": labels or {}}
        if mlflow_uri is not None:
            data["mlflow"] = {"tracking_uri": mlflow_uri}
        recorder = Recorder(Config.from_mapping(data), registry)
        clock = Clock()
        sink = drift_sink(recorder, clock=clock)
        recorder.add_sink(sink)
        if start:
            sink.start()
        sinks.append(sink)
        RECORDERS[id(sink)] = recorder
        return sink, registry, clock

    yield factory
    for sink in sinks:
        sink.close()


def score(registry: CollectorRegistry, feature: str, method: str) -> float | None:
    return registry.get_sample_value("llm_drift_score", {"feature": feature, "method": method})


def window_samples(registry: CollectorRegistry, feature: str) -> float | None:
    return registry.get_sample_value("llm_drift_window_samples", {"feature": feature})


def feed(sink: DriftSink, name: str, values: Any, ts: float = T0) -> None:
    for v in values:
        sink.on_feature(name, v.item() if hasattr(v, "item") else v, ts)


# -- exact statistics ---------------------------------------------------------------------------------------


def test_psi_hand_computed() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5 = 0.25 ln 3
    assert psi([2, 2], [1, 3]) == pytest.approx(0.25 * math.log(3), abs=1e-9)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(3), abs=1e-9)


def test_psi_smooths_empty_bins_with_epsilon() -> None:
    # expected (0.5, 0.5, 0 -> 1e-4), actual (0.25, 0.25, 0.5)
    want = 2 * (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi([1, 1, 0], [1, 1, 2]) == pytest.approx(want, abs=1e-9)
    assert psi([1, 1, 0], [1, 1, 2], epsilon=0.01) == pytest.approx(
        2 * (0.25 - 0.5) * math.log(0.5) + (0.5 - 0.01) * math.log(0.5 / 0.01), abs=1e-9
    )
    assert psi([3, 0], [6, 0]) == 0.0  # empty on both sides: no term


def test_ks_hand_computed() -> None:
    # CDFs at the inner edges: (0.25, 0.75) vs (0.5, 0.75)
    assert ks([1, 2, 1], [2, 1, 1]) == pytest.approx(0.25, abs=1e-9)
    assert ks([1, 0], [0, 1]) == pytest.approx(1.0, abs=1e-9)
    assert ks([4], [9]) == 0.0


def test_js_distance_hand_computed() -> None:
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0, abs=1e-9)  # disjoint: one bit
    p, q, m = (0.5, 0.5), (0.25, 0.75), (0.375, 0.625)
    divergence = sum(0.5 * a * math.log2(a / c) + 0.5 * b * math.log2(b / c) for a, b, c in zip(p, q, m, strict=True))
    assert js_distance([1, 1], [1, 3]) == pytest.approx(math.sqrt(divergence), abs=1e-9)
    assert js_distance([2, 5, 0], [4, 10, 0]) == pytest.approx(0.0, abs=1e-9)


def test_statistics_match_scipy_on_seeded_data() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 10, 300), rng.integers(0, 12, 200)
    edges = [i + 0.5 for i in range(11)]  # one bin per integer: the binned KS is the exact two-sample KS
    ca, cb = histogram(a.tolist(), edges), histogram(b.tolist(), edges)
    assert ks(ca, cb) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-9)
    assert js_distance(ca, cb) == pytest.approx(jensenshannon(ca, cb, base=2), abs=1e-9)
    pa, pb = np.array(ca) / sum(ca), np.array(cb) / sum(cb)
    pa, pb = np.where(pa > 0, pa, 1e-4), np.where(pb > 0, pb, 1e-4)
    assert psi(ca, cb) == pytest.approx(float(np.sum((pb - pa) * np.log(pb / pa))), abs=1e-9)


def test_mismatched_or_empty_distributions_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="differ"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        ks([0, 0], [1, 1])


def test_quantiles_and_edges() -> None:
    values = [1, 1, 1, 1, 2, 2, 3, 4]
    assert quantile_edges(values, 4) == [1.0, 1.5, 2.25]  # numpy.quantile(values, [.25, .5, .75])
    assert quantile_edges([5.0] * 10, 4) == [5.0]  # ties merge into one edge
    data = np.random.default_rng(1).normal(size=101)
    ordered = sorted(data.tolist())
    for p in (0.0, 0.1, 0.37, 0.5, 0.99, 1.0):
        assert quantile(ordered, p) == pytest.approx(float(np.quantile(data, p)), abs=1e-12)
    # bin i holds edges[i-1] <= x < edges[i]
    assert histogram([0.9, 1.0, 1.2, 2.0, 7.0], [1.0, 2.0]) == [1, 2, 2]


def test_mass_groups() -> None:
    assert mass_groups([1] * 10, 5) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert mass_groups([5, 0, 0, 5], 2) == [0, 1, 1, 1]
    assert mass_groups([0, 10, 0], 4) == [0, 1, 2]  # empty outer bins stay apart: values beyond the baseline
    assert mass_groups([0, 0, 3, 3, 0, 0], 2) == [0, 0, 1, 2, 3, 3]  # ...one group per side
    assert mass_groups([0, 4, 0, 4], 4) == [0, 1, 2, 2]  # an empty inner bin joins a neighbour
    assert mass_groups([], 3) == []


def test_a_constant_baseline_still_sees_a_total_shift(make: Make) -> None:
    """All baseline values equal: one fine bin holds everything, the other (below it) is empty. Moving
    every recent value into the empty bin must score high, not 0."""
    sink, registry, _ = make(baseline_size=100, min_samples=1)
    feed(sink, "x", [1.0] * 100)
    feed(sink, "x", [0.2] * 200)
    assert sink.baselines()["x"] == NumericBaseline((1.0,), (0.0, 100.0))
    scores = sink.score_now()["x"]
    # Proportions (eps, 1) vs (1, eps): PSI = 2 (1 - eps) ln(1 / eps); disjoint for JS and KS.
    assert scores["psi"] == pytest.approx(2 * (1 - 1e-4) * math.log(1e4), abs=1e-9)
    assert scores["js"] == pytest.approx(1.0, abs=1e-9)
    assert scores["ks"] == 1.0
    assert scores["psi"] > 0.25 and scores["js"] > 0.5
    assert score(registry, "x", "psi") == scores["psi"]


def test_baseline_builders() -> None:
    b = NumericBaseline.from_values([3.0, 1.0, float("nan"), 2.0, 4.0, float("inf")], 2)
    assert b == NumericBaseline((2.5,), (2.0, 2.0))
    c = CategoricalBaseline.from_counts({"b": 3, "a": 3, "z": 5, "rare": 1, "__other__": 2}, 3)
    assert c == CategoricalBaseline(("z", "a", "b"), (5.0, 3.0, 3.0, 3.0))


# -- seeded statistical behaviour, through the sink ---------------------------------------------------------


def _normal(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    return rng.normal(100.0 + 15.0 * shift, 15.0, n)


def _tokens(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    # Prompt sizes: integers with many ties, lognormal; "shift" moves the mean by that many standard deviations.
    base = rng.lognormal(5.0, 0.5, n)
    sd = math.sqrt((math.exp(0.25) - 1) * math.exp(10 + 0.25))
    return np.round(base + shift * sd).astype(int)


@pytest.mark.parametrize("generate", [_normal, _tokens], ids=["normal", "integer-tokens"])
def test_same_distribution_scores_low(make: Make, generate: Any) -> None:
    sink, registry, _ = make(baseline_size=5000, min_samples=200)
    rng = np.random.default_rng(42)
    feed(sink, "x", generate(rng, 5000, 0.0))
    feed(sink, "x", generate(rng, 5000, 0.0))
    sink.score_now()
    assert window_samples(registry, "x") == 5000.0
    assert score(registry, "x", "psi") < 0.1
    assert score(registry, "x", "ks") < 0.05
    assert score(registry, "x", "js") < 0.1


@pytest.mark.parametrize("generate", [_normal, _tokens], ids=["normal", "integer-tokens"])
def test_mean_shifted_by_one_sd_scores_high(make: Make, generate: Any) -> None:
    sink, registry, _ = make(baseline_size=5000)
    rng = np.random.default_rng(43)
    baseline, recent = generate(rng, 5000, 0.0), generate(rng, 5000, 1.0)
    feed(sink, "x", baseline)
    feed(sink, "x", recent)
    scores = sink.score_now()["x"]
    assert scores["psi"] > 0.25
    assert scores["js"] > 0.2
    # KS on 100 fine quantile bins stays within about one bin's mass of the exact two-sample statistic.
    assert abs(scores["ks"] - ks_2samp(baseline, recent).statistic) < 0.015
    assert score(registry, "x", "psi") == scores["psi"]


def test_new_dominant_category_scores_high_and_is_counted(make: Make) -> None:
    sink, registry, _ = make(baseline_size=5000)
    rng = np.random.default_rng(44)
    old = ["billing", "support", "sales"]
    feed(sink, "intent", rng.choice(old, 5000, p=[0.5, 0.3, 0.2]))
    recent = np.where(rng.random(5000) < 0.6, "cancel", rng.choice(old, 5000, p=[0.5, 0.3, 0.2]))
    feed(sink, "intent", recent)
    scores = sink.score_now()["intent"]
    assert set(scores) == {"psi", "js"}  # no KS for categories
    assert scores["psi"] > 0.25
    unseen = int(np.sum(recent == "cancel"))
    assert registry.get_sample_value("llm_drift_unseen_categories_total", {"feature": "intent"}) == unseen


def test_same_categories_score_low(make: Make) -> None:
    sink, _, _ = make(baseline_size=5000)
    rng = np.random.default_rng(45)
    for _ in range(2):
        feed(sink, "intent", rng.choice(["a", "b", "c", "d"], 5000, p=[0.4, 0.3, 0.2, 0.1]))
    assert sink.score_now()["intent"]["psi"] < 0.1


# -- the sink: window, minimum count, gauges ------------------------------------------------------------------


def test_nothing_exported_below_min_samples(make: Make) -> None:
    sink, registry, clock = make(baseline_size=100, min_samples=200)
    feed(sink, "x", range(100))  # the baseline; not part of any window
    feed(sink, "x", range(199))
    assert sink.score_now() == {}
    for method in ("psi", "ks", "js"):
        assert score(registry, "x", method) is None
    assert window_samples(registry, "x") is None
    feed(sink, "x", [5])
    assert set(sink.score_now()["x"]) == {"psi", "ks", "js"}
    assert window_samples(registry, "x") == 200.0
    # The window slides past every observation: the feature disappears again rather than showing stale scores.
    clock.t = T0 + 3600
    assert sink.score_now() == {}
    assert score(registry, "x", "psi") is None
    assert window_samples(registry, "x") is None


_MULTIPROCESS_SCRIPT = """
import json, sys
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from exporter.config import Config
from exporter.recorder import Recorder
from exporter.wiring import drift_sink

T0 = float(sys.argv[2])
now = [T0]
drift = {"baseline_size": 4, "min_samples": 2, "resolution": 4, "bins": 4}
rec = Recorder(Config.from_mapping({"drift": drift}), CollectorRegistry())
sink = drift_sink(rec, clock=lambda: now[0])
sink.start()
for v in (1.0, 2.0, 3.0, 4.0, 1.0, 4.0):  # a baseline of 4, then 2 in the window
    sink.on_feature("x", v, T0)

def read():
    shared = CollectorRegistry()
    MultiProcessCollector(shared, sys.argv[1])
    got = {m: shared.get_sample_value("llm_drift_score", {"feature": "x", "method": m}) for m in ("psi", "ks", "js")}
    got["samples"] = shared.get_sample_value("llm_drift_window_samples", {"feature": "x"})
    return got

sink.score_now()
before = read()
now[0] = T0 + 7200  # the window slides past both observations
sink.score_now()
print(json.dumps({"before": before, "after": read(), "scores": sink.scores()}))
sink.close()
"""


def test_multiprocess_mode_sets_nan_instead_of_a_stale_score(tmp_path: Path) -> None:
    """prometheus_client cannot remove a sample in multiprocess mode; its value files are only used when
    PROMETHEUS_MULTIPROC_DIR is set before it is imported, hence a fresh interpreter."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _MULTIPROCESS_SCRIPT, str(tmp_path), str(T0)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == ""  # no "removal of labels has not been implemented" warning
    got = json.loads(done.stdout)
    want = NumericBaseline((1.75, 2.5, 3.25), (1.0, 1.0, 1.0, 1.0))  # 1..4 cut at their quartiles
    recent = [1.0, 0.0, 0.0, 1.0]
    assert got["before"] == {
        "psi": pytest.approx(psi(want.counts, recent), abs=1e-12),
        "ks": pytest.approx(0.25, abs=1e-12),
        "js": pytest.approx(js_distance(want.counts, recent), abs=1e-12),
        "samples": 2.0,
    }
    assert got["scores"] == {}
    assert set(got["after"]) == {"psi", "ks", "js", "samples"}
    assert all(math.isnan(v) for v in got["after"].values())  # NaN > threshold is false: the alert resolves


def test_sliding_window_and_bad_timestamps(make: Make) -> None:
    sink, registry, clock = make(baseline_size=10, min_samples=1)  # 60 slots of 60 s
    feed(sink, "x", range(10))
    feed(sink, "x", [1.0] * 3, ts=T0)
    clock.t = T0 + 1800
    feed(sink, "x", [1.0] * 4, ts=T0 + 1800)
    feed(sink, "x", [1.0] * 5, ts=T0 + 1800 + 600)  # ahead of the clock: dropped, never wipes live data
    sink.score_now()
    assert window_samples(registry, "x") == 7.0
    feed(sink, "x", [1.0] * 6, ts=T0 - 3600)  # the row holds a newer slot: dropped
    clock.t = T0 + 3540  # still the slot of T0 + 3540 and the 59 before, which include T0
    sink.score_now()
    assert window_samples(registry, "x") == 7.0
    clock.t = T0 + 3600
    sink.score_now()
    assert window_samples(registry, "x") == 4.0
    feed(sink, "x", [2.0] * 2, ts=T0 + 3600)  # reuses the row of T0's slot, zeroed first
    sink.score_now()
    assert window_samples(registry, "x") == 6.0


def test_baseline_observations_are_not_in_the_window(make: Make) -> None:
    sink, registry, _ = make(baseline_size=50, min_samples=1)
    feed(sink, "x", range(60))
    sink.score_now()
    assert window_samples(registry, "x") == 10.0
    assert sink.baselines()["x"].total == 50.0


def test_request_durations_reach_the_feature_through_a_bounded_queue(make: Make) -> None:
    sink, registry, _ = make(baseline_size=2, min_samples=1)
    recorder = recorder_of(sink)
    assert sink._thread is not None  # started by start(), as the lifespan does: requests only queue
    for i in range(5):
        recorder.http("GET", "/chat", 200, 0.1 * (i + 1), 0, 0)
    sink.score_now()  # drains first: 2 baseline observations, 3 in the window
    assert (window_samples(registry, "request_duration"), len(sink._durations)) == (3.0, 0)
    assert sink._durations.maxlen == 100_000


def test_drained_request_durations_count_in_their_bins_once_the_baseline_is_set(make: Make) -> None:
    from bisect import bisect_right

    sink, registry, _ = make(baseline_size=2, min_samples=1)
    recorder = recorder_of(sink)
    for duration in (0.1, 0.2):
        recorder.http("GET", "/chat", 200, duration, 0, 0)
    sink.score_now()  # the baseline is set: the next drain counts its durations in one pass
    durations = (0.05, 0.15, 0.15, 0.3, 0.2)
    for duration in durations:
        recorder.http("GET", "/chat", 200, duration, 0, 0)
    sink._durations.append(float("nan"))  # no bin: not counted
    sink.score_now()
    feature = sink._duration
    assert feature is not None and feature.edges is not None
    expected = [0] * (len(feature.edges) + 1)
    for duration in durations:
        expected[bisect_right(feature.edges, duration)] += 1
    assert feature.window_counts(sink._ring.window(T0)) == expected
    assert (window_samples(registry, "request_duration"), len(sink._durations)) == (5.0, 0)


def test_close_does_not_wait_for_a_scoring_thread_stuck_in_mlflow(make: Make) -> None:
    sink, _, _ = make()
    sink._score_lock.acquire()  # as the thread holds it while a call to MLflow hangs
    try:
        closing = threading.Thread(target=sink.close)
        closing.start()
        closing.join(30)
        assert not closing.is_alive()
    finally:
        sink._score_lock.release()
    recorder_of(sink).http("GET", "/", 200, 0.1, 0, 0)  # after close: queued, bounded, never drained
    assert (len(sink._durations), sink._durations.maxlen) == (1, 100_000)


def test_recorder_callbacks_feed_the_builtin_features(make: Make) -> None:
    sink, registry, _ = make(baseline_size=2, min_samples=1)
    for i in range(3):
        sink.on_llm(LLMCall(model="gpt-4o", input_tokens=100 + i, output_tokens=10 + i), None, T0)
        recorder_of(sink).http("GET", "/chat", 200, 0.1 * (i + 1), 0, 0)  # queued, drained by score_now()
        sink.on_confidence("gpt-4o", "billing", 0.5 + 0.1 * i, T0)
    sink.on_llm(LLMCall(model="claude"), None, T0)  # no usage: only the model counts
    sink.on_confidence("gpt-4o", "", 0.9, T0)  # no label: only the confidence counts
    sink.score_now()
    got = {f: window_samples(registry, f) for f in ("input_tokens", "output_tokens", "request_duration", "model")}
    assert got == {"input_tokens": 1.0, "output_tokens": 1.0, "request_duration": 1.0, "model": 2.0}
    assert window_samples(registry, "confidence") == 2.0
    assert window_samples(registry, "predicted_label") == 1.0
    assert registry.get_sample_value("llm_drift_unseen_categories_total", {"feature": "model"}) == 1.0


def test_disabled_builtin_features_are_not_tracked(make: Make) -> None:
    sink, registry, _ = make(baseline_size=1, min_samples=1, features=["model"])
    for _ in range(2):
        sink.on_llm(LLMCall(model="m", input_tokens=5, output_tokens=5), None, T0)
        recorder_of(sink).http("GET", "/", 200, 0.1, 0, 0)
    assert set(sink.score_now()) == {"model"}
    assert sink.duration_observer() is None and recorder_of(sink)._on_http == ()  # nothing on the request path


def test_disabled_builtin_names_never_become_user_features() -> None:
    registry = CollectorRegistry()
    data = {"drift": {"features": ["model"], "max_user_features": 1, "baseline_size": 1, "min_samples": 1}}
    rec = Recorder(Config.from_mapping(data), registry)
    sink = drift_sink(rec, clock=Clock())
    rec.add_sink(sink)
    try:
        for label in ("billing", "billing", "sales"):
            rec.prediction(label)  # sends predicted_label to the sinks, which drift.features turned off
        rec.feature("input_tokens", 5)  # a built-in name through the user API: off, so ignored as well
        feed(sink, "x", [1.0, 2.0])  # the one user slot is still free
        assert set(sink.score_now()) == {"x"}
        assert set(sink.baselines()) == {"x"}
        assert registry.get_sample_value("llm_exporter_label_overflow_total", {"label": "feature"}) is None
    finally:
        sink.close()


def test_user_features_are_capped_and_typed(make: Make) -> None:
    sink, registry, _ = make(baseline_size=1, min_samples=1, max_user_features=2)
    for v in (1, 2.5, np.float32(3.5), np.int64(4)):
        sink.on_feature("length", v, T0)  # type: ignore[arg-type]
    for v in (True, False, True):
        sink.on_feature("flag", v, T0)
    sink.on_feature("length", "long", T0)  # wrong kind: dropped
    sink.on_feature("length", None, T0)  # type: ignore[arg-type]  # neither a number nor a string: dropped
    sink.on_feature("third", 1.0, T0)  # over the cap: dropped and counted
    sink.on_feature("third", 2.0, T0)
    scores = sink.score_now()
    assert set(scores) == {"length", "flag"}
    assert window_samples(registry, "length") == 3.0
    assert window_samples(registry, "flag") == 2.0
    assert sink.baselines()["flag"] == CategoricalBaseline(("true",), (1.0, 0.0))
    assert registry.get_sample_value("llm_exporter_label_overflow_total", {"label": "feature"}) == 2.0


def test_static_labels_and_thresholds(make: Make) -> None:
    sink, registry, _ = make(baseline_size=1, min_samples=1, labels={"service": "chat"}, ks_threshold=0.3)
    feed(sink, "x", [1.0, 2.0])
    sink.score_now()
    assert registry.get_sample_value("llm_drift_window_samples", {"feature": "x", "service": "chat"}) == 1.0
    thresholds = {
        m: registry.get_sample_value("llm_drift_threshold", {"method": m, "service": "chat"})
        for m in ("psi", "ks", "js")
    }
    assert thresholds == {"psi": 0.2, "ks": 0.3, "js": 0.19}


def test_scoring_thread_starts_with_the_first_complete_baseline_and_stops(make: Make) -> None:
    sink, _, _ = make(baseline_size=2, start=False)  # a sink nobody started: its first use starts it
    sink.on_feature("x", 1.0, T0)
    assert sink._thread is None
    sink.on_feature("x", 2.0, T0)  # the last baseline value: the thread builds the baseline
    thread = sink._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    sink.close()
    assert not thread.is_alive()


def test_recorder_for_attaches_the_drift_sink() -> None:
    registry = CollectorRegistry()
    rec = recorder_for(registry, Config())
    try:
        assert [type(s) for s in rec.sinks] == [DriftSink]
    finally:
        rec.close()
    rec = recorder_for(CollectorRegistry(), Config.from_mapping({"drift": {"enabled": False}}))
    assert rec.sinks == ()


@pytest.mark.parametrize(
    ("drift", "key"),
    [
        ({"features": ["model", "prompt_length"]}, "drift.features[1]"),
        ({"bins": 20, "resolution": 10}, "drift.resolution"),
        ({"epsilon": 0}, "drift.epsilon"),
        ({"baseline_file": "a.json", "baseline_mlflow_run": "abc"}, "drift.baseline_mlflow_run"),
        ({"max_user_features": -1}, "drift.max_user_features"),
    ],
)
def test_config_errors(drift: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_mapping({"drift": drift}, source="cfg.yaml")
    assert (err.value.source, err.value.key) == ("cfg.yaml", key)


# -- baseline files ---------------------------------------------------------------------------------------------


def test_baseline_file_round_trip(make: Make, tmp_path: Path) -> None:
    rng = np.random.default_rng(46)
    first, registry1, _ = make(baseline_size=1000, min_samples=100)
    base_x, base_m = rng.normal(0, 1, 1000), rng.choice(["a", "b"], 1000)
    recent_x, recent_m = rng.normal(0.5, 1, 300), rng.choice(["a", "b", "c"], 300)
    feed(first, "x", base_x)
    feed(first, "m", base_m)
    path = tmp_path / "baseline.json"
    save_baseline(path, first.baselines())
    assert load_baseline(path) == first.baselines()
    doc = json.loads(path.read_text())
    assert doc["format"] == "llm-exporter-drift-baseline" and doc["version"] == 1
    assert doc["features"]["m"]["kind"] == "categorical" and set(doc["features"]["m"]["counts"]) == {
        "a",
        "b",
        "__other__",
    }

    # A sink started from the file scores the same recent data the same way, with no first-N phase.
    second, registry2, _ = make(baseline_file=str(path), min_samples=100)
    for sink in (first, second):
        feed(sink, "x", recent_x)
        feed(sink, "m", recent_m)
    assert second.score_now() == first.score_now()
    assert window_samples(registry2, "x") == window_samples(registry1, "x") == 300.0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"features": {"x": {"kind": "numeric", "edges": [1, 2], "counts": [1, 2', "line 1"),
        ("[1, 2]", "(top level)"),
        ('{"features": {}}', "features"),
        ('{"format": "other", "features": {}}', "format"),
        ('{"features": {"x": {"kind": "numeric", "edges": [2, 1], "counts": [1, 1, 1]}}}', "features.x.edges"),
        ('{"features": {"x": {"kind": "numeric", "edges": [1], "counts": [1, 1, 1]}}}', "features.x.counts"),
        ('{"features": {"x": {"kind": "numeric", "edges": [1], "counts": [1, -1]}}}', "features.x.counts[1]"),
        ('{"features": {"x": {"kind": "numeric", "edges": [1], "counts": [0, 0]}}}', "features.x.counts"),
        ('{"features": {"x": {"kind": "numeric", "edges": ["1"], "counts": [1, 1]}}}', "features.x.edges[0]"),
        ('{"features": {"x": {"kind": "weird"}}}', "features.x.kind"),
        ('{"features": {"m": {"kind": "categorical", "counts": [1, 2]}}}', "features.m.counts"),
        ('{"features": {"model": {"kind": "numeric", "edges": [], "counts": [1]}}}', "features.model.kind"),
    ],
)
def test_corrupt_baseline_file_names_the_file(make: Make, tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "corrupt.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        make(baseline_file=str(path))
    assert err.value.source == str(path)
    assert err.value.key == key
    assert str(path) in str(err.value)


def test_missing_baseline_file_names_the_file(make: Make, tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match=f"{path}: \\(file\\): cannot read: No such file"):
        make(baseline_file=str(path))


def test_baseline_file_over_the_category_cap(make: Make, tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    counts = {f"c{i}": 1 for i in range(5)}
    path.write_text(json.dumps({"features": {"intent": {"kind": "categorical", "counts": counts}}}))
    with pytest.raises(ConfigError, match="5 categories, more than max_categories \\(4\\)"):
        make(baseline_file=str(path), max_categories=4)


# -- MLflow baselines (a real local MLflow store) ----------------------------------------------------------------


def test_baseline_from_an_mlflow_run_artifact(make: Make, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("drift", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    source, _, _ = make(baseline_size=200)
    rng = np.random.default_rng(47)
    feed(source, "x", rng.normal(0, 1, 200))
    client.log_dict(run_id, baseline_document(source.baselines()), "drift/baseline.json")

    for ref in (run_id, f"runs:/{run_id}/drift/baseline.json"):
        sink, registry, _ = make(baseline_mlflow_run=ref, mlflow_uri=uri, min_samples=50)
        assert sink._thread is not None  # fetched off the request path, on the scoring thread
        sink.score_now()  # waits for (or does) the download
        assert sink.baselines() == source.baselines()
        feed(sink, "x", rng.normal(0, 1, 50))
        sink.score_now()
        assert window_samples(registry, "x") == 50.0

    # A run without the artifact: nothing is scored, nothing is collected, and nothing raises.
    empty = client.create_run(experiment).info.run_id
    sink, registry, _ = make(baseline_mlflow_run=empty, mlflow_uri=uri, min_samples=1)
    assert sink.score_now() == {}
    feed(sink, "x", [1.0, 2.0])
    assert sink.score_now() == {} and sink.baselines() == {}

    # An unusable artifact won't get better by waiting: the sink learns its baseline from traffic instead.
    bad = client.create_run(experiment).info.run_id
    client.log_dict(
        bad, {"features": {"model": {"kind": "numeric", "edges": [], "counts": [1]}}}, "drift/baseline.json"
    )
    sink, registry, _ = make(baseline_mlflow_run=bad, mlflow_uri=uri, min_samples=1, baseline_size=1)
    assert sink.score_now() == {}
    feed(sink, "x", [1.0, 2.0])
    assert list(sink.score_now()) == ["x"]


# -- the command -------------------------------------------------------------------------------------------------


OBSERVATIONS = [
    {"input_tokens": 1, "model": "a", "ok": True},
    {"input_tokens": 2, "model": "a", "meta": {"nested": 1}},
    {"input_tokens": 3, "model": "b", "ok": False, "missing": None},
    {"input_tokens": 4, "model": "a"},
]


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    return path


def test_cli_save_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "obs.jsonl", OBSERVATIONS)
    assert main(["baseline", "save", "out.json", "--from", "obs.jsonl", "--resolution", "2"]) == 0
    out = capsys.readouterr().out
    assert out == "wrote out.json: 3 features from 4 observations (input_tokens, model, ok)\n"
    features = json.loads((tmp_path / "out.json").read_text())["features"]
    assert features == {
        "input_tokens": {"kind": "numeric", "edges": [2.5], "counts": [2, 2]},
        "model": {"kind": "categorical", "counts": {"a": 3, "b": 1, "__other__": 0}},
        "ok": {"kind": "categorical", "counts": {"false": 1, "true": 1, "__other__": 0}},
    }

    assert main(["baseline", "show", "out.json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("out.json: drift baseline, created 20") and lines[0].endswith("Z, 3 features")
    bar = "#" * 30
    assert lines[2:] == [
        "input_tokens  numeric, 4 observations, 2 fine bins, 2 PSI bins",
        f"  < 2.5    50.00%  {bar}",
        f"  >= 2.5   50.00%  {bar}",
        "",
        "model  categorical, 4 observations, 2 categories",
        f"  a           75.00%  {bar}",
        f"  b           25.00%  {'#' * 10}",
        "  __other__    0.00%",
        "",
        "ok  categorical, 2 observations, 2 categories",
        f"  false       50.00%  {bar}",
        f"  true        50.00%  {bar}",
        "  __other__    0.00%",
    ]


def test_cli_save_with_features_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(json.dumps(r) + "\n" for r in OBSERVATIONS)))
    assert main(["baseline", "save", "b.json", "--from", "-", "--features", "model,absent"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "wrote b.json: 1 features from 4 observations (model)\n"
    assert captured.err == "note: no values for absent\n"
    assert list(load_baseline(tmp_path / "b.json")) == ["model"]


@pytest.mark.parametrize(
    ("args", "lines", "message"),
    [
        (["save", "o.json", "--from", "obs.jsonl"], ['{"x": 1}', "{oops"], "obs.jsonl:2: not valid JSON"),
        (["save", "o.json", "--from", "obs.jsonl"], ['{"x": 1}', '{"x": "a"}'], "obs.jsonl:2: 'x' is a string here"),
        (["save", "o.json", "--from", "obs.jsonl"], ["[1]"], "obs.jsonl:1: expected a JSON object, got list"),
        (["save", "o.json", "--from", "obs.jsonl", "--features", "x"], ['{"x": [1]}'], "obs.jsonl:1: 'x': expected"),
        (["save", "o.json", "--from", "obs.jsonl"], ['{"x": null}'], "obs.jsonl: no feature values found"),
        (["save", "o.json", "--from", "absent.jsonl"], [], "absent.jsonl: No such file or directory"),
        (["save", "no/o.json", "--from", "obs.jsonl"], ['{"x": 1}'], "no/o.json: cannot write: No such file"),
        (["save", "o.json", "--from", "obs.jsonl", "--resolution", "1"], ['{"x": 1}'], "--resolution must be >= 2"),
        (["show", "obs.jsonl"], ['{"x": 1}', '{"x": 2}'], "obs.jsonl: line 2: not valid JSON: Extra data"),
        (["show", "absent.json"], [], "absent.json: (file): cannot read"),
    ],
)
def test_cli_user_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    lines: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "obs.jsonl").write_text("".join(line + "\n" for line in lines))
    assert main(["baseline", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("llm-exporter: error: ") and message in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "o.json").exists()


def test_cli_too_many_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "llm-exporter.yaml").write_text("drift:\n  max_user_features: 1\n")
    _jsonl(tmp_path / "obs.jsonl", [{f"f{i}": i for i in range(8)}])
    assert main(["baseline", "save", "o.json", "--from", "obs.jsonl"]) == 2
    assert "obs.jsonl:1: more than 7 features; choose some with --features" in capsys.readouterr().err


# -- through the real middleware --------------------------------------------------------------------------------


def test_shifting_prompt_sizes_through_the_middleware_raise_the_score() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from exporter import PrometheusMiddleware
    from exporter.llm import record

    async def chat(request: Request) -> JSONResponse:
        prompt = (await request.json())["prompt"]
        tokens = len(prompt.split())
        record("gpt-4o-mini", "openai", input_tokens=tokens, output_tokens=20, duration=0.5)
        return JSONResponse({"answer": "ok"})

    registry = CollectorRegistry()
    config = Config.from_mapping({"drift": {"baseline_size": 300, "min_samples": 100, "features": ["input_tokens"]}})
    recorder = Recorder(config, registry)
    sink = drift_sink(recorder)  # the real clock: requests are timestamped by the recorder
    recorder.add_sink(sink)
    app = PrometheusMiddleware(Starlette(routes=[Route("/chat", chat, methods=["POST"])]), recorder=recorder)
    rng = np.random.default_rng(48)

    def send(n: int, mean_words: float) -> None:
        for size in rng.poisson(mean_words, n):
            assert client.post("/chat", json={"prompt": "word " * int(size)}).status_code == 200

    psi_values = []
    with TestClient(app) as client:
        send(300, 40)  # the baseline
        for n, mean_words in ((150, 40), (150, 60), (300, 60)):
            send(n, mean_words)
            sink.score_now()
            psi_values.append(score(registry, "input_tokens", "psi"))
        metrics_text = client.get("/metrics").text
    sink.close()
    assert window_samples(registry, "input_tokens") == 600.0
    # 150 requests against 300 have a sampling PSI of about 9 * (1/300 + 1/150) = 0.09: below the alert threshold.
    assert psi_values[0] < 0.2
    assert psi_values[0] < psi_values[1] < psi_values[2]
    assert psi_values[2] > 0.25
    assert 'llm_drift_score{feature="input_tokens",method="psi"}' in metrics_text
