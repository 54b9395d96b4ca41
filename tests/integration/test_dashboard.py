"""The Grafana dashboard: its JSON model, and every query run on a real Prometheus scraping a live app.

The live part wraps a test app (tests/servers.py ``llm_app``) whose traffic moves every metric family,
lets a real Prometheus scrape it every second with the shipped rule files loaded, and checks the
metric names of the dashboard and the rules against the app's real ``/metrics``: once for each set of
GenAI convention names (``gen_ai_conventions``), since the dashboard and the rules serve both.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter import Config
from exporter.config import DriftConfig
from exporter.conventions import ALIASES, DEFAULT, LATEST, NAMES, prometheus_name
from exporter.pricing.source import GenaiPrices
from exporter.wiring import recorder_for

from ..support import REPO
from ..support.servers import HOST, ThreadServer, eventually, free_port, llm_app, prom_get, prometheus, scrape_config

ROOT = REPO
DASHBOARD = ROOT / "grafana" / "dashboards" / "llm-exporter.json"
TEMPLATES = ROOT / "monitoring-templates"
DS = "${datasource}"
VARIABLES = ("job", "instance", "model", "route")
ROWS = ["Traffic and errors", "Latency", "LLM", "Streaming and agents", "Quality", "Drift", "Exporter health"]
# Series Prometheus makes itself for every target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
JOB = "llm-app"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "inf", "nan"}
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")
_ALTERNATIVES = re.compile(r'__name__\s*=~\s*"([^"]*)"')
# A selector without a metric name: its names are in its __name__ matcher.
_NAMELESS = re.compile(r"(?<![\w:])\{([^}]*__name__[^}]*)\}")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (a small tokenizer: enough for these templates)."""
    names = {n for alt in re.findall(r'__name__\s*=~?\s*"([^"]*)"', expr) for n in alt.split("|")}
    text = _STRING.sub(" ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    for m in _IDENT.finditer(text):
        before = text[m.start() - 1] if m.start() else " "
        if before.isdigit() or before in ".$":  # 1e-09, 14.4, $variables
            continue
        if text[m.end() :].lstrip().startswith("(") or m.group() in _KEYWORDS:  # a function, an operator
            continue
        names.add(m.group())
    return names


def alternatives(expr: str) -> list[set[str]]:
    """The name sets of an expression's ``__name__=~"a|b"`` selectors: each reads whichever of them exists."""
    return [set(alt.split("|")) for alt in _ALTERNATIVES.findall(expr)]


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # a collapsed row keeps its panels inside
    return out


def queries(d: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in all_panels(d) for t in p.get("targets", [])]


def variables(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in d["templating"]["list"]}


def variable_query(v: dict[str, Any]) -> tuple[str, str]:
    """(series selector, label) of a ``label_values(selector, label)`` variable."""
    query = v["query"] if isinstance(v["query"], str) else v["query"]["query"]
    m = _LABEL_VALUES.match(query)
    assert m, query
    return m.group(1), m.group(2)


def rule_list(filename: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load((TEMPLATES / filename).read_text(encoding="utf-8"))["groups"]
    return [r for g in groups for r in g["rules"]]


def rule_exprs() -> list[str]:
    return [r["expr"] for f in ("recording-rules.yml", "alerts.yml") for r in rule_list(f)]


def recorded() -> set[str]:
    return {r["record"] for r in rule_list("recording-rules.yml")}


# -- the JSON model ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{job=~"$job", le="1.0"}[$__rate_interval]))', {"a_bucket"}),
        ("x:y:ratio_rate1h / on () group_left () (1 - g:o:ratio) > 14.4 * 1e-09", {"x:y:ratio_rate1h", "g:o:ratio"}),
        ('label_replace(rate(c_total[5m] offset 1h), "d", "${1}xx", "e", "(.)")', {"c_total"}),
        ('{__name__=~"f_count|g_total", job="j"}', {"f_count", "g_total"}),
        ("up == 0 and on (job) h unless i", {"up", "h", "i"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_dashboard_model() -> None:
    d = load()
    assert d["uid"] == "llm-exporter" and d["title"] and isinstance(d["version"], int) and d["version"] >= 1
    # 41 is what Grafana 12 writes; newer versions migrate it on load.
    assert d["schemaVersion"] >= 41
    # Provisioning cannot resolve import placeholders, and a fixed data source uid breaks other setups.
    assert "__inputs" not in d and "__requires" not in d
    text = DASHBOARD.read_text(encoding="utf-8")
    assert "${DS_" not in text
    uids = re.findall(r'"uid":\s*"([^"]*)"', text)
    assert set(uids) == {"llm-exporter", DS, "-- Grafana --"}


def test_variables() -> None:
    v = variables(load())
    assert list(v) == ["datasource", *VARIABLES]
    assert v["datasource"]["type"] == "datasource" and v["datasource"]["query"] == "prometheus"
    for name in VARIABLES:
        var = v[name]
        assert var["type"] == "query" and var["datasource"]["uid"] == DS, name
        assert var["multi"] is True and var["includeAll"] is True and var["allValue"] == ".*", name


def test_rows() -> None:
    assert [p["title"] for p in load()["panels"] if p["type"] == "row"] == ROWS


def test_panel_ids_are_unique_and_the_grid_has_no_overlap() -> None:
    panels = all_panels(load())
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_every_query_uses_the_datasource_variable_and_rate_interval() -> None:
    for p in all_panels(load()):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": DS}, p["title"]
        assert p["targets"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": DS}, p["title"]
            windows = re.findall(r"\[([^\]]*)\]", _STRING.sub('""', t["expr"]))
            assert all(w == "$__rate_interval" for w in windows), (p["title"], windows)


def test_heatmap_reads_the_buckets() -> None:
    (heatmap,) = [p for p in all_panels(load()) if p["type"] == "heatmap"]
    (target,) = heatmap["targets"]
    assert target["format"] == "heatmap" and target["legendFormat"] == "{{le}}"
    assert target["expr"].startswith("sum by (le) (rate(http_server_request_duration_seconds_bucket{")


def test_drift_panel_draws_the_alert_threshold() -> None:
    (panel,) = [p for p in all_panels(load()) if p["title"] == "Drift: PSI by feature"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == DriftConfig().psi_threshold
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    # ...and the threshold each exporter really uses, which the alert compares with.
    assert any("llm_drift_threshold" in metric_names(t["expr"]) for t in panel["targets"])
    alerts = (TEMPLATES / "alerts.yml").read_text()
    assert "llm_drift_threshold" in alerts


def test_price_data_panel_draws_the_alert_threshold() -> None:
    (panel,) = [p for p in all_panels(load()) if p["title"] == "Price data age"]
    days = panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] / 86400
    (alert,) = [r for r in rule_list("alerts.yml") if r.get("alert") == "LLMExporterPriceDataStale"]
    assert days == 60 and alert["expr"].endswith(f"> {days:g} * 86400")
    assert metric_names(panel["targets"][0]["expr"]) == {"llm_exporter_price_data_timestamp_seconds"}


def test_missing_usage_has_its_panel_and_alert() -> None:
    (panel,) = [p for p in all_panels(load()) if p["title"] == "Calls without usage"]
    assert metric_names(panel["targets"][0]["expr"]) == {"llm_exporter_missing_usage_total"}
    assert "reason" in panel["targets"][0]["legendFormat"]
    (alert,) = [r for r in rule_list("alerts.yml") if r.get("alert") == "LLMExporterMissingUsage"]
    assert metric_names(alert["expr"]) == {"llm_exporter_missing_usage_total"}


def test_every_convention_name_is_read_under_both_name_sets() -> None:
    """A panel that reads a family whose name depends on gen_ai_conventions reads both names, in one
    __name__ alternation (never the deprecated alias too: default-mode exporters expose both, and the
    sum would count each observation twice)."""
    # (default name, latest name) of each signal renamed. A family split in two in the latest set (the token
    # histogram: one per token type) is in two pairs, and each query reads it with one of them.
    pairs = [
        (prometheus_name(signal, DEFAULT), prometheus_name(signal, LATEST))
        for signal, row in NAMES.items()
        if row.default != row.latest
    ]
    renamed = {name for pair in pairs for name in pair}
    exprs = [q for _, q in queries(load())] + rule_exprs()
    found = 0
    for expr in exprs:
        for name in metric_names(expr):
            family = re.sub(r"_(bucket|count|sum)$", "", name)
            assert family not in ALIASES.values(), expr
            if family in renamed:
                (alts,) = [a for a in alternatives(expr) if name in a]
                suffix = name[len(family) :]
                assert alts in [{d + suffix, n + suffix} for d, n in pairs if family in (d, n)], expr
                found += 1
    # The LLM latency panel, the two TTFT quantiles, the two chunk-gap quantiles and the input and output
    # token quantiles: each name of both sets.
    assert found == 2 * 7


@pytest.mark.e2e
def test_the_deprecated_ttft_name_is_a_copy_in_the_default_set_only(stack: Stack) -> None:
    old = f'sum(gen_ai_client_time_to_first_token_seconds_count{{job="{JOB}"}})'
    new = f'sum({prometheus_name("llm_ttft", stack.conventions)}_count{{job="{JOB}"}})'
    streams = _scalar(stack.prometheus, new)
    # Every third of the 48 chats streams (16), plus in each of the 3 bursts (each starts at a multiple of 3,
    # so its extra chats stream too) a stream without usage, one cut at the length limit and one filtered.
    assert streams == "25"
    assert _scalar(stack.prometheus, old) == (streams if stack.conventions == DEFAULT else None)


# -- live: a real Prometheus scraping the test app ---------------------------------------------------


@dataclass
class Stack:
    prometheus: str
    instance: str
    exposition: str
    conventions: str


def _chat(client: httpx.Client, i: int, **body: Any) -> None:
    body.setdefault("model", ("gpt-4o-mini", "gpt-4o", "acme-support-7b")[i % 3])
    body.setdefault("prompt_tokens", 80 + (i * 7) % 40)
    body.setdefault("completion_tokens", 20 + i % 15)
    body.setdefault("label", ("booking", "pricing")[i % 2])
    body.setdefault("confidence", 0.35 + (i % 10) / 16)
    body.setdefault("evaluation", 0.6 + (i % 5) / 20)
    body.setdefault("rating", 1 + i % 5)
    body.setdefault("event", ("appointment_requested", "human_handoff")[i % 2])
    body.setdefault("stream", i % 3 == 0)
    assert client.post("/v1/chat/completions", json=body).status_code == 200


def _burst(client: httpx.Client, start: int, n: int, **body: Any) -> None:
    for i in range(start, start + n):
        _chat(client, i, **body)
    client.get("/ok")
    client.get("/fail")
    client.get("/broken")
    client.post("/v1/chat/completions", json={"model": "gpt-4o", "upstream_error": True})
    # A stream without usage: counted in llm_exporter_missing_usage_total, not as zero tokens.
    _chat(client, start, stream=True, include_usage=False)
    # Answers cut at the token limit, stopped by a filter, asking for tools (run once well, once failing).
    _chat(client, start, stream=True, finish="length")
    _chat(client, start, finish="content_filter")
    _chat(client, start, tools=["search", "book"], stream=False)
    _chat(client, start, tools=["search"], tool_error="TimeoutError", stream=False)
    # Raised in the app: Starlette answers 500 and uvicorn closes the connection.
    assert client.get("/boom", headers={"Connection": "close"}).status_code == 500


@pytest.fixture(scope="module", params=[DEFAULT, LATEST])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboard")
    config = Config.from_mapping(
        {
            "gen_ai_conventions": request.param,
            # A low cap, so the event names below overflow and llm_exporter_label_overflow_total moves.
            "label_cap": 10,
            "drift": {
                "features": ["input_tokens", "output_tokens", "predicted_label"],
                "baseline_size": 20,
                "min_samples": 10,
                "window_seconds": 60,
                "score_interval_seconds": 0.5,
            },
            # MLflow is down (nothing listens on that port): batches are spooled, the spool gauge grows.
            "mlflow": {
                "enabled": True,
                "tracking_uri": f"http://{HOST}:{free_port()}",
                "window_seconds": 1,
                "spool_path": str(tmp / "spool.jsonl"),
                "request_timeout_seconds": 1,
                "retry_max_seconds": 1,
                "shutdown_timeout_seconds": 5,
            },
        }
    )
    recorder = recorder_for(CollectorRegistry(), config)
    rules = (str(TEMPLATES / "recording-rules.yml"), str(TEMPLATES / "alerts.yml"))
    try:
        with ThreadServer(llm_app(recorder)) as app, httpx.Client(base_url=app.url, timeout=10) as client:
            target = f"{HOST}:{app.port}"
            with prometheus(scrape_config(JOB, target, rule_files=rules), tmp / "prometheus") as prom:
                eventually(lambda: prom_get(prom, "/api/v1/query", query="up == 1")["result"], 30, "first scrape")
                # Three bursts a few scrapes apart, so every rate has increases between samples; the
                # first fixes the drift baselines, the second brings a label the baseline never saw.
                _burst(client, 0, 24)
                time.sleep(1.5)
                _burst(client, 24, 12, label="cancellation")
                for i in range(12):
                    client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "event": f"promo_{i}"})
                time.sleep(1.5)
                _burst(client, 36, 12)
                exposition = client.get("/metrics").text
                total = f"{_sum(exposition, 'llm_requests_total'):g}"
                eventually(lambda: _scalar(prom, "sum(llm_requests_total)") == total, 30, "the last burst scraped")
                yield Stack(prom, target, exposition, request.param)
    finally:
        recorder.close()


def _sum(exposition: str, name: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(exposition) for s in f.samples if s.name == name)


def _scalar(prom: str, query: str) -> str | None:
    result = prom_get(prom, "/api/v1/query", query=query)["result"]
    return result[0]["value"][1] if len(result) == 1 else None


def substitute(expr: str, stack: Stack) -> str:
    values = {"job": JOB, "instance": stack.instance, "model": ".*", "route": ".*"}
    # The test runs for well under a minute: a 1m window covers all of its traffic.
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$(\w+)", lambda m: values.get(m.group(1), m.group(0)), expr)


def exposed(stack: Stack) -> dict[str, set[str]]:
    """Sample name -> label names, from the app's live /metrics."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(stack.exposition):
        for s in family.samples:
            out.setdefault(s.name, set()).update(set(s.labels) - {"le", "quantile"})
    return out


@pytest.mark.e2e
def test_every_metric_name_in_the_dashboard_and_rules_is_exposed(stack: Stack) -> None:
    live = set(exposed(stack)) | recorded() | SYNTHETIC
    exprs = [q for _, q in queries(load())]
    exprs += [variable_query(v)[0] for v in variables(load()).values() if v["type"] == "query"]
    # A __name__ alternation needs one of its names live (the name sets take turns: see the next test).
    either = [alts for e in exprs for alts in alternatives(e)]
    assert [alts for alts in either if not alts & live] == []
    used = {n for e in exprs for n in metric_names(e)}
    assert used - live - set().union(*either) == set()
    in_rules = {n for e in rule_exprs() for n in metric_names(e)}
    assert in_rules - live == set()
    # And the dashboard shows every family the app exposes (the collector's own counter lives elsewhere).
    families = {
        f.name
        for f in text_string_to_metric_families(stack.exposition)
        if f.samples and not f.name.endswith("_created")  # the text format's creation timestamps
    }
    deprecated = set(ALIASES.values())  # exposed for one release, on no panel
    assert {f for f in families if not any(n.startswith(f) for n in used)} == (
        deprecated & families if stack.conventions == DEFAULT else set()
    )


@pytest.mark.e2e
def test_the_streams_without_usage_are_counted_not_priced(stack: Stack) -> None:
    # One stream without usage per burst; the price data's date is exported: the bundled snapshot's, as the
    # price source works it out for the same day.
    assert _scalar(stack.prometheus, f'sum(llm_exporter_missing_usage_total{{job="{JOB}"}})') == "3"
    stamp = GenaiPrices.current(datetime.now(UTC)).timestamp
    exported = _scalar(stack.prometheus, f'llm_exporter_price_data_timestamp_seconds{{job="{JOB}"}}')
    assert stamp is not None and exported is not None and float(exported) == stamp


@pytest.mark.e2e
def test_every_selector_filters_by_the_dashboard_variables(stack: Stack) -> None:
    labels = exposed(stack)
    for title, query in queries(load()):
        named = _SELECTOR.findall(query)
        for matchers in _NAMELESS.findall(query):
            (alts,) = alternatives(matchers)
            named += [(name, matchers) for name in alts if name in labels]
        for name, matchers in named:
            found = {m[0]: (m[1], m[2]) for m in _MATCHER.findall(matchers)}
            if name in labels or name in SYNTHETIC:
                wanted = {"job": "$job", "instance": "$instance"}
                if "http_route" in labels.get(name, ()):
                    wanted["http_route"] = "$route"
                if "gen_ai_request_model" in labels.get(name, ()):
                    wanted["gen_ai_request_model"] = "$model"
            else:
                wanted = {"job": "$job"}  # a recording rule aggregated by job
            for label, var in wanted.items():
                assert found.get(label) == ("=~", var), f"{title}: {name} lacks {label}=~{var!r}"


@pytest.mark.e2e
def test_every_variable_lists_the_live_values(stack: Stack) -> None:
    expected = {
        "job": {JOB},
        "instance": {stack.instance},
        "model": {"gpt-4o-mini", "gpt-4o", "acme-support-7b"},
        "route": {"/v1/chat/completions", "/ok", "/fail", "/boom", "/broken"},
    }
    for name, var in variables(load()).items():
        if var["type"] != "query":
            continue
        selector, label = variable_query(var)
        values = prom_get(stack.prometheus, f"/api/v1/label/{label}/values", **{"match[]": substitute(selector, stack)})
        assert expected[name] <= set(values), name


@pytest.mark.e2e
def test_every_panel_query_returns_data(stack: Stack) -> None:
    pending = [(title, substitute(q, stack)) for title, q in queries(load())]

    def empty() -> list[str]:
        out = []
        for title, q in pending:
            result = prom_get(stack.prometheus, "/api/v1/query", query=q)["result"]
            if not any(math.isfinite(float(r["value"][1])) for r in result):
                out.append(f"{title}: {q} -> {result}")
        return out

    # Recording rules and the drift scores settle within a few evaluations.
    deadline = time.monotonic() + 30
    missing = empty()
    while missing and time.monotonic() < deadline:
        time.sleep(0.5)
        missing = empty()
    assert missing == []
