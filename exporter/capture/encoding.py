"""Compressed response bodies (``Content-Encoding: gzip`` or ``deflate``), decoded as they go by.

An app behind a gzip middleware, or one that passes a provider's compressed answer on as it came, sends
LLM output the readers can only see decoded. :class:`Decoded` inflates each chunk in pieces of at most
``PIECE`` bytes and hands them to the reader of the content type, so memory stays bounded whatever the
compression ratio; it stops inflating once that reader wants no more (a JSON body past its cap, a stream
that is not LLM output) and, for a body sent whole, as soon as its first piece shows none of the keys an
LLM answer starts with. Other encodings (``br``, ``zstd``) are not read: the standard library has no decoder
for them before Python 3.14.
"""

from __future__ import annotations

import re
import zlib
from typing import Protocol

from ..observations import Captured

PIECE = 16_384  # decoded bytes handed to the reader at a time
ENCODINGS = frozenset({b"gzip", b"x-gzip", b"deflate"})
# The first bytes of a gzip stream and of a zlib (deflate) one, for the middleware's check of a whole body.
COMPRESSED_HEADS = (b"\x1f", b"x")

# Keys one of which every provider's answer has near its start (OpenAI's model, Azure's choices, Anthropic's
# model, Gemini's candidates, Bedrock's output): a first piece with none of them is not an LLM answer.
_ANSWER_KEYS = re.compile(rb'"(?:model|modelVersion|choices|candidates|output|usage|usageMetadata)"\s*:')


class Reader(Protocol):
    """What a response reader offers (:class:`~exporter.capture.response.ResponseCapture`)."""

    def feed(self, chunk: bytes, now: float) -> None: ...

    def finish(self, start: float, end: float, status: int) -> Captured: ...

    @property
    def satisfied(self) -> bool:
        """Whether more of the body would change nothing."""
        ...


class Decoded:
    """A reader of a compressed body: inflates it for ``inner``. ``feed`` and ``finish`` never raise."""

    __slots__ = ("_inner", "_inflate", "_whole", "_seen", "_done")

    def __init__(self, inner: Reader, *, whole: bool) -> None:
        self._inner = inner
        self._inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # a gzip or a zlib header, detected
        self._whole = whole  # a body sent in one message: judged by its first piece
        self._seen = False
        self._done = False

    def feed(self, chunk: bytes, now: float) -> None:
        if self._done:
            return
        try:
            data = self._inflate.decompress(chunk, PIECE)
            while data:
                if not self._seen:
                    self._seen = True
                    if self._whole and _ANSWER_KEYS.search(data) is None:
                        self._done = True
                        return
                self._inner.feed(data, now)
                if self._inner.satisfied:
                    self._done = True
                    return
                data = self._inflate.decompress(self._inflate.unconsumed_tail, PIECE)
        except zlib.error:
            self._done = True  # not the encoding it says: nothing to read

    def finish(self, start: float, end: float, status: int) -> Captured:
        if self._whole and not self._seen:
            return None
        return self._inner.finish(start, end, status)

    @property
    def satisfied(self) -> bool:
        return self._done
