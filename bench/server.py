"""What one served request costs the uvicorn process, bare vs with llm-exporter (not a test).

wrk's requests/s move by ±10 % between runs on a shared machine; this measures what does not move with
the load instead. A uvicorn server (``bench/overhead.py``'s ``served()`` app, one variant) is driven by a
fixed-count keep-alive client on the other core; the server process reports, over the measured requests
only (after a warm-up), per request:

- garbage collections and their time, per generation (``gc.callbacks``);
- CPU time of each of its threads (``/proc/self/task``), and its context switches;
- the objects alive after startup (``len(gc.get_objects())``) and the threads running.

``--callgrind`` runs the server under ``valgrind --tool=callgrind --separate-threads=yes`` twice, with
the requests and with none, and prints the instructions per request of each thread (the difference over
the request count): the load-independent figure. ``--strace`` counts the syscalls per request.

    python bench/server.py [--requests 20000] [--variants bare llm-exporter] [--callgrind] [--strace]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUEST = b"GET /items/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# -- the server side: uvicorn in this process, with the probes -------------------------------------------


class Probes:
    """gc collections and their time per generation, since the last snapshot."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            generation = info["generation"]
            self.count[generation] += 1
            self.seconds[generation] += time.perf_counter() - self._start

    def snapshot(self) -> dict[str, Any]:
        gc_count, gc_seconds = list(self.count), list(self.seconds)  # before the collection _garbage() runs
        garbage, alive = self._garbage()
        ticks = os.sysconf("SC_CLK_TCK")
        names = {t.native_id: t.name for t in threading.enumerate()}
        cpu: dict[str, float] = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            name = names.get(int(tid), f"native-{tid}")  # threads Python did not start (none expected)
            cpu[name] = cpu.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if "ctxt_switches" in line)
        return {
            "gc_count": gc_count,
            "gc_seconds": gc_seconds,
            "objects": len(gc.get_objects()),
            "threads": sorted(names.values()),
            "cpu": cpu,
            "ctxt": {k.strip(): int(v) for k, v in status.items()},
            "garbage": garbage,
            "alive": alive,
        }

    def _garbage(self) -> tuple[dict[str, int], dict[str, int]]:
        """With BENCH_GARBAGE=1: the types of the objects only the collector freed since the last snapshot
        (reference cycles, kept by ``gc.DEBUG_SAVEALL`` from the first snapshot on), and of those alive."""
        if not os.environ.get("BENCH_GARBAGE"):
            return {}, {}
        gc.collect()
        kinds = Counter(type(o).__qualname__ for o in gc.garbage)
        gc.garbage.clear()
        gc.set_debug(gc.DEBUG_SAVEALL)
        return dict(kinds.most_common(20)), dict(Counter(type(o).__qualname__ for o in gc.get_objects()))


