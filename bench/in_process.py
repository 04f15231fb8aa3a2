"""The model in the bench's own process, with no server: the signature call's limits as the
runtime makes it with each inference engine (at batch 1 and at the batch limit), and one real
answer of ours, which the transport ceiling sends back to every request.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from bench_paths import MODEL_BASE_PATH, MODEL_DIR
from load_clients import Run

IN_PROCESS_CALLS = 300


def in_process_limits(run: Run) -> dict[str, Any]:
    """The model's signature call with no server, as the runtime makes it with each inference
    engine (its default first): batch 1 and the batch limit, median of IN_PROCESS_CALLS calls
    each."""
    sys.path.insert(0, str(MODEL_DIR))
    from serving.config import INFERENCE_ENGINES  # noqa: PLC0415
    from serving.model import load_latest  # noqa: PLC0415

    limits: dict[str, Any] = {}
    for engine in INFERENCE_ENGINES:
        model = load_latest("digits", MODEL_BASE_PATH, engine)
        for rows in (1, run.args.max_batch_size):
            batch = {"images": run.images[:rows]}
            model.predict(batch)
            durations = []
            for _ in range(IN_PROCESS_CALLS):
                started = time.perf_counter()
                model.predict(batch)
                durations.append(time.perf_counter() - started)
            median = float(np.median(durations))
            key = in_process_key(engine, rows)
            limits[key] = {
                "engine": model.engine,  # what actually runs, should the model fall back
                "rows": rows,
                "median_call_ms": round(median * 1000, 3),
                "images_per_s": round(rows / median),
            }
            print(f"in process: {limits[key]}", flush=True)
    return limits


def in_process_key(engine: str, rows: int) -> str:
    return f"{engine} batch_{rows}"


def one_answer(run: Run) -> bytes:
    """A real response of ours (two outputs for one image): what the ceiling sends back."""
    sys.path.insert(0, str(MODEL_DIR))
    from serving import protocol  # noqa: PLC0415
    from serving.model import load_latest  # noqa: PLC0415

    model = load_latest("digits", MODEL_BASE_PATH)
    outputs = model.predict({"images": run.images[:1]})
    return protocol.render_predict("row", outputs, 1)
