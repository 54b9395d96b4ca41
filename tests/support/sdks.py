"""Calls of the official OpenAI, Anthropic and Google SDKs, made as an app makes them, each returning the
usage the SDK itself reported. The clients read their endpoints and keys from the environment
(:func:`tests.support.providers.sdk_env`), as an app's would; nothing here knows about the exporter.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import anthropic
import httpx2
import openai
from google import genai
from google.genai import types

OPENAI_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL = "gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"


@dataclass(frozen=True)
class Usage:
    """What the SDK reported for one call."""

    provider: str
    requested: str  # the model the app asked for (gen_ai_request_model)
    model: str  # as the provider answered it (gen_ai_response_model)
    input: int
    output: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _env() -> tuple[str, ...]:
    return tuple(os.environ.get(k, "") for k in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL"))


@functools.cache
def _clients(env: tuple[str, ...], loop: int | None) -> dict[str, Any]:
    # Built once per set of endpoints (and event loop: async connections belong to one), as an app builds
    # its clients once.
    if loop is None:
        return {"openai": openai.OpenAI(), "anthropic": anthropic.Anthropic(), "gemini": genai.Client()}
    return {
        "openai": openai.AsyncOpenAI(),
        "anthropic": anthropic.AsyncAnthropic(),
        # The async Gemini client sends through aiohttp whenever aiohttp is installed (mlflow brings it),
        # unless given a transport: an httpx one, as the README says.
        "gemini": genai.Client(
            http_options=types.HttpOptions(async_client_args={"transport": httpx2.AsyncHTTPTransport()})
        ),
    }


def client(name: str) -> Any:
    """The app's client ``name`` (openai, anthropic, gemini): the async one inside a running event loop."""
    try:
        loop: int | None = id(asyncio.get_running_loop())
    except RuntimeError:
        loop = None
    return _clients(_env(), loop)[name]


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def openai_chat(prompt: str, stream: bool = False, model: str = OPENAI_MODEL) -> Usage:
    c = client("openai")
    if not stream:
        r = c.chat.completions.create(model=model, messages=_messages(prompt))
        return Usage("openai", model, r.model, r.usage.prompt_tokens, r.usage.completion_tokens)
    last = None
    for chunk in c.chat.completions.create(
        model=model, messages=_messages(prompt), stream=True, stream_options={"include_usage": True}
    ):
        last = chunk
    assert last is not None and last.usage is not None
    return Usage("openai", model, last.model, last.usage.prompt_tokens, last.usage.completion_tokens)


async def openai_chat_async(prompt: str, stream: bool = False, model: str = OPENAI_MODEL) -> Usage:
    c = client("openai")
    if not stream:
        r = await c.chat.completions.create(model=model, messages=_messages(prompt))
        return Usage("openai", model, r.model, r.usage.prompt_tokens, r.usage.completion_tokens)
    last = None
    async for chunk in await c.chat.completions.create(
        model=model, messages=_messages(prompt), stream=True, stream_options={"include_usage": True}
    ):
        last = chunk
    assert last is not None and last.usage is not None
    return Usage("openai", model, last.model, last.usage.prompt_tokens, last.usage.completion_tokens)


def anthropic_message(prompt: str, stream: bool = False, model: str = ANTHROPIC_MODEL) -> Usage:
    c = client("anthropic")
    if not stream:
        m = c.messages.create(model=model, max_tokens=256, messages=_messages(prompt))
    else:
        with c.messages.stream(model=model, max_tokens=256, messages=_messages(prompt)) as s:
            for _ in s.text_stream:
                pass
            m = s.get_final_message()
    return Usage("anthropic", model, m.model, m.usage.input_tokens, m.usage.output_tokens)


async def anthropic_message_async(prompt: str, stream: bool = False, model: str = ANTHROPIC_MODEL) -> Usage:
    c = client("anthropic")
    if not stream:
        m = await c.messages.create(model=model, max_tokens=256, messages=_messages(prompt))
    else:
        async with c.messages.stream(model=model, max_tokens=256, messages=_messages(prompt)) as s:
            async for _ in s.text_stream:
                pass
            m = await s.get_final_message()
    return Usage("anthropic", model, m.model, m.usage.input_tokens, m.usage.output_tokens)


def _gemini_usage(model: str, r: Any) -> Usage:
    meta = r.usage_metadata
    return Usage("gcp.gemini", model, r.model_version, meta.prompt_token_count, meta.candidates_token_count)


def gemini_generate(prompt: str, stream: bool = False, model: str = GEMINI_MODEL) -> Usage:
    models = client("gemini").models
    if not stream:
        return _gemini_usage(model, models.generate_content(model=model, contents=prompt))
    last = None
    for chunk in models.generate_content_stream(model=model, contents=prompt):
        last = chunk
    return _gemini_usage(model, last)


async def gemini_generate_async(prompt: str, stream: bool = False, model: str = GEMINI_MODEL) -> Usage:
    models = client("gemini").aio.models
    if not stream:
        return _gemini_usage(model, await models.generate_content(model=model, contents=prompt))
    last = None
    async for chunk in await models.generate_content_stream(model=model, contents=prompt):
        last = chunk
    return _gemini_usage(model, last)


SYNC: dict[str, Callable[..., Usage]] = {
    "openai": openai_chat,
    "anthropic": anthropic_message,
    "gcp.gemini": gemini_generate,
}
ASYNC: dict[str, Callable[..., Awaitable[Usage]]] = {
    "openai": openai_chat_async,
    "anthropic": anthropic_message_async,
    "gcp.gemini": gemini_generate_async,
}
