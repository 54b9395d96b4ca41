"""Label names, the caps on their values, and the rules every label value follows.

The bottom of the package: no imports from it. Every metric and label name of the contract is spelled
here or in :mod:`exporter.prometheus.families`, so names can follow the OpenTelemetry conventions as
they settle without touching the modules that record.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

OVERFLOW = "__overflow__"
UNMATCHED = "__unmatched__"
NO_ROUTE = "__none__"  # the http_route of an LLM call made outside any request (a script, a worker, startup)

# Label names (OTel semantic conventions in Prometheus form).
METHOD = "http_request_method"
ROUTE = "http_route"
STATUS = "http_response_status_code"
ERROR_TYPE = "error_type"
OPERATION = "gen_ai_operation_name"
PROVIDER = "gen_ai_provider_name"
MODEL = "gen_ai_request_model"
RESPONSE_MODEL = "gen_ai_response_model"
TOKEN_TYPE = "gen_ai_token_type"
COST_SOURCE = "cost_source"  # provider (given by the payload) or estimated (from the price data)
TENANT = "tenant"
RESOURCE = "resource"  # what a provider's rate limit counts: requests, tokens, input_tokens, output_tokens
TOOL_NAME = "gen_ai_tool_name"  # a tool an answer asks for, or one executed (capped)
FINISH_REASON = "reason"  # why an answer ended, normalised (observations.FINISH_REASONS)

HTTP = (METHOD, ROUTE, STATUS)
# Every dynamic label name below: static labels from config may not reuse one.
LABEL_NAMES = frozenset(
    {METHOD, ROUTE, STATUS, ERROR_TYPE, OPERATION, PROVIDER, MODEL, RESPONSE_MODEL, TOKEN_TYPE, COST_SOURCE, TENANT}
    | {
        RESOURCE,
        TOOL_NAME,
        "outcome",
        "label",
        "evaluation",
        "event",
        "feature",
        "method",
        "format",
        "result",
        "reason",
        "source",
    }
)

# OTel semconv: methods outside this set are recorded as _OTHER, so a client can't create series at will.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


NOT_UTF8 = "valid Unicode text (it holds a lone surrogate escape)"  # what the inputs say they expected


def is_utf8(value: str) -> bool:
    """Whether ``value`` can be written out as UTF-8. A lone surrogate (``"\\ud800"``, which JSON and Python
    accept) cannot: as a label value it would make every later scrape fail."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class LabelGuard:
    """Caps the distinct values each label may take; later values become ``__overflow__``.

    The check for a value already seen is one set look-up, so it is cheap enough for the request path.
    Sets only grow to ``cap`` entries, so memory is bounded by (labels x cap). ``on_overflow(label)`` is
    told of every value folded (the recorder counts them in ``llm_exporter_label_overflow_total``); sinks
    that cap the names they were already given use it without one, so nothing is counted twice.
    """

    def __init__(self, cap: int, on_overflow: Callable[[str], None] | None = None) -> None:
        self.cap = cap
        self._seen: dict[str, set[str]] = {}
        self._on_overflow = on_overflow

    def __call__(self, label: str, value: str) -> str:
        seen = self._seen.get(label)
        if seen is None:
            seen = self._seen.setdefault(label, set())
        if value in seen:
            return value
        if value == OVERFLOW:  # already folded upstream: count it once only
            return value
        if not is_utf8(value):  # inputs reject these; this is the last line for values read from responses
            value = value.encode("utf-8", "replace").decode("utf-8")
            if value in seen:
                return value
        if len(seen) < self.cap:
            seen.add(value)
            return value
        if self._on_overflow is not None:
            self._on_overflow(label)
        return OVERFLOW


class SeriesBudget:
    """Caps the label combinations of each metric family, however the values of its labels combine.

    :class:`LabelGuard` caps each label alone, so a family with three labels of 100 values each could
    still hold a million children. Here each family (registered with :meth:`limit`) takes at most
    ``combinations - 1`` distinct combinations of values; later new ones all share one combination with
    every value ``__overflow__``, so the family never holds more than ``combinations`` children, the
    overflow one included. ``on_overflow(name)`` is told of every observation folded.

    The recorder asks only when it creates a child (its caches hold the admitted ones), so an existing
    series costs nothing more on the request path; the set look-up and the lock are for new ones.
    """

    def __init__(self, on_overflow: Callable[[str], None]) -> None:
        self._on_overflow = on_overflow
        self._families: dict[object, tuple[str, int, set[tuple[str, ...]]]] = {}
        self._lock = threading.Lock()

    def limit(self, family: object, name: str, combinations: int) -> None:
        """Let ``family`` (reported as ``name``) hold at most ``combinations`` (>= 2) children."""
        self._families[family] = (name, max(2, combinations), set())

    def combinations(self, family: object) -> int:
        return self._families[family][1]

    def admit(self, family: object, values: tuple[str, ...]) -> tuple[str, ...]:
        """``values`` when ``family`` has (or may make) that child; else the overflow combination. A family
        never registered is bounded by the code that records it (a result name): always ``values``."""
        entry = self._families.get(family)
        if entry is None:
            return values
        name, room, seen = entry
        if values in seen:
            return values
        with self._lock:  # the check and the add together: two threads must not both take the last place
            if len(seen) < room - 1:
                seen.add(values)
                return values
        self._on_overflow(name)
        return (OVERFLOW,) * len(values)
