"""Drift baselines outside the process: JSON files, MLflow artifacts, and ``llm-exporter baseline``.

A baseline file holds, per feature, the bin edges and counts (numeric) or the category counts
(categorical). It is built from observations with ``llm-exporter baseline save OUT.json --from
OBSERVATIONS.jsonl``: one JSON object per line, each key a feature (``{"input_tokens": 120, "model":
"gpt-4o"}``), which is what log pipelines, pandas (``to_json(orient="records", lines=True)``) and
warehouse exports produce without any glue, and lets a baseline come from a period chosen on purpose
(last month's traffic) rather than whatever arrived first after a restart.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import random
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config import ConfigError, DriftConfig, read_text_file
from .stats import (
    MAX_CATEGORIES,
    OTHER,
    Baseline,
    CategoricalBaseline,
    NumericBaseline,
    baseline_from_dict,
    baseline_to_dict,
    mass_groups,
    regroup,
)

MAX_FILE_BYTES = 16 * 1024 * 1024
SAMPLE_SIZE = 100_000  # numeric values kept per feature when building a file (a uniform reservoir sample)
MAX_DISTINCT = 100_000  # categories counted per feature when building a file; later new ones count as other
BAR = 30


class BaselineInputError(ValueError):
    """An observations file that cannot be turned into a baseline; the message names file and line."""


# -- files and MLflow -------------------------------------------------------------------------------------


def load_baseline(
    path: str | os.PathLike[str], *, source: str | None = None, limits: tuple[int, int] = (10_000, MAX_CATEGORIES)
) -> dict[str, Baseline]:
    """Read and validate a baseline file; every problem is a ``ConfigError`` naming the file.

    ``limits`` is (most features, most categories per feature).
    """
    source = source or str(path)
    doc = read_document(path, source)
    return baseline_from_dict(doc, source, max_features=limits[0], max_categories=limits[1])


def read_document(path: str | os.PathLike[str], source: str) -> Any:
    """The parsed JSON of a baseline file, not validated yet."""
    text = read_text_file(path, source, MAX_FILE_BYTES)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # a 4,300-digit integer, or nesting thousands deep
        raise ConfigError(source, "(file)", f"not valid JSON: {exc}") from None
    return doc


def baseline_document(baselines: Mapping[str, Baseline]) -> dict[str, Any]:
    """The JSON document of ``baselines``, stamped with the current UTC time."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return baseline_to_dict(baselines, created=now.isoformat().replace("+00:00", "Z"))


