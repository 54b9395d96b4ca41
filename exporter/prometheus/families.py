"""The metric families of the contract (DESIGN.md), built on an injected registry, and the label guard.

Every metric and label name lives here, so names can follow the OpenTelemetry conventions as they
settle without touching the modules that record.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.values import MutexValue

from .config import Buckets

OVERFLOW = "__overflow__"
UNMATCHED = "__unmatched__"

# Label names (OTel semantic conventions in Prometheus form).
METHOD = "http_request_method"
ROUTE = "http_route"
STATUS = "http_response_status_code"
ERROR_TYPE = "error_type"
OPERATION = "gen_ai_operation_name"
PROVIDER = "gen_ai_provider_name"
MODEL = "gen_ai_request_model"
TOKEN_TYPE = "gen_ai_token_type"
TENANT = "tenant"

HTTP = (METHOD, ROUTE, STATUS)
# Every dynamic label name below: static labels from config may not reuse one.
LABEL_NAMES = frozenset(
    {METHOD, ROUTE, STATUS, ERROR_TYPE, OPERATION, PROVIDER, MODEL, TOKEN_TYPE, TENANT}
    | {"outcome", "label", "evaluation", "event", "feature", "method", "format", "result"}
)

# OTel semconv: methods outside this set are recorded as _OTHER, so a client can't create series at will.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})

_Metric = TypeVar("_Metric", Counter, Gauge, Histogram)


NOT_UTF8 = "valid Unicode text (it holds a lone surrogate escape)"  # what the inputs say they expected


def is_utf8(value: str) -> bool:
    """Whether ``value`` can be written out as UTF-8. A lone surrogate (``"\\ud800"``, which JSON and Python
    accept) cannot: as a label value it would make every later scrape fail."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class LabelGuard:
    """Caps the distinct values each label may take; later values become ``__overflow__``.

    The check for a value already seen is one set look-up, so it is cheap enough for the request path.
    Sets only grow to ``cap`` entries, so memory is bounded by (labels x cap).
    """

    def __init__(self, cap: int, overflow: Counter) -> None:
        self.cap = cap
        self._seen: dict[str, set[str]] = {}
        self._overflow = overflow

    def __call__(self, label: str, value: str) -> str:
        seen = self._seen.get(label)
        if seen is None:
            seen = self._seen.setdefault(label, set())
        if value in seen:
            return value
        if value == OVERFLOW:  # already folded upstream: count it once only
            return value
        if not is_utf8(value):  # inputs reject these; this is the last line for values read from responses
            value = value.encode("utf-8", "replace").decode("utf-8")
            if value in seen:
                return value
        if len(seen) < self.cap:
            seen.add(value)
            return value
        self._overflow.labels(label).inc()
        return OVERFLOW


