"""Configuration: frozen dataclasses, loaded from YAML and ``LLM_EXPORTER_*`` environment variables.

Validation happens at load time, driven by the field annotations, so every section added later is
checked the same way. Errors name the source (file or variable), the dotted key and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from . import checks
from .checks import Rule, Wrong
from .conventions import LATEST, OPT_IN_ENV, Conventions, opted_in
from .labels import LABEL_NAMES, NOT_UTF8, is_utf8

ENV_PREFIX = "LLM_EXPORTER_"
DEFAULT_FILE = "llm-exporter.yaml"

# OpenTelemetry's http.server.request.duration boundaries, extended to 300 s: LLM requests routinely
# take tens of seconds and a top bucket of 10 s would hide them all in +Inf.
HTTP_DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
)  # fmt: skip
BODY_SIZE_BUCKETS = (0.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0)
# OTel gen_ai.client.operation.duration boundaries (to 81.92 s), doubled on to 655.36 s: reasoning models
# and long streams run 60-600 s, which a top bucket of 81.92 s would hide in +Inf.
LLM_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68, 655.36,
)  # fmt: skip
# OTel gen_ai.client.token.usage boundaries.
TOKEN_BUCKETS = (
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
)  # fmt: skip
# OTel gen_ai.server.time_to_first_token boundaries (to 10 s), then 7.5 s doubled on to 120 s: a reasoning
# model may think for minutes before its first visible token.
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0,
    120.0,
)  # fmt: skip
# Time per output token, 1 ms to 1 s: OTel gen_ai.server.time_per_output_token's boundaries below 1 s, with
# the millisecond steps of fast models (a small model streams a token every 2-5 ms).
TPOT_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
)  # fmt: skip
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
RATING_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0)


# Upper bounds: each sizes memory or CPU that grows with the setting, so a typo (10**7 bins) is refused
# at load time rather than found as a process that no longer answers.
MAX_LABEL_CAP = 10_000  # distinct values remembered per label
MAX_SERIES_BUDGET = 1_000_000  # series per metric family
MAX_BUCKETS = 100  # boundaries per histogram: each is a series of every child
# Drift: every numeric feature keeps (time slots x resolution) counters and scores them all each interval.
MAX_DRIFT_BINS = 100
MAX_DRIFT_RESOLUTION = 1_000
MAX_BASELINE_SIZE = 100_000  # values held per feature until its baseline is built
MAX_DRIFT_CATEGORIES = 1_000
MAX_DRIFT_USER_FEATURES = 500
MIN_SECONDS = 0.001  # the shortest window or interval
# Series per metric family. 26 families of 2500 keep the whole exposition of one process under ~64k series
# (README, "Series budget"), which renders in well under a second.
SERIES_BUDGET = 2500


class ConfigError(ValueError):
    """A configuration value is wrong. Carries where it came from and which key."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        super().__init__(f"{source}: {key}: {message}")


@dataclass(frozen=True)
class Buckets:
    """One boundary list per histogram (the metric each key sets is in the comment)."""

    http_duration: tuple[float, ...] = HTTP_DURATION_BUCKETS  # http_server_request_duration_seconds
    http_ttfb: tuple[float, ...] = HTTP_DURATION_BUCKETS  # http_server_time_to_first_byte_seconds
    http_request_body_size: tuple[float, ...] = BODY_SIZE_BUCKETS  # http_server_request_body_size_bytes
    http_response_body_size: tuple[float, ...] = BODY_SIZE_BUCKETS  # http_server_response_body_size_bytes
    llm_duration: tuple[float, ...] = LLM_DURATION_BUCKETS  # gen_ai_client_operation_duration_seconds (or _inference_)
    llm_tokens: tuple[float, ...] = TOKEN_BUCKETS  # gen_ai_client_token_usage (or the _inference_operation_ pair)
    llm_ttft: tuple[float, ...] = TTFT_BUCKETS  # gen_ai_client_operation_time_to_first_chunk_seconds
    llm_tpot: tuple[float, ...] = TPOT_BUCKETS  # llm_time_per_output_token_seconds
    tool_duration: tuple[float, ...] = LLM_DURATION_BUCKETS  # gen_ai_execute_tool_duration_seconds
    confidence: tuple[float, ...] = SCORE_BUCKETS  # llm_confidence
    evaluation_score: tuple[float, ...] = SCORE_BUCKETS  # llm_evaluation_score
    feedback_rating: tuple[float, ...] = RATING_BUCKETS  # llm_feedback_rating


