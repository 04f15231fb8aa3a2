"""Benchmark: our serving runtime against Flask + gunicorn + Keras ``predict`` per request.

Starts each server on 127.0.0.1 (one at a time, so they never compete for the 2 cores),
drives it with closed-loop clients at each concurrency for a fixed time, single-image
requests, and writes bench/results/serving.json and serving.md. See bench/README.md.

    model/.venv/bin/python bench/serving_bench.py [--duration 10] [--concurrency 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import numpy as np
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "model"
MODEL_BASE_PATH = MODEL_DIR / "export" / "digits"
RESULTS_DIR = ROOT / "bench" / "results"
PREDICT = "/v1/models/digits:predict"
JSON_HEADERS = {"content-type": "application/json"}
STATUS = "/v1/models/digits"
STARTUP_TIMEOUT_S = 180.0
# One gunicorn sync worker per core: TensorFlow already spreads one predict over the cores,
# and every extra worker is another full copy of TensorFlow in memory.
GUNICORN_WORKERS = 2


@dataclass(frozen=True)
class Measurement:
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class ServerResult:
    name: str
    description: str
    peak_rss_mb: float
    measurements: list[Measurement]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (gunicorn's workers), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        child_pids = [int(child) for child in children.read_text().split()]
    except FileNotFoundError:
        return []
    return [pid, *(descendant for child in child_pids for descendant in process_tree(child))]


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
def running(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    """Start a server, wait until its status endpoint answers 200, yield its pid, stop it."""
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        asyncio.run(wait_ready(f"http://127.0.0.1:{port}", process))
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode} during startup")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base_url + STATUS) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise SystemExit(f"server at {base_url} not ready after {STARTUP_TIMEOUT_S}s")


def request_bodies() -> tuple[list[bytes], np.ndarray]:
    digits = load_digits()
    bodies = [json.dumps({"instances": [image.tolist()]}).encode() for image in digits.images]
    return bodies, digits.target


async def check_answers(base_url: str, bodies: list[bytes], labels: np.ndarray) -> float:
    """Accuracy over 200 requests: both servers must give the same, correct answers."""
    correct = 0
    count = 200
    async with aiohttp.ClientSession(headers=JSON_HEADERS) as session:
        for body, label in zip(bodies[:count], labels[:count], strict=True):
            async with session.post(base_url + PREDICT, data=body) as response:
                answer = await response.json()
                correct += answer["predictions"][0]["classes"] == label
    return correct / count


async def closed_loop(
    base_url: str, bodies: list[bytes], concurrency: int, duration_s: float, warmup_s: float
) -> Measurement:
    """``concurrency`` clients, each sending its next request as soon as the last answered."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    url = base_url + PREDICT
    started = time.perf_counter()
    measure_from = started + warmup_s
    stop_at = measure_from + duration_s

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        sent = index
        while (now := time.perf_counter()) < stop_at:
            body = bodies[sent % len(bodies)]
            sent += concurrency
            ok = False
            try:
                async with session.post(url, data=body, headers=JSON_HEADERS) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                pass
            end = time.perf_counter()
            if measure_from <= end <= stop_at:
                if ok:
                    latencies.append(end - now)
                else:
                    errors += 1

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(index, session) for index in range(concurrency)))
    completed = np.array(latencies) * 1000
    return Measurement(
        concurrency=concurrency,
        duration_s=duration_s,
        requests=len(latencies),
        errors=errors,
        requests_per_s=round(len(latencies) / duration_s, 1),
        p50_ms=round(float(np.percentile(completed, 50)), 2) if len(completed) else float("nan"),
        p99_ms=round(float(np.percentile(completed, 99)), 2) if len(completed) else float("nan"),
    )


