"""Every token and every cent: provider answers (tests/fixtures/wire) through the whole path.

Each sample is the response of a raw ASGI app behind the middleware (request in, answer out, streams in
pieces that cut lines anywhere), so it goes response -> capture -> recorder -> metrics as in production.
For each, every token kind is exact, every kind's cost is genai-prices' ``calc_price`` of that kind's tokens
(to 1e-12 USD), and the call's cost is genai-prices' price of the usage genai-prices itself reads from the
same body.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from genai_prices import calc_price, extract_usage
from prometheus_client import CollectorRegistry

from exporter import Config, LLMCall, Recorder
from exporter.labels import OVERFLOW

from ..support import REPO
from ..support.asgi import call, http_scope, wrap
from ..support.metrics import series, value
from ..support.pricing import by_kind, reference_usd, usage_of

WIRE = REPO / "tests" / "fixtures" / "wire"
JSON = b"application/json"
SSE = b"text/event-stream"
PIECE = 61  # stream bytes per body message: cuts events, lines and CRLF pairs at every kind of place


@dataclass(frozen=True)
class Sample:
    file: str
    path: str
    provider: str
    model: str  # gen_ai_request_model: the request's, or the answer's where the request names none
    response: str  # gen_ai_response_model: the answer's ("" when it names none)
    kinds: dict[str, int]
    operation: str = "chat"
    request: dict[str, Any] = field(default_factory=dict)  # the request body the app reads
    extractor: tuple[str, str] | None = None  # genai-prices' (provider id, API flavor) for this body

    @property
    def content_type(self) -> bytes:
        return SSE if self.file.endswith(".sse") else JSON

    @property
    def priced_as(self) -> str:
        return self.response or self.model

    def body(self) -> bytes:
        return (WIRE / self.file).read_bytes()


def asked(model: str, **more: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "When is my appointment?"}], **more}


STREAMED = {"stream": True, "stream_options": {"include_usage": True}}
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:{}"
VERTEX_PATH = "/v1/projects/acme-prod/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent"
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

SAMPLES = [
    Sample(
        "openai_chat.json",
        "/v1/chat/completions",
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
        {"input": 243, "cache_read": 1280, "output": 14},
        request=asked("gpt-4o"),
        extractor=("openai", "chat"),
    ),
    Sample(
        "openai_reasoning.json",
        "/v1/chat/completions",
        "openai",
        "o4-mini",
        "o4-mini-2025-04-16",
        {"input": 200, "cache_read": 1920, "output": 116, "output_reasoning": 1344},
        request=asked("o4-mini", reasoning_effort="high"),
        extractor=("openai", "chat"),
    ),
    Sample(
        "openai_audio.json",
        "/v1/chat/completions",
        "openai",
        "gpt-audio",
        "gpt-audio-2025-08-28",
        {"input": 38, "input_audio": 149, "output": 81, "output_audio": 331},
        request=asked("gpt-audio", modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"}),
        extractor=("openai", "chat"),
    ),
    Sample(
        "openai_chat_stream.sse",
        "/v1/chat/completions",
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        {"input": 159, "cache_read": 1152, "output": 11},
        request=asked("gpt-4o-mini", **STREAMED),
    ),
    Sample(
        "openai_responses.json",
        "/v1/responses",
        "openai",
        "gpt-5-mini",
        "gpt-5-mini-2025-08-07",
        {"input": 206, "cache_read": 2944, "output": 108, "output_reasoning": 704},
        request={"model": "gpt-5-mini", "input": "How long do refunds take?"},
        extractor=("openai", "responses"),
    ),
    Sample(
        "anthropic_message.json",
        "/v1/messages",
        "anthropic",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        {"input": 312, "cache_read": 10240, "cache_write": 1536, "cache_write_1h": 512, "output": 427},
        request=asked("claude-sonnet-4-5", max_tokens=1024),
        extractor=("anthropic", "default"),
    ),
    Sample(
        "anthropic_stream.sse",
        "/v1/messages",
        "anthropic",
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        {"input": 48, "cache_read": 3072, "output": 19},
        request=asked("claude-haiku-4-5", max_tokens=256, stream=True),
    ),
    Sample(
        "gemini.json",
        GEMINI_PATH.format("generateContent"),
        "gcp.gemini",
        "gemini-2.5-flash",
        "gemini-2.5-flash",
        {
            "input": 711,
            "cache_read": 1024,
            "input_audio": 528,
            "cache_audio_read": 2048,
            "output": 286,
            "output_reasoning": 821,
        },  # fmt: skip
        operation="generate_content",
        extractor=("google", "default"),
    ),
    Sample(
        "gemini_stream.sse",
        GEMINI_PATH.format("streamGenerateContent"),
        "gcp.gemini",
        "gemini-2.5-flash",
        "gemini-2.5-flash",
        {"input": 62, "output": 17, "output_reasoning": 230},
        operation="generate_content",
    ),
    Sample(
        "vertex_gemini.json",
        VERTEX_PATH,
        "gcp.vertex_ai",
        "gemini-2.5-pro",
        "gemini-2.5-pro",
        {"input": 1200, "input_image": 1806, "output": 512, "output_reasoning": 1187},
        operation="generate_content",
        extractor=("google", "default"),
    ),
    Sample(
        "azure_openai.json",
        "/openai/deployments/support-gpt4o/chat/completions",
        "azure.ai.openai",
        "gpt-4o-2024-11-20",  # Azure's request names a deployment, not a model
        "gpt-4o-2024-11-20",
        {"input": 519, "cache_read": 1792, "output": 96},
        request={"messages": [{"role": "user", "content": "Was my invoice paid?"}]},
        extractor=("azure", "chat"),
    ),
    Sample(
        "azure_openai_stream.sse",
        "/openai/deployments/support-gpt4o/chat/completions",
        "azure.ai.openai",
        "gpt-4o-2024-11-20",
        "gpt-4o-2024-11-20",
        {"input": 210, "cache_read": 1664, "output": 5},
        request={"messages": [{"role": "user", "content": "Was my invoice paid?"}], **STREAMED},
    ),
    Sample(
        "bedrock_converse.json",
        f"/model/{BEDROCK_MODEL}/converse",
        "aws.bedrock",
        BEDROCK_MODEL,  # from the path: Bedrock's answer names no model
        "",
        {"input": 214, "cache_read": 8192, "cache_write": 2048, "cache_write_1h": 1024, "output": 389},
        request={"messages": [{"role": "user", "content": [{"text": "Where is my parcel?"}]}]},
        extractor=("aws", "default"),
    ),
]
IDS = [s.file for s in SAMPLES]


Headers = Sequence[tuple[bytes, bytes]]


def app(body: bytes, content_type: bytes, headers: Headers = (), *, pieces: bool) -> Any:
    """A raw ASGI app that reads the request and answers with ``body``: in pieces, or in one message."""

    async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type), *headers]}
        await send(start)
        if not pieces:
            await send({"type": "http.response.body", "body": body})
            return
        for i in range(0, len(body), PIECE):
            await send({"type": "http.response.body", "body": body[i : i + PIECE], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return answer


def serve(sample: Sample, body: bytes | None = None, headers: Headers = (), **options: Any) -> Recorder:
    """The recorder after the app answered ``sample`` (or ``body`` in its place) once."""
    streamed = sample.content_type == SSE
    answer = app(sample.body() if body is None else body, sample.content_type, headers, pieces=streamed)
    middleware, _ = wrap(answer, **options)
    request = json.dumps(sample.request).encode() if sample.request else b"{}"
    asyncio.run(call(middleware, http_scope(sample.path, "POST"), body=request))
    return middleware.recorder


def labels(sample: Sample) -> dict[str, str]:
    return {
        "gen_ai_provider_name": sample.provider,
        "gen_ai_request_model": sample.model,
        "gen_ai_response_model": sample.response,
    }


def assert_every_kind_and_cent(rec: Recorder, sample: Sample) -> None:
    tokens = series(rec, "llm_tokens_total")
    assert {dict(k)["gen_ai_token_type"]: v for k, v in tokens.items()} == sample.kinds
    # A raw ASGI app has no route table: the call is attributed to the request's __unmatched__ route.
    route = {"http_route": "__unmatched__"}
    assert {
        tuple(sorted({**labels(sample), "gen_ai_token_type": kind, **route}.items())) for kind in sample.kinds
    } == set(tokens)
    costs = series(rec, "llm_cost_usd_total")
    assert {dict(k)["cost_source"] for k in costs} == {"estimated"}
    expected = {kind: reference_usd(sample.priced_as, sample.provider, {kind: n}) for kind, n in sample.kinds.items()}
    assert by_kind(rec, "llm_cost_usd_total") == pytest.approx(expected, abs=1e-12)
    whole = float(calc_price(usage_of(sample.kinds), sample.priced_as, provider_id=sample.provider).total_price)
    assert sum(costs.values()) == pytest.approx(whole, abs=1e-12)
    assert value(rec, "llm_requests_total", **labels(sample), outcome="ok") == 1
    for health in ("llm_exporter_missing_usage_total", "llm_exporter_unpriced_tokens_total"):
        assert series(rec, health) == {}, health
    assert series(rec, "llm_exporter_capture_errors_total") == {}
    # The OTel histogram keeps the totals of input and output, as the conventions define them.
    usage = {**labels(sample), "gen_ai_operation_name": sample.operation}
    n_in = sum(n for kind, n in sample.kinds.items() if not kind.startswith("output"))
    assert value(rec, "gen_ai_client_token_usage_sum", **usage, gen_ai_token_type="input") == n_in
    assert value(rec, "gen_ai_client_token_usage_sum", **usage, gen_ai_token_type="output") == (
        sum(sample.kinds.values()) - n_in
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_every_kind_and_every_cent(sample: Sample) -> None:
    assert_every_kind_and_cent(serve(sample), sample)


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.extractor], ids=[s.file for s in SAMPLES if s.extractor])
def test_the_cost_is_genai_prices_price_of_the_usage_it_reads_itself(sample: Sample) -> None:
    """A second reader of the same body: genai-prices' own usage extraction, priced by genai-prices."""
    assert sample.extractor is not None
    provider_id, flavor = sample.extractor
    usage = extract_usage(json.loads(sample.body()), provider_id=provider_id, api_flavor=flavor).usage
    reference = float(calc_price(usage, sample.priced_as, provider_id=sample.provider).total_price)
    rec = serve(sample)
    assert sum(series(rec, "llm_cost_usd_total").values()) == pytest.approx(reference, abs=1e-12)


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_every_sample_says_how_it_ended(sample: Sample) -> None:
    # Every sample is an answer that ended normally: OpenAI's "stop", Anthropic's and Bedrock's "end_turn",
    # Gemini's "STOP", the Responses API's status "completed".
    reasons = series(serve(sample), "llm_finish_reasons_total")
    expected = {"gen_ai_provider_name": sample.provider, "gen_ai_request_model": sample.model, "reason": "stop"}
    assert reasons == {tuple(sorted(expected.items())): 1}


