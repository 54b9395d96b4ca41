"""Which sinks a Recorder gets from its config. Optional parts are imported only when enabled."""

from __future__ import annotations

from .recorder import Recorder


def attach_default_sinks(recorder: Recorder) -> None:
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
