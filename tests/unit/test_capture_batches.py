"""An SSE stream read a batch at a time (exporter/capture/batches.py, SseCapture.flush): whatever the batch
sizes, the same call as reading each chunk alone; memory bounded; a stream that is not an LLM's dropped.

Times are multiples of 1/1024 s, so every gap and sum is exact in binary floating point.
"""

from __future__ import annotations

import asyncio
import json
from bisect import bisect_left
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import LLMCall
from exporter.capture import batches
from exporter.capture.batches import bin_gaps, holding, plain_run
from exporter.capture.response import SseCapture
from exporter.observations import CHUNK_GAP_BUCKETS, ChunkGaps

from ..support.asgi import call, http_scope, wrap
from ..support.metrics import value
from ..support.virtual_time import VirtualClock, virtual_time
from ..support.virtual_time import run as run_virtual

CAP = 1_048_576
GAPS = [1 / 1024, 1 / 256, 1 / 64, 1 / 8, 2.0]  # buckets le=0.001, 0.005, 0.02, 0.16, +Inf
N_CONTENT = 300
GAP = "gen_ai_client_operation_time_per_output_chunk_seconds"


def _event(obj: dict[str, Any], end: bytes = b"\n\n") -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + end


def _chat(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "usage": None,  # as with stream_options.include_usage: "usage" in every chunk
        "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
    }


def openai_stream(end: bytes = b"\n\n") -> list[tuple[bytes, float]]:
    """A role chunk, N_CONTENT content chunks GAPS apart (cycling; some content says '"error'), a tool call,
    the finish and the usage chunk, and [DONE]: each chunk with its time."""
    chunks = [(_event(_chat({"role": "assistant", "content": ""}), end), 0.5)]
    t = 0.5
    for i in range(N_CONTENT):
        text = ' "error" ' if i % 97 == 5 else f"w{i % 10}"  # '"error' in a chunk that is no error
        chunks.append((_event(_chat({"content": text}), end), t))
        t += GAPS[i % len(GAPS)]
    call = {"index": 0, "id": "c0", "function": {"name": "lookup", "arguments": "{}"}}
    chunks.append((_event(_chat({"tool_calls": [call]}), end), t))
    chunks.append((_event(_chat({}, "tool_calls"), end), t))
    usage = {"prompt_tokens": 12, "completion_tokens": N_CONTENT}
    chunks.append((_event({**_chat({}), "choices": [], "usage": usage}, end), t))
    chunks.append((b"data: [DONE]" + end, t))
    return chunks


def anthropic_stream() -> list[tuple[bytes, float]]:
    """Anthropic's events, each after its event: line (a newline before the content marker)."""

    def event(obj: dict[str, Any]) -> bytes:
        return f"event: {obj['type']}\n".encode() + _event(obj)

    start = {"type": "message_start", "message": {"model": "claude-sonnet-4-5", "usage": {"input_tokens": 9}}}
    chunks = [(event(start), 0.25)]
    t = 0.5
    for i in range(N_CONTENT):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"w{i % 10}"}}
        chunks.append((event(delta), t))
        t += GAPS[i % len(GAPS)]
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": N_CONTENT}}
    chunks.append((event(end), t))
    chunks.append((event({"type": "message_stop"}), t))
    return chunks


def read_in_batches(stream: list[tuple[bytes, float]], size: int) -> LLMCall:
    """The call read when the chunks are held ``size`` at a time (as the middleware holds them) before a flush."""
    capture = SseCapture(CAP)
    for i, (chunk, now) in enumerate(stream):
        capture.chunks.append(chunk)
        capture.times.append(now)
        if len(capture.chunks) >= size or i < 3:  # the first chunks one by one: the first token's time is exact
            capture.flush()
    found = capture.finish(0.0, 4096.0, 200)
    assert isinstance(found, LLMCall), found
    return found


# The gaps after the first token: the first content chunk's gap is the cycle's first, and so on.
EXPECTED_GAPS = ChunkGaps.of([GAPS[i % len(GAPS)] for i in range(N_CONTENT - 1)])
SIZES = [1, 2, 3, 5, 7, 64, 255, 256, 257, 1000]


def test_the_expected_gaps_are_what_the_cycle_gives() -> None:
    # 299 gaps: 60 of the first four kinds of the cycle, 59 of the last.
    assert EXPECTED_GAPS.counts == [60, 0, 60, 0, 60, 0, 0, 60, 0, 0, 0, 59]
    assert EXPECTED_GAPS.total == 60 * sum(GAPS[:4]) + 59 * 2.0


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\n"], ids=["lf", "crlf", "one-newline"])
@pytest.mark.parametrize("size", SIZES)
def test_an_openai_stream_read_in_batches_of_any_size_reads_as_chunk_by_chunk(size: int, end: bytes) -> None:
    found = read_in_batches(openai_stream(end), size)
    assert found == read_in_batches(openai_stream(end), 1)
    assert (found.model, found.input_tokens, found.output_tokens) == ("gpt-4o", 12, N_CONTENT)
    assert found.ttft == 0.5 and found.finish_reasons == ("tool_calls",) and found.tool_calls == ("lookup",)
    assert found.chunk_gaps == EXPECTED_GAPS