class Metrics:
    """All metric families, created once per registry.

    Static labels from config (``service``, ``env``...) are appended to every family's label names;
    callers pass only the dynamic values and use :meth:`child` or ``family.labels(*values, *self.static)``.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        buckets: Buckets | None = None,
        static_labels: dict[str, str] | None = None,
        label_cap: int = 100,
        tenant: bool = False,
    ) -> None:
        b = buckets or Buckets()
        static = dict(static_labels or {})
        self.static_names: tuple[str, ...] = tuple(static)
        self.static: tuple[str, ...] = tuple(static.values())
        self.tenant = tenant
        tenant_names = (TENANT,) if tenant else ()

        def labels(*names: str) -> tuple[str, ...]:
            return (*names, *self.static_names)

        def counter(name: str, doc: str, names: Sequence[str]) -> Counter:
            return Counter(name, doc, labels(*names), registry=registry)

        def histogram(name: str, doc: str, names: Sequence[str], bounds: Sequence[float]) -> Histogram:
            return Histogram(name, doc, labels(*names), registry=registry, buckets=bounds)

        def gauge(name: str, doc: str, names: Sequence[str], mode: str) -> Gauge:
            return Gauge(name, doc, labels(*names), registry=registry, multiprocess_mode=mode)  # type: ignore[arg-type]

        # HTTP server (OTel http.server.*).
        self.http_duration = histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests, to the last body chunk.",
            HTTP,
            b.http_duration,
        )
        self.http_active = gauge(
            "http_server_active_requests", "Number of HTTP requests in flight.", (METHOD, ROUTE), "livesum"
        )
        self.http_request_size = histogram(
            "http_server_request_body_size_bytes", "Size of HTTP request bodies.", HTTP, b.http_request_body_size
        )
        self.http_response_size = histogram(
            "http_server_response_body_size_bytes", "Size of HTTP response bodies.", HTTP, b.http_response_body_size
        )
        self.http_ttfb = histogram(
            "http_server_time_to_first_byte_seconds",
            "Time from request start to the first response body chunk of streaming responses.",
            HTTP,
            b.http_ttfb,
        )
        self.http_exceptions = counter(
            "http_server_exceptions",
            "Exceptions raised by the application, by class name.",
            (METHOD, ROUTE, ERROR_TYPE),
        )

        # GenAI client (OTel gen_ai.client.*).
        self.llm_duration = histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of LLM operations.",
            (OPERATION, PROVIDER, MODEL, ERROR_TYPE),
            b.llm_duration,
        )
        self.llm_token_usage = histogram(
            "gen_ai_client_token_usage",
            "Tokens used per LLM operation, by token type.",
            (OPERATION, PROVIDER, MODEL, TOKEN_TYPE),
            b.llm_tokens,
        )
        self.llm_ttft = histogram(
            "gen_ai_client_time_to_first_token_seconds",
            "Time to the first output token of streamed LLM responses.",
            (PROVIDER, MODEL),
            b.llm_ttft,
        )
        self.llm_tokens = counter(
            "llm_tokens", "Tokens used, by token type.", (PROVIDER, MODEL, TOKEN_TYPE, *tenant_names)
        )
        self.llm_cost = counter(
            "llm_cost_usd", "Cost of LLM usage in US dollars.", (PROVIDER, MODEL, TOKEN_TYPE, *tenant_names)
        )
        self.llm_requests = counter(
            "llm_requests", "LLM calls by outcome (ok / error).", (PROVIDER, MODEL, "outcome", *tenant_names)
        )

        # Quality and business signals.
        self.confidence = histogram(
            "llm_confidence", "Confidence of model predictions (0..1).", (MODEL, "label"), b.confidence
        )
        self.predictions = counter("llm_predictions", "Predictions by label (intent, class).", (MODEL, "label"))
        self.evaluation = histogram(
            "llm_evaluation_score",
            "Evaluation scores (0..1) by evaluation name.",
            ("evaluation", MODEL),
            b.evaluation_score,
        )
        self.feedback = histogram("llm_feedback_rating", "User feedback ratings (1..5).", (MODEL,), b.feedback_rating)
        self.events = counter("llm_events", "Business events.", ("event", *tenant_names))

        # Drift.
        self.drift_score = gauge(
            "llm_drift_score", "Drift of the recent window against the baseline.", ("feature", "method"), "mostrecent"
        )
        self.drift_samples = gauge(
            "llm_drift_window_samples", "Observations in the recent drift window.", ("feature",), "mostrecent"
        )
        self.drift_unseen = counter(
            "llm_drift_unseen_categories", "Categorical observations not seen in the baseline.", ("feature",)
        )
        self.drift_threshold = gauge(
            "llm_drift_threshold", "Alert threshold for llm_drift_score, by method (from config).", ("method",), "max"
        )

        # The exporter's own health.
        self.label_overflow = counter(
            "llm_exporter_label_overflow", "Label values replaced by __overflow__ (cap reached).", ("label",)
        )
        self.capture_errors = counter(
            "llm_exporter_capture_errors", "Responses that looked like LLM output but could not be read.", ("format",)
        )
        self.unpriced_tokens = counter(
            "llm_exporter_unpriced_tokens", "Tokens of models with no known price (no cost recorded).", (MODEL,)
        )
        self.mlflow_batches = counter("llm_exporter_mlflow_batches", "MLflow batches by result.", ("result",))
        self.mlflow_spool_bytes = gauge("llm_exporter_mlflow_spool_bytes", "Size of the MLflow spool file.", (), "max")
        self.track_events = counter(
            "llm_exporter_track_events", "Events received by the /track collector, by result.", ("result",)
        )

        self.guard = LabelGuard(label_cap, self.label_overflow)

    def child(self, metric: _Metric, *values: str) -> _Metric:
        """The child of ``metric`` for ``values`` plus the static label values."""
        if values or self.static:
            return metric.labels(*values, *self.static)
        return metric


class FastValue:
    """A metric value without a lock, for the HTTP request path.

    prometheus_client guards every value with a mutex (~70 ns per update). These values are written
    only by the middleware, from the event loop's thread, and ``+=`` on a float or int attribute does not
    release the GIL, so the lock buys nothing there. LLM and quality metrics, which handlers may record
    from thread pools, keep prometheus_client's locked values; free-threaded builds and multiprocess
    mode keep theirs everywhere (see :func:`unlocked`).
    """

    __slots__ = ("_value", "_exemplar")

    def __init__(self, value: float = 0.0) -> None:
        self._value = value
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        self._value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._value = value

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> Any:
        return self._exemplar


_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()


def unlocked(child: _Metric) -> _Metric:
    """Give ``child`` lock-free values (see :class:`FastValue`) where that is safe; else leave it as it is."""
    if not _GIL:
        return child
    for name in ("_value", "_sum"):
        value = getattr(child, name, None)
        if type(value) is MutexValue:
            setattr(child, name, FastValue(value.get()))
    buckets = getattr(child, "_buckets", None)
    if buckets and all(type(b) is MutexValue for b in buckets):
        setattr(child, "_buckets", [FastValue(b.get()) for b in buckets])  # noqa: B010 - private, on purpose
    return child


def observer(child: Histogram) -> Callable[[float], None]:
    """A faster ``child.observe`` for the request path: a bisect instead of prometheus_client's linear
    scan and wrapper checks. Same values, same storage (multiprocess too). Falls back to ``observe`` if
    the client's internals ever change shape."""
    parts = _parts(child)
    if parts is None:
        return child.observe
    bounds, buckets, total = parts
    if _lock_free(parts):
        fast: list[Any] = buckets

        def observe_unlocked(value: float) -> None:
            total._value += value
            fast[bisect_left(bounds, value)]._value += 1

        return observe_unlocked

    def observe(value: float) -> None:
        total.inc(value)
        buckets[bisect_left(bounds, value)].inc(1)

    return observe


