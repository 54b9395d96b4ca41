"""The vocabulary: every signal the exporter records, each defined once: its fields, their units, and
the rule that checks each field (with one message, from :mod:`exporter.checks`).

The ``llm`` API and ``/track`` read their input through :func:`from_fields` and these definitions, so both
accept the same values and refuse the rest with the same message; response capture and the span
processor build the same objects from what providers report. Times are seconds, costs US dollars,
token counts whole tokens.
"""

from __future__ import annotations

import dataclasses
import operator
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

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


# The kinds a call's tokens split into, each token counted once, as the most specific kind it belongs to
# (the ``gen_ai_token_type`` values of llm_tokens_total and llm_cost_usd_total; :func:`token_kinds` says how
# each is counted). Together they add up to the call's tokens, and their costs to its bill.
TOKEN_KINDS = (
    "input",  # input neither read from nor written to the cache, nor audio or image
    "cache_read",  # text input read from the prompt cache
    "cache_write",  # input written to the cache with a 5-minute lifetime (or one the provider doesn't say)
    "cache_write_1h",  # input written to the cache with a 1-hour lifetime
    "input_audio",  # audio input, not from the cache
    "cache_audio_read",  # audio input read from the cache
    "input_image",  # image input, not from the cache
    "cache_image_read",  # image input read from the cache
    "output",  # output that is neither reasoning, audio nor image
    "output_reasoning",  # reasoning (thinking) output
    "output_audio",
    "output_image",
)
N_INPUT_KINDS = 8  # TOKEN_KINDS[:8] are the input kinds, the rest the output kinds


def token_kinds(
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    input_audio: int = 0,
    cache_audio_read: int = 0,
    input_image: int = 0,
    cache_image_read: int = 0,
    output_reasoning: int = 0,
    output_audio: int = 0,
    output_image: int = 0,
) -> tuple[int, ...] | None:
    """The tokens of each kind of ``TOKEN_KINDS``, from the totals and the parts providers report; ``None``
    when a part is larger than what it is part of (counts that can't be one call's).

    Cache writes are taken to be text, and reasoning to be neither audio nor image: no provider reports audio
    or image cache writes, or reasoning in audio. Audio and image cache reads are part of both the cache
    reads and the audio or image input.
    """
    kinds = (
        input_tokens - cache_read - cache_write - input_audio - input_image + cache_audio_read + cache_image_read,
        cache_read - cache_audio_read - cache_image_read,
        cache_write - cache_write_1h,
        cache_write_1h,
        input_audio - cache_audio_read,
        cache_audio_read,
        input_image - cache_image_read,
        cache_image_read,
        output_tokens - output_reasoning - output_audio - output_image,
        output_reasoning,
        output_audio,
        output_image,
    )
    return kinds if min(kinds) >= 0 else None


# The token counts of an LLM call that are parts of another (its total includes them), for the messages
# that say which count is wrong. Audio and image cache reads are in two of them.
_TOKEN_PARTS = (
    ("input_tokens", ("cached_input_tokens", "cache_write_tokens", "input_audio_tokens", "input_image_tokens")),
    ("cache_write_tokens", ("cache_write_1h_tokens",)),
    ("cached_input_tokens", ("cache_audio_read_tokens", "cache_image_read_tokens")),
    ("input_audio_tokens", ("cache_audio_read_tokens",)),
    ("input_image_tokens", ("cache_image_read_tokens",)),
    ("output_tokens", ("output_reasoning_tokens", "output_audio_tokens", "output_image_tokens")),
)


# -- how an answer ended, what it asked for, how its chunks came ------------------------------------------

