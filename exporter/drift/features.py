"""The per-feature drift state: a ring of time slots shared by every feature, and each feature's bin
counts against its baseline. The request path only increments one counter per observation here.

A baseline learnt from the first ``baseline_size`` observations is built on the scoring thread, never on
the request that completes it (sorting 100,000 values and cutting them into bins takes tens of ms):
that request hands the values over (:meth:`_Ring.ready`), and observations that arrive before the
thread has built the baseline wait in a bounded backlog, counted once it is.
"""

from __future__ import annotations

import logging
import math
import threading
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import DRIFT_FEATURES, DriftConfig
from .stats import Baseline, CategoricalBaseline, NumericBaseline, js_distance, ks, mass_groups, psi, regroup

if TYPE_CHECKING:
    pass


log = logging.getLogger("exporter.drift")

NUMERIC = frozenset(("input_tokens", "output_tokens", "request_duration", "confidence"))
BUILTIN = frozenset(DRIFT_FEATURES)
MAX_SLOTS = 120  # a finer ring buys little: a slot is at least window / 120 wide
MAX_NAME = 200
_NEVER = -(1 << 62)
_DRAIN_SECONDS = 1.0  # how often queued request durations reach their feature
_QUEUE_MAX = 100_000  # queued request durations at most (100k requests per second per process)
_BACKLOG_MAX = 100_000  # observations of one feature held while its baseline is being built


class _Ring:
    """Time slots shared by every feature: row ``i`` of each feature counts absolute slot ``epochs[i]``
    (``int(ts / width)``). Rows are zeroed for all features at once when a slot is reused."""

    def __init__(self, cfg: DriftConfig, clock: Callable[[], float], on_first_claim: Callable[[], None]) -> None:
        self.size = min(MAX_SLOTS, max(1, round(cfg.window_seconds / cfg.score_interval_seconds)))
        self.width = cfg.window_seconds / self.size
        self.epochs = [_NEVER] * self.size
        self.lock = threading.Lock()
        self.members: list[_Feature] = []
        self.clock = clock
        self._on_first_claim: Callable[[], None] | None = on_first_claim
        self._wake = on_first_claim  # starts the scoring thread (idempotent)
        self.to_build: deque[_Feature] = deque()  # features whose baseline values are complete

    def claim(self, i: int, n: int) -> bool:
        """Make row ``i`` hold slot ``n``; False when the observation must be dropped."""
        with self.lock:
            current = self.epochs[i]
            if current != n:
                if n < current:
                    return False  # older than what the row already holds: far outside the window
                if n > int(self.clock() / self.width) + 1:
                    return False  # a timestamp from the future would wipe live data
                for feature in self.members:
                    feature.clear(i)
                self.epochs[i] = n
            start, self._on_first_claim = self._on_first_claim, None
        if start is not None:
            start()
        return True

    def join(self, feature: _Feature, bins: int) -> None:
        with self.lock:
            feature.rows = [array("I", bytes(4 * bins)) for _ in range(self.size)]
            feature.zeros = array("I", bytes(4 * bins))
            self.members.append(feature)

    def ready(self, feature: _Feature) -> None:
        """``feature`` has all its baseline values: the scoring thread builds the baseline."""
        self.to_build.append(feature)
        self._wake()

    def build_ready(self) -> None:
        """Build the baselines handed over so far (the scoring thread, or a caller that needs them now)."""
        while self.to_build:
            try:
                feature = self.to_build.popleft()
            except IndexError:  # another caller took the last one
                return
            feature.build()

    def window(self, now: float) -> list[int]:
        """Rows inside the window that ends at ``now``: the current slot and the ``size - 1`` before it."""
        n = int(now / self.width)
        return [i for i, e in enumerate(self.epochs) if n - self.size < e <= n]


