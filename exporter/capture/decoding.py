"""Content decoding for outbound capture: a transport hands over the bytes as sent, compressed or not.

Only what the standard library decodes (gzip, deflate): httpx asks for ``br`` and ``zstd`` only when the
brotli or zstandard packages are installed, and such answers are counted as unreadable. Output comes in
slices of at most ``_SLICE`` bytes, so a small compressed chunk never expands in memory at once.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Literal

Decoder = Callable[[bytes], Iterator[bytes]]

_SLICE = 65_536
_IDENTITY = (b"", b"identity")


class _Zlib:
    __slots__ = ("_obj", "_deflate", "_first")

    def __init__(self, deflate: bool) -> None:
        # gzip: a gzip header; deflate: zlib-wrapped as the RFC says, or raw as some servers send it.
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if deflate else 16 + zlib.MAX_WBITS)
        self._deflate = deflate
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
            out = obj.decompress(data, _SLICE)
            data = obj.unconsumed_tail
            if out:
                yield out


def decoder_for(encoding: bytes | None) -> Decoder | None | Literal[False]:
    """A decoder for a ``content-encoding`` value; None when the body is not encoded; False when it is
    encoded in a way this module does not read."""
    value = (encoding or b"").strip().lower()
    if value in _IDENTITY:
        return None
    if value in (b"gzip", b"x-gzip"):
        return _Zlib(deflate=False)
    if value == b"deflate":
        return _Zlib(deflate=True)
    return False
