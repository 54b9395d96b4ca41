"""Multiprocess mode: ``llm-exporter run --workers 2`` with real uvicorn workers, and dead workers' files.

A scrape must return the sum over every worker, whichever worker (or the separate metrics port) serves
it. Requests are spread until both workers have recorded, so the sum really crosses processes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from exporter.prometheus.exposition import render
from exporter.prometheus.multiprocess import clean_dead_workers

from ..support.cli import PLAIN, REPO, exporter_cmd, exporter_env, http_labels, scrape
from ..support.metrics import text_samples
from ..support.servers import HOST, free_port, process

DURATION = "http_server_request_duration_seconds"
ITEMS = http_labels("GET", "/items/{item_id}", "200")
ECHO = http_labels("POST", "/echo", "200")
ACTIVE_ITEMS = ("http_server_active_requests", (("http_request_method", "GET"), ("http_route", "/items/{item_id}")))


@dataclass
class Workers:
    url: str
    metrics_url: str
    prom_dir: Path


def key(name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def recording_pids(prom_dir: Path) -> set[int]:
    """Workers that have recorded a request (histogram values exist only once a request was observed)."""
    return {int(m.group(1)) for f in prom_dir.iterdir() if (m := re.fullmatch(r"histogram_(\d+)\.db", f.name))}


def stale_counter(prom_dir: Path) -> None:
    """A value file left by an earlier run; ``run`` must wipe it before the workers start."""
    code = "from prometheus_client import Counter; Counter('stale', 'from an earlier run').inc(5)"
    subprocess.run([sys.executable, "-c", code], env=exporter_env(PROMETHEUS_MULTIPROC_DIR=str(prom_dir)), check=True)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Two workers, scraped on the app port."""
    workdir = tmp_path_factory.mktemp("workers")
    prom_dir = workdir / "prom"
    prom_dir.mkdir()
    stale_counter(prom_dir)
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = exporter_cmd("run", PLAIN, "--workers", "2", "--port", str(port))
    env = exporter_env(PROMETHEUS_MULTIPROC_DIR=str(prom_dir))
    with process(args, f"{url}/health", cwd=REPO, env=env, log=str(workdir / "server.log")):
        yield Workers(url, url, prom_dir)


