"""The transport ceiling: the serving runtime's HTTP path for predict (uvicorn with uvloop and
httptools, a bare ASGI app, Starlette's Request to read the body whole and its Response to
answer: the runtime's exact configuration) answering every call with a precomputed response of
the real size: no model, no JSON work, no batching, no metrics. What our runtime could reach if
everything but the transport cost nothing. Started by serving_bench.py; BENCH_RESPONSE_FILE
holds the answer, CEILING_PROCESSES the number of processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

ANSWER = Path(os.environ["BENCH_RESPONSE_FILE"]).read_bytes()
STATUS = b'{"model_version_status":[{"version":"1","state":"AVAILABLE"}]}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan is off
    await Request(scope, receive).body()  # received whole, as the runtime receives it
    answer = ANSWER if scope["method"] == "POST" else STATUS
    await Response(answer, media_type="application/json")(scope, receive, send)


if __name__ == "__main__":
    processes = int(os.environ.get("CEILING_PROCESSES", "1"))
    uvicorn.run(
        # By import string: uvicorn's worker processes import it (sharing one listener, as
        # SERVING_PROCESSES does).
        "transport_ceiling:app",
        app_dir=str(Path(__file__).parent),
        workers=processes,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
    )
