"""An append-only, size-bounded spool file of MLflow batches that could not be written yet.

One JSON object per line, replayed from the head in the order written. The head offset lives in
memory: after a restart the whole file is replayed again, which is safe because the bridge checks
MLflow for a batch before writing a replayed one. When the head reaches the end the file is
truncated, so an empty spool is an empty file. Only the bridge thread uses a Spool.

A crash in the middle of a write leaves a last line without its newline. That batch was never
acknowledged, so opening the spool cuts it off: otherwise the next append would be glued to it and
both lines lost; it is counted in ``corrupt`` (:meth:`Spool.take_corrupt` hands the count to the bridge,
as dropped batches).

A line that cannot be replayed (not JSON, or a record the bridge finds the wrong shape, or one MLflow
refuses) is moved aside, unchanged, to the quarantine file next to the spool (``<stem>.quarantine<suffix>``,
at most ``QUARANTINE_MAX_BYTES``), so replay goes on with the next line; :meth:`Spool.take_quarantined`
counts them. Past that size a line is dropped (and counted as corrupt) instead. The first one is logged
as a warning with its reason; later ones only at debug level, as they are counted.

A lock file keeps two processes (several uvicorn workers in one directory) from sharing one spool:
the second one gets ``<name>.<pid><suffix>`` next to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per spool path is then up to the user
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

QUARANTINE_MAX_BYTES = 8 * 1024 * 1024


def encode(record: dict[str, Any]) -> bytes:
    """One spool line: ``record`` as compact JSON (NaN refused: JSON has no such number) and a newline."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class Spool:
    def __init__(self, path: str | os.PathLike[str], max_bytes: int) -> None:
        claimed, lock = _claim(Path(path).resolve())
        self._open(claimed, lock, max_bytes)

    def _open(self, path: Path, lock: IO[bytes] | None, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = lock
        self._file: IO[bytes] = open(path, "a+b")  # noqa: SIM115 (kept open for the process's life)
        self._head = 0
        self._next = 0
        self._size = os.fstat(self._file.fileno()).st_size
        self.corrupt = 0  # lines lost: a torn write at a crash, or a line the full quarantine could not take
        self._reported = 0
        self.quarantined = 0  # lines moved to the quarantine file
        self._quarantine_reported = 0
        self._warned = False
        self.quarantine_path = path.with_name(f"{path.stem}.quarantine{path.suffix}")
        self._cut_torn_tail()

    @property
    def pending_bytes(self) -> int:
        return self._size - self._head

    def __bool__(self) -> bool:
        return self._size > self._head

    def append(self, record: dict[str, Any]) -> bool:
        """Add ``record`` at the tail; False when it would take the file past ``max_bytes``."""
        line = encode(record)
        if self._size + len(line) > self.max_bytes and self._head:
            self._compact()
        if self._size + len(line) > self.max_bytes:
            return False
        self._file.seek(0, os.SEEK_END)
        try:
            self._file.write(line)
            self._file.flush()
        except OSError:  # disk full: take back the part written, or the next line would be glued to it
            with contextlib.suppress(OSError):
                self._truncate_at(self._size)
            raise
        self._size += len(line)
        return True

    def take_corrupt(self) -> int:
        """Lines lost to corruption since the last call (the bridge counts them as dropped batches)."""
        new, self._reported = self.corrupt - self._reported, self.corrupt
        return new

    def take_quarantined(self) -> int:
        """Lines moved to the quarantine file since the last call."""
        new, self._quarantine_reported = self.quarantined - self._quarantine_reported, self.quarantined
        return new

    def peek(self) -> dict[str, Any] | None:
        """The record at the head, or None when the spool is empty. Lines that are not a JSON object are
        moved to the quarantine file on the way."""
        while self._head < self._size:
            self._file.seek(self._head)
            line = self._file.readline()
            if not line.endswith(b"\n"):  # torn tail of a crashed write; all before it was replayed
                self.corrupt += 1
                self._truncate_at(0)
                return None
            self._next = self._head + len(line)
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, a 4,300-digit integer, nesting thousands deep
                record = None
            if isinstance(record, dict):
                return record
            self.set_aside("not a JSON object")
        return None

    def pop(self) -> None:
        """Drop the record returned by the last :meth:`peek`."""
        self._advance_to(self._next)

    def set_aside(self, reason: str) -> None:
        """Move the line of the last :meth:`peek` to the quarantine file, unchanged, and go on with the next
        one: ``reason`` says why it cannot be replayed."""
        self._file.seek(self._head)
        line = self._file.read(self._next - self._head)
        self._advance_to(self._next)
        self.quarantine(line, reason)

    def quarantine(self, line: bytes, reason: str) -> None:
        """Append ``line`` (one JSON line, with its newline) to the quarantine file, within its size cap."""
        try:
            size = self.quarantine_path.stat().st_size if self.quarantine_path.exists() else 0
            if size + len(line) > QUARANTINE_MAX_BYTES:
                raise OSError(f"the quarantine file is full ({QUARANTINE_MAX_BYTES} bytes)")
            with open(self.quarantine_path, "ab") as f:
                f.write(line)
        except OSError as exc:
            self.corrupt += 1
            log.warning("llm-exporter: dropped an MLflow batch that cannot be replayed (%s): %s", reason, exc)
            return
        self.quarantined += 1
        if self._warned:
            log.debug("llm-exporter: moved an MLflow batch to %s: %s", self.quarantine_path, reason)
            return
        self._warned = True
        log.warning(
            "llm-exporter: moved an MLflow batch that cannot be replayed to %s (%s); replay goes on. "
            'Further ones are only counted: llm_exporter_mlflow_batches_total{result="quarantined"}',
            self.quarantine_path,
            reason,
        )

    def close(self, remove: bool = False) -> None:
        self._file.close()
        if remove:
            for p in (self.path, self.path.with_name(self.path.name + ".lock")):
                p.unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.close()

    def orphans(self) -> list[Spool]:
        """Spools left by processes that are gone (nobody holds their lock), to replay before this one."""
        if fcntl is None:
            return []
        base = _base(self.path)
        found = []
        for candidate in sorted({base, *base.parent.glob(f"{base.stem}.*{base.suffix}")}):
            if candidate == self.path or _base(candidate) != base or not candidate.is_file():
                continue
            lock = _try_lock(candidate)
            if lock is not None:
                orphan = Spool.__new__(Spool)
                orphan._open(candidate, lock, 0)  # max_bytes 0: never appended to
                if orphan or orphan.corrupt:  # a torn line alone is still reported (as a dropped batch)
                    found.append(orphan)
                else:
                    orphan.close(remove=True)
        return found

    # -- internals --------------------------------------------------------------------------------

    def _advance_to(self, offset: int) -> None:
        self._head = offset
        if self._head >= self._size:
            self._truncate_at(0)

    def _cut_torn_tail(self) -> None:
        if not self._size:
            return
        self._file.seek(self._size - 1)
        if self._file.read(1) == b"\n":
            return
        # The last newline is in the final block in practice; read back further only if it is not.
        end = self._size
        while end > 0:
            start = max(0, end - 65536)
            self._file.seek(start)
            cut = self._file.read(end - start).rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        log.warning(
            "llm-exporter: cutting off a half-written last line (%d bytes) of the MLflow spool %s",
            self._size - end,
            self.path,
        )
        self.corrupt += 1
        self._truncate_at(end)

    def _truncate_at(self, offset: int) -> None:
        self._file.truncate(offset)
        self._file.flush()
        self._size = offset
        self._head = min(self._head, offset)

    def _compact(self) -> None:
        """Rewrite the file without the records already replayed, to make room at the tail."""
        self._file.seek(self._head)
        rest = self._file.read()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(rest)
        os.replace(tmp, self.path)
        self._file.close()
        self._file = open(self.path, "a+b")  # noqa: SIM115
        self._head = 0
        self._size = len(rest)


_SIBLING = "{stem}.{pid}{suffix}"


def _base(path: Path) -> Path:
    """The configured path a per-process sibling was derived from."""
    stem, _, pid = path.stem.rpartition(".")
    return path.with_name(stem + path.suffix) if stem and pid.isdigit() else path


def _try_lock(path: Path) -> IO[bytes] | None:
    lock = open(path.with_name(path.name + ".lock"), "a+b")  # noqa: SIM115
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return None
    return lock


def _claim(path: Path) -> tuple[Path, IO[bytes] | None]:
    """Lock ``path`` for this process, or a per-process sibling when another process holds it."""
    if fcntl is None:
        return path, None
    path.parent.mkdir(parents=True, exist_ok=True)
    sibling = path.with_name(_SIBLING.format(stem=path.stem, pid=os.getpid(), suffix=path.suffix))
    for candidate in (path, sibling):
        lock = _try_lock(candidate)
        if lock is not None:
            return candidate, lock
    raise OSError(f"cannot lock the MLflow spool {path}: another spool of this process holds it")
