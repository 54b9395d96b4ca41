"""The one queue between the request path and the sinks' ``on_llm``."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from exporter.config import Config
from exporter.handoff import Handoff
from exporter.observations import Cost, LLMCall
from exporter.recorder import Recorder
from exporter.sinks import Sink

from ..support.metrics import value


class Seen(Sink):
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.drain: Callable[[], None] = lambda: None

    def on_llm(self, call: LLMCall, cost: Cost | None, ts: float) -> None:
        self.calls.append((call.model, ts))

    def handed_off(self, drain: Callable[[], None]) -> None:
        self.drain = drain


def test_a_started_recorder_hands_llm_calls_to_the_sinks_in_order_with_their_time() -> None:
    rec = Recorder(Config.from_mapping({"drift": {"enabled": False}}), CollectorRegistry())
    seen = Seen()
    rec.add_sink(seen)
    rec.llm(LLMCall("before-start", "openai", input_tokens=1, timestamp=10.0))
    assert seen.calls == [("before-start", 10.0)]  # not started: told at once
    rec.start()
    for i in range(5):
        rec.llm(LLMCall(f"m{i}", "openai", input_tokens=1, timestamp=20.0 + i))
    seen.drain()  # what a sink calls before reading its state
    assert seen.calls[1:] == [(f"m{i}", 20.0 + i) for i in range(5)]
    rec.llm(LLMCall("last", "openai", input_tokens=1, timestamp=30.0))
    rec.close()  # drains before the sinks close
    assert seen.calls[-1] == ("last", 30.0)
    assert value(rec.registry, "llm_exporter_sink_dropped_total") == 0


def test_a_full_hand_off_never_blocks_and_counts_what_it_dropped() -> None:
    dropped: list[float] = []
    seen = Seen()
    handoff = Handoff((seen,), dropped.append, capacity=3)  # not started: nothing drains it
    for i in range(5):
        handoff.put(LLMCall(f"m{i}"), None, float(i))
    assert sum(dropped) == 2
    handoff.close()
    assert seen.calls == [("m0", 0.0), ("m1", 1.0), ("m2", 2.0)]
