"""Drift statistics on binned distributions, and the per-feature baseline they compare against.

Everything here is pure (no I/O, no clock, no threads), so it is tested exactly on hand-computed
examples. Distributions are given as bin counts (any non-negative numbers, normalised here): the drift
sink only ever holds bin counters, never raw observations.

Numeric baselines keep a fine histogram (``resolution`` bins cut at the baseline's quantiles). KS is
computed on those fine bins, where the binned statistic is within one bin's mass of the exact one; PSI
and Jensen-Shannon use coarser bins made by grouping fine bins into (roughly) equal baseline mass, so
the number of PSI bins can change without rebuilding the baseline.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from ..config import ConfigError

OTHER = "__other__"
FORMAT = "llm-exporter-drift-baseline"
VERSION = 1
DEFAULT_EPSILON = 1e-4
MAX_CATEGORIES = 1000  # hard cap for files; the config's max_categories is normally far lower


# -- statistics -----------------------------------------------------------------------------------------


def _proportions(counts: Sequence[float], what: str) -> list[float]:
    total = math.fsum(counts)
    if not total > 0:
        raise ValueError(f"{what} distribution is empty")
    return [c / total for c in counts]


def _check_pair(expected: Sequence[float], actual: Sequence[float]) -> None:
    if len(expected) != len(actual):
        raise ValueError(f"bin counts differ: {len(expected)} expected, {len(actual)} actual")


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = DEFAULT_EPSILON) -> float:
    """Population Stability Index: sum of (a - e) * ln(a / e) over bins.

    Empty bins get the proportion ``epsilon`` instead of 0 (no renormalisation), so a bin that is empty
    on one side contributes a large but finite term instead of infinity.
    """
    _check_pair(expected, actual)
    e = _proportions(expected, "expected")
    a = _proportions(actual, "actual")
    total = 0.0
    for pe, pa in zip(e, a, strict=True):
        pe = pe if pe > 0 else epsilon
        pa = pa if pa > 0 else epsilon
        total += (pa - pe) * math.log(pa / pe)
    return total


def ks(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Kolmogorov-Smirnov statistic of two binned distributions: the largest gap between their CDFs at
    the bin edges."""
    _check_pair(expected, actual)
    e = _proportions(expected, "expected")
    a = _proportions(actual, "actual")
    gap = 0.0
    ce = ca = 0.0
    for pe, pa in zip(e[:-1], a[:-1], strict=True):
        ce += pe
        ca += pa
        gap = max(gap, abs(ce - ca))
    return gap


def js_distance(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2, so it lies in [0, 1]).

    Needs no smoothing: each side is compared with the mixture, which is never empty where it isn't.
    """
    _check_pair(expected, actual)
    p = _proportions(expected, "expected")
    q = _proportions(actual, "actual")
    divergence = 0.0
    for pp, pq in zip(p, q, strict=True):
        m = (pp + pq) / 2
        if pp > 0:
            divergence += pp * math.log2(pp / m) / 2
        if pq > 0:
            divergence += pq * math.log2(pq / m) / 2
    return math.sqrt(max(divergence, 0.0))


# -- binning --------------------------------------------------------------------------------------------


def quantile(ordered: Sequence[float], p: float) -> float:
    """The ``p`` quantile of sorted values, interpolating linearly between order statistics (the
    definition numpy and R use by default)."""
    h = (len(ordered) - 1) * p
    lo = math.floor(h)
    if lo + 1 >= len(ordered):
        return float(ordered[-1])
    return float(ordered[lo] + (h - lo) * (ordered[lo + 1] - ordered[lo]))


def quantile_edges(values: Iterable[float], bins: int) -> list[float]:
    """Inner edges cutting ``values`` into ``bins`` equal-mass bins; repeated edges (ties in discrete data
    such as token counts) are merged, so there may be fewer bins."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values to cut into bins")
    edges: list[float] = []
    for j in range(1, bins):
        edge = quantile(ordered, j / bins)
        if not edges or edge > edges[-1]:
            edges.append(edge)
    return edges


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin; bin ``i`` holds ``edges[i-1] <= x < edges[i]`` (the outer bins are open)."""
    counts = [0] * (len(edges) + 1)
    for x in values:
        counts[bisect_right(edges, x)] += 1
    return counts


def mass_groups(counts: Sequence[float], bins: int) -> list[int]:
    """Map each fine bin to a coarse bin so that coarse bins hold about ``1 / bins`` of the mass each.

    A cut goes after the fine bin whose cumulative mass is closest to each multiple of ``total / bins``;
    inner cuts that would leave a coarse bin with no baseline mass are dropped, so there may be fewer
    than ``bins`` groups. The outer fine bins with no baseline mass (below the baseline's smallest value,
    above its largest) are kept as groups of their own: a recent window that moves there is exactly what
    PSI must see (epsilon smoothing keeps the term finite). Without them a constant baseline would be a
    single group, and every shift would score 0.
    """
    total = math.fsum(counts)
    n = len(counts)
    if n <= 1 or not total > 0:
        return [0] * n
    cumulative = list(accumulate(counts))
    first = next(j for j, c in enumerate(counts) if c > 0)
    last = max(j for j, c in enumerate(counts) if c > 0)
    cuts: list[int] = [first - 1] if first > 0 else []
    for k in range(1, bins):
        target = total * k / bins
        best = min(range(n - 1), key=lambda j: (abs(cumulative[j] - target), j))
        if 0 < cumulative[best] < total and (not cuts or cumulative[best] > cumulative[cuts[-1]]):
            cuts.append(best)
    if last < n - 1:
        cuts.append(last)
    groups = []
    group = 0
    cut_set = set(cuts)
    for j in range(n):
        groups.append(group)
        if j in cut_set:
            group += 1
    return groups


def regroup(counts: Sequence[float], groups: Sequence[int]) -> list[float]:
    out = [0.0] * (groups[-1] + 1 if groups else 0)
    for c, g in zip(counts, groups, strict=True):
        out[g] += c
    return out


# -- baselines --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericBaseline:
    """A fine histogram of the baseline: ``counts[i]`` observations in bin ``i`` of ``edges``."""

    edges: tuple[float, ...]
    counts: tuple[float, ...]

    kind = "numeric"

    @classmethod
    def from_values(cls, values: Sequence[float], resolution: int) -> NumericBaseline:
        finite = [float(v) for v in values if math.isfinite(v)]
        edges = quantile_edges(finite, resolution)
        return cls(tuple(edges), tuple(float(c) for c in histogram(finite, edges)))

    @property
    def total(self) -> float:
        return math.fsum(self.counts)


@dataclass(frozen=True)
class CategoricalBaseline:
    """Counts of the baseline's categories, most frequent first; the last count is ``__other__``."""

    categories: tuple[str, ...]
    counts: tuple[float, ...]

    kind = "categorical"

    @classmethod
    def from_counts(cls, seen: Mapping[str, float], max_categories: int) -> CategoricalBaseline:
        """Keep the ``max_categories`` most frequent categories (ties by name); the rest is ``__other__``."""
        ranked = sorted(((c, k) for k, c in seen.items() if k != OTHER), key=lambda ck: (-ck[0], ck[1]))
        kept = ranked[:max_categories]
        other = math.fsum(c for c, _ in ranked[max_categories:]) + seen.get(OTHER, 0)
        return cls(tuple(k for _, k in kept), (*(float(c) for c, _ in kept), float(other)))

    @property
    def total(self) -> float:
        return math.fsum(self.counts)


