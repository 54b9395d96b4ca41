"""The model a request asked for, read from the request once its answer turned out to be LLM output.

An app that forwards provider requests (a gateway, an OpenAI-compatible proxy) receives the model in the
request: in the JSON body (``"model": "gpt-4o"``: OpenAI, Anthropic, Azure's body names none) or in the path
(Gemini and Vertex AI's ``.../models/gemini-2.5-flash:generateContent``, Bedrock's
``/model/{modelId}/converse``). The answer names the model that served it, often a dated version
(``gpt-4o-2024-08-06``), or none at all (Bedrock). Only the first and the last chunk of the request body
are looked at, by reference, so nothing is copied or kept beyond the request.
"""

from __future__ import annotations

import re

# The first "model" key with a string value. Inside a JSON string a quote is escaped, so this is a key.
_BODY_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')
_PATH_MODEL = re.compile(
    r"/models/([^/:]{1,256}):[A-Za-z]+$"  # Gemini API, Vertex AI: models/{model}:generateContent
    r"|/model/([^/]{1,256})/(?:converse|converse-stream|invoke|invoke-with-response-stream)$"  # Bedrock
)


def requested_model(path: str, first: bytes, last: bytes) -> str | None:
    """The model named by a request's JSON body (its first or last chunk) or by its path, else ``None``."""
    for chunk in (first, last) if last is not first else (first,):
        if chunk:
            found = _BODY_MODEL.search(chunk)
            if found is not None:
                return found.group(1).decode("utf-8", "replace")
    found_path = _PATH_MODEL.search(path)
    if found_path is not None:
        return found_path.group(1) or found_path.group(2)
    return None