def save_baseline(path: str | os.PathLike[str], baselines: Mapping[str, Baseline]) -> None:
    """Write atomically, so a reader never sees half a file."""
    target = Path(path)
    text = json.dumps(baseline_document(baselines), indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_mlflow_baseline(cfg: DriftConfig, tracking_uri: str | None, limits: tuple[int, int]) -> dict[str, Baseline]:
    """Download the baseline artifact of ``cfg.baseline_mlflow_run`` (a run id or an artifact URI)."""
    import mlflow.artifacts  # an optional dependency, needed only here

    run = cfg.baseline_mlflow_run
    assert run is not None
    with tempfile.TemporaryDirectory(prefix="llm-exporter-baseline-") as tmp:
        if "/" in run or ":" in run:
            path = mlflow.artifacts.download_artifacts(artifact_uri=run, dst_path=tmp, tracking_uri=tracking_uri)
        else:
            path = mlflow.artifacts.download_artifacts(
                run_id=run, artifact_path=cfg.baseline_mlflow_artifact, dst_path=tmp, tracking_uri=tracking_uri
            )
        return load_baseline(path, source=f"MLflow run {run}", limits=limits)


# -- building from observations -------------------------------------------------------------------------


def baselines_from_jsonl(
    lines: Iterable[str],
    source: str,
    *,
    resolution: int,
    max_categories: int,
    max_features: int,
    only: frozenset[str] | None = None,
) -> tuple[dict[str, Baseline], int]:
    """Baselines of every key (or of ``only``) in JSON-lines observations; returns them and the line count."""
    numeric: dict[str, tuple[list[float], list[int], random.Random]] = {}
    categorical: dict[str, dict[str, int]] = {}
    observations = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BaselineInputError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise BaselineInputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        observations += 1
        for key, value in obj.items():
            if (only is not None and key not in only) or value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            if isinstance(value, str):
                if key in numeric:
                    raise BaselineInputError(f"{where}: {key!r} is a string here but a number on earlier lines")
                counts = categorical.get(key)
                if counts is None:
                    _check_new(key, numeric, categorical, max_features, where)
                    counts = categorical[key] = {}
                if value in counts or len(counts) < MAX_DISTINCT:
                    counts[value] = counts.get(value, 0) + 1
                else:
                    counts[OTHER] = counts.get(OTHER, 0) + 1
            elif isinstance(value, int | float):
                if not math.isfinite(value):
                    continue
                if key in categorical:
                    raise BaselineInputError(f"{where}: {key!r} is a number here but a string on earlier lines")
                entry = numeric.get(key)
                if entry is None:
                    _check_new(key, numeric, categorical, max_features, where)
                    entry = numeric[key] = ([], [0], random.Random(0))
                _reservoir(entry, float(value))
            elif only is not None:
                raise BaselineInputError(f"{where}: {key!r}: expected a number or a string, got {type(value).__name__}")
    out: dict[str, Baseline] = {}
    for key, (sample, _, _) in numeric.items():
        out[key] = NumericBaseline.from_values(sample, resolution)
    for key, counts in categorical.items():
        out[key] = CategoricalBaseline.from_counts(counts, max_categories)
    return out, observations


def _check_new(key: str, numeric: dict[str, Any], categorical: dict[str, Any], limit: int, where: str) -> None:
    if len(numeric) + len(categorical) >= limit:
        raise BaselineInputError(f"{where}: more than {limit} features; choose some with --features")
    if not 0 < len(key) <= 200:
        raise BaselineInputError(f"{where}: feature names must have 1 to 200 characters")


def _reservoir(entry: tuple[list[float], list[int], random.Random], value: float) -> None:
    """Keep a uniform sample of at most SAMPLE_SIZE values (seeded, so a file always gives the same result)."""
    sample, seen, rng = entry
    seen[0] += 1
    if len(sample) < SAMPLE_SIZE:
        sample.append(value)
    else:
        j = rng.randrange(seen[0])
        if j < SAMPLE_SIZE:
            sample[j] = value


# -- showing ----------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return format(x, ".6g")


def format_baseline(baselines: Mapping[str, Baseline], bins: int) -> str:
    """A readable table per feature; numeric features are shown in the ``bins`` groups PSI uses."""
    out: list[str] = []
    for name, b in baselines.items():
        total = b.total
        if isinstance(b, NumericBaseline):
            groups = mass_groups(b.counts, bins)
            coarse = regroup(b.counts, groups)
            out.append(
                f"{name}  numeric, {_fmt(total)} observations, {len(b.counts)} fine bins, {len(coarse)} PSI bins"
            )
            rows = []
            for g, count in enumerate(coarse):
                first = groups.index(g)
                last = len(groups) - 1 - groups[::-1].index(g)
                lo = b.edges[first - 1] if first > 0 else None
                hi = b.edges[last] if last < len(b.edges) else None
                if lo is None and hi is None:
                    label = "all values"
                elif lo is None:
                    label = f"< {_fmt(hi)}"  # type: ignore[arg-type]
                elif hi is None:
                    label = f">= {_fmt(lo)}"
                else:
                    label = f"[{_fmt(lo)}, {_fmt(hi)})"
                rows.append((label, count))
        else:
            out.append(f"{name}  categorical, {_fmt(total)} observations, {len(b.categories)} categories")
            rows = list(zip((*b.categories, OTHER), b.counts, strict=True))
        top = max(c for _, c in rows) or 1.0
        width = max(len(label) for label, _ in rows)
        for label, count in rows:
            share = count / total
            out.append(f"  {label:<{width}}  {share:7.2%}  {'#' * round(BAR * count / top)}".rstrip())
        out.append("")
    return "\n".join(out).rstrip() + "\n"
