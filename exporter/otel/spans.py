"""GenAI spans turned into LLM metrics: :class:`GenAISpanProcessor` records finished model-call spans, as
emitted by the OpenTelemetry instrumentations of the OpenAI, Anthropic or Google SDKs, with their cost."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..capture.claims import CLAIMS
from ..context import default_recorder
from ..observations import LLMCall, ToolExecution, finish_reason
from ..recorder import Recorder
from .metrics import MISSING_EXTRA

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

try:
    from opentelemetry.sdk.trace import SpanProcessor as _SpanProcessorBase
except ImportError:  # the extra is absent: the rest of this module still imports
    _SpanProcessorBase = object  # type: ignore[misc,assignment]

log = logging.getLogger("exporter")

# Operations that are one model call. Agent and workflow spans are left out on purpose: an ``invoke_agent``
# span may report the summed usage of the model calls under it, which would count twice. Tool spans
# (``execute_tool``) are recorded as tool executions, not calls.
MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
EXECUTE_TOOL = "execute_tool"

# OpenLLMetry-style spans predate gen_ai.operation.name and say ``llm.request.type`` instead.
_LEGACY_OPERATIONS = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}

# -- GenAI spans -> LLM metrics -------------------------------------------------------------------------


# The parts of the totals, by their current names, then the older ones instrumentations still use.
_CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
_CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
_REASONING = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens")


def _tokens(attrs: Mapping[str, Any], *keys: str) -> int | None:
    """The first of ``keys`` the span has, as a token count (current names first, then older ones)."""
    for key in keys:
        value = attrs.get(key)
        if value is None:
            continue
        # Attribute values are whatever the instrumentation set; a string or a negative count is not usage.
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return None
        return int(value)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_type(span: ReadableSpan, attrs: Mapping[str, Any]) -> str | None:
    error = _text(attrs.get("error.type"))
    if error is not None:
        return error
    from opentelemetry.trace import StatusCode

    if span.status.status_code is not StatusCode.ERROR:
        return None
    for event in span.events:  # record_exception() leaves the class name here
        if event.name == "exception" and event.attributes:
            name = _text(event.attributes.get("exception.type"))
            if name is not None:
                return name.rsplit(".", 1)[-1]
    return "_OTHER"  # the semantic conventions' value for an unknown error


def llm_call_from_span(span: ReadableSpan, operation: str) -> LLMCall:
    """The :class:`LLMCall` a finished GenAI span describes (current and older attribute names).

    As the conventions define them, ``gen_ai.usage.input_tokens`` includes the cache reads and writes and
    ``gen_ai.usage.output_tokens`` the reasoning tokens; a span whose parts exceed its totals is counted as
    unusable usage by the recorder, not corrected.
    """
    attrs: Mapping[str, Any] = span.attributes or {}
    response_model = _text(attrs.get("gen_ai.response.model"))
    model = _text(attrs.get("gen_ai.request.model")) or response_model or "unknown"
    provider = _text(attrs.get("gen_ai.provider.name")) or _text(attrs.get("gen_ai.system")) or "unknown"
    end = span.end_time
    input_tokens = _tokens(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    output_tokens = _tokens(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
    error = _error_type(span, attrs)
    reasons = attrs.get("gen_ai.response.finish_reasons")  # a sequence of the provider's own values
    if isinstance(reasons, str):
        reasons = (reasons,)
    finish = tuple(finish_reason(r) for r in reasons or () if isinstance(r, str) and r)
    missing = None
    if input_tokens is None and output_tokens is None and error is None:
        missing = "span_without_usage"  # an instrumentation that did not get usage (a stream without it...)
    return LLMCall(
        model=model,
        provider=provider,
        operation=operation,
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cached_input_tokens=_tokens(attrs, *_CACHE_READ) or 0,
        cache_write_tokens=_tokens(attrs, *_CACHE_WRITE) or 0,
        output_reasoning_tokens=_tokens(attrs, *_REASONING) or 0,
        duration=_seconds(span),
        error_type=error,
        timestamp=end / 1e9 if end is not None else None,
        response_model=response_model,
        missing_usage=missing,
        finish_reasons=finish,
    )


def _seconds(span: ReadableSpan) -> float | None:
    start, end = span.start_time, span.end_time
    return (end - start) / 1e9 if start is not None and end is not None and end >= start else None


def tool_execution_from_span(span: ReadableSpan) -> ToolExecution | None:
    """The :class:`ToolExecution` an ``execute_tool`` span describes; None without a duration."""
    attrs: Mapping[str, Any] = span.attributes or {}
    duration = _seconds(span)
    if duration is None:
        return None
    name = _text(attrs.get("gen_ai.tool.name")) or "unknown"
    return ToolExecution(name=name, duration=duration, error_type=_error_type(span, attrs))


class GenAISpanProcessor(_SpanProcessorBase):
    """Records finished GenAI model-call spans as LLM metrics and cost, as the ``llm`` API would.

    Add it to the SDK ``TracerProvider`` that the GenAI instrumentation uses::

        provider.add_span_processor(GenAISpanProcessor())

    ``recorder`` defaults to the default registry's (looked up on the first GenAI span, not per
    request: spans end on arbitrary threads). ``operations`` are the ``gen_ai.operation.name`` values
    counted as calls; ``execute_tool`` spans are recorded as tool executions (duration and errors by
    gen_ai.tool.name). A span under which outbound capture saw the provider's answer is skipped: the call is counted
    once, from the answer. Do not also record the same calls with the ``llm`` API, or they count twice.
    """

    def __init__(self, recorder: Recorder | None = None, *, operations: Iterable[str] = MODEL_OPERATIONS) -> None:
        if _SpanProcessorBase is object:
            raise ImportError(f"GenAISpanProcessor {MISSING_EXTRA}")
        self._recorder = recorder
        self.operations = frozenset(operations)
        self._failed = False

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            self._recorder = default_recorder()
        return self._recorder

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes
        if not attrs:
            return
        operation = attrs.get("gen_ai.operation.name")
        if operation is None and "gen_ai.system" not in attrs:
            return  # not a GenAI span: the common case, two dictionary misses
        try:
            if operation is None:
                legacy = attrs.get("llm.request.type")
                operation = "chat" if legacy is None else _LEGACY_OPERATIONS.get(str(legacy), str(legacy))
            if operation == EXECUTE_TOOL:
                execution = tool_execution_from_span(span)
                if execution is not None:
                    self.recorder.tool(execution)
                return
            if operation not in self.operations:
                return
            ctx = span.context
            if ctx is not None and CLAIMS.take(ctx.span_id):
                return  # outbound capture recorded this call from the provider's answer
            self._record(llm_call_from_span(span, str(operation)), span)
        except Exception:  # an exception here would surface in the application's span.end()
            if not self._failed:
                self._failed = True
                log.exception("llm-exporter: recording a GenAI span failed (logged once)")

    def _record(self, call: LLMCall, span: ReadableSpan) -> None:
        rec = self.recorder
        ctx = span.context
        if rec.exemplar is None or ctx is None or not ctx.trace_flags.sampled:
            rec.llm(call)
            return
        # The span has ended and is no longer current; make it current so the exemplar names it.
        from opentelemetry import context, trace

        token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(ctx)))
        try:
            rec.llm(call)
        finally:
            context.detach(token)


# -- OpenTelemetry metrics out --------------------------------------------------------------------------
