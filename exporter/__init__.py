"""Prometheus metrics, MLflow summaries and drift detection for LLM features behind any ASGI app."""

from . import llm
from ._version import __version__
from .capture.transport import instrument, uninstrument
from .config import Config, ConfigError
from .middleware import PrometheusMiddleware
from .observations import LLMCall
from .prometheus.exposition import metrics_app
from .recorder import Recorder

__all__ = [
    "Config",
    "ConfigError",
    "LLMCall",
    "PrometheusMiddleware",
    "Recorder",
    "instrument",
    "llm",
    "metrics_app",
    "uninstrument",
    "__version__",
]
