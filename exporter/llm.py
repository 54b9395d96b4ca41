"""Record LLM calls and AI signals from inside handlers: ``from exporter import llm``.

    with llm.call("gpt-4o", provider="openai") as c:        # or ``async with``
        response = client.chat.completions.create(...)
        c.usage(response)                                   # tokens, finish reason and tool calls of a response

    with llm.call("gpt-4o", provider="openai") as c:        # a stream
        for event in client.chat.completions.create(..., stream=True):
            c.chunk()                                       # first token, then the gaps between chunks
            c.usage(event)

    @llm.track(model="claude-sonnet-4-5", provider="anthropic")
    async def answer(question: str) -> Message: ...

    llm.record("gemini-2.5-flash", input_tokens=120, output_tokens=80, duration=0.9)
    llm.confidence(0.92, label="booking")
    llm.evaluation("faithfulness", 0.8)
    llm.feedback(5)
    llm.event("appointment_requested")

Everything goes to the request's recorder (set by the middleware), else the default registry's, or to
an explicit ``recorder=``. Bad values raise :class:`InvalidValueError` (a ``ValueError``) naming the
field, at the call, before anything is recorded.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from .capture.usage import COUNT_FIELDS, Reading, read
from .checks import OPTIONAL_TEXT, Wrong
from .context import block_var, current_recorder, current_route
from .observations import (
    CHUNK_GAP_BUCKETS,
    MISSING,
    ChunkGaps,
    Confidence,
    Cost,
    Evaluation,
    Event,
    Feature,
    Feedback,
    LLMCall,
    from_fields,
)
from .recorder import Recorder

__all__ = [
    "Call",
    "InvalidValueError",
    "call",
    "confidence",
    "evaluation",
    "event",
    "feature",
    "feedback",
    "record",
    "track",
]

REQUEST_IDS = 10_000  # request ids remembered for late evaluations (oldest forgotten first)

_F = TypeVar("_F", bound=Callable[..., Any])


class InvalidValueError(ValueError):
    """A value passed to the ``llm`` API is out of range or of the wrong type."""

    def __init__(self, field: str, value: Any, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message  # the rule's: "expected an integer >= 0"
        super().__init__(f"{field}: {message}, got {value!r}")


# -- validation: the signals' own rules (exporter.observations), raised at the first wrong field -----------

_S = TypeVar("_S", LLMCall, Confidence, Evaluation, Feedback, Event, Feature)


def _checked(signal: type[_S], **values: Any) -> _S:
    """``signal`` from keyword values, checked by its definition; absent values (None) take the defaults."""
    if isinstance(values.get("timestamp"), datetime):
        values["timestamp"] = values["timestamp"].timestamp()

    def wrong(name: str, message: str) -> None:
        if message == MISSING:  # a required argument passed as None: say what it should be
            try:
                signal.FIELDS[name].rule(None)
            except Wrong as exc:
                message = exc.message
        raise InvalidValueError(name, values.get(name), message)

    found = from_fields(signal, values.get, wrong)
    assert found is not None  # wrong() raised otherwise
    return found


def _check(signal: type[Any], name: str, value: Any) -> Any:
    """One field of ``signal`` checked alone (None passes where the field may be absent)."""
    spec = signal.FIELDS[name]
    if value is None and not spec.required:
        return spec.default
    try:
        return spec.rule(value)
    except Wrong as exc:
        raise InvalidValueError(name, value, exc.message) from None


def _request_id(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return OPTIONAL_TEXT(value)  # type: ignore[no-any-return]
    except Wrong as exc:
        raise InvalidValueError("request_id", value, exc.message) from None


# -- request ids for late evaluations --------------------------------------------------------------------


class _RequestTimes:
    """request id -> wall-clock time of its LLM call, for evaluations that arrive later. Bounded, LRU."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._times: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, request_id: str, ts: float) -> None:
        with self._lock:
            self._times[request_id] = ts
            self._times.move_to_end(request_id)
            while len(self._times) > self._size:
                self._times.popitem(last=False)

    def get(self, request_id: str) -> float | None:
        with self._lock:
            return self._times.get(request_id)


_requests = _RequestTimes(REQUEST_IDS)


# -- LLM calls ---------------------------------------------------------------------------------------------


