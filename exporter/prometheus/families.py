"""The metric families of the metric contract (the README's metric table), built on an injected registry.

Every metric name lives here and every label name in :mod:`exporter.labels`, so names can follow the
OpenTelemetry conventions as they settle without touching the modules that record. Only the recorder
writes these families.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..config import Buckets
from ..labels import (
    COST_SOURCE,
    ERROR_TYPE,
    HTTP,
    METHOD,
    MODEL,
    OPERATION,
    PROVIDER,
    RESPONSE_MODEL,
    ROUTE,
    TENANT,
    TOKEN_TYPE,
    LabelGuard,
)

_Metric = TypeVar("_Metric", Counter, Gauge, Histogram)


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
            (OPERATION, PROVIDER, MODEL, RESPONSE_MODEL, ERROR_TYPE),
            b.llm_duration,
        )
        self.llm_token_usage = histogram(
            "gen_ai_client_token_usage",
            "Tokens used per LLM operation: input and output totals (token_type input / output).",
            (OPERATION, PROVIDER, MODEL, RESPONSE_MODEL, TOKEN_TYPE),
            b.llm_tokens,
        )
        self.llm_ttft = histogram(
            "gen_ai_client_time_to_first_token_seconds",
            "Time to the first output token of streamed LLM responses.",
            (PROVIDER, MODEL, RESPONSE_MODEL),
            b.llm_ttft,
        )
        self.llm_tokens = counter(
            "llm_tokens",
            "Tokens used, by disjoint kind (token_type; the kinds add up to the call's tokens).",
            (PROVIDER, MODEL, RESPONSE_MODEL, TOKEN_TYPE, *tenant_names),
        )
        self.llm_cost = counter(
            "llm_cost_usd",
            "Cost of LLM usage in US dollars, by kind and by where the figure comes from (cost_source).",
            (PROVIDER, MODEL, RESPONSE_MODEL, TOKEN_TYPE, COST_SOURCE, *tenant_names),
        )
        self.llm_requests = counter(
            "llm_requests",
            "LLM calls by outcome (ok / error).",
            (PROVIDER, MODEL, RESPONSE_MODEL, "outcome", *tenant_names),
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
            "llm_exporter_unpriced_tokens",
            "Tokens of models with no known price (no cost recorded).",
            (PROVIDER, MODEL, RESPONSE_MODEL),
        )
        self.missing_usage = counter(
            "llm_exporter_missing_usage",
            "Provider answers without usage: the call is counted, no tokens and no cost are.",
            (PROVIDER, MODEL, "reason"),
        )
        # Set when the price table is read and after each auto-update; livemin: the stalest live worker shows.
        self.price_data_timestamp = gauge(
            "llm_exporter_price_data_timestamp_seconds",
            "Date of the price data (genai-prices' snapshot) costs are estimated from, as a Unix time.",
            ("source",),
            "livemin",
        )
        self.mlflow_batches = counter("llm_exporter_mlflow_batches", "MLflow batches by result.", ("result",))
        self.mlflow_spool_bytes = gauge("llm_exporter_mlflow_spool_bytes", "Size of the MLflow spool file.", (), "max")
        self.track_events = counter(
            "llm_exporter_track_events", "Events received by the /track collector, by result.", ("result",)
        )

        overflow = self.label_overflow
        self.guard = LabelGuard(label_cap, lambda label: overflow.labels(label, *self.static).inc())

    def child(self, metric: _Metric, *values: str) -> _Metric:
        """The child of ``metric`` for ``values`` plus the static label values."""
        if values or self.static:
            return metric.labels(*values, *self.static)
        return metric
