"""MLflow bridge: window summaries to MLflow runs, on a background thread, spooled to disk when MLflow is down.

The request path only feeds the :class:`~exporter.mlflow_bridge.windows.WindowAggregator`. Closed windows go
through a bounded queue to one thread, which turns each into metric batches (one MLflow step per
window) and writes them with ``MlflowClient.log_batch``. A batch that cannot be written goes to the
spool file; while the spool holds anything, new batches queue behind it, so MLflow receives them in
order once it is back. A replayed batch is first looked up in the run's metric history, so a batch that
reached MLflow before its answer was lost is not written twice.

Only a failure to reach MLflow pauses replay. A spooled line that can never be written (the wrong shape,
a bad value, or one MLflow refuses) is moved to the spool's quarantine file, counted as ``quarantined``,
and replay goes on with the next line. A run whose windows are replayed after it was left (a new day
while MLflow was down, or the spool of a process that is gone) is ended once its last batch is written,
as it would have been had MLflow answered at the time.

``mlflow`` is imported on the thread, when the first batch is written: it takes about a second.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import queue
import random
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..config import Config, ConfigError, MlflowConfig, effective_config, mask_uri
from ..observations import Cost, LLMCall
from ..pricing import PricingTable
from ..sinks import BridgeOutput, Sink
from .records import problem
from .spool import Spool, encode
from .tracking import resolve_tracking_uri, version
from .windows import Window, WindowAggregator, metric_part, summarize, summarize_late
from .writer import KIND_TAG, MAX_METRICS_PER_BATCH, MAX_PARAM_VALUE, Writer, permanent

log = logging.getLogger(__name__)


def _refused(exc: BaseException) -> str:
    return f"MLflow refused it: {type(exc).__name__}: {exc}"[:500]


def _flatten(data: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _flatten(value, f"{prefix}{metric_part(str(key))}.", out)
    else:
        text = json.dumps(data) if isinstance(data, list) else str(data)
        out[prefix.rstrip(".")] = text[:MAX_PARAM_VALUE]


def run_params(config: Config, pricing: Callable[[], PricingTable]) -> dict[str, str]:
    """The run params: the effective config (secrets masked) and the price data's date and version."""
    params: dict[str, str] = {}
    _flatten(effective_config(config), "", params)
    try:
        table = pricing()
    except Exception as exc:  # a broken pricing file is reported by its own module, not here
        log.debug("llm-exporter: no pricing table for the MLflow params: %s", exc)
    else:
        for attr in ("date", "version"):
            value = getattr(table, attr, None)
            if value:
                params[f"pricing.table_{attr}"] = str(value)
    return params


