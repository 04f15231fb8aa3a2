"""Lifecycle of the served model: loading, ready, draining (or failed).

The HTTP layer asks it what to answer; the process layer (``serving.main``) tells it when a
drain starts and asks when the drain is over.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import logging
import time
from collections.abc import Callable

from serving.batching import Batcher
from serving.config import Settings
from serving.metrics import Metrics
from serving.model import LoadedModel, load_latest

logger = logging.getLogger(__name__)


class NotAcceptingError(Exception):
    """The model takes no predictions now (loading, draining or failed)."""


class Phase(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


def warm_up_sizes(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two up to the limit, and the limit itself."""
    sizes = {max_batch_size}
    size = 1
    while size < max_batch_size:
        sizes.add(size)
        size *= 2
    return tuple(sorted(sizes))


class _Admission:
    """One prediction in flight (Runtime.admit); a class rather than a generator-based context
    manager, which costs three times as much and runs on every request."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __enter__(self) -> Batcher:
        runtime = self._runtime
        if runtime.phase is not Phase.READY or runtime._batcher is None:
            raise NotAcceptingError(runtime.not_ready_reason())
        runtime._active_predictions += 1
        return runtime._batcher

    def __exit__(self, *exc_info: object) -> None:
        self._runtime._active_predictions -= 1


class Runtime:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        wait_for_siblings: Callable[[], object] = lambda: None,
    ) -> None:
        """``wait_for_siblings`` blocks until every other serving process has loaded its model
        too (and raises if one failed), so that none turns ready alone: requests reach
        whichever process accepts the connection."""
        self.settings = settings
        self.metrics = metrics
        self._wait_for_siblings = wait_for_siblings
        self.phase = Phase.LOADING
        self.model: LoadedModel | None = None
        self._batcher: Batcher | None = None
        self._active_predictions = 0
        self._drain_deadline = 0.0

    async def load(self) -> None:
        """Load and warm up off the event loop, so /healthz and 503s answer meanwhile."""
        settings = self.settings
        started = time.monotonic()
        try:
            model = await asyncio.to_thread(
                load_latest,
                settings.model_name,
                settings.model_base_path,
                settings.inference_engine,
                settings.signature_name,
            )
            await asyncio.to_thread(model.warm_up, warm_up_sizes(settings.max_batch_size))
            # TensorFlow leaves ~300k long-lived objects; every full collection would walk them
            # all, a pause of ~180 ms for every request in flight. Frozen, collections skip them.
            gc.collect()
            gc.freeze()
            # The last step, so that sibling processes turn ready within moments of each other.
            await asyncio.to_thread(self._wait_for_siblings)
        except Exception:
            logger.exception(
                "could not load model %s from %s", settings.model_name, settings.model_base_path
            )
            self.phase = Phase.FAILED
            return
        self.model = model
        self._batcher = Batcher(
            model.predict,
            settings.max_batch_size,
            settings.batch_timeout_s,
            self.metrics,
            predictions_in_flight=lambda: self._active_predictions,
        )
        self._batcher.start()
        self.metrics.inference_engine.labels(model.engine).set(1)
        logger.info(
            "model %s version %d loaded (%s) and warmed up in %.1fs",
            model.name,
            model.version,
            model.engine,
            time.monotonic() - started,
        )
        if self.phase is Phase.LOADING:
            self.phase = Phase.READY
            self.metrics.ready.set(1)

    def begin_drain(self) -> None:
        """Refuse new predictions from now on; those already admitted still complete.

        Only assigns attributes, so it is safe to call from a signal handler.
        """
        if self.phase is Phase.DRAINING:
            return
        self.phase = Phase.DRAINING
        self.metrics.ready.set(0)
        self._drain_deadline = time.monotonic() + self.settings.drain_timeout_s

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def drained(self) -> bool:
        return self.phase is Phase.DRAINING and self._active_predictions == 0

    @property
    def drain_expired(self) -> bool:
        return self.phase is Phase.DRAINING and time.monotonic() >= self._drain_deadline

    @property
    def active_predictions(self) -> int:
        return self._active_predictions

    def admit(self) -> _Admission:
        """Count a prediction as in flight for its whole life, from the first byte read:
        ``with runtime.admit() as batcher``.

        Raises NotAcceptingError unless the model is ready; the drain waits for every admitted one.
        """
        return _Admission(self)

    def not_ready_reason(self) -> str:
        name = self.settings.model_name
        return {
            Phase.LOADING: f"model {name} is loading and warming up",
            Phase.READY: f"model {name} is ready",
            Phase.DRAINING: f"model {name} is unavailable: the server is shutting down",
            Phase.FAILED: f"model {name} failed to load",
        }[self.phase]

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.stop()
