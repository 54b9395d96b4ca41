"""``POST /track`` throughput benchmark (not a test): events/s with batches of 100 events per POST.

In process: the collector's ASGI app called as a server calls it (lifespan startup first, so the sinks'
hand-off runs as under ``llm-exporter collector``; no client, no sockets), which measures the collector's
own cost: body read, JSON decode, validation of every event, recording, the 202 answer. Each POST must be
answered ``{"accepted": 100}`` and the collector's count must hold every event. Beside it, the same through
``httpx.ASGITransport`` (the figure this benchmark first gave, which adds the client's cost), and a
breakdown of the stages. With ``--uvicorn``, against a collector served by uvicorn in a separate process,
with several concurrent clients (adds HTTP parsing and the network stack of loopback). The batch mixes
every event kind, like a busy service would send.

``--instructions`` counts CPU instructions per event under ``valgrind --tool=callgrind`` instead (a run
with 20 POSTs minus one without): repeatable whatever else the machine is doing. It runs on an older
checkout too (copy this file and ``callgrind.py`` into its ``bench/``), to compare.

    python bench/track.py [--posts 300] [--batch 100] [--rounds 5] [--uvicorn] [--concurrency 8] [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callgrind import per_unit

from exporter.collector import create_app
from exporter.collector.events import parse_events
from exporter.config import Config
from exporter.recorder import Recorder
from exporter.wiring import build

try:
    from exporter.collector.decode import decode
except ImportError:  # a checkout from before it (bench/track.py run on an older tree, to compare)
    decode = json.loads

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


async def _post(app: Any, body: bytes) -> tuple[int, bytes]:
    """One ``POST /track`` straight into the ASGI app, as a server hands it over: the status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/track",
        "raw_path": b"/track",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"collector"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    request = {"type": "http.request", "body": body, "more_body": False}
    answer: list[Any] = []

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        answer.append(message.get("status", message.get("body")))

    await app(scope, receive, send)
    return answer[0], answer[1]


