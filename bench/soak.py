"""A soak of the Python runtime: mixed good and hostile traffic over REST and gRPC at a fixed
concurrency for a fixed time, with the server's resident memory and open file descriptors
sampled as it goes. Reports their growth per 100k requests after warm-up (the goal: none) and
every wrong answer: a good request that failed or answered differently, a bad one that got a
5xx, INTERNAL or a reset.

  model/.venv/bin/python bench/soak.py [--seconds 600] [--concurrency 32]

Bounded in time and in connections; everything on 127.0.0.1. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
from bench_paths import MODEL_DIR, RESULTS_DIR
from servers_under_test import PREDICT, ours, process_tree, running
from sklearn.datasets import load_digits
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

MAX_REQUEST_BYTES = 256 * 1024
SAMPLE_EVERY_S = 5.0
WARM_UP_FRACTION = 0.2
"""The first part of the run, left out of the growth figures: caches and pools fill there."""
# REST bodies a hostile or broken client sends; each must get a 4xx.
BAD_BODIES = [
    b'{"instances": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    b'{"signature_name": ' + b"[" * 1000 + b"]" * 1000 + b', "instances": [[]]}',
    b'{"instances": [[[0.0, 1.0',
    b'{"instances": "\xff\xfe"}',
    b'{"instances": [[[NaN, Infinity]]]}',
    b'{"instances": [' + b"[" * 100 + b"1" + b"]" * 100 + b"]}",
    b'{"inputs": {"pixels": []}}',
    b"[" + b"1," * (MAX_REQUEST_BYTES // 2) + b"1]",  # over the body limit: 413
]
BAD_SHARE = 0.25
"""Of the requests, hostile; the rest are good, each checked against its first answer."""


@dataclass
class Tally:
    good: int = 0
    good_failed: int = 0
    bad: int = 0
    bad_answered_5xx_or_reset: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.good + self.bad

    def fail(self, what: str, good: bool) -> None:
        if good:
            self.good_failed += 1
        else:
            self.bad_answered_5xx_or_reset += 1
        if len(self.failures) < 20:
            self.failures.append(what)


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    requests: int
    rss_mb: float
    open_fds: int


def rss_and_fds(pid: int) -> tuple[float, int]:
    """Resident memory and open descriptors, summed over the server's process tree."""
    rss_kb, fds = 0, 0
    for member in process_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
            fds += len(list(Path(f"/proc/{member}/fd").iterdir()))
    return rss_kb / 1024, fds


def tensor(images: np.ndarray, shape: list[int] | None = None) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in shape or images.shape:
        proto.tensor_shape.dim.add().size = size
    if shape is None:
        proto.tensor_content = images.astype(np.float32).tobytes()
    else:
        proto.float_val.append(0.5)  # one value standing for a tensor of `shape`
    return proto


