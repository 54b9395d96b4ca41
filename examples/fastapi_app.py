"""A FastAPI app instrumented in code: one ``add_middleware`` line, ``/metrics`` served on the app.

Serve it with ``uvicorn examples.fastapi_app:app --port 8000``, then
``curl localhost:8000/v1/chat/s-1 -H content-type:application/json -d '{"prompt": "hi"}'`` and
``curl localhost:8000/metrics``.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from exporter import PrometheusMiddleware

app = FastAPI(title="chat")
# Options are config keys; static labels end up on every series.
app.add_middleware(PrometheusMiddleware, labels={"service": "chat"})


class Prompt(BaseModel):
    prompt: str


@app.post("/v1/chat/{session_id}")
async def chat(session_id: str, body: Prompt) -> dict[str, str]:
    return {"session": session_id, "answer": body.prompt[::-1]}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