async def _lifespan(app: Any, phase: str) -> None:
    """The ASGI lifespan's ``startup`` or ``shutdown``, as uvicorn runs it (the recorder starts its sinks'
    hand-off at startup, so the drift case measures what ``llm-exporter collector`` runs)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": f"lifespan.{phase}"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        raise _PhaseDone

    try:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    except _PhaseDone:
        pass
    assert sent[0]["type"] == f"lifespan.{phase}.complete", sent


class _PhaseDone(Exception):
    pass


def collector(drift: bool = False) -> Any:
    recorder = build(Config.from_mapping({**CONFIG, "drift": {"enabled": drift}}), CollectorRegistry())
    return create_app(recorder=recorder)


async def posts(app: Any, body: bytes, n: int, size: int) -> None:
    """``n`` POSTs of one batch, each answered 202 with every event accepted."""
    expected = json.dumps({"accepted": size}, separators=(",", ":")).encode()
    for _ in range(n):
        status, answer = await _post(app, body)
        assert status == 202 and answer == expected, (status, answer)


def in_process(n: int, size: int, drift: bool = False) -> float:
    """Events per second through the collector's ASGI app, called as a server calls it (no client, no
    sockets): body read, JSON decode, validation of every event, recording, the 202 answer. ``drift``:
    with the drift detector attached as a sink, as ``llm-exporter collector`` runs by default."""
    app = collector(drift)
    body = json.dumps(batch(size)).encode()

    async def run() -> float:
        await _lifespan(app, "startup")
        await posts(app, body, 20, size)  # warm label children and pricing look-ups
        start = time.perf_counter()
        await posts(app, body, n, size)
        elapsed = time.perf_counter() - start
        await _lifespan(app, "shutdown")
        return elapsed

    elapsed = asyncio.run(run())
    # Every event of every POST was recorded: the collector's own count says so.
    assert app.counts == {"accepted": (n + 20) * size, "rejected": 0}, app.counts
    return n * size / elapsed


def through_httpx(n: int, size: int) -> float:
    """The same through ``httpx.ASGITransport`` (the figure this benchmark first reported: it adds the
    client's own cost, about a third of the total)."""
    app = collector()
    body = json.dumps(batch(size)).encode()
    headers = {"content-type": "application/json"}

    async def run() -> float:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as client:
            for _ in range(20):
                await client.post("/track", content=body, headers=headers)
            start = time.perf_counter()
            for _ in range(n):
                response = await client.post("/track", content=body, headers=headers)
                assert response.status_code == 202, response.text
            return time.perf_counter() - start

    return n * size / asyncio.run(run())


def probe(n: int, size: int, drift: bool) -> None:
    """The instruction-count run: startup and a warm-up, then ``n`` POSTs (none for the baseline run)."""
    app = collector(drift)
    body = json.dumps(batch(size)).encode()

    async def run() -> None:
        await _lifespan(app, "startup")
        handoff = getattr(app.recorder, "_handoff", None)
        if handoff is not None:  # the sinks' thread stopped: its drain is counted once, at the end
            handoff._stop.set()
        await posts(app, body, 20, size)
        if handoff is not None:
            handoff.drain()
        await posts(app, body, n, size)
        if handoff is not None:
            handoff.drain()

    asyncio.run(run())
    os._exit(0)


def instructions(n: int, size: int, drift: bool) -> float:
    """Instructions per event under callgrind (a run with ``n`` POSTs minus one without, over the events)."""

    def argv(events: int) -> list[str]:
        return [__file__, "--probe", str(events // size), "--batch", str(size), *(["--drift"] * drift)]

    return per_unit(argv, n * size)


def stages(size: int, repeat: int = 300) -> dict[str, float]:
    """Microseconds per event for each stage of a request."""
    recorder = Recorder(Config.from_mapping(CONFIG), CollectorRegistry())
    body = json.dumps(batch(size)).encode()
    decoded = decode(body)
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
        "json decode": per_event(lambda: decode(body)),
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
    parser.add_argument("--instructions", action="store_true", help="count instructions per event (callgrind)")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--drift", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        probe(args.probe, args.batch, args.drift)
        return
    python = f"Python {sys.version.split()[0]} ({sys.executable})"
    if args.instructions:
        print(f"/track under callgrind, {args.batch} events per POST, {python}")
        for drift in (False, True):
            per_event = instructions(20, args.batch, drift)
            print(f"  {'drift detector on' if drift else 'in process'}: {per_event:,.0f} instructions per event")
        return

    print(
        f"/track throughput, {args.batch} events per POST, best of {args.rounds} rounds of {args.posts} POSTs, {python}"
    )
    rates: dict[str, list[float]] = {"direct": [], "drift": [], "httpx": []}
    for _ in range(args.rounds):  # interleaved: each variant faces the same machine
        rates["direct"].append(in_process(args.posts, args.batch))
        rates["drift"].append(in_process(args.posts, args.batch, drift=True))
        rates["httpx"].append(through_httpx(args.posts, args.batch))
    for key, label in (
        ("direct", "in process (the ASGI app called as a server calls it)"),
        ("drift", "same, drift detector on"),
        ("httpx", "through httpx.ASGITransport (adds the client's cost)"),
    ):
        best = max(rates[key])
        print(f"  {label}: {best:,.0f} events/s ({best / args.batch:,.0f} POSTs/s)")
    parts = [stages(args.batch) for _ in range(args.rounds)]
    for name in parts[0]:
        print(f"    {name:12s} {min(p[name] for p in parts):6.2f} us/event")
    if args.uvicorn:
        best = max(through_uvicorn(args.posts, args.batch, args.concurrency) for _ in range(max(1, args.rounds // 2)))
        print(
            f"  uvicorn, {args.concurrency} concurrent clients: {best:,.0f} events/s ({best / args.batch:,.0f} POSTs/s)"
        )


if __name__ == "__main__":
    main()
