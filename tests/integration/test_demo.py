"""The demo: its simulated service recorded through the middleware (exact values), its config, and the
whole ``llm-exporter demo`` serving traffic in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import main
from exporter.config import Config, DriftConfig, MlflowConfig, user_sections
from exporter.demo import DEFAULT_RPS, build, demo_config, drift_timeline, load_demo_config, run_demo, shift_time
from exporter.demo import service as demo_service
from exporter.demo import traffic as demo_traffic
from exporter.demo.run import SHIFT_AFTER
from exporter.demo.service import ChatService, classify, count_tokens
from exporter.demo.traffic import Traffic
from exporter.middleware import PrometheusMiddleware
from exporter.recorder import Recorder
from exporter.sinks import Sink
from exporter.wiring import drift_sink

from ..support import REPO
from ..support.metrics import series, value
from ..support.pricing import by_kind, reference_usd
from ..support.servers import HOST, free_port, wait_http
from ..support.virtual_time import VirtualClock, virtual_time
from ..support.virtual_time import run as run_virtual

ROOT = REPO
BOOKING = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Can I book an appointment?"}]


def service(**kwargs: Any) -> tuple[Any, CollectorRegistry, Recorder]:
    registry = CollectorRegistry()
    config = Config.from_mapping({"drift": {"enabled": False}, "otel": {"exemplars": False}})
    recorder = Recorder(config, registry)
    chat = ChatService(seed=7, time_scale=0.0, **{"error_rate": 0.0, **kwargs})
    return PrometheusMiddleware(chat.app(), recorder=recorder), registry, recorder


def post(app: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as client:
            return await client.post(path, json=body)

    return asyncio.run(go())


def sse_usage(text: str) -> dict[str, Any]:
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    usage: dict[str, Any] = json.loads(events[-2])["usage"]
    return usage


@pytest.fixture
def always_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_service, "EVALUATED_SHARE", 1.0)
    monkeypatch.setattr(demo_service, "APPOINTMENT_SHARE", 1.0)


def test_prompt_tokens_are_counted_like_a_tokenizer_would() -> None:
    # 2 + 5 words -> ceil(7 * 1.3) = 10, plus 3 per message and 3 for the reply's priming.
    assert count_tokens(BOOKING) == 10 + 6 + 3


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Can I BOOK a slot?", "booking"),
        ("How much is it?", "pricing"),
        ("I want a refund", "cancellation"),
        ("Hello", "general"),
    ],  # fmt: skip
)
def test_classify(text: str, intent: str) -> None:
    label, confidence = classify(text, random.Random(1))
    assert label == intent
    assert 0.0 <= confidence <= 1.0


@pytest.mark.parametrize("stream", [False, True])
def test_completion_is_captured_by_the_middleware(stream: bool, always_judged: None) -> None:
    app, registry, recorder = service()
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": BOOKING}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    response = post(app, "/v1/chat/completions", body)
    assert response.status_code == 200
    usage = sse_usage(response.text) if stream else response.json()["usage"]
    assert usage["prompt_tokens"] == 19
    llm = {
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-4o-mini",
        "gen_ai_response_model": "gpt-4o-mini",
    }
    assert value(registry, "llm_tokens_total", **{**llm, "gen_ai_token_type": "input"}) == 19.0
    output = usage["completion_tokens"]
    assert value(registry, "llm_tokens_total", **{**llm, "gen_ai_token_type": "output"}) == output
    assert by_kind(recorder, "llm_cost_usd_total") == pytest.approx(
        {kind: reference_usd("gpt-4o-mini", "openai", {kind: n}) for kind, n in (("input", 19), ("output", output))},
        abs=1e-12,
    )
    assert value(registry, "llm_requests_total", **{**llm, "outcome": "ok"}) == 1.0
    ttft = registry.get_sample_value("gen_ai_client_time_to_first_token_seconds_count", llm)
    assert ttft == (1.0 if stream else None)
    model = {"gen_ai_request_model": "gpt-4o-mini"}
    assert registry.get_sample_value("llm_predictions_total", {**model, "label": "booking"}) == 1.0
    assert registry.get_sample_value("llm_confidence_count", {**model, "label": "booking"}) == 1.0
    for name in ("answer_relevancy", "faithfulness"):
        assert registry.get_sample_value("llm_evaluation_score_count", {**model, "evaluation": name}) == 1.0
    assert registry.get_sample_value("llm_events_total", {"event": "appointment_requested"}) == 1.0
    assert registry.get_sample_value("llm_events_total", {"event": "human_handoff"}) is None
    route = {"http_request_method": "POST", "http_route": "/v1/chat/completions", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_request_duration_seconds_count", route) == 1.0


def test_unpriced_model_counts_tokens_but_no_cost() -> None:
    app, registry, _ = service()
    usage = post(app, "/v1/chat/completions", {"model": "acme-support-7b", "messages": BOOKING}).json()["usage"]
    llm = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "acme-support-7b"}
    llm["gen_ai_response_model"] = "acme-support-7b"
    assert value(registry, "llm_tokens_total", **{**llm, "gen_ai_token_type": "input"}) == 19.0
    assert series(registry, "llm_cost_usd_total") == {}
    assert value(registry, "llm_exporter_unpriced_tokens_total", **llm) == float(usage["total_tokens"])


def test_server_errors_and_complaints() -> None:
    app, registry, _ = service(error_rate=1.0)
    response = post(app, "/v1/chat/completions", {"model": "gpt-4o", "messages": BOOKING})
    assert response.status_code in (500, 503)
    assert response.json()["error"]["type"] == "server_error"
    route = {"http_request_method": "POST", "http_route": "/v1/chat/completions"}
    status = str(response.status_code)
    count = registry.get_sample_value(
        "http_server_request_duration_seconds_count", {**route, "http_response_status_code": status}
    )
    assert count == 1.0
    assert (
        registry.get_sample_value("llm_confidence_count", {"gen_ai_request_model": "gpt-4o", "label": "booking"})
        is None
    )
    llm_call = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "gen_ai_response_model": ""}
    assert value(registry, "llm_requests_total", **{**llm_call, "outcome": "error"}) == 1.0
    assert value(registry, "llm_requests_total", **{**llm_call, "outcome": "ok"}) is None
    errors = {**llm_call, "gen_ai_operation_name": "chat", "error_type": "server_error"}
    assert registry.get_sample_value("gen_ai_client_operation_duration_seconds_count", errors) == 1.0

    app, registry, _ = service()
    complaint = [{"role": "user", "content": "The haircut was terrible."}]
    assert post(app, "/v1/chat/completions", {"model": "gpt-4o", "messages": complaint}).status_code == 200
    assert registry.get_sample_value("llm_events_total", {"event": "human_handoff"}) == 1.0


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", {"model": "nope", "messages": BOOKING}, 404),
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": []}, 400),
        ("/v1/feedback", {"model": "gpt-4o", "rating": 6}, 400),
        ("/v1/feedback", {"model": "nope", "rating": 3}, 400),
    ],
)
def test_bad_requests(path: str, body: dict[str, Any], status: int) -> None:
    app, registry, _ = service()
    response = post(app, path, body)
    assert response.status_code == status
    llm = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "gen_ai_token_type": "input"}
    assert value(registry, "llm_tokens_total", **{**llm, "http_route": "__none__"}) is None
    assert registry.get_sample_value("llm_feedback_rating_count", {"gen_ai_request_model": "gpt-4o"}) is None


def test_feedback() -> None:
    app, registry, _ = service()
    assert post(app, "/v1/feedback", {"model": "gpt-4o", "rating": 4}).status_code == 202
    assert post(app, "/v1/feedback", {"model": "gpt-4o", "rating": 2}).status_code == 202
    assert registry.get_sample_value("llm_feedback_rating_sum", {"gen_ai_request_model": "gpt-4o"}) == 6.0
    assert registry.get_sample_value("llm_feedback_rating_count", {"gen_ai_request_model": "gpt-4o"}) == 2.0


def test_health_reports_the_sinks_and_says_degraded_when_one_is() -> None:
    class Spooling(Sink):
        def __init__(self) -> None:
            self.state = "ok"

        def health(self) -> dict[str, Any]:
            return {"state": self.state, "spool_bytes": 0 if self.state == "ok" else 512}

    app, _, _ = build(Config.from_mapping({"drift": {"enabled": False}}), seed=1, time_scale=0.0)
    recorder = app.recorder
    sink = Spooling()
    recorder.add_sink(sink)

    async def get() -> Any:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as client:
            return (await client.get("/health")).json()

    assert asyncio.run(get()) == {"status": "ok", "sinks": {"Spooling": {"state": "ok", "spool_bytes": 0}}}
    sink.state = "degraded"  # as the MLflow bridge says while MLflow is down and windows go to the spool
    assert asyncio.run(get()) == {
        "status": "degraded",
        "sinks": {"Spooling": {"state": "degraded", "spool_bytes": 512}},
    }


def test_traffic_prompts_grow_after_the_shift() -> None:
    traffic = Traffic("http://unused", [("gpt-4o", 1.0)], rps=1.0, shift_after=0.0, seed=3)
    before = sum(count_tokens(traffic.messages()) for _ in range(200))
    traffic.shifted = True
    after = sum(count_tokens(traffic.messages()) for _ in range(200))
    assert after > 10 * before


# -- drift: the truth from the first second ---------------------------------------------------------------

THRESHOLDS = {"psi": DriftConfig().psi_threshold, "ks": DriftConfig().ks_threshold, "js": DriftConfig().js_threshold}
SHIFT = SHIFT_AFTER  # the default run: until Ctrl-C, shifting after 120 s


def simulate_demo(seed: int, until: float) -> list[tuple[float, dict[str, dict[str, float]]]]:
    """The demo's service and traffic, as ``llm-exporter demo`` runs them by default, in virtual time:
    the drift scores at every scoring interval, in seconds from the start.

    Everything is the demo's own (its config, models, service, traffic at the default rate) and the
    middleware's capture, but the traffic calls the app in process and the clock jumps from timer to
    timer, so four minutes of the demo take two seconds. The drift sink drains and scores every second
    of that clock, as its thread does.
    """
    clock = VirtualClock()
    config = replace(demo_config(mlflow=False), otel=replace(Config().otel, exemplars=False))
    interval = config.drift.score_interval_seconds
    scores: list[tuple[float, dict[str, dict[str, float]]]] = []
    with virtual_time(clock) as loop:
        recorder = Recorder(config, CollectorRegistry())
        drift = drift_sink(recorder, clock=clock)
        recorder.add_sink(drift)
        service = ChatService(seed=seed)
        app = PrometheusMiddleware(service.app(), recorder=recorder)
        models = [(m.name, m.weight) for m in demo_service.MODELS]
        traffic = Traffic("http://demo", models, rps=DEFAULT_RPS, shift_after=SHIFT, seed=seed,
                          transport=httpx.ASGITransport(app=app))  # fmt: skip

        async def main() -> None:
            stop = asyncio.Event()
            running = asyncio.create_task(traffic.run(stop))
            start = loop.time()
            for second in range(1, int(until) + 1):
                await asyncio.sleep(start + second - loop.time())
                now = drift.score_now()
                if second % interval == 0:
                    scores.append((float(second), now))
            stop.set()
            service.closing.set()
            await running

        run_virtual(loop, main())
        drift.close()
    return scores


def over_threshold(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {f: {m: v for m, v in s.items() if v > THRESHOLDS[m]} for f, s in scores.items() if any(
        v > THRESHOLDS[m] for m, v in s.items())}  # fmt: skip


@pytest.mark.parametrize("seed", range(10))
def test_demo_drift_stays_under_the_thresholds_until_the_shift_and_crosses_after(seed: int) -> None:
    timeline = simulate_demo(seed, until=SHIFT + 40)
    before = [(t, s) for t, s in timeline if t <= SHIFT]
    # Scores are there before the shift (a newcomer sees low scores, not nothing) ...
    scored = [t for t, s in before if set(s) == set(DriftConfig().features)]
    assert scored and scored[0] <= 90.0, before
    # ... and none of them passes its threshold: no false alarm.
    assert [(t, over_threshold(s)) for t, s in before if over_threshold(s)] == []
    # The shift moves the prompt sizes past the PSI threshold within 30 s, and not the model mix, which
    # does not change.
    after = {t: s for t, s in timeline if t > SHIFT}
    crossed = [t for t, s in after.items() if s["input_tokens"]["psi"] > THRESHOLDS["psi"]]
    assert crossed and crossed[0] <= SHIFT + 30, after
    assert all(set(s["input_tokens"]) == {"psi", "ks", "js"} for s in after.values())
    assert [(t, s["model"]) for t, s in after.items() if over_threshold({"model": s["model"]})] == []


def test_short_runs_shift_half_way_and_the_banner_says_when_drift_shows(capsys: pytest.CaptureFixture[str]) -> None:
    assert (shift_time(None), shift_time(15.0), shift_time(300.0)) == (120.0, 7.5, 150.0)
    drift = demo_config(mlflow=False).drift
    # 500 and 300 answers at 10 requests/s, 4 % of them errors: 52 and 83 s.
    assert drift_timeline(drift, 10.0, 120.0) == (
        "drift: baseline after ~52 s, first llm_drift_score after ~83 s, all under the thresholds until the shift "
        "at 120 s"
    )
    assert drift_timeline(drift, 10.0, 7.5) == (
        "drift: baseline after ~52 s, first llm_drift_score after ~83 s, later than the shift at 7.5 s: the scores "
        "compare shifted traffic"
    )
    assert drift_timeline(drift, 10.0, 7.5, duration=15.0) == (
        "drift: none in a 15 s run (baseline after ~52 s, first llm_drift_score after ~83 s)"
    )
    assert drift_timeline(drift, 4.0, 120.0) == "drift: a 60 s window never holds 300 observations at this rate"
    assert main(["demo", "--port", str(free_port()), "--duration", "1", "--rps", "2", "--no-mlflow"]) == 0
    assert "  after 0.5 s prompts get much longer, so llm_drift_score rises\n" in capsys.readouterr().out


# -- config -------------------------------------------------------------------------------------------------


def test_demo_config_turns_mlflow_on_and_tunes_drift() -> None:
    cfg = demo_config(None)
    # No tracking URI: the bridge uses $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory.
    assert (cfg.mlflow.enabled, cfg.mlflow.tracking_uri, cfg.mlflow.window_seconds) == (True, None, 15.0)
    assert (cfg.drift.baseline_size, cfg.drift.min_samples, cfg.drift.score_interval_seconds) == (500, 300, 10.0)
    assert demo_config(None, mlflow=False).mlflow == MlflowConfig()


def test_demo_config_keeps_the_users_sections() -> None:
    user = Config.from_mapping(
        {"mlflow": {"tracking_uri": "http://127.0.0.1:5000"}, "drift": {"baseline_size": 500}, "label_cap": 7}
    )
    cfg = demo_config(user, user_set={"mlflow", "drift", "label_cap"})
    assert cfg.mlflow == user.mlflow
    assert cfg.drift == user.drift == DriftConfig(baseline_size=500)
    assert cfg.label_cap == 7
    on = Config.from_mapping({"mlflow": {"enabled": True, "tracking_uri": "http://127.0.0.1:5000"}})
    assert demo_config(on, user_set={"mlflow"}).mlflow == on.mlflow
    assert demo_config(on, mlflow=False, user_set={"mlflow"}).mlflow.enabled is False


def test_user_sections_come_from_the_file_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "demo.yaml"
    path.write_text("mlflow: {enabled: false}\nlabel_cap: 7\n")
    env = {"LLM_EXPORTER_DRIFT__MIN_SAMPLES": "200", "LLM_EXPORTER_OTEL": "{metrics: false}", "HOME": "/x"}
    assert user_sections(str(path), env) == {"mlflow", "label_cap", "drift", "otel"}
    assert user_sections(None, {**env, "LLM_EXPORTER_CONFIG": str(path)}) == {"mlflow", "label_cap", "drift", "otel"}
    assert user_sections(None, {}) == frozenset()  # the working directory has no llm-exporter.yaml


# A section the user wrote is theirs even when every value in it is the default.
OWN_SECTIONS = {
    "file": ("mlflow: {enabled: false}\ndrift: {min_samples: 200}\n", {}),
    "environment": ("", {"LLM_EXPORTER_MLFLOW__ENABLED": "false", "LLM_EXPORTER_DRIFT__MIN_SAMPLES": "200"}),
    "both": ("mlflow: {enabled: false}\n", {"LLM_EXPORTER_DRIFT": "{min_samples: 200}"}),
}


@pytest.mark.parametrize("source", list(OWN_SECTIONS))
def test_the_users_own_mlflow_and_drift_sections_are_used_as_is(tmp_path: Path, source: str) -> None:
    text, env = OWN_SECTIONS[source]
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    cfg = load_demo_config(str(path), environ=env)
    assert cfg.mlflow == MlflowConfig()  # enabled: false, as written
    assert cfg.drift == DriftConfig()  # min_samples: 200, and no demo baseline of 500
    assert (cfg.drift.min_samples, cfg.drift.baseline_size) == (200, 1000)


def test_only_the_sections_the_user_left_alone_get_demo_defaults(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text("drift: {min_samples: 200}\nlabel_cap: 7\n")
    cfg = load_demo_config(str(path), environ={})
    assert (cfg.mlflow.enabled, cfg.mlflow.window_seconds, cfg.mlflow.run_period) == (True, 15.0, "instance")
    assert cfg.drift == DriftConfig()
    assert cfg.label_cap == 7
    cfg = load_demo_config(None, environ={"LLM_EXPORTER_MLFLOW__ENABLED": "false"})
    assert cfg.mlflow == MlflowConfig()
    assert (cfg.drift.baseline_size, cfg.drift.min_samples) == (500, 300)
    assert load_demo_config(str(path), mlflow=False, environ={}).mlflow.enabled is False


def test_demo_command_keeps_mlflow_off_as_the_config_file_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("llm-exporter.yaml").write_text("mlflow:\n  enabled: false\n")
    port = free_port()
    assert main(["demo", "--port", str(port), "--duration", "1", "--rps", "2"]) == 0
    out = capsys.readouterr().out
    assert f"  metrics   http://{HOST}:{port}/metrics\n" in out
    assert "MLflow" not in out
    assert not Path("mlflow.db").exists()


@pytest.mark.parametrize(
    ("feedback", "accepted", "failed"),
    [(202, 3, 0), (400, 0, 3), (None, 0, 3)],  # None: the connection fails
)
def test_traffic_counts_feedback_apart_from_the_calls(
    monkeypatch: pytest.MonkeyPatch, feedback: int | None, accepted: int, failed: int
) -> None:
    monkeypatch.setattr(demo_traffic, "FEEDBACK_SHARE", 1.0)
    monkeypatch.setattr(demo_traffic, "STREAM_SHARE", 0.0)

    def service(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/feedback":
            if feedback is None:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(feedback, json={})
        return httpx.Response(200, json={"choices": []})

    traffic = Traffic("http://demo", [("gpt-4o", 1.0)], rps=1.0, shift_after=60.0, seed=3)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(service), base_url="http://demo") as client:
            for _ in range(3):
                await traffic._one(client)

    asyncio.run(go())
    s = traffic.stats
    assert (s.sent, dict(s.statuses), s.failed, s.cancelled) == (3, {200: 3}, 0, 0)
    assert (s.feedback, s.feedback_failed) == (accepted, failed)


def test_run_demo_refuses_a_busy_port_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run_demo(port=port, duration=1, mlflow=False) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"llm-exporter demo: cannot listen on {HOST}:{port}: ")
    assert err.rstrip().endswith("(try --port)")
    assert run_demo(rps=0, mlflow=False) == 2
    assert capsys.readouterr().err == "llm-exporter demo: --rps must be > 0, got 0\n"
    assert run_demo(duration=-1, mlflow=False) == 2
    assert capsys.readouterr().err == "llm-exporter demo: --duration must be > 0, got -1\n"


# -- the whole demo -----------------------------------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    """Sums of a few samples over all series."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            sums[s.name] = sums.get(s.name, 0.0) + s.value
    return sums


