"""The commonest answers, OpenAI chat completions and Anthropic messages, read by a typed parser that decodes
only what usage needs.

:func:`typed_call` decodes a body with msgspec into structs that declare exactly the fields the general
reader (:func:`usage.read`) looks at in such an answer, with types strict enough that anything unusual (a
count that is a string, a float or past 2**53; an error body; a stream delta; a Responses or embeddings
object) fails to decode, and the body then goes to the general reader unchanged (:data:`UNSHAPED`). What it
does decode gives the very call the general reader would: it is checked field by field against it in
tests/unit/test_shapes.py. Everything else in the body (the answer's text, mostly) is skipped, not built.

msgspec checks skipped text less than the parsers of the general path: a body whose bytes are not UTF-8, or
that holds an integer longer than the standard library converts, is left to the general reader, which
refuses it as before. Without msgspec (a platform with no wheel for it) every body takes the general path.
"""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Any, Final, Literal

from ..checks import MAX_INT
from ..observations import Captured, finish_reason
from .calls import answered, http_error
from .loads import digit_run
from .usage import ANTHROPIC, ANTHROPIC_TOOLS, AZURE, OPENAI

try:
    import msgspec
except ImportError:  # pragma: no cover - a dependency; this is for a platform without its wheel
    msgspec = None  # type: ignore[assignment]


class _Unshaped(enum.Enum):
    """The answer of a body that is not in the shape read here: the general reader reads it."""

    UNSHAPED = 0


UNSHAPED: Final = _Unshaped.UNSHAPED


def _utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def typed_call(body: bytes, start: float, end: float, status: int) -> Captured | Literal[_Unshaped.UNSHAPED]:
    """The call an OpenAI chat (or completions) answer or an Anthropic message describes, ``None`` for one
    without a model (some other API's "usage"), or :data:`UNSHAPED` for a body in any other shape."""
    # msgspec does not check the text it skips as the general path does: the general path refuses a body with
    # bytes that are not UTF-8 anywhere, or with an integer longer than Python converts, where msgspec skips
    # them. Those bodies go to it (the checks inline: the usual body is ASCII, and shorter than 4,300 bytes).
    if _decode is None or not (body.isascii() or _utf8(body)):
        return UNSHAPED
    limit = sys.get_int_max_str_digits()
    if 0 < limit < len(body) and digit_run(body, limit):
        return UNSHAPED
    # One struct holds both shapes' fields, so a body in neither costs one failed decode: a Gemini answer fails
    # at its first key ("candidates"). msgspec's DecodeError and ValidationError are ValueErrors.
    try:
        answer = _decode(body)
    except (ValueError, RecursionError):
        return UNSHAPED
    if answer.type is None:
        return _openai_call(answer, start, end, status)
    return _anthropic_call(answer, start, end, status)


def _openai_call(answer: Any, start: float, end: float, status: int) -> Captured | Literal[_Unshaped.UNSHAPED]:
    kind = answer.object
    if (
        answer.usage.prompt_tokens is None or kind == "list" or kind == "response"
    ):  # embeddings and Responses objects: read by the general reader
        return UNSHAPED
    model = answer.model or None
    if model is None:
        return None
    usage = answer.usage
    cache_read = cache_write = input_audio = reasoning = output_audio = 0
    details = usage.prompt_tokens_details
    if details is not None:
        cache_read = details.cached_tokens or 0
        cache_write = details.cache_write_tokens or 0
        input_audio = details.audio_tokens or 0
    parts = usage.completion_tokens_details
    if parts is not None:
        reasoning = parts.reasoning_tokens or 0
        output_audio = parts.audio_tokens or 0
    cost = usage.cost
    if cost is not None and not cost >= 0:
        cost = None  # a negative cost is no bill (msgspec gives no infinity or NaN)
    finish: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    choices = answer.choices
    if choices:
        reasons: list[str] = []
        names: list[str] = []
        for choice in choices:
            reason = choice.finish_reason
            if reason:
                reasons.append(_REASONS.get(reason) or finish_reason(reason))
            message = choice.message
            if message is not None and (message.tool_calls or message.function_call is not None):
                _tool_names(message, names)
        finish, tools = tuple(reasons), tuple(names)
    provider = OPENAI if answer.prompt_filter_results is None else AZURE  # Azure adds its filter's results
    operation = "text_completion" if kind == "text_completion" else "chat"
    counts = (usage.prompt_tokens, usage.completion_tokens or 0, cache_read, cache_write, 0, input_audio, 0, 0, 0,
              reasoning, output_audio, 0)  # fmt: skip
    # What the general reader's _call adds: the HTTP status's error (an error body is not read here), the
    # answering model; the counts are there (prompt_tokens), so no usage is missing.
    return answered(
        model, provider, operation, counts, start, end, None, http_error(status), cost, model, None, finish, tools, None
    )


