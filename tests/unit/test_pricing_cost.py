"""The cost of a call from a flat entry: equal to genai-prices' ``calc_price`` to 1e-12 USD, kind by kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import PricingConfig
from exporter.pricing import KINDS, CostBreakdown, PricingTable, TokenUsage
from exporter.pricing.entry import INPUT_KINDS, OUTPUT_KINDS

USD = 1e-12


@pytest.fixture(scope="module")
def table() -> PricingTable:
    return PricingTable.from_config(PricingConfig())


def genai_usage(usage: TokenUsage) -> Usage:
    """The same usage in genai-prices' terms: same names, and the 5-minute writes said explicitly."""
    values = dataclasses.asdict(usage)
    values["cache_write_5m_tokens"] = usage.cache_write_tokens - usage.cache_write_1h_tokens
    return Usage(**values)


def assert_same_bill(
    bill: CostBreakdown | None,
    usage: TokenUsage,
    model: str,
    provider: str | None,
    context: Mapping[str, str] | None = None,
) -> None:
    ref = calc_price(genai_usage(usage), model, provider_id=provider, price_context=context)
    assert bill is not None
    assert bill.total_usd == pytest.approx(float(ref.total_price), abs=USD)
    assert bill.input_usd == pytest.approx(float(ref.input_price), abs=USD)
    assert bill.output_usd == pytest.approx(float(ref.output_price), abs=USD)