@dataclass(frozen=True)
class AuthConfig:
    """Protects the metrics endpoint. Bearer token, or basic auth, or nothing."""

    bearer_token: str | None = None
    basic_username: str | None = None
    basic_password: str | None = None


@dataclass(frozen=True)
class CaptureConfig:
    """Zero-code capture of LLM usage: from the responses the app returns (``enabled``) and from the answers
    to the app's own ``httpx`` calls to LLM providers (``outbound``, installed at the middleware's startup).

    ``hosts`` names the provider of more hosts than the built-in ones (``api.openai.com``...): a host, a
    ``host:port``, or a pattern whose leading ``*`` stands for any prefix (``*.example.com``).
    """

    enabled: bool = True
    max_json_bytes: int = 1_048_576
    outbound: bool = True
    hosts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for host, provider in self.hosts.items():
            if not _HOST.fullmatch(host):
                expected = "expected a lowercase host name, host:port or *.domain"
                raise ConfigError("CaptureConfig", f"hosts.{host}", expected)
            if not provider.strip() or not is_utf8(provider):
                raise ConfigError("CaptureConfig", f"hosts.{host}", "expected a provider name such as vllm")


_HOST = re.compile(r"\*?[a-z0-9.\-_\[\]:]*[a-z0-9\]](?::[0-9]{1,5})?")


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class PricingConfig:
    file: str | None = None
    overrides: dict[str, ModelPrice] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    auto_update: bool = False  # genai-prices fetches newer prices from GitHub hourly (network); off: the bundled data


@dataclass(frozen=True)
class CollectorConfig:
    host: str = "127.0.0.1"
    port: int = 9464
    token: str | None = None
    max_body_bytes: int = 1_048_576
    max_events: int = 10_000


@dataclass(frozen=True)
class MlflowConfig:
    enabled: bool = False
    tracking_uri: str | None = None
    experiment: str = "llm-exporter"
    window_seconds: float = 60.0
    run_period: Literal["day", "hour", "instance"] = "day"
    spool_path: str = "llm-exporter-spool.jsonl"
    spool_max_bytes: int = 64 * 1024 * 1024
    queue_size: int = 1000
    retry_max_seconds: float = 60.0
    per_request_sample_rate: float = 0.0
    # Names this process in run names and keys; default ``<hostname>-<pid>``. Set it to something stable
    # (the pod name) to continue the same day's run after a restart.
    instance: str | None = None
    retry_min_seconds: float = 1.0
    request_timeout_seconds: int = 5  # MLflow HTTP timeout (MLFLOW_HTTP_REQUEST_TIMEOUT is whole seconds)
    shutdown_timeout_seconds: float = 10.0
    late_windows: int = 1440  # closed windows that still accept late evaluation results


# Built-in drift features (numeric, then categorical); user features come through ``Recorder.feature``.
DRIFT_FEATURES = ("input_tokens", "output_tokens", "request_duration", "confidence", "predicted_label", "model")


@dataclass(frozen=True)
class DriftConfig:
    enabled: bool = True
    features: tuple[str, ...] = DRIFT_FEATURES  # the built-in features to track
    bins: int = 10  # PSI / Jensen-Shannon bins for numeric features
    resolution: int = 100  # fine quantile bins kept per numeric feature (KS is computed on these)
    window_seconds: float = 3600.0
    score_interval_seconds: float = 60.0
    min_samples: int = 200
    baseline_size: int = 1000
    baseline_file: str | None = None
    baseline_mlflow_run: str | None = None  # a run id, or a full artifact URI (runs:/<id>/path.json)
    baseline_mlflow_artifact: str = "drift/baseline.json"  # artifact path inside the run
    epsilon: float = 1e-4  # PSI: proportion used for empty bins
    # Alert thresholds, exported as llm_drift_threshold{method}. KS 0.18 and JS 0.19 are about what a PSI
    # of 0.2 means for a normal distribution whose mean moved by 0.45 standard deviations.
    psi_threshold: float = 0.2
    ks_threshold: float = 0.18
    js_threshold: float = 0.19
    max_categories: int = 50
    max_user_features: int = 50


@dataclass(frozen=True)
class OtelConfig:
    exemplars: bool = True
    metrics: bool = False


