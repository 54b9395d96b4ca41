from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from exporter import Config, PrometheusMiddleware, Recorder
from exporter.labels import OVERFLOW, UNMATCHED
from exporter.sinks import Sink
from exporter.wiring import recorder_for

from ..support.asgi import call, http_scope, wrap
from ..support.metrics import value

DURATION = "http_server_request_duration_seconds"
_GET_STREAM = {"http_request_method": "GET", "http_route": "/stream"}


def count(registry: CollectorRegistry, route: str, status: str = "200", method: str = "GET") -> float | None:
    labels = {"http_request_method": method, "http_route": route, "http_response_status_code": status}
    return registry.get_sample_value(f"{DURATION}_count", labels)


def active(registry: CollectorRegistry, route: str, method: str = "GET") -> float | None:
    return registry.get_sample_value(
        "http_server_active_requests", {"http_request_method": method, "http_route": route}
    )


async def ok(request: Request) -> Response:
    return PlainTextResponse("hello")


async def echo(request: Request) -> Response:
    return Response(await request.body())


async def boom(request: Request) -> Response:
    raise KeyError("boom")


def starlette_app() -> Starlette:
    inner = Starlette(routes=[Route("/files/{name}", ok), Route("/", ok)])
    return Starlette(
        routes=[
            Route("/items/{item_id}", ok),
            Route("/users/{user_id:int}/orders", ok),
            Route("/echo", echo, methods=["POST"]),
            Route("/boom", boom),
            Mount("/sub", app=inner),
            Mount("/api", routes=[Route("/v1/chat/{session_id}", ok, methods=["POST"])]),
        ]
    )


@pytest.mark.parametrize(
    ("method", "path", "route", "status"),
    [
        ("GET", "/items/1", "/items/{item_id}", "200"),
        ("GET", "/items/abc", "/items/{item_id}", "200"),
        ("GET", "/users/7/orders", "/users/{user_id:int}/orders", "200"),
        ("GET", "/users/me/orders", UNMATCHED, "404"),
        ("GET", "/sub/files/a.txt", "/sub/files/{name}", "200"),
        ("POST", "/api/v1/chat/s-123", "/api/v1/chat/{session_id}", "200"),
        ("GET", "/api/v1/chat/s-123", "/api/v1/chat/{session_id}", "405"),
        ("GET", "/wp-login.php", UNMATCHED, "404"),
    ],
)
def test_route_templates_starlette(method: str, path: str, route: str, status: str) -> None:
    app, registry = wrap(starlette_app())
    with TestClient(app) as client:
        for _ in range(3):
            assert client.request(method, path).status_code == int(status)
    assert count(registry, route, status, method) == 3


def test_add_middleware_on_fastapi_with_routers_and_mounted_subapp() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(Config(), registry)
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.post("/chat/{session_id}")
    async def chat(session_id: str) -> dict[str, str]:
        return {"session": session_id}

    sub = FastAPI()

    @sub.get("/reports/{report_id}")
    async def report(report_id: int) -> dict[str, int]:
        return {"id": report_id}

    app.include_router(router)
    app.mount("/admin", sub)
    app.add_middleware(PrometheusMiddleware, recorder=recorder)
    with TestClient(app) as client:
        assert client.post("/v1/chat/abc").json() == {"session": "abc"}
        assert client.post("/v1/chat/def").status_code == 200
        assert client.get("/admin/reports/5").json() == {"id": 5}
        assert client.get("/nothing/here").status_code == 404
    assert count(registry, "/v1/chat/{session_id}", method="POST") == 2
    assert count(registry, "/admin/reports/{report_id}") == 1
    assert count(registry, UNMATCHED, "404") == 1


def test_a_mounted_app_behind_its_own_middleware_keeps_its_templates() -> None:
    sub = Starlette(routes=[Route("/items/{item_id}", ok)])
    static = PlainTextResponse("a file")  # a mounted ASGI app with no routes at all
    outer = Starlette(routes=[Mount("/v2", app=GZipMiddleware(sub)), Mount("/static", app=static)])
    app, registry = wrap(outer)
    with TestClient(app) as client:
        assert client.get("/v2/items/1").text == "hello"
        assert client.get("/v2/nothing").status_code == 404
        assert client.get("/static/logo.png").text == "a file"
    assert count(registry, "/v2/items/{item_id}") == 1
    assert count(registry, UNMATCHED, "404") == 1
    assert count(registry, "/static/{path:path}") == 1


