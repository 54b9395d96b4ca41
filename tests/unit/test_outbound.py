"""Outbound capture: the official SDKs and raw httpx / httpx2 clients against a fake provider on a loopback
port (real uvicorn in a thread), recording on a fresh registry through the request's recorder."""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exporter import Config, Recorder, instrument, llm, uninstrument
from exporter.capture import transport
from exporter.capture.encoding import decoder_for
from exporter.capture.hosts import BUILT_IN, HostTable, is_call_path, path_kind
from exporter.capture.limits import rate_limits
from exporter.capture.request import requested_model
from exporter.context import reset_recorder, use_recorder

from ..support import sdks
from ..support.metrics import value
from ..support.providers import (
    BROKEN,
    LONG,
    LONG_WORDS,
    OPENAI_SNAPSHOT,
    RATE_LIMITED,
    REQUEST_LIMIT,
    TOKEN_LIMIT,
    provider_app,
    remaining_tokens,
    sdk_env,
)
from ..support.servers import ThreadServer

NONE = "__none__"


def _other_api() -> Starlette:
    """Answers that are not LLM answers: a JSON API, an error of a non-model path, a broken gzip body."""

    async def search(request: Request) -> Response:
        return JSONResponse({"hits": [{"id": 1, "usage": "internal"}], "model": "bm25"})

    async def missing(request: Request) -> Response:
        return JSONResponse({"error": {"type": "not_found"}}, status_code=404)

    async def corrupt(request: Request) -> Response:
        body = json.dumps({"object": "chat.completion", "model": "m", "usage": {"prompt_tokens": 1}}).encode()
        return Response(
            gzip.compress(body)[:10] + b"\xff" * 40, media_type="application/json", headers={"content-encoding": "gzip"}
        )

    async def deflated(request: Request) -> Response:
        body = json.dumps(
            {
                "object": "chat.completion",
                "model": "m-1",
                "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2},
            }
        ).encode()
        return Response(zlib.compress(body), media_type="application/json", headers={"content-encoding": "deflate"})

    return Starlette(
        routes=[
            Route("/search", search, methods=["POST", "GET"]),
            Route("/v1/files", missing, methods=["POST"]),
            Route("/v1/chat/completions", corrupt, methods=["POST"]),
            Route("/deflate/v1/chat/completions", deflated, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with ThreadServer(provider_app()) as server:
        yield server.url


@pytest.fixture(scope="module")
def other() -> Iterator[str]:
    with ThreadServer(_other_api()) as server:
        yield server.url


@pytest.fixture
def rec(provider: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """A fresh recorder made current (as the middleware makes the request's), the hook on, the SDKs pointed
    at the fake provider."""
    for key, val in sdk_env(provider).items():
        monkeypatch.setenv(key, val)
    recorder = Recorder(Config(), CollectorRegistry())
    token = use_recorder(recorder)
    instrument()
    try:
        yield recorder
    finally:
        uninstrument()
        reset_recorder(token)


# ``model`` is the model that answered (gen_ai_response_model); ``requested``, when given, the model the
# request named (gen_ai_request_model). A call the provider refused has no answering model: it is found by
# the requested one alone.


def _models(model: str | None, requested: str | None) -> dict[str, str]:
    named = {"gen_ai_response_model": model, "gen_ai_request_model": requested}
    return {k: v for k, v in named.items() if v is not None}


def tokens(
    rec: Recorder, provider: str, model: str | None, kind: str, route: str = NONE, requested: str | None = None
) -> float | None:
    return value(
        rec,
        "llm_tokens_total",
        gen_ai_provider_name=provider,
        gen_ai_token_type=kind,
        http_route=route,
        **_models(model, requested),
    )


def calls(
    rec: Recorder,
    provider: str,
    model: str | None,
    outcome: str = "ok",
    route: str = NONE,
    requested: str | None = None,
) -> float | None:
    return value(
        rec,
        "llm_requests_total",
        gen_ai_provider_name=provider,
        outcome=outcome,
        http_route=route,
        **_models(model, requested),
    )


def ttft_count(rec: Recorder, provider: str, model: str) -> float | None:
    return value(
        rec,
        "gen_ai_client_time_to_first_token_seconds_count",
        gen_ai_provider_name=provider,
        gen_ai_response_model=model,
    )


def errors(rec: Recorder, provider: str, model: str, error: str, op: str = "chat") -> float | None:
    return value(
        rec,
        "gen_ai_client_operation_duration_seconds_count",
        gen_ai_operation_name=op,
        gen_ai_provider_name=provider,
        gen_ai_request_model=model,
        error_type=error,
    )


def capture_errors(rec: Recorder, fmt: str) -> float:
    return value(rec, "llm_exporter_capture_errors_total", format=fmt) or 0.0


# -- the official SDKs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", ["openai", "anthropic", "gcp.gemini"])
def test_sdk_usage_equals_the_metrics(rec: Recorder, name: str, mode: str, stream: bool) -> None:
    prompts = ["the quick brown fox", "jumps over the lazy dog today"]
    if mode == "sync":
        got = [sdks.SYNC[name](p, stream) for p in prompts]
    else:

        async def both() -> list[sdks.Usage]:
            return [await sdks.ASYNC[name](p, stream) for p in prompts]

        got = asyncio.run(both())
    model, requested = got[0].model, got[0].requested
    assert {u.model for u in got} == {model} and {u.provider for u in got} == {name}
    assert tokens(rec, name, model, "input", requested=requested) == sum(u.input for u in got)
    assert tokens(rec, name, model, "output", requested=requested) == sum(u.output for u in got)
    assert calls(rec, name, model, requested=requested) == 2
    assert ttft_count(rec, name, model) == (2 if stream else None)
    assert capture_errors(rec, "outbound") == capture_errors(rec, "json") == capture_errors(rec, "sse") == 0


def test_time_to_first_token_is_measured_from_the_request_being_sent(rec: Recorder) -> None:
    usage = sdks.openai_chat("one two three four five six", stream=True)
    first = value(
        rec,
        "gen_ai_client_time_to_first_token_seconds_sum",
        gen_ai_provider_name="openai",
        gen_ai_response_model=usage.model,
    )
    duration = value(
        rec,
        "gen_ai_client_operation_duration_seconds_sum",
        gen_ai_operation_name="chat",
        gen_ai_provider_name="openai",
        gen_ai_response_model=usage.model,
        error_type="",
    )
    assert first is not None and duration is not None
    # The fake pauses 2 ms between pieces and the first token is in the second event: the first token
    # comes after the connection and the first pause, the end after every pause (8 events, 9 pieces).
    assert 0.002 < first < duration
    assert duration > 0.002 * 8


@pytest.mark.parametrize(
    ("name", "provider_error"),
    [("openai", "server_error"), ("anthropic", "api_error"), ("gcp.gemini", "INTERNAL")],
)
def test_provider_errors_are_llm_calls_with_their_error_type(rec: Recorder, name: str, provider_error: str) -> None:
    # The OpenAI and Anthropic SDKs retry 429 and 5xx twice (at once here: the fake says retry-after-ms);
    # google-genai does not retry by default. Every attempt is a call the provider answered.
    attempts = 3 if name != "gcp.gemini" else 1
    failures = (openai.APIStatusError, anthropic.APIStatusError, genai_errors.APIError)
    for model, error in ((RATE_LIMITED, "rate_limited"), (BROKEN, provider_error)):
        with pytest.raises(failures):
            sdks.SYNC[name]("hello", model=model)
        op = "generate_content" if name == "gcp.gemini" else "chat"
        # Refused: no model answered, the request's model names the call.
        assert calls(rec, name, "", "error", requested=model) == attempts, (model, error)
        assert errors(rec, name, model, error, op) == attempts, (model, error)
        assert calls(rec, name, None, "ok", requested=model) is None


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_rate_limit_headers_become_gauges(rec: Recorder, name: str) -> None:
    prompt = "how much is left"
    usage = sdks.SYNC[name](prompt)
    labels = {"gen_ai_provider_name": name, "gen_ai_request_model": usage.requested}
    assert value(rec, "llm_rate_limit_remaining", **labels, resource="tokens") == remaining_tokens(prompt)
    assert value(rec, "llm_rate_limit_limit", **labels, resource="tokens") == TOKEN_LIMIT
    assert value(rec, "llm_rate_limit_remaining", **labels, resource="requests") == REQUEST_LIMIT - 1
    assert value(rec, "llm_rate_limit_limit", **labels, resource="requests") == REQUEST_LIMIT
    with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)):
        sdks.SYNC[name](prompt, model=RATE_LIMITED)
    limited = {"gen_ai_provider_name": name, "gen_ai_request_model": RATE_LIMITED, "resource": "requests"}
    assert value(rec, "llm_rate_limit_remaining", **limited) == 0


def test_a_configured_host_names_the_provider(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = provider.rsplit(":", 1)[1]
    for key, val in sdk_env(provider).items():
        monkeypatch.setenv(key, val)
    config = Config.from_mapping({"capture": {"hosts": {f"127.0.0.1:{port}": "azure.ai.openai"}}})
    recorder = Recorder(config, CollectorRegistry())
    token = use_recorder(recorder)
    instrument()
    try:
        usage = sdks.openai_chat("named by its host")
    finally:
        uninstrument()
        reset_recorder(token)
    assert tokens(recorder, "azure.ai.openai", usage.model, "input") == usage.input
    assert tokens(recorder, "openai", usage.model, "input") is None


# -- raw clients: both libraries, sync and async, what is let go, what the client receives ----------------


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_raw_clients_of_both_libraries_sync_and_async(rec: Recorder, provider: str, lib: Any) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "a b"}]}
    with lib.Client() as client:
        assert client.post(f"{provider}/v1/chat/completions", json=body).status_code == 200

    async def send() -> None:
        async with lib.AsyncClient() as client:
            async with client.stream("POST", f"{provider}/v1/chat/completions", json={**body, "stream": True}) as r:
                async for _ in r.aiter_lines():
                    pass

    asyncio.run(send())
    model = "gpt-4o" + OPENAI_SNAPSHOT
    assert calls(rec, "openai", model) == 2
    assert tokens(rec, "openai", model, "input") == 5  # 2 words + 3 of overhead; the stream asked for no usage
    assert ttft_count(rec, "openai", model) == 1


