"""Real servers for tests: free loopback ports, temp dirs, always stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait until ``url`` answers anything (even 4xx/5xx); fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
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
def process(args: list[str], url: str, *, timeout: float = 60.0, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args``, wait for ``url`` to answer, and always terminate it (then kill)."""
    log = kwargs.pop("log", None)
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    try:
        try:
            wait_http(url, timeout, proc)
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
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    raise RuntimeError(f"{name} is not installed (.ci/run installs it)")


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
