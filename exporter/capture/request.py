"""The model a request asked for, read from the request once its answer turned out to be LLM output.

An app that forwards provider requests (a gateway, an OpenAI-compatible proxy) receives the model in the
request: in the JSON body (``"model": "gpt-4o"``: OpenAI, Anthropic, Azure's body names none) or in the path
(Gemini and Vertex AI's ``.../models/gemini-2.5-flash:generateContent``, Bedrock's
``/model/{modelId}/converse``). The answer names the model that served it, often a dated version
(``gpt-4o-2024-08-06``), or none at all (Bedrock). Only the start of the request body's first chunk and the
end of its last are searched (SDKs put the model before or after the messages), so an upload of megabytes
costs no more than a short prompt; the chunks are kept by reference, nothing is copied.
"""

from __future__ import annotations

import re

# The first "model" key with a string value. Inside a JSON string a quote is escaped, so this is a key.
_BODY_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')
_SEARCHED = 65_536  # bytes searched at the start of the first chunk and at the end of the last
_PATH_MODEL = re.compile(
    r"/models/([^/:]{1,256}):[A-Za-z]+$"  # Gemini API, Vertex AI: models/{model}:generateContent
    r"|/model/([^/]{1,256})/(?:converse|converse-stream|invoke|invoke-with-response-stream)$"  # Bedrock
)


def requested_model(path: str, first: bytes, last: bytes) -> str | None:
    """The model named by a request's JSON body (its first or last chunk) or by its path, else ``None``."""
    found = _BODY_MODEL.search(first, 0, _SEARCHED)
    if found is None and last and (last is not first or len(last) > _SEARCHED):
        found = _BODY_MODEL.search(last, max(len(last) - _SEARCHED, 0))
    if found is not None:
        return found.group(1).decode("utf-8", "replace")
    in_path = _PATH_MODEL.search(path)
    if in_path is not None:
        return in_path.group(1) or in_path.group(2)
    return None