def test_what_is_not_an_llm_answer_is_let_go(rec: Recorder, other: str) -> None:
    with httpx2.Client() as client:
        assert client.get(f"{other}/search").status_code == 200  # not a POST
        assert client.post(f"{other}/search", json={"q": "x"}).json()["model"] == "bm25"  # JSON, not LLM-shaped
        assert client.post(f"{other}/v1/files", json={}).status_code == 404  # an error off the model paths
    assert list(_llm_samples(rec)) == []
    assert capture_errors(rec, "outbound") == capture_errors(rec, "json") == 0


def test_the_client_receives_the_same_bytes_and_chunks_with_or_without_the_hook(rec: Recorder, provider: str) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "a b c"}], "stream": True}

    def receive() -> tuple[list[bytes], bytes]:
        with httpx2.Client() as client:
            with client.stream("POST", f"{provider}/v1/chat/completions", json=body) as r:
                raw = list(r.iter_raw())
            gemini = client.post(
                f"{provider}/v1beta/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"parts": [{"text": "x y"}]}]},
            )
        return raw, gemini.content

    hooked = receive()
    uninstrument()
    plain = receive()
    instrument()
    assert b"".join(hooked[0]) == b"".join(plain[0]) and hooked[1] == plain[1]
    assert len(hooked[0]) > 2  # the stream came in many reads, each passed on as it came
    assert calls(rec, "openai", "gpt-4o" + OPENAI_SNAPSHOT) == 1 and calls(rec, "gcp.gemini", "gemini-2.5-flash") == 1