@dataclass(frozen=True)
class Config:
    labels: dict[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"
    metrics_port: int | None = None
    # Where metrics_port listens: 0.0.0.0 to be scraped from another host. Default: the app's --host with
    # `llm-exporter run`, 127.0.0.1 otherwise.
    metrics_host: str | None = None
    exclude_paths: tuple[str, ...] = ("/metrics", "/health")
    route_patterns: tuple[str, ...] = ()
    label_cap: int = 100
    # Series (exposition lines) per metric family; new label combinations past it share one __overflow__
    # series (README, "Series budget").
    series_budget: int = SERIES_BUDGET
    tenant_label: bool = False
    # The GenAI metric names (README, "Convention names"): default, or gen_ai_latest_experimental, which
    # OTEL_SEMCONV_STABILITY_OPT_IN also selects.
    gen_ai_conventions: Conventions = "default"
    auth: AuthConfig = field(default_factory=AuthConfig)
    buckets: Buckets = field(default_factory=Buckets)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    otel: OtelConfig = field(default_factory=OtelConfig)

    def __post_init__(self) -> None:
        _check_semantics(self, "Config")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<config>") -> Config:
        return _build(cls, data, source, "")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Config:
        """The config of a YAML file. Relative file paths in it (:data:`PATH_KEYS`) are relative to the
        file, so it means the same wherever the command runs from."""
        return cls.from_mapping(_paths_relative_to(_read_yaml(path), path), str(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, base: Config | None = None) -> Config:
        """Apply ``LLM_EXPORTER_KEY`` / ``LLM_EXPORTER_SECTION__KEY`` variables on top of ``base``.

        All variables are applied first and the result validated once, so keys that go together (basic
        auth's user and password) can come from two variables. Text fields take the value as written;
        other fields read it as YAML (``true``, ``60``, ``[a, b]``, ``{service: chat}``).

        ``OTEL_SEMCONV_STABILITY_OPT_IN`` listing ``gen_ai_latest_experimental`` sets ``gen_ai_conventions``
        to it, over the file and ``LLM_EXPORTER_GEN_AI_CONVENTIONS``: the conventions make that variable
        the operator's one switch for every instrumentation of a service. It only opts in (the conventions
        define no value to opt out); without it the config decides.
        """
        env = os.environ if environ is None else environ
        data = to_dict(base) if base is not None else {}
        set_by: dict[str, str] = {}  # dotted key -> variable name
        for name, raw in env.items():
            if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
                continue
            path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
            dotted = ".".join(path)
            target = data
            for part in path[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise ConfigError(name, dotted, "this key is not a section")
            target[path[-1]] = _env_value(cls, path, raw)
            set_by[dotted] = name
        if opted_in(env.get(OPT_IN_ENV, "")):
            data["gen_ai_conventions"] = LATEST
            set_by["gen_ai_conventions"] = OPT_IN_ENV
        if not set_by:
            return base if base is not None else cls()
        try:
            return _build(cls, data, "environment", "")
        except ConfigError as exc:
            # Name the variable that set the key (or the section) the error is about.
            for dotted, name in set_by.items():
                if exc.key == dotted or exc.key.startswith(dotted + ".") or exc.key.startswith(dotted + "["):
                    raise ConfigError(name, exc.key, exc.message) from None
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
        """File (explicit, ``$LLM_EXPORTER_CONFIG`` or ``./llm-exporter.yaml``), then the environment on top."""
        env = os.environ if environ is None else environ
        path = _config_file(path, env)
        base = cls.from_yaml(path) if path is not None else cls()
        return cls.from_env(env, base)


def user_sections(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> frozenset[str]:
    """The top-level keys the user set for :meth:`Config.load` (same arguments): those in the config file
    and those of ``LLM_EXPORTER_*`` variables (``LLM_EXPORTER_MLFLOW__ENABLED`` sets ``mlflow``).

    For commands with defaults of their own (the demo): a section the user wrote is theirs even when
    its values equal the defaults (``mlflow: {enabled: false}``).
    """
    env = os.environ if environ is None else environ
    path = _config_file(path, env)
    keys = {str(k) for k in _read_yaml(path)} if path is not None else set()
    for name in env:
        if name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG":
            keys.add(name[len(ENV_PREFIX) :].split("__", 1)[0].lower())
    return frozenset(keys)


def _config_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> str | os.PathLike[str] | None:
    """The file :meth:`Config.load` reads: explicit, ``$LLM_EXPORTER_CONFIG`` or ``./llm-exporter.yaml``."""
    if path is not None:
        return path
    return env.get(ENV_PREFIX + "CONFIG") or (DEFAULT_FILE if Path(DEFAULT_FILE).is_file() else None)


# The keys whose values are file paths, as (section, key). URIs (``mlflow.tracking_uri``) are not paths.
PATH_KEYS = (("pricing", "file"), ("drift", "baseline_file"), ("mlflow", "spool_path"))


def _paths_relative_to(data: Mapping[str, Any], config_file: str | os.PathLike[str]) -> Mapping[str, Any]:
    """``data`` with each relative path of :data:`PATH_KEYS` joined to the config file's directory.

    A file in the working directory keeps its paths as written; anything that is not a non-empty string
    is left for validation to report."""
    where = os.path.dirname(config_file)
    if not where:
        return data
    out = dict(data)
    for section, key in PATH_KEYS:
        values = out.get(section)
        if isinstance(values, Mapping):
            value = values.get(key)
            if isinstance(value, str) and value and not os.path.isabs(value):
                out[section] = {**values, key: os.path.join(where, value)}
    return out


MAX_FILE_BYTES = 1024 * 1024  # a config file is a few KB; more is a wrong path (a log, a disk image)


def read_text_file(path: str | os.PathLike[str], source: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A regular file's text, read as UTF-8, at most ``max_bytes``; every problem is a ConfigError.

    Opened without blocking and checked to be a regular file before any read: a FIFO or a device given
    as a path would otherwise block (or stream) forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(source, "(file)", "not a regular file (a directory, FIFO or device is never read)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ConfigError(source, "(file)", f"larger than the limit of {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise ConfigError(source, "(file)", f"not UTF-8 text ({where})") from None


def _read_yaml(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """A config file's top-level mapping (empty for an empty file)."""
    source = str(path)
    text = read_text_file(path, source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise ConfigError(source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except ValueError as exc:  # an integer of over 4,300 digits: Python refuses to convert it
        raise ConfigError(source, "(file)", f"not valid YAML: {exc}") from None
    except RecursionError:  # [[[[...]]]] nested thousands deep
        raise ConfigError(source, "(file)", "not valid YAML: nested too deep") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, "(top level)", f"expected a mapping, got {type(data).__name__}")
    return data


# Keys whose values are never shown: ``token``, ``bearer_token``, ``basic_password``, ``api_key``...
_SECRET_KEY = re.compile(r"(^|_)(token|password|secret|api_key)$")
# Credentials inside a URI (``https://user:pass@mlflow.example``).
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def mask_uri(uri: str) -> str:
    return _USERINFO.sub("***@", uri)


def effective_config(config: Config) -> dict[str, Any]:
    """The config as plain data with secrets masked (what ``check`` prints and MLflow params show)."""

    def mask(data: Any) -> Any:
        if isinstance(data, dict):
            return {k: ("***" if _SECRET_KEY.search(str(k)) and v else mask(v)) for k, v in data.items()}
        if isinstance(data, list):
            return [mask(v) for v in data]
        if isinstance(data, str):
            return mask_uri(data)
        return data

    return mask(to_dict(config))  # type: ignore[no-any-return]


def to_dict(obj: Any) -> Any:
    """The config as plain data (what ``llm-exporter check`` prints); secrets are kept, callers mask them."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


_T = typing.TypeVar("_T")


def _env_value(cls: type, path: list[str], raw: str) -> Any:
    """An environment value for the field at ``path``: as written for text, else read as YAML."""
    tp: Any = cls
    for part in path:
        tp = _unwrap_optional(tp)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp).get(part)
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            tp = None
        if tp is None:
            break
    optional = tp is not None and _unwrap_optional(tp) is not tp
    if tp is not None and _unwrap_optional(tp) is str:
        return None if optional and not raw else raw
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return inner[0]
    return tp


def _build(cls: type[_T], data: Any, source: str, prefix: str) -> _T:
    if not isinstance(data, Mapping):
        raise ConfigError(source, prefix.rstrip(".") or "(top level)", f"expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(source, dotted, f"unknown key; expected one of: {', '.join(sorted(fields))}")
        kwargs[key] = _convert(hints[key], value, source, dotted)
    missing = [n for n, f in fields.items() if n not in kwargs and _no_default(f)]
    if missing:
        raise ConfigError(source, f"{prefix}{missing[0]}", "required key is missing")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(source, f"{prefix}{exc.key}", exc.message) from None


def _no_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _describe(value: Any) -> str:
    if isinstance(value, int) and abs(value) > checks.MAX_INT:  # its digits may be too many to print
        return f"an integer of {value.bit_length()} bits"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, Mapping | list) else type(value).__name__


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, source, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(source, key, f"expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(source, key, f"expected a list, got {_describe(value)}")
        return tuple(_convert(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, f"expected a mapping, got {_describe(value)}")
        return {
            _convert(args[0], k, source, f"{key}.{k}"): _convert(args[1], v, source, f"{key}.{k}")
            for k, v in value.items()
        }
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, source, key + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        return _checked(checks.whole, value, source, key)
    if tp is float:
        # NaN and infinities are refused for every key: none of them means anything as a setting.
        return _checked(checks.finite, value, source, key)
    if tp is str:
        if isinstance(value, bool) or value is None or isinstance(value, Mapping | list):
            raise ConfigError(source, key, f"expected a string, got {_describe(value)}")
        return str(value)
    raise AssertionError(f"unsupported config type {tp!r} for {key}")  # a programming error in this module


def _checked(rule: Rule, value: Any, source: str, key: str) -> Any:
    """``rule(value)``, its message (the one every input gives for it) as a ConfigError naming the key."""
    try:
        return rule(value)
    except Wrong as exc:
        raise ConfigError(source, key, f"{exc.message}, got {_describe(value)}") from None


def _check_semantics(cfg: Config, source: str) -> None:
    """Checks that types alone cannot express. Keys are relative to the top level."""

    def bad(key: str, message: str) -> None:
        raise ConfigError(source, key, message)

    def rule(key: str, check: Rule, value: Any) -> None:
        try:
            check(value)
        except Wrong as exc:
            shown = repr(value) if isinstance(value, str) else str(value)  # typed already: ints here
            bad(key, f"{exc.message}, got {shown}")

    def at_most(key: str, value: float, maximum: float, why: str) -> None:
        if value > maximum:
            bad(key, f"expected at most {maximum:g} ({why}), got {value:g}")

    def interval(key: str, value: float, maximum: float, why: str) -> None:
        # Times are divided by these: a width of 1e-300 s makes window indexes overflow.
        if 0 < value < MIN_SECONDS:
            bad(key, f"expected at least {MIN_SECONDS:g} seconds, got {value:g}")
        at_most(key, value, maximum, why)

    if not cfg.metrics_path.startswith("/"):
        bad("metrics_path", f"expected a path starting with '/', got {cfg.metrics_path!r}")
    if cfg.metrics_port is not None:
        rule("metrics_port", checks.PORT, cfg.metrics_port)
    rule("label_cap", checks.count(1, MAX_LABEL_CAP), cfg.label_cap)
    rule("series_budget", checks.count(1, MAX_SERIES_BUDGET), cfg.series_budget)
    for name, value in cfg.labels.items():
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            bad(f"labels.{name}", "not a valid Prometheus label name (letters, digits and '_', not first a digit)")
        if name in LABEL_NAMES or name in ("le", "quantile"):
            bad(f"labels.{name}", "clashes with a label of the exporter's own metrics; choose another name")
        if not is_utf8(value):
            bad(f"labels.{name}", f"expected {NOT_UTF8}")
    for bucket_field in dataclasses.fields(cfg.buckets):
        values = getattr(cfg.buckets, bucket_field.name)
        if not values or list(values) != sorted(set(values)):
            bad(f"buckets.{bucket_field.name}", "expected a non-empty, strictly increasing list of numbers")
        if len(values) > MAX_BUCKETS:
            bad(f"buckets.{bucket_field.name}", f"expected at most {MAX_BUCKETS} boundaries, got {len(values)}")
    auth = cfg.auth
    # An empty secret would leave the endpoint open while the config says it is protected.
    for key, secret in (("bearer_token", auth.bearer_token), ("basic_password", auth.basic_password)):
        if secret is not None:
            rule(f"auth.{key}", checks.secret, secret)
    if auth.basic_username is not None:
        rule("auth.basic_username", checks.NAME, auth.basic_username)
    if (auth.basic_username is None) != (auth.basic_password is None):
        bad("auth.basic_password", "basic auth needs both basic_username and basic_password")
    if cfg.capture.max_json_bytes < 0:
        bad("capture.max_json_bytes", "expected an integer >= 0")
    for model, price in cfg.pricing.overrides.items():
        for part in ("input", "output", "cached_input"):
            v = getattr(price, part)
            if v is not None and not (math.isfinite(v) and v >= 0):
                bad(f"pricing.overrides.{model}.{part}", f"expected a finite price >= 0, got {v}")
    c = cfg.collector
    rule("collector.port", checks.PORT, c.port)
    if c.token is not None:
        rule("collector.token", checks.secret, c.token)
    if c.max_body_bytes < 1:
        bad("collector.max_body_bytes", "expected an integer >= 1")
    if c.max_events < 1:
        bad("collector.max_events", "expected an integer >= 1")
    m = cfg.mlflow
    if m.window_seconds <= 0:
        bad("mlflow.window_seconds", f"expected a number > 0, got {m.window_seconds}")
    interval("mlflow.window_seconds", m.window_seconds, 86400, "a day: a run holds a day's windows")
    if m.queue_size < 1:
        bad("mlflow.queue_size", "expected an integer >= 1")
    if m.spool_max_bytes < 0:
        bad("mlflow.spool_max_bytes", "expected an integer >= 0")
    if not 0.0 <= m.per_request_sample_rate <= 1.0:
        bad("mlflow.per_request_sample_rate", f"expected a number between 0 and 1, got {m.per_request_sample_rate}")
    if not 0 < m.retry_min_seconds <= m.retry_max_seconds:
        bad("mlflow.retry_min_seconds", "expected a number > 0 and <= mlflow.retry_max_seconds")
    at_most("mlflow.retry_max_seconds", m.retry_max_seconds, 86400, "a day")
    if m.request_timeout_seconds < 1:
        bad("mlflow.request_timeout_seconds", "expected an integer >= 1")
    at_most("mlflow.request_timeout_seconds", m.request_timeout_seconds, 3600, "an hour")
    if m.shutdown_timeout_seconds <= 0:
        bad("mlflow.shutdown_timeout_seconds", f"expected a number > 0, got {m.shutdown_timeout_seconds}")
    at_most("mlflow.shutdown_timeout_seconds", m.shutdown_timeout_seconds, 3600, "an hour")
    if m.late_windows < 0:
        bad("mlflow.late_windows", "expected an integer >= 0")
    if not m.experiment.strip():
        bad("mlflow.experiment", "expected a non-empty experiment name")
    d = cfg.drift
    rule("drift.bins", checks.count(2, MAX_DRIFT_BINS), d.bins)
    if d.window_seconds <= 0:
        bad("drift.window_seconds", f"expected a number > 0, got {d.window_seconds}")
    interval("drift.window_seconds", d.window_seconds, 90 * 86400, "90 days")
    if d.score_interval_seconds <= 0:
        bad("drift.score_interval_seconds", f"expected a number > 0, got {d.score_interval_seconds}")
    interval("drift.score_interval_seconds", d.score_interval_seconds, 86400, "a day")
    if d.min_samples < 1:
        bad("drift.min_samples", "expected an integer >= 1")
    rule("drift.baseline_size", checks.count(1, MAX_BASELINE_SIZE), d.baseline_size)
    for i, name in enumerate(d.features):
        if name not in DRIFT_FEATURES:
            known = ", ".join(DRIFT_FEATURES)
            bad(f"drift.features[{i}]", f"unknown built-in feature {name!r}; expected some of: {known}")
    if not d.bins <= d.resolution <= MAX_DRIFT_RESOLUTION:
        bad(
            "drift.resolution",
            f"expected an integer between drift.bins ({d.bins}) and {MAX_DRIFT_RESOLUTION}, got {d.resolution}",
        )
    if not 0.0 < d.epsilon < 1.0:
        bad("drift.epsilon", f"expected a number between 0 and 1 (exclusive), got {d.epsilon}")
    for key in ("psi_threshold", "ks_threshold", "js_threshold"):
        if getattr(d, key) <= 0:
            bad(f"drift.{key}", f"expected a number > 0, got {getattr(d, key)}")
    rule("drift.max_categories", checks.count(1, MAX_DRIFT_CATEGORIES), d.max_categories)
    rule("drift.max_user_features", checks.count(0, MAX_DRIFT_USER_FEATURES), d.max_user_features)
    if d.baseline_file is not None and d.baseline_mlflow_run is not None:
        bad("drift.baseline_mlflow_run", "set either drift.baseline_file or drift.baseline_mlflow_run, not both")
