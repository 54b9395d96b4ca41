"""``PrometheusMiddleware``: a pure ASGI middleware that records the HTTP rows of the metric contract.

The response is observed by wrapping ``send``: the status comes with ``http.response.start``, the first
byte with the first body chunk, the end with ``more_body=False``. Latency therefore ends at the last body
chunk, and background tasks that run afterwards are not part of it. Per-request state lives in locals.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry

from .capture import capture_body, start_capture
from .config import Config, to_dict
from .exposition import metrics_app, multiprocess_dir, start_metrics_server
from .metrics import KNOWN_METHODS, UNMATCHED
from .recorder import Recorder, _current, is_default, recorder_for
from .routing import Resolver, RouteResolver
from .types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("exporter")

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CLIENT_CLOSED = 499  # nginx's code for a client that went away before the response ended


class PrometheusMiddleware:
    """Wraps any ASGI app. With no arguments it records on the default registry and serves ``/metrics``.

    Keyword options are the keys of :class:`Config` (``metrics_path=``, ``exclude_paths=``, ``labels=``,
    ``label_cap=``...), validated as config; ``route_resolver`` maps a scope to a route template for
    frameworks other than Starlette/FastAPI.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: Config | None = None,
        registry: CollectorRegistry | None = None,
        recorder: Recorder | None = None,
        route_resolver: Resolver | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        if recorder is not None:
            config = config or recorder.config
        if options:
            base = to_dict(config) if config is not None else {}
            config = Config.from_mapping({**base, **options}, source="PrometheusMiddleware(...)")
        self.recorder = recorder if recorder is not None else recorder_for(registry, config)
        cfg = self.config = config or self.recorder.config
        self.is_default = is_default(self.recorder)
        self.metrics_path = cfg.metrics_path
        self.excluded = frozenset((*cfg.exclude_paths, cfg.metrics_path))
        self.routes = RouteResolver(app, cfg.route_patterns, route_resolver)
        self.metrics: ASGIApp | None = None
        if cfg.metrics_port is None:
            self.metrics = metrics_app(self.recorder.registry, auth=cfg.auth)
        elif multiprocess_dir() is None:
            # With several workers the CLI serves the port from the parent process instead.
            start_metrics_server(cfg.metrics_port, cfg.metrics_host, metrics_app(self.recorder.registry, auth=cfg.auth))
        self.recorder.pricing  # noqa: B018 - load the table now: a bad pricing file fails at startup, not mid-request
        self.capture_on = cfg.capture.enabled
        if cfg.otel.exemplars and multiprocess_dir() is None and self.recorder.exemplar is None:
            from .otel import enable_exemplars

            enable_exemplars(self.recorder)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self.app(scope, receive, self._lifespan_send(send))
            else:
                await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.excluded:
            if path == self.metrics_path and self.metrics is not None:
                await self.metrics(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return

        method: str = scope["method"]
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        rec = self.recorder
        try:
            route = rec.route(self.routes(scope))
        except Exception:  # an odd route table must not fail the request
            log.exception("llm-exporter: resolving the route failed")
            route = UNMATCHED
        active = rec.active(method, route)
        active(1)
        # Handlers' llm.* calls find this recorder through a context variable. The default registry's
        # recorder is what they fall back to anyway, so the common case skips the set and reset.
        token = None if self.is_default and _current.get() is None else _current.set(rec)
        perf_counter = time.perf_counter
        start = perf_counter()
        status = 0
        received = 0
        sent = 0
        first_byte = 0.0
        streaming = False
        done = False
        disconnected = False
        capture: Any = None  # a reader fed chunk by chunk (streamed bodies)
        whole_body = b""  # a body sent in one message, read once at the end
        response_headers: Any = ()
        capture_on = self.capture_on
        capture_config = self.config.capture

        def finish(end: float) -> None:
            nonlocal done, received
            done = True
            try:
                if not received and method in BODY_METHODS:
                    received = content_length(scope)  # a body the app never read
                rec.http(method, route, status, end - start, received, sent, first_byte - start if streaming else None)
                if capture is not None:
                    capture.finish(rec, start, end, status)
                elif whole_body:
                    capture_body(response_headers, whole_body, first_byte, capture_config, rec, start, end, status)
            except Exception:  # metrics must never fail a request
                log.exception("llm-exporter: recording a request failed")

        async def receive_wrapper() -> Message:
            nonlocal received, disconnected
            message = await receive()
            kind = message["type"]
            if kind == "http.request":
                received += len(message.get("body", b""))
            elif kind == "http.disconnect":
                disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, first_byte, streaming, capture, whole_body, response_headers, disconnected
            kind = message["type"]
            if kind == "http.response.body":
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if body:
                    if not sent:
                        first_byte = perf_counter()
                        streaming = more
                        if capture_on:
                            if more:
                                try:
                                    capture = start_capture(response_headers, capture_config)
                                except Exception:
                                    capture = None
                            else:
                                whole_body = body
                    sent += len(body)
                    if capture is not None:
                        try:
                            capture.feed(body, perf_counter())
                        except Exception:
                            capture = None
                try:
                    await send(message)
                except OSError:
                    disconnected = True  # the server tells the app the client is gone (uvicorn: ClientDisconnected)
                    raise
                if not more and not done:
                    finish(perf_counter())
                return
            if kind == "http.response.start":
                status = message["status"]
                response_headers = message.get("headers", ())
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            if not done:
                if disconnected or not isinstance(exc, Exception):  # CancelledError: the client or server gave up
                    status = CLIENT_CLOSED
                elif status == 0:
                    status = 500
                finish(perf_counter())
            if isinstance(exc, Exception) and not disconnected:
                try:
                    rec.http_exception(method, route, exc)
                except Exception:
                    log.exception("llm-exporter: recording an exception failed")
            raise
        else:
            if not done:
                # The app returned without ending the body: the client left, or nothing was sent (the server
                # then answers 500 itself).
                if disconnected:
                    status = CLIENT_CLOSED
                elif status == 0:
                    status = 500
                finish(perf_counter())
        finally:
            active(-1)
            if token is not None:
                _current.reset(token)

    def _lifespan_send(self, send: Send) -> Send:
        """Pass lifespan messages through; on shutdown, flush the recorder's sinks (MLflow's last window)."""
        recorder = self.recorder

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                import asyncio

                try:
                    await asyncio.get_running_loop().run_in_executor(None, recorder.close)
                except Exception:
                    log.exception("llm-exporter: closing the recorder failed")
            await send(message)

        return lifespan_send


def content_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return max(int(value), 0)
            except ValueError:
                return 0
    return 0