U = TokenUsage
CASES = [
    # OpenAI: cache reads, reasoning, audio, images, embeddings, a family matched to its base model.
    ("gpt-5.2", "openai", U(12_000, 900, cache_read_tokens=8_000, output_reasoning_tokens=600)),
    ("gpt-4o-2024-08-06", None, U(1_000_000, 100_000, cache_read_tokens=400_000)),
    ("gpt-4o-2024-05-13", None, U(5_000, 200, cache_read_tokens=1_000)),  # no cache price: cache reads are input
    ("o3", "openai", U(20_000, 15_000, output_reasoning_tokens=14_000)),
    ("gpt-5-mini", None, U(3_000, 4_000, cache_read_tokens=1_024, output_reasoning_tokens=3_500)),
    (
        "gpt-realtime",
        "openai",
        U(
            5_000,
            3_000,
            cache_read_tokens=2_000,
            input_audio_tokens=3_000,
            cache_audio_read_tokens=1_500,
            input_image_tokens=500,
            cache_image_read_tokens=100,
            output_audio_tokens=2_500,
        ),
    ),
    ("gpt-4o-realtime-preview", None, U(4_000, 1_000, input_audio_tokens=3_000, output_audio_tokens=900)),
    ("gpt-4o-audio-preview", "openai", U(2_500, 1_200, input_audio_tokens=2_000, output_audio_tokens=1_000)),
    ("gpt-image-1", "openai", U(100, 4_160, input_image_tokens=80, output_image_tokens=4_160)),
    ("text-embedding-3-small", "openai", U(8_000, 0)),
    ("gpt-5.1-codex-max", "openai", U(50_000, 2_000, cache_read_tokens=40_000, output_reasoning_tokens=1_500)),
    ("gpt-4.1", None, U(900_000, 1_000)),
    # Anthropic: the 200k long-context cliff, 5-minute and 1-hour cache writes, thinking.
    ("claude-sonnet-4-5", "anthropic", U(300_000, 10_000)),
    (
        "claude-sonnet-4-5-20250929",
        "anthropic",
        U(150_000, 3_000, cache_read_tokens=100_000, cache_write_tokens=20_000, cache_write_1h_tokens=5_000),
    ),
    (
        "claude-sonnet-4-5",
        None,
        U(
            250_000,
            8_000,
            cache_read_tokens=100_000,
            cache_write_tokens=50_000,
            cache_write_1h_tokens=10_000,
            output_reasoning_tokens=4_000,
        ),
    ),
    ("claude-opus-4-6", "anthropic", U(10_000, 100, cache_write_tokens=10_000, cache_write_1h_tokens=10_000)),
    ("claude-sonnet-4-6", None, U(400_000, 2_000, cache_read_tokens=300_000)),
    ("claude-haiku-4-5", "anthropic", U(20_000, 1_000, cache_read_tokens=5_000, cache_write_tokens=15_000)),
    ("claude-3-haiku", None, U(5_000, 200, cache_write_tokens=2_000, cache_write_1h_tokens=1_000)),
    ("claude-opus-4-1", "anthropic", U(3_000, 5_000, output_reasoning_tokens=4_000)),
    # Google: the 200k tier, audio input with audio cache reads, image output.
    ("gemini-2.5-pro", "gcp.gemini", U(300_000, 10_000)),
    ("gemini-2.5-pro", None, U(150_000, 5_000, cache_read_tokens=100_000, output_reasoning_tokens=3_000)),
    (
        "gemini-3.1-pro-preview",
        "gcp.gemini",
        U(250_000, 20_000, cache_read_tokens=50_000, output_reasoning_tokens=10_000),
    ),
    (
        "gemini-2.5-flash",
        "gcp.gemini",
        U(10_000, 500, cache_read_tokens=4_000, input_audio_tokens=6_000, cache_audio_read_tokens=2_000),
    ),
    ("gemini-2.5-flash-image", "gcp.gemini", U(500, 1_290, output_image_tokens=1_290)),
    ("gemini-2.0-flash-001", None, U(2_000, 300)),
    # Others: off-peak prices, a fee per request, priced reasoning, two tiers, Bedrock, fallback providers.
    ("deepseek-chat", "deepseek", U(5_000, 800, cache_read_tokens=3_000)),
    ("mistral-large-latest", "mistral", U(2_000, 500)),
    ("grok-4", None, U(3_000, 2_000, cache_read_tokens=1_000, output_reasoning_tokens=1_500)),
    ("command-r-plus", "cohere", U(1_000, 200)),
    ("sonar", "perplexity", U(1_000, 100)),
    ("sonar-deep-research", "perplexity", U(1_000, 5_000, output_reasoning_tokens=3_000)),
    ("llama-3.3-70b-versatile", "groq", U(1_500, 300)),
    ("qwen/qwen3-coder-flash", "openrouter", U(200_000, 100, cache_read_tokens=1_000, cache_write_tokens=500)),
    ("qwen/qwen3-coder-flash", "openrouter", U(50_000, 100)),  # the middle of three tiers
    ("us.anthropic.claude-3-haiku-20240307-v1:0", "aws.bedrock", U(5_000, 100)),
    ("gpt-4o", "azure", U(2_000, 100, cache_read_tokens=1_000)),  # Azure falls back to OpenAI's list
    ("claude-sonnet-4-5", "gcp.vertex_ai", U(300_000, 10_000)),  # Vertex AI falls back to Anthropic's
]


@pytest.mark.parametrize(("model", "provider", "usage"), CASES)
def test_cost_equals_calc_price(table: PricingTable, model: str, provider: str | None, usage: TokenUsage) -> None:
    entry = table.price(model, provider)
    assert entry is not None
    assert_same_bill(entry.cost(usage), usage, model, provider)


@pytest.mark.parametrize(
    ("model", "provider", "context", "usage"),
    [
        ("gpt-5.2", "openai", {"service_tier": "flex"}, U(10_000, 1_000, cache_read_tokens=2_000)),
        ("gpt-5.2", "openai", {"service_tier": "priority"}, U(10_000, 1_000)),
        ("claude-sonnet-4-5", "anthropic", {"processing": "batch"}, U(300_000, 10_000, cache_read_tokens=50_000)),
        # A provider's variants don't apply to the models it falls back to (genai-prices' rule too).
        ("gpt-5.2", "azure", {"service_tier": "priority"}, U(10_000, 1_000)),
    ],
)
def test_service_tiers_and_batch(
    table: PricingTable, model: str, provider: str, context: dict[str, str], usage: TokenUsage
) -> None:
    entry = table.price(model, provider, context)
    assert entry is not None
    assert_same_bill(entry.cost(usage), usage, model, provider, context)


