"""Drift detection: recent distributions of each feature against a baseline, exported as gauges."""

from .baseline import load_baseline, save_baseline
from .sink import DriftSink

__all__ = ["DriftSink", "load_baseline", "save_baseline"]
