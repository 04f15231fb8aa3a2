"""The load clients and the interleaved measurement. wrk (REST) and ghz (gRPC) drive one
server in a closed loop at a given concurrency, a warm-up run then the measured one, and give
one Measurement; a Row is a running server over one protocol; the rounds measure every row in
turn at each concurrency, and each row's figures are its medians over the rounds. Run holds
what a run's measurements share: its arguments, the workload and the results so far.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bench_paths import ROOT
from servers_under_test import (
    PREDICT,
    Server,
    check_answers,
    peak_rss_mb,
    running,
    wait_until_idle,
)
from workload import GrpcFiles

WRK = "wrk"
WRK_SCRIPT = ROOT / "bench" / "closed_loop.lua"
GHZ = ROOT / ".bin" / "ghz"


@dataclass(frozen=True)
class Measurement:
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    rounds_requests_per_s: list[float] = field(default_factory=list)
    """Each round's req/s; the other figures are medians over the rounds (sums for counts)."""


@dataclass(frozen=True)
class ServerResult:
    name: str
    description: str
    peak_rss_mb: float
    measurements: list[Measurement]


@dataclass
class Run:
    args: argparse.Namespace
    bodies: list[bytes]
    bodies_file: Path
    """The same bodies, one per line, for wrk."""
    grpc_files: GrpcFiles
    images: np.ndarray
    labels: np.ndarray
    results: list[ServerResult] = field(default_factory=list)


def rest_loop(base_url: str, concurrency: int, run: Run) -> Measurement:
    """wrk: ``concurrency`` keep-alive connections, each sending its next request as soon as
    the last answered; a warm-up run first, then the measured one."""

    def wrk(seconds: int) -> dict[str, int]:
        completed = subprocess.run(
            [
                WRK,
                "--threads=1",
                f"--connections={concurrency}",
                f"--duration={seconds}s",
                "--timeout=60s",
                f"--script={WRK_SCRIPT}",
                base_url + PREDICT,
            ],
            env={**os.environ, "BENCH_BODIES": str(run.bodies_file)},
            capture_output=True,
            text=True,
            check=True,
        )
        summary: dict[str, int] = json.loads(completed.stdout.strip().splitlines()[-1])
        return summary

    wrk(run.args.warmup)
    summary = wrk(run.args.duration)
    duration_s = summary["duration_us"] / 1e6
    return Measurement(
        concurrency=concurrency,
        duration_s=round(duration_s, 2),
        requests=summary["requests"],
        errors=summary["errors"],
        requests_per_s=round(summary["requests"] / duration_s, 1),
        p50_ms=round(summary["p50_us"] / 1000, 2),
        p99_ms=round(summary["p99_us"] / 1000, 2),
    )


def grpc_loop(target: str, concurrency: int, run: Run) -> Measurement:
    """ghz: ``concurrency`` workers on one HTTP/2 connection (as a gRPC channel is), each sending
    its next Predict as soon as the last answered; a warm-up run first, then the measured one.
    Calls still in flight when the time is up are left out, not counted as errors."""

    def ghz(seconds: int) -> dict[str, Any]:
        completed = subprocess.run(
            [
                str(GHZ),
                "--insecure",
                f"--protoset={run.grpc_files.protoset}",
                "--call=tensorflow.serving.PredictionService.Predict",
                f"--binary-file={run.grpc_files.requests}",
                f"--concurrency={concurrency}",
                f"--duration={seconds}s",
                "--duration-stop=ignore",
                "--timeout=60s",
                "--format=json",
                target,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        report: dict[str, Any] = json.loads(completed.stdout)
        return report

    ghz(run.args.warmup)
    report = ghz(run.args.duration)
    latency_ms = {
        point["percentage"]: point["latency"] / 1e6 for point in report["latencyDistribution"]
    }
    statuses: dict[str, int] = report["statusCodeDistribution"]
    return Measurement(
        concurrency=concurrency,
        duration_s=round(report["total"] / 1e9, 2),
        requests=statuses.get("OK", 0),
        errors=sum(count for status, count in statuses.items() if status != "OK"),
        requests_per_s=round(statuses.get("OK", 0) / (report["total"] / 1e9), 1),
        p50_ms=round(latency_ms[50], 2),
        p99_ms=round(latency_ms[99], 2),
    )


@dataclass(frozen=True)
class Row:
    """One row of the table: a running server, over one protocol."""

    name: str
    description: str
    pid: int
    measure: Callable[[int], Measurement]
    """One round at a concurrency."""


def start(server: Server, run: Run, stack: contextlib.ExitStack) -> list[Row]:
    """Starts the server for the rest of the run (`stack` stops it) and checks its answers."""
    base_url = f"http://127.0.0.1:{server.port}"
    print(f"{server.name}: starting ({server.description})", flush=True)
    pid = stack.enter_context(running(server, run.args.log_dir / f"{server.name}.log"))
    if server.answers_for_real:
        accuracy = asyncio.run(check_answers(base_url, run.bodies, run.labels))
        if accuracy < 0.95:
            raise SystemExit(f"{server.name} answers wrongly: accuracy {accuracy:.3f}")
    rows = [
        Row(server.name, server.description, pid, lambda c: rest_loop(base_url, c, run)),
    ]
    if server.grpc_port is not None:
        target = f"127.0.0.1:{server.grpc_port}"
        rows.append(
            Row(
                f"{server.name} gRPC",
                "the same server, over gRPC",
                pid,
                lambda c: grpc_loop(target, c, run),
            )
        )
    return rows


def measure_interleaved(rows: list[Row], run: Run) -> None:
    """At each concurrency, `--rounds` rounds, each measuring every row once in turn: the
    machine's slow spells fall on all rows alike instead of on whichever ran then. A row's
    figures are its medians over the rounds."""
    figures: dict[str, list[Measurement]] = {row.name: [] for row in rows}
    for concurrency in run.args.concurrency:
        rounds: dict[str, list[Measurement]] = {row.name: [] for row in rows}
        for index in range(run.args.rounds):
            for row in rows:
                measurement = row.measure(concurrency)
                settled_s = wait_until_idle(row.pid)
                print(
                    f"{row.name} (round {index + 1}): {measurement}; idle after {settled_s:.1f} s",
                    flush=True,
                )
                rounds[row.name].append(measurement)
        for row in rows:
            figures[row.name].append(median_of(rounds[row.name]))
    for row in rows:
        rss = round(peak_rss_mb(row.pid), 1)
        run.results.append(ServerResult(row.name, row.description, rss, figures[row.name]))


def median_of(rounds: list[Measurement]) -> Measurement:
    def median(values: list[float], digits: int) -> float:
        return round(float(np.median(values)), digits)

    return Measurement(
        concurrency=rounds[0].concurrency,
        duration_s=round(sum(m.duration_s for m in rounds), 2),
        requests=sum(m.requests for m in rounds),
        errors=sum(m.errors for m in rounds),
        requests_per_s=median([m.requests_per_s for m in rounds], 1),
        p50_ms=median([m.p50_ms for m in rounds], 2),
        p99_ms=median([m.p99_ms for m in rounds], 2),
        rounds_requests_per_s=[m.requests_per_s for m in rounds],
    )
