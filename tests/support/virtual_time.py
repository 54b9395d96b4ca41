"""Virtual time: an event loop whose clock jumps to the next timer instead of waiting for it, with
``time.time`` and ``time.perf_counter`` reading the same clock, so minutes of a service's life (its
sleeps, the durations the middleware measures, the timestamps observations get) pass in a moment.

Only for code that does no real I/O: the loop never waits on sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")


class VirtualClock:
    # Small numbers: at a wall-clock value (1.7e9) a float step is 2e-7 s, coarser than the loop's clock
    # resolution, and a timer could then never be reached.
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without waiting; where the loop would wait ``timeout`` seconds, the clock moves on by that."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("virtual time: nothing is scheduled and nothing can wake the loop")
            self.clock.now += timeout
        return ready


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_JumpingSelector(clock))
        self.clock = clock

    def time(self) -> float:
        return self.clock.now


@contextlib.contextmanager
def virtual_time(clock: VirtualClock) -> Iterator[VirtualLoop]:
    """``time.time`` and ``time.perf_counter`` read ``clock`` meanwhile; run coroutines on the loop given."""
    loop = VirtualLoop(clock)
    real = time.time, time.perf_counter
    time.time = time.perf_counter = clock  # type: ignore[assignment]
    try:
        yield loop
    finally:
        time.time, time.perf_counter = real
        loop.close()


def run(loop: VirtualLoop, main: Coroutine[Any, Any, _T]) -> _T:
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
