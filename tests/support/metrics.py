"""Reading metric values: from a registry (exact, by labels) or from an exposition's text."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import Recorder

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def value(source: CollectorRegistry | Recorder, name: str, /, **labels: str) -> float | None:
    """The sum of the samples ``name{labels...}`` selects, as a PromQL selector does (labels not given match
    any value), of a registry or a recorder's registry; None when it selects none. A test names the labels
    its behaviour is about, so a label added to a family (a route, the answering model) does not change
    what it checks."""
    registry = source.registry if isinstance(source, Recorder) else source
    found = [
        s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found) if found else None


def text_samples(text: str, *, openmetrics: bool = False) -> Samples:
    """Every sample of an exposition as {(sample name, sorted labels): value}."""
    parse = parse_openmetrics if openmetrics else parse_text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in parse(text) for s in family.samples}


def text_value(
    text: str, name: str, labels: dict[str, str] | None = None, *, openmetrics: bool = False, **more: str
) -> float | None:
    """One sample of an exposition, by labels given as a mapping, as keywords, or both."""
    wanted = {**(labels or {}), **more}
    return text_samples(text, openmetrics=openmetrics).get((name, tuple(sorted(wanted.items()))))


def all_samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample of a registry, as a set (to compare two registries)."""
    return {(s.name, tuple(sorted(s.labels.items())), s.value) for f in registry.collect() for s in f.samples}


def series(source: CollectorRegistry | Recorder, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` (e.g. ``llm_cost_usd_total``), as {sorted labels: value}."""
    registry = source.registry if isinstance(source, Recorder) else source
    return {tuple(sorted(s.labels.items())): s.value for f in registry.collect() for s in f.samples if s.name == name}


def selector(source: CollectorRegistry | Recorder) -> Callable[[str, dict[str, str]], float | None]:
    """:func:`value` with the labels as a mapping, bound to ``source``: ``get("name", {"label": "v"})``."""
    return lambda name, labels: value(source, name, **labels)
