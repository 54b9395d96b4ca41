"""The README's first command as a new user runs it, from a built wheel and from an editable install.

First the sdist and the wheel are built (``python -m build``: the wheel from the sdist) and checked
(``twine check --strict``). Then, for the wheel and for ``pip install -e ".[mlflow]"`` in a copy of the
checkout: a fresh venv holding nothing but what that command installs; ``llm-exporter demo --duration 15``
in an empty directory, whose ``/metrics`` must show tokens and cost within 20 s; the directory must then
hold exactly what the README says the demo writes; and ``llm-exporter templates`` must write every
template byte for byte. Prints the time of each step. Standard library only.

    python .ci/newcomer.py [--keep]     (--keep: leave the temporary directory for a look)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DURATION = 15  # seconds of demo
LIVE_WITHIN = 20.0  # seconds from the demo's start to a /metrics with tokens and cost
# The README sentence that lists the demo's files, up to "nothing else".
FILES_SENTENCE = "In the working directory the demo writes"
TIMES: list[tuple[str, float]] = []


class Failed(Exception):
    pass


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    print(f"--- {name}", flush=True)
    began = time.monotonic()
    yield
    TIMES.append((name, time.monotonic() - began))
    print(f"    {TIMES[-1][1]:.1f} s", flush=True)


def documented_demo_files(readme: str) -> set[str]:
    """The file names (in backticks) of the README's sentence on what the demo writes."""
    start = readme.index(FILES_SENTENCE)
    return set(re.findall(r"`([^`]+)`", readme[start : readme.index("nothing else", start)]))


def clean_env(venv: Path | None = None) -> dict[str, str]:
    """This environment without anything that would make the new user's machine differ from a fresh one."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("LLM_EXPORTER_", "MLFLOW_"))}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    return env


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise Failed(
            f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
        )
    return proc.stdout


def copy_checkout(dest: Path) -> None:
    """What a fresh clone holds, plus this checkout's files that are new and not ignored."""
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric_sums(text: str) -> dict[str, float]:
    """Sum of each sample name over its series, from the Prometheus text format."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


def demo(venv: Path, workdir: Path) -> float:
    """Run the demo in ``workdir``; the seconds until its /metrics showed tokens and cost."""
    port = free_port()
    args = [str(venv / "bin" / "llm-exporter"), "demo", "--port", str(port), "--duration", str(DURATION)]
    began = time.monotonic()
    proc = subprocess.Popen(args, cwd=workdir, env=clean_env(venv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    live = None
    try:
        while live is None and proc.poll() is None and time.monotonic() - began < LIVE_WITHIN:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                    sums = metric_sums(answer.read().decode())
                if sums.get("llm_tokens_total", 0) > 0 and sums.get("llm_cost_usd_total", 0) > 0:
                    live = time.monotonic() - began
                    print(f"    tokens {sums['llm_tokens_total']:.0f}, cost ${sums['llm_cost_usd_total']:.6f} "
                          f"after {live:.1f} s")  # fmt: skip
            except OSError:
                pass
            time.sleep(0.25)
        out, _ = proc.communicate(timeout=DURATION + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = out.decode(errors="replace")
    print("    " + text.rstrip().replace("\n", "\n    "))
    if live is None:
        raise Failed(f"no tokens and cost on /metrics within {LIVE_WITHIN:g} s of the demo's start")
    if proc.returncode != 0 or "Traceback" in text:
        raise Failed(f"the demo exited {proc.returncode}")
    return live


def check_files(workdir: Path, expected: set[str]) -> None:
    found = {p.name for p in workdir.iterdir()}
    if found != expected:
        raise Failed(f"the demo left {sorted(found)} in its directory; the README says {sorted(expected)}")


def check_templates(venv: Path, out: Path) -> None:
    run(venv / "bin" / "llm-exporter", "templates", out, env=clean_env(venv))
    files = runpy.run_path(str(ROOT / "exporter" / "templates.py"))["FILES"]
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    if written != sorted(files):
        raise Failed(f"llm-exporter templates wrote {written}, expected {sorted(files)}")
    for name in files:
        if (out / name).read_bytes() != (ROOT / name).read_bytes():
            raise Failed(f"llm-exporter templates: {name} differs from the repository's")


def newcomer(tmp: Path) -> None:
    expected = documented_demo_files((ROOT / "README.md").read_text(encoding="utf-8"))
    clone = tmp / "clone"
    with step("copy of the checkout, as a fresh clone has it"):
        copy_checkout(clone)
    dist = tmp / "dist"
    with step("python -m build (sdist, then the wheel from it); twine check"):
        run(sys.executable, "-m", "build", "--outdir", dist, clone)
        packages = sorted(dist.iterdir())
        run(sys.executable, "-m", "twine", "check", "--strict", *packages)
    [wheel] = [p for p in packages if p.suffix == ".whl"]
    for mode, spec, cwd in (("wheel", f"{wheel}[mlflow]", tmp), ("editable", ".[mlflow]", clone)):
        venv = tmp / f"venv-{mode}"
        run(sys.executable, "-m", "venv", venv)
        editable = ["-e"] if mode == "editable" else []
        with step(f"{mode}: pip install {' '.join([*editable, spec.replace(str(tmp) + '/', '')])}"):
            run(venv / "bin" / "pip", "install", "-q", *editable, spec, cwd=cwd, env=clean_env(venv))
        workdir = tmp / f"empty-{mode}"
        workdir.mkdir()
        with step(f"{mode}: llm-exporter demo --duration {DURATION} in an empty directory"):
            demo(venv, workdir)
            check_files(workdir, expected)
        with step(f"{mode}: llm-exporter templates"):
            check_templates(venv, tmp / f"templates-{mode}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="newcomer-"))
    began = time.monotonic()
    try:
        newcomer(tmp)
    except Failed as exc:
        print(f"newcomer: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("newcomer: OK")
    for name, seconds in TIMES:
        print(f"  {seconds:6.1f} s  {name}")
    print(f"  {time.monotonic() - began:6.1f} s  in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
