"""The Prometheus side: metric families, the lock-free fast path, exposition, multiprocess mode."""

from .exposition import MetricsApp, metrics_app, render
from .families import Metrics
from .multiprocess import MULTIPROC_ENV, multiprocess_dir

__all__ = ["MULTIPROC_ENV", "Metrics", "MetricsApp", "metrics_app", "multiprocess_dir", "render"]
