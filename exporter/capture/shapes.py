"""The commonest answer, an OpenAI chat completion, read by a typed parser that decodes only what usage needs.

:func:`openai_call` decodes a body with msgspec into structs that declare exactly the fields the general
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
from ..observations import Captured, LLMCall, finish_reason
from .usage import AZURE, OPENAI

try:
    import msgspec
except ImportError:  # pragma: no cover - a dependency; this is for a platform without its wheel
    msgspec = None  # type: ignore[assignment]


class _Unshaped(enum.Enum):
    """The answer of a body that is not in the shape read here: the general reader reads it."""

    UNSHAPED = 0


UNSHAPED: Final = _Unshaped.UNSHAPED

# The digits of a body, for the run check below: every digit "9", anything else a space.
_DIGITS = bytes(ord("9") if b in b"0123456789" else ord(" ") for b in range(256))


def _same_text(body: bytes) -> bool:
    """Whether the general path reads ``body``'s skipped parts as msgspec does: valid UTF-8 throughout (msgspec
    does not check the text it skips, the general path refuses invalid bytes anywhere) and no integer longer
    than Python converts (the general path refuses the body; msgspec skips the digits)."""
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return False
    limit = sys.get_int_max_str_digits()
    return not (0 < limit < len(body) and b"9" * (limit + 1) in body.translate(_DIGITS))


def openai_call(body: bytes, start: float, end: float, status: int) -> Captured | Literal[_Unshaped.UNSHAPED]:
    """The call an OpenAI chat (or completions) answer describes, ``None`` for one without a model (some other
    API's "usage"), or :data:`UNSHAPED` for a body in any other shape."""
    if _decode is None or not _same_text(body):
        return UNSHAPED
    try:
        answer = _decode(body)
    except (ValueError, RecursionError):  # msgspec's DecodeError and ValidationError are ValueErrors
        return UNSHAPED
    kind = answer.object
    if kind == "list" or kind == "response":  # embeddings and Responses objects: read by the general reader
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
    # Positional, in LLMCall's field order (see _call in response.py).
    return LLMCall(
        model,  # model
        OPENAI if answer.prompt_filter_results is None else AZURE,  # Azure adds its content filter's results
        "text_completion" if kind == "text_completion" else "chat",  # operation
        usage.prompt_tokens,  # input_tokens
        usage.completion_tokens or 0,  # output_tokens
        cache_read,  # cached_input_tokens
        cache_write,  # cache_write_tokens
        0,  # cache_write_1h_tokens
        input_audio,  # input_audio_tokens
        0,  # cache_audio_read_tokens
        0,  # input_image_tokens
        0,  # cache_image_read_tokens
        reasoning,  # output_reasoning_tokens
        output_audio,  # output_audio_tokens
        0,  # output_image_tokens
        max(end - start, 0.0),  # duration
        None,  # ttft
        str(status) if status >= 400 else None,  # error_type: an error body is not read here
        cost,  # cost_usd
        None,  # tenant
        None,  # timestamp
        None,  # route (the middleware sets it)
        model,  # response_model
        None,  # missing_usage: prompt_tokens is there
        finish,  # finish_reasons
        tools,  # tool_calls
        None,  # chunk_gaps
    )


def _tool_names(message: Any, names: list[str]) -> None:
    """The names of a message's tool calls, as the general reader finds them (``unknown`` for a nameless one)."""
    for call in message.tool_calls or ():
        names.append((call.function and call.function.name) or "unknown")
    if message.function_call is not None:  # the older functions API
        names.append(message.function_call.name or "unknown")


# The finish reasons OpenAI sends, normalised once (a dictionary look-up costs less than the call).
_REASONS = {reason: finish_reason(reason) for reason in ("stop", "length", "tool_calls", "content_filter")}

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

    class _Usage(msgspec.Struct, gc=False):
        prompt_tokens: Count  # what makes the usage OpenAI's (required: without it, another shape)
        completion_tokens: Count | None = None
        prompt_tokens_details: _InputDetails | None = None
        completion_tokens_details: _OutputDetails | None = None
        cost: float | None = None  # OpenRouter's bill in USD (Perplexity's object goes to the general reader)

    class _ChatCompletion(msgspec.Struct, gc=False):
        usage: _Usage
        model: str | None = None
        object: str | None = None
        choices: list[_Choice] | None = None
        prompt_filter_results: Any = None  # only its presence is read
        error: None = None  # an error body: the general reader finds its type
        type: None = None  # Anthropic's and the Responses API's events: not this shape

    _decode = msgspec.json.Decoder(_ChatCompletion).decode
