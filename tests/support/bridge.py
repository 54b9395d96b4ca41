"""The MLflow bridge under test: a config on a temp spool, a started bridge on a fresh recorder, traffic
in whole windows of an injected clock, and what MLflow then holds."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.config import Config
from exporter.mlflow_bridge import MlflowSink
from exporter.observations import LLMCall
from exporter.recorder import Recorder
from exporter.sinks import Sink
from exporter.wiring import mlflow_sink

W = 60.0
T0 = 1_700_000_040.0  # a window boundary; 2023-11-14 22:14 UTC
STEP0 = int(T0 // W) - int((T0 - T0 % 86400) // W)  # the window's step in its day's run (1334)
RUN_NAME = "chat-test-2023-11-14"


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_config(tmp_path: Path, **mlflow: Any) -> Config:
    return Config.from_mapping(
        {
            "drift": {"enabled": False},
            "labels": {"service": "chat"},
            "mlflow": {
                "enabled": True,
                "instance": "test",
                "window_seconds": W,
                "spool_path": str(tmp_path / "spool.jsonl"),
                "retry_min_seconds": 0.05,
                "retry_max_seconds": 0.5,
                "request_timeout_seconds": 1,
                **mlflow,
            },
        }
    )


@contextlib.contextmanager
def bridge(config: Config, clock: Clock, drift: Sink | None = None) -> Iterator[tuple[Recorder, MlflowSink]]:
    """A started bridge on a fresh recorder, with ``drift``'s scores (a stub's) logged at each window."""
    rec = Recorder(config, CollectorRegistry())
    sink = mlflow_sink(rec, getattr(drift, "scores", None), clock=clock)
    rec.add_sink(sink)
    sink.start()
    try:
        yield rec, sink
    finally:
        sink.close()


def batches(rec: Recorder, result: str) -> float | None:
    return rec.registry.get_sample_value("llm_exporter_mlflow_batches_total", {"result": result, "service": "chat"})


def results(rec: Recorder) -> dict[str, float | None]:
    return {r: batches(rec, r) for r in ("ok", "retried", "spooled", "dropped")}


def traffic(rec: Recorder, sink: MlflowSink, clock: Clock, window: int, n: int) -> None:
    """``n`` requests (the first one a 500) and LLM calls of 0.25 USD each, in ``window``."""
    for i in range(n):
        ts = T0 + window * W + i * 0.5
        clock.t = ts
        sink.on_http("POST", "/chat", 500 if i == 0 else 200, 0.1, ts)
        rec.llm(LLMCall("gpt-4o", "openai", input_tokens=10, output_tokens=5, cost_usd=0.25, timestamp=ts))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def window_run(uri: str, experiment: str) -> tuple[Any, Any]:
    from mlflow.tracking import MlflowClient  # the mlflow extra: only the tests that need it import it

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`llm_exporter.kind` = 'window'")
    assert len(runs) == 1
    return client, runs[0]


def history(client: Any, run: Any, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
