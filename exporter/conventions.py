"""The OpenTelemetry GenAI convention names, per name set: one table, read by the Prometheus families and
by OTel metrics out when they are built, so each signal's name is still written once.

Two sets, as the conventions' own transition plan has it (semantic-conventions v1.41.0,
``docs/gen-ai/README.md``): instrumentations keep emitting the names they emitted by default, and an
``OTEL_SEMCONV_STABILITY_OPT_IN`` environment variable, "a comma-separated list of category-specific
values", opts in to the latest experimental conventions with the value ``gen_ai_latest_experimental``
("and do not emit the old one").

- ``default``: the names of semantic-conventions v1.41.0 (``docs/gen-ai/gen-ai-metrics.md``), the last
  release that held the GenAI conventions before they moved to their own repository.
- ``gen_ai_latest_experimental``: semantic-conventions-genai v0.1.0 (``docs/gen-ai/client-inference.md``;
  its migration guide, ``docs/gen-ai/non-normative/migration.md``, lists the renames:
  ``gen_ai.client.operation.duration`` -> ``gen_ai.client.inference.duration`` for inference operations,
  ``...operation.time_to_first_chunk`` / ``time_per_output_chunk`` -> ``...inference.*``; units,
  instruments and attributes unchanged; semantic-conventions-genai PR #521). Read from the repository's
  files as of that release series; the names are still "Development" and may move again.

A row holds the OTel instrument name of each set and its unit; the Prometheus name is derived from them the
way OTel's Prometheus exporter does (dots to underscores, the unit's suffix: ``s`` -> ``_seconds``;
annotations such as ``{token}`` add none; counters get ``_total`` from prometheus_client). A new family
whose name the conventions define adds a row here and looks its name up with :func:`prometheus_name`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Conventions = Literal["default", "gen_ai_latest_experimental"]
DEFAULT: Conventions = "default"
LATEST: Conventions = "gen_ai_latest_experimental"
OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"

_UNIT_SUFFIX = {"s": "_seconds", "By": "_bytes"}


@dataclass(frozen=True)
class Row:
    """One signal's instrument name in each set, and its unit (UCUM, as the conventions give it)."""

    default: str
    latest: str
    unit: str


# Signal (the Metrics / OtelMetricsSink attribute) -> names. All Histograms in both sets.
NAMES: Mapping[str, Row] = {
    "llm_duration": Row("gen_ai.client.operation.duration", "gen_ai.client.inference.duration", "s"),
    "llm_ttft": Row("gen_ai.client.operation.time_to_first_chunk", "gen_ai.client.inference.time_to_first_chunk", "s"),
    # The gap between chunks of a stream (issue 14's chunk-gap histogram).
    "llm_chunk_gap": Row(
        "gen_ai.client.operation.time_per_output_chunk", "gen_ai.client.inference.time_per_output_chunk", "s"
    ),
    # Tokens per call, input and output totals. v1.41.0 has one histogram for both, told apart by
    # gen_ai.token.type; semantic-conventions-genai (model/gen-ai/token-metrics.yaml) has one histogram per
    # kind, without that attribute: gen_ai.client.inference.operation.input_tokens and ...output_tokens,
    # unit {token}, "per inference operation". Two signals that share a name in a set are one family there,
    # labelled by token type (see per_token_type). The same file's counters (gen_ai.client.inference.usage.*)
    # are not emitted: llm_tokens_total counts every kind already, and the file's later versions ask them (and
    # the histograms) for a 0 when usage is missing, which this exporter counts as missing instead. Those
    # versions also add error.type to the histograms; these keep the labels of gen_ai_client_token_usage.
    "llm_input_tokens": Row("gen_ai.client.token.usage", "gen_ai.client.inference.operation.input_tokens", "{token}"),
    "llm_output_tokens": Row("gen_ai.client.token.usage", "gen_ai.client.inference.operation.output_tokens", "{token}"),
}

# Deprecated Prometheus names still exposed, for one release, beside the family that replaces them:
# new name -> old name. gen_ai_client_time_to_first_token_seconds was this project's name for the time
# to first chunk, in no version of the conventions; only the default set has it (opting in to the latest
# names means not emitting old ones).
ALIASES: Mapping[str, str] = {
    "gen_ai_client_operation_time_to_first_chunk_seconds": "gen_ai_client_time_to_first_token_seconds",
}


def otel_name(signal: str, conventions: Conventions) -> str:
    row = NAMES[signal]
    return row.latest if conventions == LATEST else row.default


def prometheus_name(signal: str, conventions: Conventions) -> str:
    """``otel_name`` as OTel's Prometheus exporter writes it."""
    return otel_name(signal, conventions).replace(".", "_") + _UNIT_SUFFIX.get(NAMES[signal].unit, "")


def per_token_type(conventions: Conventions) -> bool:
    """Whether ``conventions`` has a token histogram per token type (input, output) rather than one family
    labelled ``gen_ai_token_type``."""
    return otel_name("llm_input_tokens", conventions) != otel_name("llm_output_tokens", conventions)


def opted_in(value: str) -> bool:
    """Whether an ``OTEL_SEMCONV_STABILITY_OPT_IN`` value asks for the latest GenAI names. The values of
    other categories (``http``, ``database``...) are other instrumentations' business and are ignored."""
    return LATEST in (part.strip() for part in value.split(","))
