"""The ``/metrics`` endpoint: content negotiation (Prometheus text / OpenMetrics), gzip, ``name[]``
filtering, optional auth, and multiprocess aggregation.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hmac
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .config import AuthConfig
from .types import ASGIApp, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_dead_workers(path: str) -> list[int]:
    """Drop the live gauges of workers that died (uvicorn restarts them under new pids)."""
    from prometheus_client import multiprocess

    dead: list[int] = []
    for entry in Path(path).iterdir():
        m = _LIVE_GAUGE.match(entry.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid not in dead and not _pid_alive(pid):
            dead.append(pid)
            multiprocess.mark_process_dead(pid, path)
    return dead


def _scrape_registry(registry: CollectorRegistry) -> CollectorRegistry:
    path = multiprocess_dir()
    if path is None:
        return registry
    from prometheus_client import multiprocess

    clean_dead_workers(path)
    fresh = CollectorRegistry()
    multiprocess.MultiProcessCollector(fresh, path)
    return fresh


def render(
    registry: CollectorRegistry, accept: str = "", accept_encoding: str = "", names: list[str] | None = None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The exposition body and its headers for one scrape."""
    source: Any = _scrape_registry(registry)
    if names:
        source = source.restricted_registry(names)
    encoder, content_type = choose_encoder(accept)
    body: bytes = encoder(source)
    headers = [(b"content-type", content_type.encode("latin-1"))]
    if "gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=6)
        headers.append((b"content-encoding", b"gzip"))
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append((b"vary", b"accept, accept-encoding"))
    return body, headers


def _authorizer(auth: AuthConfig | None) -> Callable[[bytes], bool] | None:
    if auth is None:
        return None
    if auth.bearer_token:
        expected = b"Bearer " + auth.bearer_token.encode()
    elif auth.basic_username is not None and auth.basic_password is not None:
        pair = f"{auth.basic_username}:{auth.basic_password}".encode()
        expected = b"Basic " + base64.b64encode(pair)
    else:
        return None
    return lambda header: hmac.compare_digest(header, expected)


def metrics_app(
    registry: CollectorRegistry | None = None, *, auth: AuthConfig | None = None, recorder: Any = None
) -> ASGIApp:
    """An ASGI app that serves the exposition on every path it is mounted at.

    It answers lifespan events itself, so it can be the root app or mounted anywhere. Rendering runs on
    a worker thread: a large registry must not stall the event loop of the app it is mounted in.
    """
    if recorder is not None:
        registry = recorder.registry
        auth = auth or recorder.config.auth
    reg = REGISTRY if registry is None else registry
    authorized = _authorizer(auth)
    challenge = b'Bearer realm="metrics"' if auth is not None and auth.bearer_token else b'Basic realm="metrics"'

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        accept = accept_encoding = b""
        authorization = b""
        for key, value in scope["headers"]:
            if key == b"accept":
                accept = value
            elif key == b"accept-encoding":
                accept_encoding = value
            elif key == b"authorization":
                authorization = value
        if authorized is not None and not authorized(authorization):
            await _respond(send, 401, b"unauthorized\n", [(b"www-authenticate", challenge)])
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        names = query.get("name[]")
        loop = asyncio.get_running_loop()
        body, headers = await loop.run_in_executor(
            None, render, reg, accept.decode("latin-1"), accept_encoding.decode("latin-1"), names
        )
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    return app


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


_servers: dict[int, threading.Thread] = {}
_servers_lock = threading.Lock()


def start_metrics_server(port: int, host: str = "127.0.0.1", app: ASGIApp | None = None) -> threading.Thread:
    """Serve the exposition on its own port from a daemon thread (once per port per process)."""
    import uvicorn

    with _servers_lock:
        thread = _servers.get(port)
        if thread is not None:
            return thread
        config = uvicorn.Config(app or metrics_app(), host=host, port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        # uvicorn installs signal handlers only in the main thread; this one runs beside the app.
        thread = threading.Thread(target=server.run, name=f"llm-exporter-metrics-{port}", daemon=True)
        thread.start()
        _servers[port] = thread
        return thread
