"""Which provider a host is, and what an outbound request says about the call before its answer is read.

Pure functions of plain values (host names, paths, request bodies), so outbound capture can ask them
without depending on any HTTP client library.
"""

from __future__ import annotations

from collections.abc import Mapping

from .usage import ANTHROPIC, GEMINI, OPENAI

# OpenTelemetry gen_ai.provider.name values of the hosts whose provider is known. A leading "*" stands
# for any prefix: Azure resources are <name>.openai.azure.com, Vertex AI's regional endpoints
# <region>-aiplatform.googleapis.com.
BUILT_IN: Mapping[str, str] = {
    "api.openai.com": OPENAI,
    "*.openai.azure.com": "azure.ai.openai",
    "api.anthropic.com": ANTHROPIC,
    "generativelanguage.googleapis.com": GEMINI,
    "aiplatform.googleapis.com": "gcp.vertex_ai",
    "*-aiplatform.googleapis.com": "gcp.vertex_ai",
}

# Ends of the paths of model calls (OpenAI and its compatible servers, Azure, Anthropic, Gemini, Vertex AI).
# An error answer has no shape of its own ({"error": ...} is everyone's), so it counts as an LLM call only
# on one of these paths.
_CALL_PATHS = (
    "/chat/completions",
    "/completions",
    "/responses",
    "/embeddings",
    "/messages",
    ":generateContent",
    ":streamGenerateContent",
    ":rawPredict",
    ":streamRawPredict",
)
# A top-level "model" key with a string value, as the OpenAI and Anthropic SDKs send it. Inside a string
# (a prompt quoting JSON) the quotes are escaped, so only a key matches.
_CACHE_SIZE = 1024


class HostTable:
    """Host -> provider name, from the built-in hosts and the config's ``capture.hosts`` (which win).

    Keys are a host, a ``host:port``, or a pattern whose leading ``*`` stands for any prefix. A look-up
    is one dictionary hit for a host seen before.
    """

    def __init__(self, extra: Mapping[str, str] | None = None) -> None:
        names = {**BUILT_IN, **(extra or {})}
        self._exact = {k: v for k, v in names.items() if not k.startswith("*")}
        # Longest pattern first, so the most specific one wins.
        self._patterns = sorted(((k[1:], v) for k, v in names.items() if k.startswith("*")), key=lambda kv: -len(kv[0]))
        self._seen: dict[tuple[str, int | None], str | None] = {}

    def provider(self, host: str, port: int | None = None) -> str | None:
        """The provider of ``host`` (``port``: the URL's explicit port, if any), or None when unknown."""
        key = (host, port)
        try:
            return self._seen[key]
        except KeyError:
            pass
        found = self._find(host.lower().rstrip("."), port)
        if len(self._seen) >= _CACHE_SIZE:
            self._seen.clear()
        self._seen[key] = found
        return found

    def _find(self, host: str, port: int | None) -> str | None:
        exact = self._exact
        if port is not None:
            found = exact.get(f"{host}:{port}")
            if found is not None:
                return found
        found = exact.get(host)
        if found is not None:
            return found
        for suffix, name in self._patterns:
            if len(host) > len(suffix) and host.endswith(suffix):
                return name
        return None


def is_call_path(path: str) -> bool:
    """Whether ``path`` is that of a model call (generation, chat, embeddings) of a known API shape."""
    return path.endswith(_CALL_PATHS)


def path_kind(path: str) -> tuple[str, str]:
    """(API shape, operation) of a model-call path, named as response capture names them."""
    if path.endswith("/messages"):
        return ANTHROPIC, "chat"
    if ":" in path.rsplit("/", 1)[-1]:
        return GEMINI, "generate_content"
    if path.endswith("/embeddings"):
        return OPENAI, "embeddings"
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return OPENAI, "text_completion"
    return OPENAI, "chat"