def serve(variant: str, port: int, stats: str) -> None:
    import uvicorn

    os.environ["BENCH_VARIANT"] = variant
    probes = Probes()

    def dump(signum: int, frame: Any) -> None:
        with open(stats, "a") as f:
            f.write(json.dumps(probes.snapshot()) + "\n")

    signal.signal(signal.SIGUSR1, dump)
    with open(stats + ".pid", "w") as f:  # under strace the server is not the process run() started
        f.write(str(os.getpid()))
    # As bench/overhead.py's wrk run starts it: the factory, no access log.
    config = uvicorn.Config(
        "bench.overhead:served", factory=True, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    with contextlib.suppress(KeyboardInterrupt):  # run() stops it with SIGINT, as Ctrl-C would
        uvicorn.Server(config).run()


# -- the client side: a fixed number of keep-alive requests over a few connections -----------------------


async def _connection(port: int, n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(n):
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
    writer.close()


async def _drive(port: int, requests: int, connections: int) -> None:
    share, extra = divmod(requests, connections)
    await asyncio.gather(*(_connection(port, share + (i < extra)) for i in range(connections)))


def drive(port: int, requests: int, connections: int = 32) -> None:
    if requests:
        asyncio.run(_drive(port, requests, connections))


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    variant: str, requests: int, warmup: int, wrapper: list[str], env: dict[str, str], timeout: float = 600
) -> list[dict[str, Any]]:
    """Serve ``variant`` (under ``wrapper``), warm up, snapshot, drive ``requests``, snapshot, stop."""
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    port = _free_port()
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        stats = f.name
    cmd = [*wrapper, sys.executable, str(HERE / "server.py"), "serve", variant, str(port), stats]
    full_env = {**os.environ, **env, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.Popen([*(["taskset", "-c", "0"] if pin else []), *cmd], cwd=HERE.parent, env=full_env)
    client = [sys.executable, str(HERE / "server.py"), "drive", str(port)]
    client = [*(["taskset", "-c", "1"] if pin else []), *client]
    server = proc.pid
    try:
        _wait_ready(port, proc, timeout)
        with open(stats + ".pid") as f:
            server = int(f.read())
        subprocess.run([*client, str(warmup)], check=True)
        time.sleep(0.5)  # let startup work settle
        os.kill(server, signal.SIGUSR1)
        time.sleep(0.5)
        subprocess.run([*client, str(requests)], check=True)
        os.kill(server, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while _lines(stats) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.kill(server, signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with open(stats) as f:
        snapshots = [json.loads(line) for line in f]
    os.unlink(stats)
    os.unlink(stats + ".pid")
    return snapshots


def _lines(path: str) -> int:
    with open(path) as f:
        return sum(1 for _ in f)


def per_request(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, Any]:
    gcs = [after["gc_count"][g] - before["gc_count"][g] for g in range(3)]
    gc_us = [(after["gc_seconds"][g] - before["gc_seconds"][g]) * 1e6 for g in range(3)]
    cpu = {t: (after["cpu"].get(t, 0.0) - before["cpu"].get(t, 0.0)) * 1e6 / n for t in after["cpu"]}
    ctxt = {k: (after["ctxt"][k] - before["ctxt"][k]) / n for k in after["ctxt"]}
    return {
        "objects after startup": before["objects"],
        "threads": before["threads"],
        "gc per 10,000 requests (gen 0/1/2)": [round(c * 10_000 / n, 1) for c in gcs],
        "gc µs per request (gen 0/1/2)": [round(t / n, 3) for t in gc_us],
        "cpu µs per request by thread": {t: round(v, 1) for t, v in cpu.items()},
        "context switches per request": {k: round(v, 3) for k, v in ctxt.items()},
        **({"cycles freed by the collector, by type": after["garbage"]} if after["garbage"] else {}),
        **({"objects alive, growth by type": _growth(before["alive"], after["alive"])} if after["alive"] else {}),
    }


def _growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    grown = {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)}
    return dict(sorted(grown.items(), key=lambda kv: -abs(kv[1]))[:20])


# -- callgrind and strace -----------------------------------------------------------------------------------


def callgrind(variant: str, requests: int, warmup: int, env: dict[str, str]) -> dict[str, float]:
    """Instructions per request of each server thread: a run with ``requests`` minus a run with none, both
    after ``warmup`` requests (past the drift detector's baseline of 1,000: the steady state)."""
    totals = []
    for n in (requests, 0):
        out = tempfile.mkdtemp(prefix="cg-")
        wrapper = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}/cg.out"]
        run(variant, n, warmup, wrapper, env)
        totals.append(_thread_totals(out))
        shutil.rmtree(out)
    loaded, idle = totals
    return {t: (loaded.get(t, 0) - idle.get(t, 0)) / requests for t in sorted(loaded)}


def _thread_totals(out: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for name in sorted(os.listdir(out)):
        with open(os.path.join(out, name)) as f:
            text = f.read()
        thread = re.search(r"^thread: (\d+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if thread and total:
            totals[f"thread {thread.group(1)}"] = int(total.group(1))
    return totals


def strace(variant: str, requests: int, env: dict[str, str]) -> dict[str, float]:
    """Syscalls per request: a run with ``requests`` minus a run with none, by syscall."""
    counts = []
    for n in (requests, 0):
        with tempfile.NamedTemporaryFile(suffix=".strace", delete=False) as f:
            path = f.name
        run(variant, n, 0, ["strace", "-f", "-c", "-o", path], env)
        counts.append(_strace_counts(path))
        os.unlink(path)
    loaded, idle = counts
    return {c: (loaded[c] - idle.get(c, 0)) / requests for c in sorted(loaded) if loaded[c] - idle.get(c, 0)}


def _strace_counts(path: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
    return counts


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.path.insert(0, str(HERE.parent))
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "drive":
        drive(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--variants", nargs="*", default=["bare", "llm-exporter"])
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for the server (e.g. config overrides)")
    parser.add_argument("--callgrind", type=int, metavar="N", help="instructions per request over N requests")
    parser.add_argument("--strace", type=int, metavar="N", help="syscalls per request over N requests")
    args = parser.parse_args()
    env = dict(kv.split("=", 1) for kv in args.env)
    for variant in args.variants:
        before, after = run(variant, args.requests, args.warmup, [], env)
        print(variant, json.dumps(per_request(before, after, args.requests), ensure_ascii=False, indent=1))
        if args.callgrind:
            counts = callgrind(variant, args.callgrind, args.warmup, env)
            print(variant, "instructions per request:", json.dumps(counts))
        if args.strace:
            print(variant, "syscalls per request:", json.dumps(strace(variant, args.strace, env), indent=1))


if __name__ == "__main__":
    main()
