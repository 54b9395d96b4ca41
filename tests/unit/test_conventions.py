"""The GenAI convention name sets: the switch (config key, OTEL_SEMCONV_STABILITY_OPT_IN), the names each
set gives the Prometheus families and the OTel instruments, and the deprecated time-to-first-token alias."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.utils import floatToGoString

from exporter import Config, ConfigError
from exporter.conventions import (
    DEFAULT,
    LATEST,
    NAMES,
    OPT_IN_ENV,
    Conventions,
    opted_in,
    otel_name,
    per_token_type,
    prometheus_name,
)
from exporter.labels import OVERFLOW, RESPONSE_MODEL
from exporter.observations import LLMCall
from exporter.otel import enable_otel_metrics
from exporter.prometheus.aliases import WithAliases
from exporter.prometheus.exposition import render
from exporter.prometheus.families import worst_case_series
from exporter.recorder import Recorder

from ..support.metrics import value

OLD_TTFT = "gen_ai_client_time_to_first_token_seconds"
# A streamed call: duration, time to first chunk, tokens.
CALL = LLMCall(model="gpt-4o", provider="openai", input_tokens=30, output_tokens=7, duration=1.5, ttft=0.3)


# -- the table ----------------------------------------------------------------------------------------------


def test_each_set_names_every_signal_as_the_conventions_do() -> None:
    names = {signal: (prometheus_name(signal, DEFAULT), prometheus_name(signal, LATEST)) for signal in NAMES}
    assert names == {
        "llm_duration": ("gen_ai_client_operation_duration_seconds", "gen_ai_client_inference_duration_seconds"),
        "llm_ttft": (
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "gen_ai_client_inference_time_to_first_chunk_seconds",
        ),
        "llm_chunk_gap": (
            "gen_ai_client_operation_time_per_output_chunk_seconds",
            "gen_ai_client_inference_time_per_output_chunk_seconds",
        ),
        # One family labelled by token type in the default set, one per type in the latest.
        "llm_input_tokens": ("gen_ai_client_token_usage", "gen_ai_client_inference_operation_input_tokens"),
        "llm_output_tokens": ("gen_ai_client_token_usage", "gen_ai_client_inference_operation_output_tokens"),
    }
    assert (per_token_type(DEFAULT), per_token_type(LATEST)) == (False, True)
    assert otel_name("llm_ttft", LATEST) == "gen_ai.client.inference.time_to_first_chunk"
    assert otel_name("llm_duration", DEFAULT) == "gen_ai.client.operation.duration"


@pytest.mark.parametrize(
    ("value", "latest"),
    [
        ("", False),
        ("http", False),
        ("gen_ai_latest_experimental", True),
        ("http, gen_ai_latest_experimental ", True),  # a comma-separated list, one value per category
        ("database,http/dup", False),
        ("gen_ai_latest_experimental_v2", False),  # values are whole words
    ],
)
def test_the_opt_in_variable_is_a_comma_separated_list(value: str, latest: bool) -> None:
    assert opted_in(value) is latest


# -- the switch ---------------------------------------------------------------------------------------------


def test_the_config_key_takes_the_two_sets_only() -> None:
    assert Config().gen_ai_conventions == DEFAULT
    assert Config.from_mapping({"gen_ai_conventions": LATEST}).gen_ai_conventions == LATEST
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"gen_ai_conventions": "latest"}, "app.yaml")
    assert str(info.value) == (
        "app.yaml: gen_ai_conventions: expected one of 'default', 'gen_ai_latest_experimental', got 'latest'"
    )


@pytest.mark.parametrize(
    ("environ", "base", "expected"),
    [
        ({}, {}, DEFAULT),
        ({OPT_IN_ENV: "http"}, {}, DEFAULT),  # another category's value
        ({OPT_IN_ENV: "http,gen_ai_latest_experimental"}, {}, LATEST),
        ({"LLM_EXPORTER_GEN_AI_CONVENTIONS": LATEST}, {}, LATEST),
        ({}, {"gen_ai_conventions": LATEST}, LATEST),  # the file's choice stands without the variable
        # The opt-in wins over the file and over the project's own variable.
        ({OPT_IN_ENV: LATEST}, {"gen_ai_conventions": DEFAULT}, LATEST),
        ({OPT_IN_ENV: LATEST, "LLM_EXPORTER_GEN_AI_CONVENTIONS": DEFAULT}, {}, LATEST),
    ],
)
def test_the_environment_opts_in(environ: dict[str, str], base: dict[str, Any], expected: str) -> None:
    config = Config.from_env(environ, Config.from_mapping(base))
    assert config.gen_ai_conventions == expected


def test_load_reads_the_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "llm-exporter.yaml"
    path.write_text("gen_ai_conventions: default\nlabel_cap: 7\n")
    config = Config.load(path, {OPT_IN_ENV: LATEST})
    assert (config.gen_ai_conventions, config.label_cap) == (LATEST, 7)


def test_a_wrong_project_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env({"LLM_EXPORTER_GEN_AI_CONVENTIONS": "v0.1.0"})
    assert info.value.source == "LLM_EXPORTER_GEN_AI_CONVENTIONS"
    assert info.value.key == "gen_ai_conventions"


# -- Prometheus ---------------------------------------------------------------------------------------------


def recorded(conventions: Conventions) -> Recorder:
    rec = Recorder(Config(gen_ai_conventions=conventions), CollectorRegistry())
    rec.llm(CALL)
    return rec


def family_names(rec: Recorder) -> set[str]:
    return {f.name for f in rec.registry.collect() if f.name.startswith("gen_ai_")}


def test_the_default_set_and_the_deprecated_ttft_copy() -> None:
    rec = recorded(DEFAULT)
    assert family_names(rec) == {
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_client_token_usage",
        "gen_ai_client_operation_time_to_first_chunk_seconds",
        "gen_ai_client_operation_time_per_output_chunk_seconds",
        "gen_ai_execute_tool_duration_seconds",
        OLD_TTFT,
    }
    new = "gen_ai_client_operation_time_to_first_chunk_seconds"
    model = {"gen_ai_request_model": "gpt-4o", "gen_ai_provider_name": "openai"}
    assert value(rec, f"{new}_count", **model) == 1
    assert value(rec, f"{new}_sum", **model) == 0.3
    assert value(rec, f"{new}_bucket", **model, le="0.25") == 0
    assert value(rec, f"{new}_bucket", **model, le="0.5") == 1
    # The copy: every sample again, same labels and values, under the old name.
    samples = {f.name: f.samples for f in rec.registry.collect()}
    assert [s._replace(name=s.name.replace(OLD_TTFT, new)) for s in samples[OLD_TTFT]] == samples[new]
    assert value(rec, "gen_ai_client_operation_duration_seconds_sum", **model) == 1.5


def test_the_latest_set_has_the_v0_1_0_names_and_no_old_one() -> None:
    rec = recorded(LATEST)
    assert family_names(rec) == {
        "gen_ai_client_inference_duration_seconds",
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        "gen_ai_client_inference_time_to_first_chunk_seconds",
        "gen_ai_client_inference_time_per_output_chunk_seconds",
        "gen_ai_execute_tool_duration_seconds",
    }
    model = {"gen_ai_request_model": "gpt-4o", "gen_ai_operation_name": "chat", "error_type": ""}
    assert value(rec, "gen_ai_client_inference_duration_seconds_sum", **model) == 1.5
    assert value(rec, "gen_ai_client_inference_time_to_first_chunk_seconds_sum", gen_ai_request_model="gpt-4o") == 0.3
    assert value(rec, f"{INPUT_TOKENS}_sum") == 30
    assert value(rec, f"{OUTPUT_TOKENS}_sum") == 7


# -- the token histograms: one labelled by type (default), one per type (latest) -------------------------------

INPUT_TOKENS = "gen_ai_client_inference_operation_input_tokens"
OUTPUT_TOKENS = "gen_ai_client_inference_operation_output_tokens"
USAGE = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}
EXEMPLAR = {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}
# Two calls of one kind: 30 + 3000 input tokens, 7 + 700 output (TOKEN_BUCKETS: ... 16, 64, ... 1024, 4096).
CALLS = (CALL, LLMCall(model="gpt-4o", provider="openai", input_tokens=3000, output_tokens=700, duration=2.0))


def record(rec: Recorder, path: str) -> None:
    """``CALLS`` through the owner thread's cached rows, or looked up child by child (the calls of a thread that
    is not the owner: here a thread claims the recorder first with a call that books no tokens)."""
    if path.startswith("looked_up"):
        claim = threading.Thread(target=rec.llm, args=(LLMCall(model="gpt-4o", provider="openai", missing_usage="x"),))
        claim.start()
        claim.join()
    if path.endswith("exemplar"):
        rec.set_exemplar_source(lambda: EXEMPLAR)
    for c in CALLS:
        rec.llm(c)


def token_samples(rec: Recorder) -> dict[str, dict[tuple[tuple[str, str], ...], tuple[float, bool]]]:
    """The token histograms' samples (creation times aside): name -> labels -> (value, has an exemplar)."""
    wanted = {"gen_ai_client_token_usage", INPUT_TOKENS, OUTPUT_TOKENS}
    out: dict[str, dict[tuple[tuple[str, str], ...], tuple[float, bool]]] = {}
    for family in rec.registry.collect():
        if family.name in wanted:
            for s in family.samples:
                if not s.name.endswith("_created"):
                    assert {k: s.labels[k] for k in USAGE} == USAGE and s.labels["gen_ai_response_model"] == ""
                    labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in (*USAGE, RESPONSE_MODEL)))
                    out.setdefault(s.name, {})[labels] = (s.value, s.exemplar is not None)
    return out


