"""Spool lines that can never be written are moved aside; runs left behind are ended: against a real MLflow
SQLite store, with windows closed by an injected clock.

The probe's spool that never drained: one valid-JSON line of the wrong shape (``{"id":"x","kind":"window"}``)
or with a metric value ``"abc"`` was taken for "MLflow unavailable", and replay stopped for good.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.mlflow_bridge import spool as spool_module
from exporter.mlflow_bridge.spool import Spool

from ..support.bridge import STEP0, T0, Clock, W, batches, bridge, history, make_config, results, traffic, wait_for
from ..support.servers import HOST, free_port

DAY = 86400.0


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def unreachable() -> str:
    return f"http://{HOST}:{free_port()}"


def runs(uri: str, experiment: str) -> dict[str, Any]:
    """The window runs of ``experiment`` by run name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    found = client.search_runs([exp.experiment_id], filter_string="tags.`llm_exporter.kind` = 'window'")
    return {run.info.run_name: run for run in found}


def spool_windows(tmp_path: Path, experiment: str, sizes: list[int], instance: str = "test", start: float = T0) -> None:
    """One spooled batch per window (``sizes[i]`` requests in window ``i``), MLflow unreachable."""
    config = make_config(tmp_path, tracking_uri=unreachable(), experiment=experiment, instance=instance)
    clock = Clock(start)
    with bridge(config, clock) as (rec, sink):
        for window, n in enumerate(sizes):
            traffic_at(rec, sink, clock, start + window * W, n)
    assert results(rec)["spooled"] == len(sizes)


def traffic_at(rec: Any, sink: Any, clock: Clock, start: float, n: int) -> None:
    traffic(rec, sink, clock, round((start - T0) / W), n)


def test_poison_lines_are_set_aside_and_every_other_line_is_replayed_exactly_once(
    tmp_path: Path, sqlite_uri: str
) -> None:
    spool_windows(tmp_path, "poison", [1, 2, 3, 4])
    path = tmp_path / "spool.jsonl"
    good = path.read_bytes().splitlines(keepends=True)
    assert len(good) == 4
    bad_value = json.loads(good[2])
    bad_value["id"], bad_value["metrics"]["requests"] = "bad-value", "abc"
    refused = json.loads(good[3])
    refused["id"], refused["metrics"] = "refused", {"bad?key": 1.0}  # MLflow refuses the key, every time
    poison = [
        b'{"id":"x","kind":"window"}\n',
        json.dumps(bad_value).encode() + b"\n",
        b"not json at all\n",
        json.dumps(refused).encode() + b"\n",
    ]
    path.write_bytes(good[0] + poison[0] + good[1] + poison[1] + good[2] + poison[2] + good[3] + poison[3])

    clock = Clock(T0 + 5 * W)
    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="poison")
    with bridge(config, clock) as (rec, sink):
        wait_for(lambda: sink.health()["spool_bytes"] == 0, "the spool to be replayed")
        traffic(rec, sink, clock, 5, 6)  # new windows are written, not held behind the poison
    assert results(rec) == {"ok": 1.0, "retried": 4.0, "spooled": 0.0, "dropped": 0.0}
    assert batches(rec, "quarantined") == 4.0
    assert (tmp_path / "spool.quarantine.jsonl").read_bytes() == b"".join(poison)  # unchanged, in order
    assert path.stat().st_size == 0
    client_runs = runs(sqlite_uri, "poison")
    run = client_runs["chat-test-2023-11-14"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sqlite_uri)
    expected = [(STEP0, 1.0), (STEP0 + 1, 2.0), (STEP0 + 2, 3.0), (STEP0 + 3, 4.0), (STEP0 + 5, 6.0)]
    assert history(client, run, "requests") == expected
    assert set(run.data.metrics) >= {"requests", "errors"} and "bad?key" not in run.data.metrics

    # A restart replays nothing twice: the spool is empty and the quarantine file is never read.
    with bridge(config, Clock(T0 + 6 * W)) as (rec, sink):
        pass
    assert results(rec) == {"ok": 0.0, "retried": 0.0, "spooled": 0.0, "dropped": 0.0}
    assert history(client, run, "requests") == expected


