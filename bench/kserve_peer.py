"""KServe's Python model server as a benchmark peer, serving the same SavedModel signature.

A ``kserve.Model`` that calls ``serving_default`` of ``tf.saved_model.load(model_dir)`` exactly as
our runtime does (``model/serving/model.py``), behind KServe 0.21's own ``ModelServer`` (FastAPI
under uvicorn) speaking its V1 protocol, TensorFlow Serving's row format:

    POST /v1/models/digits:predict  {"instances": [[8x8 floats]]}
         -> {"predictions": [{"probabilities": [10 floats], "classes": N}]}
    GET  /v1/models/digits          -> 200 {"name": "digits", "ready": true} once ready, else 503

Runs in bench/.venv-kserve (scripts/kserve-venv.sh):

    bench/.venv-kserve/bin/python bench/kserve_peer.py --model_dir model/export/digits/1 \
        --http_port 8080 [--workers 2]

Every flag of KServe's ``kserve.model_server.parser`` works as documented (``--workers``,
``--grpc_port``, ``--enable_grpc``, ...), with three defaults changed for a benchmark: the model is
named ``digits``, gRPC is off (``--enable_grpc true --grpc_port N`` turns it on), and the
per-request latency log line is off (``--enable_latency_logging true``). KServe binds
0.0.0.0 unconditionally (``host="0.0.0.0"`` in ``kserve/protocol/rest/server.py``, gRPC on
``[::]``): it has no flag to choose the host.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import kserve  # type: ignore[import-untyped]
import numpy as np
import tensorflow as tf
from kserve.errors import InvalidInput  # type: ignore[import-untyped]

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "images"


class DigitsModel(kserve.Model):  # type: ignore[misc]
    """The SavedModel's ``serving_default`` signature as a KServe V1 predictor.

    Several workers (``--workers N``): KServe 0.21 starts each REST worker with
    multiprocessing's ``spawn`` (kserve/protocol/rest/multiprocess/server.py, since kserve PR
    #3757 "use 'spawn' for multiprocessing"), so the registered model object is pickled into
    every worker. Its docs say to load the model in ``load()`` and to start the server with the
    model ready (``model.load(); ModelServer().start([model])``: a model not ready is not
    registered), and ``--workers`` "spawn[s] the specified number of uvicorn workers
    (multi-processing)" (kserve.github.io, "How to write a custom predictor"). A loaded
    SavedModel cannot be pickled ("can't pickle repeated message fields"), so the pickled state
    leaves the TensorFlow objects out and each worker loads the SavedModel itself when it is
    unpickled, before it serves: every worker holds its own copy, as with gunicorn.
    """

    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self._loaded: Any = None
        self._function: Any = None

    def load(self) -> bool:
        loaded = tf.saved_model.load(str(self.model_dir))
        if SIGNATURE_NAME not in loaded.signatures:
            raise RuntimeError(f"{self.model_dir} has no {SIGNATURE_NAME!r} signature")
        # Keep the loaded object alive: the signature function refers to its variables.
        self._loaded = loaded
        self._function = loaded.signatures[SIGNATURE_NAME]
        # One call first, as our runtime warms up, so the first request pays no one-time cost.
        self._call(np.zeros((1, 8, 8), np.float32))
        self.ready = True
        return True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_loaded"] = None
        state["_function"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.ready:  # unpickled in a spawned worker: load this worker's own copy
            self.load()

    def _call(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._function(**{INPUT_NAME: tf.constant(images)})
        return {name: value.numpy() for name, value in outputs.items()}

    def predict(
        self, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        instances = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(instances, list) or not instances:
            raise InvalidInput("expected a JSON object with a non-empty 'instances' list")
        try:
            images = np.asarray(instances, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise InvalidInput(f"'instances' is not an array of numbers: {error}") from None
        if images.ndim != 3 or images.shape[1:] != (8, 8):
            raise InvalidInput(f"'instances' has shape {list(images.shape)}; expected [-1, 8, 8]")
        outputs = self._call(images)
        # TensorFlow Serving's row format (model/serving/protocol.py render_predict): one object
        # per row keyed by output name, or the bare values when there is a single output. The
        # numpy values are serialized by KServe's ORJSONResponse (orjson with
        # OPT_SERIALIZE_NUMPY), the same serializer and option as our runtime.
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        rows = images.shape[0]
        return {
            "predictions": [
                {name: value[row] for name, value in outputs.items()} for row in range(rows)
            ]
        }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        parents=[kserve.model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model_dir", required=True, type=Path, help="The SavedModel version directory."
    )
    parser.set_defaults(model_name="digits", enable_grpc=False, enable_latency_logging=False)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    model = DigitsModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
    ).start([model])


if __name__ == "__main__":
    main()
