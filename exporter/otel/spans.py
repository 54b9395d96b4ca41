"""OpenTelemetry integration (the ``otel`` extra): exemplars, GenAI spans turned into metrics, OTel metrics out.

- :func:`enable_exemplars` makes the request-duration, LLM-duration and token-usage observations carry
  the ``trace_id``/``span_id`` of the active, sampled span, so a Grafana panel links to the trace.
  Exemplars exist only in the OpenMetrics format (``/metrics`` negotiates it from ``Accept``, which
  Prometheus sends). prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, several
  workers) does not store exemplars, so they are not enabled there.
- :class:`GenAISpanProcessor` turns finished GenAI spans, as emitted by the OpenTelemetry
  instrumentations of the OpenAI, Anthropic or Google SDKs, into the LLM metrics and cost.
- :func:`enable_otel_metrics` mirrors every observation through an OpenTelemetry ``MeterProvider``
  with the semantic-convention instrument and attribute names, for shipping metrics by OTLP.

``import exporter`` never imports this module, and this module imports ``opentelemetry`` only where
it is used, so :func:`enable_exemplars` is a harmless no-op without the extra.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .config import ConfigError
from .exposition import multiprocess_dir
from .metrics import OVERFLOW
from .recorder import Cost, LLMCall, Recorder, Sink, recorder_for

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.trace import ReadableSpan

try:
    from opentelemetry.sdk.trace import SpanProcessor as _SpanProcessorBase
except ImportError:  # the extra is absent: the rest of this module still imports
    _SpanProcessorBase = object  # type: ignore[misc,assignment]

log = logging.getLogger("exporter")

MISSING_EXTRA = "needs the OpenTelemetry SDK: pip install 'llm-exporter[otel]'"

# Operations that are one model call. Agent, workflow and tool spans are left out on purpose: an
# ``invoke_agent`` span may report the summed usage of the model calls under it, which would count twice.
MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})

# OpenLLMetry-style spans predate gen_ai.operation.name and say ``llm.request.type`` instead.
_LEGACY_OPERATIONS = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}


# -- exemplars ------------------------------------------------------------------------------------------


def _span_exemplar_function() -> Callable[[], dict[str, str] | None]:
    from opentelemetry.trace import Span, get_current_span

    def from_span(span: Any) -> dict[str, str] | None:
        ctx = span.get_span_context()
        if ctx.is_valid and ctx.trace_flags.sampled:
            # The label names Grafana's exemplar-to-trace link expects by default.
            return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}
        return None

    found = _span_context_variable()
    if found is None:

        def exemplar() -> dict[str, str] | None:
            return from_span(get_current_span())

        return exemplar

    var, key = found

    def fast_exemplar() -> dict[str, str] | None:
        # Called on every request: with no span this is one context-variable read and one dict look-up.
        span = var.get().get(key)
        if span is None or not isinstance(span, Span):
            return None
        return from_span(span)

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
        recorder.exemplar = _span_exemplar_function()
    except ImportError:
        return False
    return True


def disable_exemplars(recorder: Recorder) -> None:
    recorder.exemplar = None


# -- GenAI spans -> LLM metrics -------------------------------------------------------------------------


def _tokens(attrs: Mapping[str, Any], key: str, old_key: str | None = None) -> int:
    value = attrs.get(key)
    if value is None and old_key is not None:
        value = attrs.get(old_key)
    # Attribute values are whatever the instrumentation set; a string or a negative count is not usage.
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_type(span: ReadableSpan, attrs: Mapping[str, Any]) -> str | None:
    error = _text(attrs.get("error.type"))
    if error is not None:
        return error
    from opentelemetry.trace import StatusCode

    if span.status.status_code is not StatusCode.ERROR:
        return None
    for event in span.events:  # record_exception() leaves the class name here
        if event.name == "exception" and event.attributes:
            name = _text(event.attributes.get("exception.type"))
            if name is not None:
                return name.rsplit(".", 1)[-1]
    return "_OTHER"  # the semantic conventions' value for an unknown error


def llm_call_from_span(span: ReadableSpan, operation: str) -> LLMCall:
    """The :class:`LLMCall` a finished GenAI span describes (current and older attribute names)."""
    attrs: Mapping[str, Any] = span.attributes or {}
    model = _text(attrs.get("gen_ai.request.model")) or _text(attrs.get("gen_ai.response.model")) or "unknown"
    provider = _text(attrs.get("gen_ai.provider.name")) or _text(attrs.get("gen_ai.system")) or "unknown"
    start, end = span.start_time, span.end_time
    input_tokens = _tokens(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    cached = _tokens(attrs, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
    return LLMCall(
        model=model,
        provider=provider,
        operation=operation,
        input_tokens=input_tokens,
        output_tokens=_tokens(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
        cached_input_tokens=min(cached, input_tokens),
        duration=(end - start) / 1e9 if start is not None and end is not None and end >= start else None,
        error_type=_error_type(span, attrs),
        timestamp=end / 1e9 if end is not None else None,
    )


class GenAISpanProcessor(_SpanProcessorBase):
    """Records finished GenAI model-call spans as LLM metrics and cost, as the ``llm`` API would.

    Add it to the SDK ``TracerProvider`` that the GenAI instrumentation uses::

        provider.add_span_processor(GenAISpanProcessor())

    ``recorder`` defaults to the default registry's (looked up on the first GenAI span, not per
    request: spans end on arbitrary threads). ``operations`` are the ``gen_ai.operation.name`` values
    counted. Do not also record the same calls with the ``llm`` API or response capture, or they count twice.
    """

    def __init__(self, recorder: Recorder | None = None, *, operations: Iterable[str] = MODEL_OPERATIONS) -> None:
        if _SpanProcessorBase is object:
            raise ImportError(f"GenAISpanProcessor {MISSING_EXTRA}")
        self._recorder = recorder
        self.operations = frozenset(operations)
        self._failed = False

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            self._recorder = recorder_for()
        return self._recorder

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes
        if not attrs:
            return
        operation = attrs.get("gen_ai.operation.name")
        if operation is None and "gen_ai.system" not in attrs:
            return  # not a GenAI span: the common case, two dictionary misses
        try:
            if operation is None:
                legacy = attrs.get("llm.request.type")
                operation = "chat" if legacy is None else _LEGACY_OPERATIONS.get(str(legacy), str(legacy))
            if operation not in self.operations:
                return
            self._record(llm_call_from_span(span, str(operation)), span)
        except Exception:  # an exception here would surface in the application's span.end()
            if not self._failed:
                self._failed = True
                log.exception("llm-exporter: recording a GenAI span failed (logged once)")

    def _record(self, call: LLMCall, span: ReadableSpan) -> None:
        rec = self.recorder
        ctx = span.context
        if rec.exemplar is None or ctx is None or not ctx.trace_flags.sampled:
            rec.llm(call)
            return
        # The span has ended and is no longer current; make it current so the exemplar names it.
        from opentelemetry import context, trace

        token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(ctx)))
        try:
            rec.llm(call)
        finally:
            context.detach(token)


# -- OpenTelemetry metrics out --------------------------------------------------------------------------


class _Cap:
    """Per-attribute cap on distinct values, like the Recorder's label guard, without counting twice.

    The Recorder's guard already counted each overflow in ``llm_exporter_label_overflow_total``.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: dict[str, set[str]] = {}

    def __call__(self, name: str, value: str) -> str:
        seen = self._seen.get(name)
        if seen is None:
            seen = self._seen[name] = set()
        if value in seen:
            return value
        if len(seen) < self.cap:
            seen.add(value)
            return value
        return OVERFLOW


