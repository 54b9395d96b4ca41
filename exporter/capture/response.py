"""Zero-code capture: LLM usage read from the responses an app returns, as the middleware sends them.

The middleware calls :func:`start_capture` with the first body chunk of a streamed response (or
:func:`capture_body` for a body sent whole), :meth:`ResponseCapture.feed` with every chunk it forwards,
and :meth:`ResponseCapture.finish` at the end, which returns what was read: the :class:`LLMCall` to
record, an :class:`Unreadable` to count, or None. The caller records it. Capture only reads: chunks
are never held back or changed. Memory is bounded: a JSON body is kept up to ``max_json_bytes``; an SSE
stream keeps its current partial line (same cap), references to the last events that carry usage or
may say how the answer ended, to at most 64 that may name a tool call, and a dozen gap counts, which
are parsed once, at the end; after the first token, up to ``_BATCH`` chunks by reference, not read yet
(they are read a batch at a time). Results do not depend on where chunk boundaries fall, nor on where
batches do.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from typing import TYPE_CHECKING

from ..checks import MAX_INT
from ..observations import CHUNK_GAP_BUCKETS, Captured, ChunkGaps, LLMCall, Unreadable, finish_reason
from .batches import bin_gaps, holding, plain_run
from .encoding import COMPRESSED_HEADS, Decoded, Decoder, decoder_for
from .loads import loads
from .shapes import UNSHAPED, typed_call
from .usage import (
    ANTHROPIC,
    NAMELESS,
    Reading,
    error_type,
    has_output,
    model_of,
    read,
    stream_kind,
    stream_markers,
)

if TYPE_CHECKING:
    from ..config import CaptureConfig

log = logging.getLogger(__name__)

_NL = 10  # b"\n"[0]
_CR = b"\r"
# Byte markers that must be present for a body to carry usage: cheap checks before any JSON parsing.
_USAGE = b'"usage'  # "usage" (OpenAI, Anthropic) and "usageMetadata" (Gemini)
_ERROR = b'"error'
_DATA = b"data:"  # an SSE event line
_END_OF_TYPE = (b"", b";", b" ", b"\t")
# The last byte of a whole JSON document (or of one followed by a newline). A body ending otherwise may
# be an LLM response cut off before its usage, which must be counted rather than ignored. (A cut that
# happens to fall just after a "}" or a newline looks whole from here and goes uncounted: finding it
# would mean parsing every JSON response.)
_JSON_ENDS = b"}]\n"
_HEAD = 512  # bytes of a cut-off body searched for a provider's response shape (it comes first)
# What an over-size body must show to count as unreadable LLM output: a provider's response shape, not
# just a common key such as "model" (a list of cars has one).
_LLM_SHAPE = re.compile(
    rb'"object"\s*:\s*"(?:chat\.completion|text_completion|response|embedding)"'
    rb'|"type"\s*:\s*"message"|"candidates"\s*:|"usage(?:Metadata)?"\s*:'
)


def start_capture(headers: list[tuple[bytes, bytes]], config: CaptureConfig) -> ResponseCapture | Decoded | None:
    """A capture for a JSON or SSE response, ``None`` for anything else (or when capture is off)."""
    found = _reader_for(headers, config)
    if found is None:
        return None
    kind, decode = found
    capture = kind(config.max_json_bytes)
    return Decoded(capture, decode, whole=False) if decode is not None else capture


def capture_body(
    headers: list[tuple[bytes, bytes]], body: bytes, config: CaptureConfig, start: float, end: float, status: int
) -> Captured:
    """A response whose whole body came in one message (the usual non-streaming case).

    The middleware calls it only for bodies that :func:`may_carry_usage`.
    """
    found = _reader_for(headers, config)
    if found is None:
        return None
    kind, decode = found
    if kind is JsonCapture and decode is None and len(body) <= config.max_json_bytes and body.lstrip()[:1] != b"[":
        return _json_object(body, start, end, status)  # the usual answer: read at once, no reader made for it
    capture: ResponseCapture | Decoded = kind(config.max_json_bytes)
    if decode is not None:
        capture = Decoded(capture, decode, whole=True)
    capture.feed(body, end)
    return capture.finish(start, end, status)


def may_carry_usage(body: bytes, cap: int) -> bool:
    """False for the common non-LLM response, at the cost of two substring searches: a body with neither
    the usage marker nor an SSE ``data:`` line has nothing either reader would record, whatever its
    content type, so its headers are not even scanned. (An over-size body is looked at: it may count as
    unreadable LLM output; so is one that does not end as JSON does: it may be an LLM answer cut off
    before its usage; a compressed one can only be told once its headers are.)"""
    return (
        len(body) > cap
        or _USAGE in body
        or _DATA in body
        or body[-1:] not in _JSON_ENDS
        or body[:1] in COMPRESSED_HEADS
    )


def _reader_for(
    headers: list[tuple[bytes, bytes]], config: CaptureConfig
) -> tuple[type[JsonCapture | SseCapture], Decoder | None] | None:
    """The reader of a response's content type, and the decoder its body needs first (None: not encoded)."""
    if not config.enabled:
        return None
    ctype = None
    decode: Decoder | None = None
    for name, value in headers:
        # Lengths first: most headers are rejected without lowercasing anything.
        n = len(name)
        if n == 12:
            if name.lower() == b"content-type":
                ctype = value
        elif n == 16 and name.lower() == b"content-encoding":
            found = decoder_for(value)
            if found is False:
                return None  # br, zstd: no decoder in the standard library (see encoding.py)
            decode = found
    if ctype is None:
        return None
    ctype = ctype.lstrip()[:18].lower()
    # The media type must end where the name does: not application/jsonl or application/json-seq.
    if ctype[:16] == b"application/json" and ctype[16:17] in _END_OF_TYPE:
        return JsonCapture, decode
    if ctype[:17] == b"text/event-stream" and ctype[17:18] in _END_OF_TYPE:
        return SseCapture, decode
    return None