def test_without_config_the_middleware_reads_the_file_and_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "llm-exporter.yaml").write_text("label_cap: 7\nlabels: {service: chat}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLM_EXPORTER_METRICS_PATH", "/internal/metrics")
    registry = CollectorRegistry()
    app = PrometheusMiddleware(starlette_app(), registry=registry, exclude_paths=["/health"])
    cfg = app.config
    assert (cfg.label_cap, cfg.labels, cfg.metrics_path) == (7, {"service": "chat"}, "/internal/metrics")
    assert app.config.exclude_paths == ("/health",)  # keyword options on top
    with TestClient(app) as client:
        client.get("/items/1")
        text = client.get("/internal/metrics").text
    labels = 'http_request_method="GET",http_response_status_code="200",http_route="/items/{item_id}",service="chat"'
    assert f"http_server_request_duration_seconds_count{{{labels}}} 1.0" in text.splitlines()


def test_a_failing_sink_never_fails_the_request_and_the_gauge_comes_back() -> None:
    class Broken(Sink):
        def on_active(self, method: str, route: str, delta: int) -> None:
            raise RuntimeError("sink bug")

    app, registry = wrap(starlette_app())
    app.recorder.add_sink(Broken())
    with TestClient(app) as client:
        assert client.get("/items/1").status_code == 200
    assert count(registry, "/items/{item_id}") == 1
    assert active(registry, "/items/{item_id}") == 0


def test_without_config_a_registrys_recorder_is_reused() -> None:
    registry = CollectorRegistry()
    rec = recorder_for(registry, Config.from_mapping({"labels": {"service": "chat"}}))
    app = PrometheusMiddleware(starlette_app(), registry=registry)
    assert app.recorder is rec and app.config.labels == {"service": "chat"}


def test_root_path_is_not_part_of_the_route() -> None:
    app, registry = wrap(starlette_app())
    with TestClient(app, root_path="/prefix") as client:
        assert client.get("/items/9").status_code == 200
    assert count(registry, "/items/{item_id}") == 1


def test_plain_asgi_app_with_patterns_and_with_resolver() -> None:
    async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app, registry = wrap(raw, route_patterns=["/orders/{order_id}", "/static/{path:path}"])
    client = TestClient(app)  # a raw app without lifespan support
    client.get("/orders/1")
    client.get("/orders/2")
    client.get("/static/css/site.css")
    client.get("/other")
    assert count(registry, "/orders/{order_id}") == 2
    assert count(registry, "/static/{path:path}") == 1
    assert count(registry, UNMATCHED) == 1

    registry = CollectorRegistry()
    resolved = PrometheusMiddleware(
        raw,
        recorder=Recorder(Config(), registry),
        route_resolver=lambda scope: "/by-resolver" if scope["path"].startswith("/r") else None,
    )
    client = TestClient(resolved)
    client.get("/r/1")
    client.get("/x")
    assert count(registry, "/by-resolver") == 1
    assert count(registry, UNMATCHED) == 1


