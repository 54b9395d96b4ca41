"""Prices kept by hand: the shipped ``pricing.yaml``, the user's ``pricing.file`` and ``pricing.overrides``.

The file format (USD per 1M tokens)::

    version: "acme-3"            # required in the shipped file
    date: "2026-01-15"           # required in the shipped file
    currency: USD
    models:
      acme-70b: {provider: acme, input: 0.9, output: 0.9, cached_input: 0.1}
    aliases:
      acme-large: acme-70b

A name matches a row by its exact name, or by the longest row name it starts with when what follows is only a
version suffix (a date, a number, ``latest``, ``preview``...): ``acme-70b-2026-01-15`` is ``acme-70b``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError, ModelPrice
from .entry import PriceEntry
from .flatten import flatten, listed_price

# What may follow a family name for a model to be that family: dated and numbered releases, channels.
_VERSION_SUFFIX = re.compile(r"(?:[-_@:](?:\d+|latest|preview|exp|experimental|v\d+))+")
_FILE_KEYS = ("version", "date", "currency", "models", "aliases")
_MODEL_KEYS = ("provider", "input", "output", "cached_input")


@dataclass(frozen=True, slots=True)
class PriceRow:
    model: str
    provider: str
    price: ModelPrice
    source: str  # the file it comes from, or "pricing.overrides"


@dataclass(frozen=True, slots=True)
class PriceFile:
    rows: dict[str, PriceRow]  # by lower-case name
    aliases: dict[str, str]
    version: str | None
    date: str | None


class LocalPrices:
    """Rows by name, matched exactly or as a family with a version suffix."""

    def __init__(self, rows: Mapping[str, PriceRow]) -> None:
        self.rows = dict(rows)
        self._by_length = sorted(self.rows, key=len, reverse=True)

    def match(self, name: str) -> PriceRow | None:
        """The row of a lower-case ``name``, or ``None``."""
        row = self.rows.get(name)
        if row is not None:
            return row
        for key in self._by_length:
            if name.startswith(key) and _VERSION_SUFFIX.fullmatch(name, len(key)):
                return self.rows[key]
        return None


def row_entry(row: PriceRow) -> PriceEntry:
    """A row's entry. Cache reads without a cached price, cache writes, audio and images are input."""
    price = row.price
    listed = [listed_price("input_mtok", _decimal(price.input)), listed_price("output_mtok", _decimal(price.output))]
    if price.cached_input is not None:
        listed.append(listed_price("cache_read_mtok", _decimal(price.cached_input)))
    entry = flatten(row.model, row.provider, row.source, listed)
    assert entry is not None  # input and output are always priced
    return entry


def override_rows(overrides: Mapping[str, ModelPrice]) -> dict[str, PriceRow]:
    return {
        name.strip().lower(): PriceRow(name.strip().lower(), "custom", price, "pricing.overrides")
        for name, price in overrides.items()
    }


def _decimal(value: float) -> Decimal:
    return Decimal(repr(value))  # the price as written (2.5, not 2.5's binary expansion)


# -- files ------------------------------------------------------------------------------------------------


def load(path: Path, *, shipped: bool) -> PriceFile:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise ConfigError(source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return _parse(data, source, shipped=shipped)


def _parse(data: Any, source: str, *, shipped: bool) -> PriceFile:
    if not isinstance(data, Mapping):
        raise ConfigError(source, "(top level)", f"expected a mapping with a 'models' key, got {type(data).__name__}")
    for key in data:
        if key not in _FILE_KEYS:
            raise ConfigError(source, str(key), f"unknown key; expected one of: {', '.join(_FILE_KEYS)}")
    meta: dict[str, str | None] = {}
    for key in ("version", "date"):
        value = data.get(key)
        if value is None and shipped:
            raise ConfigError(source, key, "required key is missing")
        if isinstance(value, Mapping | list):
            raise ConfigError(source, key, f"expected a string, got {type(value).__name__}")
        meta[key] = None if value is None else str(value)  # YAML reads an unquoted date as a date
    if data.get("currency", "USD") != "USD":
        raise ConfigError(source, "currency", f"only USD is supported, got {data['currency']!r}")
    models = {} if data.get("models") is None else data["models"]  # "models:" with nothing under it is empty
    if not isinstance(models, Mapping):
        raise ConfigError(source, "models", f"expected a mapping of model names, got {type(models).__name__}")
    rows: dict[str, PriceRow] = {}
    for name, entry in models.items():
        where = f"models.{name}"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(source, where, "a model name must be a non-empty string")
        if not isinstance(entry, Mapping):
            raise ConfigError(source, where, f"expected a mapping with input and output, got {entry!r}")
        for key in entry:
            if key not in _MODEL_KEYS:
                raise ConfigError(source, f"{where}.{key}", f"unknown key; expected one of: {', '.join(_MODEL_KEYS)}")
        provider = entry.get("provider", "custom")
        if not isinstance(provider, str) or not provider:
            raise ConfigError(source, f"{where}.provider", f"expected a string, got {provider!r}")
        price = ModelPrice(
            input=_price(entry, "input", source, where, required=True),  # type: ignore[arg-type]
            output=_price(entry, "output", source, where, required=True),  # type: ignore[arg-type]
            cached_input=_price(entry, "cached_input", source, where, required=False),
        )
        key = name.strip().lower()
        rows[key] = PriceRow(key, provider, price, source)
    aliases_raw = {} if data.get("aliases") is None else data["aliases"]
    if not isinstance(aliases_raw, Mapping):
        raise ConfigError(source, "aliases", f"expected a mapping of name: model, got {type(aliases_raw).__name__}")
    aliases: dict[str, str] = {}
    for alias, target in aliases_raw.items():
        if not isinstance(alias, str) or not isinstance(target, str) or not target:
            raise ConfigError(source, f"aliases.{alias}", f"expected a model name, got {target!r}")
        aliases[alias.strip().lower()] = target
    return PriceFile(rows, aliases, meta["version"], meta["date"])


def _price(entry: Mapping[str, Any], key: str, source: str, where: str, *, required: bool) -> float | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise ConfigError(source, f"{where}.{key}", "required key is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(source, f"{where}.{key}", f"expected a price in USD per 1M tokens (>= 0), got {value!r}")
    return float(value)
