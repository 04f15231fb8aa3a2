"""The dynamic batcher with a stand-in model: sizes, deadline, slicing and failures."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from serving.batching import Arrays, Batcher
from serving.metrics import Metrics


class RecordingModel:
    """Doubles its input and remembers the batch sizes it was called with."""

    def __init__(self, fail: bool = False) -> None:
        self.batch_sizes: list[int] = []
        self.threads: list[str] = []
        self.fail = fail

    def __call__(self, inputs: Arrays) -> Arrays:
        self.batch_sizes.append(len(inputs["x"]))
        self.threads.append(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("model exploded")
        return {"doubled": inputs["x"] * 2, "first": inputs["x"][:, 0]}


def rows(start: int, count: int) -> Arrays:
    return {"x": np.arange(start, start + count, dtype=np.float32).reshape(count, 1)}


class InFlight:
    """Predictions in flight in the server, as the Runtime counts them for the batcher."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def batcher_for(
    model: RecordingModel, max_batch_size: int, timeout_s: float, in_flight: InFlight
) -> Batcher:
    return Batcher(model, max_batch_size, timeout_s, Metrics(), in_flight)


async def run_jobs(
    model: RecordingModel,
    max_batch_size: int,
    timeout_s: float,
    sizes: list[int],
    *,
    inline_when_alone: bool = False,
) -> list[Arrays]:
    """Submit one job per size at once, each counted in flight until it has its answer."""
    in_flight = InFlight()
    batcher = batcher_for(model, max_batch_size, timeout_s, in_flight)
    batcher.start()

    async def job(start: int, size: int) -> Arrays:
        in_flight.count += 1
        try:
            return await batcher.submit(
                rows(start, size), size, inline_when_alone=inline_when_alone
            )
        finally:
            in_flight.count -= 1

    try:
        starts = np.cumsum([0, *sizes[:-1]])
        return await asyncio.gather(
            *(job(int(start), size) for start, size in zip(starts, sizes, strict=True))
        )
    finally:
        await batcher.stop()


def test_concurrent_jobs_share_batches_within_the_limit_and_get_their_own_rows() -> None:
    model = RecordingModel()
    sizes = [3, 1, 4, 1, 5, 2, 6]
    results = asyncio.run(run_jobs(model, 8, 0.05, sizes))
    assert sum(model.batch_sizes) == sum(sizes)
    assert max(model.batch_sizes) <= 8
    assert len(model.batch_sizes) < len(sizes)
    start = 0
    for size, result in zip(sizes, results, strict=True):
        expected = np.arange(start, start + size, dtype=np.float32)
        np.testing.assert_array_equal(result["doubled"][:, 0], expected * 2)
        np.testing.assert_array_equal(result["first"], expected)
        start += size


def test_a_full_batch_does_not_wait_for_the_timeout() -> None:
    model = RecordingModel()
    started = time.monotonic()
    asyncio.run(run_jobs(model, 4, 30.0, [2, 2]))
    assert time.monotonic() - started < 5
    assert model.batch_sizes == [4]


def test_a_lone_request_runs_at_once_instead_of_waiting_out_the_timeout() -> None:
    model = RecordingModel()
    started = time.monotonic()
    asyncio.run(run_jobs(model, 64, 30.0, [1]))
    assert time.monotonic() - started < 5
    assert model.batch_sizes == [1]


def test_the_model_runs_off_the_event_loop() -> None:
    model = RecordingModel()
    asyncio.run(run_jobs(model, 4, 30.0, [1]))
    asyncio.run(run_jobs(model, 4, 30.0, [2, 2]))
    assert model.batch_sizes == [1, 4]
    assert all(thread.startswith("inference") for thread in model.threads)


def test_a_lone_job_that_asks_runs_on_the_event_loop_others_still_off_it() -> None:
    model = RecordingModel()
    asyncio.run(run_jobs(model, 4, 30.0, [1], inline_when_alone=True))
    assert model.threads == [threading.main_thread().name]  # asyncio.run's loop
    # Not alone: two in flight, batched together on the inference thread.
    asyncio.run(run_jobs(model, 4, 30.0, [2, 2], inline_when_alone=True))
    assert model.batch_sizes == [1, 4]
    assert model.threads[1].startswith("inference")


def test_a_job_that_asks_is_not_alone_while_another_prediction_is_in_flight() -> None:
    """The other one never reaches submit (a parse error): after the timeout the job runs by
    itself, but off the loop, since the batcher could not know it would be alone."""

    async def scenario() -> RecordingModel:
        model = RecordingModel()
        in_flight = InFlight()
        batcher = batcher_for(model, 64, 0.05, in_flight)
        batcher.start()
        try:
            in_flight.count = 2
            await batcher.submit(rows(0, 1), 1, inline_when_alone=True)
        finally:
            await batcher.stop()
        return model

    model = asyncio.run(scenario())
    assert model.batch_sizes == [1]
    assert model.threads[0].startswith("inference")


def test_a_prediction_in_flight_is_waited_for_and_joins_the_batch() -> None:
    async def scenario() -> list[int]:
        model = RecordingModel()
        in_flight = InFlight()
        batcher = batcher_for(model, 64, 30.0, in_flight)
        batcher.start()
        try:
            in_flight.count = 2  # ours, and one whose body is still being read

            async def arriving_late() -> Arrays:
                await asyncio.sleep(0.05)
                return await batcher.submit(rows(1, 1), 1)

            await asyncio.gather(batcher.submit(rows(0, 1), 1), arriving_late())
        finally:
            await batcher.stop()
        return model.batch_sizes

    assert asyncio.run(scenario()) == [2]


def test_a_prediction_in_flight_holds_the_batch_at_most_the_timeout() -> None:
    async def scenario() -> float:
        in_flight = InFlight()
        batcher = batcher_for(RecordingModel(), 64, 0.2, in_flight)
        batcher.start()
        try:
            await asyncio.sleep(0.01)  # the batcher is idle, waiting for work, when it comes
            in_flight.count = 2  # the other one never reaches submit (a parse error)
            started = time.monotonic()
            await asyncio.wait_for(batcher.submit(rows(0, 1), 1), 5)
            return time.monotonic() - started
        finally:
            await batcher.stop()

    assert 0.15 <= asyncio.run(scenario()) < 5


def test_model_failure_reaches_every_job_and_the_batcher_survives() -> None:
    async def scenario() -> None:
        model = RecordingModel(fail=True)
        batcher = batcher_for(model, 8, 0.01, InFlight())
        batcher.start()
        try:
            results = await asyncio.gather(
                batcher.submit(rows(0, 1), 1), batcher.submit(rows(1, 1), 1), return_exceptions=True
            )
            assert all(isinstance(r, RuntimeError) for r in results)
            model.fail = False
            result = await batcher.submit(rows(5, 1), 1)
            assert result["doubled"][0, 0] == 10
        finally:
            await batcher.stop()

    asyncio.run(scenario())


def test_oversized_job_is_refused() -> None:
    async def scenario() -> None:
        batcher = batcher_for(RecordingModel(), 2, 0.01, InFlight())
        with pytest.raises(ValueError, match="3 rows exceed the batch size limit 2"):
            await batcher.submit(rows(0, 3), 3)

    asyncio.run(scenario())
