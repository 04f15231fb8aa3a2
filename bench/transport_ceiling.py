"""The transport ceiling: the serving runtime's HTTP path for predict (uvicorn with uvloop and
httptools, a bare ASGI app, the body read and the answer sent by the runtime's own
``serving.asgi``: its exact configuration) answering every call with a precomputed response of
the real size: no model, no JSON work, no batching, no metrics. What our runtime could reach if
everything but the transport cost nothing. Started by serving_bench.py with the runtime's code
on PYTHONPATH and its inputs as arguments: ``--response-file`` holds the answer, ``--processes``
is the number of processes, ``--port`` the port; app_cost.py imports it and builds the app with
``create_app``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from serving.asgi import Answer, content_length, read_body
from starlette.types import ASGIApp, Receive, Scope, Send

STATUS = Answer(b'{"model_version_status":[{"version":"1","state":"AVAILABLE"}]}')
BODY_LIMIT = 1 << 20  # the runtime's default MAX_REQUEST_BYTES


def create_app(response: bytes) -> ASGIApp:
    """The ceiling's app: ``response`` to every predict."""
    answer = Answer(response)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off
        # Whole, as the runtime reads it.
        await read_body(receive, content_length(scope), BODY_LIMIT)
        await (answer if scope["method"] == "POST" else STATUS).send(send)

    return app


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--response-file", type=Path, required=True, help="the answer to every predict"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="uvicorn worker processes sharing the listener"
    )
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args()


def app_from_command_line() -> ASGIApp:
    """The app as uvicorn loads it in each process, from the arguments: a worker process is
    started with ``spawn``, which gives it its parent's sys.argv (and runs no main())."""
    return create_app(parse_arguments().response_file.read_bytes())


def main() -> None:
    args = parse_arguments()
    uvicorn.run(
        # By import string: uvicorn's worker processes import it (sharing one listener, as
        # SERVING_PROCESSES does).
        "transport_ceiling:app_from_command_line",
        factory=True,
        app_dir=str(Path(__file__).parent),
        workers=args.processes,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
