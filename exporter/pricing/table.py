"""The price of each (provider, model), resolved once and kept as a flat entry; the cost of a call from it.

A name resolves through, first to last (the first that knows it wins):

1. an alias (``pricing.aliases``, the pricing file's ``aliases``), which names the model to price it as;
2. the user's prices: ``pricing.overrides``, then ``pricing.file`` (matched by name or family, see local.py);
3. genai-prices' data, by its own matching, for the call's provider;
4. the shipped ``pricing.yaml``: what genai-prices lacks, prices or aliases into its data (for names it can't
   place without the provider, such as ``text-embedding-3-small``). Never consulted when 3. has the model.

Each layer is tried with the name as given, then as the forms providers and gateways wrap it in:
``openai/gpt-4o`` (the head names the provider), ``models/gemini-2.5-pro`` (a path), and Bedrock's
``us.anthropic.claude-...`` ids. A name that resolves nowhere has no price: no cost is invented for it.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path

from genai_prices.data_snapshot import DataSnapshot

from ..config import ConfigError, ModelPrice, PricingConfig
from .entry import PriceEntry
from .local import LocalPrices, PriceFile, PriceRow, load, override_rows, row_entry
from .source import AutoUpdate, GenaiPrices

SHIPPED = Path(__file__).with_name("pricing.yaml")
CACHE_SIZE = 4096  # (provider, model) entries kept; names first seen past it are resolved on each call

# Cloud-hosted ids of the same models: Bedrock's "anthropic.claude-..." and "us.anthropic.claude-...".
_VENDOR_PREFIX = re.compile(r"(?:[a-z]{2,4}\.)?(?:anthropic|openai|google|meta|amazon|mistral|cohere|deepseek)\.")

CacheKey = tuple[object, ...]


class PricingTable:
    def __init__(
        self,
        data: GenaiPrices,
        *,
        user: LocalPrices | None = None,
        shipped: LocalPrices | None = None,
        aliases: Mapping[str, str] | None = None,
        shipped_aliases: Mapping[str, str] | None = None,
        version: str = "",
        date: str = "",
        auto_update: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``aliases`` map a name to the name to price it as, before any price; ``shipped_aliases`` after all
        else failed. ``clock`` gives epoch seconds."""
        self._data = data
        self._user = user or LocalPrices({})
        self._shipped = shipped or LocalPrices({})
        self._aliases = _lower(aliases)
        self._shipped_aliases = _lower(shipped_aliases)
        self.version = version
        self.date = date
        self._clock = clock
        self._auto_update = AutoUpdate(self._use) if auto_update else None
        self._cache: dict[CacheKey, PriceEntry | None] = {}
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    def from_config(cls, cfg: PricingConfig) -> PricingTable:
        """genai-prices' data, the shipped file, then ``cfg.file`` and ``cfg.overrides``; ``cfg.aliases`` on top."""
        data = GenaiPrices.current(datetime.now(UTC))
        shipped = _shipped()
        rows: dict[str, PriceRow] = {}
        aliases: dict[str, str] = {}
        where: dict[str, tuple[str, str]] = {}  # alias -> (source, key), for a message naming both
        version = f"genai-prices-{data.version}+{shipped.version}"
        day = "" if data.data_date is None else data.data_date.isoformat()
        if cfg.file:
            user = load(Path(cfg.file), shipped=False)
            rows.update(user.rows)
            aliases.update(user.aliases)
            where.update({name: (cfg.file, f"aliases.{name}") for name in user.aliases})
            version += f"+{user.version or Path(cfg.file).name}"
            day = user.date or day
        if cfg.overrides:
            rows.update(override_rows(cfg.overrides))
            version += "+overrides"
        for name, target in cfg.aliases.items():
            aliases[name.lower()] = target
            where[name.lower()] = ("config", f"pricing.aliases.{name}")
        table = cls(
            data,
            user=LocalPrices(rows),
            shipped=LocalPrices(shipped.rows),
            aliases=aliases,
            shipped_aliases=shipped.aliases,
            version=version,
            date=day,
            auto_update=cfg.auto_update,
        )
        checks = [(target, *where[name]) for name, target in aliases.items()]
        checks += [(target, str(SHIPPED), f"aliases.{name}") for name, target in shipped.aliases.items()]
        for target, source, key in checks:
            if table._find(target.strip().lower(), None, None) is None:
                raise ConfigError(
                    source,
                    key,
                    f"{target!r} is not a model of the pricing table (genai-prices' data, the pricing file, the "
                    "overrides); a model genai-prices knows only with its provider is written provider/model, "
                    "e.g. openai/text-embedding-3-small",
                )
        return table

    # -- the request path -----------------------------------------------------------------------------

    def price(
        self, model: str, provider: str | None = None, context: Mapping[str, str] | None = None
    ) -> PriceEntry | None:
        """The entry ``model`` is priced by, or ``None`` for a model with no price.

        ``provider`` is the call's provider as the exporter names it (``openai``, ``gcp.gemini``,
        ``aws.bedrock``...); ``context`` the request's price variant in genai-prices' terms, e.g.
        ``{"service_tier": "flex"}`` or ``{"processing": "batch"}``. Resolved on first sight, then a dict look-up.
        """
        key: CacheKey = (provider, model) if not context else (provider, model, frozenset(context.items()))
        cache = self._cache
        try:
            entry = cache[key]
        except KeyError:
            pass
        else:
            if entry is None or entry.valid_until is None or entry.valid_until > self._clock():
                return entry
        entry = self._resolve(model, provider, context)
        if len(cache) < CACHE_SIZE or key in cache:
            cache[key] = entry
        return entry

    # -- look-ups -------------------------------------------------------------------------------------

    def resolve(self, model: str, provider: str | None = None) -> str | None:
        """The model id ``model`` is priced as, or ``None``."""
        entry = self.price(model, provider)
        return None if entry is None else entry.model

    def lookup(self, model: str, provider: str | None = None) -> ModelPrice | None:
        """The base prices (USD per 1M tokens, below any long-context tier) of input, output and cache reads."""
        entry = self.price(model, provider)
        if entry is None:
            return None
        base = {p.key: float(p.base) for p in entry.listed}
        return ModelPrice(base.get("input_mtok", 0.0), base.get("output_mtok", 0.0), base.get("cache_read_mtok"))

    def _resolve(self, model: str, provider: str | None, context: Mapping[str, str] | None) -> PriceEntry | None:
        name = model.strip().lower()
        if not name:
            return None
        for _, form in _forms(name, provider):
            if form in self._aliases:
                name = self._aliases[form]
                break
        return self._find(name, provider, context)

    def _find(
        self, name: str, provider: str | None, context: Mapping[str, str] | None, *, shipped: bool = True
    ) -> PriceEntry | None:
        forms = _forms(name, provider)
        for _, form in forms:
            row = self._user.match(form)
            if row is not None:
                return row_entry(row)
        data = self._data  # one snapshot for the whole look-up, even if an update swaps it meanwhile
        now = datetime.fromtimestamp(self._clock(), UTC)
        for hint, form in forms:
            found = data.find(form, hint)
            if found is not None:
                # The first match decides, priced or not: another form of the name would be another model.
                return data.entry(found, context, now)
        if not shipped:
            return None
        for _, form in forms:
            row = self._shipped.match(form)
            if row is not None:
                return row_entry(row)
            target = self._shipped_aliases.get(form)
            if target is not None:
                return self._find(target, provider, context, shipped=False)  # one step: no alias chains
        return None

    # -- the price data -------------------------------------------------------------------------------

    @property
    def source(self) -> str:
        """Where the prices come from, e.g. ``genai-prices 0.2.3 (bundled)``."""
        return self._data.description

    @property
    def snapshot_date(self) -> date | None:
        """The date of genai-prices' data (see ``GenaiPrices.of``)."""
        return self._data.data_date

    @property
    def snapshot_timestamp(self) -> float | None:
        """``snapshot_date`` as epoch seconds (UTC midnight; the fetch time of auto-updated data)."""
        return self._data.timestamp

    @property
    def auto_update(self) -> bool:
        return self._auto_update is not None

    def start(self) -> None:
        """Start genai-prices' background update when ``pricing.auto_update`` is on (from the ASGI lifespan)."""
        if self._auto_update is not None:
            self._auto_update.start()

    def stop(self) -> None:
        if self._auto_update is not None:
            self._auto_update.stop()

    def when_updated(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the update thread) each time newer price data is in use."""
        self._listeners.append(listener)

    def _use(self, snapshot: DataSnapshot) -> None:
        # Called from genai-prices' update thread. The data first, then a fresh cache: a look-up that
        # still holds the old cache stores its entry there, where nothing reads it again.
        self._data = GenaiPrices.of(snapshot, datetime.now(UTC))
        self._cache = {}
        for listener in self._listeners:
            listener()

    # -- listing --------------------------------------------------------------------------------------

    @property
    def aliases(self) -> dict[str, str]:
        """Every alias: the user's, and the shipped ones (which apply only to names nothing else prices)."""
        return {**self._shipped_aliases, **self._aliases}

    def rows(self) -> list[PriceRow]:
        """The prices kept by hand (shipped, pricing file, overrides; the user's win), by provider then name."""
        rows = {**self._shipped.rows, **self._user.rows}
        return sorted(rows.values(), key=lambda r: (r.provider, r.model))

    @property
    def model_count(self) -> int:
        """Models in genai-prices' data."""
        return self._data.model_count

    def __len__(self) -> int:
        return self._data.model_count + len(self.rows())

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.price(model) is not None


def _lower(aliases: Mapping[str, str] | None) -> dict[str, str]:
    return {name.strip().lower(): target.strip().lower() for name, target in (aliases or {}).items()}


def _forms(name: str, provider: str | None) -> list[tuple[str | None, str]]:
    """The (provider, model) pairs a lower-case name may be priced as, the name as given first."""
    forms = [(provider, name)]
    tail = name
    if "/" in name:
        head, rest = name.split("/", 1)
        tail = name.rsplit("/", 1)[1]
        # "openai/gpt-4o" (LiteLLM, OpenRouter): the head names the provider; "models/gemini-2.5-pro": a path.
        forms += [(head, rest), (provider, tail)]
    vendor = _VENDOR_PREFIX.match(tail)
    if vendor is not None:
        # Bedrock's ids are priced as Bedrock's (genai-prices' "aws"), then as the model's own.
        forms += [("aws", tail), (provider, tail[vendor.end() :])]
    return list(dict.fromkeys(forms))


@functools.lru_cache(maxsize=1)
def _shipped() -> PriceFile:
    # Parsed once per process: every Recorder starts from it.
    return load(SHIPPED, shipped=True)
