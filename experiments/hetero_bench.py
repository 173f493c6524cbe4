"""Benchmark: heterogeneous runs (GPU-type speeds on) under the heterogeneity-aware policies.

Each run is a separate ``python -m simulator`` process (what a user runs), timed from start to
exit; ``simulate s`` is the engine's own time (``summary.json`` ``wall_seconds``). The
workload is ``trace=synthetic`` (Poisson arrivals, lognormal durations with a median of 30
min, gangs of 1-64 GPUs, offered load 90 % of 2,560 V100 GPUs: about 83 % of the cluster's
capacity in V100 terms with the default speeds, 5.06 per H100 and 2.38 per A100) on
``cluster=hetero`` (256 H100, 512 A100-80GB, 256 V100), with ``sim.speed_reference=V100``
and the default speeds from the GPU table (``compute_fraction`` 0.5)::

    python -m experiments.hetero_bench [--jobs 100000] [--gavel-jobs 10000] [--markdown FILE]

Rows: ``hetero_greedy`` and ``gang`` (arrival order, any type: heterogeneity-blind) at
``--jobs`` with speeds on; ``gang`` with speeds off (every job at its V100 duration on every
type, so that cluster is overloaded: its JCT is not comparable, only its speed); the three
Gavel round policies at ``--gavel-jobs`` (one LP per change of the active set, so their cost
grows with active jobs x types).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments import _cli

NAME = "hetero_bench"
BASE = [
    "trace=synthetic",
    "trace.cluster_gpus=2560",
    "cluster=hetero",
    "sim.progress=false",
    "print_summary=false",
]
SPEEDS = ["sim.speed_reference=V100"]


def timed(overrides: list[str], timeout: float) -> dict:
    """Run ``python -m simulator OVERRIDES`` in a child; its wall seconds and summary."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "simulator", *overrides, f"hydra.run.dir={out}"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        summary = json.loads((Path(out) / "summary.json").read_text())
    return {"wall": wall, "summary": summary}


def row(label: str, jobs: int, speeds: bool, r: dict) -> str:
    s = r["summary"]
    util = s.get("gpu_type_utilization") or {}
    shown = " / ".join(f"{100 * v:.0f}" for v in util.values()) if util else "-"
    return (
        f"| `{label}` | {jobs:,} | {'on' if speeds else 'off'} | {r['wall']:.1f} | "
        f"{s['wall_seconds']:.1f} | {jobs / max(s['wall_seconds'], 1e-9):,.0f} | "
        f"{s['avg_jct']:,.0f} | {shown} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = _cli.parser(__doc__, name=NAME)
    ap.add_argument("--jobs", type=_cli.positive_int, default=100_000, help="hetero_greedy jobs")
    ap.add_argument("--gavel-jobs", type=_cli.positive_int, default=10_000, help="Gavel jobs")
    ap.add_argument("--timeout", type=_cli.positive_float, default=1800.0, help="per run, s")
    args = _cli.parse(ap, argv, NAME)
    plan = [
        ("hetero_greedy", args.jobs, True),
        ("gang", args.jobs, True),
        ("gang", args.jobs, False),
        ("gavel_maxsum", args.gavel_jobs, True),
        ("gavel_maxmin", args.gavel_jobs, True),
        ("gavel_ftf", args.gavel_jobs, True),
    ]
    lines = [
        "| policy | jobs | speeds | process s | simulate s | jobs/s | avg JCT s | "
        "util H100 / A100 / V100 (%) |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for policy, jobs, speeds in plan:
        over = [f"+policy={policy}", f"trace.num_jobs={jobs}", *BASE, *(SPEEDS if speeds else [])]
        lines.append(row(policy, jobs, speeds, timed(over, args.timeout)))
        print(lines[-1], file=sys.stderr)
    config = (
        "`trace=synthetic trace.cluster_gpus=2560 cluster=hetero` (256 H100 + 512 A100-80GB + "
        "256 V100), speeds on = `sim.speed_reference=V100` with the GPU-table default "
        "(`compute_fraction` 0.5); each row is one `python -m simulator` process."
    )
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, "\n".join(lines))
    print(body)
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
