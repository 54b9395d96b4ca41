"""Outbound capture end to end: unmodified Starlette and FastAPI apps whose handlers call the official
OpenAI, Anthropic and Google SDKs, wrapped by ``llm-exporter run`` on a free port, the SDKs pointed at a
fake provider on another; and a script that only calls ``exporter.instrument()``.

What each SDK reported is what ``/metrics`` says, per provider, model and route.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..support import REPO
from ..support.cli import exporter_cmd, exporter_env, scrape
from ..support.metrics import Samples, text_samples
from ..support.providers import RATE_LIMITED, TOOL_CALLS, TOOLS, TRUNCATED, provider_app, sdk_env
from ..support.servers import HOST, ThreadServer, free_port, process

PROVIDERS = ("openai", "anthropic", "gcp.gemini")


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with ThreadServer(provider_app()) as server:
        yield server.url


def _run(target: str, provider: str, workdir: Path) -> Any:
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = exporter_cmd("run", target, "--port", str(port))
    env = exporter_env(**sdk_env(provider))
    return url, process(args, f"{url}/health", cwd=REPO, env=env, log=str(workdir / "server.log"))


@pytest.fixture(scope="module")
def starlette_url(provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, running = _run("tests.support.llm_apps:starlette_app", provider, tmp_path_factory.mktemp("starlette"))
    with running:
        yield url


@pytest.fixture(scope="module")
def fastapi_url(provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, running = _run("tests.support.llm_apps:fastapi_app", provider, tmp_path_factory.mktemp("fastapi"))
    with running:
        yield url


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def expected(calls: list[tuple[str, dict[str, Any], bool]]) -> Samples:
    """The samples the calls' reported usage makes: tokens and ok-calls per (route, provider, model), and a
    time to first token per stream."""
    out: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    for route, usage, stream in calls:
        llm = {
            "gen_ai_provider_name": usage["provider"],
            "gen_ai_request_model": usage["requested"],
            "gen_ai_response_model": usage["model"],
        }
        out[key("llm_tokens_total", **llm, gen_ai_token_type="input", http_route=route)] += usage["input"]
        out[key("llm_tokens_total", **llm, gen_ai_token_type="output", http_route=route)] += usage["output"]
        out[key("llm_requests_total", **llm, outcome="ok", http_route=route)] += 1
        if stream:
            out[key("gen_ai_client_time_to_first_token_seconds_count", **llm)] += 1
    return {k: float(v) for k, v in out.items()}


def llm_samples(samples: Samples) -> Samples:
    """The exposition's LLM call samples (what expected() predicts), without the _created timestamps."""
    names = ("llm_tokens_total", "llm_requests_total", "gen_ai_client_time_to_first_token_seconds_count")
    return {k: v for k, v in samples.items() if k[0] in names}


def _ask(client: httpx.Client, path: str, prompt: str, stream: bool) -> dict[str, Any]:
    r = client.post(path, json={"prompt": prompt, "stream": stream})
    assert r.status_code == 200, r.text
    reported: dict[str, Any] = r.json()["reported"]
    return reported


def test_starlette_async_handlers(starlette_url: str) -> None:
    calls = []
    with httpx.Client(base_url=starlette_url, timeout=30) as client:
        for i, name in enumerate(PROVIDERS * 2):
            stream = i >= len(PROVIDERS)
            calls.append(
                ("/chat/{provider}", _ask(client, f"/chat/{name}", f"prompt {i} with words " * (i + 1), stream), stream)
            )
    want = expected(calls)
    got = scrape(starlette_url, lambda s: llm_samples(s) == want)
    assert llm_samples(got) == want
    assert all(v == 0 for k, v in got.items() if k[0] == "llm_exporter_capture_errors_total")


def test_fastapi_sync_and_async_handlers(fastapi_url: str) -> None:
    calls = []
    with httpx.Client(base_url=fastapi_url, timeout=30) as client:
        for i, name in enumerate(PROVIDERS):
            for mode in ("sync", "async"):
                for stream in (False, True):
                    prompt = f"{mode} {name} {i} " + "word " * (i + int(stream))
                    calls.append((f"/{mode}/{{provider}}", _ask(client, f"/{mode}/{name}", prompt, stream), stream))
    want = expected(calls)
    got = scrape(fastapi_url, lambda s: llm_samples(s) == want)
    assert llm_samples(got) == want