def _normalize(value: object) -> float | str | None:
    """A user feature value that is not exactly float, int or str: flags are categories (not 0 and 1),
    numpy scalars and the like are numbers, str subclasses are strings; anything else is dropped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class _Feature:
    kind = ""
    numeric = False

    def __init__(self, name: str, ring: _Ring, cfg: DriftConfig) -> None:
        self.name = name
        self.ring = ring
        self.cfg = cfg
        self.rows: list[array[int]] = []
        self.zeros: array[int] = array("I")
        self.lock = threading.Lock()
        self.baseline: Baseline | None = None
        self.unseen = 0
        # Observations that arrive between the last baseline value and the baseline (their value and time).
        self.backlog: deque[tuple[Any, float]] | None = None

    def clear(self, i: int) -> None:
        self.rows[i][:] = self.zeros

    def window_counts(self, slots: list[int]) -> list[int]:
        rows = self.rows
        return [sum(column) for column in zip(*(rows[i] for i in slots), strict=True)] if slots else []

    def row(self, ts: float) -> array[int] | None:
        """The counters of the time slot of ``ts`` (claimed for it), or None when it must be dropped."""
        ring = self.ring
        n = int(ts / ring.width)
        i = n % ring.size
        if ring.epochs[i] != n and not ring.claim(i, n):
            return None
        return self.rows[i]

    def observe(self, value: Any, ts: float) -> None:
        raise NotImplementedError

    def observe_all(self, values: list[Any], ts: float) -> None:
        """Observe each of ``values``, all made at ``ts``."""
        for value in values:
            self.observe(value, ts)

    def collect(self) -> None:
        """Build the baseline from the next ``baseline_size`` observations."""
        raise NotImplementedError

    def build(self) -> None:
        """Build the baseline from the values collected (the scoring thread), then count the backlog."""
        with self.lock:
            baseline = self._baseline_of_collected()
            if baseline is None:
                return
            self.set_baseline(baseline)
        backlog = self.backlog
        if backlog is not None:
            while backlog:
                self.observe(*backlog.popleft())
            self.backlog = None

    def _baseline_of_collected(self) -> Baseline | None:
        raise NotImplementedError

    def _hand_over(self) -> None:
        """The last baseline value came in (on a request, with the lock held): the thread takes it from here."""
        self.backlog = deque(maxlen=_BACKLOG_MAX)
        self.ring.ready(self)

    def set_baseline(self, baseline: Baseline) -> None:
        raise NotImplementedError

    def scores(self, recent: list[int]) -> dict[str, float]:
        raise NotImplementedError


class _Numeric(_Feature):
    kind = "numeric"
    numeric = True

    def __init__(self, name: str, ring: _Ring, cfg: DriftConfig) -> None:
        super().__init__(name, ring, cfg)
        self.edges: list[float] | None = None  # set last: the hot path counts once it is not None
        self.pending: list[float] | None = None
        self.collected: list[float] | None = None  # the baseline values, until the thread builds from them
        self.groups: list[int] = []
        self.coarse: list[float] = []

    def collect(self) -> None:
        self.pending = []

    def observe(self, x: float, ts: float) -> None:
        edges = self.edges
        if edges is None:
            if self.pending is not None:
                self._collect(x)
            elif self.backlog is not None:
                self.backlog.append((x, ts))
            return
        if x != x:  # NaN has no bin
            return
        row = self.row(ts)
        if row is not None:
            row[bisect_right(edges, x)] += 1

    def observe_all(self, values: list[float], ts: float) -> None:
        # The request durations drained each second, one per request: their slot is claimed once and the
        # loop is inline, about half the CPU of an observe() call each.
        edges = self.edges
        if edges is None:
            super().observe_all(values, ts)  # still collecting the baseline (or waiting for it)
            return
        row = self.row(ts)
        if row is None:
            return
        for x in values:
            if x == x:  # NaN has no bin
                row[bisect_right(edges, x)] += 1

    def _collect(self, x: float) -> None:
        if not math.isfinite(x):
            return
        with self.lock:
            pending = self.pending
            if pending is None:
                return
            pending.append(float(x))
            if len(pending) >= self.cfg.baseline_size:
                self.collected, self.pending = pending, None
                self._hand_over()

    def _baseline_of_collected(self) -> Baseline | None:
        values, self.collected = self.collected, None
        return None if values is None else NumericBaseline.from_values(values, self.cfg.resolution)

    def set_baseline(self, baseline: Baseline) -> None:
        assert isinstance(baseline, NumericBaseline)
        self.groups = mass_groups(baseline.counts, self.cfg.bins)
        self.coarse = regroup(baseline.counts, self.groups)
        self.ring.join(self, len(baseline.counts))
        self.baseline = baseline
        self.edges = list(baseline.edges)

    def scores(self, recent: list[int]) -> dict[str, float]:
        assert isinstance(self.baseline, NumericBaseline)
        coarse = regroup(recent, self.groups)
        return {
            "psi": psi(self.coarse, coarse, self.cfg.epsilon),
            "ks": ks(self.baseline.counts, recent),
            "js": js_distance(self.coarse, coarse),
        }


class _Categorical(_Feature):
    kind = "categorical"

    def __init__(self, name: str, ring: _Ring, cfg: DriftConfig) -> None:
        super().__init__(name, ring, cfg)
        self.index: dict[str, int] | None = None  # set last: the hot path counts once it is not None
        self.other = 0
        self.pending: dict[str, int] | None = None
        self.pending_n = 0
        self.collected: dict[str, int] | None = None

    def collect(self) -> None:
        self.pending = {}

    def observe(self, value: str, ts: float) -> None:
        index = self.index
        if index is None:
            if self.pending is not None:
                self._collect(value)
            elif self.backlog is not None:
                self.backlog.append((value, ts))
            return
        row = self.row(ts)
        if row is None:
            return
        b = index.get(value, self.other)
        if b == self.other:
            self.unseen += 1
        row[b] += 1

    def _collect(self, value: str) -> None:
        with self.lock:
            pending = self.pending
            if pending is None:
                return
            pending[value] = pending.get(value, 0) + 1
            self.pending_n += 1
            if self.pending_n >= self.cfg.baseline_size:
                self.collected, self.pending = pending, None
                self._hand_over()

    def _baseline_of_collected(self) -> Baseline | None:
        counts, self.collected = self.collected, None
        return None if counts is None else CategoricalBaseline.from_counts(counts, self.cfg.max_categories)

    def set_baseline(self, baseline: Baseline) -> None:
        assert isinstance(baseline, CategoricalBaseline)
        self.other = len(baseline.categories)
        self.ring.join(self, self.other + 1)
        self.baseline = baseline
        self.index = {c: i for i, c in enumerate(baseline.categories)}

    def scores(self, recent: list[int]) -> dict[str, float]:
        assert isinstance(self.baseline, CategoricalBaseline)
        base = self.baseline.counts
        return {"psi": psi(base, recent, self.cfg.epsilon), "js": js_distance(base, recent)}
