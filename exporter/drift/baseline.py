"""Drift baselines outside the process: JSON files, MLflow artifacts, and ``llm-exporter baseline``.

A baseline file holds, per feature, the bin edges and counts (numeric) or the category counts
(categorical). It is built from observations with ``llm-exporter baseline save OUT.json --from
OBSERVATIONS.jsonl``: one JSON object per line, each key a feature (``{"input_tokens": 120, "model":
"gpt-4o"}``), which is what log pipelines, pandas (``to_json(orient="records", lines=True)``) and
warehouse exports produce without any glue, and lets a baseline come from a period chosen on purpose
(last month's traffic) rather than whatever arrived first after a restart.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from .config import DRIFT_FEATURES, Config, ConfigError, DriftConfig
from .drift_stats import (
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
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(source, "(file)", f"{size} bytes, larger than the limit of {MAX_FILE_BYTES}")
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "(file)", "not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None
    return doc


def baseline_document(baselines: Mapping[str, Baseline]) -> dict[str, Any]:
    """The JSON document of ``baselines``, stamped with the current UTC time."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
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


# -- the command -------------------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Register ``baseline save`` and ``baseline show`` on the ``llm-exporter`` sub-command parser."""
    p = subparsers.add_parser("baseline", help="build or inspect a drift baseline file")
    sub = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")

    s = sub.add_parser("save", help="build a baseline file from a JSON-lines file of observations")
    s.add_argument("out", metavar="OUT.json", help="the baseline file to write")
    s.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="OBSERVATIONS.jsonl",
        help='one JSON object per line, keys are features: {"input_tokens": 120, "model": "gpt-4o"}; - for stdin',
    )
    s.add_argument(
        "--features",
        default=None,
        help="comma-separated features to keep (default: every key with numbers or strings)",
    )
    s.add_argument("--resolution", type=int, default=None, help="fine bins per numeric feature (default: config)")
    s.add_argument("--max-categories", type=int, default=None, help="categories kept per feature (default: config)")
    s.add_argument("--config", default=None, help="YAML config file")
    s.set_defaults(func=_cmd_save)

    s = sub.add_parser("show", help="print a baseline file")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--bins", type=int, default=None, help="show numeric features in this many bins (default: config)")
    s.add_argument("--config", default=None, help="YAML config file")
    s.set_defaults(func=_cmd_show)


def _fail(message: str) -> int:
    print(f"llm-exporter: error: {message}", file=sys.stderr)
    return 2


def _cmd_save(args: argparse.Namespace) -> int:
    try:
        cfg = Config.load(args.config).drift
        resolution = cfg.resolution if args.resolution is None else args.resolution
        max_categories = cfg.max_categories if args.max_categories is None else args.max_categories
        if resolution < 2:
            return _fail(f"--resolution must be >= 2, got {resolution}")
        if max_categories < 1:
            return _fail(f"--max-categories must be >= 1, got {max_categories}")
        only = frozenset(f.strip() for f in args.features.split(",") if f.strip()) if args.features else None
        limit = len(DRIFT_FEATURES) + cfg.max_user_features
        if args.source == "-":
            baselines, n = _build(sys.stdin, "<stdin>", resolution, max_categories, limit, only)
        else:
            with open(args.source, encoding="utf-8") as f:
                baselines, n = _build(f, args.source, resolution, max_categories, limit, only)
        if not baselines:
            wanted = f" among {', '.join(sorted(only))}" if only else ""
            return _fail(f"{args.source}: no feature values found{wanted}")
        missing = sorted(only - set(baselines)) if only else []
    except (ConfigError, BaselineInputError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{args.source}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        return _fail(f"{args.source}: not UTF-8 text")
    try:
        save_baseline(args.out, baselines)
    except OSError as exc:
        return _fail(f"{args.out}: cannot write: {exc.strerror or exc}")
    print(f"wrote {args.out}: {len(baselines)} features from {n} observations ({', '.join(baselines)})")
    if missing:
        print(f"note: no values for {', '.join(missing)}", file=sys.stderr)
    return 0


def _build(
    f: IO[str], source: str, resolution: int, max_categories: int, limit: int, only: frozenset[str] | None
) -> tuple[dict[str, Baseline], int]:
    return baselines_from_jsonl(
        f, source, resolution=resolution, max_categories=max_categories, max_features=limit, only=only
    )


def _cmd_show(args: argparse.Namespace) -> int:
    try:
        cfg = Config.load(args.config).drift
        bins = cfg.bins if args.bins is None else args.bins
        if bins < 1:
            return _fail(f"--bins must be >= 1, got {bins}")
        doc = read_document(args.file, args.file)
        baselines = baseline_from_dict(doc, args.file)
    except ConfigError as exc:
        return _fail(str(exc))
    created = f", created {doc['created']}" if isinstance(doc.get("created"), str) else ""
    print(f"{args.file}: drift baseline{created}, {len(baselines)} features\n")
    sys.stdout.write(format_baseline(baselines, bins))
    return 0
