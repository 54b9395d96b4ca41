"""Rate-limit headers of provider answers: how many requests and tokens are left, and the limits.

OpenAI (and the servers that copy it: Azure, Groq...) send ``x-ratelimit-{remaining,limit}-{requests,tokens}``,
Anthropic ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{remaining,limit}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

_OPENAI = b"x-ratelimit-"
_ANTHROPIC = b"anthropic-ratelimit-"
_RESOURCES = {
    b"requests": "requests",
    b"tokens": "tokens",
    b"input-tokens": "input_tokens",
    b"output-tokens": "output_tokens",
}
_KINDS = (b"remaining", b"limit")

Limits = dict[str, list[float | None]]  # resource -> [remaining, limit]


def rate_limits(headers: Iterable[tuple[bytes, bytes]]) -> Limits:
    """The rate limits the raw ``headers`` of an answer state, by resource; empty when there are none."""
    found: Limits = {}
    for name, value in headers:
        # The first byte rejects most headers before anything is lowercased.
        first = name[:1]
        if first not in (b"x", b"X", b"a", b"A"):
            continue
        name = name.lower()
        if name.startswith(_OPENAI):
            # x-ratelimit-<kind>-<resource>
            kind, _, resource = name[len(_OPENAI) :].partition(b"-")
        elif name.startswith(_ANTHROPIC):
            # anthropic-ratelimit-<resource>-<kind>, where the resource may hold a dash
            resource, _, kind = name[len(_ANTHROPIC) :].rpartition(b"-")
        else:
            continue
        key = _RESOURCES.get(resource)
        if key is None or kind not in _KINDS:
            continue  # reset times, and the resources nobody alerts on
        number = _number(value)
        if number is not None:
            found.setdefault(key, [None, None])[_KINDS.index(kind)] = number
    return found


def _number(value: bytes) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
