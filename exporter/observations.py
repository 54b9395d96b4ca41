"""The vocabulary: every signal the exporter records, each defined once: its fields, their units, and
the rule that checks each field (with one message, from :mod:`exporter.checks`).

The ``llm`` API and ``/track`` read their input through :func:`from_fields` and these definitions, so both
accept the same values and refuse the rest with the same message; response capture and the span
processor build the same objects from what providers report. Times are seconds, costs US dollars,
token counts whole tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .checks import NAME, OPTIONAL_TEXT, TEXT, Rule, Wrong, category_or_number, count, number, timestamp


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a signal: its rule, and what it is when absent (``required``: absent is an error)."""

    rule: Rule
    default: Any = None
    required: bool = False
    seconds: bool = False  # a duration: /track also takes it in milliseconds as ``<name>_ms``


# Fields that several signals share (defined here: inside a class body a field's name would shadow them).
REQUIRED_NAME = Field(NAME, required=True)
TOKENS = Field(count(), default=0)
SECONDS = Field(number(), seconds=True)
OPTIONAL = Field(OPTIONAL_TEXT)  # absent or empty: None
LABEL = Field(TEXT, default="")  # absent: the empty label value
WHEN = Field(timestamp())  # absent: now
SCORE = Field(number(0.0, 1.0), required=True)
EVENT_COUNT = Field(count(minimum=1), default=1)


@dataclass(slots=True)
class LLMCall:
    """One LLM operation. Token counts are totals: ``input_tokens`` includes ``cached_input_tokens``."""

    model: str
    provider: str = "unknown"
    operation: str = "chat"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    duration: float | None = None  # seconds
    ttft: float | None = None  # seconds to the first output token, streams only
    error_type: str | None = None
    cost_usd: float | None = None  # a cost given by the caller is used as is (split input/output by tokens)
    tenant: str | None = None
    timestamp: float | None = None  # wall clock of the call; None means now
    # The http_route of the request whose handling made the call (set by the middleware, outbound capture and
    # llm.call blocks); None: made outside any request, recorded as __none__.
    route: str | None = None

    FIELDS: ClassVar[dict[str, Field]] = {
        "model": REQUIRED_NAME,
        "provider": Field(NAME, default="unknown"),
        "operation": Field(NAME, default="chat"),
        "input_tokens": TOKENS,
        "output_tokens": TOKENS,
        "cached_input_tokens": TOKENS,
        "duration": SECONDS,
        "ttft": SECONDS,
        "error_type": OPTIONAL,
        "cost_usd": Field(number()),
        "tenant": OPTIONAL,
        "timestamp": WHEN,
    }

    @staticmethod
    def cross_check(values: Mapping[str, Any]) -> tuple[str, str] | None:
        if values["cached_input_tokens"] > values["input_tokens"]:
            total = values["input_tokens"]
            return "cached_input_tokens", f"expected at most input_tokens ({total}); input_tokens includes them"
        return None


@dataclass(frozen=True, slots=True)
class Confidence:
    """A prediction's confidence (0..1) for a label (an intent, a class); it also counts the prediction."""

    value: float
    label: str = ""
    model: str = ""

    FIELDS: ClassVar[dict[str, Field]] = {"value": SCORE, "label": LABEL, "model": LABEL}


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted label without a confidence (the legacy ``intent_detected``)."""

    label: str
    model: str = ""

    FIELDS: ClassVar[dict[str, Field]] = {"label": Field(TEXT, required=True), "model": LABEL}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """An evaluation score (0..1) such as ``faithfulness``; ``timestamp`` is when the judged call was made."""

    name: str
    score: float
    model: str = ""
    timestamp: float | None = None

    FIELDS: ClassVar[dict[str, Field]] = {"name": REQUIRED_NAME, "score": SCORE, "model": LABEL, "timestamp": WHEN}


@dataclass(frozen=True, slots=True)
class Feedback:
    """A user's rating on the 1..5 scale."""

    rating: float
    model: str = ""

    FIELDS: ClassVar[dict[str, Field]] = {"rating": Field(number(1.0, 5.0), required=True), "model": LABEL}


@dataclass(frozen=True, slots=True)
class Event:
    """A business event (``appointment_requested``, ``human_handoff``...), ``count`` times."""

    name: str
    tenant: str | None = None
    count: int = 1

    FIELDS: ClassVar[dict[str, Field]] = {"name": REQUIRED_NAME, "tenant": OPTIONAL, "count": EVENT_COUNT}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request another service served (``/track``); the middleware records its own directly."""

    method: str
    route: str
    status: int
    duration: float
    request_bytes: int = 0
    response_bytes: int = 0

    FIELDS: ClassVar[dict[str, Field]] = {
        "method": REQUIRED_NAME,
        "route": REQUIRED_NAME,
        "status": Field(count(100, 599), required=True),
        "duration": Field(number(), required=True, seconds=True),
        "request_bytes": TOKENS,
        "response_bytes": TOKENS,
    }

    @staticmethod
    def cross_check(values: Mapping[str, Any]) -> tuple[str, str] | None:
        if not values["route"].startswith("/"):
            return "route", "expected a route template starting with '/', e.g. /users/{id}"
        return None


@dataclass(frozen=True, slots=True)
class Feature:
    """A value of a drift feature: a number or a category."""

    name: str
    value: float | str

    FIELDS: ClassVar[dict[str, Field]] = {"name": REQUIRED_NAME, "value": Field(category_or_number, required=True)}


Observation = LLMCall | Confidence | Prediction | Evaluation | Feedback | Event | HttpRequest | Feature
_O = TypeVar("_O", LLMCall, Confidence, Prediction, Evaluation, Feedback, Event, HttpRequest, Feature)

MISSING = "required field is missing"


def from_fields(signal: type[_O], get: Callable[[str], Any], wrong: Callable[[str, str], None]) -> _O | None:
    """The ``signal`` whose fields ``get(name)`` gives (None: absent), each checked by its rule.

    Every wrong field is reported to ``wrong(field, message)`` (``/track`` lists them all; the ``llm``
    API raises at the first); the result is None when any was wrong.
    """
    values: dict[str, Any] = {}
    ok = True
    for name, spec in signal.FIELDS.items():
        raw = get(name)
        if raw is None:
            if spec.required:
                wrong(name, MISSING)
                ok = False
            values[name] = spec.default
            continue
        try:
            values[name] = spec.rule(raw)
        except Wrong as exc:
            wrong(name, exc.message)
            ok = False
    if not ok:
        return None
    cross = getattr(signal, "cross_check", None)
    found = cross(values) if cross is not None else None
    if found is not None:
        wrong(*found)
        return None
    return signal(**values)


@dataclass(slots=True)
class Cost:
    input_usd: float
    output_usd: float

    @property
    def total_usd(self) -> float:
        return self.input_usd + self.output_usd


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A response that looked like LLM output (``format``: ``json`` or ``sse``) but could not be read."""

    format: str


Captured = LLMCall | Unreadable | None  # what reading one provider response gives


RATE_LIMIT_RESOURCES = ("requests", "tokens", "input_tokens", "output_tokens")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """What a provider's rate-limit headers said about one ``resource`` (one of :data:`RATE_LIMIT_RESOURCES`)
    with an answer for ``model``: how much is left in the current window, and the limit. Either may be
    absent (Azure sends only what remains)."""

    provider: str
    model: str
    resource: str
    remaining: float | None = None
    limit: float | None = None