_live: weakref.WeakSet[MlflowSink] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Interpreter exit without a lifespan shutdown (scripts, ``python -m``): flush the last windows."""
    for sink in list(_live):
        sink.close()


class MlflowSink(Sink):
    """Feeds the window aggregator on the request path; logs closed windows to MLflow on its own thread.

    It gets its config section and what it needs from the other parts, handed over where the parts are
    put together (:mod:`exporter.wiring`): ``output`` for its own health metrics, ``params`` for the run
    params (the effective config and the price data), ``drift_scores`` for the drift scores it logs with
    each window. The spool file and the thread start in :meth:`start`.
    """

    def __init__(
        self,
        config: MlflowConfig,
        output: BridgeOutput,
        *,
        service: str = "llm-exporter",
        label_cap: int = 100,
        params: Callable[[], dict[str, str]] = dict,
        drift_scores: Callable[[], Mapping[str, Mapping[str, float]]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigError(
                "<config>", "mlflow.enabled", "the mlflow package is not installed: pip install 'llm-exporter[mlflow]'"
            )
        cfg = self.cfg = config
        self._output = output
        self._drift_scores = drift_scores
        self._clock = clock
        self.width = cfg.window_seconds
        self.tracking_uri = resolve_tracking_uri(cfg.tracking_uri)
        self.host = socket.gethostname()
        self._version = version()
        self.instance = metric_part(cfg.instance or f"{self.host}-{os.getpid()}")
        # The service tag and run names fall back to the project's name when no service label is set.
        self.service = service
        self._run_tags = self._tags("window")
        self._started = clock()
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(cfg.queue_size)
        self._agg = WindowAggregator(
            self.width, self._enqueue_window, max_keys=label_cap, late_windows=cfg.late_windows, clock=clock
        )
        self._late_warned = False
        self._queued_calls: Callable[[], None] = lambda: None  # the recorder's queue of LLM calls, once it starts
        self._spool: Spool | None = None
        self._spools: list[Spool] = []
        self._writer = Writer(
            self.tracking_uri,
            cfg.experiment,
            cfg.request_timeout_seconds,
            lambda: {**params(), "mlflow.tracking_uri": mask_uri(self.tracking_uri)},
        )
        self._sample = cfg.per_request_sample_rate
        self._delay = 0.0  # current backoff; 0 while MLflow answers
        self._retry_at = 0.0
        self._last_index = int(clock() // self.width)
        self._current_run: str | None = None
        # Runs left while their batches were still spooled: ended once the spool is empty (run key -> the
        # time of their last batch, in ms, or None for now).
        self._to_end: dict[str, int | None] = {}
        self.last_error: str | None = None
        self.last_error_time: float | None = None
        self.last_ok_time: float | None = None
        self._closed = False
        self._lock = threading.Lock()  # start and close
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the spool (and the orphans of dead processes), start the thread. Idempotent."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            cfg = self.cfg
            try:
                self._spool = Spool(cfg.spool_path, cfg.spool_max_bytes)
            except OSError as exc:
                raise ConfigError("<config>", "mlflow.spool_path", f"cannot open {cfg.spool_path}: {exc}") from None
            self._spools = [*self._spool.orphans(), self._spool]
            self._output.spool_bytes(self._pending_bytes())
            for spool in list(self._spools):  # torn last lines were cut off when the spools were opened
                self._count_lost(spool)
                if not spool and spool is not self._spool:  # an orphan that held nothing else
                    spool.close(remove=True)
                    self._spools.remove(spool)
            self._thread = threading.Thread(target=self._run, name="llm-exporter-mlflow", daemon=True)
            self._thread.start()
            _live.add(self)

    # -- the request path: in-memory only ---------------------------------------------------------

    def on_http(
        self,
        method: str,
        route: str,
        status: int,
        duration: float,
        ts: float,
        request_bytes: int = 0,
        response_bytes: int = 0,
    ) -> None:
        self._agg.http(status, duration, ts)

    def on_llm(self, call: LLMCall, cost: Cost | None, ts: float) -> None:
        now = self._clock()
        ts = min(ts, now)  # a client's clock ahead of ours must not close the window early
        usd = cost.total_usd if cost is not None else None
        error = call.error_type is not None
        self._agg.llm(call.model, call.input_tokens, call.output_tokens, usd, call.duration, call.ttft, error, ts)
        if self._sample and random.random() < self._sample:
            fields = (call.model, call.provider, call.operation, call.input_tokens, call.output_tokens)
            self._put(("request", (*fields, usd, call.duration, call.ttft, call.error_type, ts)))

    def on_confidence(self, model: str, label: str, value: float, ts: float) -> None:
        self._agg.confidence(model, value, ts)

    def on_evaluation(self, name: str, model: str, score: float, ts: float) -> None:
        self._agg.evaluation(name, model, score, min(ts, self._clock()))

    def on_feedback(self, model: str, rating: float, ts: float) -> None:
        self._agg.feedback(model, rating, ts)

    def on_event(self, name: str, tenant: str | None, ts: float, count: int = 1) -> None:
        self._agg.event(name, ts, count)

    def _enqueue_window(self, window: Window) -> None:
        self._put(("window", window))

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:  # the thread is stuck behind a slow MLflow: lose this, never block a request
            self._output.batches("dropped")

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the partial window, write (or spool) what is queued, stop the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            started = self._thread is not None
        self._queued_calls()
        window = self._agg.flush()
        if not started:
            if window is None and self._queue.empty():
                self._closed = True
                return
            self.start()  # observations came in before any start: they are written (or spooled) now
        with self._lock:
            self._closed = True
        deadline = time.monotonic() + self.cfg.shutdown_timeout_seconds
        if window is not None:
            try:
                self._queue.put(("window", window), timeout=self.cfg.shutdown_timeout_seconds)
            except queue.Full:
                self._output.batches("dropped")
        self._stopping.set()
        try:
            self._queue.put_nowait(None)  # wake the thread
        except queue.Full:
            pass
        thread = self._thread
        assert thread is not None  # started above
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning(
                "llm-exporter: the MLflow bridge did not finish within %.0fs", self.cfg.shutdown_timeout_seconds
            )
        else:
            for spool in self._spools:
                spool.close()
        _live.discard(self)

    def health(self) -> dict[str, Any]:
        pending = self._pending_bytes()
        running = self._thread is not None and self._thread.is_alive()
        degraded = not running or pending > 0 or (self._delay > 0)
        return {
            "state": "degraded" if degraded else "ok",
            "running": running,
            "tracking_uri": mask_uri(self.tracking_uri),
            "experiment": self.cfg.experiment,
            "queue": self._queue.qsize(),
            "queue_max": self.cfg.queue_size,
            "spool_path": str(self._spool.path if self._spool is not None else self.cfg.spool_path),
            "spool_bytes": pending,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
            "last_ok_time": self.last_ok_time,
            "late_dropped": self._agg.late_dropped,
        }

    # -- the bridge thread --------------------------------------------------------------------------

    def _run(self) -> None:
        tick = min(1.0, max(0.05, self.width / 4))  # how late a window may close when traffic stops
        while not self._stopping.is_set():
            try:
                item = self._queue.get(timeout=tick)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._handle(item)
                self._timers()
                if self._pending() and time.monotonic() >= self._retry_at:
                    self._replay(time.monotonic() + 1.0)
            except Exception:  # a bug here must not kill the thread: the next window gets another chance
                log.exception("llm-exporter: MLflow bridge error")
        try:
            self._shutdown()
        except Exception:
            log.exception("llm-exporter: MLflow bridge error at shutdown")

    def _shutdown(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._handle(item)
        for index, scores in self._agg.take_late():
            self._submit_metrics("late", index, summarize_late(scores), self._clock())
        self._warn_late()
        if self._delay == 0:  # MLflow answered last time: worth trying the spool once more
            if self._pending():
                self._replay(time.monotonic() + self.cfg.shutdown_timeout_seconds / 2)
            if not self._pending():  # every run this process wrote to, or replayed, is complete
                if self._current_run is not None:
                    self._to_end.setdefault(self._current_run, None)
                self._end_runs(keep=None)

    def handed_off(self, drain: Callable[[], None]) -> None:
        self._queued_calls = drain

    def _timers(self) -> None:
        now = self._clock()
        self._queued_calls()  # the LLM calls the recorder has queued belong to the windows they happened in
        self._agg.roll(now)
        self._warn_late()
        index = int(now // self.width)
        if index != self._last_index:  # late results are flushed once per window, not per result
            self._last_index = index
            for late_index, scores in self._agg.take_late():
                self._submit_metrics("late", late_index, summarize_late(scores), now)

    def _warn_late(self) -> None:
        """Once per process, from this thread (the request path that drops them does no I/O)."""
        if self._agg.late_dropped and not self._late_warned:
            self._late_warned = True
            log.warning(
                "llm-exporter: dropped an evaluation result older than mlflow.late_windows (%d windows of %.0fs); "
                "its timestamp must be the judged call's wall-clock time in seconds. Further ones are only "
                "counted (late_dropped in the MLflow bridge's health report)",
                self.cfg.late_windows,
                self.width,
            )

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        if kind == "window":
            metrics = summarize(payload)
            metrics.update(self._window_drift_scores())
            self._submit_metrics("window", payload.index, metrics, payload.end)
        else:
            self._submit(self._request_record(payload))

    def _window_drift_scores(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self._drift_scores is None:
            return out
        try:
            for feature, methods in self._drift_scores().items():
                for method, score in methods.items():
                    if math.isfinite(score):
                        out[f"drift_{metric_part(feature)}_{metric_part(method)}"] = float(score)
        except Exception:
            log.exception("llm-exporter: reading drift scores failed")
        return out

    def _submit_metrics(self, kind: str, index: int, metrics: dict[str, float], ts: float) -> None:
        """One window's (or its late results') metrics as batches of at most MAX_METRICS_PER_BATCH."""
        placed = self._run_for(index)
        if placed is None or not metrics:
            return
        run, step = placed
        if kind == "window":
            previous = self._current_run
            if previous is not None and previous != run["key"]:
                # A new day (run period): the previous run is complete, once its spooled batches are written.
                self._to_end.setdefault(previous, None)
                if not self._pending():
                    self._end_runs(keep=run["key"])
            self._current_run = run["key"]
        items = [(k, v) for k, v in metrics.items() if math.isfinite(v)]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            chunk = dict(items[i : i + MAX_METRICS_PER_BATCH])
            record = {"id": uuid.uuid4().hex, "kind": kind, "run": run, "step": step, "ts": int(ts * 1000)}
            self._submit({**record, "metrics": chunk})

    def _run_for(self, index: int) -> tuple[dict[str, Any], int] | None:
        """The run a window belongs to and its step there: the window's index since the period start."""
        start = index * self.width
        period = self.cfg.run_period
        if period == "instance":
            period_start = self._started
            label = datetime.fromtimestamp(period_start, UTC).strftime("%Y-%m-%dT%H%M%S")
        else:
            length = 86400 if period == "day" else 3600
            period_start = start - start % length
            fmt = "%Y-%m-%d" if period == "day" else "%Y-%m-%dT%H"
            label = datetime.fromtimestamp(period_start, UTC).strftime(fmt)
        step = index - int(period_start // self.width)
        if step < 0:  # a late result from before this instance's run started
            return None
        service = metric_part(self.service)
        run = {
            "key": f"{service}/{self.instance}/{label}",
            "name": f"{service}-{self.instance}-{label}",
            "tags": self._run_tags,
        }
        return run, step

    def _request_record(self, payload: tuple[Any, ...]) -> dict[str, Any]:
        model, provider, operation, tokens_in, tokens_out, usd, duration, ttft, error_type, ts = payload
        rid = uuid.uuid4().hex
        metrics = {"input_tokens": tokens_in, "output_tokens": tokens_out, "error": 1 if error_type else 0}
        for name, value in (("cost_usd", usd), ("duration_seconds", duration), ("ttft_seconds", ttft)):
            if value is not None:
                metrics[name] = value
        params = {"model": model, "provider": provider, "operation": operation, "error_type": str(error_type)}
        run = {"key": f"request/{rid}", "name": f"request-{metric_part(model)}", "tags": self._tags("request")}
        run["params"] = {k: str(v)[:MAX_PARAM_VALUE] for k, v in params.items()}
        return {"id": rid, "kind": "request", "run": run, "step": 0, "ts": int(ts * 1000), "metrics": metrics}

    def _tags(self, kind: str) -> dict[str, str]:
        return {
            "host": self.host,
            "version": self._version,
            "service": self.service,
            "llm_exporter.instance": self.instance,
            KIND_TAG: kind,
        }

    # -- writing, spooling, replaying -----------------------------------------------------------------

    def _pending(self) -> bool:
        return any(self._spools)

    def _pending_bytes(self) -> int:
        return sum(s.pending_bytes for s in self._spools)

    def _submit(self, record: dict[str, Any]) -> None:
        if self._pending():  # older batches are waiting: this one goes behind them, keeping the order
            self._to_spool(record)
            return
        try:
            self._writer.write(record, replay=False)
        except Exception as exc:
            self._failed(exc)
            if permanent(exc):  # MLflow will refuse it every time: kept aside, as a spooled one would be
                spool = self._spool
                assert spool is not None  # the thread that writes runs only once start() opened it
                try:
                    spool.quarantine(encode(record), _refused(exc))
                except ValueError:  # not JSON (a NaN): nothing to keep
                    self._output.batches("dropped")
                self._count_lost(spool)
            else:
                self._to_spool(record)
            return
        self._succeeded(record)
        self._output.batches("ok")

    def _to_spool(self, record: dict[str, Any]) -> None:
        spool = self._spool
        assert spool is not None  # the thread that spools runs only once start() opened it
        try:
            stored = spool.append(record)
        except (OSError, ValueError) as exc:
            log.error("llm-exporter: cannot write the MLflow spool %s: %s", spool.path, exc)
            stored = False
        if stored:
            self._output.batches("spooled")
            self._output.spool_bytes(self._pending_bytes())
        else:
            self._output.batches("dropped")
            log.warning("llm-exporter: MLflow spool full (%d bytes), a batch was dropped", self.cfg.spool_max_bytes)

    def _replay(self, until: float) -> None:
        """Write spooled batches, oldest first, until MLflow cannot be reached or ``until`` (monotonic)
        passes. A line that cannot be written is set aside and replay goes on with the next."""
        now_run = self._run_key_now()
        for spool in list(self._spools):
            try:
                while (record := spool.peek()) is not None:
                    if time.monotonic() >= until:
                        return
                    reason = problem(record)
                    if reason is None:
                        try:
                            self._writer.write(record, replay=True)
                        except Exception as exc:
                            self._failed(exc)
                            if not permanent(exc):
                                return  # MLflow unreachable (or failing): the only thing that pauses replay
                            reason = _refused(exc)
                    if reason is not None:
                        spool.set_aside(reason)
                    else:
                        self._succeeded(record)
                        self._output.batches("retried")
                        spool.pop()
                        if record["kind"] == "window":
                            self._replayed_window(record["run"]["key"], record["ts"], now_run)
                    self._output.spool_bytes(self._pending_bytes())
            finally:
                self._count_lost(spool)
            if spool is not self._spool:  # an orphan of a dead process, now empty
                spool.close(remove=True)
                self._spools.remove(spool)
        if not self._pending():
            self._end_runs(keep=now_run)

    def _replayed_window(self, key: str, ts: int, now_run: str | None) -> None:
        if key != now_run:  # a run this process is not writing: ended once every spooled batch is written
            self._to_end[key] = max(ts, self._to_end.get(key) or 0)
        elif self._current_run is None:  # the run this process goes on with (the same instance, restarted)
            self._current_run = key

    def _run_key_now(self) -> str | None:
        placed = self._run_for(int(self._clock() // self.width))
        return placed[0]["key"] if placed is not None else None

    def _end_runs(self, keep: str | None) -> None:
        """End the runs left behind (all spooled batches are written), except ``keep``, the one in use."""
        for key, end_ms in list(self._to_end.items()):
            if key == keep:
                del self._to_end[key]
                continue
            try:
                self._writer.finish(key, end_ms)
            except Exception as exc:
                self._failed(exc)
                return  # tried again after the next replay
            del self._to_end[key]
            if key == self._current_run:  # ended: a window of the next run must not end it again
                self._current_run = None

    def _count_lost(self, spool: Spool) -> None:
        """Spooled batches lost to a torn line are dropped; those set aside are quarantined: all counted."""
        lost, aside = spool.take_corrupt(), spool.take_quarantined()
        if lost:
            self._output.batches("dropped", lost)
        if aside:
            self._output.batches("quarantined", aside)
        if lost or aside:
            self._output.spool_bytes(self._pending_bytes())

    def _succeeded(self, record: dict[str, Any]) -> None:
        self._delay = 0.0
        self.last_ok_time = time.time()
        log.debug(
            "llm-exporter: MLflow batch written: %s step %d (%s)", record["run"]["key"], record["step"], record["kind"]
        )

    def _failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self.last_error_time = time.time()
        if permanent(exc):
            log.error("llm-exporter: MLflow rejected a batch: %s", self.last_error)
            return
        retry_min, retry_max = self.cfg.retry_min_seconds, self.cfg.retry_max_seconds
        # Warn when MLflow goes away, not at every retry of a long outage.
        level = logging.WARNING if self._delay == 0 else logging.DEBUG
        self._delay = min(max(self._delay * 2, retry_min), retry_max)
        self._retry_at = time.monotonic() + self._delay
        log.log(level, "llm-exporter: MLflow unavailable, retrying in %.1fs: %s", self._delay, self.last_error)
