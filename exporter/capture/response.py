"""Zero-code capture: LLM usage read from the responses an app returns, as the middleware sends them.

The middleware calls :func:`start_capture` with the first body chunk of a streamed response (or
:func:`capture_body` for a body sent whole), :meth:`ResponseCapture.feed` with every chunk it forwards,
and :meth:`ResponseCapture.finish` at the end, which returns what was read: the :class:`LLMCall` to
record, an :class:`Unreadable` to count, or None. The caller records it. Capture only reads: chunks
are never held back or changed. Memory is bounded: a JSON body is kept up to ``max_json_bytes``; an SSE
stream (:mod:`.sse`) keeps what its reader's docstring says. Results do not depend on where chunk
boundaries fall.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

from ..observations import Captured, Unreadable, finish_reason
from .calls import _USAGE, ResponseCapture, _call
from .encoding import COMPRESSED_HEADS, Decoded, Decoder, decoder_for
from .loads import loads
from .shapes import UNSHAPED, typed_call
from .sse import SseCapture
from .usage import NAMELESS, read

if TYPE_CHECKING:
    from ..config import CaptureConfig

log = logging.getLogger(__name__)

# Byte markers that must be present for a body to carry usage: cheap checks before any JSON parsing
# (the usage marker is in calls.py, which the SSE reader shares).
_DATA = b"data:"  # an SSE event line
_END_OF_TYPE = (b"", b";", b" ", b"\t")
# The last byte of a whole JSON document (or of one followed by a newline). A body ending otherwise may
# be an LLM response cut off before its usage, which must be counted rather than ignored. (A cut that
# happens to fall just after a "}" or a newline looks whole from here and goes uncounted: finding it
# would mean parsing every JSON response.) A set of one-byte slices (the empty one too, as "in" a bytes
# string found it): see may_carry_usage.
_JSON_ENDS = frozenset((b"}", b"]", b"\n", b""))
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
    # find() and a set rather than "in" a bytes string: bytes' "in" first tries its operand as a byte value,
    # and the TypeError it makes and clears for a bytes operand costs more than the search (3,000 of the
    # 8,100 instructions this took for every response). It runs on every response sent whole.
    return (
        len(body) > cap
        or body.find(_USAGE) >= 0
        or body.find(_DATA) >= 0
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


_JSON = Unreadable("json")


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
