"""The monitoring templates, checked with the real tools: promtool, amtool and docker-compose.

Rules, Alertmanager, prometheus.yml, docker-compose.yml, Grafana provisioning and the Kubernetes
manifests; the dashboard has its own module (test_dashboard.py), the live stack test_alerting_e2e.py.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ..support import REPO
from ..support.servers import binary

ROOT = REPO
TEMPLATES = ROOT / "monitoring-templates"
RUNBOOK = TEMPLATES / "RUNBOOK.md"
RUNBOOK_URL = "https://github.com/llm-exporter/llm-exporter/blob/main/monitoring-templates/RUNBOOK.md"
SEVERITIES = {"critical", "warning", "info"}
UNCOMMENT_MARKER = "(uncomment to use):"


def run(*args: str, cwd: Path = ROOT) -> str:
    """Run a tool; returns its stdout (promtool and amtool report on stdout, warn on stderr)."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def uncomment(text: str) -> str:
    """The documented optional blocks switched on: after a comment ending in "(uncomment to use):", the
    following commented lines lose their "# "."""
    out: list[str] = []
    active = False
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#") and stripped.endswith(UNCOMMENT_MARKER):
            active = True
        elif active and stripped.startswith("# "):
            at = line.index("# ")
            line = line[:at] + line[at + 2 :]
        else:
            active = False
        out.append(line)
    return "\n".join(out) + "\n"


def rules(filename: str, kind: str) -> list[dict[str, Any]]:
    return [r for g in load(TEMPLATES / filename)["groups"] for r in g["rules"] if kind in r]


ALERTS = rules("alerts.yml", "alert")
RECORDS = rules("recording-rules.yml", "record")
UNIT_TESTS = sorted((TEMPLATES / "tests").glob("*.yml"))


# -- Prometheus rules ---------------------------------------------------------------------------------


def test_prometheus_config_and_its_rule_files_are_valid() -> None:
    out = run(binary("promtool"), "check", "config", "prometheus.yml")
    assert f"SUCCESS: {len(RECORDS)} rules found" in out
    assert f"SUCCESS: {len(ALERTS)} rules found" in out


def test_prometheus_config_with_remote_write_switched_on_is_valid(tmp_path: Path) -> None:
    text = uncomment((ROOT / "prometheus.yml").read_text(encoding="utf-8"))
    (tmp_path / "prometheus.yml").write_text(text)
    (tmp_path / "monitoring-templates").symlink_to(TEMPLATES)
    run(binary("promtool"), "check", "config", "prometheus.yml", cwd=tmp_path)
    urls = [w["url"] for w in yaml.safe_load(text)["remote_write"]]
    assert [urlsplit(u).port for u in urls] == [19291, 9009, 8428]  # Thanos, Mimir, VictoriaMetrics


def test_promtool_unit_tests_pass() -> None:
    out = run(binary("promtool"), "test", "rules", *(str(p) for p in UNIT_TESTS))
    assert out.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_has_unit_tests_that_fire_and_stay_quiet() -> None:
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    groups = [g["name"] for f in ("recording-rules.yml", "alerts.yml") for g in load(TEMPLATES / f)["groups"]]
    for path in UNIT_TESTS:
        spec = load(path)
        # Without the full order promtool evaluates groups at random and the alerts may read stale records.
        assert spec["group_eval_order"] == groups, path.name
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    quiet.add(check["alertname"])
                fired |= {(check["alertname"], a["exp_labels"]["severity"]) for a in expected}
    assert fired == {(a["alert"], a["labels"]["severity"]) for a in ALERTS}
    assert quiet == {a["alert"] for a in ALERTS}


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"(?:[A-Z][a-z0-9]*|[A-Z]{2,}(?=[A-Z][a-z]|$))+", name), f"{name} is not CamelCase"
    assert rule["labels"]["severity"] in SEVERITIES
    notes = rule["annotations"]
    assert set(notes) == {"summary", "description", "runbook_url"}
    assert "{{" not in notes["summary"] and notes["summary"].endswith(".")
    assert "$labels." in notes["description"]
    assert "$value" in notes["description"]
    assert notes["runbook_url"] == f"{RUNBOOK_URL}#{name.lower()}"


def test_runbook_has_one_section_per_alert() -> None:
    headings = re.findall(r"^## (\S+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.M)
    assert sorted(headings) == sorted({a["alert"] for a in ALERTS})
    assert len(headings) == len(set(headings))


def test_recording_rule_names_are_level_metric_operations() -> None:
    names = [r["record"] for r in RECORDS]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), name


def test_every_recording_rule_is_used_by_an_alert_or_the_dashboard() -> None:
    users = " ".join(a["expr"] for a in ALERTS) + (ROOT / "grafana/dashboards/llm-exporter.json").read_text()
    unused = [r["record"] for r in RECORDS if not re.search(rf"{re.escape(r['record'])}\b", users)]
    assert unused == []


def test_bucket_matchers_use_the_float_form_prometheus_client_renders() -> None:
    exprs = [r["expr"] for r in ALERTS + RECORDS]
    bounds = [b for e in exprs for b in re.findall(r'\ble\s*=~?\s*"([^"]*)"', e)]
    assert bounds  # the latency SLO and the confidence ratio use one
    for bound in bounds:
        assert bound == "+Inf" or ("." in bound and float(bound) > 0), bound


# -- Alertmanager --------------------------------------------------------------------------------------


def test_alertmanager_config_is_valid() -> None:
    run(binary("amtool"), "check-config", str(TEMPLATES / "alertmanager.yml"))