class ResponseCapture:
    """Reads one response body. ``feed`` and ``finish`` never raise."""

    __slots__ = ()

    def feed(self, chunk: bytes, now: float) -> None:
        raise NotImplementedError

    def finish(self, start: float, end: float, status: int) -> Captured:
        raise NotImplementedError

    @property
    def satisfied(self) -> bool:
        """Whether more of the body would change nothing (a compressed body then needs no more inflating)."""
        raise NotImplementedError


_JSON, _SSE = Unreadable("json"), Unreadable("sse")


def _call(
    reading: Reading,
    start: float,
    end: float,
    ttft: float | None,
    status: int,
    fmt: Unreadable,
    *,
    stream: bool,
    gaps: ChunkGaps | None = None,
) -> Captured:
    """The call a reading describes, or ``fmt`` (unreadable) when its token counts break the rule for them:
    counts past 2**53 would swamp every later increment, and a call recorded without them would be wrong."""
    counts = reading.counts()
    if reading.wrong is not None or counts[0] > MAX_INT or counts[1] > MAX_INT:  # input and output totals
        log.debug("llm-exporter: unusable token counts in a %s response: %s", fmt.format, reading.wrong)
        return fmt
    error = reading.error_type
    if error is None and status >= 400:
        error = str(status)  # OpenTelemetry's error.type for an HTTP error status
    # A provider's answer that ended well but says nothing of its usage (OpenAI streams without
    # stream_options.include_usage): counted as such, not as a call of zero tokens.
    missing = None
    if error is None and not reading.has_usage:
        missing = "stream_without_usage" if stream else "response_without_usage"
    # Positional, in LLMCall's field order (the counts are COUNT_FIELDS): a call by keywords costs about
    # three times as much, on every answer read.
    return LLMCall(
        reading.model or "unknown",  # model
        reading.provider,  # provider
        reading.operation,  # operation
        *counts,
        max(end - start, 0.0),  # duration
        None if ttft is None else max(ttft - start, 0.0),  # ttft
        error,  # error_type
        reading.cost,  # cost_usd
        None,  # tenant
        None,  # timestamp
        None,  # route (the middleware sets it)
        reading.model,  # response_model
        missing,  # missing_usage
        reading.finish or (),  # finish_reasons
        reading.tool_names(),  # tool_calls
        gaps,  # chunk_gaps
    )


