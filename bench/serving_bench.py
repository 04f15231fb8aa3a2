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
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from app_cost import app_costs
from bench_paths import MODEL_DIR, RESULTS_DIR
from in_process import in_process_limits, one_answer
from load_clients import GHZ, WRK, Run, measure_interleaved, start
from servers_under_test import (
    KSERVE_PYTHON,
    KSERVE_WORKERS_FOR_THROUGHPUT,
    ceiling,
    checkout,
    flask_seed,
    free_model,
    kserve,
    ours,
    ours_name,
)
from serving_report import comparisons, write_results
from workload import request_bodies, write_grpc_files


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
