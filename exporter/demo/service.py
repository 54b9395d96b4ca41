"""The demo's simulated chat service: an OpenAI-compatible ``/v1/chat/completions`` (JSON and SSE).

It never records tokens itself: the middleware reads them from the responses, exactly as it would for a
real service. Handlers add what only they know through the ``llm`` API: the intent and its confidence,
evaluation scores, feedback and business events.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import llm


@dataclass(frozen=True)
class DemoModel:
    name: str
    weight: float  # share of the traffic
    ttft: float  # median seconds to the first token
    tokens_per_second: float


# One model has no price in the table, so the demo shows llm_exporter_unpriced_tokens_total too.
MODELS = (
    DemoModel("gpt-4o-mini", 0.55, 0.35, 90.0),
    DemoModel("gpt-4o", 0.25, 0.55, 60.0),
    DemoModel("gpt-4.1-nano", 0.12, 0.25, 140.0),
    DemoModel("acme-support-7b", 0.08, 0.15, 45.0),
)
MODEL_BY_NAME = {m.name: m for m in MODELS}

INTENTS: dict[str, tuple[str, ...]] = {
    "booking": ("book", "appointment", "schedule", "reserve"),
    "pricing": ("price", "cost", "how much", "quote"),
    "opening_hours": ("open", "hours", "close"),
    "cancellation": ("cancel", "refund"),
    "complaint": ("terrible", "complain", "wrong", "angry"),
}
REPLY_WORDS = (
    "sure happy to help with that our team can see you on tuesday or thursday morning the price depends on "
    "the service and we will confirm it by email please let me know which time suits you best thank you "
    "for your patience we are open from nine to six on weekdays and a colleague will follow up shortly"
).split()

ERROR_RATE = 0.04  # share of completions answered with a 5xx, like an overloaded upstream
EVALUATED_SHARE = 0.3  # share of answers an (imaginary) LLM judge scores
APPOINTMENT_SHARE = 0.6  # share of booking intents that end in an appointment request


def classify(text: str, rng: random.Random) -> tuple[str, float]:
    """A keyword 'intent model': a clear keyword gives high confidence, none gives a guess."""
    lowered = text.lower()
    for intent, words in INTENTS.items():
        if any(w in lowered for w in words):
            return intent, round(rng.betavariate(12, 1.5), 4)
    return "general", round(rng.betavariate(3, 3), 4)


def count_tokens(messages: list[dict[str, Any]]) -> int:
    """~1.3 tokens per word plus a few per message, close to what a BPE tokenizer gives for English."""
    words = sum(len(str(m.get("content", "")).split()) for m in messages)
    return math.ceil(words * 1.3) + 3 * len(messages) + 3


def _error(status: int, message: str, kind: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


class ChatService:
    """The simulated service's handlers. ``time_scale`` < 1 makes every simulated delay shorter."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        time_scale: float = 1.0,
        error_rate: float = ERROR_RATE,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self._health = health  # the recorder's: reports the MLflow bridge (degraded while it spools)
        self.time_scale = time_scale
        self.error_rate = error_rate
        # Set at shutdown: simulated delays end at once, so no handler is still asleep when the server stops.
        self.closing = asyncio.Event()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.index),
                Route("/health", self.health),
                Route("/v1/models", self.models),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/feedback", self.feedback, methods=["POST"]),
            ]
        )

    async def index(self, request: Request) -> Response:
        return PlainTextResponse("llm-exporter demo chat service: POST /v1/chat/completions; metrics at /metrics\n")

    async def health(self, request: Request) -> Response:
        return JSONResponse(self._health() if self._health is not None else {"status": "ok"})

    async def models(self, request: Request) -> Response:
        data = [{"id": m.name, "object": "model", "owned_by": "llm-exporter-demo"} for m in MODELS]
        return JSONResponse({"object": "list", "data": data})

    async def feedback(self, request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _error(400, "expected a JSON object", "invalid_request_error", "invalid_json")
        rating, model = body.get("rating"), body.get("model")
        if isinstance(rating, bool) or not isinstance(rating, int | float) or not 1 <= rating <= 5:
            return _error(400, "rating: expected a number from 1 to 5", "invalid_request_error", "invalid_rating")
        if not isinstance(model, str) or model not in MODEL_BY_NAME:
            return _error(400, "model: expected one of /v1/models", "invalid_request_error", "invalid_model")
        llm.feedback(float(rating), model=model)
        return JSONResponse({"status": "recorded"}, 202)

    async def chat(self, request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _error(400, "expected a JSON object", "invalid_request_error", "invalid_json")
        model = MODEL_BY_NAME.get(str(body.get("model")))
        if model is None:
            return _error(
                404, f"the model {body.get('model')!r} does not exist", "invalid_request_error", "model_not_found"
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return _error(
                400, "messages: expected a non-empty list of objects", "invalid_request_error", "invalid_messages"
            )
        rng = self.rng
        if rng.random() < self.error_rate:
            started = time.perf_counter()
            await self._sleep(rng.uniform(0.05, 0.6))
            # An error body names no model, so capture can't say whose call failed: the service records it.
            llm.record(model.name, "openai", error_type="server_error", duration=time.perf_counter() - started)
            if rng.random() < 0.7:
                return _error(503, "The model is overloaded, please retry", "server_error", "overloaded")
            return _error(500, "The server had an error processing your request", "server_error", "internal_error")

        prompt_tokens = count_tokens(messages)
        intent, confidence = classify(str(messages[-1].get("content", "")), rng)
        llm.confidence(confidence, label=intent, model=model.name)
        if intent == "booking" and rng.random() < APPOINTMENT_SHARE:
            llm.event("appointment_requested")
        if intent == "complaint" or confidence < 0.35:
            llm.event("human_handoff")
        # Longer prompts (pasted documents) get longer answers.
        output_tokens = max(8, int(rng.lognormvariate(math.log(60 + prompt_tokens * 0.08), 0.5)))
        words = [rng.choice(REPLY_WORDS) for _ in range(output_tokens)]
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": self._cached(prompt_tokens)},
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        long_prompt = prompt_tokens > 400
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            stream = self._stream(completion_id, model, words, usage if include_usage else None, long_prompt)
            return StreamingResponse(stream, media_type="text/event-stream", headers={"cache-control": "no-cache"})
        await self._sleep(self._ttft(model) + output_tokens / model.tokens_per_second)
        self._judge(model.name, long_prompt)
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model.name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " ".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    async def _stream(
        self, completion_id: str, model: DemoModel, words: list[str], usage: dict[str, Any] | None, long_prompt: bool
    ) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return _sse(data)

        yield chunk({"role": "assistant", "content": ""})
        await self._sleep(self._ttft(model))
        # A few words per chunk, paced at the model's speed: one timer per chunk, not per token.
        step = 4
        for i in range(0, len(words), step):
            part = words[i : i + step]
            yield chunk({"content": (" " if i else "") + " ".join(part)})
            await self._sleep(len(part) / model.tokens_per_second)
        yield chunk({}, "stop")
        if usage is not None:
            yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                        "model": model.name, "choices": [], "usage": usage})  # fmt: skip
        yield b"data: [DONE]\n\n"
        self._judge(model.name, long_prompt)

    def _judge(self, model: str, long_prompt: bool) -> None:
        """Scores from an imaginary LLM judge on a sample of answers; long pasted prompts score lower."""
        rng = self.rng
        if rng.random() >= EVALUATED_SHARE:
            return
        penalty = 2.0 if long_prompt else 0.0
        llm.evaluation("answer_relevancy", round(rng.betavariate(8, 1.5 + penalty), 4), model=model)
        llm.evaluation("faithfulness", round(rng.betavariate(9, 1.2 + penalty), 4), model=model)

    def _ttft(self, model: DemoModel) -> float:
        return model.ttft * self.rng.lognormvariate(0.0, 0.35)

    def _cached(self, prompt_tokens: int) -> int:
        # OpenAI caches prompts of 1024+ tokens in 128-token steps; about half the long prompts hit the cache.
        if prompt_tokens < 1024 or self.rng.random() < 0.5:
            return 0
        return 1024 + 128 * self.rng.randrange((prompt_tokens - 1024) // 128 + 1)

    async def _sleep(self, seconds: float) -> None:
        if self.closing.is_set():
            return
        try:
            await asyncio.wait_for(self.closing.wait(), seconds * self.time_scale)
        except TimeoutError:
            pass


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
