"""Fixtures shared by every test. Helpers that tests call directly live in ``tests/support``.

Two lanes: ``tests/unit`` (in-process, no external binaries; ``python -m pytest tests/unit``) and
``tests/integration`` (real Prometheus, Alertmanager, MLflow, uvicorn processes).
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter import Config, Recorder


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry: every test asserts exact values on its own."""
    return CollectorRegistry()


@pytest.fixture
def rec(registry: CollectorRegistry) -> Recorder:
    """A recorder with the default config, recording on ``registry``, without sinks."""
    return Recorder(Config(), registry)
