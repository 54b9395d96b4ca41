"""The MLflow bridge: windowed summaries logged off the request path, spooled to disk while MLflow is down."""

from .sink import MlflowSink
from .tracking import resolve_tracking_uri

__all__ = ["MlflowSink", "resolve_tracking_uri"]
