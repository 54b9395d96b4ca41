"""``Recorder.llm`` per call, with the MLflow bridge, drift and exemplars on (not a test).

A recorder built from a config with every sink on (MLflow at a SQLite store in a temp dir, drift, OTel
exemplars), started as the middleware starts it, records the same kind of call over and over: the
request path's cost of one LLM call (metrics, price, hand-off to the sinks). Without a span, and inside a
sampled OpenTelemetry span (the exemplar case). Best of ``--rounds`` rounds of ``--number`` calls.

``--instructions`` counts CPU instructions per call under ``valgrind --tool=callgrind`` instead (two runs,
with and without the measured calls; the difference over their number): repeatable whatever else the
machine is doing.

    python bench/record.py [--rounds 7] [--number 20000] [--instructions]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callgrind import per_unit  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from exporter.config import Config  # noqa: E402
from exporter.observations import LLMCall  # noqa: E402
from exporter.otel import enable_exemplars  # noqa: E402
from exporter.recorder import Recorder  # noqa: E402
from exporter.wiring import build  # noqa: E402


def recorder(tmp: str) -> Recorder:
    config = Config.from_mapping(
        {
            "mlflow": {"enabled": True, "tracking_uri": f"sqlite:///{tmp}/mlflow.db", "spool_path": f"{tmp}/spool"},
            "drift": {"enabled": True},
        }
    )
    rec = build(config, CollectorRegistry())
    assert enable_exemplars(rec)
    rec.start()
    return rec


def call() -> LLMCall:
    # What capture makes of a 2 KB OpenAI chat completion, with its route and the request's model.
    return LLMCall(
        "gpt-4o-2024-08-06",
        "openai",
        input_tokens=512,
        output_tokens=380,
        cached_input_tokens=128,
        duration=0.8,
        route="/chat/{item_id}",
        response_model="gpt-4o-2024-08-06",
    )


@contextlib.contextmanager
def sampled_span() -> Iterator[None]:
    from opentelemetry.sdk.trace import TracerProvider

    with TracerProvider().get_tracer("bench").start_as_current_span("chat"):
        yield


def per_call(rec: Recorder, number: int, rounds: int) -> float:
    """Best µs per call; each round records ``number`` fresh calls (as capture makes one per answer)."""
    best = float("inf")
    for _ in range(rounds):
        calls = [call() for _ in range(number)]
        start = time.perf_counter()
        for c in calls:
            rec.llm(c)
        best = min(best, (time.perf_counter() - start) / number * 1e6)
    return best


PROBE_CALLS = 2000  # calls made in every probe run, recorded or not: making them is capture's cost, not this


def probe(number: int, span: bool, drain: bool) -> None:
    """The instruction-count run: a warm-up, then ``number`` calls (none for the baseline run). The hand-off's
    thread is stopped first, so the calls wait in its queue: the request path alone is counted, and with
    ``drain`` the sinks' share too, as one drain at the end. Both runs make the same calls, so making them
    is not counted."""
    with tempfile.TemporaryDirectory() as tmp:
        rec = recorder(tmp)
        handoff = getattr(rec, "_handoff", None)  # None: an older tree, whose sinks are called inline
        if handoff is not None:
            handoff._stop.set()
        with sampled_span() if span else contextlib.nullcontext():
            calls = [call() for _ in range(PROBE_CALLS + 200)]
            for c in calls[:200]:
                rec.llm(c)
            if handoff is not None:
                handoff.drain()
            for c in calls[200 : 200 + number]:
                rec.llm(c)
        if drain and handoff is not None:
            handoff.drain()
        os._exit(0)  # not the MLflow thread's shutdown: the same in both runs, and slow under valgrind


def instructions(number: int, span: bool, drain: bool) -> float:
    """Instructions per call (the difference of a run with ``number`` calls and one without)."""
    flags = [*(["--span"] if span else []), *(["--drain"] if drain else [])]
    # The request path is the main thread's instructions; with the drain, every thread's: the sinks hand some
    # of their work to threads of their own (the MLflow writer, the drift checks).
    return per_unit(lambda n: [__file__, "--probe", str(n), *flags], number, main_thread=not drain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--span", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        probe(args.probe, args.span, args.drain)
        return
    if args.instructions:
        for span in (False, True):
            path, total = instructions(PROBE_CALLS, span, False), instructions(PROBE_CALLS, span, True)
            where = "in a sampled span" if span else "no span"
            print(f"Recorder.llm, MLflow + drift + exemplars on, {where}: {path:,.0f} instructions per call on the")
            print(f"  request path, {total:,.0f} with the sinks' drain")
        return
    with tempfile.TemporaryDirectory() as tmp:
        rec = recorder(tmp)
        results: dict[str, Any] = {"no span": per_call(rec, args.number, args.rounds)}
        with sampled_span():
            results["in a sampled span (exemplars)"] = per_call(rec, args.number, args.rounds)
        handoff = getattr(rec, "_handoff", None)
        start = time.perf_counter()
        if handoff is not None:
            handoff.drain()
        drained = time.perf_counter() - start
        rec.close()
    print(f"Python {sys.version.split()[0]}, best of {args.rounds} rounds of {args.number} calls")
    for label, us in results.items():
        print(f"Recorder.llm with MLflow, drift and exemplars on, {label}: {us:.2f} µs per call")
    print(f"(the sinks' share, off the request path: the last drain took {drained * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
