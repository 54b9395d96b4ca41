"""The README works as written: its YAML through the config loader, its promtool commands through
promtool, its ``llm-exporter`` commands through the real argument parser, its shown outputs reproduced,
its Python examples free of undefined names, and the ones that run here run.

(The first two commands, ``pip install -e ".[mlflow]" && llm-exporter demo`` and ``bash .ci/test``, are
what CI runs: .ci/newcomer.py and .ci/run.)
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml

from exporter import Config
from exporter.cli import _parser
from exporter.pricing import PricingTable, TokenUsage

from ..support import REPO
from ..support.cli import cli, exporter_env
from ..support.servers import HOST, binary, free_port, process

README = (REPO / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```\n", re.S | re.M)  # blocks in list items are indented
FILE_HEADER = re.compile(r"# ([\w.-]+\.yaml): ")  # a YAML block that is a file the others name


def blocks(lang: str, text: str = README) -> list[str]:
    return [textwrap.dedent(m.group(3)) for m in FENCE.finditer(text) if m.group(2) == lang]


def block_with(lang: str, text: str) -> str:
    [found] = [b for b in blocks(lang) if text in b]
    return found


def shell_lines() -> list[str]:
    """The command lines of the shell blocks as written, continuation lines joined, comments dropped."""
    lines = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+# .*$", "", line).strip()
            if line:
                lines.append(line)
    return lines


def commands(prefix: str) -> list[str]:
    """The commands (lines split at ``&&``) that start with ``prefix``."""
    return [c.strip() for line in shell_lines() for c in line.split("&&") if c.strip().startswith(prefix)]


# -- YAML -----------------------------------------------------------------------------------------------


def yaml_blocks() -> tuple[dict[str, str], list[str]]:
    """The YAML blocks that are files the config names (``# my-prices.yaml: ...`` first), and the rest."""
    files, configs = {}, []
    for block in blocks("yaml"):
        header = FILE_HEADER.match(block)
        if header:
            files[header.group(1)] = block
        else:
            configs.append(block)
    return files, configs


def test_the_readme_has_the_yaml_blocks_this_test_reads() -> None:
    files, configs = yaml_blocks()
    assert list(files) == ["my-prices.yaml"]
    assert len(configs) == 5  # pricing, outbound capture, collector, the full configuration, mlflow


@pytest.mark.parametrize("index", range(5))
def test_every_yaml_block_is_a_valid_config_as_written(tmp_path: Path, index: int) -> None:
    files, configs = yaml_blocks()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "llm-exporter.yaml"
    path.write_text(configs[index])
    config = Config.from_yaml(path)
    PricingTable.from_config(config.pricing)  # the price file it names, its aliases and overrides
    result = cli("check", "--config", str(path), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


def test_the_full_configuration_block_shows_the_defaults() -> None:
    # As a mapping: from a file, its mlflow.spool_path would become relative to that file.
    config = Config.from_mapping(yaml.safe_load(block_with("yaml", "buckets:")))
    assert config.labels == {"service": "chat", "env": "prod"}  # the one example in it
    assert dataclasses.replace(config, labels={}) == Config()
    keys = {line.split(":")[0] for line in block_with("yaml", "buckets:").splitlines() if line[:1].isalpha()}
    assert keys == {f.name for f in dataclasses.fields(Config)}  # every key of the config is in it


def test_the_price_file_of_the_readme_prices_its_model(tmp_path: Path) -> None:
    files, _ = yaml_blocks()
    (tmp_path / "my-prices.yaml").write_text(files["my-prices.yaml"])
    (tmp_path / "llm-exporter.yaml").write_text(block_with("yaml", "file: my-prices.yaml"))
    table = PricingTable.from_config(Config.from_yaml(tmp_path / "llm-exporter.yaml").pricing)
    entry = table.price("my-other-model")
    assert entry is not None
    cost = entry.cost(TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost is not None
    assert (cost.input_usd, cost.output_usd) == (0.5, 1.5)
    assert table.resolve("prod-chat") == "gpt-4o"  # the alias of the config block


# -- shell --------------------------------------------------------------------------------------------


def test_the_first_screen_has_the_two_commands_and_the_middleware_before_anything_else() -> None:
    head = README[: README.index("\n---\n")]
    assert blocks("bash", head) + blocks("python", head) == [
        'pip install -e ".[mlflow]" && llm-exporter demo\n',
        "bash .ci/test\n",
        block_with("python", "app.add_middleware(PrometheusMiddleware)   # records every request"),
    ]
    assert len(head.splitlines()) <= 30  # one screen


@pytest.mark.parametrize("command", [line for line in shell_lines() if line.startswith("promtool")])
def test_promtool_commands_pass_as_written(command: str) -> None:
    binary("promtool")
    result = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_templates_then_promtool_as_written(tmp_path: Path) -> None:
    [line] = [line for line in shell_lines() if line.startswith("llm-exporter templates")]
    binary("promtool")
    command = line.replace("llm-exporter", shlex.join([sys.executable, "-m", "exporter"]), 1)
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=exporter_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


@pytest.mark.parametrize("command", sorted(set(commands("llm-exporter "))))
def test_every_llm_exporter_command_parses(command: str) -> None:
    args = _parser().parse_args(shlex.split(command)[1:])  # an unknown option or command exits 2
    assert callable(args.func)


def test_the_shown_outputs_are_what_the_commands_print(tmp_path: Path) -> None:
    # The error outputs the README shows (the `check --price` example is abridged with "...").
    shown = [b for b in blocks("") if b.startswith("$ llm-exporter") and "\nllm-exporter: error:" in b]
    assert len(shown) == 2
    (tmp_path / "bad.yaml").write_text("mlflow: {window_seconds: 0}\n")
    for block in shown:
        command, expected = block.splitlines()
        result = cli(*shlex.split(command)[2:], cwd=tmp_path)
        assert (result.returncode, result.stderr) == (2, expected + "\n")


def test_the_collector_answers_the_readmes_event_as_shown(tmp_path: Path) -> None:
    [curl] = [line for line in shell_lines() if line.startswith("curl")]
    payload = json.loads(shlex.split(curl)[shlex.split(curl).index("-d") + 1])
    port = free_port()
    args = [sys.executable, "-m", "exporter", "collector", "--host", HOST, "--port", str(port)]
    with process(args, f"http://{HOST}:{port}/health", cwd=tmp_path, env=exporter_env()):
        answer = httpx.post(f"http://{HOST}:{port}/track", json=payload, timeout=10)
        assert (answer.status_code, answer.text) == (202, '{"accepted":1}')
        assert 'answers `{"accepted":1}`' in README


# -- Python -------------------------------------------------------------------------------------------


def test_every_python_example_says_where_each_name_comes_from(tmp_path: Path) -> None:
    examples = blocks("python")
    assert len(examples) == 10
    for i, example in enumerate(examples):
        (tmp_path / f"example_{i}.py").write_text(example)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F821", "--output-format", "concise",
         str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout


def run_example(example: str, probe: str, tmp_path: Path) -> str:
    """Run a README example, then ``probe`` against the ``app`` it made, in a fresh process (each example
    records on the default registry, as the README's readers do)."""
    script = tmp_path / "example.py"
    script.write_text(example + "\n" + textwrap.dedent(probe))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=exporter_env(), capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


PROBE = """
from starlette.testclient import TestClient

@app.get("/hello")
def hello():
    return {"hello": "world"}

with TestClient(app) as client:
    assert client.get("/hello").json() == {"hello": "world"}
    print(client.get(PATH, headers=HEADERS).text)
    print("status of /metrics:", client.get("/metrics").status_code)
"""


def test_the_first_screen_example_serves_metrics(tmp_path: Path) -> None:
    example = block_with("python", "app.add_middleware(PrometheusMiddleware)   # records every request")
    out = run_example(example, PROBE.replace("PATH", "'/metrics'").replace("HEADERS", "{}"), tmp_path)
    assert 'http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",' \
           'http_route="/hello"} 1.0' in out  # fmt: skip
    assert "status of /metrics: 200" in out


def test_metrics_path_moves_the_exposition_and_records_no_scrape(tmp_path: Path) -> None:
    example = block_with("python", 'metrics_path="/internal/metrics"')
    out = run_example(example, PROBE.replace("PATH", "'/internal/metrics'").replace("HEADERS", "{}"), tmp_path)
    assert 'http_route="/hello"} 1.0' in out
    assert "status of /metrics: 404" in out  # the app's own now
    assert "/internal/metrics" not in out and 'http_route="/metrics"' not in out and "__unmatched__" not in out


def test_the_exemplar_example_attaches_the_trace_of_the_request(tmp_path: Path) -> None:
    example = block_with("python", "OpenTelemetryMiddleware")
    probe = PROBE.replace("PATH", "'/metrics'").replace("HEADERS", "{'accept': 'application/openmetrics-text'}")
    out = run_example(example, probe, tmp_path)
    [line] = [x for x in out.splitlines() if x.startswith("http_server_request_duration_seconds_bucket") and
              'http_route="/hello"' in x and " # {" in x]  # fmt: skip
    assert re.search(r' # \{span_id="[0-9a-f]{16}",trace_id="[0-9a-f]{32}"\} ', line), line


def test_the_span_processor_example_turns_a_genai_span_into_tokens(tmp_path: Path) -> None:
    example = block_with("python", "GenAISpanProcessor()")
    probe = """
    from prometheus_client import REGISTRY
    with trace.get_tracer("t").start_as_current_span("chat gpt-4o") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12,
                             "gen_ai.usage.output_tokens": 5})
    labels = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "gen_ai_response_model": "",
              "http_route": "__none__"}  # fmt: skip
    print(REGISTRY.get_sample_value("llm_tokens_total", {**labels, "gen_ai_token_type": "input"}),
          REGISTRY.get_sample_value("llm_tokens_total", {**labels, "gen_ai_token_type": "output"}))
    """
    assert run_example(example, probe, tmp_path) == "12.0 5.0\n"


def test_the_otel_metrics_example_pushes_the_requests(tmp_path: Path) -> None:
    example = block_with("python", "enable_otel_metrics(app.recorder")
    probe = """
    from starlette.testclient import TestClient

    @app.app.get("/hello")
    def hello():
        return {"hello": "world"}

    with TestClient(app) as client:
        assert client.get("/hello").status_code == 200
    reader.collect()
    """
    out = run_example(example, probe, tmp_path)
    assert '"name": "http.server.request.duration"' in out
    assert '"http.route": "/hello"' in out