def test_demo_serves_traffic_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LLM_EXPORTER_MLFLOW__ENABLED": "true",
        "LLM_EXPORTER_MLFLOW__TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "LLM_EXPORTER_MLFLOW__SPOOL_PATH": str(tmp_path / "spool.jsonl"),
    }
    args = [sys.executable, "-m", "exporter", "demo", "--port", str(port), "--rps", "20", "--duration", "120"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://{HOST}:{port}/metrics"
        try:
            wait_http(url, timeout=60, proc=proc)
        except RuntimeError:
            proc.kill()
            raise AssertionError(proc.communicate()[0]) from None
        # Wait (not a timed assertion) until the traffic has produced priced completions.
        deadline = time.monotonic() + 60
        while True:
            sums = scrape(url)
            if sums.get("llm_tokens_total", 0) > 0 and sums.get("llm_cost_usd_total", 0) > 0:
                break
            assert time.monotonic() < deadline, "no tokens and cost within 60 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert sums["llm_tokens_total"] > 0
    assert sums["llm_cost_usd_total"] > 0
    assert sums["http_server_request_duration_seconds_count"] > 0
    assert f"  metrics   http://{HOST}:{port}/metrics\n" in out
    assert "llm-exporter demo: stopped after " in out
    assert "Traceback" not in out
    # The shutdown flushed the last window to MLflow: one run (per day) with the demo's tokens in it.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["LLM_EXPORTER_MLFLOW__TRACKING_URI"])
    experiment = client.get_experiment_by_name("llm-exporter")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["input_tokens"] > 0
    assert run.data.metrics["cost_usd"] > 0