def record(
    model: str,
    provider: str = "unknown",
    *,
    operation: str = "chat",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    input_audio_tokens: int = 0,
    cache_audio_read_tokens: int = 0,
    input_image_tokens: int = 0,
    cache_image_read_tokens: int = 0,
    output_reasoning_tokens: int = 0,
    output_audio_tokens: int = 0,
    output_image_tokens: int = 0,
    duration: float | None = None,
    ttft: float | None = None,
    error_type: str | None = None,
    cost_usd: float | None = None,
    tenant: str | None = None,
    timestamp: float | datetime | None = None,
    response_model: str | None = None,
    finish_reasons: str | list[str] | None = None,
    tool_calls: list[str] | None = None,
    chunk_gaps: list[float] | None = None,
    request_id: str | None = None,
    recorder: Recorder | None = None,
) -> Cost | None:
    """Record one LLM call; returns its cost (``None`` when the model has no known price).

    ``input_tokens`` and ``output_tokens`` are totals; the other counts are the parts of them the provider
    reported (see :class:`~exporter.observations.LLMCall`). ``cost_usd`` is a cost the provider billed, used
    as is (``cost_source="provider"``); without it the cost is estimated from the price data.
    ``finish_reasons``: how the answer ended (one, or one per choice: ``stop``, ``length``... or the
    provider's own value, ``end_turn``, ``MAX_TOKENS``); ``tool_calls``: the name of each tool call it asks
    for; ``chunk_gaps``: a stream's seconds between content chunks. A stream's ``ttft`` with its
    ``duration`` and ``output_tokens`` gives its time per output token.
    """
    call = _checked(
        LLMCall,
        model=model,
        provider=provider,
        operation=operation,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        cache_write_1h_tokens=cache_write_1h_tokens,
        input_audio_tokens=input_audio_tokens,
        cache_audio_read_tokens=cache_audio_read_tokens,
        input_image_tokens=input_image_tokens,
        cache_image_read_tokens=cache_image_read_tokens,
        output_reasoning_tokens=output_reasoning_tokens,
        output_audio_tokens=output_audio_tokens,
        output_image_tokens=output_image_tokens,
        duration=duration,
        ttft=ttft,
        error_type=error_type,
        cost_usd=cost_usd,
        tenant=tenant,
        timestamp=timestamp,
        response_model=response_model,
        finish_reasons=finish_reasons,
        tool_calls=tool_calls,
        chunk_gaps=chunk_gaps,
    )
    request_id = _request_id(request_id)
    call.route = current_route()  # the endpoint whose handler made the call, as outbound capture has it
    return _emit(recorder or current_recorder(), call, request_id)


def _emit(rec: Recorder, call: LLMCall, request_id: str | None) -> Cost | None:
    if request_id is not None:
        _requests.put(request_id, call.timestamp if call.timestamp is not None else time.time())
    return rec.llm(call)


# The fields of the LLM call that a Call takes as attributes: its token counts, a given cost, the response model.
_TOKENS = tuple(name for name in LLMCall.FIELDS if name.endswith("_tokens"))
_VALUES = (*_TOKENS, "cost_usd", "response_model", "finish_reasons", "tool_calls")