def _tool_names(message: Any, names: list[str]) -> None:
    """The names of a message's tool calls, as the general reader finds them (``unknown`` for a nameless one)."""
    for call in message.tool_calls or ():
        names.append((call.function and call.function.name) or "unknown")
    if message.function_call is not None:  # the older functions API
        names.append(message.function_call.name or "unknown")


def _anthropic_call(message: Any, start: float, end: float, status: int) -> Captured | Literal[_Unshaped.UNSHAPED]:
    usage = message.usage
    if usage.input_tokens is None:
        return UNSHAPED
    model = message.model or None
    if model is None:
        return None
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens
    hour = 0
    by_ttl = usage.cache_creation  # the writes by cache lifetime, where the API reports it
    if by_ttl is not None:
        five, hour_given = by_ttl.ephemeral_5m_input_tokens, by_ttl.ephemeral_1h_input_tokens
        hour = hour_given or 0
        if cache_write is None and (five is not None or hour_given is not None):
            cache_write = (five or 0) + hour
    cache_write = cache_write or 0
    # input_tokens leaves out the cache reads and writes; the total can pass 2**53 (the general reader then
    # counts the answer as unreadable).
    total = usage.input_tokens + cache_read + cache_write
    if total > MAX_INT:
        return UNSHAPED
    reason = message.stop_reason
    names: tuple[str, ...] = ()
    if message.content:
        names = tuple(b.name or "unknown" for b in message.content if b.type in ANTHROPIC_TOOLS)
    finish = (_REASONS.get(reason) or finish_reason(reason),) if reason else ()
    counts = (total, usage.output_tokens or 0, cache_read, cache_write, hour, 0, 0, 0, 0, 0, 0, 0)
    error = http_error(status)
    return answered(model, ANTHROPIC, "chat", counts, start, end, None, error, None, model, None, finish, names, None)


# The finish reasons OpenAI and Anthropic send, normalised once (a dictionary look-up costs less than the call).
_REASONS = {
    reason: finish_reason(reason)
    for reason in ("stop", "length", "tool_calls", "content_filter", "end_turn", "max_tokens", "tool_use")
}

_decode: Any = None
if msgspec is not None:
    # A token count as the general reader takes it at once: a JSON integer from 0 to 2**53. Anything else
    # (null aside) fails to decode, and the general reader says what is wrong with it.
    Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]

    # gc=False: these structs hold no cycles, and the collector need not track them.
    class _Function(msgspec.Struct, gc=False):
        name: str | None = None

    class _ToolCall(msgspec.Struct, gc=False):
        function: _Function | None = None

    class _Message(msgspec.Struct, gc=False):
        tool_calls: list[_ToolCall] | None = None
        function_call: _Function | None = None

    class _Choice(msgspec.Struct, gc=False):
        finish_reason: str | None = None
        message: _Message | None = None
        delta: None = None  # a stream chunk's choice: its tool calls are keyed, the general reader's job

    class _InputDetails(msgspec.Struct, gc=False):
        cached_tokens: Count | None = None
        cache_write_tokens: Count | None = None  # OpenAI-compatible gateways in front of Claude
        audio_tokens: Count | None = None

    class _OutputDetails(msgspec.Struct, gc=False):
        reasoning_tokens: Count | None = None
        audio_tokens: Count | None = None

    class _CacheCreation(msgspec.Struct, gc=False):
        ephemeral_5m_input_tokens: Count | None = None
        ephemeral_1h_input_tokens: Count | None = None

    class _Usage(msgspec.Struct, gc=False):
        # OpenAI's: prompt_tokens makes it OpenAI's usage (without it, another shape)
        prompt_tokens: Count | None = None
        completion_tokens: Count | None = None
        prompt_tokens_details: _InputDetails | None = None
        completion_tokens_details: _OutputDetails | None = None
        cost: float | None = None  # OpenRouter's bill in USD (Perplexity's object goes to the general reader)
        # Anthropic's: input_tokens leaves the cache out
        input_tokens: Count | None = None
        output_tokens: Count | None = None
        cache_read_input_tokens: Count | None = None
        cache_creation_input_tokens: Count | None = None
        cache_creation: _CacheCreation | None = None

    class _Block(msgspec.Struct, gc=False):
        type: str | None = None
        name: str | None = None

    class _Answer(msgspec.Struct, gc=False):
        """An OpenAI chat completion (``type`` absent) or an Anthropic message: each reads its own fields, and
        the other's must be absent or valid (a stricter type only sends more bodies to the general reader)."""

        usage: _Usage
        type: Literal["message"] | None = None  # the Responses API's and Anthropic's stream events: not these
        model: str | None = None
        object: str | None = None
        choices: list[_Choice] | None = None
        prompt_filter_results: Any = None  # Azure's: only its presence is read
        content: list[_Block] | None = None  # Anthropic's
        stop_reason: str | None = None  # Anthropic's
        delta: None = None  # a stream's message_delta says its stop reason there
        error: None = None  # an error body: the general reader finds its type
        candidates: None = None  # Gemini's answer: not these shapes (told at its first key)

    _decode = msgspec.json.Decoder(_Answer).decode
