"""Running the ``llm-exporter`` command as a child process, and scraping what it serves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from . import REPO
from .metrics import Samples, text_samples

PLAIN = "examples.plain_app:app"
DURATION = "http_server_request_duration_seconds"


def exporter_env(**extra: str) -> dict[str, str]:
    """The environment for a child ``llm-exporter``: none of this shell's exporter settings leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LLM_EXPORTER_") and k.upper() != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(extra)
    return env


def exporter_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter", *args]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the command to completion (for the cases that exit before serving anything)."""
    return subprocess.run(
        exporter_cmd(*args), cwd=cwd, env=env or exporter_env(), capture_output=True, text=True, timeout=60
    )


def scrape(url: str, done: Callable[[Samples], bool], **params: str) -> Samples:
    """The first scrape of ``url/metrics`` for which ``done`` holds (else the last one, after 15 s).

    A server records a request just after sending its last byte, so a client scraping another thread or
    process can be one step ahead; scraping again waits for that step without ever accepting more.
    """
    deadline = time.monotonic() + 15
    while True:
        got = text_samples(httpx.get(f"{url}/metrics", params=params, timeout=10).text)
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def http_labels(method: str, route: str, status: str, **extra: str) -> dict[str, str]:
    return {"http_request_method": method, "http_route": route, "http_response_status_code": status, **extra}