def test_a_service_tier_is_priced_apart_from_the_standard_one(table: PricingTable) -> None:
    usage = U(1_000_000, 0)
    standard, flex = table.price("gpt-5.2", "openai"), table.price("gpt-5.2", "openai", {"service_tier": "flex"})
    assert standard is not None and flex is not None
    assert (standard.cost(usage).total_usd, flex.cost(usage).total_usd) == (1.75, 0.875)  # type: ignore[union-attr]


RICH = U(
    60_000,
    9_000,
    cache_read_tokens=20_000,
    cache_write_tokens=8_000,
    cache_write_1h_tokens=3_000,
    input_audio_tokens=7_000,
    cache_audio_read_tokens=2_000,
    input_image_tokens=4_000,
    cache_image_read_tokens=1_000,
    output_reasoning_tokens=3_000,
    output_audio_tokens=2_000,
    output_image_tokens=1_000,
)
LONG = dataclasses.replace(RICH, input_tokens=1_200_000)  # above every long-context tier in the data


def test_every_model_of_the_data_costs_what_calc_price_says(table: PricingTable) -> None:
    """All ~2,300 models, with every kind in the usage, below and above the long-context tiers."""
    priced = unpriced = unmatched = 0
    for provider in get_snapshot().providers:
        for info in provider.models:
            entry = table.price(info.id, provider.id)
            if entry is not None:
                priced += 1
                for usage in (RICH, LONG):
                    assert_same_bill(entry.cost(usage), usage, info.id, provider.id)
                continue
            try:
                ref = calc_price(genai_usage(RICH), info.id, provider_id=provider.id)
            except LookupError:
                unmatched += 1  # an id genai-prices' own match clauses don't match (it has no price for it either)
            else:
                # Priced by something other than tokens (audio hours, characters, pages): nothing for our usage.
                assert ref.total_price == 0
                unpriced += 1
    assert priced > 2_000 and unpriced < 50 and unmatched < 100


# -- what the issue found wrong --------------------------------------------------------------------------


def test_long_context_tiers(table: PricingTable) -> None:
    sonnet, gemini = table.price("claude-sonnet-4-5", "anthropic"), table.price("gemini-2.5-pro", "gcp.gemini")
    assert sonnet is not None and gemini is not None
    bill = sonnet.cost(U(300_000, 10_000))
    assert bill is not None and bill.total_usd == pytest.approx(2.025, abs=USD)  # $6 / $22.50 per 1M above 200k
    bill = gemini.cost(U(300_000, 10_000))
    assert bill is not None and bill.total_usd == pytest.approx(0.90, abs=USD)  # $2.50 / $15 per 1M above 200k
    bill = gemini.cost(U(200_000, 10_000))  # at the threshold: still the base rate
    assert bill is not None and bill.total_usd == pytest.approx(0.25 + 0.1, abs=USD)


def test_anthropic_one_hour_cache_writes_carry_their_premium(table: PricingTable) -> None:
    entry = table.price("claude-sonnet-4-5", "anthropic")
    assert entry is not None
    bill = entry.cost(U(100_000, 500, cache_write_tokens=100_000, cache_write_1h_tokens=100_000))
    assert bill is not None
    assert bill.cache_write_1h == pytest.approx(0.60, abs=USD)  # $6 per 1M, twice the input price
    assert bill.total_usd == pytest.approx(0.6075, abs=USD)
    bill = entry.cost(U(100_000, 500, cache_write_tokens=100_000))  # 5-minute writes: $3.75 per 1M
    assert bill is not None and bill.total_usd == pytest.approx(0.3825, abs=USD)


@pytest.mark.parametrize(
    "model",
    ["gpt-5.2", "claude-opus-4-6", "claude-sonnet-4-6", "gemini-3.1-pro-preview", "gpt-realtime", "gpt-5.1-codex-max"],
)
def test_current_models_have_a_price(table: PricingTable, model: str) -> None:
    assert table.price(model) is not None


def test_a_model_priced_by_the_minute_has_no_token_price(table: PricingTable) -> None:
    # whisper-1 bills audio minutes, which the exporter doesn't count: $0 would be an invented price.
    assert table.price("whisper-1", "openai") is None


