"""Our runtime with the model's call made (nearly) free: the bench's `ours, free model` row.

Everything the runtime does per request runs as served (the same ASGI app, body read, JSON
parsing and checks, batcher, model thread, rendering, metrics); only the signature call is
replaced, once the real model has loaded, by canned rows of its own outputs (one real call's
answer, repeated to the batch's size). Its ratio to the transport ceiling is the
most the runtime's own per-request work allows, whatever the model. One process
(SERVING_PROCESSES unset: a spawned process would not carry the replacement). Started by
serving_bench.py with the runtime's code on PYTHONPATH.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from unittest import mock

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

# After TF_CPP_MIN_LOG_LEVEL: they import TensorFlow.
from serving import runtime
from serving.main import main
from serving.model import SIGNATURE_NAME, LoadedModel, load_latest


def _with_free_calls(
    name: str, base_path: Path, engine: str = "tflite", signature: str = SIGNATURE_NAME
) -> LoadedModel:
    model = load_latest(name, base_path, engine, signature)
    answer = model.predict(model.zeros(1))

    def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = next(iter(inputs.values())).shape[0]
        return {output: np.repeat(value, rows, axis=0) for output, value in answer.items()}

    model.predict = predict
    return model


if __name__ == "__main__":
    with mock.patch.object(runtime, "load_latest", _with_free_calls):
        exit_code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)  # as serving.__main__: TensorFlow's teardown has nothing left to do
