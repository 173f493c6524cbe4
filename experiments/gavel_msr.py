"""Heterogeneity-aware vs agnostic on Gavel's 300:300:300 cluster, with a Gavel msr trace.

Gavel (OSDI'20) reports that its heterogeneity-aware policies cut average JCT against their
heterogeneity-agnostic versions. This replays one of Gavel's Philly-derived msr traces
(``msr/seed=0/VC.trace``, durations on the V100 from ``simulation_throughputs.json``) on the
heterogeneous spec of ``msr/cluster_specs_heterogeneous.json`` (300 V100, 300 P100, 300 K80,
one GPU per server: ``cluster=gavel_hetero``), with speeds from the same table, under:

- ``gavel_maxmin`` (aware: the LP sees each job's speed on each type);
- ``gavel_maxmin heterogeneity_aware=false`` (agnostic: one pooled type, time spread over the
  types by their size, as Gavel's baselines);
- ``hetero_greedy``::

    python -m experiments.gavel_msr [--vc 6214e9] [--max-jobs 300] [--markdown FILE]

Rounds of 360 s (Gavel's default). The first ``--max-jobs`` jobs of the VC (default 300: the
agnostic run holds a round every 360 s for the whole makespan, about two minutes for 300
jobs on one core). Inputs: ``gavel-philly-derived/`` in ``--shared``.
"""

from __future__ import annotations

import time

from experiments import _cli
from simulator.core.engine import Simulation
from simulator.models.speed import SpeedModel
from simulator.output import metrics
from traces.gavel import load as load_gavel

NAME = "gavel_msr"
FOLDER = "gavel-philly-derived"
RUNS = (
    ("gavel_maxmin", {}, "aware"),
    ("gavel_maxmin", {"heterogeneity_aware": False}, "agnostic"),
    ("hetero_greedy", {}, "speeds (no LP)"),
)


def run(trace, table, name: str, options: dict) -> dict:
    """One policy on ``cluster=gavel_hetero`` with speeds from ``table``; its summary."""
    cluster = _cli.configured("cluster", "gavel_hetero")
    policy = _cli.configured("policy", name, **options)
    sim = Simulation(trace, cluster, policy, speed=SpeedModel("V100", table)).run()
    return metrics.summary(sim)


def table(rows: list[tuple[str, str, dict]]) -> str:
    """Markdown: one row per run, JCT change against the agnostic run."""
    base = next(s["avg_jct"] for _, kind, s in rows if kind == "agnostic")
    lines = [
        "| policy | sees | avg JCT (h) | vs agnostic | p99 JCT (h) | makespan (h) | "
        "util V100 / P100 / K80 (%) | wall (s) |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, kind, s in rows:
        u = s["gpu_type_utilization"]
        util = " / ".join(f"{100 * u[m]:.1f}" for m in ("V100", "P100", "K80"))
        lines.append(
            f"| `{name}` | {kind} | {s['avg_jct'] / 3600:,.1f} | "
            f"{100 * (s['avg_jct'] / base - 1):+.1f} % | {s['p99_jct'] / 3600:,.1f} | "
            f"{s['makespan'] / 3600:,.1f} | {util} | {s['wall_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = _cli.parser(__doc__, shared=True, name=NAME)
    ap.add_argument("--vc", default="6214e9", help="Philly VC id of the msr trace (6214e9)")
    ap.add_argument("--max-jobs", type=_cli.positive_int, default=300, help="first N jobs")
    args = _cli.parse(ap, argv, NAME)
    folder = _cli.shared_dir(args) / FOLDER
    path = _cli.need(folder / "msr" / "seed=0" / f"{args.vc}.trace", "the Gavel msr trace")
    tput = _cli.need(folder / "simulation_throughputs.json", "Gavel's throughput table")
    t0 = time.perf_counter()
    trace = load_gavel(path, throughputs=tput, max_jobs=args.max_jobs)
    jobs = trace.jobs
    rows = [(name, kind, run(jobs, tput, name, opts)) for name, opts, kind in RUNS]
    dropped = sum(v for k, v in trace.report.items() if k.startswith("dropped"))
    config = (
        f"First {len(jobs)} jobs of `msr/seed=0/{args.vc}.trace` ({dropped} rows without a "
        "throughput dropped by the loader), `cluster=gavel_hetero` (300 V100 + 300 P100 + "
        "300 K80, 1 GPU per server), `sim.speed_reference=V100`, speeds from "
        "`simulation_throughputs.json`, rounds of 360 s, no preemption cost."
    )
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, table(rows))
    print(body)
    print(f"({time.perf_counter() - t0:.1f} s)")
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