@pytest.mark.parametrize("size", SIZES)
def test_an_anthropic_stream_read_in_batches_of_any_size_reads_as_chunk_by_chunk(size: int) -> None:
    found = read_in_batches(anthropic_stream(), size)
    assert found == read_in_batches(anthropic_stream(), 1)
    assert (found.model, found.input_tokens, found.output_tokens) == ("claude-sonnet-4-5", 9, N_CONTENT)
    assert found.ttft == 0.5 and found.finish_reasons == ("stop",)
    assert found.chunk_gaps == EXPECTED_GAPS


def content_marker_twice_stream() -> list[tuple[bytes, float]]:
    """Content chunks whose content marker is where the stream's others have it, but also before it (a
    top-level "content" key), with CRLF endings (read alone: searched whole, the first marker found), then
    a content chunk that also names a tool call, and one more."""
    head = b'data: {"id":"' + b"a" * 30 + b'","choices":[{"index":0,"delta":{"content":"'
    at = len(head) - len(b'content":"')
    start, end = b'data: {"content":"","p":"', b'","choices":[{"delta":{"content":"'
    twice = start + b"x" * (len(head) - len(start) - len(end)) + end
    assert len(twice) == len(head) and twice.find(b'content":"') == 8 and twice.find(b'content":"', 9) == at
    chunks = [(head[: at - 2] + b'{"role":"assistant","content":""}}]}\n\n', 0.5)]
    chunks += [(head + f'w{i}"}}}}]}}\n\n'.encode(), 0.5 + i) for i in range(3)]
    chunks += [(twice + f'v{i}"}}}}]}}\r\n\r\n'.encode(), 4.0 + i) for i in range(5)]
    tool = b'"tool_calls":[{"index":0,"id":"c0","function":{"name":"lookup","arguments":"{}"}}]'
    chunks.append((head + b'y",' + tool + b"}}]}\n\n", 10.0))
    chunks.append((head + b'z"}}]}\n\n', 11.0))  # the last content chunk: the tool call is known from its mark
    usage = {"prompt_tokens": 3, "completion_tokens": 9}
    chunks.append((_event({"id": "a", "model": "gpt-4o", "choices": [], "usage": usage}), 10.0))
    return chunks


@pytest.mark.parametrize("size", SIZES)
def test_a_stream_with_its_content_marker_twice_in_a_chunk_reads_as_chunk_by_chunk(size: int) -> None:
    found = read_in_batches(content_marker_twice_stream(), size)
    assert found == read_in_batches(content_marker_twice_stream(), 1)
    assert (found.input_tokens, found.output_tokens, found.tool_calls) == (3, 9, ("lookup",))
    assert found.chunk_gaps == ChunkGaps.of([1.0, 1.0, 1.5, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=12), st.integers(0, 2000))
def test_batches_of_changing_sizes_over_a_stream_cut_anywhere_read_the_same(sizes: list[int], cut: int) -> None:
    # The stream's bytes cut once more at ``cut`` (a chunk boundary moved into an event), then held in
    # batches of the sizes given in turn.
    stream = openai_stream()
    data = b"".join(chunk for chunk, _ in stream)
    at = sum(len(chunk) for chunk, _ in stream[:4]) + cut
    pieces = [*stream[:4], (data[sum(len(c) for c, _ in stream[:4]) : at], 0.75)]
    rest = data[at:]
    reference = SseCapture(CAP)
    capture = SseCapture(CAP)
    for chunk, now in pieces:
        reference.feed(chunk, now)
        capture.feed(chunk, now)
    k = 0
    for chunk, now in _rechunk(rest, stream):
        reference.chunks.append(chunk)
        reference.times.append(now)
        reference.flush()
        capture.chunks.append(chunk)
        capture.times.append(now)
        if len(capture.chunks) >= sizes[k % len(sizes)]:
            capture.flush()
            k += 1
    assert capture.finish(0.0, 4096.0, 200) == reference.finish(0.0, 4096.0, 200)


def _rechunk(rest: bytes, stream: list[tuple[bytes, float]]) -> list[tuple[bytes, float]]:
    """``rest`` cut into events again (at each blank line), each with the time of the event it ends in."""
    out = []
    times = [now for _, now in stream]
    while rest:
        i = rest.find(b"\n\n")
        piece, rest = (rest, b"") if i < 0 else (rest[: i + 2], rest[i + 2 :])
        out.append((piece, times[min(len(out) + 5, len(times) - 1)]))
    return out


