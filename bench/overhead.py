"""Middleware overhead benchmark (not a test).

The same Starlette app, in one process, called through ASGI directly: bare, with llm-exporter, with
starlette-exporter, with prometheus-fastapi-instrumentator and with OpenTelemetry's ASGI middleware.
Rounds are interleaved so drift in machine speed hits every variant alike; each figure is the median of
the rounds. Then: ``/metrics`` render time at 1,000 and 10,000 series, and requests/s under uvicorn +
wrk, bare vs ours (``--wrk``).

    python bench/overhead.py [--requests 3000] [--rounds 7] [--wrk]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_driver import compare  # noqa: E402

from exporter import Config, PrometheusMiddleware, Recorder  # noqa: E402
from exporter.exposition import render  # noqa: E402
from exporter.recorder import recorder_for  # noqa: E402


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["item_id"], "name": "widget", "tags": ["a", "b"]})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def make_app() -> Starlette:
    return Starlette(
        routes=[Route("/items/{item_id}", item), Route("/users/{user_id}/orders", item), Route("/health", health)]
    )


def bare() -> Any:
    return make_app()


def ours(**options: Any) -> Any:
    app = make_app()
    # recorder_for() attaches the default sinks (the drift detector), as PrometheusMiddleware(app) does.
    rec = recorder_for(CollectorRegistry(), Config.from_mapping(options))
    app.add_middleware(PrometheusMiddleware, recorder=rec)
    return app


def starlette_exporter() -> Any:
    from starlette_exporter import PrometheusMiddleware as SE

    app = make_app()
    app.add_middleware(SE, app_name="bench", group_paths=True)
    return app


def instrumentator() -> Any:
    from prometheus_fastapi_instrumentator import Instrumentator

    app = make_app()
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


def opentelemetry() -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    app = make_app()
    return OpenTelemetryMiddleware(app, tracer_provider=TracerProvider(), meter_provider=MeterProvider())


VARIANTS: dict[str, Callable[[], Any]] = {
    "bare": bare,
    "llm-exporter": ours,
    "starlette-exporter": starlette_exporter,
    "prometheus-fastapi-instrumentator": instrumentator,
    "opentelemetry-asgi": opentelemetry,
}


def overhead(requests: int, rounds: int, names: list[str]) -> dict[str, float]:
    return compare({name: VARIANTS[name]() for name in names}, requests, rounds)


def render_times() -> dict[int, float]:
    out: dict[int, float] = {}
    for target in (1_000, 10_000):
        registry = CollectorRegistry()
        rec = Recorder(Config.from_mapping({"label_cap": 100_000}), registry)
        # Each (route, status) child is 3 histograms x (23 buckets + sum + count) lines: count series by samples.
        i = 0
        while sum(len(m.samples) for m in registry.collect()) < target:
            rec.http("GET", f"/route/{i}", 200, 0.01, 10, 100)
            i += 1
        series = sum(len(m.samples) for m in registry.collect())
        runs = [_timed(lambda registry=registry: render(registry, "", "")) for _ in range(5)]
        out[series] = statistics.median(runs) * 1e3
    return out


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def wrk_throughput(seconds: int = 8) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    here = Path(__file__).resolve().parent
    out: dict[str, float] = {}
    for name in ("bare", "llm-exporter", "bare", "llm-exporter"):
        port = 18000 + len(out) + (0 if name == "bare" else 50)
        env = {**os.environ, "BENCH_VARIANT": name, "PYTHONPATH": str(here.parent)}
        cmd = [sys.executable, "-m", "uvicorn", "bench.overhead:served", "--factory", "--port", str(port)]
        cmd += ["--log-level", "warning", "--no-access-log"]
        proc = subprocess.Popen(cmd, cwd=here.parent, env=env)
        try:
            time.sleep(2.0)
            url = f"http://127.0.0.1:{port}/items/1"
            subprocess.run([wrk, "-t1", "-c32", "-d2s", url], capture_output=True, check=True)  # warm-up
            res = subprocess.run([wrk, "-t1", "-c32", f"-d{seconds}s", url], capture_output=True, text=True, check=True)
            rps = next(float(line.split()[1]) for line in res.stdout.splitlines() if line.startswith("Requests/sec"))
            out[name] = max(out.get(name, 0.0), rps)
        finally:
            proc.terminate()
            proc.wait()
    return out


def served() -> Any:
    """uvicorn factory for the wrk run."""
    return VARIANTS[os.environ.get("BENCH_VARIANT", "bare")]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--wrk", action="store_true", help="also measure requests/s under uvicorn with wrk")
    parser.add_argument("--no-render", action="store_true")
    args = parser.parse_args()
    names = ["bare", *[n for n in args.only if n != "bare"]]
    results = overhead(args.requests, args.rounds, names)
    base = results["bare"]
    print(f"{'variant':36} {'µs/request':>11} {'overhead µs':>12}")
    for name, us in results.items():
        print(f"{name:36} {us:11.1f} {us - base:12.1f}")
    peers = [results[n] - base for n in names if n not in ("bare", "llm-exporter")]
    if "llm-exporter" in results and peers:
        ratio = (results["llm-exporter"] - base) / min(peers)
        print(f"llm-exporter overhead / best peer overhead: {ratio:.3f}")
    if not args.no_render:
        for series, ms in render_times().items():
            print(f"/metrics render, {series} samples: {ms:.1f} ms")
    if args.wrk:
        rps = wrk_throughput()
        print(
            f"uvicorn + wrk: bare {rps['bare']:.0f} req/s, llm-exporter {rps['llm-exporter']:.0f} req/s "
            f"({rps['llm-exporter'] / rps['bare'] * 100:.1f}% of bare)"
        )


if __name__ == "__main__":
    main()
