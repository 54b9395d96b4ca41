"""The lock-free fast path: the only module that touches prometheus_client's internals.

Values without a mutex for children written from the event loop's thread, values with one lock-free
writer for children any thread may write, and observe/add callables that skip prometheus_client's
per-call checks. Each falls back to the public API when the client's internals are not the shape this
module expects.
"""

from __future__ import annotations

import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.samples import Exemplar
from prometheus_client.validation import _validate_labelname
from prometheus_client.values import MutexValue

_Metric = TypeVar("_Metric", Counter, Gauge, Histogram)


class FastValue:
    """A metric value without a lock, for the HTTP request path.

    prometheus_client guards every value with a mutex (~70 ns per update). These values are written
    only by the middleware, from the event loop's thread, and ``+=`` on a float or int attribute does not
    release the GIL, so the lock buys nothing there. LLM and quality metrics, which handlers may record
    from thread pools, keep prometheus_client's locked values; free-threaded builds and multiprocess
    mode keep theirs everywhere (see :func:`unlocked`).
    """

    __slots__ = ("_value", "_exemplar")

    def __init__(self, value: float = 0.0) -> None:
        self._value = value
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        self._value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._value = value

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> Any:
        return self._exemplar


_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()


class SharedValue:
    """A metric value with one lock-free writer, the owner thread, and locked writes from any other.

    The LLM and quality series are written from the event loop (capture, async handlers) and from threads
    (sync handlers in a thread pool, ``/track`` workers). The owner, and only the owner, adds to ``_value``
    with a plain ``+=`` (see :func:`owned_adder`): a single writer loses nothing, with or without the GIL.
    Every other thread goes through :meth:`inc`, which adds to a second float, ``_others``, under a lock, so
    the two kinds of writer never touch the same attribute. A scrape reads the sum of both.
    """

    __slots__ = ("_value", "_others", "_lock", "_exemplar")

    def __init__(self, value: float = 0.0) -> None:
        self._value = value
        self._others = 0.0
        self._lock = threading.Lock()
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        with self._lock:
            self._others += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        with self._lock:
            self._others = value - self._value

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar  # one reference stored: atomic

    def get(self) -> float:
        return self._value + self._others

    def get_exemplar(self) -> Any:
        return self._exemplar


def shared(child: _Metric) -> _Metric:
    """Give ``child`` :class:`SharedValue` values, once, before anything holds its values (idempotent).

    Multiprocess mode's values (files) are left as they are: they take their own lock, and
    :func:`owned_adder` / :func:`owned_observer` then fall back to the public calls.
    """
    if type(getattr(child, "_value", getattr(child, "_sum", None))) is not MutexValue:
        return child  # converted already (or not prometheus_client's in-process values)
    with _converting:  # two threads making the same child: one converts, the other sees it done
        return _replace_values(child, SharedValue)


_converting = threading.Lock()


def owned_adder(child: Counter) -> Callable[[float], None] | None:
    """For the owner thread of ``child``'s :class:`SharedValue`: an add without a lock; None when the child
    is not of that shape (multiprocess mode), which then takes the public calls."""
    value = getattr(child, "_value", None)
    if type(value) is not SharedValue:
        return None
    shared_value: SharedValue = value

    def add(amount: float) -> None:
        shared_value._value += amount

    return add


def owned_observer(child: Histogram) -> Callable[[float], None] | None:
    """For the owner thread of ``child``'s :class:`SharedValue` values: an observe without a lock; None
    when the child is not of that shape."""
    parts = _parts(child)
    if parts is None or not _all_of(parts, SharedValue):
        return None
    bounds, buckets, total = parts
    owned: list[Any] = buckets
    whole: Any = total

    def observe(value: float) -> None:
        whole._value += value
        owned[bisect_left(bounds, value)]._value += 1

    return observe


def owned_exemplar_observer(child: Histogram) -> Callable[[float, dict[str, str]], None] | None:
    """As :func:`owned_observer`, with an exemplar (see :func:`exemplar_ok`) on the bucket observed, as
    ``child.observe(value, exemplar)`` stores it. Also for a child with :class:`FastValue` values (the HTTP
    path's, which has one writer too). None when the child is neither shape."""
    parts = _parts(child)
    if parts is None or not (_all_of(parts, SharedValue) or _all_of(parts, FastValue)):
        return None
    bounds, buckets, total = parts
    owned: list[Any] = buckets
    whole: Any = total

    def observe_with(value: float, exemplar: dict[str, str]) -> None:
        whole._value += value
        bucket = owned[bisect_left(bounds, value)]
        bucket._value += 1
        bucket._exemplar = _exemplar(exemplar, value, time.time())

    return observe_with


if issubclass(Exemplar, tuple) and Exemplar._fields == ("labels", "value", "timestamp"):

    def _exemplar(labels: dict[str, str], value: float, timestamp: float) -> Exemplar:
        # The named tuple made in C: its generated __new__ is a Python call, a third of an exemplar's cost.
        return tuple.__new__(Exemplar, (labels, value, timestamp))

else:  # pragma: no cover - prometheus_client's Exemplar is no longer that named tuple
    _exemplar = Exemplar


_GOOD_NAMES: set[str] = set()  # exemplar label names already checked (a few: trace_id, span_id)


_LAST_OK: list[dict[str, str] | None] = [None]  # the exemplar last found good: a source hands the same one again


