"""Outbound capture benchmark (not a test).

What the hook adds to an SDK call, against the same call without it, in one run: the official OpenAI
SDK (sync) sends through a real ``httpx2.HTTPTransport`` whose connection pool is replaced by one that
answers from memory, so the figures are the client-side work (SDK + httpx2 + hook) without the noise of a
socket. Three cases:

- a 2 KB chat-completion JSON answer (per call);
- a 200-event SSE stream (``stream_options.include_usage``), per call and per chunk;
- a POST whose answer is not LLM output (``text/plain``) and a GET: what every other request pays.

Rounds alternate hook off / on; each figure is the best of the rounds' per-call means (as timeit reports
it: the SDK's own ~0.6 ms per call varies more than the hook costs on a shared machine). The hook's own
work (``watch`` + ``feed`` + ``end``, metric updates included) is also timed alone, on the same answers.

    python bench/outbound.py [--rounds 9] [--number 400]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpcore2
import httpx2
import openai
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter import Config, Recorder, instrument, uninstrument
from exporter.capture.outbound import watch
from exporter.context import use_recorder

MODEL = "gpt-4o-mini-2024-07-18"
LIMITS = [(b"x-ratelimit-remaining-tokens", b"29000"), (b"x-ratelimit-limit-tokens", b"30000")]


def chat_json(size: int = 2048) -> bytes:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 200, "total_tokens": 320},
    }
    filler = size - len(json.dumps(base))
    base["choices"][0]["message"]["content"] = "x" * max(filler, 0)  # type: ignore[index]
    return json.dumps(base).encode()


def chat_events(n: int = 200) -> list[bytes]:
    def chunk(delta: dict[str, Any], usage: Any = None) -> bytes:
        obj = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "usage": usage}
        obj["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}] if delta else []
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f" word{i}"}) for i in range(n - 3)]
    usage = {"prompt_tokens": 120, "completion_tokens": n - 3, "total_tokens": 117 + n}
    events += [chunk({}, usage), b"data: [DONE]\n\n"]
    return events


class MemoryPool:
    """Stands for httpcore2's connection pool: every request gets the answer ``answer()`` builds."""

    def __init__(self, answer: Callable[[], httpcore2.Response]) -> None:
        self.answer = answer

    def handle_request(self, request: httpcore2.Request) -> httpcore2.Response:
        for _ in request.stream:  # the request body is sent, as a real pool would
            pass
        return self.answer()

    def close(self) -> None:
        pass


def client_for(answer: Callable[[], httpcore2.Response]) -> httpx2.Client:
    transport = httpx2.HTTPTransport()
    transport._pool = MemoryPool(answer)  # type: ignore[assignment]
    return httpx2.Client(transport=transport)


def rounds(run: Callable[[], None], number: int, count: int) -> tuple[float, float]:
    """Best per-call seconds with the hook off, and on (rounds alternate)."""
    off: list[float] = []
    on: list[float] = []
    for i in range(2 * count):
        hooked = i % 2 == 1
        (instrument if hooked else uninstrument)()
        start = time.perf_counter()
        for _ in range(number):
            run()
        (on if hooked else off).append((time.perf_counter() - start) / number)
    uninstrument()
    return min(off), min(on)


def hook_alone(headers: list[tuple[bytes, bytes]], chunks: list[bytes], number: int, count: int) -> float:
    """Best per-call seconds of the hook's own work on one answer: watch, a feed per chunk, end."""
    request = httpx2.Request("POST", "http://bench.invalid/v1/chat/completions", content=b"{}")
    response = httpx2.Response(200, headers=headers)
    best = []
    for _ in range(count):
        start = time.perf_counter()
        for _ in range(number):
            call = watch(request, response, start)
            assert call is not None
            for chunk in chunks:
                call.feed(chunk)
            call.end()
        best.append((time.perf_counter() - start) / number)
    return min(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--number", type=int, default=400)
    args = parser.parse_args()
    use_recorder(Recorder(Config(), CollectorRegistry()))  # record on a throwaway registry

    body = chat_json()
    json_headers = [(b"content-type", b"application/json"), *LIMITS]
    sdk_json = openai.OpenAI(
        api_key="k",
        base_url="http://bench.invalid/v1",
        http_client=client_for(lambda: httpcore2.Response(200, headers=json_headers, content=body)),
    )
    events = chat_events()
    sse_headers = [(b"content-type", b"text/event-stream"), *LIMITS]

    def stream() -> Iterator[bytes]:
        yield from events

    sdk_sse = openai.OpenAI(
        api_key="k",
        base_url="http://bench.invalid/v1",
        http_client=client_for(lambda: httpcore2.Response(200, headers=sse_headers, content=stream())),
    )
    plain = client_for(lambda: httpcore2.Response(200, headers=[(b"content-type", b"text/plain")], content=b"ok"))
    messages = [{"role": "user", "content": "hello"}]

    def call_json() -> None:
        sdk_json.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]

    def call_stream() -> None:
        for _ in sdk_sse.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        ):
            pass

    def post_other() -> None:
        plain.post("http://bench.invalid/search", content=b"{}")

    def get_other() -> None:
        plain.get("http://bench.invalid/")

    print(f"outbound capture, {args.rounds} rounds x {args.number} calls (best of the round means)")
    for name, run, chunks in (
        (f"SDK chat call, {len(body)} B JSON answer", call_json, 0),
        (f"SDK chat stream, {len(events)} SSE chunks", call_stream, len(events)),
        ("POST, text/plain answer (not LLM)", post_other, 0),
        ("GET (not a POST)", get_other, 0),
    ):
        number = max(args.number // 10, 20) if chunks else args.number
        off, on = rounds(run, number, args.rounds)
        line = f"  {name:<42} off {off * 1e6:8.1f} us  on {on * 1e6:8.1f} us  added {(on - off) * 1e6:7.1f} us"
        if chunks:
            line += f"  ({(on - off) / chunks * 1e6:.2f} us per chunk)"
        print(line)
    print("the hook's own work, per answer (metric updates included)")
    alone_json = hook_alone(json_headers, [body], args.number, args.rounds)
    print(f"  {len(body)} B JSON answer{'':<27} {alone_json * 1e6:8.1f} us")
    alone_sse = hook_alone(sse_headers, events, max(args.number // 10, 20), args.rounds)
    per_chunk = (alone_sse - alone_json) / len(events)
    print(f"  {len(events)} SSE chunks{'':<30} {alone_sse * 1e6:8.1f} us  (~{per_chunk * 1e6:.2f} us per chunk)")


if __name__ == "__main__":
    main()