# -- the same answers in other encodings ------------------------------------------------------------------------

BY_FILE = {s.file: s for s in SAMPLES}


@pytest.mark.parametrize("file", ["gemini_stream.sse", "openai_chat_stream.sse", "anthropic_stream.sse"])
def test_sse_lines_ending_in_cr_alone_or_crlf(file: str) -> None:
    sample = BY_FILE[file]
    lf = sample.body().replace(b"\r\n", b"\n")
    for endings in (b"\r", b"\r\n"):
        assert_every_kind_and_cent(serve(sample, lf.replace(b"\n", endings)), sample)


@pytest.mark.parametrize("file", ["openai_chat.json", "anthropic_message.json", "bedrock_converse.json"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_answer_sent_whole(file: str, encoding: str) -> None:
    sample = BY_FILE[file]
    body = gzip.compress(sample.body()) if encoding == "gzip" else zlib.compress(sample.body())
    assert_every_kind_and_cent(serve(sample, body, [(b"content-encoding", encoding.encode())]), sample)


@pytest.mark.parametrize("file", ["anthropic_stream.sse", "azure_openai_stream.sse", "gemini_stream.sse"])
def test_compressed_stream(file: str) -> None:
    sample = BY_FILE[file]
    # A gzip stream flushed after each event, as a compressing proxy sends it.
    zipper = zlib.compressobj(wbits=31)
    events = sample.body().replace(b"\r\n", b"\n").split(b"\n\n")
    body = b"".join(zipper.compress(e + b"\n\n") + zipper.flush(zlib.Z_SYNC_FLUSH) for e in events if e)
    body += zipper.flush()
    assert_every_kind_and_cent(serve(sample, body, [(b"Content-Encoding", b"gzip")]), sample)


def test_a_compressed_body_that_is_not_an_answer_is_not_taken_for_one() -> None:
    listing = json.dumps({"items": [{"id": i, "name": "widget", "tags": ["a", "b"]} for i in range(20_000)]})
    sample = Sample("openai_chat.json", "/items", "openai", "", "", {})
    rec = serve(sample, gzip.compress(listing.encode()), [(b"content-encoding", b"gzip")])
    assert series(rec, "llm_requests_total") == {} and series(rec, "llm_exporter_capture_errors_total") == {}


def test_a_body_that_is_not_the_encoding_it_says_is_skipped() -> None:
    sample = BY_FILE["openai_chat.json"]
    rec = serve(sample, b"\x1f\x8bnot gzip at all", [(b"content-encoding", b"gzip")])
    assert series(rec, "llm_requests_total") == {} and series(rec, "llm_exporter_capture_errors_total") == {}


# -- what is not booked ---------------------------------------------------------------------------------------------


def test_a_stream_without_usage_is_counted_as_missing_and_books_nothing() -> None:
    sample = Sample(
        "openai_chat_stream_no_usage.sse",
        "/v1/chat/completions",
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        {},
        request=asked("gpt-4o-mini", stream=True),
    )
    rec = serve(sample)
    missing = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}
    assert series(rec, "llm_exporter_missing_usage_total") == {
        tuple(sorted({**missing, "reason": "stream_without_usage"}.items())): 1.0
    }
    # The call counts, with its duration and time to first token; no token is counted, so none is priced.
    assert value(rec, "llm_requests_total", **labels(sample), outcome="ok") == 1
    assert value(rec, "gen_ai_client_time_to_first_token_seconds_count", **labels(sample)) == 1
    duration = {**labels(sample), "gen_ai_operation_name": "chat", "error_type": ""}
    assert value(rec, "gen_ai_client_operation_duration_seconds_count", **duration) == 1
    for name in ("llm_tokens_total", "llm_cost_usd_total", "llm_exporter_unpriced_tokens_total"):
        assert series(rec, name) == {}, name


def test_a_cost_the_provider_reports_is_booked_as_given() -> None:
    sample = Sample(
        "openrouter_chat.json",
        "/api/v1/chat/completions",
        "openai",
        "anthropic/claude-sonnet-4.5",
        "anthropic/claude-sonnet-4.5",
        {"input": 1203, "output": 158},
        request=asked("anthropic/claude-sonnet-4.5", usage={"include": True}),
    )
    rec = serve(sample)
    assert by_kind(rec, "llm_tokens_total") == sample.kinds
    provider = {
        **labels(sample),
        "gen_ai_token_type": "unsplit",
        "cost_source": "provider",
        "http_route": "__unmatched__",
    }
    assert series(rec, "llm_cost_usd_total") == {tuple(sorted(provider.items())): 0.005979}


def test_an_unknown_model_is_counted_as_unpriced() -> None:
    sample = BY_FILE["openai_chat.json"]
    body = sample.body().replace(b'"gpt-4o-2024-08-06"', b'"acme-support-7b"')
    rec = serve(sample, body)
    unpriced = {**labels(sample), "gen_ai_response_model": "acme-support-7b"}
    assert value(rec, "llm_exporter_unpriced_tokens_total", **unpriced) == 1537
    assert series(rec, "llm_cost_usd_total") == {}
    assert by_kind(rec, "llm_tokens_total") == sample.kinds


def test_request_and_response_models_are_both_capped() -> None:
    rec = Recorder(Config(label_cap=1), CollectorRegistry())
    rec.llm(LLMCall("gpt-4o", "openai", input_tokens=1, response_model="gpt-4o-2024-08-06"))
    rec.llm(LLMCall("gpt-4.1", "openai", input_tokens=1, response_model="gpt-4.1-2025-04-14"))
    model = {"gen_ai_provider_name": "openai", "gen_ai_request_model": OVERFLOW, "gen_ai_response_model": OVERFLOW}
    assert value(rec, "llm_requests_total", **model, outcome="ok") == 1
    overflow = {dict(k)["label"]: v for k, v in series(rec, "llm_exporter_label_overflow_total").items()}
    assert overflow == {"gen_ai_request_model": 1, "gen_ai_response_model": 1}