async def drive(
    base_url: str, grpc_target: str, pid: int, seconds: float, concurrency: int
) -> dict[str, Any]:
    digits = load_digits()
    images = digits.images[:64]
    bodies = [json.dumps({"instances": [image.tolist()]}).encode() for image in images]
    tally, samples = Tally(), []
    started = time.monotonic()
    deadline = started + seconds
    first_answers: dict[tuple[str, int], Any] = {}

    def same_as(key: tuple[str, int], answer: Any) -> None:
        """Each image's answer stays what it was the first time (a batch mixes requests)."""
        if first_answers.setdefault(key, answer) != answer:
            tally.fail(f"{key[0]} answer for image {key[1]} changed", good=True)

    async with (
        aiohttp.ClientSession(
            base_url, connector=aiohttp.TCPConnector(limit=concurrency)
        ) as session,
        grpc.aio.insecure_channel(grpc_target) as channel,
    ):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        async def rest(index: int, bad: bool) -> None:
            body = BAD_BODIES[index % len(BAD_BODIES)] if bad else bodies[index % len(bodies)]
            try:
                async with session.post(PREDICT, data=body) as response:
                    answer = await response.read()
                    status = response.status
            except aiohttp.ClientError as error:
                tally.fail(f"REST reset: {error!r}", good=not bad)
                return
            if bad:
                if status >= 500:
                    tally.fail(f"REST {status}: {answer[:200]!r}", good=False)
                return
            if status != 200:
                tally.fail(f"REST {status}: {answer[:200]!r}", good=True)
                return
            same_as(("REST", index % len(bodies)), json.loads(answer)["predictions"][0]["classes"])

        async def rpc(index: int, bad: bool) -> None:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "digits"
            image = images[index % len(images) : index % len(images) + 1]
            request.inputs["images"].CopyFrom(tensor(image, [2**20, 8, 8] if bad else None))
            try:
                reply = await stub.Predict(request, timeout=30)
            except grpc.aio.AioRpcError as error:
                if bad and error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    return
                tally.fail(f"gRPC {error.code().name}: {error.details()}", good=not bad)
                return
            if bad:
                tally.fail("gRPC: a tensor of 2**26 elements was decoded", good=False)
                return
            [classes] = np.frombuffer(reply.outputs["classes"].tensor_content, np.int64)
            same_as(("gRPC", index % len(images)), int(classes))

        async def worker(seed: int) -> None:
            choose = random.Random(seed)  # the same mix on every run
            while time.monotonic() < deadline:
                bad = choose.random() < BAD_SHARE
                index = choose.randrange(1 << 30)
                await (rest if choose.random() < 0.5 else rpc)(index, bad)
                if bad:
                    tally.bad += 1
                else:
                    tally.good += 1

        async def sampler() -> None:
            while time.monotonic() < deadline:
                rss, fds = rss_and_fds(pid)
                samples.append(Sample(time.monotonic() - started, tally.requests, rss, fds))
                await asyncio.sleep(SAMPLE_EVERY_S)

        await asyncio.gather(sampler(), *(worker(n) for n in range(concurrency)))
    rss, fds = rss_and_fds(pid)
    samples.append(Sample(time.monotonic() - started, tally.requests, rss, fds))
    return report(tally, samples, seconds, concurrency)


def per_100k(samples: list[Sample], value: str) -> float:
    """Least-squares slope of `value` against the request count, per 100k requests."""
    counts = [s.requests for s in samples]
    values = [getattr(s, value) for s in samples]
    if len(samples) < 3 or len(set(counts)) < 2:
        return float("nan")
    slope = statistics.linear_regression(counts, values).slope
    return round(slope * 100_000, 3)


def report(tally: Tally, samples: list[Sample], seconds: float, concurrency: int) -> dict[str, Any]:
    warm = [s for s in samples if s.elapsed_s >= WARM_UP_FRACTION * seconds]
    return {
        "seconds": seconds,
        "concurrency": concurrency,
        "requests": tally.requests,
        "requests_per_s": round(tally.requests / seconds, 1),
        "good": tally.good,
        "good_failed": tally.good_failed,
        "bad": tally.bad,
        "bad_answered_5xx_or_reset": tally.bad_answered_5xx_or_reset,
        "failures": tally.failures,
        "rss_mb": {
            "start": samples[0].rss_mb,
            "after_warm_up": warm[0].rss_mb,
            "end": samples[-1].rss_mb,
        },
        "open_fds": {
            "start": samples[0].open_fds,
            "after_warm_up": warm[0].open_fds,
            "end": samples[-1].open_fds,
        },
        "rss_mb_per_100k_requests_after_warm_up": per_100k(warm, "rss_mb"),
        "open_fds_per_100k_requests_after_warm_up": per_100k(warm, "open_fds"),
        "samples": [asdict(s) for s in samples],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "soak.json")
    args = parser.parse_args()
    batching = argparse.Namespace(max_batch_size=32, batch_timeout_micros=2000)
    server = ours("ours", MODEL_DIR, batching, grpc=True)
    server.env["MAX_REQUEST_BYTES"] = str(MAX_REQUEST_BYTES)
    log = args.output.with_suffix(".server.log")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with running(server, log) as pid:
        result = asyncio.run(
            drive(
                f"http://127.0.0.1:{server.port}",
                f"127.0.0.1:{server.grpc_port}",
                pid,
                args.seconds,
                args.concurrency,
            )
        )
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    clean = result["good_failed"] == 0 and result["bad_answered_5xx_or_reset"] == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
