"""``llm-exporter``: ``run`` against real uvicorn processes, ``check``, and user mistakes (exit 2, no traceback)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from exporter import Config
from exporter.cli import main
from exporter.config import effective_config

from ..support.cli import DURATION, PLAIN, REPO, cli, exporter_cmd, exporter_env, http_labels, scrape
from ..support.metrics import text_samples, text_value
from ..support.servers import HOST, free_port, process

# -- run ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``llm-exporter run`` on the unmodified example app, with a config file adding a static label."""
    workdir = tmp_path_factory.mktemp("run")
    config = workdir / "llm-exporter.yaml"
    config.write_text("labels: {service: plain}\nexclude_paths: [/health]\n")
    port = free_port()
    args = exporter_cmd("run", PLAIN, "--port", str(port), "--config", str(config))
    url = f"http://{HOST}:{port}"
    with process(args, f"{url}/health", cwd=REPO, env=exporter_env(), log=str(workdir / "server.log")):
        yield url


def test_plain_app_has_no_monitoring_code() -> None:
    source = (REPO / "examples" / "plain_app.py").read_text()
    assert "import exporter" not in source and "from exporter" not in source


def test_run_wraps_an_unmodified_app(wrapped: str) -> None:
    with httpx.Client(base_url=wrapped, timeout=10) as client:
        for i in range(3):
            assert client.get(f"/items/{i}").json() == {"id": str(i)}
        for _ in range(2):
            assert client.post("/echo", content=b"hello").content == b"hello"
        assert client.get("/no/such/page").status_code == 404
        r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = r.text
    items = http_labels("GET", "/items/{item_id}", "200", service="plain")
    echo = http_labels("POST", "/echo", "200", service="plain")
    assert text_value(text, f"{DURATION}_count", **items) == 3.0
    assert text_value(text, f"{DURATION}_count", **echo) == 2.0
    assert text_value(text, "http_server_request_body_size_bytes_sum", **echo) == 10.0
    assert text_value(text, "http_server_response_body_size_bytes_sum", **echo) == 10.0
    assert text_value(text, f"{DURATION}_count", **http_labels("GET", "__unmatched__", "404", service="plain")) == 1.0
    active = {"http_request_method": "GET", "http_route": "/items/{item_id}", "service": "plain"}
    assert text_value(text, "http_server_active_requests", **active) == 0.0
    # /health is excluded by the config file, /metrics always is.
    assert not [k for k in text_samples(text) if dict(k[1]).get("http_route") in ("/health", "/metrics")]


@pytest.fixture(scope="module")
def separate_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("run-metrics-port")
    port, metrics_port = free_port(), free_port()
    args = exporter_cmd("run", PLAIN, "--port", str(port), "--metrics-port", str(metrics_port))
    url = f"http://{HOST}:{port}"
    with process(args, f"{url}/health", cwd=REPO, env=exporter_env(), log=str(workdir / "server.log")):
        yield url, f"http://{HOST}:{metrics_port}"


def test_run_with_metrics_port(separate_port: tuple[str, str]) -> None:
    url, metrics_url = separate_port
    for i in range(4):
        assert httpx.get(f"{url}/items/{i}", timeout=10).status_code == 200
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 404  # the app's own 404: not served there
    r = httpx.get(f"{metrics_url}/metrics", timeout=10, headers={"accept": "application/openmetrics-text"})
    assert r.status_code == 200
    assert r.text.endswith("# EOF\n")
    items = (f"{DURATION}_count", tuple(sorted(http_labels("GET", "/items/{item_id}", "200").items())))
    got = scrape(metrics_url, lambda s: s.get(items) == 4.0)
    assert got[items] == 4.0
    # The app's 404 for /metrics is excluded from the metrics like the path itself.
    assert (f"{DURATION}_count", tuple(sorted(http_labels("GET", "__unmatched__", "404").items()))) not in got


