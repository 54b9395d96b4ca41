"""Spans whose LLM call outbound capture already recorded, so the GenAI span processor skips them.

An instrumentation (OpenTelemetry's for the OpenAI SDK, OpenLLMetry...) opens a GenAI span around the SDK
call, and the SDK sends its request while that span is current. Outbound capture notes the current span
and its parent (the parent too: an httpx instrumentation may have opened an HTTP span under the GenAI
one), and the span processor skips a GenAI span it finds noted. OpenTelemetry is read from
``sys.modules`` only: where it was never imported there are no spans, and nothing is looked up.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

_SIZE = 4096  # span ids kept (oldest forgotten first): spans end within seconds of their request


class SpanClaims:
    """A bounded set of span ids, shared by the threads that send requests and those that end spans."""

    def __init__(self, size: int = _SIZE) -> None:
        self._size = size
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, span_ids: tuple[int, ...]) -> None:
        with self._lock:
            for span_id in span_ids:
                self._ids[span_id] = None
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)

    def take(self, span_id: int) -> bool:
        """Whether ``span_id`` was claimed (and forget it: a span ends once)."""
        if not self._ids:  # the common case without outbound capture: no lock
            return False
        with self._lock:
            return self._ids.pop(span_id, False) is None


def current_spans() -> tuple[int, ...]:
    """The ids of the current OpenTelemetry span and of its parent; () without a recording span."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return ()
    span = trace.get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return ()
    parent = getattr(span, "parent", None)  # the SDK's spans know their parent's context
    if parent is not None and getattr(parent, "is_valid", False):
        return (context.span_id, parent.span_id)
    return (context.span_id,)


CLAIMS = SpanClaims()
