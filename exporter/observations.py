"""The vocabulary: every observation the exporter records, each defined once (fields, units, rules).

The ``llm`` API, ``/track`` parsing and response capture build these; the recorder records them and
hands them to its sinks. Times are seconds, costs US dollars, token counts whole tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LLMCall:
    """One LLM operation. Token counts are totals: ``input_tokens`` includes ``cached_input_tokens``."""

    model: str
    provider: str = "unknown"
    operation: str = "chat"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    duration: float | None = None  # seconds
    ttft: float | None = None  # seconds to the first output token, streams only
    error_type: str | None = None
    cost_usd: float | None = None  # a cost given by the caller is used as is (split input/output by tokens)
    tenant: str | None = None
    timestamp: float | None = None  # wall clock of the call; None means now


@dataclass(slots=True)
class Cost:
    input_usd: float
    output_usd: float

    @property
    def total_usd(self) -> float:
        return self.input_usd + self.output_usd


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A response that looked like LLM output (``format``: ``json`` or ``sse``) but could not be read."""

    format: str


Captured = LLMCall | Unreadable | None  # what reading one provider response gives
