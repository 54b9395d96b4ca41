"""Real servers for tests: free loopback ports, temp dirs, always stopped afterwards."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from exporter import LLMCall, PrometheusMiddleware, Recorder
from exporter.context import current_recorder
from exporter.observations import RateLimit, ToolExecution

from . import DEBIAN_PACKAGES, in_ci

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None, *, any_answer: bool = False
) -> None:
    """Wait until ``url`` answers 2xx (with ``any_answer``: anything, even 4xx/5xx); fail early if ``proc``
    died. A readiness endpoint answers 503 while starting (Prometheus's ``/-/ready``): not ready yet."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready ({last})")
        try:
            urllib.request.urlopen(url, timeout=2).close()  # redirects are followed; errors raise
            return
        except urllib.error.HTTPError as exc:
            exc.close()
            if any_answer:
                return
            last = f"last answer {exc.code}"
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} was not ready within {timeout}s ({last})")
        time.sleep(0.05)


class ThreadServer:
    """An ASGI app served by uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Any, port: int | None = None, **kwargs: Any) -> None:
        self.port = port or free_port()
        kwargs.setdefault("lifespan", "auto")
        config = uvicorn.Config(app, host=HOST, port=self.port, log_level="warning", **kwargs)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://{HOST}:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@contextlib.contextmanager
def process(
    args: list[str], url: str, *, timeout: float = 60.0, any_answer: bool = False, **kwargs: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args``, wait for ``url`` to answer 2xx (or anything: ``any_answer``), and always terminate
    it (then kill)."""
    log = kwargs.pop("log", None)
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    try:
        try:
            wait_http(url, timeout, proc, any_answer=any_answer)
        except (RuntimeError, TimeoutError) as exc:
            detail = Path(log).read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{args[0]}: {exc}\n{detail}") from None
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


def binary(name: str, *alternatives: str) -> str:
    """The path of a program the test needs. When it is missing the test is skipped, with one line naming
    the program and how to install it; in CI (``CI=true``) it fails instead, so CI never passes by skipping."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    message = f"{name} is not installed; install it with: apt-get install {DEBIAN_PACKAGES[name]}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def prometheus(config_yaml: str, workdir: Path, *extra: str) -> Iterator[str]:
    """A real Prometheus on a free loopback port; yields its base URL."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "prometheus.yml"
    cfg.write_text(config_yaml)
    args = [
        binary("prometheus"),
        f"--config.file={cfg}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        "--web.enable-lifecycle",
        *extra,
    ]
    with process(args, f"http://{HOST}:{port}/-/ready", log=str(workdir / "prometheus.log"), cwd=workdir):
        yield f"http://{HOST}:{port}"


@contextlib.contextmanager
def alertmanager(config_yaml: str, workdir: Path) -> Iterator[str]:
    """A real Alertmanager on a free loopback port (clustering off); yields its base URL."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "alertmanager.yml"
    cfg.write_text(config_yaml)
    args = [
        binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={cfg}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        "--cluster.listen-address=",
    ]
    env = {**os.environ}
    with process(args, f"http://{HOST}:{port}/-/ready", log=str(workdir / "alertmanager.log"), cwd=workdir, env=env):
        yield f"http://{HOST}:{port}"


# -- the monitoring stack (test_dashboard.py, test_alerting_e2e.py) --------------------------------------


class Webhook:
    """An Alertmanager webhook receiver on a free loopback port; keeps every notification it gets."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook._changed:
                    hook.notifications.append({"path": self.path, **json.loads(body)})
                    hook._changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """The first notification (oldest first) for which ``match(notification)`` is true."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for n in self.notifications:
                    if match(n):
                        return n
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(n.get("status"), n.get("commonLabels")) for n in self.notifications]
                    raise AssertionError(f"no notification {what} within {timeout}s; got {got}")
                self._changed.wait(left)


def prom_get(base: str, path: str, **params: str) -> Any:
    """GET a Prometheus (or Alertmanager) API path; returns the ``data`` of a Prometheus answer."""
    query = urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(f"{base}{path}?{query}" if query else f"{base}{path}", timeout=10) as resp:
        body = json.loads(resp.read())
    return body["data"] if isinstance(body, dict) and "data" in body else body


_T = TypeVar("_T")


def eventually(check: Callable[[], _T], timeout: float, what: str, interval: float = 0.25) -> _T:
    """Call ``check()`` until it returns something truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout}s (last: {result!r})")
        time.sleep(interval)