def test_a_proxy_counts_each_forwarded_answer_once(starlette_url: str) -> None:
    route = "/proxy/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "through the gateway"}]}
    with httpx.Client(base_url=starlette_url, timeout=30) as client:
        answer = client.post(route, json=body).json()
        with client.stream(
            "POST", route, json={**body, "stream": True, "stream_options": {"include_usage": True}}
        ) as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    streamed = events[-1]["usage"]
    assert answer["usage"]["prompt_tokens"] == streamed["prompt_tokens"]
    llm = {
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": body["model"],
        "gen_ai_response_model": answer["model"],
    }
    calls = key("llm_requests_total", **llm, outcome="ok", http_route=route)
    got = scrape(starlette_url, lambda s: s.get(calls) == 2.0)
    assert got[calls] == 2.0  # not 4: the forwarded answers are not read again from the proxy's response
    n_in = answer["usage"]["prompt_tokens"] + streamed["prompt_tokens"]
    assert got[key("llm_tokens_total", **llm, gen_ai_token_type="input", http_route=route)] == n_in
    n_out = answer["usage"]["completion_tokens"] + streamed["completion_tokens"]
    assert got[key("llm_tokens_total", **llm, gen_ai_token_type="output", http_route=route)] == n_out


def test_tool_calls_and_finish_reasons_of_each_sdks_answers(starlette_url: str) -> None:
    # Each SDK asks the fake provider for an answer with tool calls and one cut at the token limit, whole
    # and streamed: outbound capture reads both from the provider's JSON and its SSE.
    with httpx.Client(base_url=starlette_url, timeout=30) as client:
        for name in PROVIDERS:
            for model in (TOOL_CALLS, TRUNCATED):
                for stream in (False, True):
                    body = {"prompt": "the weather in Paris", "stream": stream, "model": model}
                    assert client.post(f"/chat/{name}", json=body).status_code == 200
    want: Samples = {}
    # Gemini says STOP for an answer that asks for functions.
    asking = {"openai": "tool_calls", "anthropic": "tool_calls", "gcp.gemini": "stop"}
    for name in PROVIDERS:
        for tool in TOOLS:
            labels = {"gen_ai_provider_name": name, "gen_ai_request_model": TOOL_CALLS, "gen_ai_tool_name": tool}
            want[key("llm_tool_calls_total", **labels)] = 2.0
        for model, reason in ((TOOL_CALLS, asking[name]), (TRUNCATED, "length")):
            labels = {"gen_ai_provider_name": name, "gen_ai_request_model": model, "reason": reason}
            want[key("llm_finish_reasons_total", **labels)] = 2.0

    def outcome(samples: Samples) -> Samples:
        names = ("llm_tool_calls_total", "llm_finish_reasons_total")
        return {
            k: v
            for k, v in samples.items()
            if k[0] in names and dict(k[1])["gen_ai_request_model"] in (TOOL_CALLS, TRUNCATED)
        }

    got = scrape(starlette_url, lambda s: outcome(s) == want)
    assert outcome(got) == want
    # The streams' time per output token and gaps between chunks: one observation of the first per stream.
    tpot = [
        v
        for k, v in got.items()
        if k[0] == "llm_time_per_output_token_seconds_count"
        and dict(k[1])["gen_ai_request_model"] in (TOOL_CALLS, TRUNCATED)
    ]
    assert sum(tpot) == 2 * len(PROVIDERS)


@pytest.mark.parametrize(("name", "attempts"), [("openai", 3), ("anthropic", 3), ("gcp.gemini", 1)])
def test_a_429_is_counted_as_rate_limited(starlette_url: str, name: str, attempts: int) -> None:
    with httpx.Client(base_url=starlette_url, timeout=30) as client:
        assert client.post(f"/limited/{name}").json()["error"] is not None
    op = "generate_content" if name == "gcp.gemini" else "chat"
    # Refused: the request names the model, none answered.
    llm = {"gen_ai_provider_name": name, "gen_ai_request_model": RATE_LIMITED, "gen_ai_response_model": ""}
    errors = key(
        "gen_ai_client_operation_duration_seconds_count", **llm, gen_ai_operation_name=op, error_type="rate_limited"
    )
    got = scrape(starlette_url, lambda s: s.get(errors) == attempts)
    assert got[errors] == attempts  # each attempt of the SDK's retries is a call the provider refused
    assert got[key("llm_requests_total", **llm, outcome="error", http_route="/limited/{provider}")] == attempts


def test_a_script_with_instrument_records_the_same_numbers(provider: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.llm_script"],
        cwd=REPO,
        env=exporter_env(**sdk_env(provider)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    streams = {1, 3, 5, 6, 7, 8}  # each provider's second sync call, and the async ones
    calls = [("__none__", usage, i in streams) for i, usage in enumerate(out["reported"])]
    assert llm_samples(text_samples(out["metrics"])) == expected(calls)