def test_a_long_stream_holds_at_most_a_batch_and_a_bounded_few_chunks() -> None:
    capture = SseCapture(CAP)
    stream = openai_stream()
    content = stream[5][0]
    capture.feed(stream[0][0], 0.0)
    most = 0
    for i in range(100_000):
        capture.feed(content, i / 1024)
        most = max(most, len(capture.chunks))
    assert most == 255  # a full batch of 256 is read at once
    assert len(capture._others) == 0 and len(capture._marked) == 0
    for chunk, now in stream[-4:]:
        capture.feed(chunk, 100_000 / 1024 + now)
    found = capture.finish(0.0, 1e6, 200)
    assert isinstance(found, LLMCall) and found.chunk_gaps is not None
    assert found.chunk_gaps.counts == [99_999] + [0] * len(CHUNK_GAP_BUCKETS)  # 1/1024 s apart: le=0.001
    assert len(capture._others) == 4 and len(capture._marked) == 1 and len(capture.chunks) == 0  # the last four


def test_a_stream_that_is_not_an_llms_is_dropped_after_its_first_event() -> None:
    capture = SseCapture(CAP)
    capture.feed(b'data: {"temperature": 21}\n\n', 0.0)
    assert capture.satisfied
    for i in range(1000):
        capture.feed(b"data: tick\n\n", i / 1024)
    assert len(capture.chunks) == 0 and capture.flush() == 0
    assert capture.finish(0.0, 1.0, 200) is None


def test_the_middleware_holds_a_long_stream_in_batches_and_drops_one_that_is_not_an_llms() -> None:
    stream = [chunk for chunk, _ in openai_stream()]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        chunks = stream if scope["path"] == "/chat" else [b"data: tick\n\n"] * 300
        for i, chunk in enumerate(chunks):
            if 1 <= i <= N_CONTENT:
                await asyncio.sleep(1 / 64)  # before the first token and each content chunk after it
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    middleware, _ = wrap(app)
    with virtual_time(VirtualClock()) as loop:
        run_virtual(loop, call(middleware, http_scope("/chat", "POST")))
        run_virtual(loop, call(middleware, http_scope("/ticks", "GET")))
    rec = middleware.recorder
    assert value(rec, f"{GAP}_count") == N_CONTENT - 1 and value(rec, f"{GAP}_sum") == (N_CONTENT - 1) / 64
    assert value(rec, f"{GAP}_bucket", le="0.01") == 0 and value(rec, f"{GAP}_bucket", le="0.02") == N_CONTENT - 1
    assert value(rec, "llm_tokens_total", gen_ai_token_type="output") == N_CONTENT
    assert value(rec, "llm_requests_total") == 1  # the ticks: not an LLM's stream


# -- the pure parts ------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 10, allow_nan=False),
    st.lists(st.one_of(st.sampled_from(CHUNK_GAP_BUCKETS), st.floats(0, 3, allow_nan=False)), max_size=300),
)
def test_bin_gaps_bins_each_gap_as_bisect_left_does(seen: float, gaps: list[float]) -> None:
    # Stamps from the gaps, then the gaps from the stamps again: what bin_gaps subtracts.
    stamps, t = [], seen
    for gap in gaps:
        t += gap
        stamps.append(t)
    expected = [0] * (len(CHUNK_GAP_BUCKETS) + 1)
    prev = seen
    for now in stamps:
        expected[bisect_left(CHUNK_GAP_BUCKETS, now - prev)] += 1
        prev = now
    counts = [0] * (len(CHUNK_GAP_BUCKETS) + 1)
    bin_gaps(counts, seen, stamps)
    assert counts == expected


def test_bin_gaps_puts_a_gap_equal_to_a_bound_in_that_bound_s_bucket() -> None:
    counts = [0] * (len(CHUNK_GAP_BUCKETS) + 1)
    bin_gaps(counts, 0.0, [0.25, 0.5, 1.5, 1.5, 4.0])  # 0.25 twice (le=0.32), 1.0 (le=1.0), 0.0, 2.5 (+Inf)
    assert counts == [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 1]
    few = [0] * (len(CHUNK_GAP_BUCKETS) + 1)
    bin_gaps(few, 0.0, [0.25, 0.5, 1.5, 1.5])  # four gaps, bisected one by one: the same bins
    assert few == [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0]


PREFIX = b'data: {"id":"x","delta":{"content":"'
MARK = b'"name"'


