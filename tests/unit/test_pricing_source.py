"""genai-prices as the price source: no network unless asked, its opt-in update, its date, dated prices."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from genai_prices import UpdatePrices, calc_price, wait_prices_updated_sync
from genai_prices.data_snapshot import DataSnapshot, get_snapshot, set_custom_snapshot
from genai_prices.types import ClauseEquals, ClauseStartsWith, ModelInfo, ModelPrice, Provider, StartDateConstraint
from prometheus_client import CollectorRegistry

from exporter import Recorder
from exporter.config import Config, PricingConfig
from exporter.pricing import PricingTable, TokenUsage
from exporter.pricing.flatten import PriceDataError, flatten, listed_price
from exporter.pricing.source import GenaiPrices

UPDATE_THREAD = "genai_prices:update"


def test_importing_and_pricing_touch_no_network() -> None:
    # In a fresh interpreter, so that importing genai-prices is watched too.
    script = textwrap.dedent(
        """
        import sys

        def no_network(event, args):
            if event.startswith("socket.") and event not in ("socket.__new__", "socket.sethostname"):
                raise RuntimeError(f"network access: {event} {args}")

        sys.addaudithook(no_network)
        import threading
        from exporter.config import PricingConfig
        from exporter.pricing import PricingTable, describe_price, format_table

        table = PricingTable.from_config(PricingConfig())
        table.start()
        assert table.price("gpt-4o") is not None
        assert table.price("claude-sonnet-4-5", "anthropic") is not None
        describe_price(table, "gemini-2.5-pro")
        format_table(table)
        table.stop()
        assert not [t for t in threading.enumerate() if t.name == "genai_prices:update"]
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_auto_update_is_off_by_default() -> None:
    assert PricingConfig().auto_update is False
    assert Config.from_mapping({"pricing": {"auto_update": True}}).pricing.auto_update is True
    table = PricingTable.from_config(PricingConfig())
    table.start()
    assert not table.auto_update
    assert not [t for t in threading.enumerate() if t.name == UPDATE_THREAD]


def fetched_snapshot() -> DataSnapshot:
    gpt = ModelInfo(
        id="gpt-4o", match=ClauseEquals("gpt-4o"), prices=ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(2))
    )
    openai = Provider(id="openai", name="OpenAI", api_pattern="x", model_match=ClauseStartsWith("gpt-"), models=[gpt])
    return DataSnapshot(providers=[openai], from_auto_update=True)


def test_auto_update_swaps_the_data_and_drops_the_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = fetched_snapshot()
    monkeypatch.setattr(UpdatePrices, "fetch", lambda self: snapshot)  # no network in tests
    table = PricingTable.from_config(PricingConfig(auto_update=True))
    assert table.auto_update and table.source.endswith("(bundled)")
    before = table.price("gpt-4o")
    assert before is not None and before.rates[0] == 2.5e-6
    try:
        table.start()
        assert wait_prices_updated_sync(10)
        after = table.price("gpt-4o")
        assert after is not None and after.rates[0] == 1e-6
        assert table.source.endswith("(fetched by auto-update)")
        assert table.snapshot_timestamp == pytest.approx(snapshot.timestamp.timestamp())
        assert table.price("claude-sonnet-4-5") is None  # not in the fetched data
    finally:
        table.stop()
        set_custom_snapshot(None)  # genai-prices' own global, set by its update thread
    deadline = time.monotonic() + 10
    while [t for t in threading.enumerate() if t.name == UPDATE_THREAD] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not [t for t in threading.enumerate() if t.name == UPDATE_THREAD]


def test_the_recorder_starts_and_stops_the_update_and_exports_the_data_date(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = fetched_snapshot()
    monkeypatch.setattr(UpdatePrices, "fetch", lambda self: snapshot)  # no network in tests
    rec = Recorder(Config.from_mapping({"pricing": {"auto_update": True}}), CollectorRegistry())
    bundled = rec.pricing.snapshot_timestamp

    def data_date() -> float | None:
        return rec.registry.get_sample_value("llm_exporter_price_data_timestamp_seconds", {"source": "genai-prices"})

    assert bundled is not None and data_date() == bundled
    try:
        rec.start()
        assert wait_prices_updated_sync(10)
        # The gauge follows the update: it is the fetched data's date now.
        assert data_date() == pytest.approx(snapshot.timestamp.timestamp())
    finally:
        rec.close()
        set_custom_snapshot(None)
    deadline = time.monotonic() + 10
    while [t for t in threading.enumerate() if t.name == UPDATE_THREAD] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not [t for t in threading.enumerate() if t.name == UPDATE_THREAD]


def test_snapshot_date_of_the_bundled_data() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    data = GenaiPrices.of(get_snapshot(), now)
    starts = [
        c.constraint.start_date
        for p in get_snapshot().providers
        for m in p.models
        for c in (m.prices if isinstance(m.prices, list) else [])
        if isinstance(c.constraint, StartDateConstraint)
    ]
    # The newest price change already in effect: never after today, whatever the data announces ahead.
    assert data.data_date == max(d for d in starts if d <= now.date())
    assert data.data_date is not None and data.data_date <= date(2026, 12, 1)
    assert data.timestamp == datetime.combine(data.data_date, datetime.min.time(), UTC).timestamp()
    assert GenaiPrices.of(get_snapshot(), datetime(2020, 1, 1, tzinfo=UTC)).data_date is None


def test_a_price_that_changes_is_looked_up_again_when_it_does() -> None:
    now = [datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()]  # deepseek's peak hours (00:30-16:30 UTC)
    table = PricingTable(GenaiPrices.of(get_snapshot(), datetime.now(UTC)), clock=lambda: now[0])
    usage = TokenUsage(1_000_000, 1_000_000)
    peak = table.price("deepseek-chat", "deepseek")
    assert peak is not None and peak.valid_until == datetime(2026, 12, 1, 16, 30, tzinfo=UTC).timestamp()
    assert table.price("deepseek-chat", "deepseek") is peak  # cached until then
    now[0] = peak.valid_until
    off_peak = table.price("deepseek-chat", "deepseek")
    assert off_peak is not None and off_peak is not peak
    for entry, at in ((peak, peak.valid_until - 1), (off_peak, peak.valid_until)):
        bill = entry.cost(usage)
        ref = calc_price(
            usage_of(usage), "deepseek-chat", provider_id="deepseek", genai_request_timestamp=datetime.fromtimestamp(at)
        )
        assert bill is not None and bill.total_usd == pytest.approx(float(ref.total_price), abs=1e-12)
    assert off_peak.cost(usage).total_usd < peak.cost(usage).total_usd  # type: ignore[union-attr]


def usage_of(usage: TokenUsage) -> object:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


def test_prices_genai_prices_would_refuse_are_an_error() -> None:
    listed = [listed_price(k, Decimal(1)) for k in ("input_mtok", "cache_read_mtok", "input_audio_mtok")]
    with pytest.raises(PriceDataError, match="cache_read_mtok and input_audio_mtok both price cache_audio_read"):
        flatten("m", "p", "test", listed)


def test_prices_for_something_else_than_tokens_give_no_entry() -> None:
    assert flatten("tts", "p", "test", [listed_price("input_mchars", Decimal(15))]) is None
    free = flatten("free", "p", "test", [])
    assert free is not None and set(free.rates) == {0.0}
