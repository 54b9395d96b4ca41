"""The one JSON parser of the capture path: orjson where it is installed (a declared dependency), the
standard library otherwise, and the standard library's answer for whatever orjson refuses.

orjson parses a 2 KB chat completion about five times faster than ``json.loads``. It is stricter: it
refuses ``NaN``/``Infinity`` and lone surrogates, which the standard library reads. A document it refuses
is read again by ``json.loads``, so every body is read (or refused, with ``ValueError`` or ``RecursionError``)
exactly as before, only sooner in the common case. Integers past 64 bits come back as floats; the token
rule counts both as too large alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_stdlib: Callable[[bytes | str], Any] = json.loads
_fast: Callable[[bytes | str], Any] = _stdlib
_refused: type[Exception] = ValueError
try:
    import orjson
except ImportError:  # pragma: no cover - a dependency; this is for a platform without its wheel
    pass
else:
    _fast, _refused = orjson.loads, orjson.JSONDecodeError


def loads(data: bytes | str, stdlib: Callable[[bytes | str], Any] = _stdlib) -> Any:
    """``json.loads`` (or ``stdlib``, a reading of the standard library's with its own hooks), faster: the same
    values, the same errors."""
    try:
        return _fast(data)
    except _refused:
        return stdlib(data)
