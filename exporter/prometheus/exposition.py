"""The ``/metrics`` endpoint: content negotiation (Prometheus text / OpenMetrics), gzip, ``name[]``
filtering, optional auth, and multiprocess aggregation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import hmac
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

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
    """Drop the live gauges of workers that died (uvicorn restarts them under new pids).

    Their counters and histograms stay: what a dead worker counted still happened. Files are removed
    here rather than with ``multiprocess.mark_process_dead``, because two scrapes (two workers, or two
    Prometheus servers) can clean at the same moment and a file the other one removed is not an error.
    """
    dead: set[int] = set()
    alive: set[int] = set()
    for entry in Path(path).iterdir():
        m = _LIVE_GAUGE.match(entry.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid in alive:
            continue
        if pid not in dead and _pid_alive(pid):
            alive.add(pid)
            continue
        dead.add(pid)
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
    return sorted(dead)


def wipe_multiprocess_dir(path: str) -> None:
    """Remove the value files of an earlier run; prometheus_client requires this before workers start."""
    for entry in Path(path).glob("*.db"):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def _scrape_registry(registry: CollectorRegistry) -> CollectorRegistry:
    path = multiprocess_dir()
    if path is None:
        return registry
    from prometheus_client import multiprocess

    clean_dead_workers(path)
    fresh = CollectorRegistry()
    multiprocess.MultiProcessCollector(fresh, path)
    return fresh


class _Only:
    """The families named in ``name[]``: a family name selects the whole family, a sample name
    (``x_bucket``, ``x_total``) only those samples.

    prometheus_client's ``restricted_registry`` matches sample names only (so a histogram's own name
    selects nothing) and skips collectors without ``describe``, which is every family in multiprocess mode.
    """

    def __init__(self, source: Any, names: Iterable[str]) -> None:
        self.source = source
        self.names = frozenset(names)

    def collect(self) -> Iterator[Metric]:
        names = self.names
        for family in self.source.collect():
            if family.name in names:
                yield family
                continue
            samples = [s for s in family.samples if s.name in names]
            if samples:
                part = Metric(family.name, family.documentation, family.type, family.unit)
                part.samples = samples
                yield part


def accepts_gzip(accept_encoding: str) -> bool:
    """``gzip`` listed with a non-zero quality (or, when gzip isn't named, ``*``)."""
    found: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = item.split(";")
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        found[coding.strip().lower()] = q
    return found.get("gzip", found.get("*", 0.0)) > 0


def render(
    registry: CollectorRegistry, accept: str = "", accept_encoding: str = "", names: list[str] | None = None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The exposition body and its headers for one scrape."""
    source: Any = _scrape_registry(registry)
    if names:
        source = _Only(source, names)
    encoder, content_type = choose_encoder(accept)
    body: bytes = encoder(source)
    headers = [(b"content-type", content_type.encode("latin-1"))]
    if accepts_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=6)
        headers.append((b"content-encoding", b"gzip"))
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append((b"vary", b"accept, accept-encoding"))
    return body, headers


def authorizer(auth: AuthConfig | None) -> Callable[[bytes], bool] | None:
    """A check of the ``Authorization`` header, or None when the endpoint is open.

    The scheme is case-insensitive (RFC 9110) and the secret is compared in constant time.
    """
    if auth is None:
        return None
    if auth.bearer_token:
        token = auth.bearer_token.encode()

        def bearer(header: bytes) -> bool:
            scheme, _, value = header.strip().partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), token)

        return bearer
    if auth.basic_username is not None and auth.basic_password is not None:
        pair = f"{auth.basic_username}:{auth.basic_password}".encode()

        def basic(header: bytes) -> bool:
            scheme, _, value = header.strip().partition(b" ")
            if scheme.lower() != b"basic":
                return False
            try:
                decoded = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, pair)

        return basic
    return None


class MetricsApp:
    """The ASGI app :func:`metrics_app` returns.

    A class rather than a closure: Starlette's ``Route("/metrics", metrics_app())`` and FastAPI's
    ``app.add_route`` treat a plain function as a request handler, and an instance as an ASGI app.
    """

    def __init__(self, registry: CollectorRegistry, auth: AuthConfig | None) -> None:
        self.registry = registry
        self._authorized = authorizer(auth)
        bearer = auth is not None and bool(auth.bearer_token)
        self._challenge = b'Bearer realm="metrics"' if bearer else b'Basic realm="metrics"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            return
        if kind != "http":
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
        if self._authorized is not None and not self._authorized(authorization):
            await _respond(send, 401, b"unauthorized\n", [(b"www-authenticate", self._challenge)])
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        names = query.get("name[]")
        loop = asyncio.get_running_loop()
        body, headers = await loop.run_in_executor(
            None, render, self.registry, accept.decode("latin-1"), accept_encoding.decode("latin-1"), names
        )
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def metrics_app(
    registry: CollectorRegistry | None = None, *, auth: AuthConfig | None = None, recorder: Any = None
) -> MetricsApp:
    """An ASGI app that serves the exposition on every path it is mounted at.

    It answers lifespan events itself, so it can be the root app or mounted anywhere. Rendering runs on
    a worker thread: a large registry must not stall the event loop of the app it is mounted in.
    With ``recorder=`` it serves that recorder's registry, protected by its config's ``auth``.
    """
    if recorder is not None:
        registry = recorder.registry
        auth = auth or recorder.config.auth
    return MetricsApp(REGISTRY if registry is None else registry, auth)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


_servers: dict[int, tuple[threading.Thread, Any]] = {}  # port -> (thread, uvicorn.Server)
_servers_lock = threading.Lock()


def start_metrics_server(port: int, host: str = "127.0.0.1", app: ASGIApp | None = None) -> threading.Thread:
    """Serve the exposition on its own port from a daemon thread (once per port per process).

    The socket is bound here, in the caller's thread, so a port in use raises ``OSError`` at once
    instead of leaving a thread that died quietly and no metrics anywhere.
    """
    import uvicorn

    with _servers_lock:
        running = _servers.get(port)
        if running is not None and running[0].is_alive():
            return running[0]
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)  # connections queue from here on, before the thread's loop accepts them
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        # log_config=None, log_level=None: a second uvicorn.Config must not reconfigure the logging of the
        # server this one runs beside. No access log: a scrape every few seconds is noise.
        config = uvicorn.Config(
            app or metrics_app(),
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            log_level=None,
            access_log=False,
        )
        server = uvicorn.Server(config)
        # uvicorn installs signal handlers only in the main thread; this one runs beside the app.
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"llm-exporter-metrics-{port}", daemon=True
        )
        thread.start()
        _servers[port] = (thread, server)
        return thread


def stop_metrics_server(port: int, timeout: float = 10.0) -> None:
    """Stop the server :func:`start_metrics_server` started on ``port`` (no-op if there is none)."""
    with _servers_lock:
        running = _servers.pop(port, None)
    if running is not None:
        thread, server = running
        server.should_exit = True
        thread.join(timeout)