class OtelMetricsSink(Sink):
    """Mirrors every observation into OpenTelemetry instruments with the semantic-convention names.

    HTTP and GenAI instruments use the convention names and attributes; the rest keep this project's
    names in dotted form (``llm.tokens``, ``llm.cost.usd``...) so their Prometheus translation matches
    ``/metrics``. Exemplars come from the SDK's own exemplar filter (the calls run in the request's context).
    """

    def __init__(self, recorder: Recorder, meter_provider: MeterProvider | None = None) -> None:
        from opentelemetry import metrics

        self.meter_provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = self.meter_provider.get_meter("llm-exporter")
        cfg = recorder.config
        b = cfg.buckets
        self.static: dict[str, str] = dict(cfg.labels)
        self.tenant = recorder.metrics.tenant
        self.cap = _Cap(cfg.label_cap)

        def histogram(name: str, unit: str, doc: str, bounds: tuple[float, ...]) -> Any:
            return meter.create_histogram(name, unit=unit, description=doc, explicit_bucket_boundaries_advisory=bounds)

        self.http_duration = histogram(
            "http.server.request.duration", "s", "Duration of HTTP server requests.", b.http_duration
        )
        self.http_request_size = histogram(
            "http.server.request.body.size", "By", "Size of HTTP server request bodies.", b.http_request_body_size
        )
        self.http_response_size = histogram(
            "http.server.response.body.size", "By", "Size of HTTP server response bodies.", b.http_response_body_size
        )
        self.http_active = meter.create_up_down_counter(
            "http.server.active_requests", unit="{request}", description="Number of active HTTP server requests."
        )
        self.llm_duration = histogram(
            "gen_ai.client.operation.duration", "s", "GenAI operation duration.", b.llm_duration
        )
        self.token_usage = histogram(
            "gen_ai.client.token.usage", "{token}", "Number of input and output tokens used.", b.llm_tokens
        )
        self.ttft = histogram(
            "gen_ai.client.operation.time_to_first_chunk", "s", "Time to the first streamed chunk.", b.llm_ttft
        )
        self.tokens = meter.create_counter("llm.tokens", unit="{token}", description="Tokens used, by token type.")
        self.cost = meter.create_counter("llm.cost.usd", unit="{USD}", description="Cost of LLM usage in US dollars.")
        self.requests = meter.create_counter("llm.requests", unit="{request}", description="LLM calls by outcome.")
        self.confidence = histogram("llm.confidence", "", "Confidence of model predictions (0..1).", b.confidence)
        self.predictions = meter.create_counter("llm.predictions", unit="{prediction}", description="By label.")
        self.evaluation = histogram("llm.evaluation.score", "", "Evaluation scores (0..1).", b.evaluation_score)
        self.feedback = histogram("llm.feedback.rating", "", "User feedback ratings (1..5).", b.feedback_rating)
        self.events = meter.create_counter("llm.events", unit="{event}", description="Business events.")

    def on_http(
        self,
        method: str,
        route: str,
        status: int,
        duration: float,
        ts: float,
        request_bytes: int = 0,
        response_bytes: int = 0,
    ) -> None:
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "http.route": route,  # already capped: the middleware passes Recorder.route()'s value
            "http.response.status_code": status,
            **self.static,
        }
        if status >= 500:
            attrs["error.type"] = str(status)  # the HTTP conventions' error.type for server errors
        self.http_duration.record(duration, attrs)
        self.http_request_size.record(request_bytes, attrs)
        self.http_response_size.record(response_bytes, attrs)

    def on_active(self, method: str, route: str, delta: int) -> None:
        self.http_active.add(delta, {"http.request.method": method, "http.route": route, **self.static})

    def on_llm(self, call: LLMCall, cost: Cost | None, ts: float) -> None:
        cap = self.cap
        provider = cap("gen_ai.provider.name", call.provider or "unknown")
        model = cap("gen_ai.request.model", call.model or "unknown")
        base = {"gen_ai.provider.name": provider, "gen_ai.request.model": model, **self.static}
        op = {"gen_ai.operation.name": cap("gen_ai.operation.name", call.operation or "chat"), **base}
        if call.duration is not None:
            attrs = {**op, "error.type": cap("error.type", call.error_type)} if call.error_type else op
            self.llm_duration.record(call.duration, attrs)
        if call.ttft is not None:
            self.ttft.record(call.ttft, base)
        tenant = {"tenant": cap("tenant", call.tenant or "")} if self.tenant else {}
        self.requests.add(1, {**base, **tenant, "outcome": "error" if call.error_type else "ok"})
        for token_type, tokens, usd in (
            ("input", call.input_tokens, cost.input_usd if cost else 0.0),
            ("output", call.output_tokens, cost.output_usd if cost else 0.0),
        ):
            if tokens:
                self.token_usage.record(tokens, {**op, "gen_ai.token.type": token_type})
                self.tokens.add(tokens, {**base, **tenant, "gen_ai.token.type": token_type})
            if usd:
                self.cost.add(usd, {**base, **tenant, "gen_ai.token.type": token_type})

    # Model, label and evaluation names arrive already capped by the Recorder.

    def on_confidence(self, model: str, label: str, value: float, ts: float) -> None:
        attrs = {"gen_ai.request.model": model, "label": label, **self.static}
        self.confidence.record(value, attrs)
        self.predictions.add(1, attrs)

    def on_evaluation(self, name: str, model: str, score: float, ts: float) -> None:
        self.evaluation.record(score, {"evaluation": name, "gen_ai.request.model": model, **self.static})

    def on_feedback(self, model: str, rating: float, ts: float) -> None:
        self.feedback.record(rating, {"gen_ai.request.model": model, **self.static})

    def on_event(self, name: str, tenant: str | None, ts: float, count: int = 1) -> None:
        tenant_attr = {"tenant": self.cap("tenant", tenant or "")} if self.tenant else {}
        self.events.add(count, {"event": name, **tenant_attr, **self.static})


def enable_otel_metrics(recorder: Recorder, meter_provider: MeterProvider | None = None) -> OtelMetricsSink:
    """Add an :class:`OtelMetricsSink` to ``recorder`` (once per meter provider) and return it.

    ``meter_provider`` defaults to the global one (``opentelemetry.metrics.set_meter_provider``).
    """
    try:
        from opentelemetry import metrics
    except ImportError:
        raise ConfigError("otel", "metrics", MISSING_EXTRA) from None
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    for sink in recorder.sinks:
        if isinstance(sink, OtelMetricsSink) and sink.meter_provider is provider:
            return sink
    sink = OtelMetricsSink(recorder, provider)
    recorder.add_sink(sink)
    return sink