class JsonCapture(ResponseCapture):
    """A JSON body: an LLM response, or a JSON array of Gemini stream responses.

    An object is kept up to the cap and parsed at the end. An array is a stream: only its last
    ``_ARRAY_TAIL`` bytes are kept (every item carries the usage so far; the last one has the total),
    and only the last usage object in them is parsed.
    """

    __slots__ = ("_cap", "_tail", "_parts", "_size", "_over", "_suspect", "_array", "_prev", "_ttft")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._tail = min(cap, _ARRAY_TAIL)
        self._parts: list[bytes] = []
        self._size = 0
        self._over = False
        self._suspect = False  # an over-size body that looked like LLM output
        self._array: bool | None = None  # a JSON array (a Gemini stream); None until the first byte is seen
        self._prev = b""  # the end of the previous chunk, for markers split across chunks
        self._ttft: float | None = None

    def feed(self, chunk: bytes, now: float) -> None:
        if self._over:
            return
        try:
            if self._array is None:
                head = chunk.lstrip()
                if head:
                    self._array = head[0] == 0x5B  # "["
            if self._array:
                self._feed_array(chunk, now)
                return
            size = self._size + len(chunk)
            if size > self._cap:
                body = b"".join(self._parts) + chunk[: max(self._cap - self._size, 0)]
                self._suspect = _LLM_SHAPE.search(body) is not None
                self._over = True
                self._parts = []
                return
            self._size = size
            self._parts.append(chunk)
        except Exception:
            self._over = True
            self._parts = []

    @property
    def satisfied(self) -> bool:
        return self._over

    def _feed_array(self, chunk: bytes, now: float) -> None:
        parts = self._parts
        parts.append(chunk)
        self._size += len(chunk)
        while len(parts) > 1 and self._size - len(parts[0]) >= self._tail:
            self._size -= len(parts.pop(0))
        if self._ttft is None:
            # The first "text" part marks the first token.
            if b'"text"' in self._prev + chunk:
                self._ttft = now
            self._prev = chunk[-5:]

    def finish(self, start: float, end: float, status: int) -> Captured:
        try:
            if self._over:
                return _JSON if self._suspect else None
            parts = self._parts
            if not parts:
                return None
            if self._array:
                return self._finish_array(start, end, status)
            return _json_object(parts[0] if len(parts) == 1 else b"".join(parts), start, end, status)
        except Exception:
            log.exception("llm-exporter: reading a JSON response failed")
            return _JSON

    def _finish_array(self, start: float, end: float, status: int) -> Captured:
        # The tail may start inside a character or an item: only the complete last usage object is parsed.
        text = b"".join(self._parts)[-self._tail :].decode("utf-8", "replace")
        found = list(_GEMINI_USAGE.finditer(text))
        if not found:
            return None  # not a Gemini stream, or one without usage: nothing to say
        try:
            meta, _ = _DECODER.raw_decode(text, found[-1].end())
        except ValueError:
            return _JSON
        models = _GEMINI_MODEL.findall(text)
        model = models[-1] if models else None
        # A stand-in for the last item: what read() needs to see a Gemini response.
        reading = read({"candidates": [], "usageMetadata": meta, "modelVersion": model})
        finish = _GEMINI_FINISH.findall(text)  # the last item says how the answer ended
        if reading is not None and finish:
            reading.finish = (finish_reason(finish[-1]),)
        if reading is not None and reading.has_usage:
            return _call(reading, start, end, self._ttft, status, _JSON, stream=True)
        return None


def _json_object(body: bytes, start: float, end: float, status: int) -> Captured:
    """What a whole JSON body (within the cap, not an array) says. Never raises."""
    try:
        # Usage comes last in all three providers' responses: searching backwards finds it at once.
        if body.rfind(_USAGE) < 0:
            return _JSON if _cut_off_llm_json(body) else None  # else not an LLM response: nothing to parse
        found = typed_call(body, start, end, status)  # the commonest answers, decoded only as far as needed
        return _general_json(body, start, end, status) if found is UNSHAPED else found
    except Exception:
        log.exception("llm-exporter: reading a JSON response failed")
        return _JSON


def _general_json(body: bytes, start: float, end: float, status: int) -> Captured:
    """What a whole JSON body says, parsed whole and read by the general reader (any provider's shape)."""
    try:
        obj = loads(body)
    except (ValueError, RecursionError):  # cut off, a 4,300-digit number, nesting thousands deep
        return _JSON
    reading = read(obj)
    # Usage without a model is some other API's "usage" field, except in Gemini's or Bedrock's distinct
    # shapes. An error answer ({"error": ...}) names no model: the app's own error, not a failed call.
    if reading is None or (reading.model is None and reading.provider not in NAMELESS):
        return None
    return _call(reading, start, end, None, status, _JSON, stream=False)


