"""What a batch of SSE chunks says, read with a few calls that each loop in C over the whole batch.

:class:`~.response.SseCapture` holds a stream's chunks after the first token and reads them a batch at a
time: one Python call per batch instead of a dozen attribute loads and a method call per chunk. These
are the pure parts of that reading, each giving what the same chunks read one by one would give.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import chain
from operator import itemgetter, sub

from ..observations import CHUNK_GAP_BUCKETS

_EVENT_END = b"\n\n"
# Bytes of a chunk's prefix searched with its tail: a marker up to one byte longer is found wherever it lies.
MARKER_OVERLAP = 15
_LAST_TWO = itemgetter(slice(-2, None))
_TRAILING = 8  # non-content events at a batch's end before its plain run


def bin_gaps(counts: list[int], seen: float, stamps: list[float]) -> None:
    """Add to ``counts`` (one per ``CHUNK_GAP_BUCKETS`` bound, then +Inf) the gaps from ``seen`` to the first
    of ``stamps`` and between consecutive ones, binned as ``bisect_left`` bins each gap (a gap equal to a
    bound counts in that bound's bucket). Sorting once and bisecting each bound costs a dozen calls for
    the batch rather than a bisect and a subscript per gap."""
    gaps = sorted(map(sub, stamps, chain((seen,), stamps)))
    below = 0
    for i, bound in enumerate(CHUNK_GAP_BUCKETS):
        upto = bisect_right(gaps, bound)  # the gaps <= bound: those in this bucket or a lower one
        counts[i] += upto - below
        below = upto
    counts[-1] += len(gaps) - below


def plain_run(chunks: list[bytes], prefix: bytes, cap: int) -> tuple[int, bytes]:
    """How many of the first chunks are plain content events no longer than ``cap``, and their tails
    joined (see :func:`holding`).

    A plain content event starts with ``prefix`` (a content event's bytes up to the end of its content
    marker, the same in every content event of a stream: its id, model, ``event:`` line) and is one event
    whose only line after the prefix ends it (``...\n\n``). The stream's last events (how it ended, its
    usage, ``[DONE]``) are not: the run stops before up to ``_TRAILING`` of them at the batch's end; a batch
    with others in it has no plain run (0). Only the tails are searched: the prefix, most of each chunk, is
    known."""
    lines = prefix.count(b"\n") + 2  # the prefix's newlines and the event's end: a chunk with more has another line
    end = len(chunks)
    while end and len(chunks) - end < _TRAILING and not _plain(chunks[end - 1], prefix, lines):
        end -= 1
    run = chunks if end == len(chunks) else chunks[:end]
    # Each check is one call over the run, then one comparison: the chunks' first bytes joined are the
    # prefix ``end`` times only if each chunk starts with it (a shorter chunk would make them shorter);
    # their last two bytes joined, the event's end ``end`` times only if each ends the event.
    if b"".join(map(itemgetter(slice(None, len(prefix))), run)) != prefix * end:
        return 0, b""
    if b"".join(map(_LAST_TWO, run)) != _EVENT_END * end:
        return 0, b""
    cut = max(len(prefix) - MARKER_OVERLAP, 0)
    tails = b"".join(map(itemgetter(slice(cut, None)), run))
    # Each chunk has at least ``lines`` newlines (those of its prefix, then its end): the count says none has more.
    tail_lines = lines - prefix.count(b"\n", 0, cut)
    if tails.count(b"\n") == tail_lines * end and (len(tails) + cut * end <= cap or max(map(len, run)) <= cap):
        return end, tails  # within the cap: all the bytes, or failing that each chunk's
    return 0, b""


def _plain(chunk: bytes, prefix: bytes, lines: int) -> bool:
    return chunk.startswith(prefix) and chunk.endswith(_EVENT_END) and chunk.count(b"\n") == lines


def holding(chunks: list[bytes], prefix: bytes, tails: bytes, marker: bytes) -> tuple[bytes | None, bytes | None]:
    """The first and the last of a plain run's chunks that hold ``marker`` (None, None: none does).

    A marker no longer than ``MARKER_OVERLAP + 1`` bytes is in a chunk if and only if it is in the prefix or
    in the chunk's tail, which starts ``MARKER_OVERLAP`` bytes before the prefix ends. Found in the joined
    tails, it may lie across two of them: the chunks themselves then say."""
    if marker in prefix:
        return chunks[0], chunks[-1]
    if marker not in tails:
        return None, None
    last = None
    for chunk in reversed(chunks):  # where a stream has it, usually its last chunk
        if marker in chunk:
            last = chunk
            break
    if last is None:
        return None, None
    for chunk in chunks:
        if marker in chunk:
            return chunk, last
    return None, None  # not reached: the last one holds it
