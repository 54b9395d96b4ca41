"""Window aggregator: per-window summaries of every observation, for the MLflow bridge.

The request path only adds to counters and to log-bucketed quantile sketches of the current window,
under one lock; closing a window hands the raw accumulators to a callback (the bridge's queue) and
the summary (quantiles, means, metric names) is computed later, off the request path.

Memory does not grow with the number of observations: a sketch has one counter per occupied
bucket, and bucket ``i`` covers ``[GAMMA**i, GAMMA**(i+1))``, so positive finite floats occupy at
most a few tens of thousands of buckets and real latencies a few hundred. The number of models,
evaluation names and event names per window is capped.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

# Relative accuracy of the quantile estimates: a bucket's geometric midpoint is within
# sqrt(GAMMA) - 1 (about 1 %) of every value in it.
GAMMA = 1.02
_INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
# Shifts bucket indexes positive so that ``int()`` (truncation) floors; the smallest value kept
# apart from zero is MIN_VALUE, whose index is about -1400.
_OFFSET = 4096
MIN_VALUE = 1e-9
MAX_VALUE = 1e12
_ZERO = 0  # bucket of values <= MIN_VALUE (and of NaN, which must not break the request path)
_TOP = int(math.log(MAX_VALUE) * _INV_LOG_GAMMA + _OFFSET) + 1  # bucket of values >= MAX_VALUE

OVERFLOW = "__overflow__"

Sketch = dict[int, int]  # bucket index -> count


def bucket(value: float) -> int:
    if MIN_VALUE < value < MAX_VALUE:
        return int(math.log(value) * _INV_LOG_GAMMA + _OFFSET)
    return _TOP if value >= MAX_VALUE else _ZERO


def add(sketch: Sketch, value: float) -> None:
    k = bucket(value)
    sketch[k] = sketch.get(k, 0) + 1


def bucket_value(k: int) -> float:
    if k == _ZERO:
        return 0.0
    if k == _TOP:
        return MAX_VALUE
    return math.exp((k - _OFFSET + 0.5) / _INV_LOG_GAMMA)


def quantiles(sketch: Sketch, qs: Iterable[float]) -> list[float]:
    """Nearest-rank quantiles (the smallest value with at least ``q * n`` values at or below it)."""
    n = sum(sketch.values())
    if n == 0:
        return [math.nan for _ in qs]
    keys = sorted(sketch)
    out = []
    for q in qs:
        rank = max(1, math.ceil(q * n - 1e-9))
        cum = 0
        for k in keys:
            cum += sketch[k]
            if cum >= rank:
                out.append(bucket_value(k))
                break
    return out


class ModelStats:
    """What a window knows about one model."""

    __slots__ = (
        "llm_calls",
        "llm_errors",
        "input_tokens",
        "output_tokens",
        "cost",
        "llm_latency",
        "ttft",
        "confidence_sum",
        "confidence_count",
        "feedback_sum",
        "feedback_count",
        "evaluations",
    )

    def __init__(self) -> None:
        self.llm_calls = 0
        self.llm_errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0
        self.llm_latency: Sketch = {}
        self.ttft: Sketch = {}
        self.confidence_sum = 0.0
        self.confidence_count = 0
        self.feedback_sum = 0.0
        self.feedback_count = 0
        self.evaluations: dict[str, list[float]] = {}  # name -> [sum, count]


class Window:
    """The accumulators of one window. ``total`` holds the LLM and quality signals of all models."""

    __slots__ = ("index", "end", "requests", "errors", "latency", "total", "models", "events")

    def __init__(self, index: int, width: float) -> None:
        self.index = index
        self.end = (index + 1) * width
        self.requests = 0
        self.errors = 0
        self.latency: Sketch = {}
        self.total = ModelStats()
        self.models: dict[str, ModelStats] = {}
        self.events: dict[str, int] = {}


# Late evaluations of one closed window: (name, model) -> [sum, count], cumulative.
LateScores = dict[tuple[str, str], list[float]]


class WindowAggregator:
    """Accumulates observations into consecutive windows of ``width`` seconds, aligned to the epoch.

    A window closes when an observation (or :meth:`roll`) brings a time past its end; ``on_close`` is
    then called, under the lock, with the closed window: it must only enqueue. Windows with no
    observations are never opened, so idle periods produce no summaries.

    Evaluations carry the time of what they judged: one for a window that already closed is kept as a
    late result of that window and handed out by :meth:`take_late`. Late results are taken for the
    ``late_windows`` windows before the one ``clock`` is in; an older one (a timestamp of 0, a
    mistaken unit) is dropped and counted in ``late_dropped`` rather than creating a run for its day.
    Other observations with a past time count in the current window; with no window open, one older
    than that horizon opens the window of ``clock``, not a window of its own.
    """

    def __init__(
        self,
        width: float,
        on_close: Callable[[Window], None],
        *,
        max_keys: int = 100,
        late_windows: int = 1440,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.width = width
        self._on_close = on_close
        self._max_keys = max_keys
        self._late_windows = late_windows
        self._clock = clock
        self.late_dropped = 0  # late evaluations older than the horizon
        self._lock = threading.Lock()
        self._current: Window | None = None
        self._closed_before = -(2**62)  # every window with a smaller index is closed or was skipped
        self._late: OrderedDict[int, LateScores] = OrderedDict()
        self._late_changed: set[int] = set()

    # -- the request path ------------------------------------------------------------------------

    def http(self, status: int, duration: float, ts: float) -> None:
        with self._lock:
            w = self._current
            if w is None or ts >= w.end:
                w = self._open(ts)
            w.requests += 1
            if status >= 500:
                w.errors += 1
            # Inlined ``add``: this is the one call made for every HTTP request.
            if MIN_VALUE < duration < MAX_VALUE:
                k = int(math.log(duration) * _INV_LOG_GAMMA + _OFFSET)
            else:
                k = _TOP if duration >= MAX_VALUE else _ZERO
            lat = w.latency
            lat[k] = lat.get(k, 0) + 1

    def llm(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cost: float | None,
        duration: float | None,
        ttft: float | None,
        error: bool,
        ts: float,
    ) -> None:
        with self._lock:
            w = self._current
            if w is None or ts >= w.end:
                w = self._open(ts)
            for s in (w.total, self._model(w, model)):
                if s is None:
                    continue
                s.llm_calls += 1
                if error:
                    s.llm_errors += 1
                s.input_tokens += input_tokens
                s.output_tokens += output_tokens
                if cost:
                    s.cost += cost
                if duration is not None:
                    add(s.llm_latency, duration)
                if ttft is not None:
                    add(s.ttft, ttft)

    def confidence(self, model: str, value: float, ts: float) -> None:
        with self._lock:
            w = self._current
            if w is None or ts >= w.end:
                w = self._open(ts)
            for s in (w.total, self._model(w, model)):
                if s is not None:
                    s.confidence_sum += value
                    s.confidence_count += 1

    def feedback(self, model: str, rating: float, ts: float) -> None:
        with self._lock:
            w = self._current
            if w is None or ts >= w.end:
                w = self._open(ts)
            for s in (w.total, self._model(w, model)):
                if s is not None:
                    s.feedback_sum += rating
                    s.feedback_count += 1

    def evaluation(self, name: str, model: str, score: float, ts: float) -> None:
        index = int(ts // self.width)
        with self._lock:
            w = self._current
            if index < self._closed_before or w is None:  # late, or it would open a window of its own
                if index < self._horizon():
                    self.late_dropped += 1
                    return
                if index < self._closed_before:
                    self._add_late(index, name, model, score)
                    return
            if w is None or ts >= w.end:
                w = self._open(ts)
            for s in (w.total, self._model(w, model)):
                if s is None:
                    continue
                acc = s.evaluations.get(name)
                if acc is None:
                    if len(s.evaluations) >= self._max_keys:
                        name = OVERFLOW
                    acc = s.evaluations.setdefault(name, [0.0, 0])
                acc[0] += score
                acc[1] += 1

    def event(self, name: str, ts: float, count: int = 1) -> None:
        with self._lock:
            w = self._current
            if w is None or ts >= w.end:
                w = self._open(ts)
            events = w.events
            if name not in events and len(events) >= self._max_keys:
                name = OVERFLOW
            events[name] = events.get(name, 0) + count

    # -- the bridge thread ------------------------------------------------------------------------

    def roll(self, now: float) -> None:
        """Close the current window if ``now`` is past its end (the timer path when traffic stops)."""
        with self._lock:
            w = self._current
            if w is not None and now >= w.end:
                self._close(w)
                self._current = None

    def flush(self) -> Window | None:
        """Close the current, partial window and return it instead of calling ``on_close`` (shutdown,
        where the caller may wait for room in its queue, which it must not do under this lock)."""
        with self._lock:
            w = self._current
            if w is not None:
                self._closed_before = w.index + 1
                self._current = None
            return w

    def take_late(self) -> list[tuple[int, LateScores]]:
        """Windows whose late results changed since the last call, with copies of their cumulative scores."""
        with self._lock:
            out = [
                (i, {key: list(acc) for key, acc in self._late[i].items()})
                for i in sorted(self._late_changed)
                if i in self._late
            ]
            self._late_changed.clear()
        return out

    # -- internals (called with the lock held) --------------------------------------------------------

    def _open(self, ts: float) -> Window:
        if self._current is not None:
            if ts < self._current.end:  # a past time: counted in the current window
                return self._current
            self._close(self._current)
        index = int(ts // self.width)
        if index < self._horizon():  # a time long gone (a wrong timestamp): now's window, not one of 1970
            index = int(self._clock() // self.width)
        # Never reopen a closed window; every window before the new one is done (late from now on).
        index = max(index, self._closed_before)
        self._closed_before = index
        w = self._current = Window(index, self.width)
        return w

    def _horizon(self) -> int:
        """The oldest window index that still takes late results."""
        return int(self._clock() // self.width) - self._late_windows

    def _close(self, w: Window) -> None:
        self._closed_before = w.index + 1
        self._on_close(w)

    def _model(self, w: Window, model: str) -> ModelStats | None:
        if not model:
            return None
        s = w.models.get(model)
        if s is None:
            if len(w.models) >= self._max_keys:
                model = OVERFLOW
                s = w.models.get(model)
            if s is None:
                s = w.models[model] = ModelStats()
        return s

    def _add_late(self, index: int, name: str, model: str, score: float) -> None:
        scores = self._late.get(index)
        if scores is None:
            scores = self._late[index] = {}
            while len(self._late) > self._late_windows:
                old, _ = self._late.popitem(last=False)
                self._late_changed.discard(old)
        keys = [(name, "")] + ([(name, model)] if model else [])
        for key in keys:
            acc = scores.get(key)
            if acc is None:
                if len(scores) >= self._max_keys:
                    continue
                acc = scores[key] = [0.0, 0]
            acc[0] += score
            acc[1] += 1
        self._late_changed.add(index)


# -- summaries (the bridge thread) ----------------------------------------------------------------------


_PART_MAX = 100
_DIGEST_CHARS = 10
_ENDS_LIKE_DIGEST = re.compile(rf"_[0-9a-f]{{{_DIGEST_CHARS}}}\Z")


def metric_part(name: str) -> str:
    """A model, evaluation or event name made safe for an MLflow metric key (one path segment), and kept
    distinct: two names never share a part, so ``a?b`` and ``a!b`` are two metrics, not one overwritten.

    A name MLflow takes as it is (letters, digits, ``_-. ``, at most 100 characters, not only dots) is
    its own part. Any other is made safe and given ``_`` and 10 hex digits of a hash of the whole name,
    the same in every window and process; a name that itself ends that way is hashed too, so a
    hashed part never equals a name kept as it is (two hashed ones would need a 40-bit collision).
    """
    safe = "".join(c if c.isalnum() or c in "_-. " else "_" for c in name)
    if safe == name and 0 < len(name) <= _PART_MAX and name.strip(".") and not _ENDS_LIKE_DIGEST.search(name):
        return name
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_CHARS // 2).hexdigest()
    return f"{safe[: _PART_MAX - _DIGEST_CHARS - 1]}_{digest}"


def _model_summary(s: ModelStats, prefix: str, out: dict[str, float]) -> None:
    if s.llm_calls:
        out[prefix + "llm_calls"] = s.llm_calls
        out[prefix + "llm_errors"] = s.llm_errors
        out[prefix + "input_tokens"] = s.input_tokens
        out[prefix + "output_tokens"] = s.output_tokens
        out[prefix + "cost_usd"] = s.cost
    if s.llm_latency:
        p50, p95 = quantiles(s.llm_latency, (0.5, 0.95))
        out[prefix + "llm_latency_p50_seconds"] = p50
        out[prefix + "llm_latency_p95_seconds"] = p95
    if s.ttft:
        out[prefix + "ttft_p95_seconds"] = quantiles(s.ttft, (0.95,))[0]
    if s.confidence_count:
        out[prefix + "confidence_mean"] = s.confidence_sum / s.confidence_count
        out[prefix + "confidence_count"] = s.confidence_count
    for name, (total, count) in s.evaluations.items():
        if count:
            out[f"{prefix}eval_{metric_part(name)}_mean"] = total / count
            out[f"{prefix}eval_{metric_part(name)}_count"] = count
    if s.feedback_count:
        out[prefix + "feedback_mean"] = s.feedback_sum / s.feedback_count
        out[prefix + "feedback_count"] = s.feedback_count


def summarize(w: Window) -> dict[str, float]:
    """The metrics of one closed window. Per-model metrics are ``model/<model>/<metric>``."""
    out: dict[str, float] = {}
    if w.requests:
        out["requests"] = w.requests
        out["errors"] = w.errors
        out["error_rate"] = w.errors / w.requests
        p50, p95, p99 = quantiles(w.latency, (0.5, 0.95, 0.99))
        out["latency_p50_seconds"] = p50
        out["latency_p95_seconds"] = p95
        out["latency_p99_seconds"] = p99
    _model_summary(w.total, "", out)
    for name, count in w.events.items():
        out[f"event_{metric_part(name)}_count"] = count
    for model, stats in w.models.items():
        _model_summary(stats, f"model/{metric_part(model)}/", out)
    return out


def summarize_late(scores: LateScores) -> dict[str, float]:
    """Cumulative late evaluation results of one window: ``eval_<name>_late_mean`` / ``_late_count``."""
    out: dict[str, float] = {}
    for (name, model), (total, count) in scores.items():
        if not count:
            continue
        prefix = f"model/{metric_part(model)}/" if model else ""
        out[f"{prefix}eval_{metric_part(name)}_late_mean"] = total / count
        out[f"{prefix}eval_{metric_part(name)}_late_count"] = count
    return out
