"""Benchmark: our serving runtime against the peer users would pick and against the limits.

One run, one machine, the same closed-loop client and the same single-image requests for every
server. All servers run at once on 127.0.0.1, idle but for the one being measured; at each
concurrency, rounds measure every row in turn, so the machine's slow spells fall on all rows
alike, and each figure is a median over the rounds. The clients are compiled: wrk (C) for
REST, ghz (Go) for gRPC. A Python client saturated its core before the ceiling did, so the
ceiling measured the client.

- ours, over REST and over gRPC (TensorFlow Serving's PredictionService, same server);
- ours with SERVING_PROCESSES=--processes (one per core by default), over REST;
- ours at an older commit (`--before-ref`), to show a change side by side;
- ours with the model's call made free (free_model.py): the most the runtime's own work per
  request allows;
- KServe's Python ModelServer (`kserve` 0.21, bench/kserve_peer.py, its own virtualenv): its
  default single worker and the multi-worker setup its docs give for throughput;
- the transport ceiling: our HTTP stack answering a precomputed response (transport_ceiling.py),
  in one process and in as many processes as ours (each of ours is compared with its own);
- the seed's Flask + Keras `predict` per request (flask_baseline.py);
- and, in process with no server, the model's signature call at batch 1 and at the batch limit,
  with each inference engine (TensorFlow Lite, the runtime's default, and the TF Session).

Writes bench/results/serving.json and serving.md. See bench/README.md.

    model/.venv/bin/python bench/serving_bench.py [--rounds 3] [--duration 5] [--concurrency 1,8,32]

wrk comes from Debian and ghz from the Go module proxy (`make bench` installs both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from app_cost import Costs, app_costs
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "model"
MODEL_BASE_PATH = MODEL_DIR / "export" / "digits"
RESULTS_DIR = ROOT / "bench" / "results"
KSERVE_PYTHON = ROOT / "bench" / ".venv-kserve" / "bin" / "python"
WRK = "wrk"
WRK_SCRIPT = ROOT / "bench" / "closed_loop.lua"
GHZ = ROOT / ".bin" / "ghz"
PREDICT = "/v1/models/digits:predict"
JSON_HEADERS = {"content-type": "application/json"}
STATUS = "/v1/models/digits"
STARTUP_TIMEOUT_S = 180.0
# One gunicorn sync worker per core: TensorFlow already spreads one predict over the cores,
# and every extra worker is another full copy of TensorFlow in memory.
GUNICORN_WORKERS = 2
# KServe's docs give --workers for using more of the container's CPUs: one per core here.
KSERVE_WORKERS_FOR_THROUGHPUT = 2
CEILING = "transport ceiling"
FREE_MODEL = "ours, free model"
IN_PROCESS_CALLS = 300
# A server can stay busy after its client stops: the seed's gunicorn works through the requests
# queued in its listen backlog for seconds, which fell on the next row's measurement. Each
# measurement now waits until the server it measured is idle.
IDLE_CPU_FRACTION = 0.05
IDLE_WINDOW_S = 0.5
IDLE_WAIT_MAX_S = 60.0


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


@dataclass(frozen=True)
class Server:
    """How to start one server under test and how to talk to it."""

    name: str
    description: str
    command: list[str]
    env: dict[str, str]
    port: int
    grpc_port: int | None = None
    """Also measured over gRPC (PredictionService.Predict) on this port."""
    answers_for_real: bool = True
    """False for the transport ceiling, whose answers are canned."""
    cwd: Path = ROOT


@dataclass(frozen=True)
class GrpcFiles:
    protoset: Path
    """PredictionService's proto descriptors with their imports (ghz has no .proto files)."""
    requests: Path
    """One PredictRequest per image, each prefixed by its length: ghz sends them in turn."""


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (gunicorn's and KServe's workers), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        child_pids = [int(child) for child in children.read_text().split()]
    except FileNotFoundError:
        return []
    return [pid, *(descendant for child in child_pids for descendant in process_tree(child))]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time over the process tree."""
    ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            # Fields after the command name: state is the first; utime and stime the 12th, 13th.
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int) -> float:
    """Waits until the server's process tree is idle (under IDLE_CPU_FRACTION of a core over
    IDLE_WINDOW_S), at most IDLE_WAIT_MAX_S; returns the seconds waited."""
    started = time.monotonic()
    before = cpu_seconds(pid)
    while time.monotonic() - started < IDLE_WAIT_MAX_S:
        time.sleep(IDLE_WINDOW_S)
        after = cpu_seconds(pid)
        if after - before < IDLE_CPU_FRACTION * IDLE_WINDOW_S:
            break
        before = after
    return time.monotonic() - started


def peak_rss_mb(pid: int) -> float:
    """Sum over the process tree of each process's peak resident set (VmHWM)."""
    total_kb = 0
    for member in process_tree(pid):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