class _Checked:
    """An attribute of :class:`Call` checked, when set, by the rule of the LLM call's field of the same name."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else obj._values[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        obj._values[self.name] = _check(LLMCall, self.name, value)


class Call:
    """One LLM call being timed: a sync and async context manager (see :func:`call`)."""

    __slots__ = (
        "model",
        "provider",
        "operation",
        "tenant",
        "request_id",
        "error_type",
        "_recorder",
        "_values",
        "_start",
        "_ttft",
        "_seen",
        "_gaps",
        "_reading",
        "_outer",
        "_read",
        "cost",
    )

    def __init__(
        self,
        model: str,
        provider: str | None = None,
        operation: str = "chat",
        tenant: str | None = None,
        *,
        request_id: str | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.model = _check(LLMCall, "model", model)
        self.provider = None if provider is None else _check(LLMCall, "provider", provider)
        self.operation = _check(LLMCall, "operation", operation)
        self.tenant = _check(LLMCall, "tenant", tenant)
        self.request_id = _request_id(request_id)
        self.error_type: str | None = None
        self.cost: Cost | None = None  # set when the call has been recorded
        self._recorder = recorder
        self._values: dict[str, Any] = {name: LLMCall.FIELDS[name].default for name in _VALUES}
        self._start: float | None = None
        self._ttft: float | None = None
        self._seen = 0.0  # when the last chunk came (perf_counter)
        self._gaps: ChunkGaps | None = None
        self._reading: Reading | None = None
        self._outer = False  # whether an enclosing block was open when this one began
        self._read = 0  # provider payloads given to usage()

    # Checked as they are set, so a bad value fails on the caller's line.
    input_tokens = _Checked()
    output_tokens = _Checked()
    cached_input_tokens = _Checked()
    cache_write_tokens = _Checked()
    cache_write_1h_tokens = _Checked()
    input_audio_tokens = _Checked()
    cache_audio_read_tokens = _Checked()
    input_image_tokens = _Checked()
    cache_image_read_tokens = _Checked()
    output_reasoning_tokens = _Checked()
    output_audio_tokens = _Checked()
    output_image_tokens = _Checked()
    cost_usd = _Checked()
    response_model = _Checked()
    finish_reasons = _Checked()  # one or a list (per choice); the provider's values are normalised
    tool_calls = _Checked()  # the names of the tool calls the answer asks for

    def first_token(self) -> None:
        """Mark the arrival of the first output token (streams); later calls are ignored."""
        if self._start is None:
            raise RuntimeError("first_token() is for inside `with llm.call(...)`")
        if self._ttft is None:
            self._seen = now = time.perf_counter()
            self._ttft = now - self._start

    def chunk(self) -> None:
        """Mark the arrival of a content chunk of a stream: the first marks the first token, each later one
        adds its gap since the previous one (one clock read and a bisect, recorded at the end)."""
        if self._ttft is None:
            self.first_token()
            return
        now = time.perf_counter()
        gap = now - self._seen
        self._seen = now
        gaps = self._gaps
        if gaps is None:
            gaps = self._gaps = ChunkGaps()
        gaps.counts[bisect_left(CHUNK_GAP_BUCKETS, gap)] += 1
        gaps.total += gap

    def usage(self, response: Any) -> bool:
        """Take token counts from a response (or a stream event) of OpenAI, Anthropic or Gemini, as a dict
        or SDK object. Called once per stream event, the counts accumulate as the provider reports them.
        Returns whether usage was found; the counts are left as they were when it was not (a provider's
        answer that never shows usage is counted in ``llm_exporter_missing_usage_total``)."""
        reading = read(response)
        if reading is None:
            return False
        self._read += 1
        self._reading = reading if self._reading is None else self._reading.merge(reading)
        r = self._reading
        if not reading.has_usage:
            return False
        self._values.update(zip(COUNT_FIELDS, r.counts(), strict=True))
        if r.cost is not None:  # what the provider billed (OpenRouter's usage.cost...)
            self._values["cost_usd"] = r.cost
        if self.provider is None:
            self.provider = r.provider
        return True

    # -- context manager ----------------------------------------------------------------------------------

    def _begin(self) -> Call:
        if self._recorder is None:
            self._recorder = current_recorder()
        # The block is the record of the LLM calls made in it: outbound capture leaves them alone (no double
        # counting). Set and restored by value, not by token: an async generator may end in another context.
        self._outer = block_var.get()
        block_var.set(True)
        self._start = time.perf_counter()
        return self

    def _end(self, exc: BaseException | None) -> None:
        assert self._start is not None and self._recorder is not None  # set by _begin
        block_var.set(self._outer)
        duration = time.perf_counter() - self._start
        values = dict(self._values)
        if exc is None:
            wrong = LLMCall.cross_check(values)
            if wrong is not None:
                raise InvalidValueError(wrong[0], values[wrong[0]], wrong[1])
        elif self.error_type is None and not isinstance(exc, GeneratorExit):  # a consumer that stopped early
            self.error_type = type(exc).__name__
        r = self._reading
        missing = None
        if r is not None:
            if values["response_model"] is None:
                values["response_model"] = r.model
            # What the caller set wins over what the provider's payloads said.
            if not values["finish_reasons"] and r.finish:
                values["finish_reasons"] = r.finish
            if not values["tool_calls"] and r.tools:
                values["tool_calls"] = r.tool_names()
            # A provider's answer was read, it ended well, and no count came from it or from the caller.
            if self.error_type is None and not r.has_usage and not any(values[n] for n in _TOKENS):
                missing = "stream_without_usage" if self._read > 1 else "response_without_usage"
        provider = self.provider or (r.provider if r is not None else "unknown")
        call = LLMCall(
            model=self.model,
            provider=provider,
            operation=self.operation,
            duration=duration,
            ttft=self._ttft,
            chunk_gaps=self._gaps,
            error_type=self.error_type,
            tenant=self.tenant,
            route=current_route(),  # in place of the outbound calls it stands for, with their route
            missing_usage=missing,
            **values,
        )
        self.cost = _emit(self._recorder, call, self.request_id)

    def __enter__(self) -> Call:
        return self._begin()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end(exc)  # returning None re-raises the body's exception

    async def __aenter__(self) -> Call:
        return self._begin()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end(exc)


def call(
    model: str,
    provider: str | None = None,
    operation: str = "chat",
    tenant: str | None = None,
    *,
    request_id: str | None = None,
    recorder: Recorder | None = None,
) -> Call:
    """Time one LLM call: ``with llm.call(model) as c:`` or ``async with``. An exception in the body is
    recorded as ``error_type`` (its class name) and re-raised. Set ``c.input_tokens`` etc., or call
    ``c.usage(response)``; ``c.first_token()`` marks the time to first token of a stream."""
    return Call(model, provider, operation, tenant, request_id=request_id, recorder=recorder)


def track(
    model: str,
    provider: str | None = None,
    operation: str = "chat",
    tenant: str | None = None,
    *,
    recorder: Recorder | None = None,
) -> Callable[[_F], _F]:
    """Decorator: each call of the function is one LLM call, timed, with usage from what it returns.

    Works on functions, coroutines, generators and async generators; for the generators the call lasts
    until the generator is exhausted, each yielded item is a chunk (the first marks the first token, the
    later ones' gaps are observed), and usage, finish reasons and tool calls are read from the yielded
    items (stream events).
    """
    _check(LLMCall, "model", model)
    if provider is not None:
        _check(LLMCall, "provider", provider)
    _check(LLMCall, "operation", operation)
    _check(LLMCall, "tenant", tenant)

    def new_call() -> Call:
        return Call(model, provider, operation, tenant, recorder=recorder)

    def decorate(fn: _F) -> _F:
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                async with new_call() as c:
                    async for item in fn(*args, **kwargs):
                        c.chunk()
                        c.usage(item)
                        yield item

            return agen_wrapper  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
                with new_call() as c:
                    for item in fn(*args, **kwargs):
                        c.chunk()
                        c.usage(item)
                        yield item

            return gen_wrapper  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with new_call() as c:
                    result = await fn(*args, **kwargs)
                    c.usage(result)
                    return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with new_call() as c:
                result = fn(*args, **kwargs)
                c.usage(result)
                return result

        return wrapper  # type: ignore[return-value]

    return decorate


# -- quality and business signals ----------------------------------------------------------------------------


def confidence(value: float, label: str = "", model: str = "", *, recorder: Recorder | None = None) -> None:
    """A prediction's confidence (0..1) for ``label`` (an intent, a class); also counts the prediction."""
    c = _checked(Confidence, value=value, label=label, model=model)
    (recorder or current_recorder()).confidence(c.value, c.label, c.model)


def evaluation(
    name: str,
    score: float,
    model: str = "",
    timestamp: float | datetime | None = None,
    request_id: str | None = None,
    *,
    recorder: Recorder | None = None,
) -> None:
    """An evaluation score (0..1) such as ``answer_relevancy`` or ``faithfulness``.

    A late result (an async judge) gives the ``timestamp`` of the call it judges, or the ``request_id``
    that call was recorded with (remembered for the last 10,000 ids), so summaries put it in the right
    window. An unknown request id is recorded as of now.
    """
    e = _checked(Evaluation, name=name, score=score, model=model, timestamp=timestamp)
    request_id = _request_id(request_id)
    ts = e.timestamp
    if ts is None and request_id is not None:
        ts = _requests.get(request_id)
    (recorder or current_recorder()).evaluation(e.name, e.score, e.model, ts)


def feedback(rating: float, model: str = "", *, recorder: Recorder | None = None) -> None:
    """A user's rating on the 1..5 scale."""
    f = _checked(Feedback, rating=rating, model=model)
    (recorder or current_recorder()).feedback(f.rating, f.model)


def event(name: str, tenant: str | None = None, count: int = 1, *, recorder: Recorder | None = None) -> None:
    """A business event (``appointment_requested``, ``human_handoff``...)."""
    e = _checked(Event, name=name, tenant=tenant, count=count)
    (recorder or current_recorder()).event(e.name, e.tenant, e.count)


def feature(name: str, value: float | str, *, recorder: Recorder | None = None) -> None:
    """A value of a user-defined drift feature: a number or a category."""
    f = _checked(Feature, name=name, value=value)
    (recorder or current_recorder()).feature(f.name, f.value)
