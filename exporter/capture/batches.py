"""What a batch of SSE chunks says, read with a few calls that each loop in C over the whole batch.

:class:`~.sse.SseCapture` holds a stream's chunks after the first token and reads them a batch at a
time: one Python call per batch instead of a dozen attribute loads and a method call per chunk. These
are the pure parts of that reading, each giving what the same chunks read one by one would give.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import chain, repeat
from operator import sub

from ..observations import CHUNK_GAP_BUCKETS

# What a plain run's tails are joined with: a byte that is in no UTF-8 text, so in no SSE event in practice (a
# chunk holding it is read alone, not wrongly: it is then counted more often than it was put). One byte, as
# searches for one byte cost less, and the tails are shorter: counting it in a 200-chunk stream's tails
# costs 30,900 instructions, against 48,700 for a 16-byte separator.
SEPARATOR = b"\xff"
_BOUNDARY = b"\n" + SEPARATOR  # a chunk that ends a line, then the next one's tail
_TRAILING = 8  # non-content events at a batch's end before its plain run
_FEW = 4  # gaps binned one by one: a sort and a bisect per bound cost more


def bin_gaps(counts: list[int], seen: float, stamps: list[float]) -> None:
    """Add to ``counts`` (one per ``CHUNK_GAP_BUCKETS`` bound, then +Inf) the gaps from ``seen`` to the first
    of ``stamps`` and between consecutive ones, binned as ``bisect_left`` bins each gap (a gap equal to a
    bound counts in that bound's bucket). Sorting once and bisecting each bound costs a dozen calls for
    the batch rather than a bisect and a subscript per gap (which costs less for a few gaps)."""
    if len(stamps) <= _FEW:
        for now in stamps:
            counts[bisect_left(CHUNK_GAP_BUCKETS, now - seen)] += 1
            seen = now
        return
    gaps = sorted(map(sub, stamps, chain((seen,), stamps)))
    below = 0
    for i, bound in enumerate(CHUNK_GAP_BUCKETS):
        upto = bisect_right(gaps, bound)  # the gaps <= bound: those in this bucket or a lower one
        counts[i] += upto - below
        below = upto
    counts[-1] += len(gaps) - below


def plain_run(chunks: list[bytes], prefix: bytes, mark: bytes, cap: int) -> tuple[int, bytes]:
    """How many of the first chunks are plain content chunks, and their tails (what follows the prefix)
    joined with ``SEPARATOR`` (see :func:`holding`; 0, b"": none).

    A plain content chunk starts with ``prefix`` (a content event's bytes up to the end of its content
    marker, the same in every content event of a stream: its id, model, ``event:`` line), ends a line, is
    no longer than ``cap`` and does not hold ``mark`` (what a chunk that may name a tool call holds): read
    alone, it is complete lines with content, neither marked nor cut, whatever else its lines say. The
    stream's last events (how it ended, its usage, ``[DONE]``) are not: the run stops before up to
    ``_TRAILING`` of them at the batch's end; a batch with others in it has no plain run (0).

    The checks are a few calls that each loop in C over the run: a chunk without the prefix is its own
    tail, so the tails' length says whether each chunk starts with it; the separator, which cannot overlap
    itself, is found only where it was put, and each time after a line's end."""
    end = len(chunks)
    while end and len(chunks) - end < _TRAILING and not _plain(chunks[end - 1], prefix, mark):
        end -= 1
    if not end or mark in prefix:  # (every line of a chunk would hold the mark)
        return 0, b""
    run = chunks if end == len(chunks) else chunks[:end]
    size = len(b"".join(run))
    tails = SEPARATOR.join(map(bytes.removeprefix, run, repeat(prefix)))
    if (
        len(tails) == size - len(prefix) * end + len(SEPARATOR) * (end - 1)
        and tails.endswith(b"\n")
        and tails.count(SEPARATOR) == end - 1
        and tails.count(_BOUNDARY) == end - 1
        and not _in_some(prefix, tails, mark)
        and (size <= cap or max(map(len, run)) <= cap)  # within the cap: all of them, or each
    ):
        return end, tails
    return 0, b""


def _plain(chunk: bytes, prefix: bytes, mark: bytes) -> bool:
    return chunk.startswith(prefix) and chunk.endswith(b"\n") and chunk.find(mark) < 0


def _in_some(prefix: bytes, tails: bytes, marker: bytes) -> bool:
    """Whether a chunk of the run holds ``marker`` after its prefix's start (given the prefix does not).

    First one search, for the marker's shortest end that may follow the prefix's end (the whole marker
    when none may): it is in every occurrence, whole or across, so where it is in no tail (the usual
    answer) neither is the marker."""
    cut = max((i for i in range(1, len(marker)) if prefix.endswith(marker[:i])), default=0)
    if tails.find(marker[cut:]) < 0:
        return False
    return marker in tails or _across(prefix, tails, marker)


def _across(prefix: bytes, tails: bytes, marker: bytes) -> bool:
    """Whether ``marker`` may lie across the prefix's end in a chunk of the run: a suffix of the prefix
    begins it, and the rest of it begins a tail."""
    for i in range(1, len(marker)):
        if prefix.endswith(marker[:i]) and (tails.startswith(marker[i:]) or SEPARATOR + marker[i:] in tails):
            return True
    return False


def holding(chunks: list[bytes], prefix: bytes, tails: bytes, marker: bytes) -> tuple[bytes | None, bytes | None]:
    """The first and the last of a plain run's chunks that hold ``marker`` (None, None: none does), from
    the run's ``tails`` joined with ``SEPARATOR`` (:func:`plain_run`).

    A marker without the separator, in no chunk across its prefix's end, is found in the joined tails
    only inside a tail, whose index is the number of separators before it: two searches and two counts
    for the whole run. Otherwise the chunks themselves say."""
    if marker in prefix:
        return chunks[0], chunks[-1]
    if SEPARATOR in marker or _across(prefix, tails, marker):
        found = [chunk for chunk in chunks if chunk.find(marker) >= 0]
        return (found[0], found[-1]) if found else (None, None)
    first = tails.find(marker)
    if first < 0:
        return None, None
    return chunks[tails.count(SEPARATOR, 0, first)], chunks[tails.count(SEPARATOR, 0, tails.rfind(marker))]
