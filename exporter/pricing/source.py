"""The maintained price data: genai-prices' snapshot, matched and flattened, and its opt-in network update.

genai-prices bundles its data in the package, and fetches newer data from GitHub only from a background
thread that ``UpdatePrices.start()`` launches; importing it, matching models and reading prices touch no
network. ``AutoUpdate`` starts that thread only when ``pricing.auto_update`` is on.

Matching uses genai-prices' own rules (a provider by id or by its ``provider_match``, else by the model
name's ``model_match``; then the provider's model ``match`` clauses, and its fallback providers) over the
snapshot's providers directly: ``DataSnapshot.find_provider_model`` would keep every name it is asked for in
caches without bound, and the names come from the traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import genai_prices
from genai_prices import UpdatePrices
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id, get_snapshot
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from .entry import ListedPrice, PriceEntry
from .flatten import PriceDataError, flatten, listed_price

log = logging.getLogger("exporter.pricing")
UTC = UTC

NAME = "genai-prices"


class GenaiPrices:
    """One genai-prices snapshot: the (provider, model) look-up and each model's flat entry."""

    def __init__(self, snapshot: DataSnapshot, *, data_date: date | None, timestamp: float | None) -> None:
        self.snapshot = snapshot
        self.data_date = data_date
        self.timestamp = timestamp
        self.version = genai_prices.__version__
        self.model_count = sum(len(p.models) for p in snapshot.providers)

    @classmethod
    def current(cls, now: datetime) -> GenaiPrices:
        """The snapshot genai-prices uses now: the bundled one, unless an update has replaced it."""
        return cls.of(get_snapshot(), now)

    @classmethod
    def of(cls, snapshot: DataSnapshot, now: datetime) -> GenaiPrices:
        if snapshot.from_auto_update:
            # A fetched snapshot is stamped (in local time) when it was fetched.
            fetched = snapshot.timestamp.astimezone(UTC)
            return cls(snapshot, data_date=fetched.date(), timestamp=fetched.timestamp())
        # genai-prices bundles no build date; the newest price change in the data already in effect is the
        # closest the data says about its age (it is never later than the data, and changes announced
        # ahead only move it when they take effect).
        today = now.astimezone(UTC).date()
        starts = [c.start_date for c in _constraints(snapshot.providers) if isinstance(c, StartDateConstraint)]
        latest = max((d for d in starts if d <= today), default=None)
        stamp = None if latest is None else datetime.combine(latest, time(0), tzinfo=UTC).timestamp()
        return cls(snapshot, data_date=latest, timestamp=stamp)

    @property
    def description(self) -> str:
        how = "fetched by auto-update" if self.snapshot.from_auto_update else "bundled"
        return f"{NAME} {self.version} ({how})"

    def find(self, model: str, provider: str | None) -> tuple[Provider, ModelInfo] | None:
        """genai-prices' match of a lower-case model name; an unknown provider name is matched by the model."""
        providers = self.snapshot.providers
        found = find_provider_by_id(providers, provider) if provider else None
        if found is None:
            found = next((p for p in providers if p.model_match is not None and p.model_match.is_match(model)), None)
            if found is None:
                return None
        info = found.find_model(model, all_providers=providers)
        return None if info is None else (found, info)

    def entry(
        self, found: tuple[Provider, ModelInfo], context: Mapping[str, str] | None, now: datetime
    ) -> PriceEntry | None:
        """The entry of a found model at ``now`` and for the request ``context`` (service tier, batch...).

        ``None`` when its prices are for something else than tokens.
        """
        matched, info = found
        # As genai-prices does: request variants apply to a provider's own models, not to those it falls back to.
        own = any(info is m for m in matched.models)
        prices = info.get_prices(now, context if own else None)
        try:
            return flatten(
                info.id,
                matched.id,
                NAME,
                _listed(prices),
                valid_until=_next_change(info, now, bool(context)),
            )
        except PriceDataError as exc:
            log.warning("llm-exporter: no price for %s %s: %s", matched.id, info.id, exc)
            return None


class AutoUpdate:
    """genai-prices' background update (a thread fetching its GitHub data every hour), for the table."""

    def __init__(self, on_fetch: Callable[[DataSnapshot], None]) -> None:
        self._on_fetch = on_fetch
        self._updater: _Updater | None = None

    def start(self) -> None:
        if self._updater is None:
            self._updater = _Updater(on_fetch=self._on_fetch)
            self._updater.start()

    def stop(self) -> None:
        if self._updater is not None:
            self._updater.stop()
            self._updater = None


@dataclass
class _Updater(UpdatePrices):
    # genai-prices swaps its global snapshot after fetch() returns; the table flattens its own entries, so it
    # is handed the new snapshot here to drop them.
    on_fetch: Callable[[DataSnapshot], None] | None = None

    def fetch(self) -> DataSnapshot | None:
        snapshot = super().fetch()
        if snapshot is not None and self.on_fetch is not None:
            self.on_fetch(snapshot)
        return snapshot


def _listed(prices: ModelPrice) -> Iterator[ListedPrice]:
    for key, value in vars(prices).items():
        if key.startswith("_") or value is None:
            continue
        if isinstance(value, TieredPrices):
            yield listed_price(key, value.base, ((t.start, t.price) for t in value.tiers))
        elif isinstance(value, Decimal):
            yield listed_price(key, value)


def _constraints(providers: list[Provider]) -> Iterator[object]:
    for provider in providers:
        for info in provider.models:
            yield from _model_constraints(info, variants=True)


def _model_constraints(info: ModelInfo, *, variants: bool) -> Iterator[object]:
    if isinstance(info.prices, list):
        yield from (c.constraint for c in info.prices if c.constraint is not None)
    if variants:
        yield from (v.constraint for v in info.price_variants or () if v.constraint is not None)


def _next_change(info: ModelInfo, now: datetime, variants: bool) -> float | None:
    """When the model's price may next change (a dated price, or the edge of an off-peak window)."""
    changes = []
    for constraint in _model_constraints(info, variants=variants):
        if isinstance(constraint, StartDateConstraint):
            start = datetime.combine(constraint.start_date, time(0), tzinfo=UTC)  # genai-prices compares UTC dates
            if start > now:
                changes.append(start)
        elif isinstance(constraint, TimeOfDateConstraint):
            for edge in (constraint.start_time, constraint.end_time):
                if edge.tzinfo is None:
                    edge = edge.replace(tzinfo=UTC)
                at = datetime.combine(now.astimezone(UTC).date() - timedelta(days=1), edge)
                while at <= now:
                    at += timedelta(days=1)
                changes.append(at)
    return min(changes).timestamp() if changes else None