Baseline = NumericBaseline | CategoricalBaseline


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def baseline_to_dict(baselines: Mapping[str, Baseline], created: str | None = None) -> dict[str, Any]:
    """The JSON document of a baseline file."""
    features: dict[str, Any] = {}
    for name, b in baselines.items():
        if isinstance(b, NumericBaseline):
            features[name] = {
                "kind": b.kind,
                "edges": [_number(e) for e in b.edges],
                "counts": [_number(c) for c in b.counts],
            }
        else:
            counts = dict(zip(b.categories, (_number(c) for c in b.counts[:-1]), strict=True))
            counts[OTHER] = _number(b.counts[-1])
            features[name] = {"kind": b.kind, "counts": counts}
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if created is not None:
        doc["created"] = created
    doc["features"] = features
    return doc


def baseline_from_dict(
    doc: Any, source: str, *, max_features: int = 10_000, max_categories: int = MAX_CATEGORIES
) -> dict[str, Baseline]:
    """Validate a baseline document; errors are ``ConfigError``s naming ``source`` and the key."""

    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(source, key, message)

    if not isinstance(doc, Mapping):
        raise bad("(top level)", f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("format", FORMAT) != FORMAT:
        raise bad("format", f"expected {FORMAT!r}, got {doc.get('format')!r}")
    if doc.get("version", VERSION) != VERSION:
        raise bad("version", f"unsupported version {doc.get('version')!r}; this release reads version {VERSION}")
    features = doc.get("features")
    if not isinstance(features, Mapping) or not features:
        raise bad("features", "expected a non-empty object of feature name -> baseline")
    if len(features) > max_features:
        raise bad("features", f"{len(features)} features, more than the limit of {max_features}")
    out: dict[str, Baseline] = {}
    for name, spec in features.items():
        key = f"features.{name}"
        if not name or len(name) > 200:
            raise bad(key, "expected a feature name of 1 to 200 characters")
        if not isinstance(spec, Mapping):
            raise bad(key, f"expected an object, got {type(spec).__name__}")
        kind = spec.get("kind")
        if kind == "numeric":
            edges = _numbers(spec.get("edges"), f"{key}.edges", bad)
            if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise bad(f"{key}.edges", "expected strictly increasing numbers")
            counts = _counts(spec.get("counts"), f"{key}.counts", bad)
            if len(counts) != len(edges) + 1:
                raise bad(f"{key}.counts", f"expected {len(edges) + 1} counts (one more than edges), got {len(counts)}")
            out[name] = NumericBaseline(tuple(edges), tuple(counts))
        elif kind == "categorical":
            raw = spec.get("counts")
            if not isinstance(raw, Mapping):
                raise bad(f"{key}.counts", "expected an object of category -> count")
            cats = [str(k) for k in raw if k != OTHER]
            if len(cats) > max_categories:
                raise bad(f"{key}.counts", f"{len(cats)} categories, more than max_categories ({max_categories})")
            counts = _counts([*(raw[k] for k in cats), raw.get(OTHER, 0)], f"{key}.counts", bad)
            out[name] = CategoricalBaseline(tuple(cats), tuple(counts))
        else:
            raise bad(f"{key}.kind", f"expected 'numeric' or 'categorical', got {kind!r}")
    return out


def _numbers(value: Any, key: str, bad: Any) -> list[float]:
    if not isinstance(value, list):
        raise bad(key, f"expected a list of numbers, got {type(value).__name__}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise bad(f"{key}[{i}]", f"expected a finite number, got {v!r}")
        out.append(float(v))
    return out


def _counts(value: Any, key: str, bad: Any) -> list[float]:
    counts = _numbers(value, key, bad)
    for i, c in enumerate(counts):
        if c < 0:
            raise bad(f"{key}[{i}]", f"expected a count >= 0, got {_number(c)}")
    if not math.fsum(counts) > 0:
        raise bad(key, "expected at least one count > 0")
    return counts