@pytest.mark.parametrize(
    ("chunks", "run"),
    [
        ([PREFIX + b'a"}}\n\n', PREFIX + b'bb"}}\n\n'], 2),
        ([PREFIX + b'a"}}\n\n', b'data: {"id":"x","delta":{}}\n\n', b"data: [DONE]\n\n"], 1),  # the stream's end
        ([b"data: [DONE]\n\n"], 0),
        ([PREFIX + b'a"}}\n\n', b'data: {"id":"x"}\n\n', PREFIX + b'a"}}\n\n'], 0),  # another event inside
        # Complete lines with content, whatever else they say: read alone, each is a content chunk too.
        ([PREFIX + b'a"}}\n' + PREFIX + b'b"}}\n\n', PREFIX + b'a"}}\n\n'], 2),  # two lines in one chunk
        ([PREFIX + b'a"}}\r\n\r\n', PREFIX + b'a"}}\r\n\r\n'], 2),  # CRLF
        ([PREFIX + b'a"}}\n', PREFIX + b'a"}}\n'], 2),  # one newline after each event
        ([PREFIX + b'a"}}\n\ndata: {"id":"x"}', PREFIX + b'a"}}\n\n'], 0),  # a chunk ending in a line's middle
        ([PREFIX + b'a"}}\n\n', PREFIX + b"a" * 100 + b'"}}\n\n'], 0),  # over the cap (100 bytes here)
        ([PREFIX + b'a"}}\n\n'] * 10 + [b"data: [DONE]\n\n"] * 8, 10),  # up to 8 events after the run
        ([PREFIX + b'a"}}\n\n'] * 10 + [b"data: [DONE]\n\n"] * 9, 0),
        ([PREFIX + b'a"}}\n\n', PREFIX + b'a","name":"f"}}\n\n'], 1),  # a tool call's mark: not plain
        ([PREFIX + b'a"}}\n\n', PREFIX + b'a","name":"f"}}\n\n', PREFIX + b'a"}}\n\n'], 0),
        ([PREFIX + b'name"}}\n\n', PREFIX + b'a"}}\n\n'], 0),  # the mark across the prefix's end
        ([PREFIX + b'a name"}}\n\n', PREFIX + b'a"}}\n\n'], 2),  # the mark's end only: searched again, not there
        ([PREFIX + b"a" + batches.SEPARATOR + b'"}}\n\n', PREFIX + b'a"}}\n\n'], 0),  # the separator in a chunk
        ([PREFIX + b'a"}}\n\n', PREFIX[1:] + b'xa"}}\n\n', PREFIX + b'a"}}\n\n'], 0),  # as long, not the prefix
        ([PREFIX + b'a"}}\n\n', b"", PREFIX + b'a"}}\n\n'], 0),  # an empty chunk
    ],
)
def test_plain_run_is_the_leading_chunks_that_are_complete_content_lines(chunks: list[bytes], run: int) -> None:
    n, tails = plain_run(chunks, PREFIX, MARK, 100)
    assert n == run
    expected = batches.SEPARATOR.join(chunk.removeprefix(PREFIX) for chunk in chunks[:run]) if run else b""
    assert tails == expected


def test_holding_finds_the_first_and_last_chunk_with_a_marker() -> None:
    chunks = [PREFIX + b'a"}}\n\n', PREFIX + b'\\"error\\""}}\n\n', PREFIX + b'b"}}\n\n', PREFIX + b'\\"error"}}\n\n']
    n, tails = plain_run(chunks, PREFIX, MARK, CAP)
    assert n == 4
    assert holding(chunks, PREFIX, tails, b'"error') == (chunks[1], chunks[3])
    assert holding(chunks, PREFIX, tails, b'"usage') == (None, None)
    assert holding(chunks, PREFIX, tails, b'"id"') == (chunks[0], chunks[3])  # in the prefix: in every chunk


def test_holding_finds_a_marker_across_the_prefix_s_end_in_the_chunks_themselves() -> None:
    chunks = [PREFIX + b'a"}}\n\n', PREFIX + b'error"}}\n\n', PREFIX + b'b"}}\n\n']  # '"error' across
    n, tails = plain_run(chunks, PREFIX, MARK, CAP)
    assert n == 3 and b'"error' not in tails
    assert holding(chunks, PREFIX, tails, b'"error') == (chunks[1], chunks[1])


def test_holding_finds_no_chunk_for_a_marker_only_across_two_chunks() -> None:
    chunks = [PREFIX + b'a"}}\n\n', PREFIX + b'b"}}\n\n']
    n, tails = plain_run(chunks, PREFIX, MARK, CAP)
    across = b"\n\n" + PREFIX[:4]  # a chunk's end, then the next one's start
    assert n == 2 and across in b"".join(chunks)
    assert holding(chunks, PREFIX, tails, across) == (None, None)
    assert holding(chunks, PREFIX, tails, b"\xff") == (None, None)  # the separator: the chunks say