@contextlib.contextmanager
def running(server: Server, log: Path) -> Iterator[int]:
    """Start a server, wait until its status endpoint answers 200, yield its pid, stop it."""
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            server.command,
            env={**os.environ, **server.env},
            cwd=server.cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        asyncio.run(wait_ready(f"http://127.0.0.1:{server.port}", process, log))
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode} during startup: {log}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base_url + STATUS) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise SystemExit(f"server at {base_url} not ready after {STARTUP_TIMEOUT_S}s: {log}")


def request_bodies() -> tuple[list[bytes], np.ndarray, np.ndarray]:
    digits = load_digits()
    images = digits.images.astype(np.float32)
    bodies = [json.dumps({"instances": [image.tolist()]}).encode() for image in digits.images]
    return bodies, images, digits.target


async def check_answers(base_url: str, bodies: list[bytes], labels: np.ndarray) -> float:
    """Accuracy over 200 requests: every server must give the same, correct answers."""
    correct = 0
    count = 200
    async with aiohttp.ClientSession(headers=JSON_HEADERS) as session:
        for body, label in zip(bodies[:count], labels[:count], strict=True):
            async with session.post(base_url + PREDICT, data=body) as response:
                answer = await response.json()
                correct += answer["predictions"][0]["classes"] == label
    return correct / count


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


def write_grpc_files(directory: Path, images: np.ndarray) -> GrpcFiles:
    # Imported here: TensorFlow Serving's protos import TensorFlow.
    import tensorflow as tf  # noqa: PLC0415
    from google.protobuf import descriptor, descriptor_pb2  # noqa: PLC0415
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2  # noqa: PLC0415

    descriptors = descriptor_pb2.FileDescriptorSet()
    added: set[str] = set()

    def add(file: descriptor.FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        added.add(file.name)
        file.CopyToProto(descriptors.file.add())

    add(prediction_service_pb2.DESCRIPTOR)
    files = GrpcFiles(directory / "serving.protoset", directory / "requests.bin")
    files.protoset.write_bytes(descriptors.SerializeToString())
    with files.requests.open("wb") as out:
        for image in images:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "digits"
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(image[np.newaxis]))
            message = request.SerializeToString()
            out.write(varint(len(message)) + message)
    return files


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint: the length prefix of each message in ghz's binary file."""
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


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


def ours(
    name: str, model_code: Path, args: argparse.Namespace, *, grpc: bool, processes: int = 1
) -> Server:
    port, grpc_port = free_port(), free_port()
    env = {
        "PYTHONPATH": str(model_code),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GRPC_PORT": str(grpc_port),
        "MODEL_BASE_PATH": str(MODEL_BASE_PATH),
        "MAX_BATCH_SIZE": str(args.max_batch_size),
        "BATCH_TIMEOUT_MICROS": str(args.batch_timeout_micros),
        "LOG_LEVEL": "warning",
    }
    if processes > 1:  # an older commit may not know the variable
        env["SERVING_PROCESSES"] = str(processes)
    description = (
        f"python -m serving: SERVING_PROCESSES={processes}, uvicorn+uvloop, "
        f"MAX_BATCH_SIZE={args.max_batch_size}, BATCH_TIMEOUT_MICROS={args.batch_timeout_micros}"
    )
    return Server(
        name,
        description,
        [sys.executable, "-m", "serving"],
        env,
        port,
        grpc_port=grpc_port if grpc else None,
    )


def kserve(workers: int, description: str) -> Server:
    port, grpc_port = free_port(), free_port()
    command = [
        str(KSERVE_PYTHON),
        str(ROOT / "bench" / "kserve_peer.py"),
        f"--model_dir={max(MODEL_BASE_PATH.iterdir(), key=lambda p: int(p.name))}",
        f"--http_port={port}",
        f"--grpc_port={grpc_port}",
        f"--workers={workers}",
    ]
    env = {"TF_CPP_MIN_LOG_LEVEL": "1"}
    return Server(f"kserve x{workers}", description, command, env, port)


