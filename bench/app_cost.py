"""What our ASGI app costs per predict beside the transport ceiling's app, with no sockets.

Both apps are driven directly (a scope, a receive that hands over the body, a send that keeps
the messages) by N concurrent callers in one event loop (uvloop), so uvicorn, the kernel and
the client are out of the figure. Ours runs its whole path: body read, JSON parsing and checks,
the batcher, the model (its default engine, on its worker thread), rendering and metrics. The
figure is CPU time per request (the process's, the model's thread included), which the other
tenants' steal does not inflate as much as wall time; the least of a few rounds.

The gap between the two is what the runtime adds per request to what the transport costs:
with the transport at T µs per request and ours adding A, the fraction of the ceiling reachable
is T / (T + A). Run by serving_bench.py; alone: model/.venv/bin/python bench/app_cost.py.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "model"
PREDICT = "/v1/models/digits:predict"
REQUESTS_PER_ROUND = 4000
ROUNDS = 5

App = Any  # an ASGI application
Costs = dict[str, dict[str, float]]
"""CPU µs per request by concurrency (as text, for JSON) and app: {"32": {"ours": …}}."""


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PREDICT,
        "raw_path": PREDICT.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8501),
    }


async def _one(app: App, body: bytes) -> None:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # as a connection that stays open: never disconnects
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(), receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"answered {sent[0]['status']}: {sent[1:]}")


async def _cpu_us_per_request(app: App, bodies: list[bytes], concurrency: int) -> float:
    per_caller = REQUESTS_PER_ROUND // concurrency

    async def caller(first: int) -> None:
        for index in range(first, first + per_caller):
            await _one(app, bodies[index % len(bodies)])

    started = time.process_time()
    await asyncio.gather(*(caller(n * per_caller) for n in range(concurrency)))
    return (time.process_time() - started) / (per_caller * concurrency) * 1e6


async def _measure(apps: dict[str, App], bodies: list[bytes], concurrencies: list[int]) -> Costs:
    costs: dict[str, dict[int, list[float]]] = {n: {c: [] for c in concurrencies} for n in apps}
    for concurrency in concurrencies:
        for app in apps.values():  # a warm-up round each
            await _cpu_us_per_request(app, bodies, concurrency)
        for _ in range(ROUNDS):  # interleaved, as the servers' rounds are
            for name, app in apps.items():
                costs[name][concurrency].append(await _cpu_us_per_request(app, bodies, concurrency))
    return {
        str(concurrency): {name: round(min(costs[name][concurrency]), 1) for name in apps}
        for concurrency in concurrencies
    }


async def _with_loaded_runtime(
    bodies: list[bytes], response_file: Path, concurrencies: list[int]
) -> Costs:
    sys.path.insert(0, str(MODEL_DIR))
    # bench/ is on the path: this script's directory.
    import transport_ceiling  # noqa: PLC0415
    from serving.app import create_app  # noqa: PLC0415
    from serving.config import load_settings  # noqa: PLC0415
    from serving.metrics import Metrics  # noqa: PLC0415
    from serving.runtime import Runtime  # noqa: PLC0415

    settings = load_settings({"MODEL_BASE_PATH": str(MODEL_DIR / "export" / "digits")})
    runtime = Runtime(settings, Metrics(shared_dir=None))
    ours = create_app(runtime)
    await runtime.load()
    try:
        ceiling = transport_ceiling.create_app(response_file.read_bytes())
        apps = {"ours": ours, "ceiling": ceiling}
        return await _measure(apps, bodies, concurrencies)
    finally:
        await runtime.close()


def app_costs(bodies: list[bytes], response_file: Path, concurrencies: list[int]) -> Costs:
    """CPU µs per request of our app and the ceiling's at each concurrency."""
    return uvloop.run(_with_loaded_runtime(bodies, response_file, concurrencies))


if __name__ == "__main__":
    import json
    import tempfile

    from workload import request_bodies

    bodies, _, _ = request_bodies()
    with tempfile.TemporaryDirectory() as directory:
        answer = Path(directory) / "answer.json"
        answer.write_bytes(b'{"predictions": [0]}')
        print(json.dumps(app_costs(bodies, answer, [1, 32]), indent=2))