def test_deflate_bodies_are_decoded(rec: Recorder, other: str) -> None:
    with httpx2.Client() as client:
        r = client.post(f"{other}/deflate/v1/chat/completions", json={"model": "m"})
    assert r.json()["usage"]["prompt_tokens"] == 9
    assert tokens(rec, "openai", "m-1", "input") == 9 and tokens(rec, "openai", "m-1", "output") == 2


def test_memory_stays_bounded_however_long_the_stream(rec: Recorder, provider: str) -> None:
    body = {"model": LONG, "messages": [{"role": "user", "content": "go"}], "stream": True}
    received = 0
    with httpx2.Client(timeout=60) as client:
        with client.stream("POST", f"{provider}/v1/chat/completions", json=body) as r:
            tracemalloc.start()
            for chunk in r.iter_raw():
                received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    assert received > LONG_WORDS * 100  # an event of some 200 bytes per word: megabytes in all
    assert peak < 1_000_000  # the client's own buffers and the capture's last events, not the stream
    assert tokens(rec, "openai", LONG + OPENAI_SNAPSHOT, "output") is None  # no include_usage: no output count
    assert calls(rec, "openai", LONG + OPENAI_SNAPSHOT) == 1


# -- failures never reach the app ------------------------------------------------------------------------


def test_a_body_capture_cannot_read_reaches_the_client_unchanged_and_is_counted(rec: Recorder, other: str) -> None:
    with httpx2.Client() as client:
        with pytest.raises(httpx2.DecodingError):  # what the client says without the hook too
            client.post(f"{other}/v1/chat/completions", json={"model": "m"})
    assert capture_errors(rec, "outbound") == 1
    assert list(_llm_samples(rec)) == []


