"""``llm-exporter demo``: the simulated chat service (``exporter.demo.service``), wrapped by the
middleware, served by uvicorn, with its own traffic (``exporter.demo.traffic``).

It runs on a fresh machine with nothing set up: MLflow mirroring goes to ``sqlite:///mlflow.db`` in the
working directory, and the traffic calls the service over loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from ..config import Config, DriftConfig, mask_uri, user_sections
from ..middleware import PrometheusMiddleware
from ..mlflow_bridge.tracking import resolve_tracking_uri
from ..observations import N_INPUT_KINDS, TOKEN_KINDS
from ..recorder import Recorder
from ..wiring import recorder_for
from .service import ERROR_RATE, MODELS, ChatService
from .traffic import Traffic

DEFAULT_RPS = 10.0
SHIFT_AFTER = 120.0  # seconds before the traffic shifts, when the demo runs until stopped


def demo_drift(drift: DriftConfig) -> DriftConfig:
    """Drift settings that show the shift within a minute of it, and nothing before it.

    The scores of unchanged traffic are sampling noise that grows like 1/n + 1/m for a window of n
    against a baseline of m (and the Jensen-Shannon distance like its square root): 57 against 100, an
    earlier setting, scored 0.22-0.28 before anything had changed. At the default rate the baseline
    (500 answers) is complete after about 52 s and the first scores (300 more) come at about 83 s, under
    the thresholds until the shift; tests/integration/test_demo.py checks that on 10 seeded runs.
    """
    return replace(drift, baseline_size=500, min_samples=300, window_seconds=60.0, score_interval_seconds=10.0)


def demo_config(
    config: Config | None = None, *, mlflow: bool = True, user_set: Collection[str] = frozenset()
) -> Config:
    """The user's config with demo-friendly defaults in the sections the user did not set.

    ``user_set`` are the top-level keys the user's file or environment set (:func:`user_sections`);
    those sections are used as is, even when they equal the defaults. MLflow mirroring is on at
    ``sqlite:///mlflow.db`` (15 s windows) unless ``mlflow`` is False or the user set ``mlflow``; drift
    uses a small baseline so it shows within minutes unless the user set ``drift``.
    """
    cfg = config or Config()
    changes: dict[str, Any] = {}
    if not mlflow:
        changes["mlflow"] = replace(cfg.mlflow, enabled=False)
    elif "mlflow" not in user_set:
        # The bridge resolves no tracking URI to $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here.
        changes["mlflow"] = replace(cfg.mlflow, enabled=True, window_seconds=15.0, run_period="instance")
    if "drift" not in user_set:
        changes["drift"] = demo_drift(cfg.drift)
    return replace(cfg, **changes) if changes else cfg


def shift_time(duration: float | None) -> float:
    """When the traffic shifts: half way through a ``--duration`` run, else after :data:`SHIFT_AFTER`."""
    return duration / 2 if duration is not None else SHIFT_AFTER


def drift_timeline(drift: DriftConfig, rps: float, shift_after: float, duration: float | None = None) -> str:
    """What the drift scores will do, in seconds from the start, for the banner.

    The slowest built-in features (confidence, predicted label, token counts) get one observation per
    answered call, ``rps * (1 - ERROR_RATE)`` a second: the baseline takes its first ``baseline_size``,
    then scores start once the window holds ``min_samples`` more.
    """
    rate = rps * (1 - ERROR_RATE)
    baseline = drift.baseline_size / rate
    first = baseline + drift.min_samples / rate
    if drift.min_samples > rate * drift.window_seconds:
        return f"drift: a {drift.window_seconds:g} s window never holds {drift.min_samples} observations at this rate"
    when = f"baseline after ~{baseline:.0f} s, first llm_drift_score after ~{first:.0f} s"
    if duration is not None and first > duration:
        return f"drift: none in a {duration:g} s run ({when})"
    if first > shift_after:
        return f"drift: {when}, later than the shift at {shift_after:g} s: the scores compare shifted traffic"
    return f"drift: {when}, all under the thresholds until the shift at {shift_after:g} s"


def load_demo_config(
    path: str | None = None, *, mlflow: bool = True, environ: Mapping[str, str] | None = None
) -> Config:
    """``Config.load(path, environ)`` with the demo's defaults where the file and environment set nothing
    (what ``llm-exporter demo --config PATH`` runs with)."""
    return demo_config(Config.load(path, environ), mlflow=mlflow, user_set=user_sections(path, environ))


def _mlflow_problem(cfg: Config) -> str | None:
    if not cfg.mlflow.enabled:
        return None
    if importlib.util.find_spec("mlflow") is None:
        return "mlflow is not installed (pip install 'llm-exporter[mlflow]')"
    return None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def build(config: Config, *, seed: int | None = None, time_scale: float = 1.0) -> tuple[Any, Recorder, ChatService]:
    """The demo app wrapped by the middleware, its recorder (own registry, process metrics included) and
    the service behind it."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    recorder = recorder_for(registry, config)
    service = ChatService(seed=seed, time_scale=time_scale, health=recorder.health)
    return PrometheusMiddleware(service.app(), recorder=recorder), recorder, service


