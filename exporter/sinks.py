"""What a sink receives: the observations (after the metrics are updated), and the narrow outputs the
composition root hands the sinks that report on themselves (drift scores, MLflow batches).

A sink never sees the Recorder: it gets its own config section and, where it exports metrics, one of
the output protocols below, which the recorder implements over the families it owns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .observations import Cost, LLMCall


class Sink:
    """Receives every observation after the metrics are updated. Methods must be quick and never block.

    Names arrive capped, as they are in the metrics (``__overflow__`` past a label's cap). ``ts`` is a
    wall-clock timestamp (``time.time()``) of when the observed thing happened. Threads, files and
    connections start in :meth:`start` (the ASGI lifespan, or the sink's first use) and stop in
    :meth:`close`; constructors only store.
    """

    def on_http(
        self,
        method: str,
        route: str,
        status: int,
        duration: float,
        ts: float,
        request_bytes: int = 0,
        response_bytes: int = 0,
    ) -> None:
        pass

    def on_active(self, method: str, route: str, delta: int) -> None:
        """The in-flight requests of (method, route) changed by ``delta``: +1 at the start, -1 at the end."""

    def duration_observer(self) -> Callable[[float], None] | None:
        """For a sink that only wants each request's duration: a callable the recorder calls with it instead
        of ``on_http`` (no timestamp is taken for it). Asked once, when the sink is added."""
        return None

    def on_llm(self, call: LLMCall, cost: Cost | None, ts: float) -> None:
        pass

    def handed_off(self, drain: Callable[[], None]) -> None:
        """Once the recorder starts, LLM calls reach :meth:`on_llm` through a queue and its thread (see
        :mod:`exporter.handoff`): ``drain()`` delivers the queued ones now. A sink calls it before reading
        state that must hold every call made so far (a score, a window it closes)."""

    def on_tool(self, name: str, error_type: str, duration: float, ts: float) -> None:
        """One tool execution (an ``execute_tool`` span), its name and error type capped."""

    def on_confidence(self, model: str, label: str, value: float, ts: float) -> None:
        pass

    def on_evaluation(self, name: str, model: str, score: float, ts: float) -> None:
        pass

    def on_feedback(self, model: str, rating: float, ts: float) -> None:
        pass

    def on_event(self, name: str, tenant: str | None, ts: float, count: int = 1) -> None:
        pass

    def on_feature(self, name: str, value: float | str, ts: float) -> None:
        pass

    def health(self) -> dict[str, Any] | None:
        """A report for ``/health`` (``status`` or ``state``: ``ok`` / ``degraded``), or None."""
        return None

    def start(self) -> None:
        """Start threads and open files (idempotent)."""

    def close(self) -> None:
        """Flush and stop (called on shutdown)."""


class DriftOutput(Protocol):
    """The drift gauges, as the drift sink writes them."""

    def thresholds(self, by_method: Mapping[str, float]) -> None: ...

    def scores(self, feature: str, scores: Mapping[str, float], samples: int) -> None: ...

    def withdraw(self, feature: str, methods: Iterable[str]) -> None:
        """The feature's window fell below ``min_samples``: its scores must stop exporting."""
        ...

    def unseen(self, feature: str, count: int) -> None: ...

    def overflow(self, label: str) -> None:
        """A value of ``label`` was refused (a user feature past the cap)."""
        ...


class BridgeOutput(Protocol):
    """The MLflow bridge's own health metrics."""

    def batches(self, result: str, count: int = 1) -> None: ...

    def spool_bytes(self, size: int) -> None: ...
