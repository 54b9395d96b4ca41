"""The typed reading of OpenAI chat completions and Anthropic messages (capture/shapes.py) gives what the general
reader gives.

Every body is read both ways: through :func:`_json_object` (the typed reading first) and through
:func:`_general_json` (orjson or the standard library, then ``usage.read``, as before the typed reading).
The two must agree on every field of the call, and on "unreadable" and "nothing", for generated answers
with odd values; and the typed reading must be the one taken for the usual answers, and give way where
it must.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.capture import response
from exporter.capture.response import _json_object
from exporter.capture.shapes import UNSHAPED, typed_call
from exporter.observations import LLMCall, Unreadable

from ..support import REPO

START, END = 10.0, 11.25
WIRE = REPO / "tests" / "fixtures" / "wire"
ABSENT = object()  # a key left out of the answer


def general(body: bytes, status: int = 200) -> Any:
    """The general reader's answer, as ``_json_object`` gives it (which counts a reader's error as unreadable:
    a cost of 10**400 overflows the float it is made)."""
    try:
        return response._general_json(body, START, END, status)
    except Exception:
        return Unreadable("json")


def without_absent(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not ABSENT}


def keyed(**values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(values).map(without_absent)


# The odd values of each field: what the general reader converts (12.0), what it refuses ("12", -1, 12.5,
# True, past 2**53, 1e300), what is not this shape at all. Half the answers have none of them (most of those
# are read by the typed reading), half have them anywhere (most of those go to the general reader).
ODD_COUNTS = [None, ABSENT, 0, 2**53, 2**53 + 1, 2**60, 2**64, -1, "12", 12.0, 12.5, True, 1e300, [], {}]
ODD_COSTS = [True, "0.1", {"total_cost": 0.25}, {"total_cost": None}, 10**400, -0.5]
ODD_TEXT = st.text(max_size=40)  # lone surrogates: json.dumps writes them as \ud800 escapes, or raw below
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def answers(odd: bool) -> st.SearchStrategy[dict[str, Any]]:
    def leaf(usual: st.SearchStrategy[Any], *odd_values: Any) -> st.SearchStrategy[Any]:
        return st.one_of(usual, st.sampled_from(odd_values)) if odd and odd_values else usual

    count = leaf(st.one_of(st.integers(0, 100_000), st.sampled_from([None, ABSENT])), *ODD_COUNTS)
    name = leaf(st.sampled_from(["get_weather", "lookup", "", None, ABSENT]), 7)
    function = leaf(keyed(name=name, arguments=st.just("{}")), None, "f", ABSENT)
    tool_call = leaf(
        keyed(id=st.just("call_1"), type=st.just("function"), function=function, index=st.sampled_from([0, 1])),
        None,
        "call",
        3,
    )
    message = leaf(
        keyed(
            role=st.just("assistant"),
            content=st.one_of(ODD_TEXT if odd else TEXT, st.none()),
            tool_calls=st.one_of(st.lists(tool_call, max_size=3), leaf(st.sampled_from([None, ABSENT]), "x", {})),
            function_call=st.one_of(function, st.just(ABSENT)),
        ),
        None,
        ABSENT,
        "hi",
        [],
    )
    reasons = ["stop", "length", "tool_calls", "content_filter", "function_call", "end_turn", "STOP", "", None]
    choice = leaf(
        keyed(
            index=st.sampled_from([0, 1, ABSENT]),
            message=message,
            finish_reason=leaf(st.sampled_from([*reasons, ABSENT]), 5),
            delta=leaf(st.just(ABSENT), None, {"content": "x"}, {"tool_calls": [{"function": {"name": "f"}}]}),
            text=st.sampled_from([ABSENT, "done"]),
            logprobs=st.just(None),
        ),
        None,
        "choice",
        1,
    )
    details_in = leaf(
        st.one_of(
            keyed(cached_tokens=count, audio_tokens=count, cache_write_tokens=count), st.sampled_from([None, ABSENT])
        ),
        "x",
        [],
    )
    details_out = leaf(st.one_of(keyed(reasoning_tokens=count, audio_tokens=count), st.sampled_from([None, ABSENT])), 3)
    usual_cost = st.one_of(
        st.floats(0, allow_infinity=False), st.integers(0, 2**70), st.sampled_from([None, ABSENT, ABSENT])
    )
    usage = leaf(
        keyed(
            prompt_tokens=leaf(st.integers(0, 100_000), *ODD_COUNTS),
            completion_tokens=count,
            total_tokens=count,
            prompt_tokens_details=details_in,
            completion_tokens_details=details_out,
            cost=leaf(usual_cost, *ODD_COSTS),
            input_tokens=leaf(st.just(ABSENT), 5),
        ),
        None,
        "usage",
        [1],
    )
    return keyed(
        id=st.just("chatcmpl-1"),
        object=leaf(st.sampled_from(["chat.completion", "text_completion", ABSENT]), "list", "response", None, 3),
        created=leaf(st.just(1741569952), 1e400, 10**30, ABSENT),
        model=leaf(st.sampled_from(["gpt-4o-2024-08-06", "gpt-4o-mini", ""]), None, 5, ABSENT),
        choices=st.one_of(st.lists(choice, max_size=3), leaf(st.just(ABSENT), None, {}, "x")),
        usage=usage,
        prompt_filter_results=leaf(st.sampled_from([ABSENT, None, [{"prompt_index": 0}]]), []),
        error=leaf(st.sampled_from([ABSENT, None]), {"type": "rate_limit_error"}, {"code": 429}, "boom"),
        type=leaf(st.sampled_from([ABSENT, None]), "message", "response.completed", 3),
        data=leaf(st.just(ABSENT), [], [{"embedding": [0.5]}]),
        service_tier=st.just("default"),
    )


def messages(odd: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Anthropic messages, with the odd values anywhere when ``odd``."""

    def leaf(usual: st.SearchStrategy[Any], *odd_values: Any) -> st.SearchStrategy[Any]:
        return st.one_of(usual, st.sampled_from(odd_values)) if odd else usual

    count = leaf(st.one_of(st.integers(0, 100_000), st.sampled_from([None, ABSENT])), *ODD_COUNTS)
    block = leaf(
        st.one_of(
            keyed(type=st.just("text"), text=TEXT),
            keyed(
                type=st.sampled_from(["tool_use", "server_tool_use", "mcp_tool_use", "thinking"]),
                id=st.just("toolu_1"),
                name=leaf(st.sampled_from(["get_weather", "", None, ABSENT]), 7),
                input=st.just({"city": "Paris"}),
            ),
        ),
        None,
        "text",
        {"type": 5},
    )
    by_ttl = leaf(
        st.one_of(
            keyed(ephemeral_5m_input_tokens=count, ephemeral_1h_input_tokens=count), st.sampled_from([None, ABSENT])
        ),
        "x",
    )
    usage = leaf(
        keyed(
            input_tokens=leaf(st.integers(0, 100_000), *ODD_COUNTS),
            output_tokens=count,
            cache_read_input_tokens=leaf(st.one_of(count, st.just(2**53)), *ODD_COUNTS),
            cache_creation_input_tokens=count,
            cache_creation=by_ttl,
            service_tier=st.just("standard"),
        ),
        None,
        "usage",
    )
    stop = ["end_turn", "max_tokens", "tool_use", "stop_sequence", "pause_turn", "refusal", "", None, ABSENT]
    return keyed(
        id=st.just("msg_1"),
        type=leaf(st.just("message"), "message_delta", "error", None, ABSENT),
        role=st.just("assistant"),
        model=leaf(st.sampled_from(["claude-sonnet-4-5-20250929", ""]), None, 5, ABSENT),
        content=leaf(st.lists(block, max_size=3), None, "hi", ABSENT),
        stop_reason=leaf(st.sampled_from(stop), 3),
        stop_sequence=st.just(None),
        delta=leaf(st.just(ABSENT), None, {"stop_reason": "max_tokens"}),
        error=leaf(st.just(ABSENT), None, {"type": "overloaded_error"}),
        usage=usage,
    )


