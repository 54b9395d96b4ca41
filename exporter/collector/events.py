"""The JSON events ``POST /track`` accepts: parsing and validation into observations for a Recorder.

Validation is complete before anything is recorded: :func:`parse_events` either returns every
observation of a batch or the full list of errors, so a batch is recorded whole or not at all.

One event is a JSON object with a ``type`` (see :data:`TYPES`). An object without ``type`` that has
any field of the older Flask tracking services (``response_time_ms``, ``tokens_used``...) is read
as such a payload, unchanged (:func:`_legacy`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..checks import TEXT, Rule, Wrong, count, flag, number
from ..labels import KNOWN_METHODS
from ..observations import (
    MISSING,
    Confidence,
    Evaluation,
    Event,
    Feature,
    Feedback,
    HttpRequest,
    LLMCall,
    Observation,
    Prediction,
    Reader,
    ToolExecution,
    from_fields,
)


@dataclass(frozen=True, slots=True)
class FieldError:
    index: int  # position in the batch (0 for a single object)
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


_Layout = tuple[frozenset[str], tuple[tuple[str, str, Any], ...]]
_LAYOUTS: dict[type[Any], _Layout] = {}


def _layout(kind: type[Any]) -> _Layout:
    """The field names an event of ``kind`` may carry (``type``, the signal's fields, ``<name>_ms`` for its
    durations), and its durations with their ``_ms`` names: worked out once per signal."""
    layout = _LAYOUTS.get(kind)
    if layout is None:
        seconds = tuple((name, f"{name}_ms", spec) for name, spec in kind.FIELDS.items() if spec.seconds)
        layout = _LAYOUTS[kind] = frozenset({"type", *kind.FIELDS, *(ms for _, ms, _ in seconds)}), seconds
    return layout


class _Fields:
    """One event's fields, read through the signal definitions, collecting an error per wrong field
    instead of stopping at the first. Nothing is recorded from a batch with errors."""

    def __init__(self, index: int, data: Mapping[str, Any], errors: list[FieldError]) -> None:
        self.index = index
        self.data = data
        self.errors = errors
        self.known: frozenset[str] = frozenset()  # a signal's fields

    def error(self, name: str, message: str) -> None:
        self.errors.append(FieldError(self.index, name, message))

    def signal(self, kind: type[Any]) -> Any:
        """The ``kind`` observation of this event (None when a field is wrong). A duration may also come
        in milliseconds, as ``<name>_ms``; one of the two, not both."""
        self.known, seconds = _layout(kind)
        data = self.data
        in_seconds: dict[str, Any] = {}  # durations given in milliseconds, converted
        reported: set[str] = set()
        for name, millis, spec in seconds:
            raw = data.get(millis)
            if raw is None:
                continue
            if data.get(name) is not None:
                self.error(millis, f"give {name} (seconds) or {millis} (milliseconds), not both")
                reported.add(name)
                continue
            try:
                in_seconds[name] = spec.rule(raw) / 1000.0
            except Wrong as exc:
                self.error(millis, exc.message)
                reported.add(name)

        def wrong(name: str, message: str) -> None:
            if name in reported:
                return
            if message == MISSING and kind.FIELDS[name].seconds:
                message += f" (give {name} in seconds or {name}_ms in milliseconds)"
            self.error(name, message)

        get: Callable[[str], Any] = data.get
        if in_seconds:

            def get(name: str) -> Any:
                return in_seconds[name] if name in in_seconds else data.get(name)

        found = from_fields(kind, get, wrong)
        return None if reported else found

    def no_other_fields(self) -> None:
        known = self.known
        for name in self.data:
            if name not in known:
                expected = ", ".join(sorted(known))
                self.error(name, f"unknown field; expected one of: {expected}")


# -- event types: each is one signal of the vocabulary ----------------------------------------------------


def _http(f: _Fields) -> list[Observation]:
    request = f.signal(HttpRequest)
    return [] if request is None else [_known_method(request)]


def _known_method(request: HttpRequest) -> HttpRequest:
    """The request with its method as the HTTP metrics take it: upper case, ``_OTHER`` when not a known one."""
    method = request.method.upper()
    method = method if method in KNOWN_METHODS else "_OTHER"
    return request if method == request.method else replace(request, method=method)


def _one(kind: type[Any]) -> Callable[[_Fields], list[Observation]]:
    def parse(f: _Fields) -> list[Observation]:
        found = f.signal(kind)
        return [] if found is None else [found]

    return parse


# The event types, each one signal of the vocabulary.
SIGNALS: dict[str, type[Any]] = {
    "llm": LLMCall,
    "confidence": Confidence,
    "evaluation": Evaluation,
    "feedback": Feedback,
    "event": Event,
    "http": HttpRequest,
    "tool": ToolExecution,
    "feature": Feature,
}
TYPES: dict[str, Callable[[_Fields], list[Observation]]] = {
    name: _http if kind is HttpRequest else _one(kind) for name, kind in SIGNALS.items()
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


_MILLIS = number()
_TOKENS = count()

# The legacy payload's fields read, each with its rule and what it is when absent, in the order their
# errors are listed. Fields the services sent that are not listed here are ignored, so their payload works
# unchanged.
_LEGACY_READ: tuple[tuple[str, Rule, Any], ...] = (
    ("business_id", TEXT, None),
    ("model", TEXT, None),
    ("provider", TEXT, None),
    ("response_time_ms", _MILLIS, None),
    ("tokens_used", _TOKENS, 0),
    ("api_cost_usd", _MILLIS, None),
    ("intent_detected", TEXT, None),
    ("appointment_requested", flag, False),
    ("user_message_length", _TOKENS, None),
    ("ai_response_length", _TOKENS, None),
    ("response_type", TEXT, None),
)


def _legacy(data: Mapping[str, Any], f: _Fields | None) -> list[Observation] | None:
    """One legacy payload -> the contract's observations. A wrong field is reported to ``f``; without one
    (the one pass of :func:`parse_events`) the answer is None, and :func:`parse_event` reads it again.

    ``tokens_used`` is a total with no input/output split; it is counted as output tokens (the reply is
    what the services measured), and a given ``api_cost_usd`` then lands on the output cost as is.
    """
    values: dict[str, Any] = {}
    for name, rule, default in _LEGACY_READ:
        raw = data.get(name)
        if raw is None:
            values[name] = default
            continue
        try:
            values[name] = rule(raw)
        except Wrong as exc:
            if f is None:
                return None
            f.error(name, exc.message)
            values[name] = default
    tenant = values["business_id"]
    model = values["model"] or "unknown"
    out: list[Observation] = []
    get = data.get
    if get("response_time_ms") is not None or get("tokens_used") is not None or get("api_cost_usd") is not None:
        millis = values["response_time_ms"]
        call = LLMCall(
            model=model,
            provider=values["provider"] or "unknown",
            output_tokens=values["tokens_used"],
            duration=millis / 1000.0 if millis is not None else None,
            cost_usd=values["api_cost_usd"],
            tenant=tenant,
        )
        out.append(call)
    if values["intent_detected"]:
        out.append(Prediction(values["intent_detected"], model))
    if values["appointment_requested"]:
        out.append(Event("appointment_requested", tenant, 1))
    for name in ("user_message_length", "ai_response_length"):
        length = values[name]
        if length is not None:
            out.append(Feature(name, float(length)))
    if values["response_type"]:
        out.append(Feature("response_type", values["response_type"]))
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
            return _legacy(data, f) or []
        f.error("type", f"required field is missing; expected one of: {', '.join(TYPES)}")
        return []
    parse = TYPES.get(kind) if isinstance(kind, str) else None
    if parse is None:
        f.error("type", f"expected one of: {', '.join(TYPES)}")
        return []
    observations = parse(f)
    f.no_other_fields()
    return observations


# Each event type's signal compiled for the common event, every field known and right (see Reader): one pass
# over its items. Any other event is read by parse_event, which says what is wrong with it.
_READERS = {name: Reader(kind, ("type",), millis=True) for name, kind in SIGNALS.items()}


def parse_events(body: Any) -> tuple[int, list[Observation], list[FieldError]]:
    """``(event count, observations, errors)`` of a decoded ``/track`` body (one object or a list)."""
    items = body if isinstance(body, list) else [body]
    errors: list[FieldError] = []
    observations: list[Observation] = []
    readers = _READERS
    for index, item in enumerate(items):
        if type(item) is dict:
            kind = item.get("type")
            reader = readers.get(kind) if type(kind) is str else None
            if reader is not None:
                found = reader.read(item)
                if found is not None:
                    observations.append(_known_method(found) if type(found) is HttpRequest else found)
                    continue
            elif kind is None and not LEGACY_FIELDS.isdisjoint(item):
                legacy = _legacy(item, None)
                if legacy is not None:
                    observations.extend(legacy)
                    continue
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
