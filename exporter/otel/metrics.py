"""OpenTelemetry metrics out: every observation mirrored through a ``MeterProvider`` with the
semantic-convention instrument and attribute names, for shipping metrics by OTLP."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..config import Config, ConfigError
from ..conventions import otel_name, per_token_type
from ..labels import LabelGuard
from ..observations import TOKEN_KINDS, UNSPLIT, Cost, LLMCall
from ..pricing import KINDS
from ..recorder import Recorder
from ..sinks import Sink

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

log = logging.getLogger("exporter")

MISSING_EXTRA = "needs the OpenTelemetry SDK: pip install 'llm-exporter[otel]'"


class OtelMetricsSink(Sink):
    """Mirrors every observation into OpenTelemetry instruments with the semantic-convention names.

    HTTP and GenAI instruments use the convention names and attributes; the rest keep this project's
    names in dotted form (``llm.tokens``, ``llm.cost.usd``...) so their Prometheus translation matches
    ``/metrics``. Exemplars come from the SDK's own exemplar filter (the calls run in the request's context).
    """

    def __init__(self, config: Config, meter_provider: MeterProvider | None = None) -> None:
        from opentelemetry import metrics

        self.meter_provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = self.meter_provider.get_meter("llm-exporter")
        b = config.buckets
        names = config.gen_ai_conventions  # GenAI instrument names per the conventions in force
        self.static: dict[str, str] = dict(config.labels)
        self.tenant = config.tenant_label
        # Names arrive capped by the recorder; error types and tenants are capped here the same way, without
        # counting the overflow again (the recorder's guard counted it in llm_exporter_label_overflow_total).
        self.cap = LabelGuard(config.label_cap)

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
            otel_name("llm_duration", names), "s", "GenAI operation duration.", b.llm_duration
        )
        # Input and output totals: one instrument with gen_ai.token.type, or one per type (as /metrics has them).
        if per_token_type(names):
            self.token_usage: tuple[tuple[Any, dict[str, str]], ...] = tuple(
                (histogram(otel_name(signal, names), "{token}", f"Number of {kind} tokens used.", b.llm_tokens), {})
                for signal, kind in (("llm_input_tokens", "input"), ("llm_output_tokens", "output"))
            )
        else:
            usage = histogram(
                otel_name("llm_input_tokens", names), "{token}", "Number of input and output tokens used.", b.llm_tokens
            )
            self.token_usage = tuple((usage, {"gen_ai.token.type": kind}) for kind in ("input", "output"))
        self.ttft = histogram(otel_name("llm_ttft", names), "s", "Time to the first streamed chunk.", b.llm_ttft)
        # The streaming and agent signals, named as /metrics names them (the gaps between chunks are binned
        # by capture for the Prometheus buckets, so they have no OTel instrument).
        self.tpot = histogram(
            "llm.time_per_output_token", "s", "Time per output token after the first of streams.", b.llm_tpot
        )
        self.finish_reasons = meter.create_counter(
            "llm.finish_reasons", unit="{answer}", description="LLM answers by why they ended."
        )
        self.tool_calls = meter.create_counter(
            "llm.tool_calls", unit="{call}", description="Tool calls LLM answers asked for, by tool name."
        )
        self.tool_duration = histogram(
            "gen_ai.execute_tool.duration", "s", "Duration of tool executions.", b.tool_duration
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
        if call.response_model:
            base["gen_ai.response.model"] = cap("gen_ai.response.model", call.response_model)
        op = {"gen_ai.operation.name": cap("gen_ai.operation.name", call.operation or "chat"), **base}
        if call.duration is not None:
            attrs = {**op, "error.type": cap("error.type", call.error_type)} if call.error_type else op
            self.llm_duration.record(call.duration, attrs)
        if call.ttft is not None:
            self.ttft.record(call.ttft, op)  # gen_ai.operation.name is required on it, as on the duration
        tpot = call.time_per_output_token()
        if tpot is not None:
            self.tpot.record(tpot, base)
        if call.finish_reasons or call.tool_calls:
            # By the request's model, as their /metrics families are (reasons come normalised, names raw).
            named = {"gen_ai.provider.name": provider, "gen_ai.request.model": model, **self.static}
            for reason in call.finish_reasons:
                self.finish_reasons.add(1, {**named, "reason": reason})
            for tool in call.tool_calls:
                self.tool_calls.add(1, {**named, "gen_ai.tool.name": cap("gen_ai.tool.name", tool)})
        # The counters carry the route and tenant as /metrics does (the route arrives capped by the recorder).
        tenant = {"tenant": cap("tenant", call.tenant or "")} if self.tenant else {}
        if call.route:
            tenant["http.route"] = call.route
        self.requests.add(1, {**base, **tenant, "outcome": "error" if call.error_type else "ok"})
        kinds = None if call.missing_usage else call.kinds()
        if kinds is None:  # no usage: the recorder counted it as missing, and there is nothing to book here
            return
        for (usage, token_type), tokens in zip(self.token_usage, (call.input_tokens, call.output_tokens), strict=True):
            if tokens:
                usage.record(tokens, {**op, **token_type})
        for kind, tokens in zip(TOKEN_KINDS, kinds, strict=True):
            if tokens:
                self.tokens.add(tokens, {**base, **tenant, "gen_ai.token.type": kind})
        if cost is None:
            return
        billed = {**base, **tenant, "cost_source": cost.source}
        if not cost.parts:
            if cost.total_usd:
                self.cost.add(cost.total_usd, {**billed, "gen_ai.token.type": UNSPLIT})
            return
        for kind, usd in zip(KINDS, cost.parts, strict=True):
            if usd:
                self.cost.add(usd, {**billed, "gen_ai.token.type": kind})

    # Model, label, tool and evaluation names arrive already capped by the Recorder.

    def on_tool(self, name: str, error_type: str, duration: float, ts: float) -> None:
        attrs = {"gen_ai.tool.name": name, **self.static}
        if error_type:
            attrs["error.type"] = error_type
        self.tool_duration.record(duration, attrs)

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
    sink = OtelMetricsSink(recorder.config, provider)
    recorder.add_sink(sink)
    return sink
