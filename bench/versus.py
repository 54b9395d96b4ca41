"""Two checkouts' request-path cost side by side, in one run (not a test).

    python bench/versus.py OLD_TREE [NEW_TREE] [--rounds 7] [--instructions]

Each round starts one probe process per tree, alternating, so both face the same machine; a probe
imports ``exporter`` from its tree only and drives, in-process through ASGI, four cases: a bare
Starlette app answering plain JSON and answering a 2 KB OpenAI chat completion, and the same app behind
the middleware (HTTP-only, and LLM answer: capture + tokens + cost). It also renders ``/metrics`` of
~10,000 samples. Timings are the median over rounds of each round's paired difference (wrapped minus
bare, measured back to back), so a busy machine moves both sides alike.

``--instructions`` counts CPU instructions per request instead, under ``valgrind --tool=callgrind``:
repeatable to a fraction of a percent whatever else the machine is doing (each case runs twice, with
and without the measured requests, and the difference is divided by their number).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))  # the drivers and payloads of this checkout's bench/

from asgi_driver import drive, llm_routes  # noqa: E402
from callgrind import per_unit  # noqa: E402

CASES = {
    "bare-json": "/items",
    "bare-llm": "/chat",
    "bare-sse": "/stream",
    "http-only": "/items",
    "llm-answer": "/chat",
    "sse": "/stream",
}
FIGURES = (
    ("http-only", "bare-json", "HTTP-only overhead"),
    ("llm-answer", "bare-llm", "LLM answer overhead"),
    ("sse", "bare-sse", "SSE (200 chunks) overhead"),
)


def apps() -> dict[str, Any]:
    """The four cases' apps, built from the ``exporter`` first on sys.path."""
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from exporter import Config, PrometheusMiddleware, Recorder

    async def item(request: Any) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"], "name": "widget", "tags": ["a", "b"]})

    def app() -> Starlette:
        return Starlette(routes=[Route("/items/{item_id}", item), *llm_routes()])

    def wrapped() -> Any:
        # As most apps use it: a recorder of the default config (capture, drift and exemplars on).
        return PrometheusMiddleware(app(), recorder=Recorder(Config(), CollectorRegistry()))

    bare = ("bare-json", "bare-llm", "bare-sse")
    return {name: app() if name in bare else wrapped() for name in CASES}


def render_ms() -> float:
    from prometheus_client import CollectorRegistry

    from exporter import Config, Recorder

    try:
        from exporter.prometheus.exposition import render
    except ImportError:  # the flat layout
        from exporter.exposition import render  # type: ignore[no-redef]

    registry = CollectorRegistry()
    rec = Recorder(Config.from_mapping({"label_cap": 100_000}), registry)
    i = 0
    while sum(len(m.samples) for m in registry.collect()) < 10_000:
        rec.http("GET", f"/route/{i}", 200, 0.01, 10, 100)
        i += 1
    times = []
    for _ in range(5):
        start = time.perf_counter()
        render(registry, "", "")
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def timing_probe(requests: int, inner_rounds: int) -> dict[str, float]:
    """Per inner round, each case back to back; the round's overheads are paired differences."""
    targets = apps()
    loop = asyncio.new_event_loop()
    for name, target in targets.items():
        loop.run_until_complete(drive(target, 500, CASES[name]))  # warm-up: middleware stacks, children
    diffs: dict[str, list[float]] = {figure: [] for figure, _, _ in FIGURES}
    for _ in range(inner_rounds):
        us = {name: loop.run_until_complete(drive(t, requests, CASES[name])) for name, t in targets.items()}
        for figure, bare, _ in FIGURES:
            diffs[figure].append(us[figure] - us[bare])
    loop.close()
    return {**{f: statistics.median(d) for f, d in diffs.items()}, "render": render_ms()}


def instruction_probe(case: str, requests: int) -> None:
    """One case: a warm-up, then ``requests`` requests (none for the baseline run)."""
    target = apps()[case]
    loop = asyncio.new_event_loop()
    loop.run_until_complete(drive(target, 300, CASES[case]))
    if requests:
        loop.run_until_complete(drive(target, requests, CASES[case]))
    loop.close()


def instructions(tree: Path, case: str, requests: int) -> float:
    """Instructions per request of ``case`` in ``tree``."""

    def argv(n: int) -> list[str]:
        return [str(HERE), str(tree), "--probe", case, "--requests", str(n)]

    return per_unit(argv, requests, env={"PYTHONPATH": str(tree)}, cwd=tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path, nargs="?", default=HERE.parent.parent)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe == "timing":
        print(json.dumps(timing_probe(args.requests, 5)))
        return
    if args.probe is not None:
        instruction_probe(args.probe, args.requests)
        return
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    if args.instructions:
        print(f"{'instructions per request':28} {'old':>10} {'new':>10} {'new/old':>8}")
        per = {name: {c: instructions(tree, c, 1000) for c in CASES} for name, tree in trees.items()}
        for figure, bare, label in FIGURES:
            old, new = (per[t][figure] - per[t][bare] for t in ("old", "new"))
            print(f"{label:28} {old:10.0f} {new:10.0f} {new / old:8.3f}")
        return
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree)}
            cmd = [sys.executable, str(HERE), str(tree), "--probe", "timing", "--requests", str(args.requests)]
            out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'median of rounds':28} {'old':>9} {'new':>9}")
    for key, label in (*((f, f"{lbl}, µs") for f, _, lbl in FIGURES), ("render", "/metrics 10k samples, ms")):
        old = statistics.median(r[key] for r in results["old"])
        new = statistics.median(r[key] for r in results["new"])
        print(f"{label:28} {old:9.2f} {new:9.2f}")


if __name__ == "__main__":
    main()