class _BrokenRecorder(Recorder):
    def llm(self, call: Any) -> Any:
        raise RuntimeError("a recorder bug")


def test_a_failure_inside_capture_never_raises_into_the_app(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, val in sdk_env(provider).items():
        monkeypatch.setenv(key, val)
    recorder = _BrokenRecorder(Config(), CollectorRegistry())
    token = use_recorder(recorder)
    instrument()
    try:
        usage = sdks.openai_chat("still answered")
        streamed = sdks.anthropic_message("still streamed", stream=True)
    finally:
        uninstrument()
        reset_recorder(token)
    assert usage.input == 5 and streamed.output == 3
    assert capture_errors(recorder, "outbound") == 2


# -- who records a call: llm.call() blocks and GenAI spans -----------------------------------------------


def test_an_llm_call_block_is_the_record_of_the_calls_made_in_it(rec: Recorder) -> None:
    with llm.call("my-model", provider="openai") as c:
        response = sdks.client("openai").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "inside a block"}]
        )
        c.usage(response)
    # The block names the request's model; the usage it was given names the answering one.
    assert tokens(rec, "openai", response.model, "input", requested="my-model") == response.usage.prompt_tokens
    assert calls(rec, "openai", response.model, requested="my-model") == 1
    assert calls(rec, "openai", response.model) == 1  # not again from the answer
    # Its rate-limit headers are still read: they count nothing.
    labels = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini", "resource": "tokens"}
    assert value(rec, "llm_rate_limit_remaining", **labels) == remaining_tokens("inside a block")
    sdks.openai_chat("after the block")
    assert calls(rec, "openai", response.model, requested="gpt-4o-mini") == 1


