"""What the JSON and the SSE response readers share: their interface, the usage marker, and the call a
reading describes."""

from __future__ import annotations

import logging

from ..checks import MAX_INT
from ..observations import Captured, ChunkGaps, LLMCall, Unreadable
from .usage import Counts, Reading

log = logging.getLogger(__name__)

_USAGE = b'"usage'  # "usage" (OpenAI, Anthropic) and "usageMetadata" (Gemini)


class ResponseCapture:
    """Reads one response body. ``feed`` and ``finish`` never raise."""

    __slots__ = ()

    def feed(self, chunk: bytes, now: float) -> None:
        raise NotImplementedError

    def finish(self, start: float, end: float, status: int) -> Captured:
        raise NotImplementedError

    @property
    def satisfied(self) -> bool:
        """Whether more of the body would change nothing (a compressed body then needs no more inflating)."""
        raise NotImplementedError


def _call(
    reading: Reading,
    start: float,
    end: float,
    ttft: float | None,
    status: int,
    fmt: Unreadable,
    *,
    stream: bool,
    gaps: ChunkGaps | None = None,
) -> Captured:
    """The call a reading describes, or ``fmt`` (unreadable) when its token counts break the rule for them:
    counts past 2**53 would swamp every later increment, and a call recorded without them would be wrong."""
    counts = reading.counts()
    if reading.wrong is not None or counts[0] > MAX_INT or counts[1] > MAX_INT:  # input and output totals
        log.debug("llm-exporter: unusable token counts in a %s response: %s", fmt.format, reading.wrong)
        return fmt
    error = reading.error_type
    if error is None:
        error = http_error(status)
    # A provider's answer that ended well but says nothing of its usage (OpenAI streams without
    # stream_options.include_usage): counted as such, not as a call of zero tokens.
    missing = None
    if error is None and not reading.has_usage:
        missing = "stream_without_usage" if stream else "response_without_usage"
    model = reading.model
    return answered(
        model or "unknown",
        reading.provider,
        reading.operation,
        counts,
        start,
        end,
        ttft,
        error,
        reading.cost,
        model,
        missing,
        reading.finish or (),
        reading.tool_names(),
        gaps,
    )


def http_error(status: int) -> str | None:
    """OpenTelemetry's error.type for an HTTP error status (None below 400)."""
    return str(status) if status >= 400 else None


def answered(
    model: str,
    provider: str,
    operation: str,
    counts: Counts,
    start: float,
    end: float,
    ttft: float | None,
    error: str | None,
    cost: float | None,
    response_model: str | None,
    missing: str | None,
    finish: tuple[str, ...],
    tools: tuple[str, ...],
    gaps: ChunkGaps | None,
) -> LLMCall:
    """The call of an answer a reader read, timed from ``start`` (the request's) to ``end`` and ``ttft``.

    Made positionally, in LLMCall's field order (the counts are COUNT_FIELDS; tests/unit/test_capture.py checks
    the order): a call by keywords costs about three times as much, on every answer read."""
    return LLMCall(
        model,  # model
        provider,  # provider
        operation,  # operation
        *counts,
        max(end - start, 0.0),  # duration
        None if ttft is None else max(ttft - start, 0.0),  # ttft
        error,  # error_type
        cost,  # cost_usd
        None,  # tenant
        None,  # timestamp
        None,  # route (the middleware sets it)
        response_model,  # response_model
        missing,  # missing_usage
        finish,  # finish_reasons
        tools,  # tool_calls
        gaps,  # chunk_gaps
    )
