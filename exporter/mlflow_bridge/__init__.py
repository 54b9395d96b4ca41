"""The MLflow bridge: windowed summaries logged off the request path, spooled to disk while MLflow is down."""

from .sink import MlflowSink, run_params
from .tracking import resolve_tracking_uri

__all__ = ["MlflowSink", "resolve_tracking_uri", "run_params"]
