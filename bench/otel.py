"""OpenTelemetry overhead benchmark (not a test).

1. Middleware: the same Starlette app called through ASGI directly, with and without an active span
   (started by a thin wrapper, so the OTel ASGI middleware's own cost is not part of the figure) and with
   exemplars on and off. Rounds are interleaved; each figure is the best of the rounds.
2. Micro: ``Recorder.http`` with/without exemplars, the span processor's cost for a non-GenAI and a GenAI
   span, and the OTel metrics sink's cost per HTTP observation.

    python bench/otel.py [--requests 3000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_driver import compare  # noqa: E402

from exporter import Config, PrometheusMiddleware, Recorder  # noqa: E402
from exporter.otel import GenAISpanProcessor, enable_exemplars, enable_otel_metrics

TRACER = TracerProvider().get_tracer("bench")  # no span processor: the span costs only its creation


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["item_id"], "name": "widget"})


def make_app() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", item)])


def ours(exemplars: bool) -> Any:
    app = make_app()
    config = Config.from_mapping({"capture": {"enabled": False}, "otel": {"exemplars": exemplars}})
    app.add_middleware(PrometheusMiddleware, recorder=Recorder(config, CollectorRegistry()))
    return app


def with_span(app: Any) -> Any:
    """What an OTel ASGI middleware outside ours does, minus its attribute work: one current span."""

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        with TRACER.start_as_current_span("GET /items/{item_id}"):
            await app(scope, receive, send)

    return traced


VARIANTS: dict[str, Callable[[], Any]] = {
    "bare": make_app,
    "bare + span": lambda: with_span(make_app()),
    "ours, no span, exemplars off": lambda: ours(False),
    "ours, no span, exemplars on": lambda: ours(True),
    "ours + span, exemplars off": lambda: with_span(ours(False)),
    "ours + span, exemplars on": lambda: with_span(ours(True)),
}


def middleware(requests: int, rounds: int) -> dict[str, float]:
    return compare({name: make() for name, make in VARIANTS.items()}, requests, rounds)


def per_call(fn: Callable[[], object], number: int = 20_000, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def micro() -> dict[str, float]:
    out: dict[str, float] = {}
    rec = Recorder(Config(), CollectorRegistry())

    def http() -> None:
        rec.http("GET", "/items/{item_id}", 200, 0.012, 0, 120)

    out["Recorder.http, exemplars off, no span"] = per_call(http)
    out["Recorder.http, exemplars off, span active"] = _in_span(lambda: per_call(http))
    enable_exemplars(rec)
    out["Recorder.http, exemplars on, no span"] = per_call(http)
    out["Recorder.http, exemplars on, span active"] = _in_span(lambda: per_call(http))

    provider = TracerProvider()
    processor = GenAISpanProcessor(Recorder(Config(), CollectorRegistry()))
    tracer = provider.get_tracer("bench")
    plain = tracer.start_span("GET /x", attributes={"http.request.method": "GET", "http.route": "/x"})
    plain.end()
    genai = tracer.start_span(
        "chat gpt-4o",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
        },
    )
    genai.end()
    out["GenAISpanProcessor.on_end, non-GenAI span"] = per_call(lambda: processor.on_end(plain))
    out["GenAISpanProcessor.on_end, GenAI span"] = per_call(lambda: processor.on_end(genai), number=5_000)

    sinked = Recorder(Config(), CollectorRegistry())
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    enable_otel_metrics(sinked, meters)
    out["Recorder.http with the OTel metrics sink"] = per_call(
        lambda: sinked.http("GET", "/items/{item_id}", 200, 0.012, 0, 120), number=5_000
    )
    meters.shutdown()
    return out


def _in_span(fn: Callable[[], float]) -> float:
    with TRACER.start_as_current_span("request"):
        return fn()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    print(f"middleware, µs per request (best of {args.rounds} rounds of {args.requests}):")
    results = middleware(args.requests, args.rounds)
    for name, value in results.items():
        print(f"  {name:34s} {value:7.1f}")
    span_cost = results["bare + span"] - results["bare"]
    print(f"  {'span alone (bare + span - bare)':34s} {span_cost:7.1f}")
    exemplar_cost = results["ours + span, exemplars on"] - results["ours + span, exemplars off"]
    print(f"  {'exemplars, span active (on - off)':34s} {exemplar_cost:7.1f}")
    idle_cost = results["ours, no span, exemplars on"] - results["ours, no span, exemplars off"]
    print(f"  {'exemplars, no span (on - off)':34s} {idle_cost:7.1f}")
    print("micro, µs per call (best of 7):")
    for name, value in micro().items():
        print(f"  {name:44s} {value:7.2f}")


if __name__ == "__main__":
    main()