ANSWERS = st.one_of(answers(odd=False), answers(odd=True), messages(odd=False), messages(odd=True))


def encode(doc: dict[str, Any], ascii_only: bool, spaced: bool) -> bytes:
    # 1e400 is infinity in Python: written as the JSON number it stands for, not "Infinity".
    text = json.dumps(doc, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"))
    text = text.replace("Infinity", "1e400")
    return text.encode("utf-8", "surrogatepass")  # unescaped lone surrogates: invalid UTF-8, refused


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANSWERS, st.booleans(), st.booleans(), st.sampled_from([200, 200, 429, 500]))
@example(
    {"model": "gpt-4o", "object": "chat.completion", "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    True,
    False,
    200,
)
def test_every_answer_is_read_as_the_general_reader_reads_it(doc: dict[str, Any], ascii_only: bool, spaced: bool,
                                                              status: int) -> None:  # fmt: skip
    body = encode(doc, ascii_only, spaced)
    expected = general(body, status)
    assert _json_object(body, START, END, status) == expected
    found = typed_call(body, START, END, status)
    assert found is UNSHAPED or found == expected


def chat(**changes: Any) -> dict[str, Any]:
    """OpenAI's chat completion of the wire fixtures, with ``changes`` (ABSENT drops a key)."""
    doc: dict[str, Any] = json.loads((WIRE / "openai_chat.json").read_bytes())
    doc["choices"][0]["message"]["content"] = "Réservé pour mardi à 10:00 🗓"  # not ASCII: UTF-8 is checked
    doc.update(changes)
    return without_absent(doc)


def typed(body: bytes, status: int = 200) -> Any:
    """The typed reading, checked against the general reader's."""
    found = typed_call(body, START, END, status)
    assert found is UNSHAPED or found == general(body, status)
    return found


def test_a_chat_completion_is_read_by_the_typed_reading_with_every_count() -> None:
    body = json.dumps(chat(), ensure_ascii=False).encode()
    assert typed(body) == LLMCall(
        "gpt-4o-2024-08-06",
        provider="openai",
        operation="chat",
        input_tokens=1523,
        output_tokens=14,
        cached_input_tokens=1280,
        duration=1.25,
        response_model="gpt-4o-2024-08-06",
        finish_reasons=("stop",),
    )


# Every JSON answer of the wire fixtures in OpenAI's chat shape (Azure's and OpenRouter's included) or Anthropic's
# message shape is read by the typed reading, with its counts; the other answers go to the general reader.
TYPED = {
    "openai_chat.json": ("openai", 1523, 14, 1280, 0, 0, 0, None),
    "openai_reasoning.json": ("openai", 2120, 1460, 1920, 0, 1344, 0, None),
    "openai_audio.json": ("openai", 187, 412, 0, 149, 0, 331, None),
    "azure_openai.json": ("azure.ai.openai", 2311, 96, 1792, 0, 0, 0, None),
    "openrouter_chat.json": ("openai", 1203, 158, 0, 0, 0, 0, 0.005979),
    "anthropic_message.json": ("anthropic", 12600, 427, 10240, 0, 0, 0, None),  # 312 + 10,240 read + 2,048 written
}
GENERAL = ["bedrock_converse.json", "gemini.json", "openai_responses.json", "vertex_gemini.json"]


def test_the_wire_answers_in_openai_or_anthropic_shape_are_read_by_the_typed_reading() -> None:
    found = {}
    for name in TYPED:
        call = typed((WIRE / name).read_bytes())
        assert isinstance(call, LLMCall)
        found[name] = (call.provider, call.input_tokens, call.output_tokens, call.cached_input_tokens,
                       call.input_audio_tokens, call.output_reasoning_tokens, call.output_audio_tokens,
                       call.cost_usd)  # fmt: skip
    assert found == TYPED
    assert [typed_call((WIRE / name).read_bytes(), START, END, 200) for name in GENERAL] == [UNSHAPED] * 4


def test_tool_calls_several_choices_azure_and_openrouter_cost_are_read_by_the_typed_reading() -> None:
    calls = [{"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
             {"id": "b", "type": "function", "function": {"name": "", "arguments": "{}"}}]  # fmt: skip
    doc = chat(
        choices=[
            {"index": 0, "message": {"role": "assistant", "tool_calls": calls}, "finish_reason": "tool_calls"},
            {"index": 1, "message": {"role": "assistant", "function_call": {"name": "lookup"}}, "finish_reason": "x"},
            {"index": 2, "message": {"role": "assistant", "content": "hi"}, "finish_reason": None},
        ],
        prompt_filter_results=[{"prompt_index": 0, "content_filter_results": {}}],
    )
    doc["usage"]["cost"] = 0.0125
    found = typed(json.dumps(doc).encode(), status=200)
    assert isinstance(found, LLMCall)
    assert (found.provider, found.finish_reasons, found.tool_calls, found.cost_usd) == (
        "azure.ai.openai",
        ("tool_calls", "other"),
        ("get_weather", "unknown", "lookup"),
        0.0125,
    )


def test_a_completions_answer_and_an_error_status_are_read_by_the_typed_reading() -> None:
    doc = chat(object="text_completion", choices=[{"index": 0, "text": "done", "finish_reason": "length"}])
    found = typed(json.dumps(doc).encode(), status=503)
    assert isinstance(found, LLMCall)
    assert (found.operation, found.finish_reasons, found.error_type, found.input_tokens) == (
        "text_completion",
        ("length",),
        "503",
        1523,
    )


def test_an_answer_without_a_model_is_nothing_to_either_reader() -> None:
    body = json.dumps(chat(model="")).encode()
    assert typed(body) is None
    assert _json_object(body, START, END, 200) is None


def unusual_bodies() -> list[bytes]:
    bad_usage = [
        {"prompt_tokens": "512"},
        {"prompt_tokens": -1},
        {"prompt_tokens": 12.0},
        {"prompt_tokens": 12.5},
        {"prompt_tokens": 2**60},
        {"prompt_tokens": 5, "completion_tokens": True},
        {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 2**53 + 1}},
        {"prompt_tokens": 5, "cost": {"total_cost": 0.5}},  # Perplexity's cost object
        {"completion_tokens": 5},  # no prompt_tokens: not this shape
    ]
    docs = [chat(usage=u) for u in bad_usage] + [
        chat(error={"type": "rate_limit_error"}),
        chat(type="message"),
        chat(object="list", data=[]),
        chat(object="response"),
        chat(choices=[{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]),
        chat(choices=[{"index": 0, "message": "hi"}]),
    ]
    bodies = [json.dumps(d).encode() for d in docs]
    body = json.dumps(chat()).encode()
    bodies += [
        body.replace(b'"system_fingerprint"', b'"system_\xff"'),  # not UTF-8: the general reader refuses it
        body.replace(b"1751876400", b"9" * 4301),  # past Python's 4,300 digits: refused by the general reader
        body.replace(b"1751876400", b"NaN"),  # the standard library reads NaN; msgspec refuses it
        body.replace(b'"fp_07871e2ad8"', b'"\\ud800"'),  # a lone surrogate, read by the standard library
        body[:-1],  # cut off
    ]
    return bodies


def test_what_the_typed_reading_refuses_goes_to_the_general_reader() -> None:
    bodies = unusual_bodies()
    assert [typed_call(b, START, END, 200) for b in bodies] == [UNSHAPED] * len(bodies)
    results = [_json_object(b, START, END, 200) for b in bodies]
    assert results == [general(b) for b in bodies]
    # Unusable counts, the invalid UTF-8, the long integer and the cut-off body are unreadable to both; the
    # rest are read as before: 12.0 is a count, Perplexity's cost object a cost, an error body's type, usage
    # without prompt_tokens or Anthropic's type a call without usage, an embeddings list, a stream delta.
    json_ = Unreadable("json")
    assert [summary(r) for r in results] == [
        json_, json_, (12, 0, "openai", "chat", None, None, None), json_, json_, json_, json_,
        (5, 0, "openai", "chat", None, 0.5, None),
        (0, 0, "openai", "chat", None, None, "response_without_usage"),
        (1523, 14, "openai", "chat", "rate_limit_error", None, None),
        (0, 0, "anthropic", "chat", None, None, "response_without_usage"),
        (1523, 14, "openai", "embeddings", None, None, None),
        (1523, 14, "openai", "chat", None, None, None),
        (1523, 14, "openai", "chat", None, None, None),
        (1523, 14, "openai", "chat", None, None, None),
        json_, json_,
        (1523, 14, "openai", "chat", None, None, None),
        (1523, 14, "openai", "chat", None, None, None),
        json_,
    ]  # fmt: skip


def summary(found: Any) -> Any:
    if not isinstance(found, LLMCall):
        return found
    return (found.input_tokens, found.output_tokens, found.provider, found.operation, found.error_type,
            found.cost_usd, found.missing_usage)  # fmt: skip


def test_a_count_the_typed_reading_refuses_is_still_read_by_the_general_reader() -> None:
    """A count the general reader converts (JSON's 2.0) fails the typed reading's integer type: the body is
    then read whole, and the call is the general reader's."""
    body = json.dumps(chat(usage={"prompt_tokens": 7, "completion_tokens": 2.0})).encode()
    assert typed_call(body, START, END, 200) is UNSHAPED
    found = _json_object(body, START, END, 200)
    assert isinstance(found, LLMCall)
    assert (found.input_tokens, found.output_tokens) == (7, 2)  # 2.0 is a count to the general reader


def test_an_anthropic_message_whose_input_passes_2_53_goes_to_the_general_reader() -> None:
    """Anthropic's input count leaves the cache out: the three parts can add up past 2**53 each within it."""
    doc = json.loads((WIRE / "anthropic_message.json").read_bytes())
    doc["usage"]["cache_read_input_tokens"] = 2**53
    body = json.dumps(doc).encode()
    assert typed_call(body, START, END, 200) is UNSHAPED
    assert _json_object(body, START, END, 200) == general(body) == Unreadable("json")
