"""Value rules: each checks one value and says in one message what it expected.

Every input uses these through the signal definitions in :mod:`exporter.observations`: the ``llm``
API raises :class:`~exporter.llm.InvalidValueError` with the message, ``/track`` collects one per
wrong field for its 422 answer. A rule returns the value as the metrics take it (JSON's ``150.0``
token count is ``150``) or raises :class:`Wrong`.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable
from typing import Any

from .labels import NOT_UTF8, is_utf8

# Metric values are float64, exact for integers up to 2**53. A JSON integer can be any length: beyond
# this it would be rounded, and beyond ~1.8e308 converting it to a float raises OverflowError.
MAX_INT = 2**53
TOO_LARGE = f"integer too large: expected at most 2**53 ({MAX_INT}) in absolute value"
MAX_TEXT = 256  # label values longer than this are a client bug, not a label
FUTURE_SLACK = 300.0  # seconds a client clock may run ahead

Rule = Callable[[Any], Any]


class Wrong(ValueError):
    """A value a rule refuses; ``message`` says what was expected (``expected an integer >= 0``)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _range(kind: str, minimum: float, maximum: float | None) -> str:
    if maximum is None:
        return f"expected {kind} >= {_num(minimum)}"
    return f"expected {kind} between {_num(minimum)} and {_num(maximum)}"


def text(*, required: bool) -> Rule:
    """A string: non-empty when ``required`` (a name), else any, at most MAX_TEXT characters, valid UTF-8."""
    wrong_type = "expected a non-empty string" if required else "expected a string"

    def check(value: Any) -> str:
        # The usual value first: ASCII (so valid UTF-8), short, and for a name not starting with a space.
        if type(value) is str and value.isascii() and len(value) <= MAX_TEXT and (not required or value[:1] > " "):
            return value
        if not isinstance(value, str) or (required and not value.strip()):
            raise Wrong(wrong_type)
        if len(value) > MAX_TEXT:
            raise Wrong(f"expected a string of at most {MAX_TEXT} characters, got {len(value)}")
        if not is_utf8(value):
            raise Wrong(f"expected {NOT_UTF8}")
        return value

    return check


def count(minimum: int = 0, maximum: int | None = None, *, kind: str = "an integer") -> Rule:
    """A whole number (a count of tokens, bytes, events); an integral float such as JSON's 150.0 is one.
    ``kind`` names it in the message (``a port``)."""
    expected = _range(kind, minimum, maximum)
    top = MAX_INT if maximum is None else min(maximum, MAX_INT)

    def check(value: Any) -> int:
        if type(value) is int and minimum <= value <= top:  # the usual value, as the checks below take it
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool):
            raise Wrong(expected)
        try:
            n = operator.index(value)  # ints and the likes of numpy's
        except TypeError:
            raise Wrong(expected) from None
        if n < minimum or (maximum is not None and n > maximum):
            raise Wrong(expected)
        if n > MAX_INT:
            raise Wrong(TOO_LARGE)
        return n

    return check


def number(minimum: float = 0.0, maximum: float | None = None) -> Rule:
    """A finite number in range, as a float."""
    expected = _range("a number", minimum, maximum)
    low, top = max(minimum, -MAX_INT), MAX_INT if maximum is None else min(maximum, MAX_INT)
    ceiling = math.inf if maximum is None else maximum

    def check(value: Any) -> float:
        # The usual values first, as the checks below take them: a float in range (not inf, not NaN), an int.
        if type(value) is float and minimum <= value < math.inf and value <= ceiling:
            return value
        if type(value) is int and low <= value <= top:
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Wrong(expected)
        # A huge int compares with the bounds exactly (10**400 > 1 is an out-of-range confidence); only
        # converting it to a float would overflow.
        if (isinstance(value, float) and not math.isfinite(value)) or value < minimum:
            raise Wrong(expected)
        if maximum is not None and value > maximum:
            raise Wrong(expected)
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise Wrong(TOO_LARGE)
        return float(value)

    return check


def finite(value: Any) -> float:
    """Any finite number, as a float: NaN and infinities are never a setting (a window of inf seconds
    never closes, a NaN threshold never fires). Bounds are the caller's."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Wrong(FINITE)
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise Wrong(TOO_LARGE)
        return float(value)
    if not math.isfinite(value):
        raise Wrong(FINITE)
    return value


FINITE = "expected a finite number"


def whole(value: Any) -> int:
    """Any integer (not a flag) within float64's exact range: config's integers, bounded by their keys."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Wrong("expected an integer")
    if abs(value) > MAX_INT:
        raise Wrong(TOO_LARGE)
    return value


def timestamp() -> Rule:
    """A Unix time in seconds, not (much) in the future."""
    in_range = number(minimum=1.0)

    def check(value: Any) -> float:
        ts = in_range(value)
        if ts > time.time() + FUTURE_SLACK:
            raise Wrong("expected a Unix time in seconds, not in the future")
        return ts

    return check


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Wrong("expected true or false")
    return value


def secret(value: Any) -> str:
    """A token or password: an empty one would not protect anything, so it is refused rather than read as
    "no auth" (leave the key out for that)."""
    if not isinstance(value, str) or not value.strip():
        raise Wrong("expected a non-empty secret (leave the key out for none)")
    return value


PORT = count(1, 65535, kind="a port")
NAME = text(required=True)  # a model, provider, evaluation, event or feature name
TEXT = text(required=False)  # a label value, possibly empty


def OPTIONAL_TEXT(value: Any) -> str | None:  # noqa: N802 - a rule, named as the others
    """A tenant, error type or request id: a string, where the empty string means none."""
    return TEXT(value) or None


def category_or_number(value: Any) -> float | str:
    """A drift feature's value: a category (a string) or a finite number."""
    if isinstance(value, str):
        return NAME(value)  # type: ignore[no-any-return]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise Wrong(TOO_LARGE)  # before any float conversion, which would overflow
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Wrong("expected a finite number or a string")
    return float(value)
