"""The flat price entry of one resolved model, and the cost of one call from it: a few float operations.

An entry holds, for each kind of ``KINDS``, the USD rate that kind is billed at (per token; per call for
``request``), below the first long-context tier and above each one. ``flatten.py`` makes the rates from the
price data; nothing here knows where they came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ..observations import N_INPUT_KINDS, TOKEN_KINDS
from .usage import TokenUsage

# The disjoint kinds a call's bill splits into (see usage.py), in the order of ``Rates`` and ``CostBreakdown``:
# the token kinds the metrics count, and a fee per call.
KINDS = (*TOKEN_KINDS, "request")
INPUT_KINDS = KINDS[:N_INPUT_KINDS]
OUTPUT_KINDS = KINDS[N_INPUT_KINDS : len(TOKEN_KINDS)]

Rates = tuple[float, ...]
"""One USD rate per kind of ``KINDS``: per token, and per call for ``request``."""


@dataclass(frozen=True, slots=True)
class ListedPrice:
    """A price as the data lists it (USD per ``per`` units), kept to describe the entry."""

    key: str  # the data's price key: input_mtok, cache_write_1h_mtok, requests_kcount...
    per: int
    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()  # (input tokens above which it applies, price), ascending

    def at(self, threshold: int | None) -> Decimal:
        """The price when input tokens are above ``threshold`` (``None``: below every tier)."""
        value = self.base
        if threshold is not None:
            for start, tier_value in self.tiers:
                if start <= threshold:
                    value = tier_value
        return value


# Not frozen: one is made per priced call (see TokenUsage).
@dataclass(slots=True)
class CostBreakdown:
    """USD of one call per kind; the fields add up to the bill."""

    input: float
    cache_read: float
    cache_write: float
    cache_write_1h: float
    input_audio: float
    cache_audio_read: float
    input_image: float
    cache_image_read: float
    output: float
    output_reasoning: float
    output_audio: float
    output_image: float
    request: float  # a fee per call, where the provider charges one

    @property
    def input_usd(self) -> float:
        """The input side: uncached input, cache reads and writes, audio and image input."""
        return (
            self.input
            + self.cache_read
            + self.cache_write
            + self.cache_write_1h
            + self.input_audio
            + self.cache_audio_read
            + self.input_image
            + self.cache_image_read
        )

    @property
    def output_usd(self) -> float:
        return self.output + self.output_reasoning + self.output_audio + self.output_image

    @property
    def total_usd(self) -> float:
        return self.input_usd + self.output_usd + self.request


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """What one (provider, model) costs: a flat rate per kind, and the long-context tiers."""

    model: str  # the id the name resolved to (the price data's model id, or the pricing file's name)
    provider: str  # the price data's provider id, or the pricing file's provider
    source: str  # where the price comes from: "genai-prices", "overrides", the pricing file's path...
    rates: Rates  # when input_tokens is at most the first tier's threshold (or there are no tiers)
    tiers: tuple[tuple[int, Rates], ...] = ()  # (threshold, rates when input_tokens is above it), ascending
    billed_as: tuple[str | None, ...] = ()  # per kind, the price key that bills it; None: the data has no price
    listed: tuple[ListedPrice, ...] = ()  # the prices the data gives for the model
    valid_until: float | None = None  # epoch seconds at which the price changes (a dated or off-peak price)

    def cost(self, usage: TokenUsage) -> CostBreakdown | None:
        """The bill of one call, per kind; ``None`` for counts that can't be a call's (``usage.problem()``)."""
        counts = usage.split()
        return None if counts is None else CostBreakdown(*self.amounts(counts))

    def amounts(self, counts: Sequence[int]) -> tuple[float, ...]:
        """The USD of each kind of ``KINDS`` for the tokens of each kind but the last (``TokenUsage.split()``,
        ``LLMCall.kinds()``): what the request path calls, a few float operations."""
        rates = self.rates
        if self.tiers:
            # The provider's cliff: above a threshold every token is billed at the tier's rate. The input
            # kinds add up to the call's input tokens.
            n = sum(counts[:N_INPUT_KINDS])
            for start, band in self.tiers:
                if n <= start:
                    break
                rates = band
        r_in, r_cr, r_cw, r_cw1h, r_ia, r_car, r_ii, r_cir, r_out, r_or, r_oa, r_oi, r_req = rates
        plain_in, plain_read, cw_5m, cw_1h, audio, audio_read, image, image_read, plain_out, reasoning, oa, oi = counts
        return (
            plain_in * r_in,
            plain_read * r_cr,
            cw_5m * r_cw,
            cw_1h * r_cw1h,
            audio * r_ia,
            audio_read * r_car,
            image * r_ii,
            image_read * r_cir,
            plain_out * r_out,
            reasoning * r_or,
            oa * r_oa,
            oi * r_oi,
            r_req,
        )
