"""Compressed bodies (``Content-Encoding: gzip`` or ``deflate``), inflated as they go by: the one decoder of
response capture and outbound capture.

An app behind a gzip middleware, or one that passes a provider's compressed answer on as it came, sends
LLM output the readers can only see decoded; so does a provider answering an SDK. A :data:`Decoder` inflates
each chunk in slices of at most ``PIECE`` bytes, so memory stays bounded whatever the compression ratio.
:class:`Decoded` hands the slices to the reader of the content type and stops inflating once that reader
wants no more (a JSON body past its cap, a stream that is not LLM output) and, for a body sent whole, as
soon as its first slice shows none of the keys an LLM answer starts with. Other encodings (``br``, ``zstd``)
are not read: the standard library has no decoder for them before Python 3.14 (httpx asks for them only
when the brotli or zstandard packages are installed), and such answers are counted as unreadable.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from typing import Literal, Protocol

from ..observations import Captured

PIECE = 16_384  # decoded bytes handed to a reader at a time
# The first bytes of a gzip stream and of a zlib (deflate) one, for the middleware's check of a whole body.
COMPRESSED_HEADS = (b"\x1f", b"x")

Decoder = Callable[[bytes], Iterator[bytes]]

_IDENTITY = (b"", b"identity")
# Keys one of which every provider's answer has near its start (OpenAI's model, Azure's choices, Anthropic's
# model, Gemini's candidates, Bedrock's output): a first slice with none of them is not an LLM answer.
_ANSWER_KEYS = re.compile(rb'"(?:model|modelVersion|choices|candidates|output|usage|usageMetadata)"\s*:')


class _Zlib:
    __slots__ = ("_obj", "_first")

    def __init__(self, deflate: bool) -> None:
        # gzip: a gzip header; deflate: zlib-wrapped as the RFC says, or raw as some servers send it.
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if deflate else 16 + zlib.MAX_WBITS)
        self._first = deflate

    def __call__(self, data: bytes) -> Iterator[bytes]:
        if self._first:
            self._first = False
            try:
                yield from self._slices(data)
                return
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        yield from self._slices(data)

    def _slices(self, data: bytes) -> Iterator[bytes]:
        obj = self._obj
        while data:
            out = obj.decompress(data, PIECE)
            data = obj.unconsumed_tail
            if out:
                yield out


def decoder_for(encoding: bytes | None) -> Decoder | None | Literal[False]:
    """A decoder for a ``content-encoding`` value; None when the body is not encoded; False when it is
    encoded in a way this module does not read. A decoder raises ``zlib.error`` on data not so encoded."""
    value = (encoding or b"").strip().lower()
    if value in _IDENTITY:
        return None
    if value in (b"gzip", b"x-gzip"):
        return _Zlib(deflate=False)
    if value == b"deflate":
        return _Zlib(deflate=True)
    return False


class Reader(Protocol):
    """What a response reader offers (:class:`~exporter.capture.calls.ResponseCapture`)."""

    def feed(self, chunk: bytes, now: float) -> None: ...

    def finish(self, start: float, end: float, status: int) -> Captured: ...

    @property
    def satisfied(self) -> bool:
        """Whether more of the body would change nothing."""
        ...


class Decoded:
    """A reader of a compressed body: inflates it for ``inner``. ``feed`` and ``finish`` never raise."""

    __slots__ = ("_inner", "_decode", "_whole", "_seen", "_done")

    def __init__(self, inner: Reader, decode: Decoder, *, whole: bool) -> None:
        self._inner = inner
        self._decode = decode
        self._whole = whole  # a body sent in one message: judged by its first slice
        self._seen = False
        self._done = False

    def feed(self, chunk: bytes, now: float) -> None:
        if self._done:
            return
        try:
            for data in self._decode(chunk):
                if not self._seen:
                    self._seen = True
                    if self._whole and _ANSWER_KEYS.search(data) is None:
                        self._done = True
                        return
                self._inner.feed(data, now)
                if self._inner.satisfied:
                    self._done = True
                    return
        except zlib.error:
            self._done = True  # not the encoding it says: nothing to read

    def finish(self, start: float, end: float, status: int) -> Captured:
        if self._whole and not self._seen:
            return None
        return self._inner.finish(start, end, status)

    @property
    def satisfied(self) -> bool:
        return self._done