def exemplar_ok(exemplar: dict[str, str]) -> bool:
    """Whether prometheus_client would take ``exemplar`` (label names, at most 128 characters in all): its
    check, with the names remembered once checked. One that fails goes through the public call, which says why.
    The exemplar last found good is not checked again: the OpenTelemetry source hands out one per span, to
    the HTTP duration and then to each LLM call of the request (an exemplar is never changed once given)."""
    if exemplar is _LAST_OK[0]:
        return True
    runes = 0
    for name, value in exemplar.items():
        if name not in _GOOD_NAMES:
            try:
                _validate_labelname(name)
            except ValueError:
                return False
            if len(_GOOD_NAMES) < 100:
                _GOOD_NAMES.add(name)
        runes += len(name) + len(value)
    if runes > 128:
        return False
    _LAST_OK[0] = exemplar
    return True


def unlocked(child: _Metric) -> _Metric:
    """Give ``child`` lock-free values (see :class:`FastValue`) where that is safe; else leave it as it is."""
    return child if not _GIL else _replace_values(child, FastValue)


def _replace_values(child: _Metric, make: Callable[[float], Any]) -> _Metric:
    """``child`` with its prometheus_client values (``MutexValue``) replaced by ``make(value)``."""
    for name in ("_value", "_sum"):
        value = getattr(child, name, None)
        if type(value) is MutexValue:
            setattr(child, name, make(value.get()))
    buckets = getattr(child, "_buckets", None)
    if buckets and all(type(b) is MutexValue for b in buckets):
        setattr(child, "_buckets", [make(b.get()) for b in buckets])  # noqa: B010 - private, on purpose
    return child


def observer(child: Histogram) -> Callable[[float], None]:
    """A faster ``child.observe`` for the request path: a bisect instead of prometheus_client's linear
    scan and wrapper checks. Same values, same storage (multiprocess too). Falls back to ``observe`` if
    the client's internals ever change shape."""
    parts = _parts(child)
    if parts is None:
        return child.observe
    bounds, buckets, total = parts
    if _all_of(parts, FastValue):
        fast: list[Any] = buckets

        def observe_unlocked(value: float) -> None:
            total._value += value
            fast[bisect_left(bounds, value)]._value += 1

        return observe_unlocked

    def observe(value: float) -> None:
        total.inc(value)
        buckets[bisect_left(bounds, value)].inc(1)

    return observe


def http_observer(duration: Histogram, request: Histogram, response: Histogram) -> Callable[[float, int, int], None]:
    """One call that observes a request's duration, request size and response size: the three histograms
    of one (method, route, status) child set, updated without three calls' overhead."""
    parts = [_parts(h) for h in (duration, request, response)]
    if not all(p is not None and _all_of(p, FastValue) for p in parts):
        each = (observer(duration), observer(request), observer(response))

        def observe_each(seconds: float, received: int, sent: int) -> None:
            each[0](seconds)
            each[1](received)
            each[2](sent)

        return observe_each
    (d_bounds, d_buckets, d_sum), (q_bounds, q_buckets, q_sum), (r_bounds, r_buckets, r_sum) = parts  # type: ignore[misc]

    def observe_all(seconds: float, received: int, sent: int) -> None:
        d_sum._value += seconds
        d_buckets[bisect_left(d_bounds, seconds)]._value += 1
        q_sum._value += received
        q_buckets[bisect_left(q_bounds, received)]._value += 1
        r_sum._value += sent
        r_buckets[bisect_left(r_bounds, sent)]._value += 1

    return observe_all


def _parts(child: Histogram) -> tuple[list[float], list[Any], Any] | None:
    """A histogram child's bucket bounds, bucket values and sum value; None if they are not that shape."""
    try:
        bounds = list(child._upper_bounds)
        buckets = child._buckets
        total = child._sum
    except AttributeError:
        return None
    if len(bounds) != len(buckets) or bounds[-1] != float("inf"):
        return None
    return bounds, buckets, total


def _all_of(parts: tuple[list[float], list[Any], Any], kind: type) -> bool:
    """Whether a histogram's sum and bucket values are all of type ``kind``."""
    _, buckets, total = parts
    return type(total) is kind and all(type(b) is kind for b in buckets)


def adder(child: Gauge | Counter) -> Callable[[float], None]:
    """``child.inc`` without the per-call mode checks (livesum gauges in multiprocess mode included)."""
    value: Any = getattr(child, "_value", None)
    return value.inc if value is not None and hasattr(value, "inc") else child.inc


def binned_observer(child: Histogram) -> Callable[[list[int], float], None]:
    """Adds observations binned elsewhere to ``child``: ``counts`` by the child's own bounds (+Inf last) and
    their ``total``. A stream's chunk gaps are binned as they come and added once, at its end. Falls back
    to observing the mean that many times (the sum exact, the buckets not) if the client's internals change
    shape."""
    parts = _parts(child)
    if parts is None:

        def observe_mean(counts: list[int], total: float) -> None:
            n = sum(counts)
            for _ in range(n):
                child.observe(total / n)

        return observe_mean
    _, buckets, total_value = parts

    def add(counts: list[int], total: float) -> None:
        total_value.inc(total)
        for bucket, n in zip(buckets, counts, strict=False):
            if n:
                bucket.inc(n)

    return add
