"""Record LLM calls and AI signals from inside handlers: ``from exporter import llm``.

    with llm.call("gpt-4o", provider="openai") as c:        # or ``async with``
        response = client.chat.completions.create(...)
        c.usage(response)                                   # tokens from an OpenAI / Anthropic / Gemini response

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
import math
import operator
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from .capture.usage import Reading, read
from .context import current_recorder
from .labels import NOT_UTF8, is_utf8
from .observations import Cost, LLMCall
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

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}: expected {expected}, got {value!r}")


# -- validation -----------------------------------------------------------------------------------------


def _name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(field, value, "a non-empty string")
    if not is_utf8(value):
        raise InvalidValueError(field, value, NOT_UTF8)
    return value


def _opt_str(field: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidValueError(field, value, "a string or None")
    if value and not is_utf8(value):
        raise InvalidValueError(field, value, NOT_UTF8)
    return value or None


def _tokens(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidValueError(field, value, "an integer >= 0")
    try:
        n = operator.index(value)
    except TypeError:
        raise InvalidValueError(field, value, "an integer >= 0") from None
    if n < 0:
        raise InvalidValueError(field, value, "an integer >= 0")
    return n


def _number(field: str, value: Any, low: float, high: float, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(field, value, expected)
    v = float(value)
    if not (low <= v <= high) or not math.isfinite(v):  # the comparison also rejects NaN
        raise InvalidValueError(field, value, expected)
    return v


def _seconds(field: str, value: Any) -> float | None:
    return None if value is None else _number(field, value, 0.0, math.inf, "a finite duration in seconds >= 0")


def _timestamp(field: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return _number(field, value, 0.0, 1e11, "a Unix timestamp in seconds or a datetime")


def _cached(cached: int, total: int) -> None:
    if cached > total:
        raise InvalidValueError(
            "cached_input_tokens", cached, f"at most input_tokens ({total}): cached tokens are part of the input"
        )


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
    duration: float | None = None,
    ttft: float | None = None,
    error_type: str | None = None,
    cost_usd: float | None = None,
    tenant: str | None = None,
    timestamp: float | datetime | None = None,
    request_id: str | None = None,
    recorder: Recorder | None = None,
) -> Cost | None:
    """Record one LLM call; returns its cost (``None`` when the model has no known price)."""
    call = LLMCall(
        model=_name("model", model),
        provider=_name("provider", provider),
        operation=_name("operation", operation),
        input_tokens=_tokens("input_tokens", input_tokens),
        output_tokens=_tokens("output_tokens", output_tokens),
        cached_input_tokens=_tokens("cached_input_tokens", cached_input_tokens),
        duration=_seconds("duration", duration),
        ttft=_seconds("ttft", ttft),
        error_type=_opt_str("error_type", error_type),
        cost_usd=None if cost_usd is None else _number("cost_usd", cost_usd, 0.0, 1e9, "a cost in USD >= 0"),
        tenant=_opt_str("tenant", tenant),
        timestamp=_timestamp("timestamp", timestamp),
    )
    _cached(call.cached_input_tokens, call.input_tokens)
    request_id = _opt_str("request_id", request_id)
    return _emit(recorder or current_recorder(), call, request_id)


def _emit(rec: Recorder, call: LLMCall, request_id: str | None) -> Cost | None:
    if request_id is not None:
        _requests.put(request_id, call.timestamp if call.timestamp is not None else time.time())
    return rec.llm(call)


def _cost(field: str, value: Any) -> float | None:
    return None if value is None else _number(field, value, 0.0, 1e9, "a cost in USD >= 0")


class _Checked:
    """An attribute whose value goes through ``check(name, value)`` when set, stored in ``slot``."""

    def __init__(self, slot: str, check: Callable[[str, Any], Any]) -> None:
        self.slot = slot
        self.check = check
        self.name = slot

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj, self.slot, self.check(self.name, value))


class Call:
    """One LLM call being timed: a sync and async context manager (see :func:`call`)."""

    __slots__ = (
        "model",
        "provider",
        "operation",
        "tenant",
        "request_id",
        "error_type",
        "_cost_usd",
        "_recorder",
        "_input",
        "_output",
        "_cached",
        "_start",
        "_ttft",
        "_reading",
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
        self.model = _name("model", model)
        self.provider = None if provider is None else _name("provider", provider)
        self.operation = _name("operation", operation)
        self.tenant = _opt_str("tenant", tenant)
        self.request_id = _opt_str("request_id", request_id)
        self.error_type: str | None = None
        self.cost: Cost | None = None  # set when the call has been recorded
        self._cost_usd: float | None = None
        self._recorder = recorder
        self._input = 0
        self._output = 0
        self._cached = 0
        self._start: float | None = None
        self._ttft: float | None = None
        self._reading: Reading | None = None

    # Checked as they are set, so a bad value fails on the caller's line.
    input_tokens = _Checked("_input", _tokens)
    output_tokens = _Checked("_output", _tokens)
    cached_input_tokens = _Checked("_cached", _tokens)
    cost_usd = _Checked("_cost_usd", _cost)

    def first_token(self) -> None:
        """Mark the arrival of the first output token (streams); later calls are ignored."""
        if self._start is None:
            raise RuntimeError("first_token() is for inside `with llm.call(...)`")
        if self._ttft is None:
            self._ttft = time.perf_counter() - self._start

    def usage(self, response: Any) -> bool:
        """Take token counts from a response (or a stream event) of OpenAI, Anthropic or Gemini, as a dict
        or SDK object. Called once per stream event, the counts accumulate as the provider reports them.
        Returns whether usage was found; the counts are left as they were when it was not."""
        reading = read(response)
        if reading is None:
            return False
        self._reading = reading if self._reading is None else self._reading.merge(reading)
        r = self._reading
        if not reading.has_usage:
            return False
        self._input = r.input_tokens
        self._output = r.output_tokens
        self._cached = r.cached_input_tokens
        if self.provider is None:
            self.provider = r.provider
        return True

    # -- context manager ----------------------------------------------------------------------------------

    def _begin(self) -> Call:
        if self._recorder is None:
            self._recorder = current_recorder()
        self._start = time.perf_counter()
        return self

    def _end(self, exc: BaseException | None) -> None:
        assert self._start is not None and self._recorder is not None  # set by _begin
        duration = time.perf_counter() - self._start
        if exc is None:
            _cached(self._cached, self._input)
        elif self.error_type is None and not isinstance(exc, GeneratorExit):  # a consumer that stopped early
            self.error_type = type(exc).__name__
        provider = self.provider or (self._reading.provider if self._reading is not None else "unknown")
        call = LLMCall(
            model=self.model,
            provider=provider,
            operation=self.operation,
            input_tokens=self._input,
            output_tokens=self._output,
            cached_input_tokens=min(self._cached, self._input),
            duration=duration,
            ttft=self._ttft,
            error_type=self.error_type,
            cost_usd=self._cost_usd,
            tenant=self.tenant,
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
    until the generator is exhausted, the first yielded item marks the first token, and usage is read
    from the yielded items (stream events).
    """
    _name("model", model)
    if provider is not None:
        _name("provider", provider)
    _name("operation", operation)
    _opt_str("tenant", tenant)

    def new_call() -> Call:
        return Call(model, provider, operation, tenant, recorder=recorder)

    def decorate(fn: _F) -> _F:
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                async with new_call() as c:
                    async for item in fn(*args, **kwargs):
                        c.first_token()
                        c.usage(item)
                        yield item

            return agen_wrapper  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
                with new_call() as c:
                    for item in fn(*args, **kwargs):
                        c.first_token()
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
    v = _number("value", value, 0.0, 1.0, "a confidence between 0 and 1")
    label = _opt_str("label", label) or ""
    model = _opt_str("model", model) or ""
    (recorder or current_recorder()).confidence(v, label, model)


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
    name = _name("name", name)
    s = _number("score", score, 0.0, 1.0, "a score between 0 and 1")
    model = _opt_str("model", model) or ""
    ts = _timestamp("timestamp", timestamp)
    request_id = _opt_str("request_id", request_id)
    if ts is None and request_id is not None:
        ts = _requests.get(request_id)
    (recorder or current_recorder()).evaluation(name, s, model, ts)


def feedback(rating: float, model: str = "", *, recorder: Recorder | None = None) -> None:
    """A user's rating on the 1..5 scale."""
    r = _number("rating", rating, 1.0, 5.0, "a rating between 1 and 5")
    model = _opt_str("model", model) or ""
    (recorder or current_recorder()).feedback(r, model)


def event(name: str, tenant: str | None = None, count: int = 1, *, recorder: Recorder | None = None) -> None:
    """A business event (``appointment_requested``, ``human_handoff``...)."""
    name = _name("name", name)
    tenant = _opt_str("tenant", tenant)
    n = _tokens("count", count)
    if n < 1:
        raise InvalidValueError("count", count, "an integer >= 1")
    (recorder or current_recorder()).event(name, tenant, n)


def feature(name: str, value: float | str, *, recorder: Recorder | None = None) -> None:
    """A value of a user-defined drift feature: a number or a category."""
    name = _name("name", name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValueError("value", value, "a number or a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValueError("value", value, "a finite number or a string")
    (recorder or current_recorder()).feature(name, value)