def scrape_config(job: str, target: str, alertmanager: str | None = None, rule_files: tuple[str, ...] = ()) -> str:
    """A Prometheus config that scrapes and evaluates every second (rule groups evaluate at the global
    interval unless they set their own)."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": list(rule_files),
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return json.dumps(config)  # JSON is YAML


def llm_app(recorder: Recorder) -> PrometheusMiddleware:
    """A Starlette app, wrapped by PrometheusMiddleware on ``recorder``, whose routes make every metric
    family of the contract move, through the same paths real apps use.

    ``POST /v1/chat/completions`` answers OpenAI-shaped JSON or SSE (the middleware's capture reads the
    usage; ``"include_usage": false`` streams without it) and records what only a handler knows through
    ``current_recorder()``: confidence, an evaluation, feedback, an event, or a failed upstream LLM call.
    ``"finish"`` sets the answer's finish reason; ``"tools"`` (names) makes it ask for those tools, each also
    recorded as run (``"tool_error"``: the runs failed with that error).
    ``/fail`` answers 503, ``/boom`` raises, ``/broken`` sends JSON that looks like LLM output but cannot be
    parsed.
    """

    def sse(data: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    async def chat(request: Request) -> Response:
        body = await request.json()
        model = body.get("model", "gpt-4o-mini")
        rec = current_recorder()
        if "label" in body:
            rec.confidence(float(body.get("confidence", 0.9)), body["label"], model)
        if "evaluation" in body:
            rec.evaluation("answer_relevancy", float(body["evaluation"]), model)
        if "rating" in body:
            rec.feedback(float(body["rating"]), model)
        if "event" in body:
            rec.event(body["event"])
        # What outbound capture reads from a provider's headers, as if the handler had called one.
        rec.rate_limit(
            RateLimit("openai", model, "tokens", remaining=30_000 - int(body.get("prompt_tokens", 100)), limit=30_000)
        )
        if body.get("upstream_error"):
            rec.llm(LLMCall(model=model, provider="openai", duration=0.02, error_type="RateLimitError"))
            return JSONResponse({"error": {"type": "upstream_rate_limited"}}, status_code=502)
        usage = {
            "prompt_tokens": int(body.get("prompt_tokens", 100)),
            "completion_tokens": int(body.get("completion_tokens", 20)),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        head = {"id": "chatcmpl-1", "created": 0, "model": model}
        tools = [str(t) for t in body.get("tools", [])]
        finish = str(body.get("finish", "tool_calls" if tools else "stop"))
        for tool in tools:  # as the span processor records an agent's execute_tool spans
            rec.tool(ToolExecution(tool, 0.05, body.get("tool_error")))
        if body.get("stream"):

            async def events() -> AsyncIterator[bytes]:
                for text in ("Hello", " there"):  # two content chunks: one gap between them
                    delta = {"role": "assistant", "content": text}
                    yield sse({**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]})
                done = {"index": 0, "delta": {}, "finish_reason": finish}
                yield sse({**head, "object": "chat.completion.chunk", "choices": [done]})
                if body.get("include_usage", True):  # OpenAI's stream_options.include_usage
                    yield sse({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        answer: dict[str, Any] = {"role": "assistant", "content": "Hello"}
        if tools:
            calls = [
                {"id": f"call_{i}", "type": "function", "function": {"name": t, "arguments": "{}"}}
                for i, t in enumerate(tools)
            ]
            answer = {"role": "assistant", "content": None, "tool_calls": calls}
        message = {"index": 0, "message": answer, "finish_reason": finish}
        return JSONResponse({**head, "object": "chat.completion", "choices": [message], "usage": usage})

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def fail(request: Request) -> Response:
        return PlainTextResponse("upstream unavailable", status_code=503)

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async def broken(request: Request) -> Response:
        return Response(b'{"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1', media_type="application/json")

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/ok", ok),
            Route("/fail", fail),
            Route("/boom", boom),
            Route("/broken", broken),
        ]
    )
    return PrometheusMiddleware(app, recorder=recorder)
