"""Token usage read from LLM payloads: OpenAI, Anthropic and Gemini shapes, as parsed JSON or SDK objects.

One reader serves the zero-code capture (parsed response bodies and SSE events) and ``llm.Call.usage``
(SDK response objects), so both count tokens the same way. Totals follow :class:`LLMCall`:
``input_tokens`` includes cached input, whatever the provider reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..checks import MAX_INT, Wrong, count

OPENAI = "openai"
ANTHROPIC = "anthropic"
GEMINI = "gcp.gemini"  # the OpenTelemetry gen_ai.provider.name of the Gemini API

# Anthropic stream event types, to recognise a stream whose first event is not message_start.
_ANTHROPIC_EVENTS = frozenset(
    {"message_start", "message_delta", "message_stop", "content_block_start", "content_block_delta", "ping"}
)
# Fields of an OpenAI chat delta that carry output (the first of them marks the first token).
_DELTA_OUTPUT = ("content", "tool_calls", "reasoning_content", "reasoning", "refusal", "function_call")


@dataclass(slots=True)
class Reading:
    """What one payload says. ``None`` means "not in this payload", so readings of a stream can be merged."""

    provider: str
    model: str | None = None
    operation: str = "chat"
    input: int | None = None  # total input, cached included (OpenAI, Gemini)
    fresh_input: int | None = None  # Anthropic's input_tokens: excludes cache reads and writes
    cache_read: int | None = None
    cache_write: int | None = None
    output: int | None = None
    error_type: str | None = None
    # What made a token count unusable (``prompt_tokens: integer too large...``): such a reading is an
    # unreadable response, never a call with made-up or missing tokens.
    wrong: str | None = None

    def merge(self, later: Reading) -> Reading:
        """This reading updated by a later one of the same stream (the later one's values win)."""
        return Reading(
            provider=later.provider or self.provider,
            model=later.model or self.model,
            operation=later.operation if later.operation != "chat" else self.operation,
            input=_later(self.input, later.input),
            fresh_input=_later(self.fresh_input, later.fresh_input),
            cache_read=_later(self.cache_read, later.cache_read),
            cache_write=_later(self.cache_write, later.cache_write),
            output=_later(self.output, later.output),
            error_type=later.error_type or self.error_type,
            wrong=later.wrong or self.wrong,
        )

    @property
    def has_usage(self) -> bool:
        return not (self.input is None and self.fresh_input is None and self.output is None)

    @property
    def input_tokens(self) -> int:
        if self.input is not None:
            return self.input
        return (self.fresh_input or 0) + (self.cache_read or 0) + (self.cache_write or 0)

    @property
    def output_tokens(self) -> int:
        return self.output or 0

    @property
    def cached_input_tokens(self) -> int:
        # Never more than the input it is part of, whatever a payload claims.
        return min(self.cache_read or 0, self.input_tokens)


def _later(a: int | None, b: int | None) -> int | None:
    return a if b is None else b


def get(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping, ``obj.key`` for an SDK object, ``None`` when absent."""
    if isinstance(obj, dict):
        return obj.get(key)
    if obj is None or isinstance(obj, str | bytes | int | float | list | tuple):
        return None
    return getattr(obj, key, None)


def _get2(obj: Any, camel: str, snake: str) -> Any:
    """Gemini fields are camelCase on the wire and snake_case in the Python SDKs."""
    value = get(obj, camel)
    return get(obj, snake) if value is None else value


_TOKENS = count()  # the rule /track and the llm API apply: a whole number, 0 to 2**53


class _Counts:
    """Reads a payload's token counts by the one rule for token counts, keeping the first that breaks it."""

    __slots__ = ("wrong",)

    def __init__(self) -> None:
        self.wrong: str | None = None

    def __call__(self, value: Any, name: str) -> int | None:
        if type(value) is int and 0 <= value <= MAX_INT:  # what providers send: the rule's answer, sooner
            return value
        if value is None:
            return None
        try:
            return int(_TOKENS(value))
        except Wrong as exc:
            # 1e300 or 10**400 would push the counters past any later increment; 12.5 is no count.
            if self.wrong is None:
                self.wrong = f"{name}: {exc.message}"
            return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def read(obj: Any) -> Reading | None:
    """The reading of one response or stream event, or ``None`` when it is not an LLM payload we know."""
    kind = get(obj, "type")
    if isinstance(kind, str):
        if kind == "message_start":
            return _anthropic(get(obj, "message"))
        if kind in ("message", "message_delta"):
            return _anthropic(obj)
        if kind.startswith("response."):  # OpenAI Responses API stream event
            inner = get(obj, "response")
            return _openai(inner) if inner is not None else Reading(OPENAI)
        if kind == "error":
            return Reading(ANTHROPIC, error_type=error_type(obj))
    usage = get(obj, "usage")
    if usage is not None:
        if get(usage, "prompt_tokens") is not None or get(usage, "input_tokens_details") is not None:
            return _openai(obj)
        if get(usage, "input_tokens") is not None or get(usage, "output_tokens") is not None:
            if get(obj, "object") == "response":
                return _openai(obj)
            return _anthropic(obj)
    meta = _get2(obj, "usageMetadata", "usage_metadata")
    if meta is not None or get(obj, "candidates") is not None:
        return _gemini(obj, meta)
    if get(obj, "choices") is not None or get(obj, "object") in ("response", "chat.completion"):
        return _openai(obj)  # an OpenAI payload without usage (a stream chunk)
    return None


def _openai(obj: Any) -> Reading:
    kind = get(obj, "object")
    operation = "chat"
    if kind == "text_completion":
        operation = "text_completion"
    elif kind == "list" and get(obj, "data") is not None:
        operation = "embeddings"
    r = Reading(OPENAI, model=_str(get(obj, "model")), operation=operation, error_type=error_type(obj))
    usage = get(obj, "usage")
    if usage is None:
        return r
    n = _Counts()
    if get(usage, "prompt_tokens") is not None:  # chat completions, completions, embeddings
        r.input = n(get(usage, "prompt_tokens"), "prompt_tokens")
        r.output = n(get(usage, "completion_tokens"), "completion_tokens")
        r.cache_read = n(get(get(usage, "prompt_tokens_details"), "cached_tokens"), "cached_tokens")
        if r.output is None and operation == "embeddings":
            r.output = 0
    else:  # Responses API
        r.input = n(get(usage, "input_tokens"), "input_tokens")
        r.output = n(get(usage, "output_tokens"), "output_tokens")
        r.cache_read = n(get(get(usage, "input_tokens_details"), "cached_tokens"), "cached_tokens")
    r.wrong = n.wrong
    return r


def _anthropic(obj: Any) -> Reading | None:
    if obj is None:
        return None
    r = Reading(ANTHROPIC, model=_str(get(obj, "model")), error_type=error_type(obj))
    usage = get(obj, "usage")
    if usage is not None:
        n = _Counts()
        r.fresh_input = n(get(usage, "input_tokens"), "input_tokens")
        r.output = n(get(usage, "output_tokens"), "output_tokens")
        r.cache_read = n(get(usage, "cache_read_input_tokens"), "cache_read_input_tokens")
        # Cache writes are input billed above the base price; they are counted (and priced) as plain input.
        r.cache_write = n(get(usage, "cache_creation_input_tokens"), "cache_creation_input_tokens")
        r.wrong = n.wrong
    return r


def _gemini(obj: Any, meta: Any) -> Reading:
    r = Reading(
        GEMINI,
        model=_str(_get2(obj, "modelVersion", "model_version")),
        operation="generate_content",
        error_type=error_type(obj),
    )
    if meta is not None:
        n = _Counts()
        r.input = n(_get2(meta, "promptTokenCount", "prompt_token_count"), "promptTokenCount")
        candidates = n(_get2(meta, "candidatesTokenCount", "candidates_token_count"), "candidatesTokenCount")
        thoughts = n(_get2(meta, "thoughtsTokenCount", "thoughts_token_count"), "thoughtsTokenCount")
        # Thinking tokens are billed as output; candidatesTokenCount leaves them out.
        if candidates is not None or thoughts is not None:
            r.output = (candidates or 0) + (thoughts or 0)
        r.cache_read = n(
            _get2(meta, "cachedContentTokenCount", "cached_content_token_count"), "cachedContentTokenCount"
        )
        r.wrong = n.wrong
    return r


def error_type(obj: Any) -> str | None:
    """The provider's error class of an error payload (``rate_limit_error``, ``RESOURCE_EXHAUSTED``...)."""
    error = get(obj, "error")
    if error is None:
        return None
    for key in ("type", "status", "code"):
        value = get(error, key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return "error"


# -- streams ------------------------------------------------------------------------------------------


def stream_kind(obj: Any) -> tuple[str, str] | None:
    """(provider, operation) of the first event of an LLM stream, or ``None`` for any other stream."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("choices"), list):
        return OPENAI, "text_completion" if obj.get("object") == "text_completion" else "chat"
    kind = obj.get("type")
    if isinstance(kind, str):
        if kind in _ANTHROPIC_EVENTS:
            return ANTHROPIC, "chat"
        if kind.startswith("response."):
            return OPENAI, "chat"
    if "candidates" in obj or "usageMetadata" in obj:
        return GEMINI, "generate_content"
    return None


def model_of(obj: dict[str, Any]) -> str | None:
    for inner in (obj, obj.get("message"), obj.get("response")):
        if isinstance(inner, dict):
            model = _str(inner.get("model"))
            if model:
                return model
    return _str(obj.get("modelVersion"))


def has_output(obj: dict[str, Any]) -> bool:
    """Whether a parsed stream event carries output (the first such event marks the first token)."""
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and any(delta.get(k) for k in _DELTA_OUTPUT):
                return True
            if choice.get("text"):  # legacy completions
                return True
        return False
    kind = obj.get("type")
    if isinstance(kind, str):
        if kind == "content_block_delta":
            return True
        return kind.endswith(".delta") and bool(obj.get("delta"))
    candidates = obj.get("candidates")
    if isinstance(candidates, list):
        for candidate in candidates:
            parts = get(get(candidate, "content"), "parts")
            if isinstance(parts, list) and any(isinstance(p, dict) and _part_output(p) for p in parts):
                return True
    return False


def _part_output(part: dict[str, Any]) -> bool:
    return bool(part.get("text")) or any(k in part for k in ("functionCall", "inlineData", "executableCode"))
