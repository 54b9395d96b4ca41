"""Drives ASGI apps in-process for the benchmarks: the same requests, rounds interleaved."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from payloads import openai_json, openai_sse
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

CHAT = openai_json(2048)
STREAM = openai_sse(200)  # 200 events (the last with usage) and the [DONE] line


async def chat(request: Request) -> Response:
    return Response(CHAT, media_type="application/json")


async def stream(request: Request) -> StreamingResponse:
    async def events() -> Any:
        for chunk in STREAM:
            yield chunk

    return StreamingResponse(events(), media_type="text/event-stream")


def llm_routes() -> list[Route]:
    """``/chat/{item_id}`` answers a 2 KB OpenAI chat completion, ``/stream/{item_id}`` a 200-chunk SSE stream."""
    return [Route("/chat/{item_id}", chat), Route("/stream/{item_id}", stream)]


def scope_for(i: int, prefix: str = "/items") -> dict[str, Any]:
    path = f"{prefix}/{i % 50}"
    return {
        "type": "http",
        # spec 2.4: a streamed response then does not poll receive() for a disconnect, which this driver
        # would answer at once, forever.
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def drive(app: Any, n: int, prefix: str = "/items") -> float:
    """µs per request of ``n`` GET requests to ``prefix/<i>``."""
    scopes = [scope_for(i, prefix) for i in range(n)]
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        pass

    start = time.perf_counter()
    for scope in scopes:
        await app(scope, receive, send)
    return (time.perf_counter() - start) / n * 1e6


def compare(apps: dict[str, Any], requests: int, rounds: int) -> dict[str, float]:
    """µs per request of each app: the best of ``rounds`` interleaved rounds.

    The best, as ``timeit`` reports it: on a shared machine the slower rounds measure other processes'
    interference, not the code, and interleaving makes every variant face the same machine.
    """
    return {name: min(values) for name, values in rounds_of(apps, requests, rounds).items()}


def rounds_of(apps: dict[str, Any], requests: int, rounds: int, prefix: str = "/items") -> dict[str, list[float]]:
    """Every round's µs per request to ``prefix/<i>``, per app."""
    samples: dict[str, list[float]] = {name: [] for name in apps}
    loop = asyncio.new_event_loop()
    for app in apps.values():  # warm-up: builds middleware stacks and label children
        loop.run_until_complete(drive(app, min(500, requests), prefix))
    for _ in range(rounds):
        for name, app in apps.items():
            samples[name].append(loop.run_until_complete(drive(app, requests, prefix)))
    loop.close()
    return samples
