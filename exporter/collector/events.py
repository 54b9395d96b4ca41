"""The JSON events ``POST /track`` accepts: parsing and validation into observations for a Recorder.

Validation is complete before anything is recorded: :func:`parse_events` either returns every
observation of a batch or the full list of errors, so a batch is recorded whole or not at all.

One event is a JSON object with a ``type`` (see :data:`TYPES`). An object without ``type`` that has
any field of the older Flask tracking services (``response_time_ms``, ``tokens_used``...) is read
as such a payload, unchanged (:func:`_legacy`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..labels import KNOWN_METHODS, NOT_UTF8, is_utf8
from ..observations import LLMCall
from ..recorder import Recorder

MAX_STRING = 256  # label values longer than this are a client bug, not a label
FUTURE_SLACK = 300.0  # seconds a client clock may run ahead
# Metric values are float64, exact for integers up to 2**53. A JSON integer can be any length: beyond
# this it would be rounded, and beyond ~1.8e308 converting it to a float raises OverflowError.
MAX_INT = 2**53
TOO_LARGE = f"integer too large: expected at most 2**53 ({MAX_INT}) in absolute value"


@dataclass(frozen=True, slots=True)
class FieldError:
    index: int  # position in the batch (0 for a single object)
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


# -- observations: what one event records ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Confidence:
    value: float
    label: str
    model: str

    def record(self, rec: Recorder) -> None:
        rec.confidence(self.value, self.label, self.model)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted label without a confidence (the legacy ``intent_detected``)."""

    label: str
    model: str

    def record(self, rec: Recorder) -> None:
        rec.prediction(self.label, self.model)


@dataclass(frozen=True, slots=True)
class Evaluation:
    name: str
    score: float
    model: str
    ts: float | None

    def record(self, rec: Recorder) -> None:
        rec.evaluation(self.name, self.score, self.model, self.ts)


@dataclass(frozen=True, slots=True)
class Feedback:
    rating: float
    model: str

    def record(self, rec: Recorder) -> None:
        rec.feedback(self.rating, self.model)


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    tenant: str | None
    count: int

    def record(self, rec: Recorder) -> None:
        rec.event(self.name, self.tenant, self.count)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    route: str
    status: int
    duration: float
    request_bytes: int
    response_bytes: int

    def record(self, rec: Recorder) -> None:
        route = rec.route(self.route)
        rec.http(self.method, route, self.status, self.duration, self.request_bytes, self.response_bytes)


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    value: float | str

    def record(self, rec: Recorder) -> None:
        rec.feature(self.name, self.value)


@dataclass(frozen=True, slots=True)
class Llm:
    call: LLMCall

    def record(self, rec: Recorder) -> None:
        rec.llm(self.call)


Observation = Llm | Confidence | Prediction | Evaluation | Feedback | Event | HttpRequest | Feature


# -- field readers ------------------------------------------------------------------------------------


