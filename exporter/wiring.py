"""The composition root: a registry's one Recorder and the sinks its Config enables, put together here.

Each sink gets its own config section and what it needs from the others, as narrow values: the drift
sink the recorder's drift gauges, the MLflow bridge its counters, the run params and the drift scores.
Nothing else builds sinks, and no sink sees the Recorder.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from prometheus_client import REGISTRY, CollectorRegistry

from .config import Config
from .context import install_default
from .drift import DriftSink
from .mlflow_bridge import MlflowSink, resolve_tracking_uri, run_params
from .recorder import Recorder


def build(config: Config, registry: CollectorRegistry) -> Recorder:
    """A Recorder on ``registry`` with the sinks ``config`` enables, not started yet."""
    rec = Recorder(config, registry)
    drift = drift_sink(rec) if config.drift.enabled else None
    if drift is not None:
        rec.add_sink(drift)
    if config.mlflow.enabled:
        rec.add_sink(mlflow_sink(rec, drift.scores if drift is not None else None))
    if config.otel.metrics:
        # The otel extra: imported only when used, so `import exporter` never imports opentelemetry.
        from .otel import enable_otel_metrics

        enable_otel_metrics(rec)
    return rec


def drift_sink(rec: Recorder, *, clock: Callable[[], float] = time.time) -> DriftSink:
    """The drift sink of ``rec``'s config, writing ``rec``'s drift gauges."""
    config = rec.config
    # A baseline from MLflow is read from the store the bridge writes to, resolved the same way.
    tracking_uri = resolve_tracking_uri(config.mlflow.tracking_uri)
    return DriftSink(config.drift, rec.drift_output(), tracking_uri=tracking_uri, clock=clock)


def mlflow_sink(
    rec: Recorder,
    drift_scores: Callable[[], Mapping[str, Mapping[str, float]]] | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> MlflowSink:
    """The MLflow bridge of ``rec``'s config; each window also logs what ``drift_scores()`` returns."""
    config = rec.config
    return MlflowSink(
        config.mlflow,
        rec.bridge_output(),
        service=config.labels.get("service") or "llm-exporter",
        label_cap=config.label_cap,
        params=lambda: run_params(config, lambda: rec.pricing),
        drift_scores=drift_scores,
        clock=clock,
    )


_by_registry: dict[int, tuple[CollectorRegistry, Recorder]] = {}
_lock = threading.Lock()


def recorder_for(registry: CollectorRegistry | None = None, config: Config | None = None) -> Recorder:
    """The one Recorder of a registry, built on first use (with :meth:`Config.load` when no config is given).

    A registry can hold each metric family once, so two recorders can't share it; asking again with
    another config is an error rather than a silent second set of buckets. The caller starts it (the
    middleware and the collector do, from the ASGI lifespan).
    """
    registry = REGISTRY if registry is None else registry
    entry = _by_registry.get(id(registry))  # the common case, without the lock: a dict read is atomic
    if entry is not None and entry[0] is registry and (config is None or config == entry[1].config):
        return entry[1]
    with _lock:
        entry = _by_registry.get(id(registry))
        if entry is not None and entry[0] is registry:
            rec = entry[1]
            if config is not None and config != rec.config:
                raise ValueError(
                    "this registry already has an llm-exporter Recorder with another config; "
                    "pass recorder=... to share it, or a fresh CollectorRegistry"
                )
            return rec
        rec = build(config if config is not None else Config.load(), registry)
        _by_registry[id(registry)] = (registry, rec)
        return rec


def is_default(rec: Recorder) -> bool:
    """Whether ``rec`` is the recorder ``current_recorder()`` falls back to."""
    entry = _by_registry.get(id(REGISTRY))
    return entry is not None and entry[1] is rec


def _default() -> Recorder:
    # Used where there is no request (scripts, workers, spans ended off the request path): this first
    # use is its start, as there is no lifespan to start it.
    rec = recorder_for()
    rec.start()
    return rec


install_default(_default)
