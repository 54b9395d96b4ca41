"""Provider payloads the benchmarks send, in each provider's wire format (no exporter import here, so a
benchmark of another checkout can use them too)."""

from __future__ import annotations

import json


def openai_json(size: int = 2048) -> bytes:
    body = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "", "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 512,
            "completion_tokens": 380,
            "total_tokens": 892,
            "prompt_tokens_details": {"cached_tokens": 128, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035",
    }
    filler = size - len(json.dumps(body).encode())
    body["choices"][0]["message"]["content"] = ("The quick brown fox jumps over the lazy dog. " * 60)[:filler]
    return json.dumps(body).encode()


def openai_sse(n: int = 200) -> list[bytes]:
    base = {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion.chunk",
            "created": 1741569952, "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_06737a9306",
            "usage": None}  # fmt: skip
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    words = ["Hello", " there", ",", " how", " can", " I", " help", " you", " today", "?"]
    for i in range(n - 3):
        delta = {"content": words[i % len(words)]}
        events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 40, "completion_tokens": n - 3, "total_tokens": n + 37}
    events.append({**base, "choices": [], "usage": usage})
    return [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