def test_sizes_exact() -> None:
    app, registry = wrap(starlette_app())
    with TestClient(app) as client:
        assert client.post("/echo", content=b"x" * 300).content == b"x" * 300
    labels = {"http_request_method": "POST", "http_route": "/echo", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_request_body_size_bytes_sum", labels) == 300
    assert registry.get_sample_value("http_server_response_body_size_bytes_sum", labels) == 300
    assert registry.get_sample_value("http_server_request_body_size_bytes_bucket", {**labels, "le": "256.0"}) == 0
    assert registry.get_sample_value("http_server_request_body_size_bytes_bucket", {**labels, "le": "1024.0"}) == 1


def test_streaming_duration_ends_at_last_chunk_and_ttfb() -> None:
    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            for _ in range(3):
                await asyncio.sleep(0.1)
                yield b"data: x\n\n"

        async def slow_background() -> None:
            await asyncio.sleep(0.5)

        return StreamingResponse(chunks(), media_type="text/plain", background=BackgroundTask(slow_background))

    app, registry = wrap(Starlette(routes=[Route("/stream", stream)]))
    with TestClient(app) as client:
        assert client.get("/stream").content == b"data: x\n\n" * 3
    labels = {"http_request_method": "GET", "http_route": "/stream", "http_response_status_code": "200"}
    duration = registry.get_sample_value(f"{DURATION}_sum", labels)
    ttfb = registry.get_sample_value("http_server_time_to_first_byte_seconds_sum", labels)
    assert duration is not None and ttfb is not None
    assert 0.3 <= duration < 0.8  # three 0.1 s sleeps; the 0.5 s background task is not counted
    assert 0.1 <= ttfb < duration
    assert registry.get_sample_value("http_server_response_body_size_bytes_sum", labels) == 27


def test_non_streaming_response_has_no_ttfb_series() -> None:
    app, registry = wrap(starlette_app())
    with TestClient(app) as client:
        client.get("/items/1")
    labels = {"http_request_method": "GET", "http_route": "/items/{item_id}", "http_response_status_code": "200"}
    assert registry.get_sample_value("http_server_time_to_first_byte_seconds_count", labels) is None


def test_exception_recorded_as_500_reraised_and_gauge_back_to_zero() -> None:
    app, registry = wrap(starlette_app())
    with TestClient(app) as client, pytest.raises(KeyError, match="boom"):
        client.get("/boom")
    assert count(registry, "/boom", "500") == 1
    exc = {"http_request_method": "GET", "http_route": "/boom", "error_type": "KeyError"}
    assert registry.get_sample_value("http_server_exceptions_total", exc) == 1
    active = {"http_request_method": "GET", "http_route": "/boom"}
    assert registry.get_sample_value("http_server_active_requests", active) == 0


def test_active_requests_during_request() -> None:
    seen: list[float | None] = []
    registry = CollectorRegistry()

    async def slow(request: Request) -> Response:
        labels = {"http_request_method": "GET", "http_route": "/slow"}
        seen.append(registry.get_sample_value("http_server_active_requests", labels))
        return PlainTextResponse("done")

    app = PrometheusMiddleware(Starlette(routes=[Route("/slow", slow)]), recorder=Recorder(Config(), registry))
    with TestClient(app) as client:
        client.get("/slow")
    assert seen == [1.0]
    assert active(registry, "/slow") == 0


def _streaming_app() -> Starlette:
    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            for _ in range(100):
                yield b"chunk"
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks())

    return Starlette(routes=[Route("/stream", stream)])


def test_client_disconnect_asgi_2_4_send_raises() -> None:
    app, registry = wrap(_streaming_app())
    chunks = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal chunks
        if message["type"] == "http.response.body":
            chunks += 1
            if chunks == 3:
                raise OSError("client went away")

    with pytest.raises(Exception) as info:
        asyncio.run(call(app, http_scope("/stream", spec="2.4"), send=send))
    assert type(info.value).__name__ == "ClientDisconnect"
    assert count(registry, "/stream", "499") == 1
    assert count(registry, "/stream", "200") is None
    labels = {"http_request_method": "GET", "http_route": "/stream", "http_response_status_code": "499"}
    assert registry.get_sample_value("http_server_response_body_size_bytes_sum", labels) == 15
    assert active(registry, "/stream") == 0
    assert (
        registry.get_sample_value(
            "http_server_exceptions_total",
            {"http_request_method": "GET", "http_route": "/stream", "error_type": "ClientDisconnect"},
        )
        is None
    )


def _raw_stream(chunks: int, fail: BaseException | None = None) -> Any:
    """A plain ASGI app streaming ``chunks`` chunks; with ``fail``, raising it after the second one."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(chunks):
            if fail is not None and i == 2:
                raise fail
            await send({"type": "http.response.body", "body": b"chunk", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def _gone_after(n: int) -> Any:
    """A server's send that raises, as ASGI 2.4 says, an OSError from the ``n``th body message on."""
    sent = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            sent += 1
            if sent >= n:
                raise OSError("client went away")

    return send


def test_client_disconnect_raised_through_a_plain_asgi_app_is_499() -> None:
    app, registry = wrap(_raw_stream(10), route_patterns=["/stream"])
    with pytest.raises(OSError, match="^client went away$"):
        asyncio.run(call(app, http_scope("/stream"), send=_gone_after(4)))
    assert count(registry, "/stream", "499") == 1
    assert count(registry, "/stream", "200") is None
    assert registry.get_sample_value("http_server_exceptions_total", {**_GET_STREAM, "error_type": "OSError"}) is None


