"""OpenTelemetry integration (the ``otel`` extra): exemplars, GenAI spans turned into metrics, OTel metrics out.

``import exporter`` never imports this package, and it imports ``opentelemetry`` only where it is used.
"""

from .exemplars import disable_exemplars, enable_exemplars
from .metrics import OtelMetricsSink, enable_otel_metrics
from .spans import MODEL_OPERATIONS, GenAISpanProcessor, llm_call_from_span

__all__ = [
    "MODEL_OPERATIONS",
    "GenAISpanProcessor",
    "OtelMetricsSink",
    "disable_exemplars",
    "enable_exemplars",
    "enable_otel_metrics",
    "llm_call_from_span",
]
