"""The MLflow bridge against real MLflow: a sqlite store, a real ``mlflow server``, an unreachable port
and a server that never answers. Windows are closed deterministically with an injected clock."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from exporter.config import Config, ConfigError, to_dict
from exporter.middleware import PrometheusMiddleware
from exporter.mlflow_bridge.spool import Spool
from exporter.mlflow_bridge.tracking import resolve_tracking_uri
from exporter.observations import LLMCall
from exporter.recorder import Recorder
from exporter.sinks import Sink
from exporter.wiring import mlflow_sink

from ..support import REPO
from ..support.bridge import (
    RUN_NAME,
    STEP0,
    T0,
    Clock,
    W,
    batches,
    bridge,
    history,
    make_config,
    results,
    traffic,
    wait_for,
    window_run,
)
from ..support.metrics import value
from ..support.servers import HOST, free_port, process


class DriftStub(Sink):
    """Stands in for the drift sink: the bridge logs whatever ``scores()`` returns at each window."""

    def scores(self) -> dict[str, dict[str, float]]:
        return {"input_tokens": {"psi": 0.25, "ks": 0.125}, "model": {"js": float("nan")}}


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


# -- configuration -----------------------------------------------------------------------------------


def test_default_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri(None, {}) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri(None, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db", {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}) == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("mlflow", "key"),
    [
        ({"retry_min_seconds": 5.0, "retry_max_seconds": 1.0}, "mlflow.retry_min_seconds"),
        ({"request_timeout_seconds": 0}, "mlflow.request_timeout_seconds"),
        ({"late_windows": -1}, "mlflow.late_windows"),
        ({"experiment": " "}, "mlflow.experiment"),
    ],
)
def test_bad_bridge_settings_name_the_key(mlflow: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_mapping({"mlflow": mlflow}, "llm-exporter.yaml")
    assert (err.value.source, err.value.key) == ("llm-exporter.yaml", key)


def test_importing_the_package_does_not_import_mlflow() -> None:
    code = "import sys, exporter, exporter.mlflow_bridge; assert 'mlflow' not in sys.modules, 'mlflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# -- sqlite store ----------------------------------------------------------------------------------------


def test_each_window_is_one_step_with_exact_sums(
    tmp_path: Path, sqlite_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.mlflow_bridge")
    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="steps")
    config = Config.from_mapping({**_as_mapping(config), "auth": {"bearer_token": "s3cret"}})
    clock = Clock()
    sizes = [3, 1, 4, 2]  # the last window is partial: closed by the shutdown
    with bridge(config, clock, DriftStub()) as (rec, sink):
        for window, n in enumerate(sizes):
            traffic(rec, sink, clock, window, n)
        rec.evaluation("relevancy", 1.0, model="gpt-4o", ts=T0 + 5)  # an async judge, for window 0
        rec.evaluation("relevancy", 0.5, model="gpt-4o", ts=clock.t)  # on time, last window
    assert results(rec) == {"ok": 5.0, "retried": 0.0, "spooled": 0.0, "dropped": 0.0}  # 4 windows + 1 late
    assert sink.health()["spool_bytes"] == 0
    assert (tmp_path / "spool.jsonl").stat().st_size == 0

    client, run = window_run(sqlite_uri, "steps")
    steps = [STEP0 + i for i in range(len(sizes))]
    assert history(client, run, "requests") == list(zip(steps, sizes, strict=True))
    assert history(client, run, "errors") == [(s, 1.0) for s in steps]
    assert history(client, run, "cost_usd") == [(s, 0.25 * n) for s, n in zip(steps, sizes, strict=True)]
    assert history(client, run, "model/gpt-4o/input_tokens") == [
        (s, 10.0 * n) for s, n in zip(steps, sizes, strict=True)
    ]
    assert history(client, run, "latency_p95_seconds") == [(s, pytest.approx(0.1, rel=0.01)) for s in steps]
    assert history(client, run, "drift_input_tokens_psi") == [(s, 0.25) for s in steps]
    assert history(client, run, "drift_input_tokens_ks") == [(s, 0.125) for s in steps]
    assert "drift_model_js" not in run.data.metrics  # NaN scores are left out
    assert history(client, run, "eval_relevancy_late_mean") == [(steps[0], 1.0)]
    assert history(client, run, "model/gpt-4o/eval_relevancy_late_count") == [(steps[0], 1.0)]
    assert history(client, run, "eval_relevancy_mean") == [(steps[-1], 0.5)]

    assert run.info.run_name == RUN_NAME
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["service"], tags["llm_exporter.instance"]) == ("chat", "test")
    assert tags["host"] == socket.gethostname() and tags["version"]
    params = run.data.params
    assert params["mlflow.window_seconds"] == "60.0"
    assert params["auth.bearer_token"] == "***"
    assert params["mlflow.tracking_uri"] == sqlite_uri
    assert params["pricing.table_date"] == str(rec.pricing.date)
    written = [r.getMessage().rsplit(" ", 2)[1:] for r in caplog.records if "batch written" in r.getMessage()]
    assert [step for step, kind in written if kind == "(window)"] == [str(s) for s in steps]  # in order, once
    assert [step for step, kind in written if kind == "(late)"] == [str(steps[0])]


def _as_mapping(config: Config) -> dict[str, Any]:
    from exporter.config import to_dict

    return to_dict(config)  # type: ignore[no-any-return]


def test_sampled_per_request_runs(tmp_path: Path, sqlite_uri: str) -> None:
    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="per-request", per_request_sample_rate=1.0)
    clock = Clock()
    with bridge(config, clock) as (rec, sink):
        traffic(rec, sink, clock, 0, 3)
    assert results(rec) == {"ok": 4.0, "retried": 0.0, "spooled": 0.0, "dropped": 0.0}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sqlite_uri)
    exp = client.get_experiment_by_name("per-request")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`llm_exporter.kind` = 'request'")
    assert len(runs) == 3
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["model"] == "gpt-4o"
        assert run.data.metrics["cost_usd"] == 0.25
        assert run.data.metrics["input_tokens"] == 10


def test_replayed_batches_are_not_written_twice(tmp_path: Path, sqlite_uri: str) -> None:
    """MLflow already holds the spooled batches (their answer was lost): replaying adds nothing."""
    spool = tmp_path / "replay.jsonl"
    unreachable = f"http://{HOST}:{free_port()}"
    for uri, path in ((unreachable, spool), (sqlite_uri, tmp_path / "direct.jsonl")):
        config = make_config(tmp_path, tracking_uri=uri, experiment="replay", spool_path=str(path))
        clock = Clock()
        with bridge(config, clock) as (rec, sink):
            for window in range(3):
                traffic(rec, sink, clock, window, window + 1)
    assert len(spool.read_bytes().splitlines()) == 3
    assert results(rec)["ok"] == 3.0  # written directly by the second bridge

    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="replay", spool_path=str(spool))
    with bridge(config, Clock()) as (rec, sink):
        wait_for(lambda: sink.health()["spool_bytes"] == 0, "the spool to be replayed")
    assert results(rec) == {"ok": 0.0, "retried": 3.0, "spooled": 0.0, "dropped": 0.0}
    client, run = window_run(sqlite_uri, "replay")
    assert history(client, run, "requests") == [(STEP0, 1.0), (STEP0 + 1, 2.0), (STEP0 + 2, 3.0)]
    assert spool.stat().st_size == 0


def test_a_deleted_run_is_replaced_not_dropped(tmp_path: Path, sqlite_uri: str) -> None:
    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="deleted")
    clock = Clock()
    with bridge(config, clock) as (rec, sink):
        for window in range(3):
            traffic(rec, sink, clock, window, 1)
        wait_for(lambda: batches(rec, "ok") == 2, "windows 0 and 1 to be written")
        client, run = window_run(sqlite_uri, "deleted")
        client.delete_run(run.info.run_id)  # someone cleans up in the MLflow UI
        traffic(rec, sink, clock, 3, 2)
    assert results(rec) == {"ok": 4.0, "retried": 0.0, "spooled": 0.0, "dropped": 0.0}
    client, replacement = window_run(sqlite_uri, "deleted")
    assert replacement.info.run_id != run.info.run_id
    assert replacement.info.run_name == "chat-test-2023-11-14"
    assert history(client, replacement, "requests") == [(STEP0 + 2, 1.0), (STEP0 + 3, 2.0)]
    assert replacement.data.params["mlflow.experiment"] == "deleted"


def test_a_deleted_experiment_is_restored_not_dropped(
    tmp_path: Path, sqlite_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.mlflow_bridge.writer")
    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="deleted-experiment")
    clock = Clock()
    with bridge(config, clock) as (rec, sink):
        traffic(rec, sink, clock, 0, 1)
        traffic(rec, sink, clock, 1, 2)
        wait_for(lambda: batches(rec, "ok") == 1, "window 0 to be written")
        client, run = window_run(sqlite_uri, "deleted-experiment")
        client.delete_experiment(run.info.experiment_id)  # someone cleans up in the MLflow UI
        traffic(rec, sink, clock, 2, 3)  # closes window 1; window 2 is closed by the shutdown
    assert results(rec) == {"ok": 3.0, "retried": 0.0, "spooled": 0.0, "dropped": 0.0}
    client, restored = window_run(sqlite_uri, "deleted-experiment")
    assert client.get_experiment(restored.info.experiment_id).lifecycle_stage == "active"
    assert restored.info.run_id == run.info.run_id  # restored with its experiment
    assert history(client, restored, "requests") == [(STEP0, 1.0), (STEP0 + 1, 2.0), (STEP0 + 2, 3.0)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "exporter.mlflow_bridge.writer"]
    assert len(warnings) == 1 and "'deleted-experiment'" in warnings[0] and "restoring" in warnings[0]


def test_late_results_from_before_late_windows_are_dropped_and_counted(
    tmp_path: Path, sqlite_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.mlflow_bridge")
    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="ancient", late_windows=2)
    clock = Clock()
    with bridge(config, clock) as (rec, sink):
        rec.evaluation("relevancy", 0.5, ts=1.0)  # seconds since 1970 taken for an age: no run for 1970-01-01
        traffic(rec, sink, clock, 0, 1)
        traffic(rec, sink, clock, 3, 1)  # window 0 closes
        rec.evaluation("relevancy", 1.0, ts=T0 + 5)  # window 0 is 3 windows back: past late_windows
        rec.evaluation("relevancy", 0.25, ts=T0 + W + 5)  # window 1: 2 back, still taken
        rec.evaluation("relevancy", 0.0, ts=1_700_000_040_000.0)  # milliseconds: counted in now's window
        assert sink.health()["late_dropped"] == 2
    assert sink.health()["late_dropped"] == 2
    assert results(rec) == {"ok": 3.0, "retried": 0.0, "spooled": 0.0, "dropped": 0.0}  # 2 windows + 1 late
    client, run = window_run(sqlite_uri, "ancient")  # one run: the day of the traffic, nothing from 1970
    assert run.info.run_name == RUN_NAME
    assert history(client, run, "requests") == [(STEP0, 1.0), (STEP0 + 3, 1.0)]
    assert history(client, run, "eval_relevancy_late_mean") == [(STEP0 + 1, 0.25)]
    assert history(client, run, "eval_relevancy_mean") == [(STEP0 + 3, 0.0)]
    warned = [r for r in caplog.records if "older than mlflow.late_windows" in r.getMessage()]
    assert len(warned) == 1


def test_without_a_service_label_the_service_tag_is_the_projects_name(tmp_path: Path) -> None:
    config = Config.from_mapping({**to_dict(make_config(tmp_path)), "labels": {}})
    sink = mlflow_sink(Recorder(config, CollectorRegistry()))
    try:
        assert sink._tags("window")["service"] == "llm-exporter"
    finally:
        sink.close()


def test_an_unusable_spool_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = make_config(tmp_path, spool_path=str(tmp_path / "file" / "spool.jsonl"))
    with pytest.raises(ConfigError) as err:
        mlflow_sink(Recorder(config, CollectorRegistry())).start()
    assert err.value.key == "mlflow.spool_path"


# -- MLflow unreachable or hanging -------------------------------------------------------------------------


def test_spool_cap_counts_dropped_batches(tmp_path: Path) -> None:
    unreachable = f"http://{HOST}:{free_port()}"
    sizes = []
    for name, cap in (("big", 1 << 20), ("small", None)):
        path = tmp_path / f"{name}.jsonl"
        if cap is None:  # room for two and a half batches: every batch has the same size
            assert sizes[0] % 5 == 0
            cap = sizes[0] // 5 * 5 // 2
        config = make_config(tmp_path, tracking_uri=unreachable, spool_path=str(path), spool_max_bytes=cap)
        clock = Clock()
        with bridge(config, clock) as (rec, sink):
            for window in range(5):
                traffic(rec, sink, clock, window, 2)
        sizes.append(path.stat().st_size)
        health = sink.health()
        assert health["state"] == "degraded" and health["last_error"]
        assert health["spool_bytes"] == sizes[-1] <= cap
    assert results(rec) == {"ok": 0.0, "retried": 0.0, "spooled": 2.0, "dropped": 3.0}
    assert rec.registry.get_sample_value("llm_exporter_mlflow_spool_bytes", {"service": "chat"}) == sizes[1]
    assert sizes[1] * 5 == sizes[0] * 2


class Hanging:
    """A loopback socket that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self._conns: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self._conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        for conn in self._conns:
            conn.close()
        self.sock.close()


