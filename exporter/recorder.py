"""The recording core: every observation (middleware, ``llm`` API, ``/track``) goes through a Recorder.

It updates the Prometheus metrics and hands the same observation to its sinks (the window aggregator
behind the MLflow bridge, the drift detector). Everything here is in-memory and non-blocking: sinks
must not do I/O on these calls.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from itertools import compress
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from .config import Config
from .handoff import Handoff
from .labels import NO_ROUTE
from .observations import (
    ESTIMATED,
    PROVIDER_COST,
    TOKEN_KINDS,
    UNSPLIT,
    Captured,
    Confidence,
    Cost,
    Evaluation,
    Event,
    Feedback,
    HttpRequest,
    LLMCall,
    Observation,
    Prediction,
    RateLimit,
    ToolExecution,
    Unreadable,
)
from .pricing import PricingTable
from .pricing.source import NAME as PRICE_DATA
from .prometheus.families import Metrics
from .prometheus.fastpath import (
    adder,
    binned_observer,
    exemplar_ok,
    http_observer,
    observer,
    owned_exemplar_observer,
    shared,
    unlocked,
)
from .prometheus.multiprocess import multiprocess_dir
from .rows import DURATION, INPUT_USAGE, OUTPUT_USAGE, REQUESTS, TTFT, ByKind, LLMRow, owned_or_locked
from .sinks import BridgeOutput, DriftOutput, Sink

log = logging.getLogger(__name__)

# llm_exporter_mlflow_batches_total{result}; "quarantined": spooled batches that could not be replayed
# (a bad shape or value, or one MLflow refused), moved to the spool's quarantine file.
BATCH_RESULTS = ("ok", "retried", "spooled", "dropped", "quarantined")
_MAX_CACHED_ROWS = 2_000  # (provider, model, response model, route, tenant) rows of adders by kind, 25 each at most
_KIND_INDEX = range(len(TOKEN_KINDS))


class Recorder:
    def __init__(self, config: Config | None = None, registry: CollectorRegistry | None = None) -> None:
        self.config = config or Config()
        self.registry = REGISTRY if registry is None else registry
        self.metrics = Metrics.from_config(self.registry, self.config)
        self.guard = self.metrics.guard
        self.sinks: tuple[Sink, ...] = ()
        self._on_http: tuple[Callable[..., None], ...] = ()
        self._on_active: tuple[Callable[[str, str, int], None], ...] = ()
        self._on_duration: tuple[Callable[[float], None], ...] = ()
        # Set by the otel module when exemplars are on: returns {"trace_id": ..., "span_id": ...} or None.
        self.exemplar: Callable[[], dict[str, str] | None] | None = None
        self._pricing: PricingTable | None = None
        self._started = False
        # Child caches, keyed by label values. Only children within their family's series budget are
        # cached under their values (plus one overflow child per family), so each cache is bounded by the
        # budget; a combination past it is asked about again at each use and counted each time.
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._ttfb_children: dict[tuple[str, str, int], Callable[[float], None]] = {}
        self._active_children: dict[tuple[str, str], Callable[[float], None]] = {}
        self._children: dict[tuple[Any, tuple[str, ...]], Callable[[float], None]] = {}
        self._owned_children: dict[tuple[Any, tuple[str, ...]], Callable[[float], None]] = {}  # the owner's
        self._http_overflow: tuple[Any, Any, Any, Any] | None = None
        self._ttfb_overflow: Callable[[float], None] | None = None
        # Token and cost adders by (provider, model, response model, route[, tenant]): the owner thread's
        # lock-free ones, and the locked ones of every other thread.
        self._rows: dict[tuple[str, ...], ByKind] = {}
        self._locked_rows: dict[tuple[str, ...], ByKind] = {}
        # Rows of an LLM call's children by its raw label values (see rows.py), for the owner thread only.
        self._llm_rows: dict[tuple[str | None, ...], LLMRow] = {}
        # The thread whose updates of the LLM and quality series take no lock (the event loop's, where the
        # middleware starts the recorder): see fastpath.SharedValue. Set once, never changed.
        self._owner: int | None = None
        self._owner_lock = threading.Lock()
        # Once started, LLM calls reach the sinks through one bounded queue and its thread (see handoff.py).
        self._handoff: Handoff | None = None
        self._binned: dict[tuple[str, ...], Callable[[list[int], float], None]] = {}

    # -- wiring -----------------------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        """Add a sink; its request-path callables (``duration_observer``, ``on_http``...) are asked now."""
        self.sinks = (*self.sinks, sink)
        # Per request only the sinks that take HTTP observations are called, by their shortest path.
        on_http, on_duration = [], []
        for s in self.sinks:
            observe = s.duration_observer()
            if observe is not None:
                on_duration.append(observe)
            elif type(s).on_http is not Sink.on_http:
                on_http.append(s.on_http)
        self._on_http, self._on_duration = tuple(on_http), tuple(on_duration)
        self._on_active = tuple(s.on_active for s in self.sinks if type(s).on_active is not Sink.on_active)
        self._active_children.clear()  # the in-flight adders call the sinks that want them
        if self._handoff is not None:
            self._handoff.sinks = self.sinks
            sink.handed_off(self._handoff.drain)

    @property
    def pricing(self) -> PricingTable:
        """The price table, read on first use (the middleware reads it at startup, so a bad file fails then)."""
        if self._pricing is None:
            self._pricing = table = PricingTable.from_config(self.config.pricing)
            table.when_updated(self._price_data_date)
            self._price_data_date()
        return self._pricing

    def _price_data_date(self) -> None:
        # Called from genai-prices' update thread too: one gauge set.
        stamp = self.pricing.snapshot_timestamp
        if stamp is not None:
            m = self.metrics
            m.price_data_timestamp.labels(PRICE_DATA, *m.static).set(stamp)

    def set_exemplar_source(self, source: Callable[[], dict[str, str] | None] | None) -> None:
        """Where exemplars come from: a callable returning ``{"trace_id": ..., "span_id": ...}`` or None."""
        self.exemplar = source

    def start(self) -> None:
        """Start the sinks' threads and files, and the price data's auto-update where it is on (the ASGI
        lifespan's startup, or the first use; idempotent)."""
        if self._started:
            return
        self._started = True
        self._claim_owner()
        self.pricing.start()
        for sink in self.sinks:
            sink.start()
        if self.sinks:
            handoff = self._handoff = Handoff(self.sinks, self.metrics.child(self.metrics.sink_dropped).inc)
            for sink in self.sinks:
                sink.handed_off(handoff.drain)
            handoff.start()

    def _claim_owner(self) -> int:
        # The first thread to start the recorder or record an LLM call owns the lock-free path for good.
        with self._owner_lock:
            if self._owner is None:
                self._owner = threading.get_ident()
            return self._owner

    def close(self) -> None:
        if self._pricing is not None:
            self._pricing.stop()
        handoff, self._handoff = self._handoff, None
        if handoff is not None:
            handoff.close()  # the sinks see every call before they flush
        for sink in self.sinks:
            sink.close()

    def health(self) -> dict[str, Any]:
        """The sinks' health reports (those that give one), and ``status``: ``degraded`` when one of them is
        not ok (the MLflow bridge while it spools), else ``ok``. For a ``/health`` endpoint."""
        sinks: dict[str, Any] = {}
        for sink in self.sinks:
            try:
                report = sink.health()
            except Exception as exc:  # a health probe must answer even when a sink is broken
                report = {"status": "error", "error": repr(exc)}
            if report is not None:
                sinks[type(sink).__name__] = report
        degraded = any(_state(r) != "ok" for r in sinks.values())
        return {"status": "degraded" if degraded else "ok", "sinks": sinks}

    # -- what the parts report about themselves (only the recorder writes the families) --------------

    def drift_output(self) -> DriftOutput:
        return _DriftGauges(self.metrics, multiprocess=multiprocess_dir() is not None)

    def bridge_output(self) -> BridgeOutput:
        return _BridgeCounters(self.metrics)

    def captured(self, found: Captured) -> None:
        """What reading a provider response gave: an LLM call, a response that could not be read, or nothing."""
        if isinstance(found, Unreadable):
            self._add(self.metrics.capture_errors, found.format)(1)
        elif found is not None:
            self.llm(found)

    def rate_limit(self, limit: RateLimit) -> None:
        """What a provider's rate-limit headers said with its latest answer (the gauges keep the last value)."""
        m = self.metrics
        provider = self.guard("gen_ai_provider_name", limit.provider or "unknown")
        model = self.guard("gen_ai_request_model", limit.model or "unknown")
        if limit.remaining is not None:
            values = m.admit(m.rate_limit_remaining, (provider, model, limit.resource))
            m.rate_limit_remaining.labels(*values, *m.static).set(limit.remaining)
        if limit.limit is not None:
            values = m.admit(m.rate_limit_limit, (provider, model, limit.resource))
            m.rate_limit_limit.labels(*values, *m.static).set(limit.limit)

    def track_events(self, result: str, count: int) -> None:
        """Events the ``/track`` collector ``accepted`` or ``rejected``."""
        self._add(self.metrics.track_events, result)(count)

    # -- HTTP (the hot path) --------------------------------------------------------------------------

    def route(self, route: str) -> str:
        """The capped ``http_route`` value. Call once per request and pass the result to ``active``/``http``:
        their child caches are keyed by it, which keeps them bounded whatever a route resolver returns."""
        return self.guard("http_route", route)

    def active(self, method: str, route: str) -> Callable[[float], None]:
        """Adds to the in-flight gauge of (method, route): ``add(1)`` at the start, ``add(-1)`` at the end."""
        add = self._active_children.get((method, route))
        if add is None:
            m = self.metrics
            # (method, route) pairs are few (normalised methods x capped routes): a pair past the budget
            # is cached too, on the overflow child, so that its +1 and its -1 meet on the same series.
            values = m.admit(m.http_active, (method, route))
            add = adder(unlocked(m.http_active.labels(*values, *m.static)))
            if self._on_active:
                add = _telling(add, method, route, self._on_active)
            self._active_children[(method, route)] = add
        return add

    def http(
        self,
        method: str,
        route: str,
        status: int,
        duration: float,
        request_bytes: int,
        response_bytes: int,
        ttfb: float | None = None,
    ) -> None:
        """One finished HTTP request. ``route`` must come from :meth:`route` (capped), ``method`` be normalised."""
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children_for(key)
        exemplar = self.exemplar() if self.exemplar is not None else None
        if exemplar and exemplar_ok(exemplar):
            children[1](duration, exemplar)
            children[2](request_bytes)
            children[3](response_bytes)
        else:
            children[0](duration, request_bytes, response_bytes)
        if ttfb is not None:
            ttfb_h = self._ttfb_children.get(key)
            if ttfb_h is None:
                # Only streaming responses have a TTFB; a child made up front would export empty series.
                ttfb_h = self._ttfb_child_for(key)
            ttfb_h(ttfb)
        for observe in self._on_duration:
            observe(duration)
        if self._on_http:
            ts = time.time()
            for on_http in self._on_http:
                on_http(method, route, status, duration, ts, request_bytes, response_bytes)

    def _http_values(self, key: tuple[str, str, int]) -> tuple[str, str, str]:
        method, route, status = key
        return method, route, self.guard("http_response_status_code", str(status))

    def _http_children_for(self, key: tuple[str, str, int]) -> tuple[Any, Any, Any, Any]:
        m = self.metrics
        values = self._http_values(key)
        admitted = m.admit(m.http_duration, values)  # for the three histograms at once
        if admitted is not values:
            if self._http_overflow is None:
                self._http_overflow = self._new_http_children(admitted)
            return self._http_overflow
        children = self._http_children[key] = self._new_http_children(values)
        return children

    def _new_http_children(self, values: tuple[str, ...]) -> tuple[Any, Any, Any, Any]:
        m = self.metrics
        duration = unlocked(m.http_duration.labels(*values, *m.static))
        request = unlocked(m.http_request_size.labels(*values, *m.static))
        response = unlocked(m.http_response_size.labels(*values, *m.static))
        # All three in one call; with an exemplar, the duration's observer that keeps it, and the sizes'.
        with_exemplar = owned_exemplar_observer(duration) or duration.observe
        return http_observer(duration, request, response), with_exemplar, observer(request), observer(response)

    def _ttfb_child_for(self, key: tuple[str, str, int]) -> Callable[[float], None]:
        m = self.metrics
        values = self._http_values(key)
        admitted = m.admit(m.http_ttfb, values)
        if admitted is not values:
            if self._ttfb_overflow is None:
                self._ttfb_overflow = observer(unlocked(m.http_ttfb.labels(*admitted, *m.static)))
            return self._ttfb_overflow
        ttfb_h = self._ttfb_children[key] = observer(unlocked(m.http_ttfb.labels(*values, *m.static)))
        return ttfb_h

    def http_exception(self, method: str, route: str, exc: BaseException) -> None:
        m = self.metrics
        values = m.admit(m.http_exceptions, (method, route, self.guard("error_type", type(exc).__name__)))
        m.http_exceptions.labels(*values, *m.static).inc()

    # -- LLM ----------------------------------------------------------------------------------------

    def llm(self, call: LLMCall) -> Cost | None:
        """Record one LLM call; returns its cost, or None when it has none (no usage, or no known price)."""
        row = self._llm_rows.get(
            (call.provider, call.model, call.response_model, call.operation, call.error_type, call.route, call.tenant)
        )
        if row is None or call.missing_usage or threading.get_ident() != self._owner:
            return self._llm(call)
        return self._through(row, call)

    def _through(self, row: LLMRow, call: LLMCall) -> Cost | None:
        """Record a call through its row, on the owner thread: its names need no capping (they were kept as
        given), its children no look-up, and its updates no lock."""
        exemplar = self.exemplar() if self.exemplar is not None else None
        if exemplar and not exemplar_ok(exemplar):
            exemplar = None  # one prometheus_client would refuse (a source's bad labels): recorded without it
        updates, with_exemplar = row.updates, row.with_exemplar
        if call.duration is not None:
            if exemplar:
                (with_exemplar[DURATION] or row.exemplar_update(DURATION))(call.duration, exemplar)
            else:
                (updates[DURATION] or row.update(DURATION))(call.duration)
        if call.ttft is not None:
            (updates[TTFT] or row.update(TTFT))(call.ttft)
        (updates[REQUESTS] or row.update(REQUESTS))(1)
        for reason in call.finish_reasons:  # normalised: a handful of values, each cached in the row
            (row.finishes.get(reason) or row.finish(reason))(1)
        if call.tool_calls or call.ttft is not None or call.chunk_gaps is not None:
            provider, model, response = row.by_kind.labels[:3]  # as capped when the row was made
            self._answer_signals(call, provider, model, response)
        kinds = call.kinds()
        cost: Cost | None = None
        if kinds is None:
            self._add(self.metrics.missing_usage, call.provider, call.model, "usage_inconsistent")(1)
        else:
            for slot, tokens in ((INPUT_USAGE, call.input_tokens), (OUTPUT_USAGE, call.output_tokens)):
                if tokens:
                    if exemplar:
                        (with_exemplar[slot] or row.exemplar_update(slot))(tokens, exemplar)
                    else:
                        (updates[slot] or row.update(slot))(tokens)
            cost = self._book(call, kinds, row.by_kind)
        if self.sinks:
            self._tell_sinks(call, cost)
        return cost

    def _llm(self, call: LLMCall) -> Cost | None:
        """:meth:`llm` for a call not seen before, one from a thread other than the owner, or one without usage:
        names capped, children looked up; for the owner, the row of a call whose names were kept as given."""
        m = self.metrics
        g = self.guard
        provider = g("gen_ai_provider_name", call.provider or "unknown")
        model = g("gen_ai_request_model", call.model or "unknown")
        response = g("gen_ai_response_model", call.response_model) if call.response_model else ""
        operation = g("gen_ai_operation_name", call.operation or "chat")
        error = g("error_type", call.error_type) if call.error_type else ""
        tenant_in = call.tenant or ""
        tenant = (g("tenant", tenant_in),) if m.tenant else ()
        route = g("http_route", call.route) if call.route else NO_ROUTE  # capped as the HTTP metrics' routes
        owned = threading.get_ident() == (self._owner or self._claim_owner())
        key = (provider, model, response, route, *tenant)
        # The guard returns the very object it was given unless it folded or repaired the value: a call whose
        # names all came back so is recorded through its row, now and from now on (the owner thread's only).
        kept = (
            provider is call.provider
            and model is call.model
            and operation is call.operation
            and (response is call.response_model or call.response_model is None)
            and (error is call.error_type or call.error_type is None)
            and (not tenant or tenant[0] is tenant_in)
            and (route is call.route or call.route is None)
        )
        if kept and owned and call.missing_usage is None:
            if len(self._llm_rows) >= _MAX_CACHED_ROWS:
                self._llm_rows.clear()
            labels = (provider, model, response, operation, error, route, tenant)
            row = LLMRow(m, labels, self._by_kind(key, owned))
            row_key = (call.provider, call.model, call.response_model, call.operation, call.error_type, call.route)
            self._llm_rows[(*row_key, call.tenant)] = row
            return self._through(row, call)
        exemplar = self.exemplar() if self.exemplar is not None else None
        if call.duration is not None:
            if exemplar:
                self._labels(m.llm_duration, (operation, provider, model, response, error)).observe(
                    call.duration, exemplar
                )
            else:
                self._observe(m.llm_duration, operation, provider, model, response, error)(call.duration)
        if call.ttft is not None:
            self._observe(m.llm_ttft, provider, model, response)(call.ttft)
        outcome = "error" if call.error_type else "ok"
        self._add(m.llm_requests, provider, model, response, outcome, route, *tenant)(1)
        for reason in call.finish_reasons:
            self._add(m.llm_finish_reasons, provider, model, reason)(1)
        if call.tool_calls or call.ttft is not None or call.chunk_gaps is not None:
            self._answer_signals(call, provider, model, response)

        cost: Cost | None = None
        kinds = None if call.missing_usage else call.kinds()
        if kinds is None:
            # No usage to book (or counts that can't be a call's): the call is counted as missing its usage,
            # never as zero tokens, and nothing is priced.
            self._add(m.missing_usage, provider, model, call.missing_usage or "usage_inconsistent")(1)
        else:
            # The OTel histograms keep the totals, as the conventions define them: input, then output.
            for (usage, kind), tokens in zip(m.token_usage, (call.input_tokens, call.output_tokens), strict=True):
                if tokens:
                    values = (operation, provider, model, response, *kind)
                    if exemplar:
                        self._labels(usage, values).observe(tokens, exemplar)
                    else:
                        self._child(usage, values)(tokens)
            cost = self._book(call, kinds, self._by_kind(key, owned))
        if self.sinks:
            # Sinks see the names the metrics have. The guard returns the very object it was given unless
            # it folded or repaired the value, so the copy is made only then.
            answered, routed = response or None, route if call.route else None
            if (
                provider is not call.provider
                or model is not call.model
                or operation is not call.operation
                or answered is not call.response_model
                or routed is not call.route
            ):
                call = replace(
                    call, provider=provider, model=model, operation=operation, response_model=answered, route=routed
                )
            self._tell_sinks(call, cost)
        return cost

    def _answer_signals(self, call: LLMCall, provider: str, model: str, response: str) -> None:
        """The tools a call's answer asked for, and how fast its stream came (names capped)."""
        m = self.metrics
        for name in call.tool_calls:
            self._add(m.llm_tool_calls, provider, model, self.guard("gen_ai_tool_name", name))(1)
        tpot = call.time_per_output_token()
        if tpot is not None:
            self._observe(m.llm_tpot, provider, model, response)(tpot)
        gaps = call.chunk_gaps
        if gaps is not None and len(gaps):
            values = (provider, model, response)
            add = self._binned.get(values)
            if add is None:
                admitted = m.admit(m.llm_chunk_gap, values)
                add = self._binned.get(admitted)
                if add is None:
                    add = self._binned[admitted] = binned_observer(m.llm_chunk_gap.labels(*admitted, *m.static))
            add(gaps.counts, gaps.total)

    def tool(self, execution: ToolExecution) -> None:
        """One run of a tool (an ``execute_tool`` span): its duration, by tool name and error type."""
        name = self.guard("gen_ai_tool_name", execution.name)
        error = self.guard("error_type", execution.error_type) if execution.error_type else ""
        self._observe(self.metrics.tool_duration, name, error)(execution.duration)
        if self.sinks:  # from the span processor, off the request path: told directly
            ts = time.time()
            for sink in self.sinks:
                sink.on_tool(name, error, execution.duration, ts)

    def _tell_sinks(self, call: LLMCall, cost: Cost | None) -> None:
        ts = call.timestamp if call.timestamp is not None else time.time()
        handoff = self._handoff
        if handoff is not None:
            handoff.put(call, cost, ts)
            return
        for sink in self.sinks:  # not started (a script, a test): directly
            sink.on_llm(call, cost, ts)

    def _by_kind(self, key: tuple[str, ...], owned: bool) -> ByKind:
        rows = self._rows if owned else self._locked_rows
        row = rows.get(key)
        if row is None:
            if len(rows) >= _MAX_CACHED_ROWS:  # bounded by the caps already; this is the last resort
                rows.clear()
            row = rows[key] = ByKind(self.metrics, key, owned)
        return row

    def _book(self, call: LLMCall, kinds: tuple[int, ...], row: ByKind) -> Cost | None:
        """Book the call's tokens by kind and its cost: the provider's figure as given, else priced from the
        price data kind by kind; returns the cost. ``row``: the adders of (provider, model, response model,
        route, *tenant)."""
        parts: tuple[float, ...] = ()
        if call.cost_usd is None and (call.input_tokens or call.output_tokens):
            # Priced as the model that answered; the provider picks its price list (Bedrock's differs).
            entry = self.pricing.price(call.response_model or call.model, call.provider)
            if entry is None:
                provider, model, response = row.labels[:3]
                self._add(self.metrics.unpriced_tokens, provider, model, response)(
                    call.input_tokens + call.output_tokens
                )
            else:
                parts = entry.amounts(kinds)
        # One pass over the kinds for tokens and costs, through the row's adders (no key to hash per kind);
        # parts has one more item than kinds, the fee per call, booked after the loop.
        # Only the kinds the call has (picked at C speed): a call has three or four of the twelve. A kind's
        # cost is its tokens times a rate, so a kind without tokens has no cost either.
        tokens, costs = row.tokens, row.costs
        for i in compress(_KIND_INDEX, kinds):
            (tokens[i] or row.token(i))(kinds[i])
            if parts and parts[i]:
                (costs[i] or row.cost(i))(parts[i])
        if parts:
            if parts[-1]:  # the fee per call, the one part without tokens
                (costs[-1] or row.cost(len(costs) - 1))(parts[-1])
            return Cost(sum(parts), ESTIMATED, parts)
        if call.cost_usd is None:
            return None
        if call.cost_usd:
            provider, model, response, route, *tenant = row.labels
            cost_of = self._add(
                self.metrics.llm_cost, provider, model, response, UNSPLIT, PROVIDER_COST, route, *tenant
            )
            cost_of(call.cost_usd)
        return Cost(call.cost_usd, PROVIDER_COST)

    # Children of the families above, cached by label values. ``labels()`` costs ~0.6 µs, a hit ~0.1; the
    # series budget is asked only on a miss, so an existing series costs no more than before.

    def _observe(self, family: Histogram, *values: str) -> Callable[[float], None]:
        return self._child(family, values)

    def _add(self, family: Counter, *values: str) -> Callable[[float], None]:
        return self._child(family, values)

    def _child(self, family: Any, values: tuple[str, ...]) -> Callable[[float], None]:
        # The owner thread's updates take no lock; every other thread's do (see fastpath.SharedValue).
        owned = threading.get_ident() == self._owner
        children = self._owned_children if owned else self._children
        fn = children.get((family, values))
        if fn is None:
            # Cached under the values the budget admitted: a combination past it shares the overflow entry.
            key = (family, self.metrics.admit(family, values))
            fn = children.get(key)
            if fn is None:
                # SharedValue values from the start, before any update holds them (see fastpath.shared).
                child = shared(family.labels(*key[1], *self.metrics.static))
                fn = children[key] = owned_or_locked(child, owned)
        return fn

    def _labels(self, family: Histogram, values: tuple[str, ...]) -> Histogram:
        """The child of ``values`` within the family's budget (the exemplar paths, which are not cached)."""
        return shared(family.labels(*self.metrics.admit(family, values), *self.metrics.static))

    # -- any observation of the vocabulary ---------------------------------------------------------------

    def record(self, observation: Observation) -> None:
        """Record one observation (what ``/track`` parsed), by its kind."""
        o = observation
        if isinstance(o, LLMCall):
            self.llm(o)
        elif isinstance(o, Confidence):
            self.confidence(o.value, o.label, o.model)
        elif isinstance(o, Prediction):
            self.prediction(o.label, o.model)
        elif isinstance(o, Evaluation):
            self.evaluation(o.name, o.score, o.model, o.timestamp)
        elif isinstance(o, Feedback):
            self.feedback(o.rating, o.model)
        elif isinstance(o, Event):
            self.event(o.name, o.tenant, o.count)
        elif isinstance(o, HttpRequest):
            route = self.route(o.route)
            self.http(o.method, route, o.status, o.duration, o.request_bytes, o.response_bytes)
        elif isinstance(o, ToolExecution):
            self.tool(o)
        else:
            self.feature(o.name, o.value)

    # -- quality and business signals -------------------------------------------------------------------

    def confidence(self, value: float, label: str = "", model: str = "") -> None:
        m = self.metrics
        model = self.guard("gen_ai_request_model", model)
        label = self.guard("label", label)
        self._observe(m.confidence, model, label)(value)
        self._add(m.predictions, model, label)(1)
        if self.sinks:
            ts = time.time()
            for sink in self.sinks:
                sink.on_confidence(model, label, value, ts)

    def prediction(self, label: str, model: str = "") -> None:
        """A predicted label that comes without a confidence (counted, and seen by drift)."""
        model = self.guard("gen_ai_request_model", model)
        label = self.guard("label", label)
        self._add(self.metrics.predictions, model, label)(1)
        if self.sinks:
            ts = time.time()
            for sink in self.sinks:
                sink.on_feature("predicted_label", label, ts)

    def evaluation(self, name: str, score: float, model: str = "", ts: float | None = None) -> None:
        m = self.metrics
        name = self.guard("evaluation", name)
        model = self.guard("gen_ai_request_model", model)
        self._observe(m.evaluation, name, model)(score)
        if self.sinks:
            ts = time.time() if ts is None else ts
            for sink in self.sinks:
                sink.on_evaluation(name, model, score, ts)

    def feedback(self, rating: float, model: str = "") -> None:
        m = self.metrics
        model = self.guard("gen_ai_request_model", model)
        self._observe(m.feedback, model)(rating)
        if self.sinks:
            ts = time.time()
            for sink in self.sinks:
                sink.on_feedback(model, rating, ts)

    def event(self, name: str, tenant: str | None = None, count: int = 1) -> None:
        m = self.metrics
        name = self.guard("event", name)
        extra = (self.guard("tenant", tenant or ""),) if m.tenant else ()
        self._add(m.events, name, *extra)(count)
        if self.sinks:
            ts = time.time()
            for sink in self.sinks:
                sink.on_event(name, tenant, ts, count)

    def feature(self, name: str, value: float | str) -> None:
        """A user-registered drift feature (numeric or categorical); only sinks see it."""
        if self.sinks:
            ts = time.time()
            for sink in self.sinks:
                sink.on_feature(name, value, ts)


# -- the outputs handed to sinks that report on themselves ------------------------------------------------


class _DriftGauges:
    """:class:`~exporter.sinks.DriftOutput` over the drift families."""

    def __init__(self, metrics: Metrics, *, multiprocess: bool) -> None:
        self._m = metrics
        # prometheus_client cannot remove a sample from its shared files; remove() is then a no-op.
        self._multiprocess = multiprocess

    def thresholds(self, by_method: Mapping[str, float]) -> None:
        m = self._m
        for method, value in by_method.items():
            m.drift_threshold.labels(method, *m.static).set(value)

    def scores(self, feature: str, scores: Mapping[str, float], samples: int) -> None:
        m = self._m
        m.drift_samples.labels(feature, *m.static).set(samples)
        for method, value in scores.items():
            m.drift_score.labels(feature, method, *m.static).set(value)

    def withdraw(self, feature: str, methods: Iterable[str]) -> None:
        m = self._m
        if self._multiprocess:
            # NaN never passes a threshold comparison (llm_drift_score > 0.2 is false): the alert resolves.
            m.drift_samples.labels(feature, *m.static).set(math.nan)
            for method in methods:
                m.drift_score.labels(feature, method, *m.static).set(math.nan)
            return
        m.drift_samples.remove(feature, *m.static)
        for method in methods:
            m.drift_score.remove(feature, method, *m.static)

    def unseen(self, feature: str, count: int) -> None:
        m = self._m
        m.drift_unseen.labels(feature, *m.static).inc(count)

    def overflow(self, label: str) -> None:
        m = self._m
        m.label_overflow.labels(label, *m.static).inc()


class _BridgeCounters:
    """:class:`~exporter.sinks.BridgeOutput` over the MLflow bridge's families."""

    def __init__(self, metrics: Metrics) -> None:
        self._batches = {r: metrics.child(metrics.mlflow_batches, r) for r in BATCH_RESULTS}
        self._spool = metrics.child(metrics.mlflow_spool_bytes)

    def batches(self, result: str, count: int = 1) -> None:
        self._batches[result].inc(count)

    def spool_bytes(self, size: int) -> None:
        self._spool.set(size)


# -- helpers --------------------------------------------------------------------


def _telling(
    add: Callable[[float], None], method: str, route: str, sinks: tuple[Callable[[str, str, int], None], ...]
) -> Callable[[float], None]:
    def add_and_tell(delta: float) -> None:
        add(delta)
        for on_active in sinks:
            try:
                on_active(method, route, int(delta))
            except Exception:  # runs on the request path: a sink must never fail a request
                log.exception("llm-exporter: a sink's on_active failed")

    return add_and_tell


def _state(report: Any) -> str:
    """A sink health report's verdict: its ``status`` or ``state`` (the MLflow bridge's), else ok."""
    if not isinstance(report, dict):
        return "ok"
    return str(report.get("status", report.get("state", "ok")))
