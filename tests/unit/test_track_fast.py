"""/track's fast paths give what the full reading gives: the body's decoding (orjson where it is exact, the
standard library otherwise), each event type's o.Reader (one pass, or None and the full reading says why),
the rules' usual values, and the token counts' cross-check."""

from __future__ import annotations

import itertools
import json
import math
import random
from typing import Any

import orjson
import pytest

from exporter import observations as o
from exporter.capture.usage import COUNT_FIELDS
from exporter.checks import MAX_TEXT, NAME, TEXT, TOO_LARGE, Wrong, count, number
from exporter.collector.decode import decode, orjson_keeps_exact, stdlib_decode
from exporter.collector.events import FieldError, parse_event, parse_events
from exporter.labels import NOT_UTF8

from .test_collector import SEED, call, make, track_events

# A batch of every event type, and the legacy payload.
BATCH: list[dict[str, Any]] = [
    {"type": "llm", "model": "claude-sonnet-4", "provider": "anthropic", "input_tokens": 2000, "output_tokens": 51,
     "cached_input_tokens": 1500, "duration_ms": 2500, "ttft_ms": 125, "tenant": "t1"},
    {"type": "llm", "model": "gemini-2.0-flash", "provider": "gemini", "input_tokens": 7, "output_tokens": 9,
     "duration": 0.5, "cost_usd": 0.125},
    {"type": "confidence", "value": 0.5, "label": "refund", "model": "m"},
    {"type": "evaluation", "name": "relevance", "score": 0.75, "model": "m"},
    {"type": "feedback", "rating": 2, "model": "m"},
    {"type": "event", "name": "handoff", "tenant": "t1", "count": 3},
    {"type": "http", "method": "post", "route": "/v1/{id}", "status": 201, "duration_ms": 750},
    {"type": "tool", "name": "search", "duration": 0.25, "error_type": ""},
    {"type": "feature", "name": "length", "value": 45},
    SEED,
]  # fmt: skip

# -- the body's decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(BATCH).encode(),
        b'{"n": 9999999999999999, "m": -9999999999999999}',  # 16 digits: orjson, exact
        b'{"n": 9007199254740993}',  # 2**53 + 1: kept exact, refused by its field as too large
        b'{"n": 18446744073709551616}',  # 2**64: orjson would give a float; the stdlib's stand-in
        b'{"n": -9223372036854775809}',  # below -2**63: the same
        b'{"n": 1' + b"0" * 400 + b"}",
        b'{"s": "12345678901234567890"}',  # a long digit run in a string: the stdlib, the same value
        b'{"x": 1234567.1234567890123, "y": 0.1, "z": 1e-7, "w": -0.0, "v": 1E+2}',
        b'{"s": "\\u00e9\\ud83d\\ude00", "t": true, "f": false, "n": null}',
        b"  [1, 2.5, {}]  ",
        b'{"a": 1, "a": 2}',  # the last of repeated keys, both ways
        b'"\\ud800"',  # orjson refuses a lone surrogate; the stdlib reads it (its field refuses it)
        '{"a": 1}'.encode("utf-16"),  # the stdlib reads UTF-16
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte order mark
        b"1e400",  # infinity for the stdlib, refused by orjson
        b"[-0, 1e-400, 2.5e-324, 1.7976931348623157e308, 1.7976931348623159e308, 9999999999999999.5]",
    ],
)
def test_decode_gives_what_the_standard_library_gives(raw: bytes) -> None:
    expected = stdlib_decode(raw)
    got = decode(raw)
    assert got == expected or (got != got and expected != expected)
    assert repr(got) == repr(expected)  # the same types: an int stays an int, -0.0 stays -0.0


@pytest.mark.parametrize(
    "raw", [b"NaN", b'{"a": Infinity}', b"", b"{", b'{"a": 1,}', b"[1] [2]", b"\xff", b"[" * 100_000]
)
def test_decode_refuses_what_the_standard_library_refuses_with_its_message(raw: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)) as expected:
        stdlib_decode(raw)
    with pytest.raises(expected.type) as got:
        decode(raw)
    assert str(got.value) == str(expected.value)


