"""The hook: ``handle_request`` of ``httpx``'s and ``httpx2``'s HTTP transports, wrapped once per process.

httpx has no global hook for every client, but every client sends through a transport, and the SDKs
build theirs from ``HTTPTransport`` / ``AsyncHTTPTransport`` (directly or by subclassing). Wrapping the
method on those two classes sees every request of every client, whatever the SDK, without patching any
SDK. The wrapper costs a clock read and a comparison for a request that isn't a POST, and a scan of the
answer's headers for one whose answer is not JSON or an event stream. For an LLM answer, the response's
byte stream is wrapped so each chunk is read as it passes to the SDK, at once, unchanged.

httpx is imported only by :func:`instrument`, so ``import exporter`` never imports it.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .outbound import OutboundCall, failed, watch

MODULES = ("httpx", "httpx2")  # httpx2: the fork the current OpenAI, Anthropic and Google SDKs send through
_MARK = "_llm_exporter_original"  # set on our wrappers: the method they wrap

_lock = threading.Lock()
_patched: dict[str, Any] = {}  # module name -> the module whose transports carry our wrappers
_on = threading.Event()  # our wrappers call straight through while it is clear (after uninstrument())


def instrument() -> None:
    """Capture the LLM answers of every ``httpx`` / ``httpx2`` client of the process (sync and async, any
    transport built on theirs). Idempotent; the middleware calls it at startup unless ``capture.outbound``
    is off. For scripts and workers without the middleware: ``exporter.instrument()``."""
    with _lock:
        for name in MODULES:
            if name in _patched:
                continue
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue  # not installed: no client of it to capture
            _patch(module)
            _patched[name] = module
        _on.set()


def uninstrument() -> None:
    """Stop capturing outbound calls. Our wrappers are taken off where they are still the transports'
    methods; where another library wrapped them since, they stay in its chain, inert."""
    with _lock:
        _on.clear()
        for name, module in list(_patched.items()):
            restored = True
            for cls, attr in _targets(module):
                current = cls.__dict__.get(attr)
                original = getattr(current, _MARK, None)
                if original is not None:
                    setattr(cls, attr, original)
                else:
                    restored = False
            if restored:
                del _patched[name]


def instrumented() -> bool:
    return _on.is_set()


def _targets(module: Any) -> tuple[tuple[type, str], tuple[type, str]]:
    return (module.HTTPTransport, "handle_request"), (module.AsyncHTTPTransport, "handle_async_request")


def _patch(module: Any) -> None:
    (sync_cls, sync_name), (async_cls, async_name) = _targets(module)
    sync_stream, async_stream = _stream_classes(module)
    if getattr(sync_cls.__dict__.get(sync_name), _MARK, None) is None:
        setattr(sync_cls, sync_name, _sync_hook(sync_cls.__dict__[sync_name], sync_stream))
    if getattr(async_cls.__dict__.get(async_name), _MARK, None) is None:
        setattr(async_cls, async_name, _async_hook(async_cls.__dict__[async_name], async_stream))


def _sync_hook(original: Callable[..., Any], stream: type) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        if not _on.is_set():
            return original(self, request)
        start = time.perf_counter()
        response = original(self, request)
        if request.method == "POST":  # model calls are POSTs: everything else costs this comparison
            try:
                call = watch(request, response, start)
                if call is not None:
                    response.stream = stream(response.stream, call)
            except Exception:
                failed(None)
        return response

    setattr(handle_request, _MARK, original)
    handle_request.__wrapped__ = original  # type: ignore[attr-defined]
    return handle_request


def _async_hook(original: Callable[..., Any], stream: type) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: Any) -> Any:
        if not _on.is_set():
            return await original(self, request)
        start = time.perf_counter()
        response = await original(self, request)
        if request.method == "POST":
            try:
                call = watch(request, response, start)
                if call is not None:
                    response.stream = stream(response.stream, call)
            except Exception:
                failed(None)
        return response

    setattr(handle_async_request, _MARK, original)
    handle_async_request.__wrapped__ = original  # type: ignore[attr-defined]
    return handle_async_request


def _stream_classes(module: Any) -> tuple[type, type]:
    """Byte streams of ``module`` (the client checks the stream's class) that feed a call as they go."""

    class WatchedStream(module.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, call: OutboundCall) -> None:
            self._inner = inner
            self._call = call

        def __iter__(self) -> Iterator[bytes]:
            call = self._call
            for chunk in self._inner:
                call.feed(chunk)  # never raises, never holds the chunk back
                yield chunk
            call.end()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._call.end()  # a body closed before its end: what was read is recorded

    class WatchedAsyncStream(module.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, call: OutboundCall) -> None:
            self._inner = inner
            self._call = call

        async def __aiter__(self) -> AsyncIterator[bytes]:
            call = self._call
            async for chunk in self._inner:
                call.feed(chunk)
                yield chunk
            call.end()

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._call.end()

    return WatchedStream, WatchedAsyncStream
