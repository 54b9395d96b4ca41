"""``llm-exporter baseline save|show``: build a drift baseline file from observations, or print one."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

from ..config import DRIFT_FEATURES, Config, ConfigError
from .baseline import BaselineInputError, baselines_from_jsonl, format_baseline, read_document, save_baseline
from .stats import (
    Baseline,
    baseline_from_dict,
)


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