def histogram_of(name: str, extra: dict[str, str], low: float, high: float, exemplar: bool) -> dict[str, Any]:
    """The samples of one child holding the observations ``low`` and ``high`` (each past a different bound)."""
    pairs = tuple(sorted(extra.items()))
    buckets = {}
    for bound in (*Config().buckets.llm_tokens, math.inf):
        n = (low <= bound) + (high <= bound)
        le = floatToGoString(bound)
        # An exemplar sits in the bucket each observation fell in (the first whose bound holds it).
        buckets[(*pairs, ("le", le))] = (float(n), exemplar and bound in (_first(low), _first(high)))
    return {
        f"{name}_bucket": dict(sorted(buckets.items())),
        f"{name}_count": {pairs: (2.0, False)},
        f"{name}_sum": {pairs: (low + high, False)},
    }


def _first(tokens: float) -> float:
    return next(b for b in Config().buckets.llm_tokens if tokens <= b)


@pytest.mark.parametrize("path", ["rows", "rows_exemplar", "looked_up", "looked_up_exemplar"])
@pytest.mark.parametrize("conventions", [DEFAULT, LATEST])
def test_the_token_histograms_of_each_set(conventions: Conventions, path: str) -> None:
    rec = Recorder(Config(gen_ai_conventions=conventions), CollectorRegistry())
    record(rec, path)
    exemplar = path.endswith("exemplar")
    if conventions == DEFAULT:
        usage = "gen_ai_client_token_usage"
        expected = histogram_of(usage, {"gen_ai_token_type": "input"}, 30, 3000, exemplar)
        for name, samples in histogram_of(usage, {"gen_ai_token_type": "output"}, 7, 700, exemplar).items():
            expected[name].update(samples)
    else:  # the same observations, a family per type, without gen_ai_token_type
        expected = {
            **histogram_of(INPUT_TOKENS, {}, 30, 3000, exemplar),
            **histogram_of(OUTPUT_TOKENS, {}, 7, 700, exemplar),
        }
    got = token_samples(rec)
    assert {name: dict(sorted(samples.items())) for name, samples in got.items()} == expected
    # The kinds are still counted apart in llm_tokens_total, in either set.
    assert value(rec, "llm_tokens_total", gen_ai_token_type="input") == 3030
    assert value(rec, "llm_tokens_total", gen_ai_token_type="output") == 707


