"""Paths in a config file are relative to that file, not to the directory the command runs in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter import Config
from exporter.config import PATH_KEYS, ModelPrice
from exporter.pricing import PricingTable

PRICES = "models:\n  my-finetune: {input: 3.0, output: 12.0}\n"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config directory, and a working directory that is not it."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "conf"


def test_pricing_file_is_read_next_to_the_config_file(elsewhere: Path) -> None:
    (elsewhere / "my-prices.yaml").write_text(PRICES)
    config = elsewhere / "llm-exporter.yaml"
    config.write_text("pricing:\n  file: my-prices.yaml\n")
    for cfg in (Config.from_yaml(config), Config.load(config, environ={})):
        assert cfg.pricing.file == str(elsewhere / "my-prices.yaml")
        price = PricingTable.from_config(cfg.pricing).lookup("my-finetune")
        assert price is not None
        assert (price.input, price.output) == (3.0, 12.0)


def test_every_path_key_is_relative_to_the_file_and_absolute_ones_stay(elsewhere: Path) -> None:
    config = elsewhere / "c.yaml"
    config.write_text(
        "pricing: {file: p/prices.yaml}\n"
        "drift: {baseline_file: ../baseline.json}\n"
        f"mlflow: {{spool_path: {elsewhere.parent / 'spool.jsonl'}}}\n"
    )
    cfg = Config.from_yaml(config)
    assert [getattr(getattr(cfg, section), key) for section, key in PATH_KEYS] == [
        str(elsewhere / "p" / "prices.yaml"),
        str(elsewhere / ".." / "baseline.json"),
        str(elsewhere.parent / "spool.jsonl"),
    ]


def test_a_relative_config_path_gives_paths_relative_to_the_same_place(elsewhere: Path) -> None:
    os.chdir(elsewhere.parent)
    (elsewhere / "my-prices.yaml").write_text(PRICES)
    (elsewhere / "c.yaml").write_text("pricing: {file: my-prices.yaml}\n")
    cfg = Config.from_yaml("conf/c.yaml")
    assert cfg.pricing.file == os.path.join("conf", "my-prices.yaml")
    assert PricingTable.from_config(cfg.pricing).lookup("my-finetune") == ModelPrice(3.0, 12.0)  # the file's prices


def test_a_file_in_the_working_directory_keeps_its_paths_as_written(elsewhere: Path) -> None:
    Path("llm-exporter.yaml").write_text("pricing: {file: my-prices.yaml}\nmlflow: {spool_path: s.jsonl}\n")
    cfg = Config.load(environ={})
    assert (cfg.pricing.file, cfg.mlflow.spool_path) == ("my-prices.yaml", "s.jsonl")


def test_environment_paths_are_relative_to_the_working_directory(elsewhere: Path) -> None:
    config = elsewhere / "c.yaml"
    config.write_text("pricing: {file: my-prices.yaml}\n")
    cfg = Config.load(config, environ={"LLM_EXPORTER_PRICING__FILE": "from-env.yaml"})
    assert cfg.pricing.file == "from-env.yaml"  # a variable has no file to be relative to


def test_a_wrong_type_is_still_reported_as_such(elsewhere: Path) -> None:
    config = elsewhere / "c.yaml"
    config.write_text("pricing: {file: [a, b]}\n")
    with pytest.raises(ValueError, match=r"c\.yaml: pricing\.file: expected a string, got list$"):
        Config.from_yaml(config)