def test_a_poison_line_at_the_head_of_a_full_spool_no_longer_holds_it(tmp_path: Path, sqlite_uri: str) -> None:
    """Before, new windows piled up behind the line until the spool was full and they were dropped."""
    spool_windows(tmp_path, "full", [1, 2])
    path = tmp_path / "spool.jsonl"
    lines = path.read_bytes()
    path.write_bytes(b'{"id":"x","kind":"window"}\n' + lines)
    cap = len(lines) + 27  # the spool is full: not one more batch fits
    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="full", spool_max_bytes=cap)
    clock = Clock(T0 + 3 * W)
    with bridge(config, clock) as (rec, sink):
        wait_for(lambda: sink.health()["spool_bytes"] == 0, "the spool to be replayed")
        for window in (3, 4, 5):
            traffic(rec, sink, clock, window, 1)
    assert results(rec) == {"ok": 3.0, "retried": 2.0, "spooled": 0.0, "dropped": 0.0}
    assert batches(rec, "quarantined") == 1.0


def test_the_quarantine_file_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "QUARANTINE_MAX_BYTES", 30)
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"first bad line, 20 b\n" + b"second bad line, 21b\n" + b'{"n":1}\n')
    spool = Spool(path, 10_000)
    assert spool.peek() == {"n": 1}  # both bad lines were set aside on the way
    spool.pop()
    assert (spool.quarantined, spool.corrupt) == (1, 1)  # the second did not fit: dropped, and counted
    assert (spool.take_quarantined(), spool.take_corrupt(), spool.take_quarantined()) == (1, 1, 0)
    assert (tmp_path / "s.quarantine.jsonl").read_bytes() == b"first bad line, 20 b\n"
    spool.close()


def test_a_run_replayed_by_another_process_is_ended_as_it_would_have_been(tmp_path: Path, sqlite_uri: str) -> None:
    """Process "a" spooled its windows and is gone; process "b" replays them: a's run ends, at its last batch."""
    spool_windows(tmp_path, "ended", [1, 2], instance="a")
    clock = Clock(T0 + 2 * W)
    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="ended", instance="b")
    with bridge(config, clock) as (rec, sink):
        wait_for(lambda: sink.health()["spool_bytes"] == 0, "the spool to be replayed")
        traffic(rec, sink, clock, 2, 3)
        clock.t = T0 + 3 * W
        wait_for(lambda: batches(rec, "ok") == 1, "window 2 to be written")
        wait_for(lambda: runs(sqlite_uri, "ended")["chat-a-2023-11-14"].info.status == "FINISHED", "a's run to end")
        during = runs(sqlite_uri, "ended")
    assert during["chat-b-2023-11-14"].info.status == "RUNNING"  # b's own run goes on while b runs
    after = runs(sqlite_uri, "ended")
    a_run = after["chat-a-2023-11-14"]
    assert a_run.info.end_time == int((T0 + 2 * W) * 1000)  # the end of a's last window
    assert after["chat-b-2023-11-14"].info.status == "FINISHED"  # ended by b's shutdown, as before


def test_yesterdays_run_spooled_over_midnight_is_ended_and_todays_goes_on(tmp_path: Path, sqlite_uri: str) -> None:
    midnight = T0 - T0 % DAY + DAY
    config = make_config(tmp_path, tracking_uri=unreachable(), experiment="midnight")
    clock = Clock(midnight - W)
    with bridge(config, clock) as (rec, sink):
        traffic_at(rec, sink, clock, midnight - W, 1)  # the last window of 2023-11-14
        traffic_at(rec, sink, clock, midnight, 2)  # the first of 2023-11-15
    assert results(rec)["spooled"] == 2

    config = make_config(tmp_path, tracking_uri=sqlite_uri, experiment="midnight")  # the same instance, restarted
    clock = Clock(midnight + W)
    with bridge(config, clock) as (rec, sink):
        wait_for(lambda: sink.health()["spool_bytes"] == 0, "the spool to be replayed")
        wait_for(lambda: runs(sqlite_uri, "midnight")["chat-test-2023-11-14"].info.status == "FINISHED", "the end")
        assert runs(sqlite_uri, "midnight")["chat-test-2023-11-15"].info.status == "RUNNING"  # still today's
    assert runs(sqlite_uri, "midnight")["chat-test-2023-11-15"].info.status == "FINISHED"
