"""Window aggregator benchmark (not a test): what the MLflow bridge adds to the request path, and its memory.

1. Cost per observation, in microseconds: ``WindowAggregator.http`` / ``.llm`` alone, and through
   ``MlflowSink.on_http`` / ``.on_llm`` (what the Recorder calls for every request / LLM call). Each
   figure is the best of several rounds; an empty loop of the same length is subtracted.
2. Memory of the aggregator after N observations (tracemalloc), for growing N, all in one window
   (the worst case: nothing is handed to the bridge thread): it must stay flat.

    python bench/aggregator.py [--n 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.config import Config
from exporter.mlflow_bridge.windows import GAMMA, MAX_VALUE, MIN_VALUE, Window, WindowAggregator
from exporter.observations import Cost, LLMCall
from exporter.recorder import Recorder

T0 = 1_700_000_040.0
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-flash", "llama-3.1-8b")


def per_call(fn: Callable[[int], None], n: int, rounds: int) -> float:
    """Median microseconds per call of ``fn(i)`` over ``n`` calls, minus the loop itself."""

    def loop(f: Callable[[int], None]) -> float:
        start = time.perf_counter()
        for i in range(n):
            f(i)
        return time.perf_counter() - start

    def empty(i: int) -> None:
        pass

    times = []
    for _ in range(rounds):
        times.append(loop(fn) - loop(empty))
    return min(times) / n * 1e6


def cost(n: int, rounds: int) -> None:
    rng = random.Random(1)
    durations = [rng.lognormvariate(-2.0, 1.0) for _ in range(4096)]
    # Time advances so that windows close along the way (one every 60 s of timestamps).
    stamps = [T0 + i * 3600.0 / n for i in range(n)]
    closed: list[Window] = []

    def report(name: str, fn: Callable[[int], None]) -> None:
        print(f"{name:<20} {per_call(fn, n, rounds):6.3f} us per observation")

    agg = WindowAggregator(60.0, lambda w: closed.clear() or closed.append(w))
    report("aggregator.http", lambda i: agg.http(200, durations[i & 4095], stamps[i]))
    agg = WindowAggregator(60.0, lambda w: closed.clear() or closed.append(w))
    report("aggregator.llm", lambda i: agg.llm(MODELS[i % 5], 100, 50, 0.001, 1.0, 0.2, False, stamps[i]))

    with tempfile.TemporaryDirectory() as tmp:
        # The window is longer than the benchmark, so the bridge thread stays idle while it runs; at close
        # the one window finds nothing listening on port 9 and is spooled in the temp dir.
        config = Config.from_mapping(
            {
                "drift": {"enabled": False},
                "mlflow": {
                    "enabled": True,
                    "tracking_uri": "http://127.0.0.1:9",
                    "window_seconds": 1e6,
                    "spool_path": str(Path(tmp) / "spool.jsonl"),
                },
            }
        )
        from exporter.mlflow_bridge import MlflowSink

        logging.getLogger("exporter.mlflow_bridge").setLevel(logging.ERROR)

        rec = Recorder(config, CollectorRegistry())
        sink = MlflowSink(rec, clock=lambda: T0 + 3600.0)
        call = LLMCall("gpt-4o", "openai", input_tokens=100, output_tokens=50, duration=1.0, ttft=0.2)
        price = Cost(0.001)
        report("sink.on_http", lambda i: sink.on_http("GET", "/chat", 200, durations[i & 4095], T0))
        report("sink.on_llm", lambda i: sink.on_llm(call, price, T0))
        sink.close()  # the one partial window goes to the spool in the temp dir


def memory(n: int) -> None:
    rng = random.Random(2)
    sizes = sorted({1_000, 10_000, 100_000, n})
    for count in sizes:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        agg = WindowAggregator(60.0, lambda w: None)
        for i in range(count):
            d = rng.lognormvariate(-2.0, 1.5)
            agg.http(500 if i % 50 == 0 else 200, d, T0)
            agg.llm(MODELS[i % 5], 100 + i % 900, 50, 0.001, d * 10, d, False, T0)
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        w = agg.flush()
        assert w is not None
        sketches = [w.latency, w.total.llm_latency, w.total.ttft]
        sketches += [s for m in w.models.values() for s in (m.llm_latency, m.ttft)]
        buckets = sum(len(s) for s in sketches)
        print(
            f"memory after {count:>9,} http + {count:>9,} llm observations: {used / 1024:7.1f} KiB"
            f"  ({len(sketches)} quantile sketches, {buckets:,} buckets)"
        )
        del agg, w
    # Bucket i holds [GAMMA**i, GAMMA**(i+1)) between MIN_VALUE and MAX_VALUE, plus one bucket below and above.
    per_sketch = int(math.log(MAX_VALUE / MIN_VALUE) / math.log(GAMMA)) + 3
    print(f"hard bound: {per_sketch:,} buckets per sketch, whatever the count; real latencies occupy a few hundred")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="observations (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {args.n:,} observations per round, best of {args.rounds} rounds")
    cost(min(args.n, 200_000), args.rounds)
    memory(args.n)


if __name__ == "__main__":
    main()
