from __future__ import annotations

from pathlib import Path

import pytest

from exporter import Config, ConfigError
from exporter.config import to_dict


def test_defaults_are_valid_and_round_trip() -> None:
    config = Config()
    assert Config.from_mapping(to_dict(config)) == config
    assert config.buckets.http_duration[-1] >= 120.0  # LLM requests take tens of seconds
    assert config.label_cap == 100


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "llm-exporter.yaml"
    path.write_text(
        "labels: {service: chat, env: prod}\n"
        "label_cap: 50\n"
        "exclude_paths: [/health, /ready]\n"
        "mlflow:\n  enabled: true\n  window_seconds: 30\n"
        "pricing:\n  overrides:\n    my-model: {input: 1.5, output: 6}\n"
    )
    config = Config.from_yaml(path)
    assert config.labels == {"service": "chat", "env": "prod"}
    assert config.label_cap == 50
    assert config.exclude_paths == ("/health", "/ready")
    assert config.mlflow.enabled is True
    assert config.mlflow.window_seconds == 30.0
    assert config.pricing.overrides["my-model"].input == 1.5
    assert config.pricing.overrides["my-model"].cached_input is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label_cap: lots\n", "label_cap: expected an integer, got str 'lots'"),
        ("mlflow:\n  window_seconds: 0\n", "mlflow.window_seconds: expected a number > 0, got 0.0"),
        ("mlflow:\n  windw_seconds: 5\n", "mlflow.windw_seconds: unknown key; expected one of: "),
        ("mlflow:\n  run_period: week\n", "mlflow.run_period: expected one of 'day', 'hour', 'instance', got 'week'"),
        ("drift: yes\n", "drift: expected a mapping, got bool True"),
        ("buckets:\n  http_duration: [1, 0.5]\n", "buckets.http_duration: expected a non-empty, strictly increasing"),
        ("pricing:\n  overrides:\n    m: {input: 1}\n", "pricing.overrides.m.output: required key is missing"),
        ("pricing:\n  overrides:\n    m: {input: -1, output: 1}\n", "pricing.overrides.m.input: expected a finite"),
        ("labels: {9lives: x}\n", "labels.9lives: not a valid Prometheus label name"),
        ("labels: {région: eu}\n", "labels.région: not a valid Prometheus label name"),  # isidentifier() says yes
        ('labels: {env: "pr\\ud800d"}\n', "labels.env: expected valid Unicode text"),
        ("auth:\n  basic_username: u\n", "auth.basic_password: basic auth needs both"),
        ("exclude_paths: [1, {a: b}]\n", "exclude_paths[1]: expected a string, got dict"),
        ("- a\n- b\n", "(top level): expected a mapping, got list"),
        ("a: [\n", "line 2: not valid YAML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert info.value.source == str(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"^/nonexistent/x.yaml: \(file\): cannot read"):
        Config.from_yaml("/nonexistent/x.yaml")


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("label_cap: 10\nmlflow:\n  experiment: from-file\n")
    env = {
        "LLM_EXPORTER_CONFIG": str(path),
        "LLM_EXPORTER_LABEL_CAP": "20",
        "LLM_EXPORTER_MLFLOW__TRACKING_URI": "sqlite:///x.db",
        "LLM_EXPORTER_LABELS": "{service: api}",
        "OTHER": "ignored",
    }
    config = Config.load(environ=env)
    assert config.label_cap == 20
    assert config.mlflow.experiment == "from-file"
    assert config.mlflow.tracking_uri == "sqlite:///x.db"
    assert config.labels == {"service": "api"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LLM_EXPORTER_LABEL_CAP", "many", "LLM_EXPORTER_LABEL_CAP: label_cap: expected an integer, got str 'many'"),
        (
            "LLM_EXPORTER_MLFLOW__ENABLED",
            "perhaps",
            "LLM_EXPORTER_MLFLOW__ENABLED: mlflow.enabled: expected true",
        ),
        ("LLM_EXPORTER_NOPE", "1", "LLM_EXPORTER_NOPE: nope: unknown key"),
    ],
)
def test_environment_errors_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env({name: value})
    assert str(info.value).startswith(message)


def test_environment_keys_that_go_together_and_text_values_as_written() -> None:
    env = {
        "LLM_EXPORTER_AUTH__BASIC_USERNAME": "prom",
        "LLM_EXPORTER_AUTH__BASIC_PASSWORD": "pw",
        "LLM_EXPORTER_AUTH__BEARER_TOKEN": "012345",  # YAML would read an octal number
        "LLM_EXPORTER_LABELS__VERSION": "1.10",  # YAML would read 1.1
        "LLM_EXPORTER_LABELS__REGION": "no",  # YAML would read false
        "LLM_EXPORTER_MLFLOW__INSTANCE": "12:30",  # YAML 1.1 would read 750
        "LLM_EXPORTER_MLFLOW__RETRY_MIN_SECONDS": "120",
        "LLM_EXPORTER_MLFLOW__RETRY_MAX_SECONDS": "600",
    }
    config = Config.from_env(env)
    assert (config.auth.basic_username, config.auth.basic_password, config.auth.bearer_token) == (
        "prom",
        "pw",
        "012345",
    )
    assert config.labels == {"version": "1.10", "region": "no"}
    assert config.mlflow.instance == "12:30"
    assert (config.mlflow.retry_min_seconds, config.mlflow.retry_max_seconds) == (120.0, 600.0)


@pytest.mark.parametrize("name", ["http_route", "gen_ai_request_model", "le", "tenant", "outcome"])
def test_static_labels_may_not_clash_with_metric_labels(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"labels": {name: "x"}}, "c.yaml")
    assert (
        str(info.value)
        == f"c.yaml: labels.{name}: clashes with a label of the exporter's own metrics; choose another name"
    )


def test_non_finite_price_override() -> None:
    # Refused as every float key refuses NaN, with the one message of that rule.
    with pytest.raises(
        ConfigError, match=r"^c.yaml: pricing.overrides.m.input: expected a finite number, got float nan$"
    ):
        Config.from_mapping({"pricing": {"overrides": {"m": {"input": float("nan"), "output": 1}}}}, "c.yaml")
