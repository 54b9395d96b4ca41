"""Two checkouts' request-path cost side by side, in one run (not a test).

    python bench/versus.py OLD_TREE [NEW_TREE] [--rounds 7]

Each round starts one probe process per tree, alternating, so both face the same machine; a probe
imports ``exporter`` from its tree only and measures, in-process through ASGI: a bare Starlette app,
the app behind the middleware answering plain JSON (HTTP-only), the app answering a 2 KB OpenAI chat
completion (capture + tokens + cost), and one ``/metrics`` render of ~10,000 samples. The figures are
the best round of each (as ``timeit`` reports), the medians beside them.
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
# A 2 KB chat completion, as OpenAI sends it (usage last).
ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "word " * 340, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 340,
        "total_tokens": 1540,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
    "system_fingerprint": "fp_bench",
}


def probe(requests: int, inner_rounds: int) -> dict[str, float]:
    """Runs inside the probe process, with the tree under test first on sys.path."""
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from exporter import Config, PrometheusMiddleware, Recorder

    try:
        from exporter.prometheus.exposition import render
    except ImportError:  # the flat layout
        from exporter.exposition import render  # type: ignore[no-redef]

    body = json.dumps(ANSWER).encode()

    async def item(request: Any) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"], "name": "widget", "tags": ["a", "b"]})

    async def chat(request: Any) -> Response:
        return Response(body, media_type="application/json")

    def app() -> Starlette:
        return Starlette(routes=[Route("/items/{item_id}", item), Route("/chat/{item_id}", chat)])

    def wrapped() -> Any:
        # As most apps use it: a recorder of the default config (capture, drift and exemplars on).
        return PrometheusMiddleware(app(), recorder=Recorder(Config(), CollectorRegistry()))

    def scope(path: str) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench"), (b"accept", b"*/*")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }

    async def drive(target: Any, prefix: str, n: int) -> float:
        scopes = [scope(f"{prefix}/{i % 50}") for i in range(n)]
        message = {"type": "http.request", "body": b"", "more_body": False}

        async def receive() -> dict[str, Any]:
            return message

        async def send(_: dict[str, Any]) -> None:
            pass

        start = time.perf_counter()
        for s in scopes:
            await target(s, receive, send)
        return (time.perf_counter() - start) / n * 1e6

    cases = {
        "bare-json": (app(), "/items"),
        "bare-llm": (app(), "/chat"),
        "http-only": (wrapped(), "/items"),
        "llm-answer": (wrapped(), "/chat"),
    }
    loop = asyncio.new_event_loop()
    for target, prefix in cases.values():
        loop.run_until_complete(drive(target, prefix, 500))  # warm-up: middleware stacks, label children
    best = {name: float("inf") for name in cases}
    for _ in range(inner_rounds):
        for name, (target, prefix) in cases.items():
            best[name] = min(best[name], loop.run_until_complete(drive(target, prefix, requests)))
    loop.close()
    registry = CollectorRegistry()
    rec = Recorder(Config.from_mapping({"label_cap": 100_000}), registry)
    i = 0
    while sum(len(m.samples) for m in registry.collect()) < 10_000:
        rec.http("GET", f"/route/{i}", 200, 0.01, 10, 100)
        i += 1
    renders = []
    for _ in range(5):
        start = time.perf_counter()
        render(registry, "", "")
        renders.append((time.perf_counter() - start) * 1e3)
    return {
        "http_only_us": best["http-only"] - best["bare-json"],
        "llm_answer_us": best["llm-answer"] - best["bare-llm"],
        "render_10k_ms": min(renders),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path, nargs="?", default=HERE.parent.parent)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        print(json.dumps(probe(args.requests, 3)))
        return
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree)}
            cmd = [sys.executable, str(HERE), str(tree), "--probe", str(tree), "--requests", str(args.requests)]
            out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'figure':28} {'old best':>9} {'new best':>9} {'old median':>11} {'new median':>11}")
    for key, label in (
        ("http_only_us", "HTTP-only overhead, µs"),
        ("llm_answer_us", "LLM answer overhead, µs"),
        ("render_10k_ms", "/metrics 10k samples, ms"),
    ):
        old = [r[key] for r in results["old"]]
        new = [r[key] for r in results["new"]]
        print(
            f"{label:28} {min(old):9.2f} {min(new):9.2f} {statistics.median(old):11.2f} {statistics.median(new):11.2f}"
        )


if __name__ == "__main__":
    main()