@pytest.fixture(scope="module")
def workers_metrics_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Two workers, scraped on a separate port served by the parent process."""
    workdir = tmp_path_factory.mktemp("workers-metrics-port")
    prom_dir = workdir / "prom"
    prom_dir.mkdir()
    port, metrics_port = free_port(), free_port()
    url = f"http://{HOST}:{port}"
    args = exporter_cmd("run", PLAIN, "--workers", "2", "--port", str(port), "--metrics-port", str(metrics_port))
    env = exporter_env(PROMETHEUS_MULTIPROC_DIR=str(prom_dir))
    with process(args, f"{url}/health", cwd=REPO, env=env, log=str(workdir / "server.log")):
        yield Workers(url, f"http://{HOST}:{metrics_port}", prom_dir)


def spread(w: Workers, request: Callable[[httpx.Client, int], int], batch: int = 8, max_batches: int = 40) -> int:
    """Send concurrent batches on fresh connections until both workers have recorded; returns how many."""
    sent = 0

    def one(i: int) -> int:
        with httpx.Client(base_url=w.url, timeout=10) as client:  # a new connection each: any worker may take it
            return request(client, i)

    with ThreadPoolExecutor(batch) as pool:
        for _ in range(max_batches):
            statuses = list(pool.map(one, range(sent, sent + batch)))
            assert statuses == [200] * batch
            sent += batch
            if len(recording_pids(w.prom_dir)) == 2:
                return sent
    raise AssertionError(f"{sent} requests all went to worker(s) {recording_pids(w.prom_dir)}")


def test_one_scrape_sums_all_workers(workers: Workers) -> None:
    n = spread(workers, lambda client, i: client.get(f"/items/{i}").status_code)
    got = scrape(workers.url, lambda s: s.get(key(f"{DURATION}_count", ITEMS)) == n and s.get(ACTIVE_ITEMS) == 0)
    assert got[key(f"{DURATION}_count", ITEMS)] == n
    assert got[key(f"{DURATION}_bucket", {**ITEMS, "le": "+Inf"})] == n
    assert got[key("http_server_request_body_size_bytes_count", ITEMS)] == n
    assert got[ACTIVE_ITEMS] == 0
    assert len(recording_pids(workers.prom_dir)) == 2


def test_sizes_summed_over_workers(workers: Workers) -> None:
    before = scrape(workers.url, lambda s: True).get(key("http_server_request_body_size_bytes_sum", ECHO), 0.0)
    n = spread(workers, lambda client, i: client.post("/echo", content=b"12345").status_code)
    sums = key("http_server_request_body_size_bytes_sum", ECHO)
    got = scrape(workers.url, lambda s: s.get(sums) == before + 5 * n)
    assert got[sums] == before + 5 * n
    assert got[key("http_server_response_body_size_bytes_sum", ECHO)] == before + 5 * n


def test_earlier_run_wiped(workers: Workers) -> None:
    got = scrape(workers.url, lambda s: True)
    assert not [name for name, _ in got if name.startswith("stale")]


def test_name_filter_in_multiprocess_mode(workers: Workers) -> None:
    spread(workers, lambda client, i: client.get(f"/items/{i}").status_code)
    got = scrape(workers.url, lambda s: s.get(ACTIVE_ITEMS) == 0, **{"name[]": "http_server_active_requests"})
    assert {name for name, _ in got} == {"http_server_active_requests"}
    assert got[ACTIVE_ITEMS] == 0


def test_openmetrics_in_multiprocess_mode(workers: Workers) -> None:
    r = httpx.get(f"{workers.url}/metrics", headers={"accept": "application/openmetrics-text"}, timeout=10)
    assert r.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n")


def test_metrics_port_serves_all_workers(workers_metrics_port: Workers) -> None:
    w = workers_metrics_port
    n = spread(w, lambda client, i: client.get(f"/items/{i}").status_code)
    got = scrape(w.metrics_url, lambda s: s.get(key(f"{DURATION}_count", ITEMS)) == n and s.get(ACTIVE_ITEMS) == 0)
    assert got[key(f"{DURATION}_count", ITEMS)] == n
    assert got[ACTIVE_ITEMS] == 0
    # Not on the app port: that is the app's own 404, and it is not recorded either.
    assert httpx.get(f"{w.url}/metrics", timeout=10).status_code == 404
    got = scrape(w.metrics_url, lambda s: True)
    assert key(f"{DURATION}_count", http_labels("GET", "__unmatched__", "404")) not in got


# -- dead workers ------------------------------------------------------------------------------------------------

CHILD = """
import os, sys
from prometheus_client import Counter, Gauge
Gauge("inflight", "in flight", multiprocess_mode="livesum").inc(2)
Counter("done", "done").inc(3)
print(os.getpid(), flush=True)
sys.stdin.read()  # a worker busy with two requests, until the test lets it go
"""


def test_dead_worker_live_gauges_are_cleaned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env=exporter_env(PROMETHEUS_MULTIPROC_DIR=str(prom_dir)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(child.stdout.readline())  # type: ignore[union-attr]
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(prom_dir))
        live = prom_dir / f"gauge_livesum_{pid}.db"
        assert clean_dead_workers(str(prom_dir)) == []  # alive: kept
        assert live.exists()
        text = render(CollectorRegistry())[0].decode()
        assert text_samples(text)[key("inflight", {})] == 2.0
        assert text_samples(text)[key("done_total", {})] == 3.0
    finally:
        child.communicate("", timeout=20)  # closes stdin: the child exits without decrementing its gauge
    assert child.returncode == 0
    assert clean_dead_workers(str(prom_dir)) == [pid]
    assert not live.exists()
    assert (prom_dir / f"counter_{pid}.db").exists()  # what a dead worker counted still counts
    assert clean_dead_workers(str(prom_dir)) == []
    got = text_samples(render(CollectorRegistry())[0].decode())
    assert key("inflight", {}) not in got
    assert got[key("done_total", {})] == 3.0


def test_scrape_cleans_dead_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    code = CHILD.replace("sys.stdin.read()", "pass")
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=exporter_env(PROMETHEUS_MULTIPROC_DIR=str(prom_dir)),
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(done.stdout)
    assert (prom_dir / f"gauge_livesum_{pid}.db").exists()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(prom_dir))
    got = text_samples(render(CollectorRegistry())[0].decode())
    assert key("inflight", {}) not in got
    assert got[key("done_total", {})] == 3.0
    assert not (prom_dir / f"gauge_livesum_{pid}.db").exists()
