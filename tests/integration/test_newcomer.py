"""What a new user meets first: the files the demo leaves behind (what the README says, and none without
MLflow), a test whose program is missing (skipped with one line, failed in CI), and the helpers of
.ci/newcomer.py, which CI runs to try the README's first command in fresh venvs."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ..support import REPO
from ..support.cli import exporter_cmd, exporter_env
from ..support.servers import free_port

README = (REPO / "README.md").read_text(encoding="utf-8")


def load_newcomer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("newcomer", REPO / ".ci" / "newcomer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


newcomer = load_newcomer()


def demo_in(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``llm-exporter demo`` for 2 s in ``workdir``, with no MLflow or exporter settings from this shell."""
    env = {k: v for k, v in exporter_env().items() if not k.startswith("MLFLOW_")}
    command = exporter_cmd("demo", "--port", str(free_port()), "--duration", "2", *args)
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def test_the_demo_writes_what_the_readme_says_and_nothing_else(tmp_path: Path) -> None:
    documented = newcomer.documented_demo_files(README)
    assert documented == {"mlflow.db", "llm-exporter-spool.jsonl", "llm-exporter-spool.jsonl.lock"}
    result = demo_in(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name for p in tmp_path.iterdir()} == documented
    assert (tmp_path / "llm-exporter-spool.jsonl").stat().st_size == 0  # MLflow kept up: nothing waits


def test_without_mlflow_the_demo_writes_nothing(tmp_path: Path) -> None:
    result = demo_in(tmp_path, "--no-mlflow")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MLflow" not in result.stdout
    assert list(tmp_path.iterdir()) == []


# -- a machine without Prometheus, Alertmanager and docker-compose ----------------------------------------


@pytest.fixture(scope="module")
def bare_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH with Python and the shell tools, and none of the programs the integration tests run."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for tool in ("python", "bash", "sh", "git"):
        found = sys.executable if tool == "python" else subprocess.run(["which", tool], capture_output=True,
                                                                           text=True).stdout.strip()  # fmt: skip
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def pytest_without_programs(bare_path: str, ci: str) -> subprocess.CompletedProcess[str]:
    env = {**exporter_env(), "PATH": bare_path, "CI": ci, "PYTHONPATH": str(REPO)}
    test = "tests/integration/test_templates.py::test_prometheus_config_and_its_rule_files_are_valid"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", test]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_outside_ci_a_missing_program_skips_its_test_with_one_line(bare_path: str) -> None:
    result = pytest_without_programs(bare_path, ci="")
    assert result.returncode == 0, result.stdout
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert [re.sub(r":\d+:", ":N:", line) for line in skipped] == [
        "SKIPPED [1] tests/support/servers.py:N: promtool is not installed; install it with: apt-get install prometheus"
    ]
    assert "1 skipped" in result.stdout and "Traceback" not in result.stdout


def test_in_ci_a_missing_program_fails_its_test(bare_path: str) -> None:
    result = pytest_without_programs(bare_path, ci="true")
    assert result.returncode == 1, result.stdout
    assert "promtool is not installed; install it with: apt-get install prometheus" in result.stdout.splitlines()
    assert "1 failed" in result.stdout


def test_in_ci_any_other_skip_fails_too(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text("import pytest\n\ndef test_it():\n    pytest.skip('not today')\n")
    # The repository's conftest, in front of a test that only skips.
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    env = {**exporter_env(), "CI": "true", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout
    assert "skipped in CI, where every test must run: Skipped: not today" in result.stdout


# -- .ci/newcomer.py ----------------------------------------------------------------------------------------


def test_metric_sums_add_up_every_series_of_a_sample() -> None:
    registry = CollectorRegistry()
    tokens = Counter("llm_tokens", "tokens", ["gen_ai_token_type"], registry=registry)
    tokens.labels("input").inc(812)
    tokens.labels("output").inc(143)
    Histogram("latency_seconds", "latency", registry=registry).observe(0.25)
    sums = newcomer.metric_sums(generate_latest(registry).decode())
    assert sums["llm_tokens_total"] == 955.0
    assert (sums["latency_seconds_count"], sums["latency_seconds_sum"]) == (1.0, 0.25)


def test_the_files_sentence_lists_the_names_in_backticks() -> None:
    text = "x. In the working directory the demo writes `a.db` (the store) and `b`, and nothing else. `c`"
    assert newcomer.documented_demo_files(text) == {"a.db", "b"}
