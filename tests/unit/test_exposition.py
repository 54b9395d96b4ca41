"""The ``/metrics`` endpoint: formats, gzip, ``name[]``, auth, methods, lifespan, and registry injection.

One uvicorn server (module scope) serves several ``metrics_app`` instances over a registry with known
values, so every assertion is on exact numbers parsed back from the exposition.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from exporter import Config, PrometheusMiddleware, Recorder, metrics_app
from exporter.config import AuthConfig
from exporter.prometheus.exposition import accepts_gzip, render
from exporter.prometheus.server import start_metrics_server, stop_metrics_server
from exporter.types import Message

from ..support.metrics import text_samples, text_value, value
from ..support.servers import HOST, ThreadServer, free_port

DURATION = "http_server_request_duration_seconds"
ITEMS = {"http_request_method": "GET", "http_route": "/items/{item_id}", "http_response_status_code": "200"}
CHAT = {"http_request_method": "POST", "http_route": "/chat", "http_response_status_code": "500"}
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# What Prometheus 2.x sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
BEARER = "s3cret-token"
USER, PASSWORD = "prom", "pa:ss wörd"  # a colon and non-ASCII in the password must survive


def families(text: str) -> set[str]:
    return {f.name for f in parse_text(text)}


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    rec = Recorder(Config(), registry)
    for _ in range(3):
        rec.http("GET", "/items/{item_id}", 200, 0.2, 10, 20)
    rec.http("POST", "/chat", 500, 1.5, 0, 5)
    Counter("jobs", "Jobs done.", registry=registry).inc(7)
    return registry


@pytest.fixture(scope="module")
def server(registry: CollectorRegistry) -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/metrics", metrics_app(registry)),
            Route("/bearer", metrics_app(registry, auth=AuthConfig(bearer_token=BEARER))),
            Route("/basic", metrics_app(registry, auth=AuthConfig(basic_username=USER, basic_password=PASSWORD))),
        ]
    )
    with ThreadServer(app) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as client:
        yield client


# -- formats ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "text/plain", "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"])
def test_prometheus_text_by_default(client: httpx.Client, accept: str | None) -> None:
    r = client.get("/metrics", headers={"accept": accept} if accept else {})
    assert r.status_code == 200
    assert r.headers["content-type"] == TEXT_TYPE
    assert "# EOF" not in r.text
    assert text_value(r.text, f"{DURATION}_count", ITEMS) == 3.0
    assert text_value(r.text, f"{DURATION}_bucket", {**ITEMS, "le": "0.25"}) == 3.0
    assert text_value(r.text, f"{DURATION}_bucket", {**ITEMS, "le": "0.1"}) == 0.0
    assert text_value(r.text, f"{DURATION}_sum", CHAT) == 1.5
    assert text_value(r.text, "jobs_total") == 7.0
    assert r.headers["vary"] == "accept, accept-encoding"


@pytest.mark.parametrize("accept", [OPENMETRICS, PROMETHEUS_ACCEPT, "application/openmetrics-text"])
def test_openmetrics_when_accepted(client: httpx.Client, accept: str) -> None:
    r = client.get("/metrics", headers={"accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(OPENMETRICS)
    assert r.text.endswith("# EOF\n")
    assert text_value(r.text, f"{DURATION}_count", ITEMS, openmetrics=True) == 3.0
    assert text_value(r.text, f"{DURATION}_count", CHAT, openmetrics=True) == 1.0
    assert text_value(r.text, "jobs_total", openmetrics=True) == 7.0


@pytest.mark.parametrize("accept", [None, OPENMETRICS])
def test_gzip_when_accepted(client: httpx.Client, accept: str | None) -> None:
    headers = {"accept": accept} if accept else {}
    plain = client.get("/metrics", headers={**headers, "accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with client.stream("GET", "/metrics", headers={**headers, "accept-encoding": "gzip, deflate"}) as r:
        raw = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) == len(raw)
    assert gzip.decompress(raw) == plain.content
    assert len(raw) < len(plain.content)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("deflate, GZIP", True),
        ("gzip;q=0.5", True),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        ("deflate, br", False),
        ("", False),
    ],
)
def test_accept_encoding_qualities(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_gzip_refused_with_zero_quality(client: httpx.Client) -> None:
    r = client.get("/metrics", headers={"accept-encoding": "gzip;q=0"})
    assert "content-encoding" not in r.headers
    assert text_value(r.text, "jobs_total") == 7.0


# -- name[] -------------------------------------------------------------------------------------------------


def test_name_filter_selects_whole_families(client: httpx.Client) -> None:
    r = client.get("/metrics", params=[("name[]", DURATION), ("name[]", "jobs")])
    assert r.status_code == 200
    # The text format shows ``_created`` as families of their own.
    assert families(r.text) == {DURATION, f"{DURATION}_created", "jobs", "jobs_created"}
    got = text_samples(r.text)
    assert got[(f"{DURATION}_count", tuple(sorted(ITEMS.items())))] == 3.0
    assert got[(f"{DURATION}_bucket", tuple(sorted({**CHAT, "le": "+Inf"}.items())))] == 1.0
    assert got[("jobs_total", ())] == 7.0
    assert {name for name, _ in got} == {f"{DURATION}_{s}" for s in ("bucket", "count", "sum", "created")} | {
        "jobs_total",
        "jobs_created",
    }


def test_name_filter_by_sample_name(client: httpx.Client) -> None:
    r = client.get("/metrics", params={"name[]": f"{DURATION}_count"})
    got = text_samples(r.text)
    assert got == {
        (f"{DURATION}_count", tuple(sorted(ITEMS.items()))): 3.0,
        (f"{DURATION}_count", tuple(sorted(CHAT.items()))): 1.0,
    }


def test_name_filter_unknown_name_is_empty(client: httpx.Client) -> None:
    r = client.get("/metrics", params={"name[]": "no_such_metric"})
    assert r.status_code == 200
    assert r.text == ""


def test_name_filter_with_openmetrics(client: httpx.Client) -> None:
    r = client.get("/metrics", params={"name[]": "jobs"}, headers={"accept": OPENMETRICS})
    assert r.text.startswith("# HELP jobs Jobs done.\n# TYPE jobs counter\n")
    assert r.text.endswith("# EOF\n")
    assert {f.name for f in parse_openmetrics(r.text)} == {"jobs"}


# -- auth -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Bearer {BEARER}x", f"Basic {BEARER}", BEARER, "Bearer", ""],
)
def test_bearer_token_required(client: httpx.Client, authorization: str | None) -> None:
    r = client.get("/bearer", headers={"authorization": authorization} if authorization is not None else {})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "jobs" not in r.text


@pytest.mark.parametrize("authorization", [f"Bearer {BEARER}", f"bearer {BEARER}", f"BEARER  {BEARER}"])
def test_bearer_token_accepted(client: httpx.Client, authorization: str) -> None:
    r = client.get("/bearer", headers={"authorization": authorization})
    assert r.status_code == 200
    assert text_value(r.text, "jobs_total") == 7.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [None, basic(USER, "wrong"), basic("other", PASSWORD), basic(USER, PASSWORD + "x"), f"Bearer {BEARER}", "Basic !!"],
)
def test_basic_auth_required(client: httpx.Client, authorization: str | None) -> None:
    r = client.get("/basic", headers={"authorization": authorization} if authorization is not None else {})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="metrics"'


def test_basic_auth_accepted(client: httpx.Client) -> None:
    r = client.get("/basic", auth=(USER, PASSWORD))
    assert r.status_code == 200
    assert text_value(r.text, f"{DURATION}_count", ITEMS) == 3.0
    lower_scheme = "basic " + basic(USER, PASSWORD).split(" ", 1)[1]
    assert client.get("/basic", headers={"authorization": lower_scheme}).status_code == 200


def test_no_auth_configured_means_open(client: httpx.Client) -> None:
    assert client.get("/metrics", headers={"authorization": "Bearer anything"}).status_code == 200


# -- methods ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_head_has_headers_and_no_body(client: httpx.Client, encoding: str) -> None:
    with client.stream("GET", "/metrics", headers={"accept-encoding": encoding}) as get:
        raw = b"".join(get.iter_raw())
    head = client.head("/metrics", headers={"accept-encoding": encoding})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == TEXT_TYPE
    assert head.headers.get("content-encoding") == get.headers.get("content-encoding")
    assert int(head.headers["content-length"]) == len(raw)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_405(client: httpx.Client, method: str) -> None:
    r = client.request(method, "/metrics", content=b"x")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_405_only_after_auth(client: httpx.Client) -> None:
    assert client.post("/bearer").status_code == 401
    assert client.post("/bearer", headers={"authorization": f"Bearer {BEARER}"}).status_code == 405


def test_render_directly(registry: CollectorRegistry) -> None:
    body, headers = render(registry, OPENMETRICS, "gzip", ["jobs"])
    assert dict(headers)[b"content-encoding"] == b"gzip"
    assert dict(headers)[b"content-length"] == str(len(body)).encode()
    assert text_value(gzip.decompress(body).decode(), "jobs_total", openmetrics=True) == 7.0


# -- lifespan and other scopes ------------------------------------------------------------------------------------


@contextlib.contextmanager
def strict_uvicorn(app: Any) -> Iterator[tuple[uvicorn.Server, str]]:
    """uvicorn with ``lifespan="on"``: a lifespan error fails startup instead of being ignored."""
    port = free_port()
    config = uvicorn.Config(app, host=HOST, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during startup (lifespan failed)"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield server, f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert not thread.is_alive()


def test_lifespan_as_root_app_under_uvicorn(registry: CollectorRegistry) -> None:
    with strict_uvicorn(metrics_app(registry)) as (server, url):
        r = httpx.get(f"{url}/anything", timeout=10)
        assert r.status_code == 200
        assert text_value(r.text, "jobs_total") == 7.0
    lifespan = server.lifespan
    assert (lifespan.startup_failed, lifespan.shutdown_failed, lifespan.error_occurred) == (False, False, False)


def test_mounted_in_starlette_under_uvicorn(registry: CollectorRegistry) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def home(request: Request) -> Response:
        return PlainTextResponse("home")

    app = Starlette(routes=[Route("/", home), Mount("/metrics", app=metrics_app(registry))], lifespan=lifespan)
    with strict_uvicorn(app) as (server, url):
        assert httpx.get(f"{url}/", timeout=10).text == "home"
        r = httpx.get(f"{url}/metrics/", timeout=10)
        assert r.status_code == 200
        assert text_value(r.text, f"{DURATION}_count", CHAT) == 1.0
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]
    assert server.lifespan.error_occurred is False


def test_lifespan_messages_directly() -> None:
    app = metrics_app(CollectorRegistry())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def test_websocket_is_refused() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(metrics_app(CollectorRegistry())({"type": "websocket", "path": "/metrics"}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


# -- the injected registry ------------------------------------------------------------------------------------


def snapshot(registry: CollectorRegistry, names: set[str]) -> dict[Any, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        if family.name in names
        for s in family.samples
    }


def test_every_metric_honours_the_injected_registry() -> None:
    from exporter import llm

    async def chat(request: Request) -> Response:
        await request.body()
        llm.record("gpt-4o", provider="openai", input_tokens=100, output_tokens=40, duration=0.5)
        llm.confidence(0.9, label="booking", model="gpt-4o")
        llm.evaluation("faithfulness", 0.8, model="gpt-4o")
        llm.feedback(4, model="gpt-4o")
        llm.event("appointment_requested")
        return PlainTextResponse("ok")

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks())

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    ours = {m.name for m in Recorder(Config(), CollectorRegistry()).registry.collect()}
    before = snapshot(REGISTRY, ours)  # other tests may use the global registry; this one must not change it
    fresh = CollectorRegistry()
    app = Starlette(routes=[Route("/chat", chat, methods=["POST"]), Route("/stream", stream), Route("/boom", boom)])
    wrapped = PrometheusMiddleware(app, registry=fresh, labels={"service": "t"})
    # No keep-alive: uvicorn drops the connection after an app exception, and a reused one would be reset.
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with ThreadServer(wrapped) as srv, httpx.Client(base_url=srv.url, timeout=10, limits=no_reuse) as client:
        assert client.post("/chat", content=b"hi").status_code == 200
        assert client.get("/stream").content == b"ab"
        assert client.get("/boom").status_code == 500
        assert client.get("/nowhere").status_code == 404
        exposition = client.get("/metrics").text
    assert snapshot(REGISTRY, ours) == before

    def get(name: str, **labels: str) -> float | None:
        return value(fresh, name, **labels, service="t")

    def http(method: str, route: str, status: str) -> dict[str, str]:
        return {"http_request_method": method, "http_route": route, "http_response_status_code": status}

    post = http("POST", "/chat", "200")
    assert get(f"{DURATION}_count", **post) == 1.0
    assert get("http_server_request_body_size_bytes_sum", **post) == 2.0
    assert get("http_server_response_body_size_bytes_sum", **post) == 2.0
    streamed = http("GET", "/stream", "200")
    assert get("http_server_time_to_first_byte_seconds_count", **streamed) == 1.0
    assert get(f"{DURATION}_count", **http("GET", "/boom", "500")) == 1.0
    assert (
        get("http_server_exceptions_total", http_request_method="GET", http_route="/boom", error_type="RuntimeError")
        == 1
    )
    assert get("http_server_active_requests", http_request_method="GET", http_route="/boom") == 0.0
    assert get("http_server_active_requests", http_request_method="POST", http_route="/chat") == 0.0
    assert get(f"{DURATION}_count", **http("GET", "__unmatched__", "404")) == 1.0
    model = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "gen_ai_response_model": ""}
    assert get("llm_tokens_total", **model, gen_ai_token_type="input") == 100.0
    assert get("llm_tokens_total", **model, gen_ai_token_type="output") == 40.0
    assert get("llm_requests_total", **model, outcome="ok") == 1.0
    assert (
        get("gen_ai_client_operation_duration_seconds_sum", **model, gen_ai_operation_name="chat", error_type="") == 0.5
    )
    assert get("llm_confidence_count", gen_ai_request_model="gpt-4o", label="booking") == 1.0
    assert get("llm_predictions_total", gen_ai_request_model="gpt-4o", label="booking") == 1.0
    assert get("llm_evaluation_score_sum", evaluation="faithfulness", gen_ai_request_model="gpt-4o") == 0.8
    assert get("llm_feedback_rating_sum", gen_ai_request_model="gpt-4o") == 4.0
    assert get("llm_events_total", event="appointment_requested") == 1.0
    assert (
        get("llm_exporter_price_data_timestamp_seconds", source="genai-prices")
        == Recorder(Config(), CollectorRegistry()).pricing.snapshot_timestamp
    )
    # The middleware's /metrics shows the injected registry, not the process-wide one.
    assert text_value(exposition, f"{DURATION}_count", {**post, "service": "t"}) == 1.0
    assert "python_gc_objects_collected_total" not in exposition


def test_metrics_app_of_a_recorder_uses_its_registry_and_auth() -> None:
    fresh = CollectorRegistry()
    rec = Recorder(Config.from_mapping({"auth": {"bearer_token": "t0k"}}), fresh)
    rec.event("signup", count=3)
    app = metrics_app(recorder=rec)
    transport = httpx.ASGITransport(app=app)

    async def scrape() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/"), await client.get("/", headers={"authorization": "Bearer t0k"})

    denied, allowed = asyncio.run(scrape())
    assert denied.status_code == 401
    assert text_value(allowed.text, "llm_events_total", {"event": "signup"}) == 3.0


# -- a separate port ------------------------------------------------------------------------------------------


def test_metrics_server_on_its_own_port(registry: CollectorRegistry) -> None:
    port = free_port()
    thread = start_metrics_server(port, app=metrics_app(registry, auth=AuthConfig(bearer_token=BEARER)))
    try:
        assert start_metrics_server(port) is thread  # once per port
        url = f"http://{HOST}:{port}/metrics"
        assert httpx.get(url, timeout=10).status_code == 401
        r = httpx.get(url, headers={"authorization": f"Bearer {BEARER}"}, timeout=10)
        assert text_value(r.text, "jobs_total") == 7.0
    finally:
        stop_metrics_server(port)
    assert not thread.is_alive()
    with socket.socket() as s:
        s.bind((HOST, port))  # released


def test_metrics_server_port_in_use_is_an_error(registry: CollectorRegistry) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"^cannot serve metrics on {HOST}:{port}: Address already in use$"):
            start_metrics_server(port, app=metrics_app(registry))


def test_middleware_metrics_port_serves_the_injected_registry() -> None:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    fresh = CollectorRegistry()
    port = free_port()
    app = Starlette(routes=[Route("/", ok)])
    wrapped = PrometheusMiddleware(app, registry=fresh, metrics_port=port)
    try:
        with ThreadServer(wrapped) as srv:
            assert httpx.get(f"{srv.url}/", timeout=10).text == "ok"
            assert httpx.get(f"{srv.url}/metrics", timeout=10).status_code == 404  # the app's, not ours
        # Scraped once the app server has stopped, so every request has been recorded.
        text = httpx.get(f"http://{HOST}:{port}/metrics", timeout=10).text
        assert text_value(text, f"{DURATION}_count", {**ITEMS, "http_route": "/"}) == 1.0
        assert (
            text_value(
                text, f"{DURATION}_count", {**ITEMS, "http_route": "__unmatched__", "http_response_status_code": "404"}
            )
            is None
        )
    finally:
        stop_metrics_server(port)
