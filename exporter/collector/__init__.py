"""The standalone collector: ``POST /track`` for apps that are not Python, ``GET /metrics``, ``GET /health``."""

from .app import Collector, app, create_app, serve
from .events import FieldError, parse_events

__all__ = ["Collector", "FieldError", "app", "create_app", "parse_events", "serve"]