def run_demo(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    duration: float | None = None,
    rps: float = DEFAULT_RPS,
    config: Config | None = None,
    mlflow: bool = True,
    shift_after: float | None = None,
    seed: int | None = None,
) -> int:
    """Serve the demo with its traffic for ``duration`` seconds (None: until SIGINT/SIGTERM); the exit code.

    ``config`` is used as is (see :func:`load_demo_config`); without one, :func:`demo_config`'s.
    ``mlflow=False`` turns MLflow mirroring off either way. ``shift_after`` is when prompts get longer
    (default: :func:`shift_time`).
    """
    if rps <= 0:
        print(f"llm-exporter demo: --rps must be > 0, got {rps}", file=sys.stderr)
        return 2
    if duration is not None and duration <= 0:
        print(f"llm-exporter demo: --duration must be > 0, got {duration}", file=sys.stderr)
        return 2
    cfg = demo_config(mlflow=mlflow) if config is None else config
    if not mlflow:
        cfg = replace(cfg, mlflow=replace(cfg.mlflow, enabled=False))
    problem = _mlflow_problem(cfg)
    if problem is not None:
        print(f"llm-exporter demo: MLflow mirroring is off: {problem}", file=sys.stderr)
        cfg = replace(cfg, mlflow=replace(cfg.mlflow, enabled=False))
    if cfg.mlflow.enabled:
        # MLflow's INFO lines (creating the sqlite tables...) would interleave with the demo's own output.
        # It sets its loggers' level from this variable when it is imported, on the bridge's thread.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        sock = _bind(host, port)
    except OSError as exc:
        print(f"llm-exporter demo: cannot listen on {host}:{port}: {exc.strerror or exc} (try --port)", file=sys.stderr)
        return 2
    if shift_after is None:
        shift_after = shift_time(duration)
    with contextlib.closing(sock):
        app, recorder, service = build(cfg, seed=seed)
        run = DemoRun(
            app, recorder, service, cfg, sock, host=host, rps=rps, duration=duration, shift_after=shift_after, seed=seed
        )
        return asyncio.run(run.main())