# -- the kinds -------------------------------------------------------------------------------------------


def test_each_token_is_billed_once_as_its_most_specific_kind(table: PricingTable) -> None:
    entry = table.price("gpt-realtime", "openai")
    assert entry is not None
    per_m = 1e-6
    bill = entry.cost(RICH)
    assert bill is not None
    # input: 60k - 20k cache reads - 8k writes - 7k audio - 4k image + 2k + 1k (audio and image cache reads)
    assert bill.input == pytest.approx(24_000 * 4 * per_m, abs=USD)
    assert bill.cache_read == pytest.approx(17_000 * 0.4 * per_m, abs=USD)
    assert bill.cache_write == pytest.approx(5_000 * 4 * per_m, abs=USD)  # no cache-write price: input
    assert bill.cache_write_1h == pytest.approx(3_000 * 4 * per_m, abs=USD)
    assert bill.input_audio == pytest.approx(5_000 * 32 * per_m, abs=USD)
    assert bill.cache_audio_read == pytest.approx(2_000 * 0.4 * per_m, abs=USD)
    assert bill.input_image == pytest.approx(3_000 * 5 * per_m, abs=USD)
    assert bill.cache_image_read == pytest.approx(1_000 * 0.5 * per_m, abs=USD)
    assert bill.output == pytest.approx(3_000 * 16 * per_m, abs=USD)
    assert bill.output_reasoning == pytest.approx(3_000 * 16 * per_m, abs=USD)  # no reasoning price: output
    assert bill.output_audio == pytest.approx(2_000 * 64 * per_m, abs=USD)
    assert bill.output_image == pytest.approx(1_000 * 16 * per_m, abs=USD)
    assert bill.request == 0
    assert bill.input_usd == pytest.approx(sum(getattr(bill, k) for k in INPUT_KINDS), abs=USD)
    assert bill.output_usd == pytest.approx(sum(getattr(bill, k) for k in OUTPUT_KINDS), abs=USD)
    assert bill.total_usd == pytest.approx(sum(getattr(bill, k) for k in KINDS), abs=USD)


def test_a_fee_per_request_is_billed_once_per_call(table: PricingTable) -> None:
    entry = table.price("sonar", "perplexity")
    assert entry is not None
    bill = entry.cost(U())
    assert bill is not None and bill.request == pytest.approx(0.012, abs=USD) and bill.total_usd == bill.request


counts = st.integers(min_value=-5, max_value=50)


@settings(max_examples=300, deadline=None)
@given(st.builds(TokenUsage, *([counts] * 12)))
def test_a_usage_is_priced_exactly_when_it_is_consistent(usage: TokenUsage) -> None:
    entry = PricingTable.from_config(PricingConfig()).price("gpt-realtime", "openai")
    assert entry is not None
    bill = entry.cost(usage)
    assert (bill is None) == (usage.problem() is not None)
    if bill is not None:
        assert_same_bill(bill, usage, "gpt-realtime", "openai")


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        (U(100, 0, cache_read_tokens=101), "exceed input_tokens (101 > 100)"),
        (U(100, 0, cache_read_tokens=61, input_audio_tokens=60, cache_audio_read_tokens=20), "exceed input_tokens"),
        (U(100, 0, cache_write_tokens=10, cache_write_1h_tokens=11), "cache_write_1h_tokens exceed cache_write_tokens"),
        (U(100, 0, cache_read_tokens=10, cache_image_read_tokens=11, input_image_tokens=50), "exceed cache_read"),
        (U(100, 10, output_reasoning_tokens=8, output_audio_tokens=3), "exceed output_tokens (11 > 10)"),
        (U(-1, 0), "input_tokens is negative (-1)"),
    ],
)
def test_usage_problem_names_the_kind(usage: TokenUsage, message: str) -> None:
    problem = usage.problem()
    assert problem is not None and message in problem


def test_audio_and_image_cache_reads_are_counted_once_in_the_input() -> None:
    usage = U(100, 0, cache_read_tokens=60, input_audio_tokens=50, cache_audio_read_tokens=40)
    assert usage.problem() is None  # 60 + 50 - 40 = 70 of 100