@pytest.mark.parametrize("http_span", [False, True], ids=["genai-span", "genai-span-over-an-http-span"])
def test_a_genai_span_of_a_captured_call_is_not_counted_again(rec: Recorder, http_span: bool) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from exporter.otel import GenAISpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(GenAISpanProcessor(rec))
    tracer = tracer_provider.get_tracer("an-instrumentation")

    def traced(prompt: str, stream: bool = False) -> sdks.Usage:
        # What a GenAI instrumentation does: a span around the SDK call with its usage, and maybe an httpx
        # instrumentation's HTTP span under it while the request is sent.
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
        }
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attrs) as span:
            if http_span:
                with tracer.start_as_current_span("POST"):
                    usage = sdks.openai_chat(prompt, stream)
            else:
                usage = sdks.openai_chat(prompt, stream)
            span.set_attribute("gen_ai.usage.input_tokens", usage.input)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output)
        return usage

    usage = traced("counted once please")
    streamed = traced("streamed once please", stream=True)
    uninstrument()
    try:
        alone = traced("spans only now")
    finally:
        instrument()
    assert calls(rec, "openai", usage.model, requested=usage.requested) == 2  # from the answers, not the spans
    assert tokens(rec, "openai", usage.model, "input") == usage.input + streamed.input
    # Without outbound capture the span is what counts: it names the requested model and no answering one.
    assert calls(rec, "openai", "", requested="gpt-4o-mini") == 1
    assert tokens(rec, "openai", "", "input", requested="gpt-4o-mini") == alone.input


# -- the hook itself --------------------------------------------------------------------------------------


def test_instrument_is_idempotent_and_uninstrument_restores_the_transports() -> None:
    originals = [(cls, name, cls.__dict__[name]) for m in (httpx, httpx2) for cls, name in transport._targets(m)]
    was_on = transport.instrumented()
    uninstrument()
    try:
        assert [cls.__dict__[name] for cls, name, _ in originals] == [
            getattr(o, "__wrapped__", o) for _, _, o in originals
        ]
        instrument()
        instrument()
        for cls, name, _ in originals:
            wrapper = cls.__dict__[name]
            assert not hasattr(wrapper.__wrapped__, "__wrapped__")  # wrapped once, not twice
        assert transport.instrumented()
        uninstrument()
        assert not transport.instrumented()
    finally:
        if was_on:
            instrument()


# -- the pure parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "provider"),
    [
        ("api.openai.com", None, "openai"),
        ("my-resource.openai.azure.com", None, "azure.ai.openai"),
        ("openai.azure.com", None, None),  # the pattern needs a resource name before it
        ("api.anthropic.com", 443, "anthropic"),
        ("generativelanguage.googleapis.com", None, "gcp.gemini"),
        ("aiplatform.googleapis.com", None, "gcp.vertex_ai"),
        ("us-central1-aiplatform.googleapis.com", None, "gcp.vertex_ai"),
        ("API.OpenAI.com.", None, "openai"),
        ("localhost", 11434, None),
        ("example.com", None, None),
    ],
)
def test_built_in_hosts(host: str, port: int | None, provider: str | None) -> None:
    assert HostTable().provider(host, port) == provider


def test_configured_hosts_add_to_and_override_the_built_in_ones() -> None:
    table = HostTable({"localhost:11434": "ollama", "*.llm.internal": "vllm", "api.openai.com": "openai.proxy"})
    assert table.provider("localhost", 11434) == "ollama"
    assert table.provider("localhost", 8000) is None
    assert table.provider("a.b.llm.internal") == "vllm"
    assert table.provider("api.openai.com") == "openai.proxy"
    assert table.provider("api.anthropic.com") == BUILT_IN["api.anthropic.com"]


@pytest.mark.parametrize(
    ("path", "call", "kind"),
    [
        ("/v1/chat/completions", True, ("openai", "chat")),
        ("/openai/deployments/gpt4/chat/completions", True, ("openai", "chat")),
        ("/v1/completions", True, ("openai", "text_completion")),
        ("/v1/embeddings", True, ("openai", "embeddings")),
        ("/v1/responses", True, ("openai", "chat")),
        ("/v1/messages", True, ("anthropic", "chat")),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", True, ("gcp.gemini", "generate_content")),
        ("/v1/models/gemini-2.5-flash:countTokens", False, None),
        ("/v1/files", False, None),
    ],
)
def test_model_call_paths(path: str, call: bool, kind: tuple[str, str] | None) -> None:
    assert is_call_path(path) is call
    if kind is not None:
        assert path_kind(path) == kind