def test_client_disconnect_behind_two_middlewares_is_499_in_both() -> None:
    inner, inner_registry = wrap(_raw_stream(10), route_patterns=["/stream"])
    outer, outer_registry = wrap(inner, route_patterns=["/stream"])
    with pytest.raises(OSError, match="^client went away$"):
        asyncio.run(call(outer, http_scope("/stream"), send=_gone_after(3)))
    assert count(inner_registry, "/stream", "499") == 1
    assert count(outer_registry, "/stream", "499") == 1


class _CompiledSend:
    """A send with no code object of its own, as a compiled server's is: which frame raised is unknown."""

    def __init__(self, gone_after: int) -> None:
        self.send = _gone_after(gone_after)

    def __call__(self, message: dict[str, Any]) -> Any:
        return self.send(message)


def test_a_send_without_python_code_counts_any_oserror_mid_stream_as_gone() -> None:
    app, registry = wrap(_raw_stream(10, fail=ConnectionResetError("reset")), route_patterns=["/stream"])
    with pytest.raises(ConnectionResetError):
        asyncio.run(app(http_scope("/stream"), _no_body, _CompiledSend(99)))
    assert count(registry, "/stream", "499") == 1
    assert count(registry, "/stream", "500") is None


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_an_oserror_of_the_apps_own_mid_stream_is_a_500() -> None:
    # An upstream connection reset (aiohttp's ClientOSError is an OSError) is the server's failure.
    app, registry = wrap(_raw_stream(10, fail=ConnectionResetError("upstream reset")), route_patterns=["/stream"])
    with pytest.raises(ConnectionResetError):
        asyncio.run(call(app, http_scope("/stream")))
    assert count(registry, "/stream", "500") == 1
    assert count(registry, "/stream", "499") is None
    exc = {**_GET_STREAM, "error_type": "ConnectionResetError"}
    assert registry.get_sample_value("http_server_exceptions_total", exc) == 1


def test_client_disconnect_asgi_2_0_disconnect_message() -> None:
    app, registry = wrap(_streaming_app())
    asked = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        if asked == 1:
            await asyncio.sleep(0.035)
        return {"type": "http.disconnect"}

    asyncio.run(call(app, http_scope("/stream", spec="2.0"), receive=receive))
    assert count(registry, "/stream", "499") == 1
    assert active(registry, "/stream") == 0


def test_cancelled_request_is_499_and_gauge_back_to_zero() -> None:
    async def hang(request: Request) -> Response:
        await asyncio.sleep(10)
        return PlainTextResponse("never")

    app, registry = wrap(Starlette(routes=[Route("/hang", hang)]))

    async def main() -> None:
        task = asyncio.ensure_future(call(app, http_scope("/hang")))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert count(registry, "/hang", "499") == 1
    assert active(registry, "/hang") == 0


def test_label_cap_overflow() -> None:
    async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    # Each request gets its own route from the resolver: the cap of 3 keeps 3 and folds the rest.
    app, registry = wrap(raw, label_cap=3)
    app.route_resolver.resolver = lambda scope: scope["path"]
    client = TestClient(app)  # a raw app without lifespan support
    for i in range(5):
        client.get(f"/r{i}")
    for i in range(3):
        assert count(registry, f"/r{i}") == 1
    assert count(registry, OVERFLOW) == 2
    assert registry.get_sample_value("llm_exporter_label_overflow_total", {"label": "http_route"}) == 2


def test_label_cap_counts_every_folded_request_of_a_starlette_app() -> None:
    routes = [Route(f"/r{i}/{{id}}", ok) for i in range(4)]
    app, registry = wrap(Starlette(routes=routes), label_cap=3)
    with TestClient(app) as client:
        for i in range(3):
            client.get(f"/r{i}/1")
        for i in range(5):
            client.get(f"/r3/{i % 2}")  # the same two paths again and again: each request folded and counted
    for i in range(3):
        assert count(registry, f"/r{i}/{{id}}") == 1
    assert count(registry, OVERFLOW) == 5
    assert registry.get_sample_value("llm_exporter_label_overflow_total", {"label": "http_route"}) == 5


