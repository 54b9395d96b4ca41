"""A small Starlette app with no monitoring code at all, wrapped from the command line.

Serve it with ``llm-exporter run examples.plain_app:app --port 8000`` (add ``--workers 2`` or
``--metrics-port 9100`` as needed), then ``curl localhost:8000/items/42`` and ``curl localhost:8000/metrics``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


async def index(request: Request) -> Response:
    return PlainTextResponse("hello\n")


async def item(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["item_id"]})


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type=request.headers.get("content-type", "text/plain"))


async def health(request: Request) -> Response:
    return PlainTextResponse("ok\n")


app = Starlette(
    routes=[
        Route("/", index),
        Route("/items/{item_id}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/health", health),
    ]
)