def test_a_call_without_usage_observes_no_tokens_in_either_set() -> None:
    for conventions in (DEFAULT, LATEST):
        rec = Recorder(Config(gen_ai_conventions=conventions), CollectorRegistry())
        rec.llm(LLMCall(model="gpt-4o", provider="openai", missing_usage="no_usage_in_stream", duration=1.0))
        assert token_samples(rec) == {}
        assert value(rec, "llm_exporter_missing_usage_total", reason="no_usage_in_stream") == 1


def test_the_latest_token_histograms_have_a_budget_each() -> None:
    """Each family holds its share of the budget: 2500 // 18 series a child = 138 children, the overflow one
    included; every new (provider, model) past the first 137 is folded and counted, once per family."""
    rec = Recorder(Config(gen_ai_conventions=LATEST), CollectorRegistry())
    for i in range(300):
        rec.llm(LLMCall(model=f"m{i % 30}", provider=f"p{i // 30}", input_tokens=5, output_tokens=2))
    counts = {f.name: len(f.samples) for f in rec.registry.collect()}
    assert (counts[INPUT_TOKENS], counts[OUTPUT_TOKENS]) == (138 * 18, 138 * 18)
    for name in (INPUT_TOKENS, OUTPUT_TOKENS):
        assert value(rec, "llm_exporter_label_overflow_total", label=name) == 300 - 137
    assert (value(rec, f"{INPUT_TOKENS}_sum"), value(rec, f"{OUTPUT_TOKENS}_sum")) == (1500, 600)  # none lost
    assert value(rec, f"{INPUT_TOKENS}_count", gen_ai_request_model=OVERFLOW) == 300 - 137