class _Server:
    """uvicorn's Server without its signal handling: the demo handles SIGINT/SIGTERM itself, so it can
    stop the traffic first and print its summary instead of re-raising the signal."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

            def install_signal_handlers(self) -> None:  # uvicorn < 0.29
                pass

        return Server(config)


class DemoRun:
    """One run of the demo: the server, the traffic, the signals, the summary."""

    def __init__(
        self,
        app: Any,
        recorder: Recorder,
        service: ChatService,
        config: Config,
        sock: socket.socket,
        *,
        host: str,
        rps: float,
        duration: float | None,
        shift_after: float,
        seed: int | None,
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.service = service
        self.config = config
        self.sock = sock
        self.duration = duration
        self.shift_after = shift_after
        self.port = int(sock.getsockname()[1])
        # A wildcard address is reached through loopback; the traffic never leaves the machine.
        local = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.base = f"http://[{local}]:{self.port}" if ":" in local else f"http://{local}:{self.port}"
        self.metrics_url = (
            f"{self.base}{config.metrics_path}"
            if config.metrics_port is None
            else f"http://{local}:{config.metrics_port}{config.metrics_path}"
        )
        self.traffic = Traffic(self.base, [(m.name, m.weight) for m in MODELS], rps=rps, shift_after=shift_after,
                               seed=seed)  # fmt: skip
        self.rps = rps

    async def main(self) -> int:
        import uvicorn

        server = _Server(uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
        stop = asyncio.Event()
        hurry = asyncio.Event()
        remove_handlers = self._handle_signals(stop, hurry)
        try:
            serving = asyncio.create_task(server.serve(sockets=[self.sock]))
            while not server.started:
                if serving.done():
                    await serving
                    return 1
                await asyncio.sleep(0.02)
            self._banner()
            began = time.monotonic()
            traffic = asyncio.create_task(self.traffic.run(stop, hurry))
            try:
                await asyncio.wait_for(stop.wait(), self.duration)
            except TimeoutError:
                pass
            stop.set()
            ran = time.monotonic() - began  # the traffic's time; flushing MLflow at shutdown is not part of it
            await traffic
            self.service.closing.set()
            server.should_exit = True
            await serving
        finally:
            remove_handlers()
        self._summary(ran)
        return 0

    def _handle_signals(self, stop: asyncio.Event, hurry: asyncio.Event) -> Any:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                hurry.set()  # a second Ctrl-C: don't wait for the calls in flight
            stop.set()

        installed: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (ValueError, RuntimeError, NotImplementedError):
                pass  # not the main thread (tests, embedding) or no signal support: stopped by duration

        def remove() -> None:
            for sig in installed:
                loop.remove_signal_handler(sig)

        return remove

    def _banner(self) -> None:
        cfg = self.config
        lines = [
            f"llm-exporter demo: a simulated LLM chat service with {self.rps:g} requests/s of built-in traffic",
            f"  chat API  {self.base}/v1/chat/completions",
            f"  metrics   {self.metrics_url}",
        ]
        if cfg.mlflow.enabled:
            uri = mask_uri(resolve_tracking_uri(cfg.mlflow.tracking_uri))
            if uri.startswith(("http://", "https://")):
                lines.append(f"  MLflow    {uri}")
            else:
                lines.append(f"  MLflow    {uri}  (browse: mlflow ui --backend-store-uri {uri})")
        drift = ", so llm_drift_score rises" if cfg.drift.enabled else ""
        lines.append(f"  after {self.shift_after:g} s prompts get much longer{drift}")
        if cfg.drift.enabled and cfg.drift.baseline_file is None and cfg.drift.baseline_mlflow_run is None:
            lines.append(f"  {drift_timeline(cfg.drift, self.rps, self.shift_after, self.duration)}")
        lines.append(
            "Press Ctrl-C to stop." if self.duration is None else f"Running for {self.duration:g} s (Ctrl-C stops)."
        )
        print("\n".join(lines), flush=True)

    def _summary(self, elapsed: float) -> None:
        s = self.traffic.stats
        ok = sum(n for code, n in s.statuses.items() if code < 400)
        errors = sum(n for code, n in s.statuses.items() if code >= 500)
        tokens = _totals(self.recorder.registry, "llm_tokens_total", "gen_ai_token_type")
        cost = sum(_totals(self.recorder.registry, "llm_cost_usd_total", "gen_ai_token_type").values())
        unpriced = sum(_totals(self.recorder.registry, "llm_exporter_unpriced_tokens_total", "").values())
        # The token types never overlap: the input ones add up to the input, the output ones to the output.
        inputs = sum(tokens.get(kind, 0.0) for kind in TOKEN_KINDS[:N_INPUT_KINDS])
        outputs = sum(tokens.get(kind, 0.0) for kind in TOKEN_KINDS[N_INPUT_KINDS:])
        print(
            "\n".join(
                [
                    f"llm-exporter demo: stopped after {elapsed:.0f} s",
                    f"  requests  {s.sent} sent ({s.streamed} streamed): {ok} ok, {errors} server errors, "
                    f"{s.failed} without answer, {s.cancelled} cancelled at stop, {s.skipped} skipped",
                    f"  feedback  {s.feedback} ratings ({s.feedback_failed} failed)",
                    f"  tokens    {int(sum(tokens.values())):,} (input {int(inputs):,}, "
                    f"{int(tokens.get('cache_read', 0)):,} of them from the cache; output {int(outputs):,}); "
                    f"{int(unpriced):,} of an unpriced model",
                    f"  cost      ${cost:.4f}",
                ]
            ),
            flush=True,
        )


def _totals(registry: CollectorRegistry, sample: str, by: str) -> dict[str, float]:
    """Sum of a sample over all series, grouped by one label ('' groups everything together)."""
    out: dict[str, float] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name == sample:
                key = s.labels.get(by, "") if by else ""
                out[key] = out.get(key, 0.0) + s.value
    return out