def ceiling(response_file: Path, processes: int = 1) -> Server:
    port = free_port()
    return Server(
        ceiling_name(processes),
        "our predict path's HTTP stack (uvicorn+uvloop+httptools, a bare ASGI app, the "
        "runtime's serving.asgi to read and answer) answering a precomputed response of the real "
        f"size: no model, no JSON work; {processes} process(es) sharing the listener, as ours do",
        [sys.executable, str(ROOT / "bench" / "transport_ceiling.py")],
        {
            "PYTHONPATH": str(MODEL_DIR),
            "PORT": str(port),
            "BENCH_RESPONSE_FILE": str(response_file),
            "CEILING_PROCESSES": str(processes),
        },
        port,
        answers_for_real=False,
    )


def free_model(args: argparse.Namespace) -> Server:
    return dataclasses.replace(
        ours(FREE_MODEL, MODEL_DIR, args, grpc=False),
        description="ours in one process with the signature call replaced by canned rows of its "
        "outputs (free_model.py): every other step of a request as served",
        command=[sys.executable, str(ROOT / "bench" / "free_model.py")],
        answers_for_real=False,
    )


def ours_name(processes: int) -> str:
    return "ours" if processes == 1 else f"ours x{processes}"


def ceiling_name(processes: int) -> str:
    return CEILING if processes == 1 else f"{CEILING} x{processes}"