def test_exclusions_and_metrics_endpoint() -> None:
    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    app, registry = wrap(Starlette(routes=[Route("/health", health), Route("/items/{i}", ok)]))
    with TestClient(app) as client:
        assert client.get("/health").text == "ok"
        client.get("/items/1")
        body = client.get("/metrics").text
    assert 'http_route="/items/{i}"' in body
    assert count(registry, "/health") is None
    assert count(registry, "/metrics") is None
    assert count(registry, UNMATCHED) is None

    app, registry = wrap(Starlette(routes=[Route("/health", health)]), exclude_paths=["/health", "/ignored"])
    with TestClient(app) as client:
        assert client.get("/ignored").status_code == 404
    assert count(registry, UNMATCHED, "404") is None


def test_custom_metrics_path() -> None:
    app, registry = wrap(starlette_app(), metrics_path="/internal/metrics")
    with TestClient(app) as client:
        client.get("/items/1")
        assert "http_server_request_duration_seconds_count" in client.get("/internal/metrics").text
        assert client.get("/metrics").status_code == 404


def test_unknown_method_is_other() -> None:
    app, registry = wrap(starlette_app())
    with TestClient(app) as client:
        client.request("FOOBAR", "/items/1")
    assert count(registry, "/items/{item_id}", "405", "_OTHER") == 1


def test_static_labels() -> None:
    app, registry = wrap(starlette_app(), labels={"service": "chat", "env": "prod"})
    with TestClient(app) as client:
        client.get("/items/1")
    labels = {
        "http_request_method": "GET",
        "http_route": "/items/{item_id}",
        "http_response_status_code": "200",
        "service": "chat",
        "env": "prod",
    }
    assert registry.get_sample_value(f"{DURATION}_count", labels) == 1


def test_websocket_and_lifespan_pass_through() -> None:
    events: list[str] = []

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        events.append("startup")
        yield
        events.append("shutdown")

    inner = Starlette(routes=[WebSocketRoute("/ws", ws)], lifespan=lifespan)
    app, registry = wrap(inner)
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as sock:
            sock.send_text("ping")
            assert sock.receive_text() == "ping"
    assert events == ["startup", "shutdown"]
    assert all(not m.samples for m in registry.collect() if m.name == DURATION)


def test_options_are_validated_as_config() -> None:
    from exporter import ConfigError

    with pytest.raises(ConfigError) as info:
        PrometheusMiddleware(starlette_app(), registry=CollectorRegistry(), label_cap="many")
    assert str(info.value) == "PrometheusMiddleware(...): label_cap: expected an integer, got str 'many'"


def test_a_recording_failure_never_fails_the_request() -> None:
    app, registry = wrap(starlette_app())

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug in a sink")

    app.recorder.http = broken  # type: ignore[method-assign]
    with TestClient(app) as client:
        assert client.get("/items/1").text == "hello"


def test_handlers_see_the_middleware_recorder() -> None:
    from exporter.context import current_recorder

    seen: list[Recorder] = []

    async def handler(request: Request) -> Response:
        seen.append(current_recorder())
        return PlainTextResponse("x")

    app, _ = wrap(Starlette(routes=[Route("/x", handler)]))
    with TestClient(app) as client:
        client.get("/x")
    assert seen == [app.recorder]


# -- zero-code capture through the middleware -----------------------------------------------------------

CHAT_JSON = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}},
}


def _llm(
    registry: CollectorRegistry,
    name: str,
    token_type: str,
    model: str = "gpt-4o-mini-2024-07-18",
    response: str = "gpt-4o-mini-2024-07-18",
) -> float | None:
    labels = {"gen_ai_provider_name": "openai", "gen_ai_request_model": model, "gen_ai_response_model": response}
    labels["gen_ai_token_type"] = token_type
    if name == "llm_cost_usd_total":
        labels["cost_source"] = "estimated"
    return value(registry, name, **labels)


