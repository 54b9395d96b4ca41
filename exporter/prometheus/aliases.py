"""Deprecated metric names, exposed for one release beside the families that replace them.

An alias is a view taken at scrape time: the family's samples again under the old name. Nothing is
recorded twice, so the request path pays nothing for it; the exposition carries each series twice, which
the series budget counts (``Metrics.worst_case_series``). Which names: ``exporter.conventions.ALIASES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..conventions import ALIASES


def renamed(family: Metric, name: str) -> Metric:
    """``family`` under ``name``: its samples' names keep their suffix (``_bucket``, ``_count``...)."""
    doc = f"Deprecated name of {family.name}, removed in the next release. {family.documentation}"
    copy = Metric(name, doc, family.type, family.unit)
    cut = len(family.name)
    copy.samples = [sample._replace(name=name + sample.name[cut:]) for sample in family.samples]
    return copy


def with_aliases(families: Iterable[Metric], aliases: Mapping[str, str] = ALIASES) -> Iterator[Metric]:
    """Every family, each one that has an old name followed by its copy under that name."""
    for family in families:
        yield family
        old = aliases.get(family.name)
        if old is not None:
            yield renamed(family, old)


class Alias(Collector):
    """One family of a registry exposed again under its deprecated name."""

    def __init__(self, family: Any, name: str) -> None:
        self.family = family
        self.name = name

    def describe(self) -> Iterable[Metric]:
        # Lets the registry refuse a second family of that name, as it would for a real one.
        return [renamed(family, self.name) for family in self.family.describe()]

    def collect(self) -> Iterable[Metric]:
        return [renamed(family, self.name) for family in self.family.collect()]


class WithAliases(Collector):
    """A collector's families plus the aliases among them (multiprocess mode: the merged files)."""

    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return with_aliases(self.source.collect())


def aliases(registry: CollectorRegistry, families: Iterable[Any]) -> tuple[Any, ...]:
    """Register an :class:`Alias` for each of ``families`` that has an old name; returns those families."""
    aliased = []
    for family in families:
        (described,) = family.describe()
        old = ALIASES.get(described.name)
        if old is not None:
            registry.register(Alias(family, old))
            aliased.append(family)
    return tuple(aliased)
