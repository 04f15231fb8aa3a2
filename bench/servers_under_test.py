"""The servers under test, and how the bench runs them. How to start each one (ours in one
process and in several, ours at an older commit through a temporary git worktree, ours with a
free model, KServe's ModelServer, the transport ceiling, the Flask seed), all on 127.0.0.1 on
free ports; running one for the length of a run (waiting until its status endpoint answers,
checking its answers, stopping it with SIGTERM); and what is read from /proc about its process
tree: CPU time, to wait until it is idle after a measurement, and peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
from bench_paths import MODEL_BASE_PATH, MODEL_DIR, ROOT

KSERVE_PYTHON = ROOT / "bench" / ".venv-kserve" / "bin" / "python"
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
# A server can stay busy after its client stops: the seed's gunicorn works through the requests
# queued in its listen backlog for seconds, which fell on the next row's measurement. Each
# measurement now waits until the server it measured is idle.
IDLE_CPU_FRACTION = 0.05
IDLE_WINDOW_S = 0.5
IDLE_WAIT_MAX_S = 60.0


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
        [
            sys.executable,
            str(ROOT / "bench" / "transport_ceiling.py"),
            f"--response-file={response_file}",
            f"--processes={processes}",
            f"--port={port}",
        ],
        {"PYTHONPATH": str(MODEL_DIR)},
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
        # gunicorn calls the factory with this literal argument in each worker.
        f"flask_baseline:create_app({str(version_dir)!r})",
    ]
    env = {"TF_CPP_MIN_LOG_LEVEL": "1"}
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