def test_orjson_is_given_only_bodies_without_a_run_of_17_digits() -> None:
    assert orjson_keeps_exact(json.dumps(BATCH).encode()) is True
    assert orjson_keeps_exact(b'{"n": 9999999999999999, "t": 1234567890123456}') is True
    assert orjson_keeps_exact(b'{"n": 12345678901234567}') is False
    assert orjson_keeps_exact(b'{"id": "00000000000000000"}') is False
    # Why: past 64 bits orjson's integer is a float, which a duration would take.
    assert orjson.loads(b"18446744073709551616") == 1.8446744073709552e19
    assert stdlib_decode(b"18446744073709551616") == 2**54


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("duration", b"18446744073709551616"),
        ("cost_usd", b"18446744073709551616"),
        ("ttft", b"100000000000000000000"),
        ("input_tokens", b"18446744073709551616"),
        ("duration_ms", b"36893488147419103232"),
    ],
)
def test_a_past_64_bit_integer_is_too_large_not_a_float(field: str, raw: bytes) -> None:
    app, registry, _ = make()
    body = b'[{"type": "llm", "model": "gpt-4o", "%s": %s}]' % (field.encode(), raw)
    response = call(app, "POST", "/track", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {"errors": [{"index": 0, "field": field, "message": TOO_LARGE}]}
    assert track_events(registry) == (0.0, 1.0)


def test_orjson_reads_floats_as_the_standard_library_does() -> None:
    rng = random.Random(16)
    texts = [repr(rng.uniform(-1e6, 1e6)) for _ in range(3000)]
    texts += [repr(math.ldexp(rng.random(), rng.randint(-1000, 1000))) for _ in range(3000)]
    texts += [f"{rng.randint(0, 10**8)}.{rng.randint(0, 10**8):08d}" for _ in range(3000)]
    texts += [f"{rng.randint(1, 9)}.{rng.randint(0, 10**15)}e{rng.randint(-300, 300)}" for _ in range(3000)]
    given = [t.encode() for t in texts if orjson_keeps_exact(t.encode())]  # the others go to the stdlib
    assert len(given) > 6000
    assert [orjson.loads(t) for t in given] == [json.loads(t) for t in given]
    body = b"[" + b",".join(given) + b"]"
    assert orjson_keeps_exact(body) is True
    assert decode(body) == json.loads(body)


# -- each event type's o.Reader ---------------------------------------------------------------------------


def slow(event: dict[str, Any]) -> tuple[list[Any], list[FieldError]]:
    errors: list[FieldError] = []
    return parse_event(0, event, errors), errors


def test_every_event_of_the_batch_takes_the_one_pass_and_reads_as_the_full_reading() -> None:
    count_, fast, errors = parse_events(BATCH)
    assert (count_, errors) == (10, [])
    full = [o for event in BATCH for o in slow(event)[0]]
    assert fast == full
    assert fast == [
        o.LLMCall(
            "claude-sonnet-4", "anthropic", input_tokens=2000, output_tokens=51, cached_input_tokens=1500,
            duration=2.5, ttft=0.125, tenant="t1",
        ),
        o.LLMCall("gemini-2.0-flash", "gemini", input_tokens=7, output_tokens=9, duration=0.5, cost_usd=0.125),
        o.Confidence(0.5, "refund", "m"),
        o.Evaluation("relevance", 0.75, "m"),
        o.Feedback(2.0, "m"),
        o.Event("handoff", "t1", 3),
        o.HttpRequest("POST", "/v1/{id}", 201, 0.75),
        o.ToolExecution("search", 0.25, None),
        o.Feature("length", 45.0),
        o.LLMCall("unknown", "unknown", output_tokens=150, duration=1.5, cost_usd=0.002, tenant="test-business"),
        o.Prediction("general", "unknown"),
        o.Feature("user_message_length", 45.0),
        o.Feature("ai_response_length", 120.0),
        o.Feature("response_type", "text"),
    ]  # fmt: skip
    readers = {kind: o.Reader(kind, ("type",), millis=True) for kind in (o.LLMCall, o.HttpRequest, o.Feedback)}
    assert readers[o.LLMCall].read(BATCH[0]) == fast[0]
    assert readers[o.HttpRequest].read(BATCH[6]) == o.HttpRequest("post", "/v1/{id}", 201, 0.75)  # as given
    assert readers[o.Feedback].read(BATCH[4]) == o.Feedback(2.0, "m")
    assert type(readers[o.Feedback].read(BATCH[4]).rating) is float  # type: ignore[union-attr]


LLM = {"type": "llm", "model": "gpt-4o"}


@pytest.mark.parametrize(
    ("event", "read"),
    [
        # Read in one pass:
        ({**LLM, "provider": None, "duration": None, "duration_ms": 250}, True),  # null is absent
        ({**LLM, "input_tokens": 10, "cached_input_tokens": 10, "output_tokens": 5.0}, True),
        ({**LLM, "finish_reasons": ["end_turn"], "tool_calls": ["search"], "chunk_gaps": [0.01, 0.5]}, True),
        ({**LLM, "timestamp": 1_700_000_000, "response_model": "gpt-4o-2024-08-06", "error_type": ""}, True),
        ({"type": "http", "method": "FOO", "route": "/x", "status": 599, "duration": 0}, True),
        ({"type": "event", "name": "x", "count": 2**53}, True),
        ({"type": "feature", "name": "f", "value": "cat"}, True),
        ({"type": "confidence", "value": 1, "label": "é"}, True),
        # Read again by the full reading, which names what is wrong:
        ({**LLM, "duration": 1, "duration_ms": 1000}, False),
        ({**LLM, "colour": "red"}, False),
        ({**LLM, "model": ""}, False),
        ({"type": "llm"}, False),
        ({**LLM, "input_tokens": 1, "cached_input_tokens": 2}, False),
        ({**LLM, "output_tokens": 3, "output_reasoning_tokens": 2, "output_audio_tokens": 2}, False),
        ({**LLM, "input_tokens": True}, False),
        ({**LLM, "input_tokens": 2**53 + 1}, False),
        ({**LLM, "duration_ms": -1}, False),
        ({**LLM, "finish_reasons": "unheard_of"}, False),
        ({"type": "http", "method": "GET", "route": "x", "status": 200, "duration": 1}, False),
        ({"type": "http", "method": "GET", "route": "/x", "status": 200}, False),
        ({"type": "confidence", "value": 1.5}, False),
        ({"type": "confidence", "value": float("nan")}, False),
        ({"type": "feedback", "rating": 3, "model": "\ud800"}, False),
        ({"type": "feature", "name": "f", "value": -(2**60)}, False),
        ({"type": "tool", "name": "t", "duration_ms": 5, "duration": None, "error_type": 3}, False),
    ],
)
def test_the_one_pass_or_the_full_reading_gives_the_same(event: dict[str, Any], read: bool) -> None:
    kind = {"llm": o.LLMCall, "http": o.HttpRequest, "event": o.Event, "feature": o.Feature}.get(event["type"])
    kind = kind or {"confidence": o.Confidence, "feedback": o.Feedback, "tool": o.ToolExecution}[event["type"]]
    found = o.Reader(kind, ("type",), millis=True).read(event)
    assert (found is not None) is read
    full, errors = slow(event)
    assert (errors == []) is read
    count_, fast, fast_errors = parse_events(event)
    assert (count_, fast, fast_errors) == (1, full, errors)


def test_milliseconds_are_converted_as_the_full_reading_converts_them() -> None:
    reader = o.Reader(o.LLMCall, ("type",), millis=True)
    for millis in (1, 3, 7, 1840, 0.1, 123.456, 2**53):
        event = {**LLM, "duration_ms": millis, "ttft_ms": millis}
        found = reader.read(event)
        assert found is not None and found.duration == float(millis) / 1000.0 == found.ttft
        assert [found] == slow(event)[0]


def test_without_millis_a_duration_ms_key_is_unknown() -> None:
    reader = o.Reader(o.ToolExecution, ("type",))
    assert reader.read({"name": "t", "duration": 0.5}) == o.ToolExecution("t", 0.5)
    assert reader.read({"name": "t", "duration_ms": 500}) is None
    assert o.Reader(o.ToolExecution).read({"type": "tool", "name": "t", "duration": 0.5}) is None  # not skipped


# -- the rules' usual values ----------------------------------------------------------------------------


def test_count_usual_and_unusual_values() -> None:
    tokens, status = count(), count(100, 599)
    assert [tokens(0), tokens(2**53), tokens(150.0), status(100), status(599)] == [0, 2**53, 150, 100, 599]
    assert type(tokens(150.0)) is int
    for rule, value, message in [
        (tokens, -1, "expected an integer >= 0"),
        (tokens, True, "expected an integer >= 0"),
        (tokens, 2**53 + 1, TOO_LARGE),
        (tokens, 1.5, "expected an integer >= 0"),
        (status, 600, "expected an integer between 100 and 599"),
        (status, 2**60, "expected an integer between 100 and 599"),
    ]:
        with pytest.raises(Wrong) as exc:
            rule(value)
        assert exc.value.message == message


def test_number_usual_and_unusual_values() -> None:
    seconds, score = number(), number(0.0, 1.0)
    assert [seconds(0), seconds(2**53), seconds(0.25), score(1), score(1.0), score(0.0)] == [
        0.0,
        9007199254740992.0,
        0.25,
        1.0,
        1.0,
        0.0,
    ]
    assert type(seconds(3)) is float and type(score(1)) is float
    for rule, value, message in [
        (seconds, -0.5, "expected a number >= 0"),
        (seconds, float("inf"), "expected a number >= 0"),
        (seconds, float("nan"), "expected a number >= 0"),
        (seconds, 2**53 + 1, TOO_LARGE),
        (seconds, False, "expected a number >= 0"),
        (score, 1.0000001, "expected a number between 0 and 1"),
        (score, 10**400, "expected a number between 0 and 1"),
    ]:
        with pytest.raises(Wrong) as exc:
            rule(value)
        assert exc.value.message == message


def test_text_usual_and_unusual_values() -> None:
    assert [NAME("gpt-4o"), NAME(" x"), NAME("é"), NAME("a" * MAX_TEXT), TEXT(""), TEXT(" ")] == [
        "gpt-4o",
        " x",
        "é",
        "a" * MAX_TEXT,
        "",
        " ",
    ]
    for rule, value, message in [
        (NAME, "", "expected a non-empty string"),
        (NAME, " \t", "expected a non-empty string"),
        (NAME, 3, "expected a non-empty string"),
        (TEXT, None, "expected a string"),
        (NAME, "a" * (MAX_TEXT + 1), f"expected a string of at most {MAX_TEXT} characters, got {MAX_TEXT + 1}"),
        (TEXT, "\ud800", f"expected {NOT_UTF8}"),
    ]:
        with pytest.raises(Wrong) as exc:
            rule(value)
        assert exc.value.message == message


# -- the token counts' cross-check ----------------------------------------------------------------------

PARTS = list(COUNT_FIELDS)  # the twelve token counts of LLMCall, in its field order


def test_consistent_kinds_are_exactly_the_counts_with_no_wrong_part() -> None:
    rng = random.Random(16)
    samples = [tuple(rng.randint(0, 3) for _ in PARTS) for _ in range(20_000)]
    samples += list(itertools.product((0, 1), repeat=len(PARTS)))  # every part given or not
    agree = 0
    for counts in samples:
        values = dict(zip(PARTS, counts, strict=True))
        assert (o.token_kinds(*counts) is not None) is (o._wrong_part(values) is None), values
        assert o.LLMCall.cross_check(values) == o._wrong_part(values)
        agree += 1
    assert agree == 20_000 + 4096


@pytest.mark.parametrize(
    ("event", "errors"),
    [
        (SEED, []),
        ({"response_time_ms": 5, "colour": "red", "type": None}, []),  # unknown fields ignored, as before
        ({**SEED, "tokens_used": -1, "response_type": 3}, [("tokens_used", "expected an integer >= 0"),
                                                          ("response_type", "expected a string")]),
        ({**SEED, "appointment_requested": "yes"}, [("appointment_requested", "expected true or false")]),
    ],
)  # fmt: skip
def test_the_legacy_payload_in_one_pass_or_the_full_reading(event: dict[str, Any], errors: list[Any]) -> None:
    full, full_errors = slow(event)
    assert [(e.field, e.message) for e in full_errors] == errors
    assert parse_events(event) == (1, full, full_errors)