def test_hanging_mlflow_never_blocks_recording(tmp_path: Path) -> None:
    hanging = Hanging()
    try:
        config = make_config(
            tmp_path,
            tracking_uri=f"http://{HOST}:{hanging.port}",
            queue_size=1,
            request_timeout_seconds=3,
            retry_min_seconds=30.0,
            retry_max_seconds=60.0,
        )
        clock = Clock()
        with bridge(config, clock) as (rec, sink):
            traffic(rec, sink, clock, 0, 1)
            traffic(rec, sink, clock, 1, 1)  # window 0 closes; the bridge thread calls MLflow and waits
            assert hanging.accepted.wait(60)
            for i in range(1000):  # recording goes on while it waits
                ts = T0 + W + 1 + i * 0.001
                rec.llm(LLMCall("gpt-4o", "openai", input_tokens=1, output_tokens=1, cost_usd=0.5, timestamp=ts))
            traffic(rec, sink, clock, 2, 1)  # window 1 fills the queue (size 1)
            traffic(rec, sink, clock, 3, 1)  # window 2: queue full, dropped
            traffic(rec, sink, clock, 4, 1)  # window 3: dropped
            # close(): window 4 waits for room in the queue; everything after the timeout is spooled
    finally:
        hanging.close()
    labels = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "outcome": "ok", "service": "chat"}
    assert value(rec.registry, "llm_requests_total", **{**labels, "gen_ai_response_model": ""}) == 1005
    assert results(rec) == {"ok": 0.0, "retried": 0.0, "spooled": 3.0, "dropped": 2.0}
    lines = (tmp_path / "spool.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [STEP0, STEP0 + 1, STEP0 + 4]
    health = sink.health()
    assert health["state"] == "degraded"
    assert "timed out" in health["last_error"] or "timeout" in health["last_error"]


def test_hanging_mlflow_app_requests_complete_and_every_window_is_spooled(tmp_path: Path) -> None:
    async def chat(request: Request) -> Response:
        return PlainTextResponse("hi")

    hanging = Hanging()
    try:
        config = make_config(
            tmp_path,
            tracking_uri=f"http://{HOST}:{hanging.port}",
            window_seconds=0.5,
            request_timeout_seconds=2,
            retry_min_seconds=30.0,
            retry_max_seconds=60.0,
        )
        rec = Recorder(config, CollectorRegistry())
        rec.add_sink(mlflow_sink(rec))  # the real clock: windows close while requests go on
        app = PrometheusMiddleware(Starlette(routes=[Route("/chat", chat)]), recorder=rec)
        statuses = []
        with TestClient(app) as client:  # its lifespan shutdown closes the recorder: the last window
            for _ in range(30):
                statuses.append(client.get("/chat").status_code)
                time.sleep(0.05)
            assert hanging.accepted.wait(60)  # the bridge is stuck in a call to MLflow by now
            statuses.append(client.get("/chat").status_code)
    finally:
        hanging.close()
    assert statuses == [200] * 31
    labels = {
        "http_request_method": "GET",
        "http_route": "/chat",
        "http_response_status_code": "200",
        "service": "chat",
    }
    assert rec.registry.get_sample_value("http_server_request_duration_seconds_count", labels) == 31
    spooled = [json.loads(line) for line in (tmp_path / "spool.jsonl").read_bytes().splitlines()]
    assert sum(batch["metrics"]["requests"] for batch in spooled) == 31  # every window, none lost
    assert results(rec) == {"ok": 0.0, "retried": 0.0, "spooled": float(len(spooled)), "dropped": 0.0}


# -- a real mlflow server --------------------------------------------------------------------------------


class MlflowServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._stack: contextlib.ExitStack | None = None

    def start(self) -> None:
        args = [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}"),
            *("--default-artifact-root", str(self.workdir / "artifacts")),
            *("--host", HOST, "--port", str(self.port), "--workers", "1"),
        ]
        self._stack = contextlib.ExitStack()
        log = str(self.workdir / "server.log")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # one process less to start and stop
        self._stack.enter_context(process(args, f"{self.url}/health", timeout=120, log=log, cwd=self.workdir, env=env))

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.mlflow_server
def test_server_outage_loses_nothing_and_keeps_order(
    tmp_path: Path, mlflow_server: MlflowServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.mlflow_bridge")
    config = make_config(tmp_path, tracking_uri=mlflow_server.url, experiment="outage")
    clock = Clock()
    sizes = [2, 3, 1, 4, 2, 5, 1, 3]
    with bridge(config, clock) as (rec, sink):
        for window in range(3):
            traffic(rec, sink, clock, window, sizes[window])
        wait_for(lambda: batches(rec, "ok") == 2, "windows 0 and 1 to be written")
        mlflow_server.stop()
        for window in range(3, 6):  # traffic goes on; windows 2, 3 and 4 close while MLflow is down
            traffic(rec, sink, clock, window, sizes[window])
        wait_for(lambda: batches(rec, "spooled") == 3, "windows 2 to 4 to be spooled")
        assert sink.health()["state"] == "degraded"
        mlflow_server.start()  # same port, same store
        wait_for(lambda: sink.health()["spool_bytes"] == 0, "the spool to be replayed")
        for window in range(6, 8):
            traffic(rec, sink, clock, window, sizes[window])
        wait_for(lambda: batches(rec, "ok") == 4, "windows 5 and 6 to be written")
        assert sink.health()["state"] == "ok"
    assert results(rec) == {"ok": 5.0, "retried": 3.0, "spooled": 3.0, "dropped": 0.0}
    assert (tmp_path / "spool.jsonl").stat().st_size == 0
    assert rec.registry.get_sample_value("llm_exporter_mlflow_spool_bytes", {"service": "chat"}) == 0

    steps = [STEP0 + i for i in range(len(sizes))]
    client, run = window_run(mlflow_server.url, "outage")
    assert history(client, run, "requests") == list(zip(steps, sizes, strict=True))
    assert history(client, run, "cost_usd") == [(s, 0.25 * n) for s, n in zip(steps, sizes, strict=True)]
    written = [r.getMessage().rsplit(" step ", 1)[1] for r in caplog.records if "batch written" in r.getMessage()]
    assert written == [f"{s} (window)" for s in steps]  # in order, each once


# -- the spool file ------------------------------------------------------------------------------------------


def test_spool_replays_in_order_and_ends_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl", 10_000)
    for i in range(3):
        assert spool.append({"n": i})
    assert spool.peek() == {"n": 0}
    assert spool.peek() == {"n": 0}  # peek does not consume
    spool.pop()
    assert spool.peek() == {"n": 1}
    spool.pop()
    assert spool.append({"n": 3})
    assert [spool.peek(), spool.pop(), spool.peek(), spool.pop()][::2] == [{"n": 2}, {"n": 3}]
    assert spool.peek() is None and not spool and spool.pending_bytes == 0
    assert (tmp_path / "s.jsonl").stat().st_size == 0
    spool.close()


def test_spool_cap_compacts_then_refuses(tmp_path: Path) -> None:
    line = len(json.dumps({"n": 0}, separators=(",", ":"))) + 1
    spool = Spool(tmp_path / "s.jsonl", 3 * line)
    assert all(spool.append({"n": i}) for i in range(3))
    assert not spool.append({"n": 3})
    spool.peek()
    spool.pop()  # room again: the replayed head is cut off when the tail needs it
    assert spool.append({"n": 4})
    assert (tmp_path / "s.jsonl").stat().st_size == 3 * line
    assert [json.loads(x)["n"] for x in (tmp_path / "s.jsonl").read_bytes().splitlines()] == [1, 2, 4]
    spool.close()


def test_spool_survives_a_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n":1}\nnot json\n{"n":2}\n{"n":3')  # a crash in the middle of the last write
    spool = Spool(path, 10_000)
    got = []
    while (record := spool.peek()) is not None:
        got.append(record["n"])
        spool.pop()
    assert got == [1, 2]
    assert (spool.corrupt, spool.quarantined) == (1, 1)  # the torn tail is lost; the bad line is kept aside
    assert (tmp_path / "s.quarantine.jsonl").read_bytes() == b"not json\n"
    assert path.stat().st_size == 0
    spool.close()


def test_a_torn_last_line_does_not_swallow_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":2}\n{"n":3,"pa')  # the process died in the middle of the third write
    spool = Spool(path, 10_000)
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n'  # cut at once: the torn batch was never acknowledged
    assert spool.corrupt == 1 and spool.take_corrupt() == 1 and spool.take_corrupt() == 0
    assert spool.append({"n": 4}) and spool.append({"n": 5})
    got = []
    while (record := spool.peek()) is not None:
        got.append(record["n"])
        spool.pop()
    assert got == [1, 2, 4, 5]
    assert spool.corrupt == 1
    spool.close()


def test_batches_lost_in_the_spool_are_counted_as_dropped(tmp_path: Path, sqlite_uri: str) -> None:
    """Nothing is lost without being counted: a torn last line is a dropped batch, an unreadable line one
    moved to the quarantine file."""
    path = tmp_path / "spool.jsonl"
    unreachable = f"http://{HOST}:{free_port()}"
    clock = Clock()
    with bridge(make_config(tmp_path, tracking_uri=unreachable, experiment="torn"), clock) as (rec, sink):
        for window in range(2):
            traffic(rec, sink, clock, window, window + 1)
    first, second = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + b"not json\n" + second + second[:40])  # and a crash in the middle of a write
    clock = Clock(T0 + 2 * W)
    with bridge(make_config(tmp_path, tracking_uri=sqlite_uri, experiment="torn"), clock) as (rec, sink):
        wait_for(lambda: sink.health()["spool_bytes"] == 0, "the spool to be replayed")
        traffic(rec, sink, clock, 2, 3)
    # dropped: the torn line (cut off when the spool was opened); quarantined: the unreadable one
    assert results(rec) == {"ok": 1.0, "retried": 2.0, "spooled": 0.0, "dropped": 1.0}
    assert batches(rec, "quarantined") == 1.0
    client, run = window_run(sqlite_uri, "torn")
    assert history(client, run, "requests") == [(STEP0, 1.0), (STEP0 + 1, 2.0), (STEP0 + 2, 3.0)]
    assert path.stat().st_size == 0


def test_a_second_process_gets_its_own_spool_and_the_orphan_is_adopted(tmp_path: Path) -> None:
    first = Spool(tmp_path / "s.jsonl", 10_000)
    second = Spool(tmp_path / "s.jsonl", 10_000)  # locked by `first`: a per-process sibling
    assert first.path == tmp_path / "s.jsonl"
    assert second.path != first.path and second.path.name.startswith("s.") and second.path.suffix == ".jsonl"
    assert second.append({"from": "second"})
    second.close()  # its process is gone; the spool file stays
    orphans = first.orphans()
    assert [o.path for o in orphans] == [second.path]
    orphan = orphans[0]
    assert orphan.peek() == {"from": "second"}
    orphan.pop()
    orphan.close(remove=True)
    assert not second.path.exists()
    first.close()
