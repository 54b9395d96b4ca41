"""The standalone collector: ``POST /track``, ``GET /metrics``, ``GET /health``, as a pure ASGI app.

Services that are not Python (or not ASGI) send their observations here as JSON; they are recorded
through the same :class:`Recorder` as the middleware's, so they land in exactly the same metrics.

``exporter.collector:app`` builds itself from ``Config.load()`` on first use (uvicorn's lifespan
startup), so importing this module creates nothing on the global registry.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

import anyio
import anyio.to_thread

from ..auth import authorizer
from ..config import AuthConfig, Config, ConfigError
from ..prometheus.exposition import metrics_app
from ..recorder import Recorder
from ..types import ASGIApp, Message, Receive, Scope, Send
from ..wiring import recorder_for
from .decode import decode
from .events import parse_events

log = logging.getLogger("exporter.collector")

TRACK_PATH = "/track"
HEALTH_PATH = "/health"
MAX_ERRORS_LISTED = 1000  # a 10,000-event batch with one typo each would otherwise echo megabytes back
RECORD_SLICE = 500  # events recorded between yields to the event loop, so a big batch can't stall it


class _Reject(Exception):
    """Ends a ``/track`` request with a 4xx JSON answer."""

    def __init__(self, status: int, errors: list[dict[str, Any]], events: int = 0, **headers: str) -> None:
        self.status = status
        self.errors = errors
        self.events = events  # how many events the refused request held, when known
        self.headers = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]


def _body_error(message: str) -> list[dict[str, Any]]:
    return [{"field": "(body)", "message": message}]


class Collector:
    """The collector app for one recorder."""

    def __init__(self, config: Config, recorder: Recorder, *, owns_recorder: bool = False) -> None:
        self.config = config
        self.recorder = recorder
        self.owns_recorder = owns_recorder
        c = config.collector
        self.max_body = c.max_body_bytes
        self.max_events = c.max_events
        self.authorized = authorizer(AuthConfig(bearer_token=c.token)) if c.token else None
        self.metrics_path = config.metrics_path
        self.metrics = metrics_app(recorder=recorder)
        self.counts = {"accepted": 0, "rejected": 0}  # this process's, for /health
        for result in self.counts:  # both series exist from the start, so rate() sees the first events
            recorder.track_events(result, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == TRACK_PATH:
            await self._track(scope, receive, send)
        elif path == self.metrics_path:
            await self.metrics(scope, receive, send)
        elif path == HEALTH_PATH:
            if scope["method"] not in ("GET", "HEAD"):
                await _json(send, 405, {"error": "method not allowed"}, [(b"allow", b"GET, HEAD")])
            else:
                await _json(send, 200, self.health())
        else:
            served = f"POST {TRACK_PATH}, GET {self.metrics_path} and GET {HEALTH_PATH}"
            await _json(send, 404, {"error": f"not found; this collector serves {served}"})

    # -- POST /track ------------------------------------------------------------------------------------

    async def _track(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            accepted = await self._accept(scope, receive)
        except _Reject as exc:
            if exc.events:
                self._count("rejected", exc.events)
            log.debug("/track refused with %d: %s", exc.status, exc.errors[:3])
            body: dict[str, Any] = {"errors": exc.errors[:MAX_ERRORS_LISTED]}
            if len(exc.errors) > MAX_ERRORS_LISTED:
                body["error_count"] = len(exc.errors)
            await _json(send, exc.status, body, exc.headers)
            return
        await _json(send, 202, {"accepted": accepted})

    async def _accept(self, scope: Scope, receive: Receive) -> int:
        headers = dict(scope["headers"])  # the last of repeated headers wins; none of these may repeat
        if self.authorized is not None:
            if not self.authorized(headers.get(b"authorization", b"")):
                raise _Reject(
                    401,
                    [{"field": "Authorization", "message": "expected the header 'Authorization: Bearer <token>'"}],
                    www_authenticate='Bearer realm="track"',
                )
        if scope["method"] != "POST":
            raise _Reject(405, [{"field": "(method)", "message": "expected POST"}], allow="POST")
        content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if content_type and content_type != b"application/json" and not content_type.endswith(b"+json"):
            got = content_type.decode("latin-1")
            raise _Reject(415, [{"field": "Content-Type", "message": f"expected application/json, got {got}"}])
        raw_length = headers.get(b"content-length")
        if raw_length is not None and raw_length.isdigit() and int(raw_length) > self.max_body:
            raise _Reject(413, _body_error(self._too_large(int(raw_length))))
        raw = await self._read(receive)
        try:
            body = decode(raw)
        except (ValueError, RecursionError) as exc:
            raise _Reject(415, _body_error(f"not valid JSON: {exc}")) from None
        if not isinstance(body, dict | list):
            raise _Reject(422, [{"index": 0, "field": "(body)", "message": "expected a JSON object or a list of them"}])
        count = len(body) if isinstance(body, list) else 1
        if count > self.max_events:
            raise _Reject(
                413,
                _body_error(f"{count} events in one request; at most {self.max_events} (collector.max_events)"),
                events=count,
            )
        count, observations, errors = parse_events(body)
        if errors:
            raise _Reject(422, [e.as_json() for e in errors], events=count)
        rec = self.recorder
        for start in range(0, len(observations), RECORD_SLICE):
            if start:
                await anyio.sleep(0)
            for observation in observations[start : start + RECORD_SLICE]:
                rec.record(observation)
        if count:
            self._count("accepted", count)
        return count

    async def _read(self, receive: Receive) -> bytes:
        """The request body, never more than ``max_body`` bytes of it (the rest is never received)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Reject(400, _body_error("the client disconnected before the body ended"))
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _Reject(413, _body_error(self._too_large(size, at_least=True)))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, size: int, at_least: bool = False) -> str:
        got = f"at least {size}" if at_least else str(size)
        return f"body of {got} bytes; at most {self.max_body} (collector.max_body_bytes)"

    # -- GET /health ------------------------------------------------------------------------------------

    def _count(self, result: str, events: int) -> None:
        self.counts[result] += events
        self.recorder.track_events(result, events)

    def health(self) -> dict[str, Any]:
        # Still "ok" to accept events when a sink struggles (MLflow down spools to disk), but say so.
        report = self.recorder.health()
        return {"status": report["status"], "events": dict(self.counts), "sinks": report["sinks"]}

    # -- lifespan ---------------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.recorder.start()
                except ConfigError as exc:  # a bad baseline or spool path: uvicorn prints it and exits
                    await send({"type": "lifespan.startup.failed", "message": f"llm-exporter: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.owns_recorder:
                    # Sinks flush on close (the MLflow bridge's last window): keep the loop free meanwhile.
                    await anyio.to_thread.run_sync(self.recorder.close)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _json(send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(data, separators=(",", ":"), default=str).encode()  # default: a sink's health may hold dates
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(headers or ()),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


def create_app(config: Config | None = None, recorder: Recorder | None = None) -> Collector:
    """The collector for ``config`` (default: ``Config.load()``), recording through ``recorder``.

    Without a recorder it uses the default registry's (``recorder_for``, which attaches the default
    sinks: drift, and MLflow when enabled) and closes it on shutdown.
    """
    if config is None:
        config = recorder.config if recorder is not None else Config.load()
    owns = recorder is None
    if recorder is None:
        recorder = recorder_for(None, config)
    return Collector(config, recorder, owns_recorder=owns)


class _LazyApp:
    """``exporter.collector:app``: built from ``Config.load()`` at startup, not at import."""

    def __init__(self) -> None:
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            try:
                self._app = create_app()
            except ConfigError as exc:
                if scope["type"] == "lifespan":
                    # uvicorn prints the message and exits, rather than a traceback for a config mistake.
                    await receive()
                    await send({"type": "lifespan.startup.failed", "message": f"llm-exporter: {exc}"})
                    return
                raise
        await self._app(scope, receive, send)


app: ASGIApp = _LazyApp()


def serve(config: Config, host: str | None = None, port: int | None = None) -> None:
    """Run the collector with uvicorn (``llm-exporter collector``) until SIGINT/SIGTERM."""
    import uvicorn

    host = host or config.collector.host
    if config.collector.token is None and not _loopback(host):
        log.warning(
            "llm-exporter: the collector listens on %s without a token: anyone who reaches it can send events "
            "(set collector.token)",
            host,
        )
    uvicorn.run(
        create_app(config),
        host=host,
        port=port if port is not None else config.collector.port,
        log_level="info",
        lifespan="on",
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
