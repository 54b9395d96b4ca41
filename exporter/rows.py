"""The recorder's cached rows of LLM children: what one kind of call writes, found with one look-up.

A call's label values are capped, its children found in their families and its price looked up the
first time its (provider, model, response model, operation, error type, route, tenant) is seen; a row
keeps the result, so the next such call costs one dict look-up and a few additions. Rows belong to the
recorder and are written only through it (the recorder is the only writer of the families).

Children are made on first use (a kind of token never booked, or a TTFT on a call that never streams,
exports no series), and kept only when their family's series budget admitted them: a combination past
the budget is asked about at each use, so each fold is counted, as the recorder's other caches do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .observations import ESTIMATED, TOKEN_KINDS
from .pricing import KINDS
from .prometheus.families import Metrics
from .prometheus.fastpath import adder, observer, owned_adder, owned_exemplar_observer, owned_observer, shared

Add = Callable[[float], None]


def owned_or_locked(child: Any, owned: bool) -> Add:
    """``child``'s update: the owner thread's lock-free one where ``owned`` and the child has that shape,
    else the locked one any thread may call."""
    if hasattr(child, "_buckets"):
        fn = owned_observer(child) if owned else None
        return fn if fn is not None else observer(child)
    fn = owned_adder(child) if owned else None
    return fn if fn is not None else adder(child)


def child_of(metrics: Metrics, family: Any, values: tuple[str, ...], owned: bool) -> tuple[Add, bool]:
    """The update of ``family``'s child for ``values`` (or the overflow child past the budget), and whether
    the budget admitted ``values`` (only then may the caller keep it)."""
    admitted = metrics.admit(family, values)
    child = shared(family.labels(*admitted, *metrics.static))
    return owned_or_locked(child, owned), admitted is values


class ByKind:
    """The token and estimated-cost adders of one (provider, model, response model, route[, tenant]), by kind:
    made when a kind is first booked (within the family's series budget), so a kind never seen exports no
    series. ``owned``: the owner thread's adders (see :class:`~exporter.prometheus.fastpath.SharedValue`)."""

    __slots__ = ("_metrics", "labels", "_owned", "tokens", "costs")

    def __init__(self, metrics: Metrics, labels: tuple[str, ...], owned: bool) -> None:
        self._metrics = metrics
        self.labels = labels
        self._owned = owned
        self.tokens: list[Add | None] = [None] * len(TOKEN_KINDS)
        self.costs: list[Add | None] = [None] * len(KINDS)

    def token(self, i: int) -> Add:
        m = self._metrics
        provider, model, response, route, *tenant = self.labels
        add, kept = child_of(m, m.llm_tokens, (provider, model, response, TOKEN_KINDS[i], route, *tenant), self._owned)
        if kept:
            self.tokens[i] = add
        return add

    def cost(self, i: int) -> Add:
        m = self._metrics
        provider, model, response, route, *tenant = self.labels
        values = (provider, model, response, KINDS[i], ESTIMATED, route, *tenant)
        add, kept = child_of(m, m.llm_cost, values, self._owned)
        if kept:
            self.costs[i] = add
        return add


# The row's families, by slot.
DURATION, TTFT, REQUESTS, INPUT_USAGE, OUTPUT_USAGE = range(5)


class LLMRow:
    """The children one kind of call writes, for the owner thread; label values already capped.

    ``updates[slot]`` is the lock-free update of the slot's child once made (None before); ``by_kind`` the
    token and cost adders by kind.
    """

    __slots__ = ("_metrics", "_slots", "updates", "with_exemplar", "by_kind", "finishes")

    def __init__(
        self, metrics: Metrics, labels: tuple[str, str, str, str, str, str, tuple[str, ...]], by_kind: ByKind
    ) -> None:
        provider, model, response, operation, error, route, tenant = labels
        m = self._metrics = metrics
        outcome = "error" if error else "ok"
        self._slots: tuple[tuple[Any, tuple[str, ...]], ...] = (
            (m.llm_duration, (operation, provider, model, response, error)),
            (m.llm_ttft, (provider, model, response)),
            (m.llm_requests, (provider, model, response, outcome, route, *tenant)),
            *((family, (operation, provider, model, response, *kind)) for family, kind in m.token_usage),
        )
        self.updates: list[Add | None] = [None] * len(self._slots)
        self.with_exemplar: list[Callable[[float, dict[str, str]], None] | None] = [None] * len(self._slots)
        self.by_kind = by_kind
        self.finishes: dict[str, Add] = {}  # by finish reason (normalised: a handful of values)

    def update(self, slot: int) -> Add:
        """The slot's update, made now (kept when the budget admitted it)."""
        family, values = self._slots[slot]
        add, kept = child_of(self._metrics, family, values, owned=True)
        if kept:
            self.updates[slot] = add
        return add

    def finish(self, reason: str) -> Add:
        """The adder of the finish reason's count, made now (kept when the budget admitted it)."""
        m = self._metrics
        provider, model = self.by_kind.labels[:2]
        add, kept = child_of(m, m.llm_finish_reasons, (provider, model, reason), owned=True)
        if kept:
            self.finishes[reason] = add
        return add

    def exemplar_update(self, slot: int) -> Callable[[float, dict[str, str]], None]:
        """The slot's update with an exemplar (a histogram's), made now (kept when the budget admitted it)."""
        family, values = self._slots[slot]
        m = self._metrics
        admitted = m.admit(family, values)
        child = shared(family.labels(*admitted, *m.static))
        observe = owned_exemplar_observer(child)
        if observe is None:
            return child.observe  # type: ignore[no-any-return]
        if admitted is values:
            self.with_exemplar[slot] = observe
        return observe
