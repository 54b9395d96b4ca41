"""The batch record the bridge writes to MLflow and spools when it cannot: its shape, and the check that a
record read back from the spool has it.

A spool line is data from disk: another version, a hand edit or a bug may have written it. Replay checks
every line before it talks to MLflow, so a line of the wrong shape (``{"id": "x", "kind": "window"}``,
a metric value ``"abc"``) is set aside as unusable instead of passing for "MLflow is unreachable" and
holding every later batch back.

    {"id": "<hex>", "kind": "window" | "late" | "request", "step": <int>, "ts": <int, ms>,
     "run": {"key": str, "name": str, "tags": {str: str}, "params": {str: str} (request runs)},
     "metrics": {<metric key>: <finite number>}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..checks import NAME, Rule, Wrong, count, finite
from ..labels import NOT_UTF8, is_utf8

KINDS = ("window", "late", "request")
_WHOLE = count()  # steps and millisecond timestamps: 0 to 2**53


def problem(record: Any) -> str | None:
    """Why ``record`` cannot be replayed (``"metrics.requests: expected a finite number"``), or None."""
    if not isinstance(record, Mapping):
        return "expected a JSON object"
    try:
        _field(record, "id", NAME)
        if record.get("kind") not in KINDS:
            raise _Bad("kind", f"expected one of {', '.join(KINDS)}")
        _field(record, "step", _WHOLE)
        _field(record, "ts", _WHOLE)
        run = record.get("run")
        if not isinstance(run, Mapping):
            raise _Bad("run", "expected a JSON object")
        for key in ("key", "name"):
            name = _field(run, key, NAME, "run.")
            if "'" in name or "`" in name:  # the key is quoted in a search filter
                raise _Bad(f"run.{key}", "expected no quotes")
        _strings(run.get("tags"), "run.tags", required=True)
        _strings(run.get("params"), "run.params", required=False)
        metrics = record.get("metrics")
        if not isinstance(metrics, Mapping):
            raise _Bad("metrics", "expected a JSON object")
        for key, value in metrics.items():
            _check(NAME, key, "metrics (a key)")
            _check(finite, value, f"metrics.{key}")
    except _Bad as exc:
        return f"{exc.field}: {exc.message}"
    return None


class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def _check(rule: Rule, value: Any, field: str) -> Any:
    if value is None:
        raise _Bad(field, "required field is missing")
    try:
        return rule(value)
    except Wrong as exc:
        raise _Bad(field, exc.message) from None


def _field(data: Mapping[str, Any], key: str, rule: Rule, prefix: str = "") -> Any:
    return _check(rule, data.get(key), prefix + key)


def _strings(value: Any, field: str, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, Mapping):
        raise _Bad(field, "expected a JSON object of strings")
    for key, text in value.items():
        _check(NAME, key, f"{field} (a key)")
        # Any length (MLflow refuses an over-long value itself, which sets the line aside too), but text
        # that can be sent: a lone surrogate would fail in the HTTP client, every time, as if MLflow were down.
        if not isinstance(text, str) or not is_utf8(text):
            raise _Bad(f"{field}.{key}", f"expected a string of {NOT_UTF8}")
