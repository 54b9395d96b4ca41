"""Per-model prices (USD per 1M tokens) and the cost of an LLM call.

The shipped table (``pricing.yaml``, dated and versioned) is extended by the user's pricing file,
overrides and aliases from the config. A model name resolves by explicit alias, then exact name, then
the longest table name it starts with when what follows is only a version suffix (a date, a number,
``latest``, ``preview``...). A model that doesn't resolve has no price: no cost is invented for it.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError, ModelPrice, PricingConfig
from ..observations import Cost

SHIPPED = Path(__file__).with_name("pricing.yaml")
PER_TOKENS = 1_000_000
CACHE_SIZE = 4096  # resolved model names kept; new names past it are resolved each time, not stored

# What may follow a family name for a model to be that family: dated and numbered releases, channels.
_VERSION_SUFFIX = re.compile(r"(?:[-_@:](?:\d+|latest|preview|exp|experimental|v\d+))+")
# Cloud-hosted names of the same models: Bedrock's "anthropic.claude-..." and "us.anthropic.claude-...".
_VENDOR_PREFIX = re.compile(r"(?:[a-z]{2,4}\.)?(?:anthropic|openai|google)\.")
_FILE_KEYS = ("version", "date", "currency", "models", "aliases")
_MODEL_KEYS = ("provider", "input", "output", "cached_input")


@dataclass(frozen=True, slots=True)
class PriceRow:
    model: str
    provider: str
    price: ModelPrice


@dataclass(frozen=True, slots=True)
class _TableData:
    prices: dict[str, ModelPrice]
    providers: dict[str, str]
    aliases: dict[str, str]
    version: str | None
    date: str | None


class PricingTable:
    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        *,
        providers: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
        version: str = "",
        date: str = "",
    ) -> None:
        """``aliases`` map a model name to a name that must resolve in ``prices`` (else ``KeyError``)."""
        self._prices = {name.lower(): price for name, price in prices.items()}
        self._providers = {name.lower(): p for name, p in (providers or {}).items()}
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self.version = version
        self.date = date
        self._aliases: dict[str, str] = {}
        for alias, target in (aliases or {}).items():
            key = self._match(target.lower())
            if key is None:
                raise KeyError(target)
            self._aliases[alias.lower()] = key
        self._cache: dict[str, str | None] = {}

    @classmethod
    def from_config(cls, cfg: PricingConfig) -> PricingTable:
        """The shipped table, then ``cfg.file``, then ``cfg.overrides``; ``cfg.aliases`` on top."""
        base = _shipped()
        prices = dict(base.prices)
        providers = dict(base.providers)
        aliases = dict(base.aliases)
        alias_source = {name: (str(SHIPPED), f"aliases.{name}") for name in aliases}
        version = base.version or ""
        date = base.date or ""
        if cfg.file:
            user = _load(Path(cfg.file), shipped=False)
            prices.update(user.prices)
            providers.update(user.providers)
            aliases.update(user.aliases)
            alias_source.update({name: (cfg.file, f"aliases.{name}") for name in user.aliases})
            version += f"+{user.version or Path(cfg.file).name}"
            date = user.date or date
        if cfg.overrides:
            for name, price in cfg.overrides.items():
                prices[name.lower()] = price
                providers.setdefault(name.lower(), "custom")
            version += "+overrides"
        for name, target in cfg.aliases.items():
            aliases[name.lower()] = target
            alias_source[name.lower()] = ("config", f"pricing.aliases.{name}")
        table = cls(prices, providers=providers, version=version, date=date)
        for name, target in aliases.items():
            key = table._match(target.lower())
            if key is None:
                source, where = alias_source[name]
                raise ConfigError(source, where, f"{target!r} is not a model of the pricing table")
            table._aliases[name] = key
        return table

    # -- look-ups -------------------------------------------------------------------------------------

    def resolve(self, model: str) -> str | None:
        """The table name ``model`` is priced as, or ``None``."""
        cache = self._cache
        if model in cache:
            return cache[model]
        name = model.strip().lower()
        key = self._aliases.get(name) or self._match(name)
        if key is None:
            # "openai/gpt-4o", "models/gemini-2.5-flash", "us.anthropic.claude-3-haiku-20240307-v1:0"
            tail = name.rsplit("/", 1)[1] if "/" in name else name
            vendor = _VENDOR_PREFIX.match(tail)
            if vendor is not None:
                tail = tail[vendor.end() :]
            if tail != name:
                key = self._aliases.get(tail) or self._match(tail)
        if len(cache) < CACHE_SIZE:
            cache[model] = key
        return key

    def _match(self, name: str) -> str | None:
        if name in self._prices:
            return name
        for key in self._by_length:
            if name.startswith(key) and _VERSION_SUFFIX.fullmatch(name, len(key)):
                return key
        return None

    def lookup(self, model: str) -> ModelPrice | None:
        key = self.resolve(model)
        return None if key is None else self._prices[key]

    def cost(self, model: str, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Cost | None:
        """The cost of one call, or ``None`` for a model with no price.

        ``cached_input_tokens`` are part of ``input_tokens``; they are billed at the cached price when
        the table has one, else at the input price.
        """
        price = self.lookup(model)
        if price is None:
            return None
        cached = min(max(cached_input_tokens, 0), input_tokens)
        if price.cached_input is None:
            input_usd = input_tokens * price.input
        else:
            input_usd = (input_tokens - cached) * price.input + cached * price.cached_input
        return Cost(input_usd / PER_TOKENS, output_tokens * price.output / PER_TOKENS)

    # -- listing --------------------------------------------------------------------------------------

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def rows(self) -> list[PriceRow]:
        """Every model with its price, by provider then name."""
        rows = [PriceRow(name, self._providers.get(name, "custom"), p) for name, p in self._prices.items()]
        return sorted(rows, key=lambda r: (r.provider, r.model))

    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.resolve(model) is not None


def format_table(table: PricingTable) -> str:
    """The table as ``llm-exporter check`` prints it."""

    def usd(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    header = ("model", "provider", "input", "cached input", "output")
    lines = [
        (r.model, r.provider, usd(r.price.input), usd(r.price.cached_input), usd(r.price.output)) for r in table.rows()
    ]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]

    def fmt(row: Iterable[str]) -> str:
        cells = list(row)
        left = [cells[i].ljust(widths[i]) for i in range(2)]
        right = [cells[i].rjust(widths[i]) for i in range(2, len(cells))]
        return "  ".join(left + right).rstrip()

    out = [
        f"pricing version {table.version or '-'} ({table.date or 'undated'}), USD per 1M tokens, {len(table)} models",
        fmt(header),
        *(fmt(row) for row in lines),
    ]
    if table.aliases:
        out.append("aliases:")
        out.extend(f"  {alias} -> {target}" for alias, target in sorted(table.aliases.items()))
    return "\n".join(out)


# -- files ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _shipped() -> _TableData:
    # Parsed once per process: every Recorder starts from it.
    return _load(SHIPPED, shipped=True)


def _load(path: Path, *, shipped: bool) -> _TableData:
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


def _parse(data: Any, source: str, *, shipped: bool) -> _TableData:
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
    models = data.get("models", {})
    if not isinstance(models, Mapping):
        raise ConfigError(source, "models", f"expected a mapping of model names, got {type(models).__name__}")
    prices: dict[str, ModelPrice] = {}
    providers: dict[str, str] = {}
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
        prices[name.strip().lower()] = ModelPrice(
            input=_price(entry, "input", source, where, required=True),  # type: ignore[arg-type]
            output=_price(entry, "output", source, where, required=True),  # type: ignore[arg-type]
            cached_input=_price(entry, "cached_input", source, where, required=False),
        )
        providers[name.strip().lower()] = provider
    aliases_raw = data.get("aliases", {}) or {}
    if not isinstance(aliases_raw, Mapping):
        raise ConfigError(source, "aliases", f"expected a mapping of name: model, got {type(aliases_raw).__name__}")
    aliases: dict[str, str] = {}
    for alias, target in aliases_raw.items():
        if not isinstance(alias, str) or not isinstance(target, str) or not target:
            raise ConfigError(source, f"aliases.{alias}", f"expected a model name, got {target!r}")
        aliases[alias.strip().lower()] = target
    return _TableData(prices, providers, aliases, meta["version"], meta["date"])


def _price(entry: Mapping[str, Any], key: str, source: str, where: str, *, required: bool) -> float | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise ConfigError(source, f"{where}.{key}", "required key is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(source, f"{where}.{key}", f"expected a price in USD per 1M tokens (>= 0), got {value!r}")
    return float(value)
