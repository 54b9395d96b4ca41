"""A script (no ASGI app) that calls the three SDKs after ``exporter.instrument()``, then prints, as JSON,
the usage each SDK reported and the default registry's exposition."""

from __future__ import annotations

import asyncio
import json

from prometheus_client import REGISTRY, generate_latest

import exporter

from . import sdks


async def _async_calls() -> list[sdks.Usage]:
    return [await sdks.ASYNC[name]("from the async side", stream=True) for name in sdks.ASYNC]


def main() -> None:
    exporter.instrument()
    reported = [sdks.SYNC[name](f"script call {i} for {name}", stream=i == 1) for name in sdks.SYNC for i in range(2)]
    reported += asyncio.run(_async_calls())
    print(json.dumps({"reported": [u.as_dict() for u in reported], "metrics": generate_latest(REGISTRY).decode()}))


if __name__ == "__main__":
    main()
