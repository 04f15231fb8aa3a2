"""KServe's Python model server as a benchmark peer, serving the same SavedModel signature.

A ``kserve.Model`` that calls ``serving_default`` of ``tf.saved_model.load(model_dir)`` as our
runtime does (``model/serving/model.py``), behind KServe 0.21's own ``ModelServer`` (FastAPI
under uvicorn), speaking its V1 protocol, which is TensorFlow Serving's row format:

    POST /v1/models/digits:predict  {"instances": [[8x8 floats]]}
         -> {"predictions": [{"probabilities": [10 floats], "classes": N}]}
    GET  /v1/models/digits          -> 200 {"name": "digits", "ready": true} once ready

Runs in bench/.venv-kserve (scripts/kserve-venv.sh):

    bench/.venv-kserve/bin/python bench/kserve_peer.py --model_dir model/export/digits/1 \
        --http_port 8080 [--workers 2]

Every flag of KServe's ``kserve.model_server.parser`` works as KServe documents it
(``--workers``, ``--grpc_port``, ``--enable_grpc``, ...), with three defaults changed for a
benchmark: the model is named ``digits``; gRPC is off (``--enable_grpc true --grpc_port N``
turns it on); per-request logging is off, as in our runtime (``--enable_latency_logging true``
brings back KServe's latency line, its timing middleware's two ``kserve.trace`` lines and
uvicorn's access line, for every request). KServe has no flag for the listening host: it binds
0.0.0.0 (``host="0.0.0.0"`` in kserve/protocol/rest/server.py), and this project's servers bind
127.0.0.1 only, so `bind_loopback_only` rewrites that one setting; gRPC would bind ``[::]``, so
``--enable_grpc`` is refused.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

# Untyped (no py.typed): import-untyped where it is installed (bench/.venv-kserve), import-not-found
# in model/.venv, whose mypy checks the bench scripts; everything below goes through this name.
import kserve  # type: ignore[import-untyped, import-not-found, unused-ignore]
import numpy as np

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "images"
IMAGE_SHAPE = (8, 8)
# The loggers that write a line per request: KServe's timing middleware and latency line
# (kserve.trace) and uvicorn's access log.
REQUEST_LOGGERS = ("kserve.trace", "uvicorn.access")


class DigitsModel(kserve.Model):  # type: ignore[misc]
    """The SavedModel's ``serving_default`` signature as a KServe V1 predictor.

    Several workers (``--workers N``). KServe's docs: ``--workers`` "spawn[s] the specified
    number of uvicorn workers (multi-processing)", and the model is loaded before the server
    starts (``model.load(); ModelServer().start([model])``; a model not ready at start is not
    registered) -- kserve.github.io, "How to write a custom predictor". Since kserve PR #3757
    ("use 'spawn' for multiprocessing") each worker is a ``spawn`` process whose target holds the
    model registry (kserve/protocol/rest/multiprocess/server.py), so the loaded model is pickled
    into every worker, and a loaded SavedModel cannot be pickled ("can't pickle repeated message
    fields"). So the parent loads the model (it checks the SavedModel before any worker starts,
    and serves gRPC when that is on), its pickled state leaves TensorFlow out, and each worker
    loads its own copy, as gunicorn's workers do.

    Each worker loads in its application startup (a FastAPI startup event on KServe's
    ``kserve.model_server.app``, the app its docs have custom code extend), not while it is
    unpickled: the parent pings each worker every 0.5 s and kills and respawns one that has not
    answered within 5 s (``RESTServerProcess.ping``), and a worker starts answering only after
    it is unpickled, when it starts its application. Importing TensorFlow and loading the model
    take 4-13 s here (with and without .pyc files), so workers that loaded while unpickled were
    killed and respawned in a loop. Uvicorn accepts connections only after the startup event,
    so no worker serves before its model is loaded. For the same reason this module imports
    TensorFlow only when it loads the model.
    """

    def __init__(
        self, name: str, model_dir: Path, log_config: dict[str, Any] | None = None
    ) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.log_config = log_config
        """The logging configuration to apply in every worker (None: KServe's own)."""
        self._tf: Any = None
        self._loaded: Any = None
        self._function: Any = None

    def load(self) -> bool:
        import tensorflow as tf  # noqa: PLC0415 (only once the model loads: see the class doc)

        loaded = tf.saved_model.load(str(self.model_dir))
        if SIGNATURE_NAME not in loaded.signatures:
            raise RuntimeError(f"{self.model_dir} has no {SIGNATURE_NAME!r} signature")
        self._tf = tf
        # Keep the loaded object alive: the signature function refers to its variables.
        self._loaded = loaded
        self._function = loaded.signatures[SIGNATURE_NAME]
        # One call first, as our runtime warms up, so the first request pays no one-time cost.
        self._call(np.zeros((1, *IMAGE_SHAPE), np.float32))
        self.ready = True
        return True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_tf=None, _loaded=None, _function=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in a spawned worker, before KServe configures its logging and runs it."""
        self.__dict__.update(state)
        if self.log_config is not None:
            # KServe's worker then keeps it: it configures logging only when none is.
            kserve.logging.configure_logging(self.log_config)
        if self.ready:
            self.ready = False
            kserve.model_server.app.router.add_event_handler("startup", self.load)

    def _call(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._function(**{INPUT_NAME: self._tf.constant(images)})
        return {name: value.numpy() for name, value in outputs.items()}

    def predict(
        self, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        instances = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(instances, list) or not instances:
            raise kserve.errors.InvalidInput(
                "expected a JSON object with a non-empty 'instances' list"
            )
        try:
            images = np.asarray(instances, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise kserve.errors.InvalidInput(
                f"'instances' is not an array of numbers: {error}"
            ) from None
        if images.ndim != 1 + len(IMAGE_SHAPE) or images.shape[1:] != IMAGE_SHAPE:
            raise kserve.errors.InvalidInput(
                f"'instances' has shape {list(images.shape)}; expected [-1, 8, 8]"
            )
        outputs = self._call(images)
        # TensorFlow Serving's row format, as model/serving/protocol.py render_predict: one
        # object per row keyed by output name, or the bare values for a single output. KServe
        # answers with FastAPI's ORJSONResponse (orjson with OPT_SERIALIZE_NUMPY), the same
        # serializer and option as our runtime, so numpy values go out as they are.
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        return {
            "predictions": [
                {name: value[row] for name, value in outputs.items()}
                for row in range(images.shape[0])
            ]
        }


def log_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """KServe's logging configuration, less the per-request lines unless asked for.

    None when KServe should do as it does by default: ``--configure_logging false`` or a
    ``--log_config_file`` (which KServe applies itself, in every worker too).
    """
    if not args.configure_logging or args.log_config_file:
        return None
    config: dict[str, Any] = copy.deepcopy(kserve.logging.KSERVE_LOG_CONFIG)
    if not args.enable_latency_logging:
        for name in REQUEST_LOGGERS:
            config["loggers"][name]["level"] = "WARNING"
    return config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="KServe's Python model server serving the digits SavedModel (V1 protocol).",
        parents=[kserve.model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model_dir", required=True, type=Path, help="The SavedModel version directory."
    )
    parser.set_defaults(model_name="digits", enable_grpc=False, enable_latency_logging=False)
    return parser.parse_args()


def bind_loopback_only() -> None:
    """Make KServe's REST server listen on 127.0.0.1: its uvicorn.Config is built with host
    0.0.0.0, and both the single-process server and the multi-process one bind through that
    Config object (``config.bind_socket()``), so setting its host after construction is enough."""
    rest_server = kserve.protocol.rest.server  # imported by kserve itself (ModelServer)
    construct = rest_server.RESTServer.__init__

    def on_loopback(self: Any, *args: Any, **kwargs: Any) -> None:
        construct(self, *args, **kwargs)
        self.config.host = "127.0.0.1"

    rest_server.RESTServer.__init__ = on_loopback


def main() -> None:
    args = parse_args()
    if args.enable_grpc:
        raise SystemExit("--enable_grpc: KServe's gRPC server binds [::], not 127.0.0.1")
    bind_loopback_only()
    config = log_config(args)
    if config is not None:
        kserve.logging.configure_logging(config)
    model = DigitsModel(args.model_name, args.model_dir, config)
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
