"""The pricing table: shipped prices, name resolution, overrides, user files, cost, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.config import Config, ConfigError, ModelPrice, PricingConfig
from exporter.observations import LLMCall
from exporter.pricing import CACHE_SIZE, SHIPPED, PricingTable, format_table
from exporter.recorder import Recorder


@pytest.fixture(scope="module")
def table() -> PricingTable:
    return PricingTable.from_config(PricingConfig())


def test_shipped_table_is_dated_versioned_and_covers_three_providers(table: PricingTable) -> None:
    raw = yaml.safe_load(SHIPPED.read_text())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(raw["date"]))
    assert table.date == str(raw["date"])
    assert table.version == str(raw["version"])
    providers = [row.provider for row in table.rows()]
    assert len(providers) >= 20
    for provider in ("openai", "anthropic", "gcp.gemini"):
        assert providers.count(provider) >= 5
    for row in table.rows():
        assert row.price.input >= 0 and row.price.output >= 0
        # A cached price is a discount, never a premium.
        assert row.price.cached_input is None or row.price.cached_input <= row.price.input


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),  # dated version -> family
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longest prefix wins
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-opus-4-20250514", "claude-opus-4-0"),  # shipped alias
        ("claude-sonnet-4", "claude-sonnet-4-0"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-3-pro-preview", "gemini-3-pro"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("us.anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
        ("gpt-5-codex", "gpt-5"),
        # Variants priced differently from their family, and unknown models, get no price.
        ("gpt-4o-realtime-preview", None),
        ("o1-mini", None),
        ("gpt-4", None),  # not a prefix of "gpt-4o": names match whole segments only
        ("claude-opus-4-6", None),
        ("gemini-2.5-flash-image", None),
        ("llama-3.1-70b-instruct", None),
        ("", None),
    ],
)
def test_resolve(table: PricingTable, model: str, key: str | None) -> None:
    assert table.resolve(model) == key
    assert (table.lookup(model) is None) == (key is None)


def test_cost_bills_cached_input_at_the_cached_price(table: PricingTable) -> None:
    cost = table.cost("gpt-4o-2024-08-06", 1_000_000, 100_000, 400_000)
    assert cost is not None
    assert cost.input_usd == pytest.approx(600_000 * 2.50 / 1e6 + 400_000 * 1.25 / 1e6, rel=1e-12)  # 2.0
    assert cost.output_usd == pytest.approx(1.0, rel=1e-12)
    assert cost.total_usd == pytest.approx(3.0, rel=1e-12)


def test_cost_without_a_cached_price_bills_cached_tokens_as_input(table: PricingTable) -> None:
    cost = table.cost("o3-pro", 1000, 10, 500)
    assert cost is not None
    assert cost.input_usd == pytest.approx(1000 * 20.0 / 1e6, rel=1e-12)
    assert cost.output_usd == pytest.approx(10 * 80.0 / 1e6, rel=1e-12)


def test_cost_of_unknown_model_is_none(table: PricingTable) -> None:
    assert table.cost("acme-13b", 100, 100) is None


def test_cached_tokens_above_input_are_capped(table: PricingTable) -> None:
    cost = table.cost("gpt-4o", 100, 0, 1000)
    assert cost is not None
    assert cost.input_usd == pytest.approx(100 * 1.25 / 1e6, rel=1e-12)


def test_overrides_and_aliases_from_config() -> None:
    cfg = PricingConfig(
        overrides={
            "gpt-4o": ModelPrice(input=2.0, output=8.0, cached_input=0.5),  # replaces the shipped price
            "acme-13b": ModelPrice(input=0.2, output=0.4),
        },
        aliases={"my-azure-deployment": "gpt-4o-2024-08-06", "prod-chat": "acme-13b"},
    )
    table = PricingTable.from_config(cfg)
    assert table.lookup("gpt-4o-2024-11-20") == ModelPrice(2.0, 8.0, 0.5)
    assert table.resolve("my-azure-deployment") == "gpt-4o"
    assert table.resolve("prod-chat") == "acme-13b"
    assert table.resolve("acme-13b-20250101") == "acme-13b"
    assert table.version.endswith("+overrides")
    cost = table.cost("my-azure-deployment", 1000, 1000)
    assert cost is not None and cost.total_usd == pytest.approx(0.01, rel=1e-12)
    rows = {row.model: row for row in table.rows()}
    assert rows["acme-13b"].provider == "custom"


def test_alias_to_an_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        PricingTable.from_config(PricingConfig(aliases={"prod": "gpt-9000"}))
    assert err.value.key == "pricing.aliases.prod"
    assert "gpt-9000" in err.value.message


def test_user_pricing_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "version: acme-3\n"
        "date: 2026-01-15\n"
        "models:\n"
        "  acme-70b: {provider: acme, input: 0.9, output: 0.9}\n"
        "  gpt-4o-mini: {provider: openai, input: 0.1, output: 0.5, cached_input: 0.05}\n"
        "aliases:\n"
        "  acme-large: acme-70b\n"
    )
    table = PricingTable.from_config(PricingConfig(file=str(path)))
    assert table.lookup("acme-large") == ModelPrice(0.9, 0.9, None)
    assert table.lookup("gpt-4o-mini-2024-07-18") == ModelPrice(0.1, 0.5, 0.05)
    assert table.lookup("gpt-4o") == ModelPrice(2.5, 10.0, 1.25)  # shipped rows stay
    assert table.version.endswith("+acme-3")
    assert table.date == "2026-01-15"


def _bad(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        PricingTable.from_config(PricingConfig(file=str(path)))
    assert err.value.source == str(path)
    return err.value


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("models:\n  m: {input: -1, output: 2}\n", "models.m.input", "got -1"),
        ("models:\n  m: {input: 1}\n", "models.m.output", "required key is missing"),
        ("models:\n  m: {input: cheap, output: 2}\n", "models.m.input", "got 'cheap'"),
        ("models:\n  m: {input: 1, output: 2, cached_input: true}\n", "models.m.cached_input", "got True"),
        ("models:\n  m: {input: 1, output: 2, cache: 1}\n", "models.m.cache", "unknown key"),
        ("models:\n  m: 3\n", "models.m", "expected a mapping"),
        ("models: [a, b]\n", "models", "expected a mapping"),
        ("prices: {}\n", "prices", "unknown key"),
        ("currency: EUR\n", "currency", "only USD"),
        ("- 1\n- 2\n", "(top level)", "expected a mapping"),
        ("models: {m: {input: 1, output: 2}\n", "line 2", "not valid YAML"),
        ("aliases: {x: unknown-model}\n", "aliases.x", "not a model of the pricing table"),
        ("aliases: {x: 3}\n", "aliases.x", "expected a model name"),
    ],
)
def test_bad_pricing_file_names_file_and_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    err = _bad(tmp_path, text)
    assert err.key == key
    assert message in err.message


def test_missing_pricing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        PricingTable.from_config(PricingConfig(file=str(path)))
    assert (err.value.source, err.value.key) == (str(path), "(file)")


def test_overrides_are_validated_by_the_config() -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_mapping({"pricing": {"overrides": {"m": {"input": 1.0, "output": -2.0}}}})
    assert err.value.key == "pricing.overrides.m.output"


def test_lookup_cache_is_bounded() -> None:
    table = PricingTable.from_config(PricingConfig())
    for i in range(CACHE_SIZE + 500):
        table.resolve(f"unknown-model-{i}")
    assert len(table._cache) == CACHE_SIZE
    assert table.resolve("gpt-4o-2099-01-01") == "gpt-4o"  # still resolves past the cap


def test_format_table(table: PricingTable) -> None:
    text = format_table(table)
    lines = text.splitlines()
    assert lines[0].startswith(f"pricing version {table.version} ({table.date})")
    assert re.search(r"^gpt-4o\s+openai\s+2\.5\s+1\.25\s+10$", text, re.M)
    assert re.search(r"^gpt-5-pro\s+openai\s+15\s+-\s+120$", text, re.M)
    assert "  claude-opus-4-20250514 -> claude-opus-4-0" in lines


def test_recorder_prices_calls_through_the_table() -> None:
    config = Config.from_mapping({"pricing": {"overrides": {"acme-13b": {"input": 1.0, "output": 2.0}}}})
    rec = Recorder(config, CollectorRegistry())
    cost = rec.llm(LLMCall("acme-13b", "acme", input_tokens=1000, output_tokens=500))
    assert cost is not None and cost.total_usd == pytest.approx(0.002, rel=1e-12)
    labels = {"gen_ai_provider_name": "acme", "gen_ai_request_model": "acme-13b"}
    got = rec.registry.get_sample_value(
        "llm_cost_usd_total", {"http_route": "__none__", **labels, "gen_ai_token_type": "output"}
    )
    assert got == pytest.approx(0.001, rel=1e-12)
