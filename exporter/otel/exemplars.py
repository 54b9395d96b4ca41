"""Exemplars: the ``trace_id``/``span_id`` of the active, sampled span on the duration and token
observations, so a Grafana panel links to the trace.

Exemplars exist only in the OpenMetrics format (``/metrics`` negotiates it from ``Accept``, which
Prometheus sends). prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, several
workers) does not store exemplars, so they are not enabled there. ``opentelemetry`` is imported only
when they are enabled, so :func:`enable_exemplars` is a harmless no-op without the extra.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..prometheus.multiprocess import multiprocess_dir
from ..recorder import Recorder

log = logging.getLogger("exporter")

# -- exemplars ------------------------------------------------------------------------------------------


def _span_exemplar_function() -> Callable[[], dict[str, str] | None]:
    from opentelemetry.trace import Span, get_current_span

    # The last span asked about and its exemplar: a request asks once for its HTTP duration and again for
    # each LLM call it makes, and the ids (immutable for a span) cost ~10,000 instructions to format. One
    # pair in one reference, replaced whole, so any thread reads a consistent one; holding the span keeps
    # its id from being reused by another object while it is remembered.
    last: list[tuple[Any, dict[str, str] | None]] = [(None, None)]

    def from_span(span: Any) -> dict[str, str] | None:
        ctx = span.get_span_context()
        exemplar = None
        if ctx.is_valid and ctx.trace_flags.sampled:
            # The label names Grafana's exemplar-to-trace link expects by default.
            exemplar = {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}
        last[0] = (span, exemplar)
        return exemplar

    found = _span_context_variable()
    if found is None:

        def exemplar() -> dict[str, str] | None:
            span = get_current_span()
            seen, known = last[0]
            return known if span is seen else from_span(span)

        return exemplar

    var, key = found

    def fast_exemplar() -> dict[str, str] | None:
        # Called on every request: with no span this is one context-variable read and one dict look-up.
        span = var.get().get(key)
        if span is None:
            return None
        seen, known = last[0]
        if span is seen:
            return known
        return from_span(span) if isinstance(span, Span) else None

    return fast_exemplar


def _span_context_variable() -> tuple[Any, str] | None:
    """The SDK's context variable and the span's key in it, to read the active span without four layers of
    calls (the public ``get_current_span`` costs ~0.3 µs). None when the API's internals are not that shape.
    """
    import contextvars

    from opentelemetry import context
    from opentelemetry.trace import propagation

    var = getattr(getattr(context, "_RUNTIME_CONTEXT", None), "_current_context", None)
    key = getattr(propagation, "_SPAN_KEY", None)
    if not isinstance(var, contextvars.ContextVar) or not isinstance(key, str):
        return None
    return var, key


def enable_exemplars(recorder: Recorder) -> bool:
    """Attach the active span's trace and span id to the recorder's duration and token observations.

    Returns False, changing nothing, when OpenTelemetry is not installed or in multiprocess mode
    (prometheus_client drops exemplars there, so looking up the span would be wasted work).
    """
    if multiprocess_dir() is not None:
        log.info("llm-exporter: exemplars are off: prometheus_client's multiprocess mode does not keep them")
        return False
    try:
        recorder.set_exemplar_source(_span_exemplar_function())
    except ImportError:
        return False
    return True


def disable_exemplars(recorder: Recorder) -> None:
    recorder.set_exemplar_source(None)