def test_fastapi_example(tmp_path: Path) -> None:
    """The in-code way: ``app.add_middleware(PrometheusMiddleware, ...)``, served by plain uvicorn."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--host", HOST, "--port", str(port)]
    with process(args, f"{url}/health", cwd=REPO, env=exporter_env(), log=str(tmp_path / "server.log")):
        for session in ("s-1", "s-2"):
            r = httpx.post(f"{url}/v1/chat/{session}", json={"prompt": "abc"}, timeout=10)
            assert r.json() == {"session": session, "answer": "cba"}
        text = httpx.get(f"{url}/metrics", timeout=10).text
    chat = http_labels("POST", "/v1/chat/{session_id}", "200", service="chat")
    assert text_value(text, f"{DURATION}_count", **chat) == 2.0
    assert text_value(text, "http_server_request_body_size_bytes_sum", **chat) == 2.0 * len(b'{"prompt":"abc"}')


# -- check --------------------------------------------------------------------------------------------------


SECRETS = {
    "auth": {"bearer_token": "tok-SECRET-1"},
    "collector": {"token": "tok-SECRET-2"},
    "mlflow": {"tracking_uri": "http://alice:pw-SECRET-3@127.0.0.1:5000"},
}


def test_check_prints_effective_config_with_secrets_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "llm-exporter.yaml"
    path.write_text(yaml.safe_dump({**SECRETS, "labels": {"service": "chat"}, "label_cap": 50}))
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "SECRET" not in out
    config_text = out.split("\n\n")[0]
    shown = yaml.safe_load(config_text)
    assert shown["labels"] == {"service": "chat"}
    assert shown["label_cap"] == 50
    assert shown["auth"] == {"bearer_token": "***", "basic_username": None, "basic_password": None}
    assert shown["collector"]["token"] == "***"
    assert shown["mlflow"]["tracking_uri"] == "http://***@127.0.0.1:5000"
    assert shown["metrics_path"] == "/metrics"


def test_effective_config_masks_basic_password_and_keeps_the_rest() -> None:
    config = Config.from_mapping({"auth": {"basic_username": "prom", "basic_password": "hunter2"}})
    shown = effective_config(config)
    assert shown["auth"] == {"bearer_token": None, "basic_username": "prom", "basic_password": "***"}
    assert shown["collector"]["token"] is None
    unmasked = effective_config(Config())
    assert unmasked["exclude_paths"] == ["/metrics", "/health"]
    assert unmasked["buckets"]["http_duration"][-1] == 300.0


def test_check_without_config_uses_defaults(tmp_path: Path) -> None:
    result = cli("check", cwd=tmp_path)  # no ./llm-exporter.yaml there
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    shown = yaml.safe_load(result.stdout.split("\n\n")[0])
    assert shown["label_cap"] == 100
    assert shown["metrics_port"] is None


def test_check_reads_llm_exporter_yaml_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "llm-exporter.yaml").write_text("label_cap: 7\n")
    result = cli("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout.split("\n\n")[0])["label_cap"] == 7


def test_check_bad_config_file_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("label_cap: lots\n")
    result = cli("check", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"llm-exporter: error: {path}: label_cap: expected an integer, got str 'lots'\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mlflow:\n  windw_seconds: 5\n", "mlflow.windw_seconds: unknown key; expected one of: "),
        ("metrics_port: 70000\n", "metrics_port: expected a port between 1 and 65535, got 70000"),
        ("auth:\n  basic_username: u\n", "auth.basic_password: basic auth needs both"),
        ("a: [\n", "line 2: not valid YAML"),
    ],
)
def test_check_config_errors_name_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"llm-exporter: error: {path}: {message}")
    assert "Traceback" not in err


def test_check_bad_pricing_file_names_that_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  my-model: {input: -1, output: 2}\n")
    config = tmp_path / "llm-exporter.yaml"
    config.write_text(f"pricing:\n  file: {prices}\n")
    assert main(["check", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"llm-exporter: error: {prices}: models.my-model.input: expected a price")


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yaml"
    assert main(["check", "--config", str(path)]) == 2
    assert capsys.readouterr().err == f"llm-exporter: error: {path}: (file): cannot read: No such file or directory\n"


def test_bad_environment_variable_is_named() -> None:
    result = cli("check", env=exporter_env(LLM_EXPORTER_LABEL_CAP="lots"))
    assert result.returncode == 2
    expected = "LLM_EXPORTER_LABEL_CAP: label_cap: expected an integer, got str 'lots'"
    assert result.stderr == f"llm-exporter: error: {expected}\n"


# -- the command line itself ----------------------------------------------------------------------------------


def test_python_m_exporter_help() -> None:
    result = cli("--help")
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith("usage: llm-exporter ")
    for command in ("demo", "run", "collector", "check"):
        assert f"    {command} " in result.stdout or f"    {command}\n" in result.stdout


def test_run_help_lists_its_options() -> None:
    result = cli("run", "--help")
    assert result.returncode == 0
    for option in ("MODULE:APP", "--host", "--port", "--workers", "--metrics-port", "--config"):
        assert option in result.stdout


# An app that cannot be imported, for each reason there is: (files of the project, target, the one line).
BAD_APPS = {
    "no such module": ({}, "myproject.main:app", "cannot import myproject.main: there is no module 'myproject' "
                       "(run from the directory that holds it, or set PYTHONPATH)"),
    "no such submodule": ({"myproject/__init__.py": ""}, "myproject.main:app",
                          "cannot import myproject.main: there is no module 'myproject.main' "
                          "(run from the directory that holds it, or set PYTHONPATH)"),
    "missing dependency": ({"myproject/__init__.py": "", "myproject/main.py": "import no_such_dependency\n"},
                           "myproject.main:app",
                           "cannot import myproject.main: it imports 'no_such_dependency', which is not installed"),
    "missing own module": ({"myproject/__init__.py": "", "myproject/main.py": "import myproject.db\n"},
                           "myproject.main:app",
                           "cannot import myproject.main: it imports 'myproject.db', which does not exist"),
    "syntax error": ({"main.py": "app = (\n"}, "main:app",
                     "cannot import main: '(' was never closed ({cwd}/main.py, line 1)"),
    "error at import": ({"main.py": "raise RuntimeError('DATABASE_URL is not set')\n"}, "main:app",
                        "cannot import main: RuntimeError: DATABASE_URL is not set"),
    "missing attribute": ({"main.py": "application = None\n"}, "main:app", "main has no attribute 'app'"),
    "not an app": ({"main.py": "app = 'hello'\n"}, "main:app", "main:app is a str, not an ASGI app"),
    "not MODULE:APP": ({}, "main", "expected MODULE:APP, got 'main'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_APPS))
def test_run_an_app_that_cannot_be_imported_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    files, target, message = BAD_APPS[case]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    result = cli("run", target, "--port", str(free_port()), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"llm-exporter: error: {message.format(cwd=tmp_path)}\n"


def test_run_bad_config_exits_2_before_serving(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("exclude_paths: [1, {a: b}]\n")
    port = free_port()
    result = cli("run", PLAIN, "--port", str(port), "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == f"llm-exporter: error: {path}: exclude_paths[1]: expected a string, got dict\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--port", "70000"], "--port must be a port between 1 and 65535, got 70000"),
        (["--metrics-port", "0"], "--metrics-port must be a port between 1 and 65535, got 0"),
        (["--port", "8123", "--metrics-port", "8123"], "--metrics-port must differ from --port (both 8123)"),
    ],
)
def test_run_bad_options_exit_2(args: list[str], message: str) -> None:
    result = cli("run", PLAIN, *args)
    assert result.returncode == 2
    assert result.stderr == f"llm-exporter: error: {message}\n"


def test_run_metrics_port_in_use_exits_2() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = cli("run", PLAIN, "--port", str(free_port()), "--metrics-port", str(busy))
    assert result.returncode == 2
    assert result.stderr == f"llm-exporter: error: cannot serve metrics on {HOST}:{busy}: Address already in use\n"


def test_unknown_command_is_an_argparse_error() -> None:
    result = cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr
