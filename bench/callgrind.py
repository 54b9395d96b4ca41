"""Instruction counts under ``valgrind --tool=callgrind``, for the benchmarks' ``--instructions`` modes:
repeatable whatever else the machine is doing, where timings on a shared machine are not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path


def collected(
    argv: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None, main_thread: bool = False
) -> int:
    """The instructions a run of ``python argv...`` executes (hash seed fixed, so both runs of a difference
    take the same paths through dicts and sets). ``env``: variables set over this process's environment.
    ``main_thread``: the main thread's only. The sinks' threads (MLflow's writer retrying, drift's checks)
    wake on a clock, and a run under valgrind is ~50 times slower, so a longer run counts more of their
    work: in a difference of two runs that is noise, which this leaves out."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    env = {**os.environ, **(env or {}), "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp, "callgrind.out")
        cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out_file}", "--separate-threads=yes"]
        out = subprocess.run(
            [*cmd, sys.executable, *argv], capture_output=True, text=True, check=True, env=env, cwd=cwd
        )
        if main_thread:
            # One file per thread with --separate-threads; the main thread's is the first.
            found = re.search(r"^totals: (\d+)", Path(f"{out_file}-01").read_text(), re.MULTILINE)
        else:
            found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind reported no count: {out.stderr[-500:]}")
    return int(found.group(1))


def per_unit(
    argv: Callable[[int], list[str]],
    units: int,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    main_thread: bool = False,
) -> float:
    """Instructions per unit of work: a run of ``argv(units)`` less a run of ``argv(0)`` (start-up, imports
    and warm-up cancel out), over ``units``. ``argv(0)`` runs once before, without valgrind: it writes the
    bytecode caches, which the counted run without units would otherwise pay for (a tree edited since its
    last run compiles then), lowering its count by thousands of instructions."""
    subprocess.run(
        [sys.executable, *argv(0)], env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, check=True
    )
    none, some = (collected(argv(n), env=env, cwd=cwd, main_thread=main_thread) for n in (0, units))
    return (some - none) / units
