"""Instruction counts under ``valgrind --tool=callgrind``, for the benchmarks' ``--instructions`` modes:
repeatable whatever else the machine is doing, where timings on a shared machine are not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys


def collected(argv: list[str]) -> int:
    """The instructions a run of ``python argv...`` executes (hash seed fixed, so both runs of a difference
    take the same paths through dicts and sets)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind reported no count: {out.stderr[-500:]}")
    return int(found.group(1))
