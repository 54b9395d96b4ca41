"""Apps that call LLMs themselves and return their own JSON, with no monitoring code: what
``llm-exporter run`` wraps in the outbound-capture tests. Their SDK clients read the provider's address
from the environment (:func:`tests.support.providers.sdk_env`).

Each handler answers ``{"reported": <the usage its SDK reported>}`` so the test can compare it with
``/metrics``; that is the app's own JSON, not a provider's shape.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import sdks
from .providers import RATE_LIMITED

# -- Starlette, async handlers ----------------------------------------------------------------------------


async def chat(request: Request) -> JSONResponse:
    body = await request.json()
    ask = sdks.ASYNC[request.path_params["provider"]]
    model = {"model": body["model"]} if "model" in body else {}  # the fake provider's magic models
    usage = await ask(body["prompt"], body.get("stream", False), **model)
    return JSONResponse({"reported": usage.as_dict()})


async def limited(request: Request) -> JSONResponse:
    try:
        await sdks.ASYNC[request.path_params["provider"]]("too many", model=RATE_LIMITED)
    except Exception as exc:  # the SDK's RateLimitError, after its retries
        return JSONResponse({"error": type(exc).__name__})
    return JSONResponse({"error": None})


async def proxy(request: Request) -> Response:
    """Forwards a chat completion to the provider and its answer back as it comes (an LLM gateway)."""
    client: httpx.AsyncClient = request.app.state.upstream
    upstream = client.build_request(
        "POST",
        os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        content=await request.body(),
        headers={"content-type": "application/json", "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]},
    )
    answer = await client.send(upstream, stream=True)
    headers = {"content-type": answer.headers["content-type"]}
    return StreamingResponse(
        answer.aiter_raw(), status_code=answer.status_code, headers=headers, background=BackgroundTask(answer.aclose)
    )


async def health(request: Request) -> Response:
    return Response("ok")


starlette_app = Starlette(
    routes=[
        Route("/chat/{provider}", chat, methods=["POST"]),
        Route("/limited/{provider}", limited, methods=["POST"]),
        Route("/proxy/v1/chat/completions", proxy, methods=["POST"]),
        Route("/health", health),
    ]
)
starlette_app.state.upstream = httpx.AsyncClient(timeout=30)


# -- FastAPI, sync and async handlers ----------------------------------------------------------------------


class Ask(BaseModel):
    prompt: str
    stream: bool = False


fastapi_app = FastAPI()


@fastapi_app.post("/sync/{provider}")
def ask_sync(provider: str, ask: Ask) -> dict[str, Any]:
    # A sync handler: FastAPI runs it in Starlette's thread pool.
    return {"reported": sdks.SYNC[provider](ask.prompt, ask.stream).as_dict()}


@fastapi_app.post("/async/{provider}")
async def ask_async(provider: str, ask: Ask) -> dict[str, Any]:
    return {"reported": (await sdks.ASYNC[provider](ask.prompt, ask.stream)).as_dict()}


@fastapi_app.get("/health")
def fastapi_health() -> str:
    return "ok"
