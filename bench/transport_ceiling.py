"""The transport ceiling: the serving runtime's HTTP path for predict (uvicorn with uvloop and
httptools, a bare ASGI app, the body read and the answer sent by the runtime's own
``serving.asgi``: its exact configuration) answering every call with a precomputed response of
the real size: no model, no JSON work, no batching, no metrics. What our runtime could reach if
everything but the transport cost nothing. Started by serving_bench.py with the runtime's code
on PYTHONPATH; BENCH_RESPONSE_FILE holds the answer, CEILING_PROCESSES the number of processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from serving.asgi import Answer, content_length, read_body
from starlette.types import Receive, Scope, Send

ANSWER = Answer(Path(os.environ["BENCH_RESPONSE_FILE"]).read_bytes())
STATUS = Answer(b'{"model_version_status":[{"version":"1","state":"AVAILABLE"}]}')
BODY_LIMIT = 1 << 20  # the runtime's default MAX_REQUEST_BYTES


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan is off
    await read_body(receive, content_length(scope), BODY_LIMIT)  # whole, as the runtime reads it
    await (ANSWER if scope["method"] == "POST" else STATUS).send(send)


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
