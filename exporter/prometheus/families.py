"""The metric families of the metric contract (the README's metric table), built on an injected registry.

Every metric name lives here (those the GenAI conventions define in :mod:`exporter.conventions`, one per
name set) and every label name in :mod:`exporter.labels`, so names can follow the OpenTelemetry
conventions as they settle without touching the modules that record. Only the recorder
writes these families.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..config import SERIES_BUDGET, Buckets, Config
from ..conventions import DEFAULT, Conventions, per_token_type, prometheus_name
from ..labels import (
    COST_SOURCE,
    ERROR_TYPE,
    FINISH_REASON,
    HTTP,
    LABEL_NAMES,
    METHOD,
    MODEL,
    OPERATION,
    PROVIDER,
    RESOURCE,
    RESPONSE_MODEL,
    ROUTE,
    TENANT,
    TOKEN_TYPE,
    TOOL_NAME,
    LabelGuard,
    SeriesBudget,
)
from ..observations import CHUNK_GAP_BUCKETS
from .aliases import aliases

_Metric = TypeVar("_Metric", Counter, Gauge, Histogram)


class Metrics:
    """All metric families, created once per registry.

    Static labels from config (``service``, ``env``...) are appended to every family's label names;
    callers pass only the dynamic values and use :meth:`child` or ``family.labels(*values, *self.static)``.
    """

    @classmethod
    def from_config(cls, registry: CollectorRegistry, config: Config) -> Metrics:
        """The families ``config`` asks for (its buckets, static labels, caps, budget and names)."""
        return cls(
            registry,
            buckets=config.buckets,
            static_labels=config.labels,
            label_cap=config.label_cap,
            tenant=config.tenant_label,
            series_budget=config.series_budget,
            conventions=config.gen_ai_conventions,
        )

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        buckets: Buckets | None = None,
        static_labels: dict[str, str] | None = None,
        label_cap: int = 100,
        tenant: bool = False,
        series_budget: int = SERIES_BUDGET,
        conventions: Conventions = DEFAULT,
    ) -> None:
        b = buckets or Buckets()
        static = dict(static_labels or {})
        self.static_names: tuple[str, ...] = tuple(static)
        self.static: tuple[str, ...] = tuple(static.values())
        self.tenant = tenant
        tenant_names = (TENANT,) if tenant else ()

        self.budget = SeriesBudget(lambda name: self.label_overflow.labels(name, *self.static).inc())
        self.series_budget = series_budget
        # Series of one child of each family: its share of the budget is series_budget // this.
        self.series_per_child: dict[Counter | Gauge | Histogram, tuple[str, int]] = {}

        def labels(*names: str) -> tuple[str, ...]:
            return (*names, *self.static_names)

        def counter(name: str, doc: str, names: Sequence[str]) -> Counter:
            family = Counter(name, doc, labels(*names), registry=registry)
            self.series_per_child[family] = (f"{name}_total", 2)  # _total and _created
            return family

        def histogram(name: str, doc: str, names: Sequence[str], bounds: Sequence[float]) -> Histogram:
            family = Histogram(name, doc, labels(*names), registry=registry, buckets=bounds)
            # A bucket per bound and +Inf, then _count, _sum and _created.
            self.series_per_child[family] = (name, len(bounds) + 4)
            return family

        def gauge(name: str, doc: str, names: Sequence[str], mode: str) -> Gauge:
            family = Gauge(name, doc, labels(*names), registry=registry, multiprocess_mode=mode)  # type: ignore[arg-type]
            self.series_per_child[family] = (name, 1)
            return family

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
        # Names per the GenAI conventions in force (exporter.conventions).
        self.llm_duration = histogram(
            prometheus_name("llm_duration", conventions),
            "Duration of LLM operations.",
            (OPERATION, PROVIDER, MODEL, RESPONSE_MODEL, ERROR_TYPE),
            b.llm_duration,
        )
        # Tokens per call: one family labelled by token type (default), or one per type (the latest set).
        # token_usage[i] is what input (0) and output (1) totals are written to: a family and the label
        # values that follow the operation, provider and models, so each path finds it with one index.
        usage = (OPERATION, PROVIDER, MODEL, RESPONSE_MODEL)
        if per_token_type(conventions):
            doc = "{} tokens used per LLM operation: the total, cache and reasoning included."
            self.token_usage: tuple[tuple[Histogram, tuple[str, ...]], ...] = tuple(
                (histogram(prometheus_name(signal, conventions), doc.format(kind), usage, b.llm_tokens), ())
                for signal, kind in (("llm_input_tokens", "Input"), ("llm_output_tokens", "Output"))
            )
        else:
            both = histogram(
                prometheus_name("llm_input_tokens", conventions),
                "Tokens used per LLM operation: input and output totals (token_type input / output).",
                (*usage, TOKEN_TYPE),
                b.llm_tokens,
            )
            self.token_usage = ((both, ("input",)), (both, ("output",)))
        self.llm_ttft = histogram(
            prometheus_name("llm_ttft", conventions),
            "Time to the first output token of streamed LLM responses.",
            (PROVIDER, MODEL, RESPONSE_MODEL),
            b.llm_ttft,
        )
        # http_route: the route whose handler made the call (__none__ outside a request), for cost per endpoint.
        self.llm_tokens = counter(
            "llm_tokens",
            "Tokens used, by disjoint kind (token_type; the kinds add up to the call's tokens).",
            (PROVIDER, MODEL, RESPONSE_MODEL, TOKEN_TYPE, ROUTE, *tenant_names),
        )
        self.llm_cost = counter(
            "llm_cost_usd",
            "Cost of LLM usage in US dollars, by kind and by where the figure comes from (cost_source).",
            (PROVIDER, MODEL, RESPONSE_MODEL, TOKEN_TYPE, COST_SOURCE, ROUTE, *tenant_names),
        )
        self.llm_requests = counter(
            "llm_requests",
            "LLM calls by outcome (ok / error).",
            (PROVIDER, MODEL, RESPONSE_MODEL, "outcome", ROUTE, *tenant_names),
        )
        # What the provider's rate-limit headers said with its latest answer (outbound capture).
        self.rate_limit_remaining = gauge(
            "llm_rate_limit_remaining",
            "Requests or tokens left in the provider's current rate-limit window, as of its latest answer.",
            (PROVIDER, MODEL, RESOURCE),
            "mostrecent",
        )
        self.rate_limit_limit = gauge(
            "llm_rate_limit_limit",
            "The provider's rate limit (requests or tokens per window), as of its latest answer.",
            (PROVIDER, MODEL, RESOURCE),
            "mostrecent",
        )

        # Streaming and agent signals: how fast a stream's tokens come, how answers end, the tools they ask
        # for, and the tools an agent ran (from execute_tool spans).
        self.llm_tpot = histogram(
            "llm_time_per_output_token_seconds",
            "Time per output token after the first of streamed LLM answers: (end - first token) / (output tokens - 1).",
            (PROVIDER, MODEL, RESPONSE_MODEL),
            b.llm_tpot,
        )
        self.llm_chunk_gap = histogram(
            prometheus_name("llm_chunk_gap", conventions),
            "Time between consecutive content chunks of streamed LLM answers, after the first.",
            (PROVIDER, MODEL, RESPONSE_MODEL),
            CHUNK_GAP_BUCKETS,
        )
        self.llm_finish_reasons = counter(
            "llm_finish_reasons",
            "LLM answers by why they ended (reason: stop, length, tool_calls, content_filter, error, other).",
            (PROVIDER, MODEL, FINISH_REASON),
        )
        self.llm_tool_calls = counter(
            "llm_tool_calls",
            "Tool calls LLM answers asked for, by tool name.",
            (PROVIDER, MODEL, TOOL_NAME),
        )
        self.tool_duration = histogram(
            "gen_ai_execute_tool_duration_seconds",
            "Duration of tool executions (execute_tool spans), by tool name and error type.",
            (TOOL_NAME, ERROR_TYPE),
            b.tool_duration,
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
            "llm_exporter_capture_errors",
            "LLM answers that could not be read (format json / sse), or a failure inside outbound capture (outbound).",
            ("format",),
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
        self.sink_dropped = counter(
            "llm_exporter_sink_dropped",
            "LLM calls the sinks (drift, MLflow windows) did not see: their hand-off queue was full.",
            (),
        )

        overflow = self.label_overflow
        self.guard = LabelGuard(label_cap, lambda label: overflow.labels(label, *self.static).inc())

        # The families whose label values come from the traffic, each with its share of the budget.
        self.budgeted: tuple[Counter | Gauge | Histogram, ...] = (
            self.http_active,
            self.http_ttfb,
            self.http_exceptions,
            self.llm_duration,
            *dict.fromkeys(family for family, _ in self.token_usage),  # one family or two
            self.llm_ttft,
            self.llm_tokens,
            self.llm_cost,
            self.llm_requests,
            self.confidence,
            self.predictions,
            self.evaluation,
            self.feedback,
            self.events,
            self.unpriced_tokens,
            self.missing_usage,
            self.rate_limit_remaining,
            self.rate_limit_limit,
            self.llm_tpot,
            self.llm_chunk_gap,
            self.llm_finish_reasons,
            self.llm_tool_calls,
            self.tool_duration,
        )
        for family in self.budgeted:
            name, per_child = self.series_per_child[family]
            self.budget.limit(family, name, series_budget // per_child)
        # The three HTTP histograms of a request are one set of children: admitted once, under the
        # duration's key, within the smallest share of the three.
        http = (self.http_duration, self.http_request_size, self.http_response_size)
        shares = min(series_budget // self.series_per_child[f][1] for f in http)
        self.budget.limit(self.http_duration, self.series_per_child[self.http_duration][0], shares)
        self.budgeted += http
        # Deprecated names, exposed as copies of the families that replace them (exporter.conventions).
        self.aliased = aliases(registry, self.budgeted)

    def admit(self, family: Counter | Gauge | Histogram, values: tuple[str, ...]) -> tuple[str, ...]:
        """``values`` if ``family`` may have (or has) that child, else its overflow combination. For the
        HTTP histograms, ask with ``http_duration``: the three are admitted together."""
        return self.budget.admit(family, values)

    def worst_case_series(self, drift_features: int) -> int:
        """The most series these families can export, whatever the traffic: every budgeted family full
        (the overflow series included), plus the families bounded by config and code alone."""
        total = 0
        for family in self.budgeted:
            per_child = self.series_per_child[family][1]
            key = self.http_duration if family in (self.http_request_size, self.http_response_size) else family
            total += self.budget.combinations(key) * per_child
        for family in self.aliased:  # a copy has its family's series
            total += self.budget.combinations(family) * self.series_per_child[family][1]
        # llm_exporter_label_overflow_total: a label name or a budgeted family per series.
        total += (len(LABEL_NAMES) + len(self.budgeted)) * 2
        total += drift_features * (3 + 1 + 2)  # llm_drift_score{psi,ks,js}, _window_samples, _unseen
        total += 3  # llm_drift_threshold{method}
        total += 2 * 2 + 5 * 2 + 1 + 2 * 2  # capture errors, MLflow batches, spool bytes, /track events
        return total

    def child(self, metric: _Metric, *values: str) -> _Metric:
        """The child of ``metric`` for ``values`` plus the static label values."""
        if values or self.static:
            return metric.labels(*values, *self.static)
        return metric


def worst_case_series(config: Config) -> int:
    """The most series one process exports with ``config`` (the README's "Series budget" figure)."""
    metrics = Metrics.from_config(CollectorRegistry(), config)
    return metrics.worst_case_series(len(config.drift.features) + config.drift.max_user_features)
