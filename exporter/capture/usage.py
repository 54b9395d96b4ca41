"""Token usage read from LLM payloads: OpenAI (and Azure OpenAI), Anthropic, Gemini (and Vertex AI) and
Bedrock Converse shapes, as parsed JSON or SDK objects.

One reader serves the zero-code capture (parsed response bodies and SSE events) and ``llm.Call.usage``
(SDK response objects), so both count tokens the same way. Counts follow :class:`LLMCall`: totals with the
parts the provider reports, whatever the provider's own convention (Anthropic's and Bedrock's input
counts leave the cache out; Gemini's output count leaves the thinking out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..checks import MAX_INT, Wrong, count
from ..observations import finish_reason

OPENAI = "openai"
AZURE = "azure.ai.openai"  # the OpenTelemetry gen_ai.provider.name values
ANTHROPIC = "anthropic"
GEMINI = "gcp.gemini"
VERTEX = "gcp.vertex_ai"
BEDROCK = "aws.bedrock"
# Shapes distinct enough to be an LLM answer without a model name (Bedrock's body names none).
NAMELESS = frozenset({GEMINI, VERTEX, BEDROCK})
# Clouds that answer in a provider's shape, told apart by fields only some events of a stream carry: once
# seen, the later events' plain shape does not undo them.
_REFINES = {AZURE: OPENAI, VERTEX: GEMINI}

# Anthropic stream event types, to recognise a stream whose first event is not message_start.
_ANTHROPIC_EVENTS = frozenset(
    {"message_start", "message_delta", "message_stop", "content_block_start", "content_block_delta", "ping"}
)
# Fields of an OpenAI chat delta that carry output (the first of them marks the first token).
_DELTA_OUTPUT = ("content", "tool_calls", "reasoning_content", "reasoning", "refusal", "function_call")


# The token counts of a reading, in the order of :class:`LLMCall`'s fields (``input_tokens`` to
# ``output_image_tokens``), so an answer's call is made with one positional call (see ``Reading.counts``).
COUNT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "cache_audio_read_tokens",
    "input_image_tokens",
    "cache_image_read_tokens",
    "output_reasoning_tokens",
    "output_audio_tokens",
    "output_image_tokens",
)
# The twelve counts of COUNT_FIELDS (spelled out, so a positional call with them type-checks field by field).
Counts = tuple[int, int, int, int, int, int, int, int, int, int, int, int]


@dataclass(slots=True)
class Reading:
    """What one payload says. ``None`` means "not in this payload", so readings of a stream can be merged."""

    provider: str
    model: str | None = None
    operation: str = "chat"
    input: int | None = None  # total input, cache reads and writes included (OpenAI, Gemini)
    fresh_input: int | None = None  # Anthropic's and Bedrock's input count: excludes cache reads and writes
    cache_read: int | None = None
    cache_write: int | None = None
    cache_write_1h: int | None = None  # the part of cache_write written for an hour
    input_audio: int | None = None
    cache_audio_read: int | None = None
    input_image: int | None = None
    cache_image_read: int | None = None
    output: int | None = None  # total output, reasoning included
    output_reasoning: int | None = None
    output_audio: int | None = None
    output_image: int | None = None
    cost: float | None = None  # USD the provider says it billed (OpenRouter's usage.cost)
    error_type: str | None = None
    # What made a token count unusable (``prompt_tokens: integer too large...``): such a reading is an
    # unreadable response, never a call with made-up or missing tokens.
    wrong: str | None = None
    finish: tuple[str, ...] | None = None  # normalised finish reasons, one per choice that said one
    # The tool calls asked for, as (key, name): a stream's OpenAI deltas repeat a call's (choice, index) key,
    # and a call counts once per key (its name comes with its first delta); whole calls have no key (None).
    tools: tuple[tuple[Any, str | None], ...] | None = None

    def merge(self, later: Reading) -> Reading:
        """This reading updated by a later one of the same stream (the later one's values win)."""
        kept = _REFINES.get(self.provider) == later.provider
        merged = Reading(
            provider=self.provider if kept else later.provider or self.provider,
            model=later.model or self.model,
            operation=later.operation if later.operation != "chat" else self.operation,
            error_type=later.error_type or self.error_type,
            wrong=later.wrong or self.wrong,
        )
        merged.take_outcome(self)
        merged.take_outcome(later)
        for name in _MERGED:
            value = getattr(later, name)
            setattr(merged, name, getattr(self, name) if value is None else value)
        return merged

    def take_outcome(self, later: Reading) -> None:
        """Take a later event's finish reasons (the latest said win) and add its tool calls."""
        if later.finish is not None:
            self.finish = later.finish
        if later.tools:
            self.tools = _add_tools(self.tools or (), later.tools)

    def tool_names(self) -> tuple[str, ...]:
        if not self.tools:  # the common answer: no tool call
            return ()
        return tuple(name or "unknown" for _, name in self.tools)

    @property
    def has_usage(self) -> bool:
        return not (self.input is None and self.fresh_input is None and self.output is None)

    def counts(self) -> Counts:
        """The token counts of :data:`COUNT_FIELDS`. Counts that can't be one call's (a part above its total)
        are passed on as read: the recorder counts them as unusable rather than guess."""
        cache_read = self.cache_read or 0
        cache_write = self.cache_write or 0
        total = self.input
        if total is None:
            total = (self.fresh_input or 0) + cache_read + cache_write
        return (
            total,
            self.output or 0,
            cache_read,
            cache_write,
            self.cache_write_1h or 0,
            self.input_audio or 0,
            self.cache_audio_read or 0,
            self.input_image or 0,
            self.cache_image_read or 0,
            self.output_reasoning or 0,
            self.output_audio or 0,
            self.output_image or 0,
        )


def _add_tools(
    known: tuple[tuple[Any, str | None], ...], more: tuple[tuple[Any, str | None], ...]
) -> tuple[tuple[Any, str | None], ...]:
    """``known`` plus the calls of ``more``; a keyed call already known only lends its name if it had none."""
    found = list(known)
    at = {key: i for i, (key, _) in enumerate(found) if key is not None}
    for key, name in more:
        i = at.get(key) if key is not None else None
        if i is None:
            if key is not None:
                at[key] = len(found)
            found.append((key, name))
        elif found[i][1] is None and name is not None:
            found[i] = (key, name)
    return tuple(found)


_MERGED = (
    "input",
    "fresh_input",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "input_audio",
    "cache_audio_read",
    "input_image",
    "cache_image_read",
    "output",
    "output_reasoning",
    "output_audio",
    "output_image",
    "cost",
)


def get(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping, ``obj.key`` for an SDK object, ``None`` when absent."""
    if type(obj) is dict or isinstance(obj, dict):  # parsed JSON: the first test, the cheapest
        return obj.get(key)
    if obj is None or isinstance(obj, str | bytes | int | float | list | tuple):
        return None
    return getattr(obj, key, None)


def getter(obj: Any) -> Callable[[str], Any]:
    """:func:`get` bound to ``obj``: a parsed JSON object's own ``dict.get`` (the capture path reads a dozen
    keys of each object, and a bound C method is the cheapest call there is), else a partial of :func:`get`."""
    return obj.get if type(obj) is dict else partial(get, obj)


def _get2(obj: Any, camel: str, snake: str) -> Any:
    """Gemini fields are camelCase on the wire and snake_case in the Python SDKs."""
    value = get(obj, camel)
    return get(obj, snake) if value is None else value


_TOKENS = count()  # the rule /track and the llm API apply: a whole number, 0 to 2**53


def _count(r: Reading, value: Any, name: str) -> int | None:
    """A payload's token count by the one rule for token counts; the first that breaks it is kept in
    ``r.wrong``. (A plain function: Python calls it inline, where an instance's ``__call__`` costs ten times
    as much, and an answer has up to a dozen counts.)"""
    if type(value) is int and 0 <= value <= MAX_INT:  # what providers send: the rule's answer, sooner
        return value
    if value is None:
        return None
    try:
        return int(_TOKENS(value))
    except Wrong as exc:
        # 1e300 or 10**400 would push the counters past any later increment; 12.5 is no count.
        if r.wrong is None:
            r.wrong = f"{name}: {exc.message}"
        return None


def _int(value: Any) -> int | None:
    """A count inside a breakdown (modalities): one that breaks the token rule is left out, as absent."""
    if type(value) is int and 0 <= value <= MAX_INT:
        return value
    try:
        return None if value is None else int(_TOKENS(value))
    except Wrong:
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _usd(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < float("inf") else None


def read(obj: Any) -> Reading | None:
    """The reading of one response or stream event, or ``None`` when it is not an LLM payload we know."""
    o = getter(obj)
    kind = o("type")
    if isinstance(kind, str):
        if kind == "message_start":
            return _anthropic(get(obj, "message"))
        if kind in ("message", "message_delta"):
            return _anthropic(obj)
        if kind == "content_block_start":
            return Reading(ANTHROPIC, tools=_anthropic_tools([get(obj, "content_block")]))
        if kind.startswith("response."):  # OpenAI Responses API stream event
            inner = get(obj, "response")
            return _openai(inner) if inner is not None else Reading(OPENAI)
        if kind == "error":
            return Reading(ANTHROPIC, error_type=error_type(obj))
    usage = o("usage")
    if usage is not None:
        u = getter(usage)
        if u("prompt_tokens") is not None or u("input_tokens_details") is not None:
            return _openai(obj)
        if u("input_tokens") is not None or u("output_tokens") is not None:
            if o("object") == "response":
                return _openai(obj)
            return _anthropic(obj)
        if get(usage, "inputTokens") is not None and (get(obj, "output") is not None or get(obj, "stopReason")):
            return _bedrock(obj, usage)
    meta = _get2(obj, "usageMetadata", "usage_metadata")
    if meta is not None or get(obj, "candidates") is not None:
        return _gemini(obj, meta)
    if get(obj, "choices") is not None or get(obj, "object") in ("response", "chat.completion"):
        return _openai(obj)  # an OpenAI payload without usage (a stream chunk, "usage": null)
    stream_meta = get(obj, "metadata")  # a ConverseStream metadata event, as boto3 yields it
    if stream_meta is not None and get(get(stream_meta, "usage"), "inputTokens") is not None:
        return _bedrock(obj, get(stream_meta, "usage"))
    stop = get(get(obj, "messageStop"), "stopReason")  # ConverseStream's last events, as boto3 yields them
    if isinstance(stop, str):
        return Reading(BEDROCK, finish=(finish_reason(stop),))
    started = get(get(get(obj, "contentBlockStart"), "start"), "toolUse")
    if started is not None:
        return Reading(BEDROCK, tools=((None, _str(get(started, "name"))),))
    return None


def _openai(obj: Any) -> Reading:
    o = getter(obj)
    kind = o("object")
    operation = "chat"
    if kind == "text_completion":
        operation = "text_completion"
    elif kind == "list" and o("data") is not None:
        operation = "embeddings"
    # Azure OpenAI answers in OpenAI's shape, with its content filter's results beside the choices.
    provider = AZURE if o("prompt_filter_results") is not None else OPENAI
    error = error_type(obj) if o("error") is not None else None  # the answers that are no error look once
    r = Reading(provider, model=_str(o("model")), operation=operation, error_type=error)
    choices = o("choices")
    if isinstance(choices, list):
        _openai_choices(r, choices)
    elif kind == "response":
        _openai_response(r, obj)
    usage = o("usage")
    if usage is None:
        return r
    # Absent details are common (embeddings, older servers): each one is looked into only when present.
    u = getter(usage)
    prompt = u("prompt_tokens")
    if prompt is not None:  # chat completions, completions, embeddings
        r.input = _count(r, prompt, "prompt_tokens")
        r.output = _count(r, u("completion_tokens"), "completion_tokens")
        inputs, outputs = u("prompt_tokens_details"), u("completion_tokens_details")
        if inputs is not None:
            r.input_audio = _count(r, get(inputs, "audio_tokens"), "audio_tokens")
        if outputs is not None:
            r.output_audio = _count(r, get(outputs, "audio_tokens"), "audio_tokens")
        if r.output is None and operation == "embeddings":
            r.output = 0
    else:  # Responses API
        r.input = _count(r, u("input_tokens"), "input_tokens")
        r.output = _count(r, u("output_tokens"), "output_tokens")
        inputs, outputs = u("input_tokens_details"), u("output_tokens_details")
    if inputs is not None:
        i = getter(inputs)
        r.cache_read = _count(r, i("cached_tokens"), "cached_tokens")
        # OpenAI-compatible gateways in front of Claude
        r.cache_write = _count(r, i("cache_write_tokens"), "cache_write_tokens")
    if outputs is not None:
        r.output_reasoning = _count(r, get(outputs, "reasoning_tokens"), "reasoning_tokens")
    cost = u("cost")  # OpenRouter: the USD it billed; Perplexity: an object with the total
    if cost is not None:
        total = get(cost, "total_cost")
        r.cost = _usd(cost if total is None else total)
    return r


def _openai_choices(r: Reading, choices: list[Any]) -> None:
    """Finish reasons and tool calls of chat (and completions) choices: whole messages or stream deltas."""
    finish: list[str] = []
    tools: list[tuple[Any, str | None]] = []
    for i, choice in enumerate(choices):
        if type(choice) is dict:  # parsed JSON (the capture path): read directly, the SDK objects through get()
            reason, message, index = choice.get("finish_reason"), choice.get("message"), choice.get("index")
        else:
            reason, message, index = get(choice, "finish_reason"), get(choice, "message"), get(choice, "index")
        if reason is not None and type(reason) is str and reason:
            finish.append(finish_reason(reason))
        delta = message is None
        if delta:
            message = get(choice, "delta")
        if type(message) is dict:
            calls, function = message.get("tool_calls"), message.get("function_call")
        else:
            calls, function = get(message, "tool_calls"), get(message, "function_call")
        if calls and isinstance(calls, list):
            for j, call in enumerate(calls):
                name = _str(get(get(call, "function"), "name"))
                at = get(call, "index")
                key = (i if index is None else index, j if at is None else at) if delta else None
                tools.append((key, name))
        if function is not None:  # the older functions API: one call, named in its first delta
            tools.append(((i, "function_call") if delta else None, _str(get(function, "name"))))
    if finish:
        r.finish = tuple(finish)
    if tools:
        r.tools = _add_tools((), tuple(tools))


# A Responses object's status, as a finish reason: completed is stop (or tool_calls when it asks for some).
_RESPONSE_STATUS = {"completed": "stop", "failed": "error", "cancelled": "other"}
_RESPONSE_TOOLS = frozenset({"function_call", "custom_tool_call", "mcp_call"})


def _openai_response(r: Reading, obj: Any) -> None:
    output = get(obj, "output")
    if isinstance(output, list):
        calls = [(None, _str(get(item, "name"))) for item in output if get(item, "type") in _RESPONSE_TOOLS]
        if calls:
            r.tools = tuple(calls)
    status = get(obj, "status")
    if status == "incomplete":
        reason = _str(get(get(obj, "incomplete_details"), "reason"))
        r.finish = (finish_reason(reason) if reason else "other",)
    elif status in _RESPONSE_STATUS:
        r.finish = ("tool_calls" if r.tools and status == "completed" else _RESPONSE_STATUS[status],)


# Anthropic content blocks that are a tool call the answer asks for (client, server and MCP tools).
ANTHROPIC_TOOLS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


def _anthropic_tools(blocks: Any) -> tuple[tuple[Any, str | None], ...] | None:
    if not isinstance(blocks, list):
        return None
    calls = tuple((None, _str(get(b, "name"))) for b in blocks if get(b, "type") in ANTHROPIC_TOOLS)
    return calls or None


def _stop(value: Any) -> tuple[str, ...] | None:
    return (finish_reason(value),) if isinstance(value, str) and value else None


def _anthropic(obj: Any) -> Reading | None:
    if obj is None:
        return None
    r = Reading(ANTHROPIC, model=_str(get(obj, "model")), error_type=error_type(obj))
    # A message says how it ended; a stream says it in message_delta's delta.
    r.finish = _stop(get(obj, "stop_reason")) or _stop(get(get(obj, "delta"), "stop_reason"))
    r.tools = _anthropic_tools(get(obj, "content"))
    usage = get(obj, "usage")
    if usage is not None:
        # input_tokens leaves out the cache reads and writes, which are billed at their own prices.
        r.fresh_input = _count(r, get(usage, "input_tokens"), "input_tokens")
        r.output = _count(r, get(usage, "output_tokens"), "output_tokens")
        r.cache_read = _count(r, get(usage, "cache_read_input_tokens"), "cache_read_input_tokens")
        r.cache_write = _count(r, get(usage, "cache_creation_input_tokens"), "cache_creation_input_tokens")
        by_ttl = get(usage, "cache_creation")  # the writes by cache lifetime, where the API reports it
        if by_ttl is not None:
            r.cache_write_1h = _count(r, get(by_ttl, "ephemeral_1h_input_tokens"), "ephemeral_1h_input_tokens")
            if r.cache_write is None:
                five = _count(r, get(by_ttl, "ephemeral_5m_input_tokens"), "ephemeral_5m_input_tokens")
                if five is not None or r.cache_write_1h is not None:
                    r.cache_write = (five or 0) + (r.cache_write_1h or 0)
    return r


def _bedrock(obj: Any, usage: Any) -> Reading:
    # The Converse API names no model in its answer (it is in the request's path), and its inputTokens leave
    # out the cache reads and writes, as Anthropic's do.
    r = Reading(BEDROCK, error_type=error_type(obj))
    r.finish = _stop(get(obj, "stopReason"))
    content = get(get(get(obj, "output"), "message"), "content")
    if isinstance(content, list):
        calls = tuple((None, _str(get(get(b, "toolUse"), "name"))) for b in content if get(b, "toolUse") is not None)
        r.tools = calls or None
    r.fresh_input = _int(get(usage, "inputTokens"))
    r.output = _int(get(usage, "outputTokens"))
    r.cache_read = _int(get(usage, "cacheReadInputTokens"))
    r.cache_write = _int(get(usage, "cacheWriteInputTokens"))
    details = get(usage, "cacheDetails")
    if isinstance(details, list):
        hour = [_int(get(d, "inputTokens")) for d in details if get(d, "ttl") == "1h"]
        if hour:
            r.cache_write_1h = sum(n or 0 for n in hour)
    return r


# Gemini's token counts by modality: a document's pages are images to the price list, as genai-prices has it.
# Video has no price of its own in it: video tokens stay plain input.
_AUDIO, _IMAGE = frozenset({"AUDIO"}), frozenset({"IMAGE", "DOCUMENT"})


def _modality(*lists: Any, of: frozenset[str]) -> int | None:
    """The tokens of ``of``'s modalities in Gemini's ``[{"modality": ..., "tokenCount": ...}]`` lists."""
    found = None
    for entries in lists:
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if get(entry, "modality") in of:
                found = (found or 0) + (_int(_get2(entry, "tokenCount", "token_count")) or 0)
    return found


def _gemini(obj: Any, meta: Any) -> Reading:
    # Vertex AI answers in the Gemini API's shape, with its own fields (a traffic type, a creation time).
    vertex = get(obj, "createTime") is not None or _get2(meta, "trafficType", "traffic_type") is not None
    r = Reading(
        VERTEX if vertex else GEMINI,
        model=_str(_get2(obj, "modelVersion", "model_version")),
        operation="generate_content",
        error_type=error_type(obj),
    )
    _gemini_outcome(r, get(obj, "candidates"))
    if meta is not None:
        prompt = _count(r, _get2(meta, "promptTokenCount", "prompt_token_count"), "promptTokenCount")  # cached included
        tools = _count(
            r, _get2(meta, "toolUsePromptTokenCount", "tool_use_prompt_token_count"), "toolUsePromptTokenCount"
        )
        r.input = prompt if tools is None else (prompt or 0) + tools  # tool results are billed as input
        candidates = _count(r, _get2(meta, "candidatesTokenCount", "candidates_token_count"), "candidatesTokenCount")
        thoughts = _count(r, _get2(meta, "thoughtsTokenCount", "thoughts_token_count"), "thoughtsTokenCount")
        # Thinking tokens are billed as output; candidatesTokenCount leaves them out.
        if candidates is not None or thoughts is not None:
            r.output = (candidates or 0) + (thoughts or 0)
        r.output_reasoning = thoughts
        r.cache_read = _count(
            r, _get2(meta, "cachedContentTokenCount", "cached_content_token_count"), "cachedContentTokenCount"
        )
        prompt_parts = _get2(meta, "promptTokensDetails", "prompt_tokens_details")
        tool_parts = _get2(meta, "toolUsePromptTokensDetails", "tool_use_prompt_tokens_details")
        cache_parts = _get2(meta, "cacheTokensDetails", "cache_tokens_details")
        output_parts = _get2(meta, "candidatesTokensDetails", "candidates_tokens_details")
        r.input_audio = _modality(prompt_parts, tool_parts, of=_AUDIO)
        r.input_image = _modality(prompt_parts, tool_parts, of=_IMAGE)
        r.cache_audio_read = _modality(cache_parts, of=_AUDIO)
        r.cache_image_read = _modality(cache_parts, of=_IMAGE)
        r.output_audio = _modality(output_parts, of=_AUDIO)
        r.output_image = _modality(output_parts, of=_IMAGE)
    return r


def _gemini_outcome(r: Reading, candidates: Any) -> None:
    if not isinstance(candidates, list):
        return
    finish: list[str] = []
    tools: list[tuple[Any, str | None]] = []
    for candidate in candidates:
        reason = _get2(candidate, "finishReason", "finish_reason")
        if reason is not None and not isinstance(reason, str):
            reason = getattr(reason, "name", None)  # the SDK's FinishReason enum
        if isinstance(reason, str) and reason:
            finish.append(finish_reason(reason))
        parts = get(get(candidate, "content"), "parts")
        if isinstance(parts, list):
            for part in parts:
                call = _get2(part, "functionCall", "function_call")
                if call is not None:
                    tools.append((None, _str(get(call, "name"))))
    if finish:
        r.finish = tuple(finish)
    if tools:
        r.tools = tuple(tools)


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
        provider = AZURE if "prompt_filter_results" in obj else OPENAI
        return provider, "text_completion" if obj.get("object") == "text_completion" else "chat"
    kind = obj.get("type")
    if isinstance(kind, str):
        if kind in _ANTHROPIC_EVENTS:
            return ANTHROPIC, "chat"
        if kind.startswith("response."):
            return OPENAI, "chat"
    if "candidates" in obj or "usageMetadata" in obj:
        return VERTEX if "createTime" in obj else GEMINI, "generate_content"
    return None


# What marks a stream chunk with content (its gap since the previous one is observed), and what marks the
# chunks that may name a tool call (kept, and parsed at the end), by the shape of the stream's first event;
# a producer that writes JSON with spaces (json.dumps' default) writes them in every event.
_NONE = b"\x00none\x00"  # in no chunk: the Responses API names its tool calls in its last event
_CHAT = ((b'content":"', b'content": "'), b'"name"')  # "content" and "reasoning_content" with text
_COMPLETION = ((b'"text":"', b'"text": "'), _NONE)
_RESPONSES = (b'.delta"', _NONE)  # output_text, reasoning and function-call arguments deltas
_ANTHROPIC = (b'"content_block_delta"', b'tool_use"')
_GEMINI = (b'"text"', b'"functionCall"')


def stream_markers(first: dict[str, Any], *, spaced: bool) -> tuple[bytes, bytes]:
    """(what a content chunk holds, what a chunk that may name a tool call holds) of the stream that began
    with ``first``. A content chunk is one the model's text (or reasoning) comes in."""
    if isinstance(first.get("choices"), list):
        found = _COMPLETION if first.get("object") == "text_completion" else _CHAT
        return found[0][spaced], found[1]
    kind = first.get("type")
    if isinstance(kind, str):
        return _RESPONSES if kind.startswith("response.") else _ANTHROPIC
    return _GEMINI


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