def measure(
    name: str,
    description: str,
    *,
    command: list[str],
    env: dict[str, str],
    port: int,
    args: argparse.Namespace,
) -> ServerResult:
    bodies, labels = request_bodies()
    base_url = f"http://127.0.0.1:{port}"
    print(f"{name}: starting ({description})", flush=True)
    with running(command, env, port, args.log_dir / f"{name}.log") as pid:
        accuracy = asyncio.run(check_answers(base_url, bodies, labels))
        if accuracy < 0.95:
            raise SystemExit(f"{name} answers wrongly: accuracy {accuracy:.3f}")
        measurements = []
        for concurrency in args.concurrency:
            result = asyncio.run(
                closed_loop(base_url, bodies, concurrency, args.duration, args.warmup)
            )
            print(f"{name}: {result}", flush=True)
            measurements.append(result)
        rss = round(peak_rss_mb(pid), 1)
    return ServerResult(name, description, rss, measurements)


def ours(args: argparse.Namespace) -> ServerResult:
    port = free_port()
    env = {
        "PYTHONPATH": str(MODEL_DIR),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_BASE_PATH": str(MODEL_BASE_PATH),
        "MAX_BATCH_SIZE": str(args.max_batch_size),
        "BATCH_TIMEOUT_MICROS": str(args.batch_timeout_micros),
        "LOG_LEVEL": "warning",
    }
    description = (
        f"python -m serving: 1 process, uvicorn+uvloop, MAX_BATCH_SIZE={args.max_batch_size}, "
        f"BATCH_TIMEOUT_MICROS={args.batch_timeout_micros}"
    )
    command = [sys.executable, "-m", "serving"]
    return measure("ours", description, command=command, env=env, port=port, args=args)


def baseline(args: argparse.Namespace) -> ServerResult:
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
    description = f"Flask under gunicorn, {GUNICORN_WORKERS} sync workers, Keras model.predict"
    return measure("baseline", description, command=command, env=env, port=port, args=args)


def ratio(ours_value: float, baseline_value: float) -> float:
    return round(ours_value / baseline_value, 2) if baseline_value else float("inf")


def write_results(results: list[ServerResult], args: argparse.Namespace) -> None:
    by_name = {result.name: result for result in results}
    ratios = [
        {
            "concurrency": mine.concurrency,
            "throughput_ours_over_baseline": ratio(mine.requests_per_s, theirs.requests_per_s),
            "p99_ours_over_baseline": ratio(mine.p99_ms, theirs.p99_ms),
        }
        for mine, theirs in zip(
            by_name["ours"].measurements, by_name["baseline"].measurements, strict=True
        )
    ]
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine skews both servers' numbers: recorded, not hidden.
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup},
        "servers": [asdict(result) for result in results],
        "ratios": ratios,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "serving.json").write_text(json.dumps(document, indent=2) + "\n")

    lines = [
        f"Closed loop, single-image requests, {args.duration:g} s per concurrency after "
        f"{args.warmup:g} s warm-up, {os.cpu_count()} CPUs, client on the same machine, "
        f"1-minute load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| concurrency | server | req/s | p50 ms | p99 ms | errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for index, concurrency in enumerate(args.concurrency):
        for result in results:
            m = result.measurements[index]
            lines.append(
                f"| {concurrency} | {result.name} | {m.requests_per_s:.1f} | {m.p50_ms:.2f} | "
                f"{m.p99_ms:.2f} | {m.errors} |"
            )
    lines += [
        "",
        "| concurrency | throughput ours/baseline | p99 ours/baseline |",
        "| ---: | ---: | ---: |",
        *(
            f"| {r['concurrency']} | {r['throughput_ours_over_baseline']:.2f}x | "
            f"{r['p99_ours_over_baseline']:.2f}x |"
            for r in ratios
        ),
        "",
        "| server | peak RSS (MiB, sum over processes) | configuration |",
        "| --- | ---: | --- |",
        *(f"| {r.name} | {r.peak_rss_mb:.1f} | {r.description} |" for r in results),
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
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=concurrency_list, default=[1, 8, 32])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    # Server logs are for debugging a run, not results to commit.
    args.log_dir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    print(f"server logs: {args.log_dir}", flush=True)
    results = [ours(args), baseline(args)]
    write_results(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