def _cut_off_llm_json(body: bytes) -> bool:
    """Whether a body without usage is a provider's response cut off before it (a client or proxy gave
    up mid-body): it does not end as JSON does, begins with a provider's shape, and does not parse."""
    if body.rstrip()[-1:] in (b"}", b"]") or _LLM_SHAPE.search(body, 0, _HEAD) is None:
        return False
    try:
        loads(body)
    except (ValueError, RecursionError):
        return True
    return False


_ARRAY_TAIL = 65_536  # bytes of a JSON-array stream kept: the last item's usage is in its last few hundred
_GEMINI_USAGE = re.compile(r'"(?:usageMetadata|usage_metadata)"\s*:\s*(?=\{)')
_GEMINI_MODEL = re.compile(r'"(?:modelVersion|model_version)"\s*:\s*"([^"\\]{1,200})"')
_GEMINI_FINISH = re.compile(r'"finishReason"\s*:\s*"([A-Z_]{1,64})"')
_DECODER = json.JSONDecoder()

_UNDECIDED, _LLM, _IGNORE = 0, 1, 2
_NO_MARK = b"\x00no content marker\x00"  # before the provider is known: in no chunk
_N_GAP_COUNTS = len(CHUNK_GAP_BUCKETS) + 1
_NOWHERE = 1 << 62  # an offset past the end of any chunk (startswith() there is False)
_NO_GAPS: list[int] = []  # shared, and never written to: nothing is binned before a stream's own list is made
_MAX_MARKED = 64  # blocks kept that may name a tool call (one per call, in practice)
# Chunks held before they are read, after the first token: enough that a batch's few calls over all of
# them cost little per chunk; few enough that they are a bounded few dozen kilobytes in the usual stream.
_BATCH = 256
_DROPPED: deque[object] = deque(maxlen=0)  # where a stream that is not an LLM's puts its chunks: nowhere
_OTHERS = 6  # blocks without content kept: the finish, usage, [DONE] and a provider's own last events
# What the events that say how an answer ended hold: finish_reason, stop_reason, finishReason, stopReason;
# the Responses API's response objects.
_OUTCOME = (b'eason"', b'"incomplete_details"')  # in this order