# Why an answer ended, normalised across providers (the ``reason`` of llm_finish_reasons_total).
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "error", "other")
# Each provider's values (OpenAI chat and Responses, Anthropic, Gemini, Bedrock Converse; the OTel
# conventions' gen_ai.response.finish_reasons carry these as the provider said them). Compared lowercased.
_FINISH = {
    "stop": "stop",
    "end_turn": "stop",  # Anthropic, Bedrock
    "stop_sequence": "stop",
    "completed": "stop",  # OpenAI Responses: status
    "finish_reason_unspecified": "other",  # Gemini
    "length": "length",
    "max_tokens": "length",  # Anthropic, Gemini, Bedrock
    "max_output_tokens": "length",  # OpenAI Responses: incomplete_details.reason
    "model_context_window_exceeded": "length",  # Anthropic, Bedrock
    "continuation": "length",  # Gemini: the per-request token limit, to be continued
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # OpenAI's older functions
    "tool_use": "tool_calls",  # Anthropic, Bedrock
    "pause_turn": "other",  # Anthropic: a server tool paused the turn
    "content_filter": "content_filter",
    "content_filtered": "content_filter",  # Bedrock
    "guardrail_intervened": "content_filter",  # Bedrock
    "refusal": "content_filter",  # Anthropic
    "safety": "content_filter",  # Gemini
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "image_safety": "content_filter",
    "image_prohibited_content": "content_filter",
    "image_recitation": "content_filter",
    "escalation": "content_filter",
    "model_armor": "content_filter",
    "pup_limited_disabled": "content_filter",  # an account limited for policy violations
    "malformed_function_call": "error",  # Gemini
    "unexpected_tool_call": "error",
    "too_many_tool_calls": "error",
    "malformed_response": "error",
    "missing_thought_signature": "error",
    "failed": "error",  # OpenAI Responses: status
    "error": "error",
    "language": "other",  # Gemini: an unsupported language
    "other": "other",
    "no_image": "other",
    "image_other": "other",
}


def finish_reason(value: str) -> str:
    """The normalised finish reason of a provider's value (``end_turn``, ``MAX_TOKENS``...); ``other`` for a
    value no provider documents (providers add values; they are counted, not lost)."""
    return _FINISH.get(value.lower(), "other")


def _finish_reasons(value: Any) -> tuple[str, ...]:
    """The rule of a caller's finish reason: one value or a list (one per choice), each one of
    ``FINISH_REASONS`` or a provider's value that maps to one; an unknown value is refused."""
    values = value if isinstance(value, list | tuple) else [value]
    found = []
    for item in values:
        if not isinstance(item, str) or item.lower() not in _FINISH:
            raise Wrong(f"expected one of {', '.join(FINISH_REASONS)} (or a provider's value such as end_turn)")
        found.append(_FINISH[item.lower()])
    return tuple(found)


def _tool_names(value: Any) -> tuple[str, ...]:
    """The rule of a caller's tool calls: the list of the tools' names, one per call asked for."""
    if not isinstance(value, list | tuple):
        raise Wrong("expected a list of tool names, one per tool call")
    try:
        return tuple(NAME(item) for item in value)
    except Wrong as exc:
        raise Wrong(f"expected a list of tool names: {exc.message}") from None


# The boundaries of gen_ai_client_operation_time_per_output_chunk_seconds: fixed (not in the buckets
# config) because response capture bins each gap as it comes, before it knows which recorder it feeds.
CHUNK_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0)


@dataclass(slots=True)
class ChunkGaps:
    """The gaps between a stream's content chunks, binned by ``CHUNK_GAP_BUCKETS`` (a count per bound,
    then +Inf) with their sum in seconds: a stream of any length is a few numbers, recorded at its end."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(CHUNK_GAP_BUCKETS) + 1))
    total: float = 0.0

    @classmethod
    def of(cls, gaps: Iterable[float]) -> ChunkGaps:
        binned = cls()
        for gap in gaps:
            binned.counts[bisect_left(CHUNK_GAP_BUCKETS, gap)] += 1
            binned.total += gap
        return binned

    def __len__(self) -> int:
        return sum(self.counts)


_GAP = number()


def _chunk_gaps(value: Any) -> ChunkGaps:
    """The rule of a caller's chunk gaps: a list of seconds (each a number >= 0)."""
    if not isinstance(value, list | tuple):
        raise Wrong("expected a list of seconds between content chunks")
    try:
        return ChunkGaps.of(_GAP(gap) for gap in value)
    except Wrong as exc:
        raise Wrong(f"expected a list of seconds between content chunks: {exc.message}") from None