class _Fields:
    """Reads typed fields of one event, collecting an error per wrong field instead of stopping at the first.

    A wrong field yields a placeholder; nothing is recorded from a batch with errors, so it is never used.
    """

    def __init__(self, index: int, data: Mapping[str, Any], errors: list[FieldError]) -> None:
        self.index = index
        self.data = data
        self.errors = errors
        self.read: set[str] = {"type"}

    def error(self, name: str, message: str) -> None:
        self.errors.append(FieldError(self.index, name, message))

    def _get(self, name: str, required: bool) -> Any:
        self.read.add(name)
        value = self.data.get(name)
        if value is None and required:
            self.error(name, "required field is missing")
        return value

    def string(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, str) or (required and not value):
            self.error(name, "expected a non-empty string" if required else "expected a string")
            return default
        if len(value) > MAX_STRING:
            self.error(name, f"expected a string of at most {MAX_STRING} characters, got {len(value)}")
            return default
        if not is_utf8(value):
            self.error(name, f"expected {NOT_UTF8}")
            return default
        return value

    def optional_string(self, name: str) -> str | None:
        """A string, or None when the field is absent or null."""
        if self.data.get(name) is None:
            self.read.add(name)
            return None
        return self.string(name)

    def integer(self, name: str, *, required: bool = False, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._get(name, required)
        if value is None:
            return minimum
        # JSON has one number type: 150.0 is accepted as 150, 150.5 is not a token count.
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(name, _range("an integer", minimum, maximum))
            return minimum
        if maximum is not None and value > maximum:
            self.error(name, _range("an integer", minimum, maximum))
            return minimum
        if value > MAX_INT:
            self.error(name, TOO_LARGE)
            return minimum
        return value

    def number(
        self, name: str, *, required: bool = False, minimum: float = 0.0, maximum: float | None = None
    ) -> float | None:
        value = self._get(name, required)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            self.error(name, _range("a number", minimum, maximum))
            return None
        # A huge int compares with the bounds exactly (10**400 > 1 is an out-of-range confidence); only
        # converting it to a float would overflow.
        if isinstance(value, int) and abs(value) > MAX_INT:
            self.error(name, TOO_LARGE)
            return None
        return float(value)

    def seconds(self, name: str, *, required: bool = False) -> float | None:
        """``name`` in seconds or ``name_ms`` in milliseconds; one of them, not both."""
        seconds = self.number(name)
        millis = self.number(f"{name}_ms")
        if seconds is not None and millis is not None:
            self.error(f"{name}_ms", f"give {name} (seconds) or {name}_ms (milliseconds), not both")
            return None
        if millis is not None:
            return millis / 1000.0
        if seconds is None and required and self.data.get(name) is None and self.data.get(f"{name}_ms") is None:
            self.error(name, f"required field is missing (give {name} in seconds or {name}_ms in milliseconds)")
        return seconds

    def boolean(self, name: str) -> bool:
        value = self._get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.error(name, "expected true or false")
            return False
        return value

    def timestamp(self, name: str = "timestamp") -> float | None:
        value = self.number(name, minimum=1.0)
        if value is not None and value > time.time() + FUTURE_SLACK:
            self.error(name, "expected a Unix time in seconds, not in the future")
            return None
        return value

    def no_other_fields(self) -> None:
        for name in self.data:
            if name not in self.read:
                self.error(name, f"unknown field; expected one of: {', '.join(sorted(self.read))}")


def _range(kind: str, minimum: float, maximum: float | None) -> str:
    if maximum is None:
        return f"expected {kind} >= {_num(minimum)}"
    return f"expected {kind} between {_num(minimum)} and {_num(maximum)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# -- event types --------------------------------------------------------------------------------------


def _llm(f: _Fields) -> list[Observation]:
    model = f.string("model", required=True)
    input_tokens = f.integer("input_tokens")
    cached = f.integer("cached_input_tokens")
    if cached > input_tokens:
        f.error("cached_input_tokens", f"expected at most input_tokens ({input_tokens}); input_tokens includes them")
    call = LLMCall(
        model=model,
        provider=f.string("provider", default="unknown") or "unknown",
        operation=f.string("operation", default="chat") or "chat",
        input_tokens=input_tokens,
        output_tokens=f.integer("output_tokens"),
        cached_input_tokens=cached,
        duration=f.seconds("duration"),
        ttft=f.seconds("ttft"),
        error_type=f.optional_string("error_type") or None,
        cost_usd=f.number("cost_usd"),
        tenant=f.optional_string("tenant"),
        timestamp=f.timestamp(),
    )
    return [Llm(call)]


def _confidence(f: _Fields) -> list[Observation]:
    value = f.number("value", required=True, maximum=1.0)
    return [Confidence(value or 0.0, f.string("label"), f.string("model"))]


def _evaluation(f: _Fields) -> list[Observation]:
    name = f.string("name", required=True)
    score = f.number("score", required=True, maximum=1.0)
    return [Evaluation(name, score or 0.0, f.string("model"), f.timestamp())]


def _feedback(f: _Fields) -> list[Observation]:
    rating = f.number("rating", required=True, minimum=1.0, maximum=5.0)
    return [Feedback(rating or 1.0, f.string("model"))]


def _event(f: _Fields) -> list[Observation]:
    name = f.string("name", required=True)
    return [Event(name, f.optional_string("tenant"), f.integer("count", minimum=1))]


def _http(f: _Fields) -> list[Observation]:
    method = f.string("method", required=True).upper()
    route = f.string("route", required=True)
    if route and not route.startswith("/"):
        f.error("route", "expected a route template starting with '/', e.g. /users/{id}")
    status = f.integer("status", required=True, minimum=100, maximum=599)
    duration = f.seconds("duration", required=True)
    return [
        HttpRequest(
            method if method in KNOWN_METHODS else "_OTHER",
            route,
            status,
            duration or 0.0,
            f.integer("request_bytes"),
            f.integer("response_bytes"),
        )
    ]


def _feature(f: _Fields) -> list[Observation]:
    name = f.string("name", required=True)
    raw = f.data.get("value")
    value: float | str | None
    integer = isinstance(raw, int) and not isinstance(raw, bool)  # any size: number() names a too large one
    if isinstance(raw, str):
        value = f.string("value", required=True)
    elif raw is None or integer or (isinstance(raw, float) and math.isfinite(raw)):
        value = f.number("value", required=True, minimum=-math.inf)
    else:
        f.read.add("value")
        f.error("value", "expected a finite number or a string")
        value = None
    return [Feature(name, value if value is not None else 0.0)]


TYPES: dict[str, Callable[[_Fields], list[Observation]]] = {
    "llm": _llm,
    "confidence": _confidence,
    "evaluation": _evaluation,
    "feedback": _feedback,
    "event": _event,
    "http": _http,
    "feature": _feature,
}

# The older Flask tracking services' fields. Their payload has no ``type``.
LEGACY_FIELDS = frozenset(
    {
        "business_id",
        "response_time_ms",
        "tokens_used",
        "api_cost_usd",
        "intent_detected",
        "appointment_requested",
        "user_message_length",
        "ai_response_length",
        "response_type",
    }
)


def _legacy(f: _Fields) -> list[Observation]:
    """One legacy payload -> the contract's observations.

    ``tokens_used`` is a total with no input/output split; it is counted as output tokens (the reply is
    what the services measured), and a given ``api_cost_usd`` then lands on the output cost as is.
    Fields the services sent that are not listed here are ignored, so their payload works unchanged.
    """
    tenant = f.optional_string("business_id")
    model = f.string("model", default="unknown") or "unknown"
    provider = f.string("provider", default="unknown") or "unknown"
    out: list[Observation] = []
    millis = f.number("response_time_ms")
    tokens = f.integer("tokens_used")
    cost = f.number("api_cost_usd")
    if any(f.data.get(k) is not None for k in ("response_time_ms", "tokens_used", "api_cost_usd")):
        call = LLMCall(
            model=model,
            provider=provider,
            output_tokens=tokens,
            duration=millis / 1000.0 if millis is not None else None,
            cost_usd=cost,
            tenant=tenant,
        )
        out.append(Llm(call))
    intent = f.string("intent_detected")
    if intent:
        out.append(Prediction(intent, model))
    if f.boolean("appointment_requested"):
        out.append(Event("appointment_requested", tenant, 1))
    for name in ("user_message_length", "ai_response_length"):
        if f.data.get(name) is not None:
            out.append(Feature(name, float(f.integer(name))))
    response_type = f.string("response_type")
    if response_type:
        out.append(Feature("response_type", response_type))
    return out


def parse_event(index: int, data: Any, errors: list[FieldError]) -> list[Observation]:
    """The observations of one event; errors are appended to ``errors``."""
    if not isinstance(data, Mapping):
        errors.append(FieldError(index, "(event)", f"expected a JSON object, got {_json_kind(data)}"))
        return []
    f = _Fields(index, data, errors)
    kind = data.get("type")
    if kind is None:
        if LEGACY_FIELDS.intersection(data):
            return _legacy(f)
        f.error("type", f"required field is missing; expected one of: {', '.join(TYPES)}")
        return []
    parse = TYPES.get(kind) if isinstance(kind, str) else None
    if parse is None:
        f.error("type", f"expected one of: {', '.join(TYPES)}")
        return []
    observations = parse(f)
    f.no_other_fields()
    return observations


def parse_events(body: Any) -> tuple[int, list[Observation], list[FieldError]]:
    """``(event count, observations, errors)`` of a decoded ``/track`` body (one object or a list)."""
    items = body if isinstance(body, list) else [body]
    errors: list[FieldError] = []
    observations: list[Observation] = []
    for index, item in enumerate(items):
        observations.extend(parse_event(index, item, errors))
    return len(items), observations, errors


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
