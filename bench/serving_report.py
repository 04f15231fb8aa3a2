"""The serving benchmark's report: each of ours compared with KServe's best configuration and
its default, with the transport ceiling of the same process count and with the in-process
limit; the issue's goals checked for each; and the results written as serving.json and
serving.md (the tables, also printed).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from typing import Any

from app_cost import Costs
from in_process import in_process_key
from load_clients import Measurement, Run, ServerResult
from servers_under_test import FREE_MODEL, ceiling_name, ours_name


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
