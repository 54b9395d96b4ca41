"""Drift detection: the recent window of each feature against its baseline, exported as gauges.

The request path only increments one bin counter per feature (a bisect over the baseline's bin edges,
or a dictionary look-up for categories) in a ring of time slots, one slot per scoring interval across
the sliding window; memory per feature is fixed once the baseline is. A daemon thread scores every
``score_interval_seconds``: PSI, KS (numeric) and Jensen-Shannon distance, set as
``llm_drift_score{feature, method}`` once the window holds ``min_samples`` observations.

When the window falls below ``min_samples`` again, the feature's samples are removed so that no stale
score keeps an alert firing. In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) prometheus_client
cannot remove a sample from its shared files, so both gauges are set to NaN instead: NaN never passes
a threshold comparison (``llm_drift_score > 0.2`` is false), so the alert resolves all the same.

Built-in feature names left out of ``drift.features`` are ignored when they arrive as user features
(``Recorder.prediction`` sends ``predicted_label``): they never take a ``max_user_features`` slot.

Counters are incremented without a lock: under heavy thread contention an increment can very rarely be
lost, which moves a distribution by far less than its sampling noise, and keeps the hot path at a few
hundred nanoseconds. Slot rotation, baseline fixing and feature creation are rare and locked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from ..config import DRIFT_FEATURES, ConfigError, DriftConfig
from ..labels import is_utf8
from ..observations import Cost, LLMCall
from ..sinks import DriftOutput, Sink
from .baseline import load_baseline, load_mlflow_baseline
from .features import (
    _DRAIN_SECONDS,
    _QUEUE_MAX,
    BUILTIN,
    MAX_NAME,
    NUMERIC,
    _Categorical,
    _Feature,
    _normalize,
    _Numeric,
    _Ring,
)
from .stats import Baseline

log = logging.getLogger("exporter.drift")


class DriftSink(Sink):
    """Feeds the drift features from the recorder's observations and scores them off the request path.

    ``clock`` (wall-clock seconds) decides which time slots form the window; tests inject one.
    """

    def __init__(
        self,
        config: DriftConfig,
        output: DriftOutput,
        *,
        tracking_uri: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``output`` takes the scores (the recorder's drift gauges); ``tracking_uri`` is the MLflow store a
        ``baseline_mlflow_run`` is read from, the one the bridge writes to."""
        cfg = self.config = config
        self._output = output
        self._clock = clock
        self._ring = _Ring(cfg, clock, self._ensure_thread)
        self._features: dict[str, _Feature] = {}
        self._user_features = 0
        self._lock = threading.Lock()  # feature creation, thread start
        self._queued_calls: Callable[[], None] = _nothing  # the recorder's queue of LLM calls, once it starts
        self._score_lock = threading.Lock()
        self._scores: dict[str, dict[str, float]] = {}
        self._exported: dict[str, tuple[str, ...]] = {}
        self._unseen_flushed: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._mlflow_pending = cfg.baseline_mlflow_run is not None
        self._tracking_uri = tracking_uri
        self._mlflow_error: str | None = None
        for name in cfg.features:
            self._features[name] = self._new_feature(name, name in NUMERIC)
        if cfg.baseline_file is None and not self._mlflow_pending:
            self._apply({}, "")  # learn the baselines from the first observations
        get = self._features.get
        # Bounded: past this many requests between two drains, the oldest durations give way.
        self._durations: deque[float] = deque(maxlen=_QUEUE_MAX)
        self._input_tokens, self._output_tokens = get("input_tokens"), get("output_tokens")
        self._duration, self._confidence = get("request_duration"), get("confidence")
        self._label, self._model = get("predicted_label"), get("model")

    def start(self) -> None:
        """Read the baseline file, export the thresholds, start the scoring thread (which fetches a baseline
        from MLflow, never the request path). Idempotent; a bad baseline file raises ConfigError."""
        with self._lock:
            if self._started:
                return
            cfg = self.config
            if cfg.baseline_file is not None:
                self._apply(load_baseline(cfg.baseline_file, limits=self._limits()), cfg.baseline_file)
            self._started = True
        self._output.thresholds({m: getattr(cfg, f"{m}_threshold") for m in ("psi", "ks", "js")})
        self._ensure_thread()

    def _limits(self) -> tuple[int, int]:
        """Most features and categories a baseline may have."""
        return len(DRIFT_FEATURES) + self.config.max_user_features, self.config.max_categories

    def _new_feature(self, name: str, numeric: bool) -> _Feature:
        return (_Numeric if numeric else _Categorical)(name, self._ring, self.config)

    def _apply(self, baselines: dict[str, Baseline], source: str) -> None:
        """Set these baselines, adding user features for the unknown names; every other feature collects
        its first ``baseline_size`` observations. Checks everything before changing anything."""
        cfg = self.config
        wanted = {n: b for n, b in baselines.items() if n not in DRIFT_FEATURES or n in cfg.features}
        for name, b in wanted.items():
            f = self._features.get(name)
            if f is not None and f.kind != b.kind:
                raise ConfigError(source, f"features.{name}.kind", f"expected {f.kind!r} for this feature")
        new = [n for n in wanted if n not in self._features]
        if self._user_features + len(new) > cfg.max_user_features:
            limit = f"more user features than drift.max_user_features ({cfg.max_user_features})"
            raise ConfigError(source, "features", limit)
        features = {**self._features, **{n: self._new_feature(n, wanted[n].kind == "numeric") for n in new}}
        self._user_features += len(new)
        for name, f in features.items():
            if name in wanted:
                f.set_baseline(wanted[name])
            else:
                f.collect()
        self._features = features

    # -- the hot path ---------------------------------------------------------------------------------

    def on_llm(self, call: LLMCall, cost: Cost | None, ts: float) -> None:
        f = self._model
        if f is not None:
            f.observe(call.model or "unknown", ts)
        if call.input_tokens or call.output_tokens:  # no usage reported: nothing to say about sizes
            f = self._input_tokens
            if f is not None:
                f.observe(call.input_tokens, ts)
            f = self._output_tokens
            if f is not None:
                f.observe(call.output_tokens, ts)

    def duration_observer(self) -> Callable[[float], None] | None:
        # Request durations go through a queue the thread drains each second: the request path only appends.
        return self._durations.append if self._duration is not None else None

    def handed_off(self, drain: Callable[[], None]) -> None:
        self._queued_calls = drain

    def _drain(self) -> None:
        """Feed the queued request durations to their feature, stamped now (the queue is a second deep), and
        the LLM calls the recorder has queued (see :meth:`Sink.handed_off`)."""
        self._queued_calls()
        f, queue = self._duration, self._durations
        if f is None or not queue:
            return
        pop = queue.popleft
        f.observe_all([pop() for _ in range(len(queue))], self._clock())

    def on_confidence(self, model: str, label: str, value: float, ts: float) -> None:
        f = self._confidence
        if f is not None:
            f.observe(value, ts)
        f = self._label
        if f is not None and label:
            f.observe(label, ts)

    def on_feature(self, name: str, value: float | str, ts: float) -> None:
        cls = type(value)
        if cls is not float and cls is not int and cls is not str:
            normal = _normalize(value)
            if normal is None:
                return  # not a number nor a category: nothing to observe
            value = normal
        numeric = type(value) is not str
        f = self._features.get(name)
        if f is None:
            if name in BUILTIN:  # a built-in the user turned off in drift.features, not a user feature
                return
            f = self._new_user_feature(name, numeric)
            if f is None:
                return
        if f.numeric is not numeric:
            return  # a feature keeps the kind of its first value
        f.observe(value, ts)

    def _new_user_feature(self, name: str, numeric: bool) -> _Feature | None:
        with self._lock:
            f = self._features.get(name)
            if f is not None:
                return f
            if (
                self._user_features >= self.config.max_user_features
                or not 0 < len(name) <= MAX_NAME
                or not is_utf8(name)  # a name is a label value
            ):
                self._output.overflow("feature")
                return None
            self._user_features += 1
            f = self._new_feature(name, numeric)
            if not self._mlflow_pending:
                f.collect()
            # Publish a new dict: readers on other threads never see one being resized.
            self._features = {**self._features, name: f}
            return f

    # -- scoring ----------------------------------------------------------------------------------------

    def scores(self) -> dict[str, dict[str, float]]:
        """The last scores: feature -> method -> value, only for features with ``min_samples`` in window."""
        return {name: dict(s) for name, s in self._scores.items()}

    def baselines(self) -> dict[str, Baseline]:
        """The baselines fixed so far (to save with :func:`~exporter.drift.baseline.save_baseline`)."""
        with self._score_lock:
            self._ring.build_ready()
        return {name: f.baseline for name, f in self._features.items() if f.baseline is not None}

    def score_now(self) -> dict[str, dict[str, float]]:
        """Score every feature on the window ending now and update the gauges (what the thread does).

        While a baseline from MLflow is still missing, this first tries to fetch it.
        """
        with self._score_lock:
            if self._mlflow_pending:
                self._load_mlflow()
            self._drain()
            self._ring.build_ready()  # after the drain: durations may complete a baseline, or wait for it
            slots = self._ring.window(self._clock())
            scores: dict[str, dict[str, float]] = {}
            for name, f in self._features.items():
                self._flush_unseen(f)
                if f.baseline is None:
                    continue
                recent = f.window_counts(slots)
                n = sum(recent)
                if n < self.config.min_samples:
                    self._unexport(name)
                    continue
                values = scores[name] = f.scores(recent)
                self._output.scores(name, values, n)
                self._exported[name] = tuple(values)
            self._scores = scores
            return self.scores()

    def _unexport(self, name: str) -> None:
        methods = self._exported.pop(name, None)
        if methods is not None:
            self._output.withdraw(name, methods)

    def _flush_unseen(self, f: _Feature) -> None:
        unseen = f.unseen
        delta = unseen - self._unseen_flushed.get(f.name, 0)
        if delta > 0:
            self._output.unseen(f.name, delta)
            self._unseen_flushed[f.name] = unseen

    def _load_mlflow(self) -> None:
        try:
            baselines = load_mlflow_baseline(self.config, self._tracking_uri, self._limits())
        except Exception as exc:  # MLflow down or the artifact missing: retried next interval
            message = f"{type(exc).__name__}: {exc}"
            if message != self._mlflow_error:
                log.warning("llm-exporter: drift baseline from MLflow not loaded yet: %s", message)
                self._mlflow_error = message
            return
        with self._lock:
            try:
                self._apply(baselines, f"MLflow run {self.config.baseline_mlflow_run}")
            except ConfigError as exc:  # the artifact will not change by waiting: learn from traffic instead
                log.error("llm-exporter: drift baseline from MLflow unusable, using the first observations: %s", exc)
                self._apply({}, "")
            self._mlflow_pending = False

    # -- the thread --------------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="llm-exporter-drift", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        interval = self.config.score_interval_seconds
        if self._mlflow_pending:
            with self._score_lock:
                self._load_mlflow()
        due = time.monotonic() + interval
        while not self._stop.wait(min(_DRAIN_SECONDS, interval)):
            try:
                if time.monotonic() >= due:
                    due += interval
                    self.score_now()  # drains first
                else:
                    with self._score_lock:
                        self._drain()
                        self._ring.build_ready()
            except Exception:
                log.exception("llm-exporter: drift scoring failed")

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        # The last durations, unless the thread is still stuck in a call to MLflow (the join gave up).
        if self._score_lock.acquire(timeout=1.0):
            try:
                self._drain()
            finally:
                self._score_lock.release()
        for f in self._features.values():
            self._flush_unseen(f)


def _nothing() -> None:
    pass
