"""``PrometheusMiddleware``: a pure ASGI middleware that records the HTTP rows of the metric contract.

The response is observed by wrapping ``send``: the status comes with ``http.response.start``, the first
byte with the first body chunk, the end with ``more_body=False``. Latency therefore ends at the last body
chunk, and background tasks that run afterwards are not part of it. Per-request state lives in locals.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable
from typing import Any

from prometheus_client import CollectorRegistry

from .capture.request import requested_model
from .capture.response import SseCapture, capture_body, may_carry_usage, start_capture
from .capture.transport import instrument
from .config import Config, to_dict
from .context import Handling, handling_var
from .labels import KNOWN_METHODS, UNMATCHED
from .observations import LLMCall
from .prometheus.exposition import metrics_app
from .prometheus.multiprocess import multiprocess_dir
from .prometheus.server import start_metrics_server
from .recorder import Recorder
from .routing import Resolver, RouteResolver, find_routes, route_path
from .types import ASGIApp, Message, Receive, Scope, Send
from .wiring import is_default, recorder_for

log = logging.getLogger("exporter")

CLIENT_CLOSED = 499  # nginx's code for a client that went away before the response ended


class PrometheusMiddleware:
    """Wraps any ASGI app. With no arguments it records on the default registry and serves ``/metrics``.

    Without ``config`` (or ``recorder``) it reads :meth:`Config.load`: the config file and ``LLM_EXPORTER_*``
    variables. Keyword options are the keys of :class:`Config` (``metrics_path=``, ``exclude_paths=``,
    ``labels=``, ``label_cap=``...), validated as config and applied on top; ``route_resolver`` maps a
    scope to a route template for frameworks other than Starlette/FastAPI.
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
            # On top of the config file and LLM_EXPORTER_* variables when no config is given, as the CLI
            # reads them. (Without options, recorder_for() loads them, or reuses the registry's recorder.)
            base = to_dict(config if config is not None else Config.load())
            config = Config.from_mapping({**base, **options}, source="PrometheusMiddleware(...)")
        self.recorder = recorder if recorder is not None else recorder_for(registry, config)
        cfg = self.config = config or self.recorder.config
        self.is_default = is_default(self.recorder)
        self.metrics_path = cfg.metrics_path
        self.excluded = frozenset((*cfg.exclude_paths, cfg.metrics_path))
        self.route_resolver = RouteResolver(app, cfg.route_patterns, route_resolver, cap=self.recorder.route)
        # With metrics_port set, the exposition is served on that port (from startup) and not on the app's.
        self.metrics: ASGIApp | None = (
            metrics_app(self.recorder.registry, auth=cfg.auth) if cfg.metrics_port is None else None
        )
        self.capture_config = cfg.capture if cfg.capture.enabled else None
        self.outbound = cfg.capture.outbound
        self.started = False

    def startup(self) -> None:
        """Read the price table (a bad pricing file fails here), serve ``metrics_port``, turn exemplars on,
        install outbound capture (``capture.outbound``), start the recorder's sinks. Runs at the lifespan's
        startup, or before the first request of an app whose server has no lifespan. Idempotent."""
        if self.started:
            return
        self.started = True
        cfg = self.config
        self.recorder.pricing  # noqa: B018 - loaded now, not mid-request
        if cfg.metrics_port is not None:
            try:
                start_metrics_server(
                    cfg.metrics_port,
                    cfg.metrics_host or "127.0.0.1",
                    metrics_app(self.recorder.registry, auth=cfg.auth),
                )
            except OSError:
                if multiprocess_dir() is None:
                    raise
                # Several workers: the first one (or `llm-exporter run`'s parent) serves the port, and any
                # worker's exposition reads every worker's files.
                log.debug("llm-exporter: metrics port %s is served by another process", cfg.metrics_port)
        if cfg.otel.exemplars and multiprocess_dir() is None and self.recorder.exemplar is None:
            # The otel extra: imported only when used, so `import exporter` never imports opentelemetry.
            from .otel import enable_exemplars

            enable_exemplars(self.recorder)
        if self.outbound:
            instrument()  # process-wide and idempotent: every middleware of the process shares one hook
        self.recorder.start()

    @property
    def routes(self) -> list[Any]:
        """The wrapped app's routes, so an outer app that mounts this one still sees its route table."""
        return find_routes(self.app) or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self.app(scope, self._lifespan_receive(receive), self._lifespan_send(send))
            else:
                await self.app(scope, receive, send)
            return
        if not self.started:
            try:
                self.startup()
            except Exception:  # metrics must never fail a request; the lifespan path reports it loudly
                log.exception("llm-exporter: starting up failed")
        path = scope["path"]
        if scope.get("root_path"):
            path = route_path(scope)  # without root_path, as the app routes it
        if path in self.excluded:
            if path == self.metrics_path and self.metrics is not None:
                await self.metrics(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return

        method: str = scope["method"]
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        try:
            route = self.route_resolver(scope, path)
        except Exception:  # an odd route table must not fail the request
            log.exception("llm-exporter: resolving the route failed")
            route = UNMATCHED
        exchange = _Exchange(self, scope, receive, send, method, route)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except BaseException as exc:
            exchange.failed(exc)
            raise
        else:
            if not exchange.done:
                exchange.returned()
        finally:
            # Inline, not a method: this runs on every request.
            exchange.active(-1)
            handling_var.reset(exchange.handling)
            exchange.release()

    def _lifespan_receive(self, receive: Receive) -> Receive:
        """Start before the app's own startup runs, so its startup code already records."""

        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.startup()
            return message

        return lifespan_receive

    def _lifespan_send(self, send: Send) -> Send:
        """Pass lifespan messages through; on shutdown, flush the recorder's sinks (MLflow's last window)."""
        recorder = self.recorder

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                try:
                    await asyncio.get_running_loop().run_in_executor(None, recorder.close)
                except Exception:
                    log.exception("llm-exporter: closing the recorder failed")
            await send(message)

        return lifespan_send


async def _over_receive() -> Message:
    # What the server says to a receive() once the response is over (a task the handler left behind).
    return {"type": "http.disconnect"}


async def _over_send(message: Message) -> None:
    raise RuntimeError(f"ASGI message {message.get('type')!r} sent after the app returned")


def _from_send(exc: BaseException, send: Send) -> bool:
    """Whether ``exc``, or one it was raised while handling (Starlette raises ``ClientDisconnect`` from the
    server's error), is an OSError raised in ``send``: how an ASGI 2.4 server says the client is gone.

    Told by the frames the error went through, so an OSError of the app's own (a file, an upstream
    connection) stays a server error. A send with no Python frame (a compiled server's) cannot be told
    apart: any OSError counts then. An exchange's send has no frame of its own (it returns the next one's
    awaitable): the next one's is looked for."""
    while type(getattr(send, "__self__", None)) is _Exchange:
        send = send.__self__._send  # type: ignore[attr-defined]
    code = getattr(getattr(send, "__func__", send), "__code__", None)
    found: BaseException | None = exc
    for _ in range(8):  # a chain is a few exceptions long; bounded, should one loop
        if found is None:
            return False
        if isinstance(found, OSError) and (
            code is None or any(frame.f_code is code for frame, _ in traceback.walk_tb(found.__traceback__))
        ):
            return True
        found = found.__cause__ or found.__context__
    return False


class _Exchange(Handling):
    """One request/response as the middleware sees it: wraps ``receive`` and ``send`` and records once.

    A slotted object rather than closures: one allocation per request instead of a dozen cells. It is also
    the request's :class:`~exporter.context.Handling` (its route, the LLM answers outbound capture saw
    while handling it), current for the handler's calls: no second object per request.
    """

    __slots__ = (
        "rec",
        "scope",
        "_receive",
        "_send",
        "method",
        "active",
        "handling",
        "capture_config",
        "start",
        "status",
        "received",
        "sent",
        "first_byte",
        "streaming",
        "done",
        "disconnected",
        "capture",
        "held",
        "held_times",
        "batch",
        "whole_body",
        "headers",
        "request_first",
        "request_last",
    )

    route: str  # a request's always has one
    held: list[bytes] | None
    held_times: list[float]
    batch: int

    def __init__(
        self, mw: PrometheusMiddleware, scope: Scope, receive: Receive, send: Send, method: str, route: str
    ) -> None:
        rec = self.rec = self.recorder = mw.recorder
        self.scope = scope
        self._receive = receive
        self._send = send
        self.method = method
        self.route = route
        self.outbound_calls = 0
        self.active = rec.active(method, route)
        self.active(1)
        # Handlers' llm.* calls find this recorder and the route through one context variable.
        self.handling = handling_var.set(self)
        self.capture_config = mw.capture_config  # None when capture is off
        self.status = 0
        self.received = 0
        self.sent = 0
        self.first_byte = 0.0
        self.streaming = False
        self.done = False
        self.disconnected = False
        self.capture: Any = None  # a reader fed chunk by chunk (streamed bodies)
        # held (None: no SSE capture), held_times, batch: set with the first body chunk
        self.whole_body = b""  # a body sent in one message, read once at the end
        self.headers: Any = ()
        self.request_first = self.request_last = b""  # the request body's first and last chunks, by reference
        self.start = time.perf_counter()

    async def receive(self) -> Message:
        message = await self._receive()
        kind = message["type"]
        if kind == "http.request":
            body = message.get("body", b"")
            if body:
                if not self.received:
                    self.request_first = body
                self.request_last = body
                self.received += len(body)
        elif kind == "http.disconnect":
            self.disconnected = True
        return message

    def send(self, message: Message) -> Awaitable[None]:
        """Not a coroutine function: a message that does not end the response (a stream's chunks, most of
        what a streamed answer sends) is booked here and passed on as the server's own awaitable, with no
        coroutine of ours. A client that goes away then raises from the server's send in the app's frame,
        not in ours: :meth:`failed` finds it in the exception's chain."""
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if body:
                if not self.sent:
                    self.held = None
                    # Only a streamed body has a time to first byte; a whole one's first byte is its last.
                    if more:
                        self.first_byte = time.perf_counter()
                        self.streaming = True
                    if self.capture_config is not None:
                        if more:
                            try:
                                self.capture = start_capture(self.headers, self.capture_config)
                            except Exception:
                                self.capture = None
                            if type(self.capture) is SseCapture:
                                self.held, self.held_times, self.batch = self.capture.chunks, self.capture.times, 1
                        elif may_carry_usage(body, self.capture_config.max_json_bytes):
                            self.whole_body = body
                self.sent += len(body)
                held = self.held
                if held is not None:
                    # An SSE stream's chunk: held with its time, read a batch at a time (SseCapture.flush).
                    held.append(body)
                    self.held_times.append(time.perf_counter())
                    if len(held) >= self.batch:
                        self.flushed()
                elif self.capture is not None:
                    try:
                        self.capture.feed(body, time.perf_counter())
                    except Exception:
                        self.capture = None
            if not more:
                return self._ended(message)
        elif kind == "http.response.start":
            self.status = message["status"]
            self.headers = message.get("headers", ())
        return self._send(message)

    async def _ended(self, message: Message) -> None:
        """The body's last message: sent, then the request is recorded."""
        try:
            await self._send(message)
        except OSError:
            self.disconnected = True  # the server tells the app the client is gone (uvicorn: ClientDisconnected)
            raise
        if not self.done:
            self.finish(time.perf_counter())

    def release(self) -> None:
        """The app returned: let go of the server's objects and the bodies. Copies of the request's context
        outlive it, and hold this exchange: uvicorn's keep-alive timer, scheduled during the last send, stays
        in the event loop's heap until it is due or the heap is pruned (a hundred requests later, or more),
        and a task the handler started lives as long as it runs. Without this they would keep the server's
        request cycle, the scope and the bodies alive too, a few dozen objects per request that the garbage
        collector then counts, promotes and walks through (bench/server.py: 237 collections per 10,000
        requests and 2 full ones, 23 µs per request, against none bare)."""
        self.scope = self.headers = self.capture = self.handling = None  # type: ignore[assignment]
        self.whole_body = self.request_first = self.request_last = b""
        self._receive, self._send = _over_receive, _over_send
        self.held = None

    def flushed(self) -> None:
        """The held chunks are read; a stream that is not an LLM's is no longer held (flush() says 0)."""
        self.batch = self.capture.flush()
        if not self.batch:
            self.capture = self.held = None

    def finish(self, end: float) -> None:
        self.done = True
        rec = self.rec
        try:
            # The request body's size is the bytes that arrived through receive(); a body the app never read
            # counts 0. Content-Length is only the client's claim (99999999999999999999 with no body).
            ttfb = self.first_byte - self.start if self.streaming else None
            rec.http(self.method, self.route, self.status, end - self.start, self.received, self.sent, ttfb)
            if self.outbound_calls:
                return  # the handler's LLM answers were recorded as it received them: not again from its response
            if self.capture is not None:
                found = self.capture.finish(self.start, end, self.status)
            elif self.whole_body:
                config = self.capture_config
                assert config is not None  # whole_body is only kept when capture is on
                found = capture_body(self.headers, self.whole_body, config, self.start, end, self.status)
            else:
                return
            if type(found) is LLMCall:
                found.route = self.route
                # The request's model where it names one; the answer's (found.response_model) stays beside it.
                asked = requested_model(self.scope["path"], self.request_first, self.request_last)
                if asked is not None:
                    found.model = asked
            rec.captured(found)
        except Exception:  # metrics must never fail a request
            log.exception("llm-exporter: recording a request failed")

    def failed(self, exc: BaseException) -> None:
        """The app raised: record the request if its response did not end, and the exception."""
        if not self.disconnected and self.status and _from_send(exc, self._send):
            self.disconnected = True  # raised by the server's send, which send() passed on without awaiting
        if not self.done:
            if self.disconnected or not isinstance(exc, Exception):  # CancelledError: the client or server gave up
                self.status = CLIENT_CLOSED
            else:
                # Also when a 200 was already sent: a stream that broke is a server error for error-rate
                # alerts, whatever its first line said.
                self.status = 500
            self.finish(time.perf_counter())
        if isinstance(exc, Exception) and not self.disconnected:
            try:
                self.rec.http_exception(self.method, self.route, exc)
            except Exception:
                log.exception("llm-exporter: recording an exception failed")

    def returned(self) -> None:
        """The app returned without ending the body: the client left, or nothing was sent (the server then
        answers 500 itself)."""
        if self.disconnected:
            self.status = CLIENT_CLOSED
        elif self.status == 0:
            self.status = 500
        self.finish(time.perf_counter())
