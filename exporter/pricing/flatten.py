"""Turns a model's listed prices into a flat ``PriceEntry``, with genai-prices' billing semantics.

genai-prices prices *units* that nest by their dimensions: input tokens contain cache reads, which contain
audio cache reads; output tokens contain reasoning tokens. Each token is billed by the most specific unit
that contains it and has a price. So each kind of ``KINDS`` is billed at the rate of its most specific priced
unit: its own price where the data lists one, else the price of the total it belongs to (cache reads of a
model with no cache-read price are input tokens at the input price; a model with no 1-hour cache-write
price bills those writes at its cache-write price, or at the input price if it has none). A kind with no
priced unit at all costs nothing, as genai-prices bills it. A model with prices but none for tokens (priced per
second of audio, per character, per page...) gets no entry: the tokens this exporter counts can't price it.
A model the data lists with no prices at all is free (OpenRouter's ``:free`` models, those a subscription
includes): every kind costs 0, as genai-prices bills it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from genai_prices.data_units import unit_data

from .entry import KINDS, ListedPrice, PriceEntry, Rates

# The genai-prices unit (usage key) of each kind: the kind's tokens are those of the unit not in a narrower one.
_KIND_UNITS = {
    "input": "input_tokens",
    "cache_read": "cache_read_tokens",
    "cache_write": "cache_write_5m_tokens",
    "cache_write_1h": "cache_write_1h_tokens",
    "input_audio": "input_audio_tokens",
    "cache_audio_read": "cache_audio_read_tokens",
    "input_image": "input_image_tokens",
    "cache_image_read": "cache_image_read_tokens",
    "output": "output_tokens",
    "output_reasoning": "output_reasoning_tokens",
    "output_audio": "output_audio_tokens",
    "output_image": "output_image_tokens",
    "request": "requests",
}
assert tuple(_KIND_UNITS) == KINDS

# price key -> (dimensions, units per price): input_mtok -> ({family: tokens, direction: input}, 1_000_000)
_UNITS: dict[str, tuple[frozenset[tuple[str, str]], int]] = {
    unit["price_key"]: (frozenset(unit["dimensions"].items()), unit["per"]) for unit in unit_data.values()
}
_KIND_DIMENSIONS = {
    kind: frozenset(unit_data[usage_key]["dimensions"].items()) for kind, usage_key in _KIND_UNITS.items()
}


class PriceDataError(ValueError):
    """A model's prices that genai-prices itself would refuse (two prices claim the same tokens)."""


def flatten(
    model: str,
    provider: str,
    source: str,
    listed: Iterable[ListedPrice],
    *,
    valid_until: float | None = None,
) -> PriceEntry | None:
    """The entry billing ``listed`` prices, or ``None`` when there are prices but none of them for tokens."""
    listed = tuple(listed)
    prices = {p.key: p for p in listed if p.key in _UNITS}
    billed_as = tuple(_billing_key(kind, prices) for kind in KINDS)
    if listed and not any(billed_as[:-1]):  # the last kind, request, is a fee per call, not a token price
        return None
    used = [prices[key] for key in billed_as if key is not None]
    thresholds = sorted({start for price in used for start, _ in price.tiers})
    return PriceEntry(
        model=model,
        provider=provider,
        source=source,
        rates=_rates(billed_as, prices, None),
        tiers=tuple((t, _rates(billed_as, prices, t)) for t in thresholds),
        billed_as=billed_as,
        listed=listed,
        valid_until=valid_until,
    )


def listed_price(key: str, value: Decimal, tiers: Iterable[tuple[int, Decimal]] = ()) -> ListedPrice:
    """A price under its data key; ``per`` comes from the key's unit (1 for a key genai-prices doesn't know)."""
    per = _UNITS[key][1] if key in _UNITS else 1
    return ListedPrice(key, per, value, tuple(sorted(tiers)))


def _billing_key(kind: str, prices: Mapping[str, ListedPrice]) -> str | None:
    dims = _KIND_DIMENSIONS[kind]
    containing = [key for key in prices if _UNITS[key][0] <= dims]
    if not containing:
        return None
    widest = max(len(_UNITS[key][0]) for key in containing)
    best = [key for key in containing if len(_UNITS[key][0]) == widest]
    if len(best) > 1:
        # e.g. cache_read_mtok and input_audio_mtok priced, cache_audio_read_mtok not: which bills audio cache reads?
        raise PriceDataError(f"{' and '.join(sorted(best))} both price {kind} tokens, and nothing narrower does")
    return best[0]


def _rates(billed_as: tuple[str | None, ...], prices: Mapping[str, ListedPrice], threshold: int | None) -> Rates:
    return tuple(0.0 if key is None else float(prices[key].at(threshold) / prices[key].per) for key in billed_as)
