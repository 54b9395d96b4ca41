"""Zero-code capture benchmark (not a test).

Times what the middleware adds per response when capture is on: ``start_capture`` + ``feed`` +
``finish``, on a 2 KB OpenAI chat-completion JSON response and on a 200-chunk OpenAI SSE stream (with
``stream_options.include_usage``, so every chunk carries ``"usage": null``), and an Anthropic stream.
``finish`` includes ``Recorder.llm`` (the metric updates), which is also timed alone so the parsing
share is visible. Each figure is the best of the rounds (as timeit reports it).

    python bench/capture.py [--rounds 7] [--number 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from payloads import openai_json, openai_sse  # noqa: E402

from exporter.capture.response import may_carry_usage, start_capture
from exporter.config import Config
from exporter.observations import LLMCall
from exporter.recorder import Recorder

JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2048")]
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


def anthropic_sse(n: int = 200) -> list[bytes]:
    msg = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
           "content": [], "usage": {"input_tokens": 40, "output_tokens": 1}}  # fmt: skip
    events: list[tuple[str, dict[str, object]]] = [
        ("message_start", {"type": "message_start", "message": msg}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}),
    ]
    for _ in range(n - 4):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " word"}}
        events.append(("content_block_delta", delta))
    events.append(("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": n - 4}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


def per_call(fn: Callable[[], None], number: int, rounds: int) -> float:
    """Median seconds per call of ``fn`` over ``rounds`` rounds of ``number`` calls."""
    fn()  # warm up: label children, pricing table, caches
    results = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        results.append((time.perf_counter() - t0) / number)
    return min(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()

    config = Config()
    rec = Recorder(config, CollectorRegistry())
    cfg = config.capture
    body = openai_json()
    stream = openai_sse()
    claude = anthropic_sse()

    def json_response() -> None:
        c = start_capture(JSON_HEADERS, cfg)
        assert c is not None
        c.feed(body, 1.0)
        rec.captured(c.finish(0.0, 1.0, 200))

    def sse_response(chunks: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            c = start_capture(SSE_HEADERS, cfg)
            assert c is not None
            for chunk in chunks:
                c.feed(chunk, 1.0)
            rec.captured(c.finish(0.0, 2.0, 200))

        return run

    def sse_feed_only(chunks: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            c = start_capture(SSE_HEADERS, cfg)
            assert c is not None
            for chunk in chunks:
                c.feed(chunk, 1.0)

        return run

    other = b'{"id": 42, "name": "widget", "tags": ["a", "b"]}'

    def non_llm() -> None:
        # What the middleware does with a non-LLM body sent in one message: rule it out, read nothing.
        assert not may_carry_usage(other, cfg.max_json_bytes)

    call = LLMCall("gpt-4o-2024-08-06", "openai", input_tokens=512, output_tokens=380, cached_input_tokens=128)
    call.duration = 1.0
    html = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"2048")]

    n, r = args.number, args.rounds
    us = 1e6
    t_start = per_call(lambda: start_capture(html, cfg), n * 10, r)
    t_llm = per_call(lambda: rec.llm(call), n, r)
    t_json = per_call(json_response, n, r)
    t_other = per_call(non_llm, n, r)
    t_sse = per_call(sse_response(stream), max(n // 50, 20), r)
    t_sse_feed = per_call(sse_feed_only(stream), max(n // 50, 20), r)
    t_claude = per_call(sse_response(claude), max(n // 50, 20), r)

    print(f"Python {sys.version.split()[0]}, best of {r} rounds")
    print(f"start_capture on a non-captured response (text/html):   {t_start * us:7.2f} us")
    print(f"Recorder.llm alone (metric updates, in every figure below): {t_llm * us:7.2f} us")
    print(f"2 KB OpenAI JSON ({len(body)} B), start + feed + finish:   {t_json * us:7.2f} us"
          f"  (capture without Recorder.llm: {(t_json - t_llm) * us:.2f} us)")  # fmt: skip
    print(f"small non-LLM JSON in one message (ruled out):          {t_other * us:7.2f} us")
    print(f"OpenAI SSE, {len(stream)} chunks, whole stream:              {t_sse * us:7.2f} us"
          f"  = {t_sse / len(stream) * us:.3f} us/chunk;"
          f" feed only: {t_sse_feed / len(stream) * us:.3f} us/chunk")  # fmt: skip
    print(f"Anthropic SSE, {len(claude)} chunks, whole stream:           {t_claude * us:7.2f} us"
          f"  = {t_claude / len(claude) * us:.3f} us/chunk")  # fmt: skip


if __name__ == "__main__":
    main()