@pytest.mark.parametrize(
    ("path", "body", "model"),
    [
        (
            "/v1/chat/completions",
            b'{"messages":[{"role":"user","content":"say \\"model\\": \\"x\\""}],"model":"gpt-4o"}',
            "gpt-4o",
        ),
        (
            "/v1/messages",
            b'{"max_tokens":10,"tools":[{"input_schema":{"model":{"type":"string"}}}],"model":"claude"}',
            "claude",
        ),
        ("/v1beta/models/gemini-2.5-pro:generateContent", b"{}", "gemini-2.5-pro"),
        ("/v1/chat/completions", b"", None),
    ],
)
def test_the_requested_model(path: str, body: bytes, model: str | None) -> None:
    assert requested_model(path, body, body) == model


def test_rate_limit_headers() -> None:
    headers = [
        (b"X-RateLimit-Remaining-Tokens", b"1500"),
        (b"x-ratelimit-limit-tokens", b"30000"),
        (b"x-ratelimit-reset-tokens", b"6ms"),
        (b"anthropic-ratelimit-output-tokens-remaining", b"70"),
        (b"anthropic-ratelimit-output-tokens-reset", b"2026-01-01T00:00:00Z"),
        (b"x-ratelimit-remaining-requests", b"not a number"),
        (b"content-type", b"application/json"),
    ]
    assert rate_limits(headers) == {"tokens": [1500.0, 30000.0], "output_tokens": [70.0, None]}


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"raw-deflate"])
def test_decoders_give_the_body_back_in_bounded_slices(encoding: bytes) -> None:
    body = json.dumps({"text": "x" * 300_000}).encode()
    if encoding == b"gzip":
        data = gzip.compress(body)
    elif encoding == b"deflate":
        data = zlib.compress(body)
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = packer.compress(body) + packer.flush()
        encoding = b"deflate"
    decode = decoder_for(encoding)
    assert callable(decode)
    slices = [s for i in range(0, len(data), 100) for s in decode(data[i : i + 100])]
    assert b"".join(slices) == body and max(map(len, slices)) <= 65_536
    assert decoder_for(b"identity") is None and decoder_for(None) is None and decoder_for(b"br") is False


def _llm_samples(rec: Recorder) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in rec.registry.collect():
        for s in family.samples:
            if s.name.startswith(("llm_tokens", "llm_requests", "gen_ai_")) and not s.name.endswith("_created"):
                yield s.name, s.labels, s.value


def test_the_middleware_installs_the_hook_at_startup_unless_outbound_is_off() -> None:
    from exporter import PrometheusMiddleware

    was_on = transport.instrumented()
    uninstrument()
    try:
        off = Recorder(Config.from_mapping({"capture": {"outbound": False}}), CollectorRegistry())
        PrometheusMiddleware(Starlette(), recorder=off).startup()
        assert not transport.instrumented()
        middleware = PrometheusMiddleware(Starlette(), recorder=Recorder(Config(), CollectorRegistry()))
        assert not transport.instrumented()  # the constructor only stores
        middleware.startup()
        assert transport.instrumented()
    finally:
        (instrument if was_on else uninstrument)()


def test_routes_on_llm_counters_are_capped_as_routes_are() -> None:
    from exporter import LLMCall

    recorder = Recorder(Config(label_cap=2), CollectorRegistry())
    assert recorder.route("/a") == "/a"  # the HTTP side saw one route already: they share the cap
    for route in ("/a", "/b", "/c", None):
        recorder.llm(LLMCall(model="m", provider="p", input_tokens=1, route=route))
    routes = ("/a", "/b", "__overflow__", NONE)
    assert [calls(recorder, "p", "", route=r, requested="m") for r in routes] == [1, 1, 1, 1]
    assert value(recorder, "llm_exporter_label_overflow_total", label="http_route") == 1