class SseCapture(ResponseCapture):
    """A ``text/event-stream`` body: OpenAI chat / completions / Responses, Anthropic or Gemini events.

    Until the first output token, every ``data:`` line is parsed (a handful of events), chunk by chunk.
    After that, chunks are held with their times (``chunks``, ``times``: two appends each) and read
    ``_BATCH`` at a time, each as if it were read alone: events that may carry usage or an error are
    kept by reference (the first and the last) and parsed in :meth:`finish`. How the answer ended and
    the tools it asks for are read there too, from the last content chunk, the last few other chunks
    and those that may name a tool call (:func:`~.usage.stream_markers`). A chunk that is one content
    event, the common case, is known by its prefix where the stream's content events have their marker;
    a run of them is checked and searched with a few calls over the whole run (:mod:`.batches`), and
    their gaps binned at once; other chunks are read one by one and searched whole. A line longer than
    the cap is dropped, and the stream is counted as unreadable if no usage could be read.
    """

    __slots__ = (
        "_cap",
        "_tail",
        "_tail_len",
        "_skip",
        "_state",
        "_provider",
        "_operation",
        "_model",
        "_ttft",
        "_first",
        "_last",
        "_error",
        "_over",
        "_content",
        "_mark",
        "_marked",
        "_others",
        "_last_content",
        "_at",
        "_gaps",
        "_seen",
        "chunks",
        "times",
        "_batch",
    )

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._tail: list[bytes] = []  # the current partial line, in pieces (joined once it is complete)
        self._tail_len = 0
        self._skip = False  # dropping the rest of an over-long line
        self._state = _UNDECIDED
        self._provider = ""
        self._operation = "chat"
        self._model: str | None = None
        self._ttft: float | None = None
        # Blocks of complete lines with usage or error markers: the first and last of each kind.
        self._first: bytes | None = None
        self._last: bytes | None = None
        self._error: bytes | None = None
        self._over = False
        self._content = _NO_MARK  # what a chunk with content holds (set once the provider is known)
        self._mark = _NO_MARK  # what a chunk that may name a tool call holds
        self._marked: list[bytes] = []  # blocks that may name a tool call
        self._others: list[bytes] = []  # the last few blocks without content (how the answer ended is there)
        self._last_content = b""
        self._at = _NOWHERE  # the offset of the content marker in the stream's content events, once seen
        # Counts by CHUNK_GAP_BUCKETS (then +Inf), made when the stream is known to be an LLM's: none is
        # binned before (no chunk holds the content marker until then).
        self._gaps: list[int] = _NO_GAPS
        self._seen = 0.0  # when the last content chunk came
        # The chunks not read yet, and when each came: a caller may append to both itself (see flush()).
        self.chunks: list[bytes] = []
        self.times: list[float] = []
        self._batch = 1  # chunks held before they are read: one until the first token, then _BATCH

    def feed(self, chunk: bytes, now: float) -> None:
        # Held, with its time, until a batch is full (one chunk until the first token): the rest of a
        # stream's chunks cost two appends each here, and are read a batch at a time.
        chunks = self.chunks
        chunks.append(chunk)
        self.times.append(now)
        if len(chunks) >= self._batch:
            self.flush()

    def flush(self) -> int:
        """Read the chunks held in ``chunks`` (each came at the time at its index in ``times``). Returns how
        many chunks to hold before the next call: the middleware appends to the two lists itself, which
        costs less than a call of :meth:`feed` per chunk; 0 once the stream is known not to be an LLM's,
        whose chunks need neither holding nor reading."""
        chunks, times = self.chunks, self.times
        if chunks:
            try:
                if self._ttft is None:
                    for chunk, now in zip(chunks, times, strict=True):
                        self._early(chunk, now)
                else:
                    self._read(chunks, times)
            except Exception:
                self._over = True
            chunks.clear()
            times.clear()
        return 0 if self._state == _IGNORE else self._batch

    def _early(self, chunk: bytes, now: float) -> None:
        """A chunk before the first token: its ``data:`` lines are parsed."""
        if self._state == _IGNORE or not chunk:
            return
        try:
            chunk = self._lines(chunk)
            if not chunk:
                return
            self._parse_lines(chunk, now)
            if self._state == _IGNORE:
                # Not an LLM's stream: the rest of it is neither held nor read.
                self.chunks = self.times = _DROPPED  # type: ignore[assignment]
                return
            self._seen = now
            self._last_content = chunk
            self._if_marked(chunk)
            self._keep_markers(chunk)
        except Exception:
            self._over = True  # unreadable; finish() counts it if this was an LLM stream

    def _lines(self, chunk: bytes) -> bytes:
        """The complete lines, each within the cap, that ``chunk`` brings (b"": none yet)."""
        if self._tail or self._skip or chunk[-1] != _NL:
            if _CR in chunk:
                # Lines may end with CR alone, as the SSE format allows (CRLF needs nothing: the CR is
                # whitespace to the JSON and to the line's strip()).
                chunk = chunk.replace(b"\r\n", b"\n").replace(_CR, b"\n")
            chunk = self._complete(chunk)
            if not chunk:
                return chunk
        if len(chunk) > self._cap:  # it may hold a line over the cap: such lines are dropped
            chunk = self._short_lines(chunk)
        return chunk

    def _keep_markers(self, chunk: bytes) -> None:
        if _USAGE in chunk:  # in every OpenAI chunk with include_usage ('"usage":null'): kept cheaply
            kept = chunk if len(chunk) <= self._cap else self._keep(chunk, _USAGE)
            if self._first is None:
                self._first = kept
            self._last = kept
        if _ERROR in chunk:
            # The last one: an error ends a stream, and events before it may carry '"error": null'.
            self._error = self._keep(chunk, _ERROR)

    def _read(self, chunks: list[bytes], times: list[float]) -> None:
        """A batch of chunks after the first token, as each would be read alone, in order: its plain run of
        content events with a few calls over all of them, the others one by one."""
        first, content, at = chunks[0], self._content, self._at
        done = 0
        if not self._tail and not self._skip and first.startswith(content, at):
            prefix = first[: at + len(content)]
            try:
                done, tails = plain_run(chunks, prefix, self._cap)
            except TypeError:  # a chunk that is not bytes (a bytearray): read one by one
                done = 0
            if done:
                self._read_plain(chunks if done == len(chunks) else chunks[:done], times[:done], prefix, tails)
        if done < len(chunks):
            self._read_each(chunks[done:], times[done:])
        if self._at != _NOWHERE:
            self._batch = _BATCH  # the content events' marker is where it was found: they can be read plain

    def _read_each(self, chunks: list[bytes], times: list[float]) -> None:
        content, at = self._content, self._at
        stamps: list[float] = []  # when each content chunk came
        last_content = self._last_content
        for chunk, now in zip(chunks, times, strict=True):
            if not chunk:
                continue
            try:
                chunk = self._lines(chunk)
                if not chunk:
                    continue
                if chunk.startswith(content, at) and chunk.find(b"\n", at) >= len(chunk) - 2:
                    # The common chunk: one content event, its marker where the stream's content events have
                    # it (their prefix, id and model, is the same length in every event), so neither a search
                    # of the chunk nor a tool call in it.
                    stamps.append(now)
                    last_content = chunk
                else:
                    # Searched whole: a content chunk (which says where the next ones have the marker),
                    # or one that may say how the answer ended.
                    found = chunk.find(content)
                    if found >= 0:
                        at = found
                        stamps.append(now)
                        last_content = chunk
                    else:
                        others = self._others
                        others.append(chunk)
                        if len(others) > _OTHERS:
                            del others[0]
                    self._if_marked(chunk)
                self._keep_markers(chunk)
            except Exception:
                self._over = True
        self._at = at
        self._last_content = last_content
        self._stamped(stamps)

    def _read_plain(self, chunks: list[bytes], times: list[float], prefix: bytes, tails: bytes) -> None:
        """A run of plain content events (:func:`~.batches.plain_run`): what reading each of them alone would
        do, with a few calls over the whole run. Each is within the cap, so kept whole where it is kept."""
        self._last_content = chunks[-1]
        first, last = holding(chunks, prefix, tails, _USAGE)
        if last is not None:
            if self._first is None:
                self._first = first
            self._last = last
        last = holding(chunks, prefix, tails, _ERROR)[1]
        if last is not None:
            self._error = last
        self._stamped(times)

    def _stamped(self, stamps: list[float]) -> None:
        """Bin the gaps up to the content chunks that came at ``stamps``."""
        if stamps:
            bin_gaps(self._gaps, self._seen, stamps)
            self._seen = stamps[-1]

    @property
    def satisfied(self) -> bool:
        return self._state == _IGNORE

    def _complete(self, chunk: bytes) -> bytes:
        """The complete lines available once ``chunk`` is appended; the rest waits for its newline."""
        if self._skip:
            i = chunk.find(b"\n")
            if i < 0:
                return b""
            chunk = chunk[i + 1 :]
            self._skip = False
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            self._tail_len += len(chunk)
            if self._tail_len > self._cap:
                self._drop_line()
            else:
                self._tail.append(chunk)
            return b""
        head = chunk[:cut] if cut < len(chunk) else chunk
        if self._tail:
            self._tail.append(head)
            head = b"".join(self._tail)
            self._tail = []
        rest = chunk[cut:]
        self._tail_len = len(rest)
        if rest:
            if self._tail_len > self._cap:
                self._drop_line()
            else:
                self._tail.append(rest)
        return head

    def _drop_line(self) -> None:
        self._over = True
        self._skip = True
        self._tail = []
        self._tail_len = 0

    def _short_lines(self, block: bytes) -> bytes:
        # Wherever chunk boundaries fall, a line over the cap is dropped whole and flagged: either
        # here or, when it arrives in pieces, by _complete.
        lines = block.split(b"\n")
        kept = [ln for ln in lines if len(ln) <= self._cap]
        if len(kept) == len(lines):
            return block
        self._over = True
        return b"\n".join(kept)

    def _if_marked(self, chunk: bytes) -> None:
        if self._mark in chunk and len(self._marked) < _MAX_MARKED:
            self._marked.append(chunk)

    def _keep(self, block: bytes, marker: bytes) -> bytes:
        # A block normally holds one event; a big one (many events in one write) keeps only what is needed.
        if len(block) <= self._cap:
            return block
        lines = [ln for ln in block.split(b"\n") if marker in ln]
        return b"\n".join(lines[:1] + lines[-1:])

    def _parse_lines(self, block: bytes, now: float) -> None:
        for line in block.split(b"\n"):
            if line[:5] != b"data:":
                continue
            payload = line[5:].strip()
            if not payload or payload == b"[DONE]":
                continue
            try:
                obj = loads(payload)
            except ValueError:
                obj = None
            if self._state == _UNDECIDED:
                kind = stream_kind(obj)
                if kind is None:  # plain-text events, or JSON that isn't LLM output: not ours
                    self._state = _IGNORE
                    return
                self._state = _LLM
                self._provider, self._operation = kind
                if isinstance(obj, dict):
                    self._content, self._mark = stream_markers(obj, spaced=b'": ' in payload)
                    self._gaps = [0] * _N_GAP_COUNTS
            if not isinstance(obj, dict):
                continue
            if self._model is None:
                self._model = model_of(obj)
            if has_output(obj):
                self._ttft = now
                return

    def _readings(self) -> Reading | None:
        """The merged usage of the kept events; ``None`` when one of them could not be parsed."""
        reading = Reading(self._provider, model=self._model, operation=self._operation)
        lines: list[bytes] = []
        if self._provider == ANTHROPIC and self._first is not None:
            # Anthropic splits usage over message_start (input) and message_delta (output): the first
            # usage event matters too. The others repeat cumulative usage, so their last event is enough.
            lines += _usage_lines(self._first)[:1]
        if self._last is not None:
            lines += _usage_lines(self._last)[-1:]
        for line in lines:
            try:
                r = read(loads(line[5:]))
            except (ValueError, RecursionError):
                return None
            if r is not None:
                r.finish = r.tools = None  # taken from the marked events alone, so none counts twice
                reading = reading.merge(r)
        blocks = [*self._marked]
        seen = set(map(id, blocks))
        for block in (self._last_content, *self._others):
            if id(block) not in seen:  # a block read twice would count its tool calls twice
                seen.add(id(block))
                blocks.append(block)
        mark, reason, details = self._mark, *_OUTCOME
        for block in blocks:
            for line in block.split(b"\n"):
                if line[:5] != b"data:" or not (reason in line or mark in line or details in line):
                    continue
                try:
                    r = read(loads(line[5:]))
                except (ValueError, RecursionError):
                    continue  # an unreadable event says nothing of the outcome; usage decides the rest
                if r is not None:
                    reading.take_outcome(r)
        if self._error is not None:
            for line in reversed(self._error.split(b"\n")):
                if _ERROR in line and line[:5] == b"data:":
                    try:
                        obj = loads(line[5:])
                    except ValueError:
                        continue
                    found = error_type(obj) if isinstance(obj, dict) else None
                    if found is None and isinstance(obj, dict) and isinstance(obj.get("response"), dict):
                        found = error_type(obj["response"])  # OpenAI Responses: response.failed
                    if found:
                        reading.error_type = found
                        break
        return reading

    def finish(self, start: float, end: float, status: int) -> Captured:
        try:
            self.flush()
            if self._state != _LLM:
                # An over-long first event: can't tell whether it was an LLM stream, so say so.
                return _SSE if self._state == _UNDECIDED and self._over else None
            reading = self._readings()
            if reading is None or (self._over and not reading.has_usage):
                return _SSE
            if reading.model is None and self._provider not in NAMELESS and not reading.has_usage:
                return None  # never saw anything identifying a model call
            gaps = None
            if any(self._gaps):
                first = self._ttft if self._ttft is not None else start
                gaps = ChunkGaps(self._gaps, max(self._seen - first, 0.0))  # the gaps add up to this span
            return _call(reading, start, end, self._ttft, status, _SSE, stream=True, gaps=gaps)
        except Exception:
            log.exception("llm-exporter: reading an SSE response failed")
            return _SSE


def _usage_lines(block: bytes) -> list[bytes]:
    return [ln for ln in block.split(b"\n") if _USAGE in ln and ln[:5] == b"data:"]
