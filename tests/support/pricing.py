"""genai-prices' own prices, the references of the cost tests: ``calc_price`` on the tokens of one kind alone."""

from __future__ import annotations

from collections.abc import Mapping

from genai_prices import Usage, calc_price

from exporter import Recorder

from .metrics import series

# The genai-prices usage fields that ``n`` tokens of each kind (exporter.observations.TOKEN_KINDS) are: the
# kind's own field and every total it is part of.
_FIELDS = {
    "input": ("input_tokens",),
    "cache_read": ("input_tokens", "cache_read_tokens"),
    "cache_write": ("input_tokens", "cache_write_tokens", "cache_write_5m_tokens"),
    "cache_write_1h": ("input_tokens", "cache_write_tokens", "cache_write_1h_tokens"),
    "input_audio": ("input_tokens", "input_audio_tokens"),
    "cache_audio_read": ("input_tokens", "cache_read_tokens", "input_audio_tokens", "cache_audio_read_tokens"),
    "input_image": ("input_tokens", "input_image_tokens"),
    "cache_image_read": ("input_tokens", "cache_read_tokens", "input_image_tokens", "cache_image_read_tokens"),
    "output": ("output_tokens",),
    "output_reasoning": ("output_tokens", "output_reasoning_tokens"),
    "output_audio": ("output_tokens", "output_audio_tokens"),
    "output_image": ("output_tokens", "output_image_tokens"),
}


def usage_of(kinds: Mapping[str, int]) -> Usage:
    """The genai-prices usage of a call made of these kinds' tokens."""
    values: dict[str, int] = {}
    for kind, n in kinds.items():
        for name in _FIELDS[kind]:
            values[name] = values.get(name, 0) + n
    return Usage(**values)


def reference_usd(model: str, provider: str, kinds: Mapping[str, int]) -> float:
    """genai-prices' price of a call made of these kinds' tokens, in USD."""
    return float(calc_price(usage_of(kinds), model, provider_id=provider).total_price)


def by_kind(source: Recorder, name: str) -> dict[str, float]:
    """{gen_ai_token_type: value} of every ``name`` series (one call's, or one model's), summed by kind."""
    out: dict[str, float] = {}
    for labels, value in series(source, name).items():
        kind = dict(labels)["gen_ai_token_type"]
        out[kind] = out.get(kind, 0.0) + value
    return out
