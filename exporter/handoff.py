"""One bounded hand-off from the request path to the sinks: LLM calls are queued, one thread tells the sinks.

The sinks (the drift detector, the MLflow bridge's window aggregator) each cost about a microsecond per
LLM call, with a lock each; the request path only appends to a deque instead (atomic, no lock). The
thread drains it every ``interval`` seconds; :meth:`Handoff.drain` also runs at shutdown, so the last
window sees every call. Never blocking: a call that finds ``capacity`` calls waiting is not queued and is
counted (``dropped``), which only a drain stuck for ``capacity`` calls can cause.

The sinks see the calls stamped with the time they happened (``ts``), so windows and baselines come out
as they would from direct calls, a fraction of a second later.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from .observations import Cost, LLMCall
from .sinks import Sink

log = logging.getLogger(__name__)

CAPACITY = 100_000  # calls; at 10,000 calls/s, 10 s of a drain that stopped
INTERVAL = 0.05  # seconds between drains


class Handoff:
    """The queue of LLM calls for ``sinks``; ``dropped(n)`` counts the calls that found it full."""

    def __init__(
        self,
        sinks: tuple[Sink, ...],
        dropped: Callable[[float], None],
        *,
        capacity: int = CAPACITY,
        interval: float = INTERVAL,
    ) -> None:
        self.sinks = sinks
        self._dropped = dropped
        self._capacity = capacity
        self._interval = interval
        self._queue: deque[tuple[LLMCall, Cost | None, float]] = deque()
        self._drain_lock = threading.Lock()  # the drains only: the request path never takes it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, call: LLMCall, cost: Cost | None, ts: float) -> None:
        """Queue one call for the sinks (the request path: a length check and an append)."""
        queue = self._queue
        if len(queue) < self._capacity:
            queue.append((call, cost, ts))
        else:
            self._dropped(1)

    def drain(self) -> None:
        """Tell the sinks of every queued call, in order (any thread; one drain at a time)."""
        with self._drain_lock:
            queue, sinks = self._queue, self.sinks
            pop = queue.popleft
            for _ in range(len(queue)):
                call, cost, ts = pop()
                for sink in sinks:
                    try:
                        sink.on_llm(call, cost, ts)
                    except Exception:  # one bad observation must not stop the others
                        log.exception("llm-exporter: a sink's on_llm failed")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llm-exporter-handoff", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.drain()

    def close(self) -> None:
        """Stop the thread and drain what is left (before the sinks close)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        self.drain()
