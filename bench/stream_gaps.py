"""What response capture costs per stream chunk, in several checkouts side by side (not a test).

    python bench/stream_gaps.py [TREE ...] [--streams 100] [--instructions] [--crlf]

Feeds the 200-chunk OpenAI stream of ``payloads.openai_sse`` (3 ms apart on the clock it is given; with
``--crlf``, its events end with CRLF, as sse-starlette ends them) to response capture and finishes it,
with the ``exporter`` of each tree (this one by default), and reports the cost per chunk: the capture's
whole cost, recording aside (a capture that reads its chunks in batches reads the last ones in
``finish``). To see what one part costs, compare this tree with a copy without that part: the gap
histogram's binning (``batches.bin_gaps``), for instance, or a checkout from before the streaming
signals. ``--instructions`` counts CPU instructions under ``valgrind --tool=callgrind`` instead of
timing: repeatable on a busy machine, where timings of a fraction of a microsecond are not.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
CHUNKS = 201  # the stream's events: a role chunk, 197 content chunks, the finish, the usage and [DONE]


def probe(streams: int, crlf: bool = False) -> None:
    """Feed ``streams`` streams (after one to warm up) with the ``exporter`` on ``sys.path``."""
    sys.path.insert(0, str(HERE.parent))
    from payloads import openai_sse

    from exporter.capture.response import start_capture
    from exporter.config import Config

    cfg = Config().capture
    headers = [(b"content-type", b"text/event-stream")]
    chunks = openai_sse()
    if crlf:
        chunks = [chunk.replace(b"\n", b"\r\n") for chunk in chunks]
    assert len(chunks) == CHUNKS
    clock = [i * 0.003 for i in range(len(chunks))]
    for _ in range(1 + streams):
        c = start_capture(headers, cfg)
        assert c is not None
        for chunk, now in zip(chunks, clock, strict=True):
            c.feed(chunk, now)
        c.finish(0.0, clock[-1], 200)


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{tree}:{HERE.parent}", "PYTHONHASHSEED": "0"}


def timed(tree: Path, streams: int, crlf: bool) -> float:
    """Best seconds per chunk over five runs, each in a fresh process of ``tree``."""
    code = (
        f"import time; from stream_gaps import probe; probe(0, {crlf}); "
        f"t = time.perf_counter(); probe({streams}, {crlf}); print(time.perf_counter() - t)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], env=_env(tree), capture_output=True, text=True, check=True)
        for _ in range(5)
    ]
    return min(float(r.stdout) for r in runs) / ((streams + 1) * CHUNKS)


def instructions(tree: Path, streams: int, crlf: bool) -> float:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed")
    totals = []
    for n in (0, streams):
        cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, str(HERE)]
        cmd += ["--probe", str(n), *(["--crlf"] if crlf else [])]
        out = subprocess.run(cmd, env=_env(tree), cwd=tree, capture_output=True, text=True, check=True).stderr
        totals.append(int(re.search(r"Collected : (\d+)", out).group(1)))  # type: ignore[union-attr]
    return (totals[1] - totals[0]) / (streams * CHUNKS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", type=Path, nargs="*", default=[HERE.parent.parent])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--crlf", action="store_true", help="events that end with CRLF")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        probe(args.probe, args.crlf)
        return
    for tree in args.trees:  # compiled once, so no run pays for writing the bytecode caches
        subprocess.run([sys.executable, "-c", "from stream_gaps import probe; probe(0)"], env=_env(tree), check=True)
    if args.instructions:
        for tree in args.trees:
            print(f"{instructions(tree, args.streams, args.crlf):9.0f} instructions per chunk  {tree}")
    else:
        for tree in args.trees:
            print(f"{timed(tree, args.streams, args.crlf) * 1e9:9.1f} ns per chunk  {tree}")


if __name__ == "__main__":
    main()
