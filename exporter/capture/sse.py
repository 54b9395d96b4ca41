"""Zero-code capture of a ``text/event-stream`` response: LLM usage read from a stream's events.

:func:`~.response.start_capture` makes an :class:`SseCapture` for an SSE response. Memory is bounded: a
stream keeps its current partial line (up to ``max_json_bytes``), references to the last events that
carry usage or may say how the answer ended, to at most 64 that may name a tool call, and a dozen gap
counts, which are parsed once, at the end; after the first token, up to ``_BATCH`` chunks by reference,
not read yet (they are read a batch at a time). Results do not depend on where chunk boundaries fall,
nor on where batches do.
"""

from __future__ import annotations

import logging
from collections import deque

from ..observations import CHUNK_GAP_BUCKETS, Captured, ChunkGaps, Unreadable
from .batches import bin_gaps, holding, plain_run
from .calls import _USAGE, ResponseCapture, _call
from .loads import loads
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

log = logging.getLogger(__name__)

_NL = 10  # b"\n"[0]
_CR = b"\r"
_ERROR = b'"error'
_SSE = Unreadable("sse")

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
            if chunk.find(_CR) >= 0:  # find(), not "in": see capture.response.may_carry_usage
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
        # find(), not "in", per chunk: see capture.response.may_carry_usage.
        if chunk.find(_USAGE) >= 0:  # in every OpenAI chunk with include_usage ('"usage":null'): kept cheaply
            kept = chunk if len(chunk) <= self._cap else self._keep(chunk, _USAGE)
            if self._first is None:
                self._first = kept
            self._last = kept
        if chunk.find(_ERROR) >= 0:
            # The last one: an error ends a stream, and events before it may carry '"error": null'.
            self._error = self._keep(chunk, _ERROR)

    def _read(self, chunks: list[bytes], times: list[float]) -> None:
        """A batch of chunks after the first token, as each would be read alone, in order: its plain run of
        content events with a few calls over all of them, the others one by one."""
        first, content, at = chunks[0], self._content, self._at
        done = 0
        if not self._tail and not self._skip and first.startswith(content, at):
            prefix = first[: at + len(content)]
            # (A prefix with the marker before ``at`` too: a chunk read alone would move ``at`` there.)
            if prefix.find(content) == at:
                try:
                    done, tails = plain_run(chunks, prefix, self._mark, self._cap)
                except TypeError:  # a chunk that is not bytes: read one by one
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
        """A run of plain content chunks (:func:`~.batches.plain_run`) without the tool-call marker: what
        reading each of them alone would do (complete lines, with content; neither marked nor searched for
        where the content is), with a few calls over the whole run. Each is within the cap, so kept whole
        where it is kept."""
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
        if chunk.find(self._mark) >= 0 and len(self._marked) < _MAX_MARKED:
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