@dataclass(slots=True)
class LLMCall:
    """One LLM operation. ``input_tokens`` and ``output_tokens`` are totals; the other counts are parts of
    them, as providers report them: ``input_tokens`` includes ``cached_input_tokens`` (cache reads),
    ``cache_write_tokens`` and the audio and image input; ``output_tokens`` includes the reasoning, audio
    and image output. :meth:`kinds` splits them into the disjoint kinds of ``TOKEN_KINDS``.

    ``model`` is the model asked for (where the request is not known, the one that answered stands in for
    it); ``response_model`` the one that answered, which prices the call.
    """

    model: str
    provider: str = "unknown"
    operation: str = "chat"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0  # of any lifetime
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written for 1 hour
    input_audio_tokens: int = 0  # cached or not
    cache_audio_read_tokens: int = 0  # the audio part of cached_input_tokens
    input_image_tokens: int = 0  # cached or not
    cache_image_read_tokens: int = 0  # the image part of cached_input_tokens
    output_reasoning_tokens: int = 0
    output_audio_tokens: int = 0
    output_image_tokens: int = 0
    duration: float | None = None  # seconds
    ttft: float | None = None  # seconds to the first output token, streams only
    error_type: str | None = None
    cost_usd: float | None = None  # a cost given by the provider or the caller: used as is, never estimated
    tenant: str | None = None
    timestamp: float | None = None  # wall clock of the call; None means now
    # The http_route of the request whose handling made the call (set by the middleware, outbound capture and
    # llm.call blocks); None: made outside any request, recorded as __none__.
    route: str | None = None
    response_model: str | None = None
    # Why the answer has no usage (e.g. ``stream_without_usage``): set by the readers of provider answers, which
    # then book no tokens and no cost. Not an input field: a caller who knows no counts gives none.
    missing_usage: str | None = None
    finish_reasons: tuple[str, ...] = ()  # normalised (FINISH_REASONS), one per choice; () when none was said
    tool_calls: tuple[str, ...] = ()  # the name of each tool call the answer asks for
    chunk_gaps: ChunkGaps | None = None  # streams: the gaps between content chunks after the first

    FIELDS: ClassVar[dict[str, Field]] = {
        "model": REQUIRED_NAME,
        "provider": Field(NAME, default="unknown"),
        "operation": Field(NAME, default="chat"),
        "input_tokens": TOKENS,
        "output_tokens": TOKENS,
        "cached_input_tokens": TOKENS,
        "cache_write_tokens": TOKENS,
        "cache_write_1h_tokens": TOKENS,
        "input_audio_tokens": TOKENS,
        "cache_audio_read_tokens": TOKENS,
        "input_image_tokens": TOKENS,
        "cache_image_read_tokens": TOKENS,
        "output_reasoning_tokens": TOKENS,
        "output_audio_tokens": TOKENS,
        "output_image_tokens": TOKENS,
        "duration": SECONDS,
        "ttft": SECONDS,
        "error_type": OPTIONAL,
        "cost_usd": Field(number()),
        "tenant": OPTIONAL,
        "timestamp": WHEN,
        "response_model": OPTIONAL,
        "finish_reasons": Field(_finish_reasons, default=()),
        "tool_calls": Field(_tool_names, default=()),
        "chunk_gaps": Field(_chunk_gaps),
    }

    def kinds(self) -> tuple[int, ...] | None:
        """The tokens of each kind of ``TOKEN_KINDS``; ``None`` when a part exceeds its total."""
        return token_kinds(
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.input_audio_tokens,
            self.cache_audio_read_tokens,
            self.input_image_tokens,
            self.cache_image_read_tokens,
            self.output_reasoning_tokens,
            self.output_audio_tokens,
            self.output_image_tokens,
        )

    def time_per_output_token(self) -> float | None:
        """Seconds per output token after the first, for a stream whose output tokens are known: (end - first
        token) / (output tokens - 1). A failed call's count is partial and one without usage has none:
        neither gives a figure, rather than a guessed one."""
        n = self.output_tokens
        if self.ttft is None or self.duration is None or n < 2 or self.error_type or self.missing_usage:
            return None
        return max(self.duration - self.ttft, 0.0) / (n - 1)

    @staticmethod
    def cross_check(values: Mapping[str, Any]) -> tuple[str, str] | None:
        """The count that is larger than what it is part of, and what was expected of it."""
        v = values
        # Counts (all >= 0) whose kinds are all >= 0 have every part within what it is part of (each kind is
        # a total less its parts): the usual call is answered by one subtraction per kind, not the search below.
        if (
            token_kinds(
                v["input_tokens"],
                v["output_tokens"],
                v["cached_input_tokens"],
                v["cache_write_tokens"],
                v["cache_write_1h_tokens"],
                v["input_audio_tokens"],
                v["cache_audio_read_tokens"],
                v["input_image_tokens"],
                v["cache_image_read_tokens"],
                v["output_reasoning_tokens"],
                v["output_audio_tokens"],
                v["output_image_tokens"],
            )
            is not None
        ):
            return None
        return _wrong_part(values)


