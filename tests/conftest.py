"""Fixtures shared by every test. Helpers that tests call directly live in ``tests/support``.

Two lanes: ``tests/unit`` (in-process, no external binaries; ``python -m pytest tests/unit``) and
``tests/integration`` (real Prometheus, Alertmanager, MLflow, uvicorn processes).

Outside CI a test whose program is missing is skipped (``tests.support.servers.binary`` says which and
how to install it); in CI (``CI=true``) every skip is a failure, so a CI run never passes by skipping.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from exporter import Config, Recorder

from .support import in_ci


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {reason}"


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry: every test asserts exact values on its own."""
    return CollectorRegistry()


@pytest.fixture
def rec(registry: CollectorRegistry) -> Recorder:
    """A recorder with the default config, recording on ``registry``, without sinks."""
    return Recorder(Config(), registry)
