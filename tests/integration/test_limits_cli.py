"""User mistakes on the command line: every one is a single line on stderr and exit status 2, naming the
key (or option), never a traceback, a server that starts open, or a read that blocks forever."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.cli import main

from ..support.cli import cli

SECRET = "expected a non-empty secret (leave the key out for none), got ''"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auth:\n  bearer_token: ''\n", f"auth.bearer_token: {SECRET}"),
        ("collector:\n  token: ''\n", f"collector.token: {SECRET}"),
        ("mlflow:\n  window_seconds: .nan\n", "mlflow.window_seconds: expected a finite number, got float nan"),
        ("mlflow:\n  window_seconds: .inf\n", "mlflow.window_seconds: expected a finite number, got float inf"),
        (
            "mlflow:\n  shutdown_timeout_seconds: .inf\n",
            "mlflow.shutdown_timeout_seconds: expected a finite number, got float inf",
        ),
        ("drift:\n  psi_threshold: .nan\n", "drift.psi_threshold: expected a finite number, got float nan"),
        ("buckets:\n  http_duration: [.nan]\n", "buckets.http_duration[0]: expected a finite number, got float nan"),
        ("buckets:\n  http_duration: [.inf]\n", "buckets.http_duration[0]: expected a finite number, got float inf"),
        ("collector:\n  port: 99999\n", "collector.port: expected a port between 1 and 65535, got 99999"),
        ("drift:\n  bins: 10000000\n", "drift.bins: expected an integer between 2 and 100, got 10000000"),
        (
            "drift:\n  resolution: 10000000\n",
            "drift.resolution: expected an integer between drift.bins (10) and 1000, got 10000000",
        ),
    ],
)
@pytest.mark.parametrize("command", ["check", "collector"])
def test_each_bad_value_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main([command, "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"llm-exporter: error: {path}: {message}\n")


def test_an_empty_collector_token_never_starts_an_open_collector(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("collector:\n  token: ''\n")
    result = cli("collector", "--config", str(path))  # before: served /track to anyone
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"llm-exporter: error: {path}: collector.token: {SECRET}\n"


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_collector_port_out_of_range_is_one_line(port: str) -> None:
    result = cli("collector", "--port", port)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"llm-exporter: error: --port: expected a port between 1 and 65535, got {port}\n"


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("labels: {service: café}\n".encode("latin-1"))
    result = cli("check", "--config", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"llm-exporter: error: {path}: (file): not UTF-8 text (byte 0xe9 at offset 21)\n"


def test_a_fifo_as_config_path_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)  # nobody writes to it: reading it would block forever
    result = cli("check", "--config", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    message = "(file): not a regular file (a directory, FIFO or device is never read)"
    assert result.stderr == f"llm-exporter: error: {path}: {message}\n"
