"""The composition root: the recorder of a registry and its sinks, built from a Config; the current recorder.

Handlers' ``llm.*`` calls find the request's recorder through a context variable the middleware sets,
else the default registry's, created on first use with the sinks its config enables.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from .config import Config
from .recorder import Recorder


def attach_default_sinks(recorder: Recorder) -> None:
    """The sinks the recorder's config enables. Optional parts are imported only when enabled."""
    cfg = recorder.config
    if cfg.drift.enabled:
        from .drift import DriftSink

        recorder.add_sink(DriftSink(recorder))
    if cfg.mlflow.enabled:
        from .mlflow_bridge import MlflowSink

        recorder.add_sink(MlflowSink(recorder))
    if cfg.otel.metrics:
        from .otel import enable_otel_metrics

        enable_otel_metrics(recorder)


_current: ContextVar[Recorder | None] = ContextVar("llm_exporter_recorder", default=None)
_by_registry: dict[int, tuple[CollectorRegistry, Recorder]] = {}
_lock = threading.Lock()


def recorder_for(registry: CollectorRegistry | None = None, config: Config | None = None) -> Recorder:
    """The one Recorder of a registry, created on first use (with :meth:`Config.load` when no config is given).

    A registry can hold each metric family once, so two recorders can't share it; asking again with
    another config is an error rather than a silent second set of buckets.
    """
    registry = REGISTRY if registry is None else registry
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
        rec = Recorder(config if config is not None else Config.load(), registry)
        attach_default_sinks(rec)
        _by_registry[id(registry)] = (registry, rec)
        return rec


def is_default(rec: Recorder) -> bool:
    """Whether ``rec`` is the recorder ``current_recorder()`` falls back to."""
    entry = _by_registry.get(id(REGISTRY))
    return entry is not None and entry[1] is rec


def current_recorder() -> Recorder:
    """The recorder of the request being handled, else the one on the default registry."""
    rec = _current.get()
    return rec if rec is not None else recorder_for()


def use_recorder(rec: Recorder) -> Any:
    """Make ``rec`` current in this context; returns the token for ``_current.reset``."""
    return _current.set(rec)


def reset_recorder(token: Any) -> None:
    _current.reset(token)