def test_capture_of_a_json_chat_completion() -> None:
    from starlette.responses import JSONResponse

    async def chat(request: Request) -> Response:
        await request.json()  # a gateway reads the request it forwards; the middleware sees it go by
        return JSONResponse(CHAT_JSON)

    app, registry = wrap(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]))
    with TestClient(app) as client:
        asked = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        assert client.post("/v1/chat/completions", json=asked).json() == CHAT_JSON
        # A request that names no model: the answer's model stands in for it.
        assert client.post("/v1/chat/completions", json={"messages": []}).json() == CHAT_JSON
    # The model asked for (from the request body) and the one that answered, each in its label.
    assert _llm(registry, "llm_tokens_total", "input", "gpt-4o-mini") == 600
    assert _llm(registry, "llm_tokens_total", "cache_read", "gpt-4o-mini") == 400
    assert _llm(registry, "llm_tokens_total", "output", "gpt-4o-mini") == 200
    # gpt-4o-mini: $0.15 / 1M input, $0.075 / 1M cached input, $0.60 / 1M output.
    assert _llm(registry, "llm_cost_usd_total", "input", "gpt-4o-mini") == pytest.approx(600 * 0.15 / 1e6, abs=1e-15)
    assert _llm(registry, "llm_cost_usd_total", "cache_read", "gpt-4o-mini") == pytest.approx(400 * 0.075 / 1e6)
    assert _llm(registry, "llm_cost_usd_total", "output", "gpt-4o-mini") == pytest.approx(200 * 0.60 / 1e6, abs=1e-15)
    assert _llm(registry, "llm_tokens_total", "input") == 600


