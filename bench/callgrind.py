"""Instruction counts under ``valgrind --tool=callgrind``, for the benchmarks' ``--instructions`` modes:
repeatable whatever else the machine is doing, where timings on a shared machine are not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path


def collected(argv: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """The instructions a run of ``python argv...`` executes (hash seed fixed, so both runs of a difference
    take the same paths through dicts and sets). ``env``: variables set over this process's environment."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *argv]
    env = {**os.environ, **(env or {}), "PYTHONHASHSEED": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=cwd)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind reported no count: {out.stderr[-500:]}")
    return int(found.group(1))


def per_unit(
    argv: Callable[[int], list[str]], units: int, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> float:
    """Instructions per unit of work: a run of ``argv(units)`` less a run of ``argv(0)`` (start-up, imports
    and warm-up cancel out), over ``units``."""
    none, some = (collected(argv(n), env=env, cwd=cwd) for n in (0, units))
    return (some - none) / units
