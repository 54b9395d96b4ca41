"""End to end: test app -> real Prometheus (1 s scrapes and evaluations) -> real Alertmanager -> webhook.

Prometheus loads a copy of the shipped rule files in which only the range windows and ``for:`` are
shortened (minutes and hours become seconds, in the same order); every expression, label and
annotation is the shipped one. Alertmanager runs the shipped routing and inhibition with short group
timings and its webhooks pointed at a receiver in this test.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter import Config
from exporter.drift import DriftSink
from exporter.recorder import Recorder
from exporter.wiring import recorder_for

from ..support import REPO
from ..support.servers import (
    HOST,
    ThreadServer,
    Webhook,
    alertmanager,
    eventually,
    llm_app,
    prom_get,
    prometheus,
    scrape_config,
)

pytestmark = pytest.mark.e2e

TEMPLATES = REPO / "monitoring-templates"
JOB = "llm-app"
ERROR_RATIO = "job:http_server_request_errors:ratio_rate5m"
# Shipped window -> test window: a few 1 s scrapes each, and the same order, so the short window of
# each multi-window alert is still the shorter one.
WINDOWS = {"5m": "4s", "15m": "5s", "30m": "6s", "1h": "10s", "2h": "12s", "6h": "20s", "1d": "30s", "3d": "60s"}
DRIFT_BASELINE = 40


def quick_rules(source: Path, out: Path) -> Path:
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    for group in spec["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            # A window missing from WINDOWS is a KeyError: a new shipped window must be mapped here.
            rule["expr"] = re.sub(
                r"(\[|offset )(\d+[smhd])\b", lambda m: m.group(1) + WINDOWS[m.group(2)], rule["expr"]
            )
            if "for" in rule:
                rule["for"] = "1s"
    out.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out


def quick_alertmanager(webhook: str) -> str:
    config = yaml.safe_load((TEMPLATES / "alertmanager.yml").read_text(encoding="utf-8"))

    def fast(route: dict[str, Any]) -> None:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        for child in route.get("routes", []):
            fast(child)

    fast(config["route"])
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"{webhook}/{receiver['name']}"
    return yaml.safe_dump(config, sort_keys=False)


def shipped(alert: str, **labels: str) -> dict[str, Any]:
    groups = yaml.safe_load((TEMPLATES / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    (rule,) = [
        r
        for g in groups
        for r in g["rules"]
        if r.get("alert") == alert and all(r["labels"].get(k) == v for k, v in labels.items())
    ]
    return rule


class Traffic:
    """Requests to ``path`` in a loop on a thread, until stopped; ``path`` can be switched meanwhile."""

    def __init__(self, url: str, path: str) -> None:
        self.path = path
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=url, timeout=10)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._client.get(self.path)
            self._stop.wait(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.close()


@dataclass
class Stack:
    recorder: Recorder
    app: str
    prometheus: str
    alertmanager: str
    webhook: Webhook
    traffic: Traffic


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("alerting")
    config = Config.from_mapping(
        {
            "drift": {
                "features": ["input_tokens"],
                "baseline_size": DRIFT_BASELINE,
                "min_samples": 20,
                "window_seconds": 30,
                "score_interval_seconds": 0.5,
            },
        }
    )
    recorder = recorder_for(CollectorRegistry(), config)
    rules = tuple(str(quick_rules(TEMPLATES / f, tmp / f)) for f in ("recording-rules.yml", "alerts.yml"))
    try:
        with (
            ThreadServer(llm_app(recorder)) as app,
            Webhook() as webhook,
            alertmanager(quick_alertmanager(webhook.url), tmp / "alertmanager") as am,
        ):
            prom_config = scrape_config(JOB, f"{HOST}:{app.port}", urlsplit(am).netloc, rules)
            with prometheus(prom_config, tmp / "prometheus") as prom, Traffic(app.url, "/ok") as traffic:
                eventually(lambda: _query(prom, "up == 1"), 30, "first scrape")
                # Healthy traffic first, so the error ratios start from a clean history.
                eventually(lambda: _query(prom, f"{ERROR_RATIO} == 0"), 30, "a healthy error ratio recorded")
                yield Stack(recorder, app.url, prom, am, webhook, traffic)
    finally:
        recorder.close()


def _query(prom: str, query: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = prom_get(prom, "/api/v1/query", query=query)["result"]
    return result


def _notified(status: str, alert: str, receiver: str, severity: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """A webhook.wait_for matcher: a notification of ``alert`` with this status, to this receiver."""

    def match(n: dict[str, Any]) -> bool:
        labels = n["commonLabels"]
        if n["status"] != status or n["receiver"] != receiver or labels.get("alertname") != alert:
            return False
        return severity is None or labels.get("severity") == severity

    return match


def test_5xx_traffic_pages_with_labels_and_annotations_then_resolves(stack: Stack) -> None:
    def fast_page(n: dict[str, Any]) -> bool:
        # The 6h/30m page has the same alert name and job, so it may share (or precede) the notification.
        firing = _notified("firing", "HTTPErrorBudgetBurn", "pager", "critical")
        return firing(n) and any(a["labels"]["long_window"] == "1h" for a in n["alerts"])

    stack.traffic.path = "/fail"  # every request now answers 503
    page = stack.webhook.wait_for(fast_page, 60, "the 1h/5m page")
    stack.traffic.path = "/ok"

    (alert,) = [a for a in page["alerts"] if a["labels"]["long_window"] == "1h"]
    assert alert["labels"] == {
        "alertname": "HTTPErrorBudgetBurn",
        "job": JOB,
        "severity": "critical",
        "slo": "availability",
        "long_window": "1h",
        "short_window": "5m",
    }
    rule = shipped("HTTPErrorBudgetBurn", long_window="1h")
    notes = alert["annotations"]
    assert notes["summary"] == rule["annotations"]["summary"]
    assert notes["runbook_url"] == rule["annotations"]["runbook_url"]
    assert re.fullmatch(
        r"\d+(\.\d+)?% of the HTTP requests of job llm-app answered 5xx over the last 1h \(and still over the last "
        r"5m\), more than 14\.4 times the rate the availability objective allows\.",
        notes["description"],
    ), notes["description"]

    # Traffic has recovered: the page resolves (its 5m, here 4 s, window clears first).
    resolved = stack.webhook.wait_for(_notified("resolved", "HTTPErrorBudgetBurn", "pager"), 60, "the page resolved")
    assert resolved["commonLabels"]["job"] == JOB
    assert all(a["status"] == "resolved" for a in resolved["alerts"])
    assert stack.webhook.notifications.index(resolved) > stack.webhook.notifications.index(page)


def test_a_distribution_shift_raises_the_drift_alert(stack: Stack) -> None:
    with httpx.Client(base_url=stack.app, timeout=10) as client:
        # Prompts of 80..119 tokens fix the baseline; then they jump to about 2,000 tokens.
        for i in range(DRIFT_BASELINE):
            client.post("/v1/chat/completions", json={"prompt_tokens": 80 + i % 40})
        for i in range(40):
            client.post("/v1/chat/completions", json={"prompt_tokens": 2000 + i})
    # The baseline's 40 distinct values make 10 bins of 0.1 each; every shifted prompt is beyond them, in the
    # top bin, so the 9 others get epsilon (1e-4). Any window of >= min_samples of them scores the same.
    expected = (1.0 - 0.1) * math.log(1.0 / 0.1) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)  # 8.28309
    [drift] = [s for s in stack.recorder.sinks if isinstance(s, DriftSink)]
    assert drift.score_now()["input_tokens"]["psi"] == pytest.approx(expected, rel=1e-12)
    note = stack.webhook.wait_for(_notified("firing", "LLMDriftDetected", "tickets", "warning"), 60, "the drift ticket")
    (alert,) = note["alerts"]
    assert alert["labels"] == {
        "alertname": "LLMDriftDetected",
        "job": JOB,
        "feature": "input_tokens",
        "severity": "warning",
    }
    rule = shipped("LLMDriftDetected")
    assert alert["annotations"]["summary"] == rule["annotations"]["summary"]
    assert alert["annotations"]["runbook_url"] == rule["annotations"]["runbook_url"]
    assert alert["annotations"]["description"] == (
        "Feature input_tokens of job llm-app has a PSI of 8.283 against its baseline, above drift.psi_threshold."
    )


def test_a_critical_alert_inhibits_the_warning_of_the_same_alert_and_job(stack: Stack) -> None:
    def alert(job: str, severity: str) -> dict[str, Any]:
        return {"labels": {"alertname": "InhibitionProbe", "job": job, "severity": severity}}

    httpx.post(
        f"{stack.alertmanager}/api/v2/alerts",
        json=[alert("probe", "critical"), alert("probe", "warning"), alert("other", "warning")],
    ).raise_for_status()

    def states() -> dict[tuple[str, str], str] | None:
        found = prom_get(stack.alertmanager, "/api/v2/alerts", filter='alertname="InhibitionProbe"')
        got = {(a["labels"]["job"], a["labels"]["severity"]): a["status"]["state"] for a in found}
        return got if len(got) == 3 and got[("probe", "warning")] == "suppressed" else None

    assert eventually(states, 30, "the warning inhibited") == {
        ("probe", "critical"): "active",
        ("probe", "warning"): "suppressed",
        ("other", "warning"): "active",  # another job: not inhibited
    }
    # The warnings were sent together: when the other job's arrives, an uninhibited one would be there too.
    stack.webhook.wait_for(_notified("firing", "InhibitionProbe", "tickets", "warning"), 30, "the other job's warning")
    warned = [n for n in stack.webhook.notifications if _notified("firing", "InhibitionProbe", "tickets")(n)]
    assert {n["commonLabels"]["job"] for n in warned} == {"other"}