def test_alertmanager_slack_and_email_blocks_are_valid_once_uncommented(tmp_path: Path) -> None:
    text = uncomment((TEMPLATES / "alertmanager.yml").read_text(encoding="utf-8"))
    config = tmp_path / "alertmanager.yml"
    config.write_text(text)
    run(binary("amtool"), "check-config", str(config))
    receivers = {r["name"]: r for r in yaml.safe_load(text)["receivers"]}
    assert "slack_configs" in receivers["pager"] and "email_configs" in receivers["tickets"]


@pytest.mark.parametrize(
    ("severity", "receiver"), [("critical", "pager"), ("warning", "tickets"), ("info", "info"), ("", "tickets")]
)
def test_alertmanager_routes_by_severity(severity: str, receiver: str) -> None:
    labels = ["alertname=HTTPErrorBudgetBurn", "job=app", *([f"severity={severity}"] if severity else [])]
    config = f"--config.file={TEMPLATES / 'alertmanager.yml'}"
    out = run(binary("amtool"), "config", "routes", "test", config, *labels)
    assert out.split() == [receiver]


def test_alertmanager_groups_and_inhibits_by_alert_name_and_job() -> None:
    config = load(TEMPLATES / "alertmanager.yml")
    assert config["route"]["group_by"] == ["alertname", "job"]
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "job"],
        }
    ]
    # Resolved notifications matter for pages and tickets.
    hooks = {r["name"]: r["webhook_configs"] for r in config["receivers"]}
    assert all(h["send_resolved"] for name in ("pager", "tickets") for h in hooks[name])


# -- docker-compose, prometheus.yml, Grafana provisioning --------------------------------------------


def compose() -> dict[str, Any]:
    return load(ROOT / "docker-compose.yml")


def test_docker_compose_config_is_valid() -> None:
    run(binary("docker-compose"), "-f", "docker-compose.yml", "config", "-q")


def test_compose_images_are_pinned_and_every_service_has_a_health_check() -> None:
    services = compose()["services"]
    assert set(services) == {"app", "collector", "prometheus", "alertmanager", "alert-log", "grafana", "mlflow"}
    for name, service in services.items():
        image = service["image"]
        if "build" in service:
            assert image == "llm-exporter:local", name
        else:
            tag = image.rsplit(":", 1)[1]
            assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
        assert service["healthcheck"]["test"][0] == "CMD", name
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), flags=re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))


def test_compose_mounts_exist_and_targets_are_services() -> None:
    services = compose()["services"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), volume
    prom = load(ROOT / "prometheus.yml")
    hosts = {
        t.split(":")[0]
        for job in prom["scrape_configs"] + prom["alerting"]["alertmanagers"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    assert hosts - {"localhost"} <= set(services)
    hooks = [h["url"] for r in load(TEMPLATES / "alertmanager.yml")["receivers"] for h in r["webhook_configs"]]
    assert {urlsplit(u).netloc for u in hooks} == {"alert-log:9099"}
    assert '("0.0.0.0", 9099)' in services["alert-log"]["command"][0]


def test_grafana_provisioning_matches_compose() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = load(ROOT / "grafana/provisioning/dashboards/llm-exporter.yml")["providers"]
    assert provider["options"]["path"] == mounts["./grafana/dashboards"]
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(provider["options"]["path"])
    sources = load(ROOT / "grafana/provisioning/datasources/llm-exporter.yml")["datasources"]
    prometheus = next(s for s in sources if s["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090" and prometheus["isDefault"] is True
    scrape = load(ROOT / "prometheus.yml")["global"]["scrape_interval"]
    assert prometheus["jsonData"]["timeInterval"] == scrape  # what $__rate_interval is sized from


# -- Kubernetes --------------------------------------------------------------------------------------


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", TEMPLATES / "kubernetes" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_is_generated_from_the_rule_files() -> None:
    committed = (TEMPLATES / "kubernetes" / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == generator().render(), "run python monitoring-templates/kubernetes/generate.py"
    recording, alerting = yaml.safe_load_all(committed)
    assert recording["kind"] == alerting["kind"] == "PrometheusRule"
    assert recording["spec"] == load(TEMPLATES / "recording-rules.yml")
    assert alerting["spec"] == load(TEMPLATES / "alerts.yml")


def test_generator_check_mode_sees_a_stale_file(tmp_path: Path) -> None:
    gen = generator()
    script = str(TEMPLATES / "kubernetes" / "generate.py")
    run("python", script, "--check")
    for name in ("recording-rules.yml", "alerts.yml"):
        (tmp_path / name).write_text((TEMPLATES / name).read_text().replace("for: 15m", "for: 20m"))
    assert gen.render(tmp_path) != gen.render()


def test_servicemonitor_scrapes_like_prometheus_yml() -> None:
    monitor = load(TEMPLATES / "kubernetes" / "servicemonitor.yaml")
    assert monitor["kind"] == "ServiceMonitor"
    (endpoint,) = monitor["spec"]["endpoints"]
    prom = load(ROOT / "prometheus.yml")
    app = next(j for j in prom["scrape_configs"] if j["job_name"] == "llm-app")
    assert endpoint["path"] == app["metrics_path"]
    assert endpoint["interval"] == prom["global"]["scrape_interval"]
    kustomization = load(TEMPLATES / "kubernetes" / "kustomization.yaml")
    assert all((TEMPLATES / "kubernetes" / r).is_file() for r in kustomization["resources"])
