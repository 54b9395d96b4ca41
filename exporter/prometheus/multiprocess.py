"""prometheus_client's multiprocess mode (several uvicorn/gunicorn workers), the documented way.

``PROMETHEUS_MULTIPROC_DIR`` names the shared directory; each scrape builds a fresh registry with a
``MultiProcessCollector`` over it, and the live gauges of dead workers are removed first.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from .aliases import WithAliases

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_dead_workers(path: str) -> list[int]:
    """Drop the live gauges of workers that died (uvicorn restarts them under new pids).

    Their counters and histograms stay: what a dead worker counted still happened. Files are removed
    here rather than with ``multiprocess.mark_process_dead``, because two scrapes (two workers, or two
    Prometheus servers) can clean at the same moment and a file the other one removed is not an error.
    """
    dead: set[int] = set()
    alive: set[int] = set()
    for entry in Path(path).iterdir():
        m = _LIVE_GAUGE.match(entry.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid in alive:
            continue
        if pid not in dead and _pid_alive(pid):
            alive.add(pid)
            continue
        dead.add(pid)
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
    return sorted(dead)


def wipe_multiprocess_dir(path: str) -> None:
    """Remove the value files of an earlier run; prometheus_client requires this before workers start."""
    for entry in Path(path).glob("*.db"):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def scrape_registry(registry: CollectorRegistry) -> CollectorRegistry:
    path = multiprocess_dir()
    if path is None:
        return registry
    clean_dead_workers(path)
    fresh = CollectorRegistry()
    # The deprecated names too: the workers' registries hold their aliases, but this registry reads files.
    fresh.register(WithAliases(multiprocess.MultiProcessCollector(None, path)))
    return fresh