def http_observer(duration: Histogram, request: Histogram, response: Histogram) -> Callable[[float, int, int], None]:
    """One call that observes a request's duration, request size and response size: the three histograms
    of one (method, route, status) child set, updated without three calls' overhead."""
    parts = [_parts(h) for h in (duration, request, response)]
    if not all(p is not None and _lock_free(p) for p in parts):
        each = (observer(duration), observer(request), observer(response))

        def observe_each(seconds: float, received: int, sent: int) -> None:
            each[0](seconds)
            each[1](received)
            each[2](sent)

        return observe_each
    (d_bounds, d_buckets, d_sum), (q_bounds, q_buckets, q_sum), (r_bounds, r_buckets, r_sum) = parts  # type: ignore[misc]

    def observe_all(seconds: float, received: int, sent: int) -> None:
        d_sum._value += seconds
        d_buckets[bisect_left(d_bounds, seconds)]._value += 1
        q_sum._value += received
        q_buckets[bisect_left(q_bounds, received)]._value += 1
        r_sum._value += sent
        r_buckets[bisect_left(r_bounds, sent)]._value += 1

    return observe_all


def _parts(child: Histogram) -> tuple[list[float], list[Any], Any] | None:
    """A histogram child's bucket bounds, bucket values and sum value; None if they are not that shape."""
    try:
        bounds = list(child._upper_bounds)
        buckets = child._buckets
        total = child._sum
    except AttributeError:
        return None
    if len(bounds) != len(buckets) or bounds[-1] != float("inf"):
        return None
    return bounds, buckets, total


def _lock_free(parts: tuple[list[float], list[Any], Any]) -> bool:
    _, buckets, total = parts
    return type(total) is FastValue and all(type(b) is FastValue for b in buckets)


def adder(child: Gauge | Counter) -> Callable[[float], None]:
    """``child.inc`` without the per-call mode checks (livesum gauges in multiprocess mode included)."""
    value: Any = getattr(child, "_value", None)
    return value.inc if value is not None and hasattr(value, "inc") else child.inc
