"""The pricing table and one model's price as ``llm-exporter check`` prints them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from .entry import KINDS, ListedPrice, PriceEntry
from .source import NAME
from .table import PricingTable


def format_table(table: PricingTable) -> str:
    """The price data in use and the prices kept by hand."""
    snapshot = table.snapshot_date.isoformat() if table.snapshot_date else "undated"
    out = [
        f"pricing version {table.version or '-'} ({table.date or 'undated'})",
        f"price data: {table.source}, snapshot {snapshot}, {table.model_count} models; "
        f"auto-update {'on' if table.auto_update else 'off'}",
    ]
    rows = table.rows()
    if rows:
        out.append(f"prices kept by hand (they win over the data), USD per 1M tokens, {len(rows)} models:")
        header = ("model", "provider", "input", "cached input", "output", "source")
        lines = [
            (r.model, r.provider, _num(r.price.input), _num(r.price.cached_input), _num(r.price.output), r.source)
            for r in rows
        ]
        out.extend(_columns([header, *lines], right=(2, 3, 4)))
    if table.aliases:
        out.append("aliases:")
        out.extend(f"  {alias} -> {target}" for alias, target in sorted(table.aliases.items()))
    out.append("a model's price: llm-exporter check --price MODEL [--provider PROVIDER]")
    return "\n".join(out)


def describe_price(table: PricingTable, model: str, provider: str | None = None) -> str:
    """What ``model`` (for ``provider``) resolves to: the matched model, each rate and tier; or that it has none."""
    asked = f"{model} (provider {provider})" if provider else model
    entry = table.price(model, provider)
    if entry is None:
        return (
            f"{asked}: no price. Neither {table.source} nor the pricing file, overrides or aliases know it, so "
            "its calls get no cost (their tokens are counted as unpriced)."
        )
    out = [f"{asked} -> {entry.provider} {entry.model}, from {_source(table, entry)}"]
    out.extend(_rates(entry, None, "USD per 1M tokens (a kind without its own price is billed as the total it is in)"))
    for threshold, _ in entry.tiers:
        out.extend(_rates(entry, threshold, f"above {threshold:,} input tokens, every token of the call:"))
    fee = _fee(entry)
    if fee is not None:
        out.append(f"fee per request: {fee} USD")
    if entry.valid_until is not None:
        when = datetime.fromtimestamp(entry.valid_until, UTC).strftime("%Y-%m-%d %H:%M UTC")
        out.append(f"this price changes at {when} (a dated or off-peak price); it is looked up again then")
    counted = set(entry.billed_as)
    others = [p for p in entry.listed if p.key not in counted]
    if others:
        listed = ", ".join(f"{p.key} {_num(p.base)}" for p in others)
        out.append(f"also listed, for usage the exporter does not count: {listed}")
    return "\n".join(out)


def _source(table: PricingTable, entry: PriceEntry) -> str:
    if entry.source != NAME:
        return entry.source
    snapshot = table.snapshot_date.isoformat() if table.snapshot_date else "undated"
    return f"{table.source}, snapshot {snapshot}"


def _rates(entry: PriceEntry, threshold: int | None, title: str) -> list[str]:
    listed = {p.key: p for p in entry.listed}
    lines = []
    for kind, key in zip(KINDS[:-1], entry.billed_as[:-1], strict=True):
        if key is None:
            lines.append((f"  {kind}", "-", "no price"))
            continue
        price = listed[key]
        lines.append((f"  {kind}", _num(_per_million(price, threshold)), key))
    return [title, *_columns(lines, right=(1,))]


def _fee(entry: PriceEntry) -> Decimal | None:
    key = entry.billed_as[-1]
    if key is None:
        return None
    price = next(p for p in entry.listed if p.key == key)
    return price.at(None) / price.per


def _per_million(price: ListedPrice, threshold: int | None) -> Decimal:
    return price.at(threshold) * 1_000_000 / price.per


def _num(value: float | Decimal | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return f"{value:g}"


def _columns(rows: Sequence[Sequence[str]], *, right: Iterable[int]) -> list[str]:
    right = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]
