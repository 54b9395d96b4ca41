"""Drift detector benchmark (not a test).

- Request-path cost per observation and feature: the sink callbacks alone, numeric and categorical,
  and ``Recorder.llm`` with and without the drift sink (three features per call).
- Scoring time for 20 features (14 numeric, 6 categorical) with every slot of the window filled.
- Memory per feature once its baseline is fixed (tracemalloc), and the one-off cost of fixing a baseline.

Each timing is the best of ``--rounds`` rounds (the least disturbed by other processes on the machine).

    python bench/drift.py [--rounds 7] [--number 200000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import timeit
import tracemalloc
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter import Config, LLMCall, Recorder  # noqa: E402
from exporter.drift import DriftSink
from exporter.drift.stats import NumericBaseline

NOW = 60.0 * 30_000_000  # a slot boundary; the fake clock below never moves


def sink_with_baselines(**drift: Any) -> tuple[Recorder, DriftSink]:
    rec = Recorder(Config.from_mapping({"drift": drift}), CollectorRegistry())
    sink = DriftSink(rec, clock=lambda: NOW)
    sink.close()  # a closed sink still counts but starts no thread: scoring is timed here instead
    rec.add_sink(sink)
    rng = random.Random(1)
    size = rec.config.drift.baseline_size
    for _ in range(size):
        sink.on_llm(LLMCall("gpt-4o", input_tokens=rng.randint(10, 2000), output_tokens=rng.randint(1, 500)), None, NOW)
        sink.on_feature("request_duration", rng.expovariate(2.0), NOW)
        sink.on_confidence("gpt-4o", rng.choice(["billing", "support", "sales"]), rng.random(), NOW)
    return rec, sink


def best(stmt: str, env: dict[str, Any], number: int, rounds: int) -> float:
    """Seconds per execution."""
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=rounds)) / number


def hot_path(number: int, rounds: int) -> None:
    rec, sink = sink_with_baselines()
    call = LLMCall("gpt-4o", input_tokens=420, output_tokens=96, duration=1.2)
    env = {"sink": sink, "call": call, "NOW": NOW, "observe": sink._durations.append}
    print("request path (per call; the target is <= 1 us per feature)")
    rows = [
        ("request duration (queued; drained off the request path)", "observe(0.42)", 1),
        ("request_duration, drained (on_feature)", "sink.on_feature('request_duration', 0.42, NOW)", 1),
        ("categorical feature, known (on_feature)", "sink.on_feature('predicted_label', 'billing', NOW)", 1),
        ("categorical feature, unseen (on_feature)", "sink.on_feature('predicted_label', 'refund', NOW)", 1),
        ("numeric feature (on_feature)", "sink.on_feature('input_tokens', 420, NOW)", 1),
        ("on_llm: input_tokens + output_tokens + model", "sink.on_llm(call, None, NOW)", 3),
        ("on_confidence: confidence + predicted_label", "sink.on_confidence('gpt-4o', 'billing', 0.8, NOW)", 2),
    ]
    for label, stmt, features in rows:
        t = best(stmt, env, number, rounds)
        print(f"  {label:<48} {t * 1e6:6.3f} us/call  {t * 1e6 / features:6.3f} us/feature")

    bare = Recorder(Config.from_mapping({"drift": {"enabled": False}}), CollectorRegistry())
    env = {"with_drift": rec, "bare": bare, "call": call}
    n = number // 10
    t_bare = best("bare.llm(call)", env, n, rounds)
    t_drift = best("with_drift.llm(call)", env, n, rounds)
    print(
        f"  Recorder.llm: {t_bare * 1e6:.2f} us without drift, {t_drift * 1e6:.2f} us with it "
        f"(+{(t_drift - t_bare) * 1e6:.2f} us for 3 features)"
    )


def scoring(rounds: int) -> None:
    numeric = [f"num_{i}" for i in range(10)]
    categorical = [f"cat_{i}" for i in range(4)]
    rec, sink = sink_with_baselines(max_user_features=20)  # 6 built-in features, 4 numeric and 2 categorical
    ring = sink._ring
    rng = random.Random(2)
    labels = [f"label_{i}" for i in range(12)]
    for _ in range(rec.config.drift.baseline_size):
        for name in numeric:
            sink.on_feature(name, rng.gauss(0, 1), NOW)
        for name in categorical:
            sink.on_feature(name, rng.choice(labels), NOW)
    # Fill every slot of the window so the sums run over all of it (the worst case).
    for slot in range(ring.size):
        ts = NOW - slot * ring.width
        for _ in range(50):
            sink.on_llm(
                LLMCall("gpt-4o", input_tokens=rng.randint(10, 3000), output_tokens=rng.randint(1, 900)), None, ts
            )
            sink.on_feature("request_duration", rng.expovariate(1.0), ts)
            sink.on_confidence("gpt-4o", rng.choice(["billing", "refund"]), rng.random(), ts)
            for name in numeric:
                sink.on_feature(name, rng.gauss(0.3, 1), ts)
            for name in categorical:
                sink.on_feature(name, rng.choice(labels + ["new"]), ts)
    scores = sink.score_now()
    assert len(scores) == 20, sorted(scores)
    t = min(timeit.repeat(sink.score_now, number=1, repeat=rounds))
    print(
        f"scoring 20 features (14 numeric x {rec.config.drift.resolution} bins, 6 categorical), "
        f"{ring.size} slots filled: {t * 1e3:.1f} ms per interval"
    )


def memory() -> None:
    cfg = {"features": [], "max_user_features": 50}
    rec = Recorder(Config.from_mapping({"drift": cfg}), CollectorRegistry())
    sink = DriftSink(rec, clock=lambda: NOW)
    sink.close()
    rng = random.Random(3)
    size = rec.config.drift.baseline_size
    values = [rng.gauss(0, 1) for _ in range(size)]
    labels = [f"label_{i % 50}" for i in range(size)]
    for kind, data in (("numeric", values), ("categorical, 50 categories", labels)):
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i in range(10):
            for v in data:
                sink.on_feature(f"{kind}_{i}", v, NOW)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        print(f"memory per {kind} feature (baseline fixed, {sink._ring.size} slots): {grown / 10 / 1024:.1f} KiB")
    t0 = time.perf_counter()
    NumericBaseline.from_values(values, rec.config.drift.resolution)
    print(
        f"fixing a numeric baseline of {size} values (once, on the request that completes it): "
        f"{(time.perf_counter() - t0) * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    hot_path(args.number, args.rounds)
    scoring(args.rounds)
    memory()


if __name__ == "__main__":
    main()
