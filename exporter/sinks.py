"""The Sink protocol: what a sink receives from the recorder after the metrics are updated."""

from __future__ import annotations

from collections.abc import Callable

from .observations import Cost, LLMCall


class Sink:
    """Receives every observation after the metrics are updated. Methods must be quick and never block.

    ``ts`` is a wall-clock timestamp (``time.time()``) of when the observed thing happened.
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
        of ``on_http`` (no timestamp is taken for it). Asked when the sink is added and whenever
        :meth:`Recorder.sinks_changed` is called."""
        return None

    def on_llm(self, call: LLMCall, cost: Cost | None, ts: float) -> None:
        pass

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

    def close(self) -> None:
        """Flush and stop (called on shutdown)."""
