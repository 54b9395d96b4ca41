"""Outbound capture: the LLM answers the app's own ``httpx`` clients receive, read as they pass to the SDK.

:func:`~exporter.capture.transport.instrument` hooks the transports of ``httpx`` and of its fork ``httpx2``
(which the current OpenAI, Anthropic and Google SDKs use), once per process. For each request the hook
calls :func:`watch` with the
answer's status and headers; it returns None at once for what is not an LLM answer (not a POST, not JSON
or an event stream, an error of some other API), else an :class:`OutboundCall` that the hook feeds every
chunk of the body as the SDK reads it, and ends when the body is exhausted or closed. The answer is read
by the readers of response capture (JSON, SSE, JSON arrays), so anything they recognise by its shape is
an LLM call whatever the host; the host names the provider where it is known (:mod:`.hosts`).

Timing starts when the request is sent (before the transport runs), so the duration and the time to first
token include the connection and the provider's queue, as the SDK's caller waits for them. Nothing here
raises into the app: a failure is logged, counted in ``llm_exporter_capture_errors_total{format="outbound"}``
and the call left unrecorded. The rules of who records a call are in :mod:`exporter.context`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..context import block_var, current_recorder, handling_var
from ..observations import Captured, LLMCall, RateLimit, Unreadable
from .claims import CLAIMS, current_spans
from .encoding import Decoder, Reader, decoder_for
from .hosts import HostTable, is_call_path, path_kind
from .limits import Limits, rate_limits
from .loads import loads
from .request import requested_model
from .response import JsonCapture, start_capture
from .usage import error_type

if TYPE_CHECKING:
    from ..config import CaptureConfig
    from ..context import Handling
    from ..recorder import Recorder

log = logging.getLogger(__name__)

RATE_LIMITED = "rate_limited"  # error_type of a 429, whatever the provider calls it
OUTBOUND = Unreadable("outbound")  # a failure inside outbound capture itself
_ERROR_BODY = 65_536  # bytes of an error answer kept to read the provider's error type
_failed_once: list[bool] = []


class OutboundCall:
    """One answer to an outbound LLM request. :meth:`feed` and :meth:`end` never raise."""

    __slots__ = (
        "_rec",
        "_handling",
        "_in_block",
        "_spans",
        "_provider",
        "_path",
        "_request",
        "_start",
        "_status",
        "_reader",
        "_decoder",
        "_error",
        "_limits",
        "_done",
    )

    def __init__(
        self,
        rec: Recorder,
        provider: str | None,
        path: str,
        request: Any,
        start: float,
        status: int,
        reader: Reader | None,
        decoder: Decoder | None,
        limits: Limits,
    ) -> None:
        self._rec = rec
        # What the request's context says now, at send time: the body may be read in another context.
        self._handling: Handling | None = handling_var.get()
        self._in_block = block_var.get()
        self._spans = current_spans()
        self._provider = provider
        self._path = path
        self._request = request  # for the requested model when the answer has none (errors)
        self._start = start
        self._status = status
        self._reader = reader
        self._decoder = decoder
        # An error answer's body, kept up to a small cap to read the provider's error type.
        self._error: list[bytes] | None = [] if status >= 400 and isinstance(reader, JsonCapture) else None
        self._limits = limits
        self._done = False

    def feed(self, chunk: bytes) -> None:
        if self._done or not chunk:
            return
        try:
            now = time.perf_counter()
            for piece in self._decoder(chunk) if self._decoder is not None else (chunk,):
                if self._error is not None:
                    if sum(map(len, self._error)) < _ERROR_BODY:
                        self._error.append(piece)
                elif self._reader is not None:
                    self._reader.feed(piece, now)
        except Exception:
            # A body that can't be decoded or read: the SDK gets it unchanged and reports the problem itself.
            self._reader = None
            self._error = None
            if not self._done:
                self._done = True
                failed(self._rec)

    def end(self) -> None:
        """The body was read to its end, or closed before it: record what it said (once)."""
        if self._done:
            return
        self._done = True
        try:
            self._record(self._result(time.perf_counter()))
        except Exception:
            failed(self._rec)

    def _result(self, end: float) -> Captured:
        if self._status < 400:
            if self._reader is None:
                return None
            found = self._reader.finish(self._start, end, self._status)
        else:
            found = self._error_call(end)
        if isinstance(found, LLMCall):
            if self._provider is not None:
                found.provider = self._provider
            # The request's model where it names one; the answer's (found.response_model) stays beside it.
            asked = self._requested_model()
            if asked is not None:
                found.model = asked
            if self._handling is not None:
                found.route = self._handling.route
        return found

    def _error_call(self, end: float) -> LLMCall:
        shape, operation = path_kind(self._path)
        kind = RATE_LIMITED if self._status == 429 else self._error_type()
        return LLMCall(
            model="unknown",
            provider=shape,
            operation=operation,
            duration=max(end - self._start, 0.0),
            error_type=kind,
        )

    def _error_type(self) -> str:
        if self._error:
            try:
                obj = loads(b"".join(self._error))
            except ValueError:
                obj = None
            if isinstance(obj, list) and obj:  # Gemini's streamed errors come as a JSON array
                obj = obj[0]
            found = error_type(obj) if isinstance(obj, dict) else None
            if found is not None:
                return found
        return str(self._status)  # OpenTelemetry's error.type for an HTTP error status

    def _requested_model(self) -> str | None:
        try:
            body = self._request.content
        except Exception:  # a streamed request body (not an SDK's JSON): the path may still say
            body = b""
        body = body if isinstance(body, bytes) else b""
        return requested_model(self._path, body, body)

    def _record(self, found: Captured) -> None:
        if found is None:
            return
        # Rules 3 and 4 of exporter.context: the response and the span of this call don't count it again.
        if self._handling is not None:
            self._handling.outbound_calls += 1
        if self._spans:
            CLAIMS.claim(self._spans)
        if isinstance(found, Unreadable):
            if not self._in_block:
                self._rec.captured(found)
            return
        if not self._in_block:  # rule 1: an llm.call() block records the calls made in it
            self._rec.llm(found)
        for resource, (remaining, limit) in self._limits.items():
            self._rec.rate_limit(RateLimit(found.provider, found.model, resource, remaining, limit))


def watch(request: Any, response: Any, start: float) -> OutboundCall | None:
    """The capture of ``response``, the answer to ``request`` (an ``httpx`` or ``httpx2`` pair) sent at
    ``start`` (``time.perf_counter()``); None when it is not an LLM answer. The caller wraps the body."""
    status: int = response.status_code
    raw = response.headers.raw
    ctype, encoding = _content_headers(raw)
    # Cheap filters first: anything that is neither JSON nor an event stream, nor an error, is let go here.
    maybe_body = ctype is not None and (b"json" in ctype or b"event-stream" in ctype)
    if status < 400 and not maybe_body:
        return None
    url = request.url
    path: str = url.path
    if status >= 400 and not is_call_path(path):
        return None  # an error of some other API: {"error": ...} has no shape of its own
    rec = current_recorder()
    readers, hosts = _for_config(rec.config.capture)
    provider = hosts.provider(url.host, url.port)
    reader = start_capture([(b"content-type", ctype)], readers) if maybe_body and ctype is not None else None
    if status < 400 and reader is None:
        return None
    decoder = decoder_for(encoding)
    if decoder is False:
        if provider is not None or is_call_path(path):
            rec.captured(Unreadable("sse" if ctype is not None and b"event-stream" in ctype else "json"))
        return None
    return OutboundCall(rec, provider, path, request, start, status, reader, decoder, rate_limits(raw))


def _content_headers(raw: list[tuple[bytes, bytes]]) -> tuple[bytes | None, bytes | None]:
    ctype = encoding = None
    for name, value in raw:
        n = len(name)  # lengths first: most headers are passed over without lowercasing anything
        if n == 12 and name.lower() == b"content-type":
            ctype = value.lower()
        elif n == 16 and name.lower() == b"content-encoding":
            encoding = value
    return ctype, encoding


_configs: dict[int, tuple[CaptureConfig, CaptureConfig, HostTable]] = {}


def _for_config(config: CaptureConfig) -> tuple[CaptureConfig, HostTable]:
    """The readers' config (response capture's readers, on even when ``enabled`` is off: that key is for
    responses the app returns) and the host table of a recorder's capture config, built once."""
    entry = _configs.get(id(config))
    if entry is None or entry[0] is not config:
        readers = config if config.enabled else replace(config, enabled=True)
        entry = (config, readers, HostTable(config.hosts))
        if len(_configs) > 64:  # one per recorder in practice; tests make many
            _configs.clear()
        _configs[id(config)] = entry
    return entry[1], entry[2]


def failed(rec: Recorder | None) -> None:
    """Count a failure inside outbound capture (and log the first): the app never sees it."""
    if not _failed_once:
        _failed_once.append(True)
        log.exception("llm-exporter: outbound capture failed (logged once, counted in llm_exporter_capture_errors)")
    try:
        (rec or current_recorder()).captured(OUTBOUND)
    except Exception:
        pass  # nothing left to tell: metrics must never fail the app
