"""The transport ceiling: our HTTP stack (Starlette on uvicorn, uvloop, httptools: the serving
runtime's exact configuration) answering every predict with a precomputed response of the real
size, with no model, no parsing and no batching. What our runtime could reach if inference and
the JSON work cost nothing. Started by serving_bench.py; BENCH_RESPONSE_FILE holds the answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = Path(os.environ["BENCH_RESPONSE_FILE"]).read_bytes()
STATUS = b'{"model_version_status":[{"version":"1","state":"AVAILABLE"}]}'


async def predict(request: Request) -> Response:
    await request.body()  # the request is still received whole, as the runtime receives it
    return Response(ANSWER, media_type="application/json")


async def status(request: Request) -> Response:
    return Response(STATUS, media_type="application/json")


app = Starlette(
    routes=[
        Route("/v1/models/digits:predict", predict, methods=["POST"]),
        Route("/v1/models/digits", status, methods=["GET"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
    )