def flask_seed() -> Server:
    port = free_port()
    version_dir = max(MODEL_BASE_PATH.iterdir(), key=lambda path: int(path.name))
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        f"--workers={GUNICORN_WORKERS}",
        "--worker-class=sync",
        f"--bind=127.0.0.1:{port}",
        "--timeout=120",
        "--log-level=warning",
        f"--chdir={ROOT / 'bench'}",
        "flask_baseline:app",
    ]
    env = {"BENCH_MODEL_PATH": str(version_dir), "TF_CPP_MIN_LOG_LEVEL": "1"}
    description = f"the seed: Flask under gunicorn, {GUNICORN_WORKERS} sync workers, Keras predict"
    return Server("flask seed", description, command, env, port)


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The repository at `ref`, as a temporary git worktree."""
    directory = Path(tempfile.mkdtemp(prefix="serving-bench-ref-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(directory), ref],
        check=True,
    )
    try:
        yield directory
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(directory)], check=True
        )
        shutil.rmtree(directory.parent, ignore_errors=True)


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


def by_name(run: Run) -> dict[str, ServerResult]:
    return {result.name: result for result in run.results}


def ratio(mine: float, theirs: float) -> float:
    return round(mine / theirs, 2) if theirs else float("inf")


def comparisons(run: Run, limits: dict[str, Any], process_counts: list[int]) -> dict[str, Any]:
    """Each of ours (one process, and more) against the peer's best configuration, its default,
    the ceiling with the same number of processes and the limits; and the issue's goals,
    checked for each."""
    servers = by_name(run)
    peers = [servers[name] for name in servers if name.startswith("kserve")]
    # The server's engine: the runtime's default, which the bench leaves as it is.
    batch_max = limits[in_process_key("tflite", run.args.max_batch_size)]["images_per_s"]
    rows, goals = [], []
    # The free model's row shows the bound on ours, with no goals of its own.
    compared = [(ours_name(processes), processes) for processes in process_counts]
    for name, processes in [*compared, (FREE_MODEL, 1)]:
        if name not in servers:
            continue
        mine = servers[name].measurements
        ceiling_row = servers.get(ceiling_name(processes))
        variant = []
        for index, m in enumerate(mine):
            row: dict[str, Any] = {"server": name, "concurrency": m.concurrency}
            if peers:
                best = max(peers, key=lambda peer: peer.measurements[index].requests_per_s)
                theirs = best.measurements[index]
                row |= {
                    "kserve_best": best.name,
                    "throughput_over_kserve_best": ratio(m.requests_per_s, theirs.requests_per_s),
                    "p99_over_kserve_best": ratio(m.p99_ms, theirs.p99_ms),
                }
            if "kserve x1" in servers:
                default = servers["kserve x1"].measurements[index]
                row["throughput_over_kserve_default"] = ratio(
                    m.requests_per_s, default.requests_per_s
                )
            if ceiling_row is not None:
                top = ceiling_row.measurements[index]
                row["throughput_over_ceiling"] = ratio(m.requests_per_s, top.requests_per_s)
            row["throughput_over_in_process_batch_max"] = ratio(m.requests_per_s, batch_max)
            variant.append(row)
        rows += variant
        if name != FREE_MODEL:
            goals += [(name, goal, met) for goal, met in _goals(mine, variant, bool(peers))]
    return {
        "rows": rows,
        "goals": [{"server": name, "goal": goal, "met": met} for name, goal, met in goals],
    }


def _goals(
    mine: list[Measurement], rows: list[dict[str, Any]], with_peers: bool
) -> list[tuple[str, bool]]:
    goals = []
    if with_peers:
        goals.append(
            (
                "throughput ≥ KServe's best and p99 lower, at every concurrency",
                all(
                    r["throughput_over_kserve_best"] >= 1 and r["p99_over_kserve_best"] < 1
                    for r in rows
                ),
            )
        )
    goals.append(("0 errors", all(m.errors == 0 for m in mine)))
    top_row = rows[-1]
    if "throughput_over_kserve_default" in top_row:
        goals.append(
            (
                f"at concurrency {top_row['concurrency']}: ≥ 8x KServe's single-worker default",
                top_row["throughput_over_kserve_default"] >= 8,
            )
        )
    if "throughput_over_ceiling" in top_row:
        goals.append(
            (
                f"at concurrency {top_row['concurrency']}: ≥ 70% of the transport ceiling "
                "(same process count)",
                top_row["throughput_over_ceiling"] >= 0.7,
            )
        )
    if mine[0].concurrency == 1:
        goals.append(("p50 at concurrency 1 ≤ 0.8 ms", mine[0].p50_ms <= 0.8))
    return goals


def write_results(run: Run, limits: dict[str, Any], costs: Costs, compared: dict[str, Any]) -> None:
    args = run.args
    load = round(os.getloadavg()[0], 2)
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine skews every server's numbers: recorded, not hidden.
            "load_average_1m_at_end": load,
        },
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "max_batch_size": args.max_batch_size,
            "batch_timeout_micros": args.batch_timeout_micros,
            "before_ref": args.before_ref,
        },
        "servers": [asdict(result) for result in run.results],
        "in_process": limits,
        "app_cpu_us_per_request": costs,
        "comparisons": compared,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "serving.json").write_text(json.dumps(document, indent=2) + "\n")

    lines = [
        f"Closed loop, single-image requests; at each concurrency {args.rounds} rounds, each "
        f"measuring every row in turn for {args.duration:g} s after {args.warmup:g} s of "
        "warm-up; figures are medians over the rounds. "
        f"{os.cpu_count()} CPUs, client on the same machine, 1-minute load average {load:.1f} "
        "at the end.",
        "",
        "| concurrency | server | req/s | req/s per round | p50 ms | p99 ms | errors |",
        "| ---: | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for index, concurrency in enumerate(args.concurrency):
        for result in run.results:
            m = result.measurements[index]
            lines.append(
                f"| {concurrency} | {result.name} | {m.requests_per_s:.1f} | "
                f"{', '.join(f'{r:.0f}' for r in m.rounds_requests_per_s)} | {m.p50_ms:.2f} | "
                f"{m.p99_ms:.2f} | {m.errors} |"
            )
    lines += [
        "",
        "In process, no server (the signature call as the runtime makes it with each engine):",
        "",
        "| engine | batch | median call ms | images/s |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {v['engine']} | {v['rows']} | {v['median_call_ms']:.3f} | {v['images_per_s']} |"
            for v in limits.values()
        ),
        "",
        "Our app and the ceiling's, driven with no sockets (app_cost.py): CPU µs per request, "
        "the least of 5 interleaved rounds. The difference is what the runtime adds to the "
        "transport's cost per request.",
        "",
        "| concurrency | ours | ceiling's app | difference |",
        "| ---: | ---: | ---: | ---: |",
        *(
            f"| {c} | {v['ours']:.1f} | {v['ceiling']:.1f} | {v['ours'] - v['ceiling']:.1f} |"
            for c, v in costs.items()
        ),
        "",
        "| server | concurrency | /KServe best (req/s) | /KServe best (p99) | /KServe x1 | "
        "/ceiling (same processes) | /in-process batch max |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {r['server']} | {r['concurrency']} | {r.get('throughput_over_kserve_best', '-')}x "
            f"({r.get('kserve_best', '-')}) | {r.get('p99_over_kserve_best', '-')}x | "
            f"{r.get('throughput_over_kserve_default', '-')}x | "
            f"{r.get('throughput_over_ceiling', '-')}x | "
            f"{r['throughput_over_in_process_batch_max']}x |"
            for r in compared["rows"]
        ),
        "",
        "| server | goal | met |",
        "| --- | --- | --- |",
        *(
            f"| {g['server']} | {g['goal']} | {'yes' if g['met'] else 'no'} |"
            for g in compared["goals"]
        ),
        "",
        "| server | peak RSS (MiB, sum over processes) | configuration |",
        "| --- | ---: | --- |",
        *(f"| {r.name} | {r.peak_rss_mb:.1f} | {r.description} |" for r in run.results),
        "",
    ]
    (args.output_dir / "serving.md").write_text("\n".join(lines))
    print("\n".join(lines))


def concurrency_list(raw: str) -> list[int]:
    values = [int(part) for part in raw.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds measured per round")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds before each")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per concurrency")
    parser.add_argument("--concurrency", type=concurrency_list, default=[1, 8, 32])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="SERVING_PROCESSES of the second row of ours, and of the second ceiling; "
        "1 leaves both out",
    )
    parser.add_argument(
        "--before-ref", help="also measure our runtime as of this git ref (e.g. HEAD~3)"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated rows to leave out: kserve, flask, ceiling"
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    if shutil.which(WRK) is None:
        raise SystemExit(f"{WRK} is missing: make bench installs it (scripts/apt-install.sh wrk)")
    if not GHZ.exists():
        raise SystemExit(f"{GHZ} is missing: make bench builds it (scripts/toolchain.sh bench)")
    if "kserve" not in skip and not KSERVE_PYTHON.exists():
        raise SystemExit(
            f"{KSERVE_PYTHON} is missing: run scripts/kserve-venv.sh (or --skip kserve)"
        )
    # Server logs are for debugging a run, not results to commit.
    args.log_dir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    print(f"server logs: {args.log_dir}", flush=True)
    bodies, images, labels = request_bodies()
    bodies_file = args.log_dir / "bodies.jsonl"
    bodies_file.write_bytes(b"\n".join(bodies) + b"\n")
    run = Run(args, bodies, bodies_file, write_grpc_files(args.log_dir, images), images, labels)

    limits = in_process_limits(run)
    response_file = args.log_dir / "answer.json"
    response_file.write_bytes(one_answer(run))
    costs = app_costs(bodies, response_file, args.concurrency)
    print(f"the apps without sockets, CPU µs per request: {costs}", flush=True)
    with contextlib.ExitStack() as stack:
        # Every server runs for the whole run, idle but for the one being measured.
        rows = start(ours(ours_name(1), MODEL_DIR, args, grpc=True), run, stack)
        if args.processes > 1:
            # REST only: a gRPC channel is one HTTP/2 connection, which one process serves.
            rows += start(
                ours(
                    ours_name(args.processes), MODEL_DIR, args, grpc=False, processes=args.processes
                ),
                run,
                stack,
            )
        rows += start(free_model(args), run, stack)
        if args.before_ref:
            tree = stack.enter_context(checkout(args.before_ref))
            rows += start(
                ours(f"ours @ {args.before_ref}", tree / "model", args, grpc=False), run, stack
            )
        if "kserve" not in skip:
            rows += start(kserve(1, "KServe 0.21 ModelServer, its default: 1 worker"), run, stack)
            rows += start(
                kserve(
                    KSERVE_WORKERS_FOR_THROUGHPUT,
                    f"KServe 0.21 ModelServer, --workers {KSERVE_WORKERS_FOR_THROUGHPUT} (one "
                    "per core: its docs' way to use more of the CPUs)",
                ),
                run,
                stack,
            )
        if "ceiling" not in skip:
            rows += start(ceiling(response_file), run, stack)
            if args.processes > 1:
                rows += start(ceiling(response_file, args.processes), run, stack)
        if "flask" not in skip:
            rows += start(flask_seed(), run, stack)
        measure_interleaved(rows, run)
    write_results(run, limits, costs, comparisons(run, limits, sorted({1, args.processes})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
