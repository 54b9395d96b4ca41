"""Drive ASGI apps directly, for the cases a client library hides (disconnects, raw messages)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from exporter import Config, PrometheusMiddleware, Recorder


def wrap(app: Any, **options: Any) -> tuple[PrometheusMiddleware, CollectorRegistry]:
    """``app`` wrapped by the middleware on a fresh registry (config keys as keyword options)."""
    registry = CollectorRegistry()
    recorder = Recorder(Config.from_mapping(options), registry)
    return PrometheusMiddleware(app, recorder=recorder), registry


def http_scope(path: str = "/", method: str = "GET", *, spec: str = "2.4", root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def call(
    app: Any,
    scope: dict[str, Any],
    *,
    body: bytes = b"",
    receive: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    send: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """Run one request; returns the messages the app sent."""
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def default_receive() -> dict[str, Any]:
        if not getattr(default_receive, "used", False):
            default_receive.used = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def default_send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def recording_send(message: dict[str, Any]) -> None:
        sent.append(message)
        if send is not None:
            await send(message)

    try:
        await app(scope, receive or default_receive, recording_send if send is not None else default_send)
    finally:
        done.set()
    return sent
