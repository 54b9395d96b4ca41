"""The pricing table: genai-prices' data, name resolution, overrides, user files, the cache, cost, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.cli import check, main
from exporter.config import Config, ConfigError, ModelPrice, PricingConfig
from exporter.observations import LLMCall
from exporter.pricing import CACHE_SIZE, SHIPPED, CostBreakdown, PricingTable, TokenUsage, describe_price, format_table
from exporter.recorder import Recorder

from ..support.metrics import value


@pytest.fixture(scope="module")
def table() -> PricingTable:
    return PricingTable.from_config(PricingConfig())


def test_shipped_file_is_dated_versioned_and_only_fills_gaps(table: PricingTable) -> None:
    # The prices come from genai-prices; the shipped file keeps what it lacks (nothing today).
    raw = yaml.safe_load(SHIPPED.read_text())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(raw["date"])) and raw["version"]
    for name in raw["models"] or {}:
        assert table.price(name) is not None and table.price(name).source == str(SHIPPED)  # type: ignore[union-attr]
    assert table.source.startswith("genai-prices ") and table.source.endswith("(bundled)")
    assert table.snapshot_date is not None and table.date == table.snapshot_date.isoformat()
    assert table.version.startswith("genai-prices-")
    assert table.model_count > 1_000 and len(table) >= table.model_count
    for alias, target in (raw["aliases"] or {}).items():
        # Aliases into genai-prices' own prices, for names it places only when told the provider.
        provider, model = target.split("/", 1)
        assert table.price(alias) == table.price(model, provider) is not None
        assert table.aliases[alias] == target


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),  # dated version -> family, by genai-prices' match clauses
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # priced apart ($5 / $15): genai-prices knows it
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet-latest"),
        ("claude-opus-4-20250514", "claude-opus-4-0"),
        ("claude-sonnet-4", "claude-sonnet-4-0"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-3-pro-preview", "gemini-3-pro-preview"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),  # the Gemini API's resource name
        ("openai/gpt-4o-mini", "gpt-4o-mini"),  # LiteLLM's provider/model
        ("us.anthropic.claude-3-haiku-20240307-v1:0", "regional.anthropic.claude-3-haiku-20240307-v1:0"),  # Bedrock
        ("gpt-5-codex", "gpt-5"),
        # Models the hand-kept table had no price for, that genai-prices prices (with their audio rates...).
        ("gpt-4o-realtime-preview", "gpt-4o-realtime-preview"),
        ("o1-mini", "o1-mini"),
        ("gpt-4", "gpt-4"),
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("gemini-2.5-flash-image", "gemini-2.5-flash-image"),
        # Unknown models get no price.
        ("llama-3.1-70b-instruct", None),
        ("gpt-4o-2099-01-01", None),  # not a release genai-prices knows
        ("", None),
    ],
)
def test_resolve(table: PricingTable, model: str, key: str | None) -> None:
    assert table.resolve(model) == key
    assert (table.lookup(model) is None) == (key is None)


@pytest.mark.parametrize(
    ("model", "provider", "key", "provider_id"),
    [
        ("gpt-4o", "openai", "gpt-4o", "openai"),
        ("gemini-2.5-pro", "gcp.gemini", "gemini-2.5-pro", "google"),  # OpenTelemetry's provider names
        ("claude-sonnet-4-5", "gcp.vertex_ai", "claude-sonnet-4-5", "google"),
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            "aws.bedrock",
            "regional.anthropic.claude-3-haiku-20240307-v1:0",
            "aws",
        ),
        ("gpt-4o", "azure.ai.openai", "gpt-4o", "openai"),
        ("mistral-large-latest", "mistral_ai", "mistral-large", "mistral"),
        ("grok-4", "x_ai", "grok-4-0709", "x-ai"),  # a provider genai-prices doesn't name: matched by the model
        ("text-embedding-3-small", "openai", "text-embedding-3-small", "openai"),
        ("text-davinci-003", None, None, None),  # without the provider nothing says whose it is
        ("text-davinci-003", "openai", "text-davinci-003", "openai"),
        ("text-embedding-3-small", None, "text-embedding-3-small", "openai"),  # the shipped file says whose
        ("claude-sonnet-4-5", "openai", None, None),  # a known provider that doesn't have it: no price
        ("qwen/qwen3-coder-flash", "openrouter", "qwen/qwen3-coder-flash", "openrouter"),
        ("deepseek/deepseek-chat-v3-0324:free", "openrouter", "deepseek/deepseek-chat-v3-0324:free", "openrouter"),
    ],
)
def test_resolve_with_the_provider(
    table: PricingTable, model: str, provider: str | None, key: str | None, provider_id: str | None
) -> None:
    entry = table.price(model, provider)
    assert (entry and entry.model, entry and entry.provider) == (key, provider_id)


def bill(table: PricingTable, model: str, usage: TokenUsage, provider: str | None = None) -> CostBreakdown | None:
    """What the request path does: the entry, then the cost of the usage from it."""
    entry = table.price(model, provider)
    return None if entry is None else entry.cost(usage)


def test_a_free_model_costs_nothing_and_a_known_model_is_not_priced_as_another(table: PricingTable) -> None:
    # OpenRouter lists the :free variant with no charge; the name must not fall back to deepseek's own price.
    cost = bill(table, "deepseek/deepseek-chat-v3-0324:free", TokenUsage(10_000, 1_000), "openrouter")
    assert cost is not None and cost.total_usd == 0.0


def test_cost_bills_cached_input_at_the_cached_price(table: PricingTable) -> None:
    cost = bill(table, "gpt-4o-2024-08-06", TokenUsage(1_000_000, 100_000, cache_read_tokens=400_000))
    assert cost is not None
    assert cost.input_usd == pytest.approx(600_000 * 2.50 / 1e6 + 400_000 * 1.25 / 1e6, rel=1e-12)  # 2.0
    assert cost.output_usd == pytest.approx(1.0, rel=1e-12)
    assert cost.total_usd == pytest.approx(3.0, rel=1e-12)


def test_cost_without_a_cached_price_bills_cached_tokens_as_input(table: PricingTable) -> None:
    cost = bill(table, "o3-pro", TokenUsage(1000, 10, cache_read_tokens=500))
    assert cost is not None
    assert cost.input_usd == pytest.approx(1000 * 20.0 / 1e6, rel=1e-12)
    assert cost.output_usd == pytest.approx(10 * 80.0 / 1e6, rel=1e-12)


def test_cost_of_unknown_model_is_none(table: PricingTable) -> None:
    assert table.price("acme-13b") is None


def test_cached_tokens_above_input_have_no_bill(table: PricingTable) -> None:
    assert bill(table, "gpt-4o", TokenUsage(100, 0, cache_read_tokens=1000)) is None


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
    cost = bill(table, "my-azure-deployment", TokenUsage(1000, 1000))
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


def test_lookup_cache_is_bounded_and_keeps_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    table = PricingTable.from_config(PricingConfig())
    for i in range(CACHE_SIZE + 500):
        table.resolve(f"unknown-model-{i}")
    assert len(table._cache) == CACHE_SIZE
    assert table.resolve("gpt-4o-2024-08-06") == "gpt-4o"  # still resolves past the cap
    resolved: list[str] = []
    resolve = table._resolve
    monkeypatch.setattr(table, "_resolve", lambda model, *args: resolved.append(model) or resolve(model, *args))
    table.resolve("unknown-model-7")  # stored, unpriced: not resolved again
    table.resolve("gpt-4o-2024-08-06")  # past the cap: resolved each time
    assert resolved == ["gpt-4o-2024-08-06"]


def test_format_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("version: acme-3\nmodels:\n  acme-70b: {provider: acme, input: 0.9, output: 0.9}\n")
    cfg = PricingConfig(
        file=str(path), overrides={"acme-13b": ModelPrice(0.2, 0.4, 0.1)}, aliases={"prod": "claude-opus-4-20250514"}
    )
    table = PricingTable.from_config(cfg)
    text = format_table(table)
    lines = text.splitlines()
    assert lines[0] == f"pricing version {table.version} ({table.date})"
    assert lines[1].startswith(f"price data: {table.source}, snapshot {table.snapshot_date}, ")
    assert lines[1].endswith("models; auto-update off")
    assert re.search(r"^acme-13b\s+custom\s+0\.2\s+0\.1\s+0\.4\s+pricing\.overrides$", text, re.M)
    assert re.search(rf"^acme-70b\s+acme\s+0\.9\s+-\s+0\.9\s+{re.escape(str(path))}$", text, re.M)
    assert "  prod -> claude-opus-4-20250514" in lines


def test_describe_price(table: PricingTable) -> None:
    text = describe_price(table, "claude-sonnet-4-5-20250929", "anthropic")
    lines = text.splitlines()
    assert lines[0] == (
        f"claude-sonnet-4-5-20250929 (provider anthropic) -> anthropic claude-sonnet-4-5, "
        f"from {table.source}, snapshot {table.snapshot_date}"
    )
    assert re.search(r"^  cache_write_1h\s+6\s+cache_write_1h_mtok$", text, re.M)
    assert re.search(r"^  input_audio\s+3\s+input_mtok$", text, re.M)  # no price of its own: billed as input
    assert "above 200,000 input tokens, every token of the call:" in lines
    assert re.search(r"^  output\s+22\.5\s+output_mtok$", text, re.M)
    assert "web_searches_kcount 10" in lines[-1]
    assert "fee per request: 0.012 USD" in describe_price(table, "sonar", "perplexity")
    assert "changes at" in describe_price(table, "deepseek-chat", "deepseek")  # an off-peak price
    assert "no price" in describe_price(table, "acme-13b").splitlines()[0]


def test_recorder_prices_calls_through_the_table() -> None:
    config = Config.from_mapping({"pricing": {"overrides": {"acme-13b": {"input": 1.0, "output": 2.0}}}})
    rec = Recorder(config, CollectorRegistry())
    cost = rec.llm(LLMCall("acme-13b", "acme", input_tokens=1000, output_tokens=500))
    assert cost is not None and cost.total_usd == pytest.approx(0.002, rel=1e-12)
    labels = {"gen_ai_provider_name": "acme", "gen_ai_request_model": "acme-13b", "gen_ai_response_model": ""}
    labels |= {"gen_ai_token_type": "output", "cost_source": "estimated"}
    got = value(rec, "llm_cost_usd_total", **labels)
    assert got == pytest.approx(0.001, rel=1e-12)


def test_check_prints_a_model_s_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./llm-exporter.yaml
    assert main(["check", "--price", "gemini-2.5-pro", "--provider", "gcp.gemini"]) == 0
    out = capsys.readouterr().out
    assert "\ngemini-2.5-pro (provider gcp.gemini) -> google gemini-2.5-pro, from genai-prices " in out
    assert "above 200,000 input tokens" in out
    assert "acme: no price." in check(None, "acme")