def _wrong_part(values: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first token count larger than what it is part of (or whose parts add up to more), by _TOKEN_PARTS."""
    for total, parts in _TOKEN_PARTS:
        limit = values[total]
        for part in parts:
            if values[part] > limit:
                return part, f"expected at most {total} ({limit}); {total} includes them"
        used = sum(values[part] for part in parts)
        if total == "input_tokens":  # audio and image cache reads are in two of the parts: count them once
            used -= values["cache_audio_read_tokens"] + values["cache_image_read_tokens"]
        if used > limit:
            return total, f"expected at least {' + '.join(parts)} ({used}); {total} includes them"
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
class ToolExecution:
    """One run of a tool an agent called (an ``execute_tool`` span): its name, seconds, and error class."""

    name: str
    duration: float
    error_type: str | None = None

    FIELDS: ClassVar[dict[str, Field]] = {
        "name": REQUIRED_NAME,
        "duration": Field(number(), required=True, seconds=True),
        "error_type": OPTIONAL,
    }


@dataclass(frozen=True, slots=True)
class Feature:
    """A value of a drift feature: a number or a category."""

    name: str
    value: float | str

    FIELDS: ClassVar[dict[str, Field]] = {"name": REQUIRED_NAME, "value": Field(category_or_number, required=True)}


Observation = LLMCall | Confidence | Prediction | Evaluation | Feedback | Event | HttpRequest | ToolExecution | Feature
_O = TypeVar("_O", LLMCall, Confidence, Prediction, Evaluation, Feedback, Event, HttpRequest, ToolExecution, Feature)

MISSING = "required field is missing"


# Each signal's fields as (name, rule, default, required), in FIELDS order: read per field of every /track event.
_SPECS: dict[type[Any], tuple[tuple[str, Rule, Any, bool], ...]] = {}


def from_fields(signal: type[_O], get: Callable[[str], Any], wrong: Callable[[str, str], None]) -> _O | None:
    """The ``signal`` whose fields ``get(name)`` gives (None: absent), each checked by its rule.

    Every wrong field is reported to ``wrong(field, message)`` (``/track`` lists them all; the ``llm``
    API raises at the first); the result is None when any was wrong.
    """
    values: dict[str, Any] = {}
    ok = True
    specs = _SPECS.get(signal)
    if specs is None:
        specs = _SPECS[signal] = tuple((n, f.rule, f.default, f.required) for n, f in signal.FIELDS.items())
    for name, rule, default, required in specs:
        raw = get(name)
        if raw is None:
            if required:
                wrong(name, MISSING)
                ok = False
            values[name] = default
            continue
        try:
            values[name] = rule(raw)
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


class Reader(Generic[_O]):
    """A signal's field specs compiled once into one pass over an input's items, for the common input whose
    every field is known and right (``/track``'s events): a look-up and the rule per field given, no call
    per field absent. :meth:`read` gives None at the first doubt (an unknown, missing or wrong field):
    :func:`from_fields` then reads the input again and names every wrong field, so what is accepted, and
    what is said of the rest, is what the field specs say, once.

    ``skip``: keys that are not fields (``type``); ``millis``: a duration may also come in milliseconds, as
    ``<name>_ms`` (one of the two, not both), converted as ``/track`` converts it.
    """

    __slots__ = ("signal", "skip", "entries", "defaults", "required", "cross", "arguments")

    def __init__(self, signal: type[_O], skip: Iterable[str] = (), *, millis: bool = False) -> None:
        self.signal: type[_O] = signal
        fields = signal.FIELDS
        # key -> (field, rule, how): 0 a plain field, 1 a duration in seconds, 2 one in milliseconds.
        self.skip = frozenset(skip)
        self.entries: dict[str, tuple[str, Rule, int]] = {}
        for name, spec in fields.items():
            self.entries[name] = (name, spec.rule, 1 if spec.seconds and millis else 0)
            if spec.seconds and millis:
                self.entries[f"{name}_ms"] = (name, spec.rule, 2)
        self.defaults = {name: spec.default for name, spec in fields.items()}
        # The signal is made with its arguments in order (positional arguments cost half of keywords); its
        # attributes that are not input fields (an LLM call's route) take their defaults.
        order = [f.name for f in dataclasses.fields(signal)]
        for f in dataclasses.fields(signal):
            if f.name not in fields:
                assert f.default is not dataclasses.MISSING, f"{signal.__name__}.{f.name} needs a default"
                self.defaults[f.name] = f.default
        assert len(order) > 1  # itemgetter of one name gives the value, not a tuple
        self.arguments: Callable[[dict[str, Any]], tuple[Any, ...]] = operator.itemgetter(*order)
        # A duration's or a required field's absence is its None default (None is never a rule's answer).
        assert all(self.defaults[name] is None for name, spec in fields.items() if spec.seconds or spec.required)
        self.required = tuple(name for name, spec in fields.items() if spec.required)
        self.cross: Callable[[dict[str, Any]], tuple[str, str] | None] | None = getattr(signal, "cross_check", None)

    def read(self, data: Mapping[str, Any]) -> _O | None:
        """The signal of ``data`` when every field is known and right (None: not so, ask from_fields why)."""
        values = self.defaults.copy()
        entries = self.entries
        for key, raw in data.items():
            entry = entries.get(key)
            if entry is None:
                if key in self.skip:
                    continue
                return None  # unknown
            if raw is None:  # null: absent
                continue
            name, rule, how = entry
            try:
                value = rule(raw)
                if how:
                    if values[name] is not None:  # given in seconds and in milliseconds
                        return None
                    if how == 2:
                        value = rule(value / 1000.0)  # as from_fields checks a converted duration
            except Wrong:
                return None
            values[name] = value
        for name in self.required:
            if values[name] is None:
                return None
        cross = self.cross
        if cross is not None and cross(values) is not None:
            return None
        return self.signal(*self.arguments(values))


PROVIDER_COST = "provider"  # the cost_source of a cost the provider (or the caller) gave
ESTIMATED = "estimated"  # the cost_source of a cost priced from the price data
UNSPLIT = "unsplit"  # the gen_ai_token_type of a provider's cost: one figure for the whole call, never beside parts


# Not frozen: one is made per priced call.
@dataclass(slots=True)
class Cost:
    """What one LLM call cost in US dollars, and where the figure comes from (``source``).

    An ``estimated`` cost has ``parts``: the USD of each kind of ``TOKEN_KINDS`` and, last, a fee per call
    where the model has one; they add up to ``total_usd``. A ``provider`` cost is one figure, as given.
    """

    total_usd: float
    source: str = ESTIMATED
    parts: tuple[float, ...] = ()

    @property
    def input_usd(self) -> float | None:
        """The input kinds' USD (an estimate's; a provider's figure has no split)."""
        return sum(self.parts[:N_INPUT_KINDS]) if self.parts else None

    @property
    def output_usd(self) -> float | None:
        return sum(self.parts[N_INPUT_KINDS : len(TOKEN_KINDS)]) if self.parts else None


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
