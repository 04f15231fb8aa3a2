"""Server-side dynamic batching: concurrent requests share one model call.

Semantics follow TensorFlow Serving's batching: a batch closes when it holds
``max_batch_size`` rows or when its oldest request has waited ``timeout_s``, whichever comes
first; and, unlike TF Serving, at once when every prediction in flight in the server is already
in it (``predictions_in_flight``, counted from the first byte read to the answer). So a lone
request never waits out the timeout, while under load, with other predictions being read,
parsed or answered (whose clients come straight back), the batch keeps filling. One worker
thread runs the model, so batches never compete with each other for the CPU/GPU, and the event
loop stays free to parse and answer requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from serving.metrics import Metrics

Arrays = dict[str, np.ndarray]
logger = logging.getLogger(__name__)


@dataclass
class _Job:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    enqueued_at: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(
        self,
        run_batch: Callable[[Arrays], Arrays],
        max_batch_size: int,
        timeout_s: float,
        metrics: Metrics,
        predictions_in_flight: Callable[[], int],
    ) -> None:
        self._run_batch = run_batch
        self._predictions_in_flight = predictions_in_flight
        self._max_batch_size = max_batch_size
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._carried: _Job | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._carried is not None:
            self._carried.future.cancel()
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self._executor.shutdown(wait=True)

    async def submit(self, inputs: Arrays, rows: int) -> Arrays:
        """Queue one request's rows and wait for its slice of the batch's outputs."""
        if rows > self._max_batch_size:
            raise ValueError(f"{rows} rows exceed the batch size limit {self._max_batch_size}")
        future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(inputs, rows, future))
        return await future

    async def _loop(self) -> None:
        while True:
            jobs = await self._collect()
            await self._execute(jobs)

    async def _collect(self) -> list[_Job]:
        first = self._carried or await self._queue.get()
        self._carried = None
        jobs, rows = [first], first.rows
        # The deadline counts from the oldest request's arrival, so time it spent queued
        # behind the previous batch counts towards its wait.
        deadline = first.enqueued_at + self._timeout_s
        while rows < self._max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                if self._predictions_in_flight() <= len(jobs):
                    break  # every prediction in the server is in this batch: run it now
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + job.rows > self._max_batch_size:
                self._carried = job
                break
            jobs.append(job)
            rows += job.rows
        return jobs

    async def _execute(self, jobs: list[_Job]) -> None:
        rows = sum(job.rows for job in jobs)
        names = jobs[0].inputs.keys()
        inputs = (
            jobs[0].inputs
            if len(jobs) == 1
            else {name: np.concatenate([job.inputs[name] for job in jobs]) for name in names}
        )
        self._metrics.batch_size.observe(rows)
        started = time.perf_counter()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run_batch, inputs
            )
        except Exception as error:
            logger.exception("model call failed for a batch of %d rows", rows)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            self._metrics.inference_latency.observe(time.perf_counter() - started)
        offset = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(
                    {name: value[offset : offset + job.rows] for name, value in outputs.items()}
                )
            offset += job.rows