def test_capture_of_an_sse_stream_with_ttft() -> None:
    import json

    def event(delta: dict[str, Any], usage: dict[str, int] | None = None) -> bytes:
        chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta}]}
        if usage is not None:
            chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [], "usage": usage}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    async def stream(request: Request) -> Response:
        async def events() -> Any:
            yield event({"role": "assistant", "content": ""})
            await asyncio.sleep(0.2)
            for word in ("Hello", " there"):
                yield event({"content": word})
                await asyncio.sleep(0.05)
            yield event({}, {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app, registry = wrap(Starlette(routes=[Route("/v1/chat/completions", stream, methods=["POST"])]))
    with TestClient(app) as client:
        assert b"[DONE]" in client.post("/v1/chat/completions", json={"stream": True}).content
    assert _llm(registry, "llm_tokens_total", "input", "gpt-4o-mini", "gpt-4o-mini") == 30
    assert _llm(registry, "llm_tokens_total", "output", "gpt-4o-mini", "gpt-4o-mini") == 7
    ttft = {
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-4o-mini",
        "gen_ai_response_model": "gpt-4o-mini",
    }
    assert registry.get_sample_value("gen_ai_client_time_to_first_token_seconds_count", ttft) == 1
    first_token = registry.get_sample_value("gen_ai_client_time_to_first_token_seconds_sum", ttft)
    assert first_token is not None and 0.2 <= first_token < 0.3  # the first content delta, not the role chunk
    duration = {**ttft, "gen_ai_operation_name": "chat", "error_type": ""}
    total = registry.get_sample_value("gen_ai_client_operation_duration_seconds_sum", duration)
    assert total is not None and total >= 0.3


def test_capture_can_be_turned_off() -> None:
    from starlette.responses import JSONResponse

    async def chat(request: Request) -> Response:
        return JSONResponse(CHAT_JSON)

    app, registry = wrap(Starlette(routes=[Route("/chat", chat)]), capture={"enabled": False})
    with TestClient(app) as client:
        client.get("/chat")
    assert _llm(registry, "llm_tokens_total", "input") is None
    assert count(registry, "/chat") == 1


def test_request_body_the_app_never_reads_counts_no_bytes() -> None:
    # Only the bytes that arrived through receive() count: Content-Length is the client's claim.
    app, registry = wrap(starlette_app())
    with TestClient(app) as client:
        client.post("/items/1", content=b"y" * 500)  # 405: the handler never reads the body
    labels = {"http_request_method": "POST", "http_route": "/items/{item_id}", "http_response_status_code": "405"}
    assert registry.get_sample_value("http_server_request_body_size_bytes_sum", labels) == 0
    assert registry.get_sample_value("http_server_request_body_size_bytes_count", labels) == 1


def test_default_registry_handlers_see_the_default_recorder() -> None:
    from exporter.context import current_recorder

    seen: list[Recorder] = []

    async def handler(request: Request) -> Response:
        seen.append(current_recorder())
        return PlainTextResponse("x")

    app = PrometheusMiddleware(Starlette(routes=[Route("/default-registry", handler)]))
    with TestClient(app) as client:
        client.get("/default-registry")
    assert seen == [app.recorder]
    assert app.is_default


def test_metrics_and_exclusions_under_root_path() -> None:
    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    app, registry = wrap(Starlette(routes=[Route("/health", health), Route("/items/{i}", ok)]))
    with TestClient(app, root_path="/api") as client:
        client.get("/items/1")
        assert client.get("/health").text == "ok"
        assert 'http_route="/items/{i}"' in client.get("/metrics").text
    assert count(registry, "/items/{i}") == 1
    assert count(registry, UNMATCHED) is None


def test_middleware_on_an_app_mounted_inside_another() -> None:
    inner, registry = wrap(Starlette(routes=[Route("/items/{item_id}", ok)]))
    outer = Starlette(routes=[Mount("/v2", app=inner)])
    with TestClient(outer) as client:
        assert client.get("/v2/items/1").text == "hello"
        assert client.get("/v2/nope").status_code == 404
    assert count(registry, "/items/{item_id}") == 1
    assert count(registry, UNMATCHED, "404") == 1
    # An outer middleware sees through the inner one to its routes.
    outer_wrapped, outer_registry = wrap(Starlette(routes=[Mount("/v2", app=inner)]))
    with TestClient(outer_wrapped) as client:
        client.get("/v2/items/7")
    assert count(outer_registry, "/v2/items/{item_id}") == 1


def test_exception_in_the_middle_of_a_stream_is_a_500() -> None:
    async def broken(request: Request) -> Response:
        async def chunks() -> Any:
            yield b"data: first\n\n"
            raise RuntimeError("upstream model went away")

        return StreamingResponse(chunks(), media_type="text/event-stream")

    app, registry = wrap(Starlette(routes=[Route("/broken", broken)]))
    with TestClient(app) as client, pytest.raises(RuntimeError):
        client.get("/broken")
    assert count(registry, "/broken", "500") == 1
    assert count(registry, "/broken", "200") is None
    exc = {"http_request_method": "GET", "http_route": "/broken", "error_type": "RuntimeError"}
    assert registry.get_sample_value("http_server_exceptions_total", exc) == 1


# -- what a request leaves behind ------------------------------------------------------------------------


class _ServerCycle:
    """A server's per-request object, as uvicorn's RequestResponseCycle: the app gets its bound methods, and
    the last send schedules a keep-alive timer, which copies the context current then (the request's)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.timers: list[asyncio.TimerHandle] = []
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.timers.append(self.loop.call_later(60, _keep_alive_expired))


def _keep_alive_expired() -> None:
    pass


def test_a_copy_of_the_requests_context_keeps_none_of_the_servers_objects() -> None:
    import gc
    import weakref

    from exporter.context import handling_var

    app, registry = wrap(starlette_app())

    async def one_request() -> tuple[weakref.ref[_ServerCycle], asyncio.TimerHandle]:
        cycle = _ServerCycle(asyncio.get_running_loop())
        await app(http_scope("/items/1"), cycle.receive, cycle.send)
        return weakref.ref(cycle), cycle.timers[0]

    async def main() -> None:
        gc.disable()  # freed by reference counting alone, as uvicorn's cycles are bare
        try:
            cycle, timer = await one_request()
            assert cycle() is None
            # The timer's copy still names the request's route, for what a handler left running.
            handling = timer._context.run(handling_var.get)  # type: ignore[attr-defined]
            assert handling is not None
            assert (handling.route, handling.outbound_calls) == ("/items/{item_id}", 0)
            timer.cancel()
        finally:
            gc.enable()

    asyncio.run(main())
    assert count(registry, "/items/{item_id}") == 1.0


def test_a_task_the_handler_left_behind_is_told_the_response_is_over() -> None:
    left: dict[str, Any] = {}

    async def handler(request: Request) -> Response:
        left["receive"], left["send"] = request.receive, request._send
        return PlainTextResponse("x")

    app, registry = wrap(Starlette(routes=[Route("/x", handler)]))

    async def main() -> None:
        await call(app, http_scope("/x"))
        assert await left["receive"]() == {"type": "http.disconnect"}
        with pytest.raises(RuntimeError, match="'http.response.body' sent after the app returned"):
            await left["send"]({"type": "http.response.body", "body": b"late"})

    asyncio.run(main())
    assert count(registry, "/x") == 1.0
