"""``POST /track`` throughput benchmark (not a test): events/s with batches of 100 events per POST.

In process through ``httpx.ASGITransport`` (the collector's own cost: JSON decode, validation,
recording), with a breakdown of the stages; then, with ``--uvicorn``, against a collector served by
uvicorn in a separate process, with several concurrent clients (adds HTTP parsing and the network
stack of loopback). The batch mixes every event kind, like a busy service would send.

    python bench/track.py [--posts 300] [--batch 100] [--rounds 5] [--uvicorn] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.collector import create_app
from exporter.collector.events import parse_events
from exporter.config import Config
from exporter.recorder import Recorder
from exporter.wiring import build

CONFIG = {"drift": {"enabled": False}, "otel": {"exemplars": False}}


def batch(size: int) -> list[dict[str, Any]]:
    kinds: list[dict[str, Any]] = [
        {"type": "llm", "model": "gpt-4o-mini", "provider": "openai", "input_tokens": 812, "output_tokens": 143,
         "cached_input_tokens": 0, "duration_ms": 1840, "ttft_ms": 420, "tenant": "acme"},
        {"type": "llm", "model": "gpt-4o", "provider": "openai", "input_tokens": 95, "output_tokens": 310,
         "duration": 3.2, "cost_usd": 0.0033},
        {"type": "confidence", "value": 0.91, "label": "booking", "model": "gpt-4o-mini"},
        {"type": "evaluation", "name": "faithfulness", "score": 0.82, "model": "gpt-4o-mini"},
        {"type": "feedback", "rating": 4, "model": "gpt-4o-mini"},
        {"type": "event", "name": "appointment_requested", "tenant": "acme"},
        {"type": "http", "method": "POST", "route": "/chat/{id}", "status": 200, "duration_ms": 1900},
        {"business_id": "test-business", "response_time_ms": 1500, "tokens_used": 150, "api_cost_usd": 0.002,
         "intent_detected": "general", "appointment_requested": False, "user_message_length": 45,
         "ai_response_length": 120, "response_type": "text"},
    ]  # fmt: skip
    return [kinds[i % len(kinds)] for i in range(size)]


def in_process(posts: int, size: int, drift: bool = False) -> float:
    """Events per second through the ASGI app (client and app in one event loop); ``drift``: with the
    drift detector attached as a sink, as ``llm-exporter collector`` runs by default."""
    recorder = build(Config.from_mapping({**CONFIG, "drift": {"enabled": drift}}), CollectorRegistry())
    app = create_app(recorder=recorder)
    body = json.dumps(batch(size)).encode()
    headers = {"content-type": "application/json"}

    async def run() -> float:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as client:
            for _ in range(20):  # warm label children and pricing look-ups
                await client.post("/track", content=body, headers=headers)
            start = time.perf_counter()
            for _ in range(posts):
                response = await client.post("/track", content=body, headers=headers)
                assert response.status_code == 202, response.text
            return time.perf_counter() - start

    return posts * size / asyncio.run(run())


def stages(size: int, repeat: int = 300) -> dict[str, float]:
    """Microseconds per event for each stage of a request."""
    recorder = Recorder(Config.from_mapping(CONFIG), CollectorRegistry())
    body = json.dumps(batch(size)).encode()
    decoded = json.loads(body)
    _, observations, _ = parse_events(decoded)
    for o in observations:
        recorder.record(o)

    def per_event(fn: Any) -> float:
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        return (time.perf_counter() - start) / (repeat * size) * 1e6

    def record() -> None:
        for o in observations:
            recorder.record(o)

    return {
        "json decode": per_event(lambda: json.loads(body)),
        "validate": per_event(lambda: parse_events(decoded)),
        "record": per_event(record),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVER = """
import sys, uvicorn
from prometheus_client import CollectorRegistry
from exporter.collector import create_app
from exporter.config import Config
from exporter.recorder import Recorder
config = Config.from_mapping({config})
app = create_app(recorder=Recorder(config, CollectorRegistry()))
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""


def through_uvicorn(posts: int, size: int, concurrency: int) -> float:
    port = free_port()
    code = SERVER.format(config=repr(CONFIG), port=port)
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root)
    url = f"http://127.0.0.1:{port}"
    body = json.dumps(batch(size)).encode()
    headers = {"content-type": "application/json"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the collector did not start") from None
                time.sleep(0.05)

        async def run() -> float:
            async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=concurrency)) as client:
                for _ in range(20):
                    await client.post("/track", content=body, headers=headers)
                queue = iter(range(posts))

                async def worker() -> None:
                    for _ in queue:
                        response = await client.post("/track", content=body, headers=headers)
                        assert response.status_code == 202, response.text

                start = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                return time.perf_counter() - start

        return posts * size / asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--uvicorn", action="store_true", help="also measure through uvicorn (separate process)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    print(f"/track throughput, {args.batch} events per POST, best of {args.rounds} rounds of {args.posts} POSTs")
    rates = [in_process(args.posts, args.batch) for _ in range(args.rounds)]
    best = max(rates)
    print(f"  in process (ASGITransport): {best:,.0f} events/s ({best / args.batch:,.0f} POSTs/s)")
    rates = [in_process(args.posts, args.batch, drift=True) for _ in range(args.rounds)]
    best = max(rates)
    print(f"  same, drift detector on:    {best:,.0f} events/s ({best / args.batch:,.0f} POSTs/s)")
    parts = [stages(args.batch) for _ in range(args.rounds)]
    for name in parts[0]:
        print(f"    {name:12s} {min(p[name] for p in parts):6.2f} us/event")
    if args.uvicorn:
        rates = [through_uvicorn(args.posts, args.batch, args.concurrency) for _ in range(max(1, args.rounds // 2))]
        best = max(rates)
        print(
            f"  uvicorn, {args.concurrency} concurrent clients: {best:,.0f} events/s ({best / args.batch:,.0f} POSTs/s)"
        )


if __name__ == "__main__":
    main()