def test_the_exposition_and_a_name_filter_serve_the_copy() -> None:
    rec = recorded(DEFAULT)
    body, _ = render(rec.registry, names=[OLD_TTFT])
    lines = [line for line in body.decode().splitlines() if not line.startswith("#") and "_created" not in line]
    assert len(lines) == len(rec.config.buckets.llm_ttft) + 3  # the buckets, +Inf, _count, _sum
    assert all(line.startswith(OLD_TTFT) for line in lines)


def test_the_merged_files_of_multiprocess_mode_get_the_copy_too() -> None:
    """``scrape_registry`` wraps the multiprocess collector in WithAliases; here it wraps a registry with
    the family under its new name, as the merged files hold it."""
    source = CollectorRegistry()
    Histogram("gen_ai_client_operation_time_to_first_chunk_seconds", "TTFT", registry=source, buckets=(1.0,)).observe(
        0.5
    )
    merged = CollectorRegistry()
    merged.register(WithAliases(source))
    assert merged.get_sample_value(f"{OLD_TTFT}_count") == 1
    assert merged.get_sample_value(f"{OLD_TTFT}_bucket", {"le": "1.0"}) == 1
    assert merged.get_sample_value("gen_ai_client_operation_time_to_first_chunk_seconds_sum") == 0.5


def test_the_series_budget_counts_the_copy_and_the_second_token_histogram() -> None:
    # The default set's copy holds what the time to first chunk holds: its share of the budget, 104 children
    # of 24 series (20 boundaries, +Inf, _sum, _count, _created). The latest set has no copy, and a token
    # histogram per type: one more budgeted family, 138 children of 18 series (14 boundaries), plus its
    # llm_exporter_label_overflow_total series (_total, _created).
    assert (worst_case_series(Config()), worst_case_series(Config(gen_ai_conventions=LATEST))) == (65_633, 65_623)
    assert 65_633 - 104 * 24 + 138 * 18 + 2 == 65_623


# -- OTel metrics out ---------------------------------------------------------------------------------------

OTEL_OP = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}


@pytest.mark.parametrize(
    ("conventions", "duration", "ttft", "tokens"),
    [
        (
            DEFAULT,
            "gen_ai.client.operation.duration",
            "gen_ai.client.operation.time_to_first_chunk",
            {"gen_ai.client.token.usage": [("input", 1, 30), ("output", 1, 7)]},
        ),
        (
            LATEST,
            "gen_ai.client.inference.duration",
            "gen_ai.client.inference.time_to_first_chunk",
            {
                "gen_ai.client.inference.operation.input_tokens": [(None, 1, 30)],
                "gen_ai.client.inference.operation.output_tokens": [(None, 1, 7)],
            },
        ),
    ],
)
def test_otel_metrics_out_use_the_same_set(
    conventions: Conventions, duration: str, ttft: str, tokens: dict[str, list[tuple[str | None, int, int]]]
) -> None:
    rec = Recorder(Config(gen_ai_conventions=conventions), CollectorRegistry())
    reader = InMemoryMetricReader()
    enable_otel_metrics(rec, MeterProvider(metric_readers=[reader]))
    rec.llm(CALL)
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        m.name: list(m.data.data_points) for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
    }
    assert {name for name in points if name.startswith("gen_ai.")} == {duration, ttft, *tokens}
    for name, expected in tokens.items():  # (gen_ai.token.type, count, sum) per point, input first
        got = sorted((p.attributes.get("gen_ai.token.type"), p.count, p.sum) for p in points[name])
        assert got == expected, name
        assert all({k: v for k, v in p.attributes.items() if k != "gen_ai.token.type"} == OTEL_OP for p in points[name])
    assert [(p.count, p.sum) for p in points[duration]] == [(1, 1.5)]
    assert [(p.count, p.sum) for p in points[ttft]] == [(1, 0.3)]
    # Both sets require the operation name on both (v1.41.0 metric_attributes.gen_ai, v0.1.0 the same).
    assert [dict(p.attributes) for p in points[ttft]] == [OTEL_OP]
    assert [dict(p.attributes) for p in points[duration]] == [OTEL_OP]
