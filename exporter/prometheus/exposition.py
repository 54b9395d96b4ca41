"""The ``/metrics`` endpoint: content negotiation (Prometheus text / OpenMetrics), gzip, ``name[]``
filtering, optional auth, and multiprocess aggregation.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from ..auth import authorizer
from ..config import AuthConfig
from ..types import Receive, Scope, Send
from .multiprocess import scrape_registry


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
    source: Any = scrape_registry(registry)
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

    For an app that :class:`~exporter.PrometheusMiddleware` wraps, don't mount this to move the
    exposition: the middleware keeps serving ``/metrics`` and records the mount's scrapes (and
    Starlette's 307 redirect to the mount's trailing slash) as traffic. Give the middleware
    ``metrics_path="/internal/metrics"`` (or ``metrics_port=``) instead: it serves the exposition there
    only and never records it. This app is for serving a registry from an app without the middleware.
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
