"""Average JCT of tiresias, srtf (and friends) vs fifo on the real Microsoft Philly trace.

The Pollux copy of the Philly job log (82,182 jobs after dropping duplicates and zero
durations, Sep-Dec 2017) replayed on a homogeneous cluster of 80 nodes x 8 V100 (640 GPUs).
Why 640: the trace's offered load (sum of GPUs x duration over its 109-day span) is 374 GPUs
on average, so 640 GPUs run at ~58 % average utilisation, like a busy production cluster, while
the busiest weeks (up to ~800 GPUs of offered load) overload it and build the queues in which
scheduling policies differ; the largest jobs (128 GPUs) fit. At 512 GPUs (73 %) FIFO's backlog
from the busy weeks takes weeks to drain (average JCT > 8 days); from 1,024 GPUs up almost nothing
waits and all policies tie. Every policy uses the same best-fit placer; preemption is free
(work is checkpointed at every preemption, no restart overhead) unless ``--checkpoint`` /
``--restart`` say otherwise.

    python -m experiments.philly_policies                      # fifo, srtf, tiresias (+ sjf, gang)
    python -m experiments.philly_policies --nodes 128 --policies fifo tiresias --thresholds 3600
    python -m experiments.philly_policies --nodes 64 80 96 128 --markdown README.md \
        --details docs/policies.md

The trace is ``--trace FILE``, else ``philly-pollux/philly.csv`` in ``--shared`` (default
``$GPUSIM_TRACES``, else ``../shared/traces``). ``--markdown FILE`` writes the table of average
JCTs (one row per cluster size; README: "Results") and one detailed table per size
between the ``philly_policies`` markers of FILE; with ``--details FILE2`` the detailed tables
go between the ``philly_policies_details`` markers of FILE2 instead (docs/policies.md). A few
seconds to a minute per cluster size (five policies; more for the overloaded sizes, where
queues are deep).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from experiments import _cli
from simulator.core.engine import Simulation
from simulator.output import formats as fmt
from simulator.output import metrics
from traces.philly import load as load_philly

NAME = "philly_policies"
POLICIES = ("fifo", "gang", "sjf", "srtf", "tiresias")
"""Policies of the table, each built from ``configs/policy/NAME.yaml`` as the CLI builds it."""


def run(trace: pd.DataFrame, nodes: int, name: str, thresholds=None, **sim) -> dict:
    """Simulate one policy on ``nodes`` nodes of the default cluster; returns the summary.

    Cluster and policy come from ``configs/cluster/default.yaml`` (8 V100 per node, 8 nodes
    per rack) and ``configs/policy/NAME.yaml``: the row is what ``python -m simulator
    +policy=NAME trace=philly trace.path=FILE cluster.num_nodes=NODES`` prints.
    """
    cluster = _cli.configured("cluster", "default", num_nodes=nodes)
    extra = {"thresholds": list(thresholds)} if name == "tiresias" and thresholds else {}
    policy = _cli.configured("policy", name, **extra)
    sim_ = Simulation(trace, cluster, policy, **sim).run()
    out = metrics.summary(sim_)
    out["policy"] = name
    return out


COLUMNS = {
    "avg_jct": "avg JCT s",
    "p50_jct": "p50 JCT s",
    "p99_jct": "p99 JCT s",
    "avg_wait": "avg wait s",
    "preemptions": "preemptions",
    "gpu_utilization": "GPU util",
    "wall_seconds": "wall s",
}


def _cell(key: str, v: float) -> str:
    """A detail-table cell in the simulator's number format (simulator.output.formats)."""
    if key == "preemptions":
        return fmt.count(v)
    if key == "gpu_utilization":
        return fmt.share(v)
    if key == "wall_seconds":
        return f"{v:,.2f}"
    return f"{v:,.0f}"


def _change(v: float, base: float) -> str:
    pct = round((v / base - 1) * 100, 1)
    return "0.0 %" if pct == 0 else f"{pct:+.1f} %".replace("-", "\u2212")


def detail_table(rows: list[dict]) -> str:
    """One row per policy (one cluster size): JCT, wait, preemptions, utilisation, wall."""
    base = next((r["avg_jct"] for r in rows if r["policy"] == "fifo"), None)
    head = ["policy", *(["vs fifo"] if base else []), *COLUMNS.values()]
    out = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        cells = [r["policy"], *([_change(r["avg_jct"], base)] if base else [])]
        cells += [_cell(k, r[k]) for k in COLUMNS]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def jct_table(results: dict[int, list[dict]], policies: list[str]) -> str:
    """Average JCT per cluster size (rows, GPUs) and policy, with the change versus fifo."""
    out = ["| GPUs | " + " | ".join(policies) + " |", "|---|" + "---:|" * len(policies)]
    for nodes, rows in results.items():
        by = {r["policy"]: r["avg_jct"] for r in rows}
        base = by.get("fifo")
        cells = [
            f"{by[p]:,.0f}" if p == "fifo" or not base else f"{by[p]:,.0f} ({_change(by[p], base)})"
            for p in policies
        ]
        out.append(f"| {nodes * 8:,} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = _cli.parser(__doc__, shared=True, name=NAME)
    ap.add_argument("--trace", type=Path, default=None, help="philly.csv (default: in --shared)")
    ap.add_argument(
        "--nodes",
        type=_cli.positive_int,
        nargs="+",
        default=[80],
        help="8-GPU nodes, one or more sizes (default 80 = 640 GPUs; README: 64 80 96 128)",
    )
    ap.add_argument("--max-jobs", type=_cli.positive_int, default=None, help="first N jobs only")
    ap.add_argument(
        "--policies", nargs="+", choices=POLICIES, default=list(POLICIES), metavar="NAME"
    )
    ap.add_argument("--checkpoint", type=float, default=0.0, help="checkpoint interval, s")
    ap.add_argument("--restart", type=float, default=0.0, help="restart overhead, s")
    ap.add_argument(
        "--thresholds",
        type=_cli.positive_float,
        nargs="+",
        help="tiresias queue limits, GPU-s (default 3600)",
    )
    ap.add_argument(
        "--details",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the per-size tables to FILE (between the philly_policies_details markers) "
        "instead of after the summary table",
    )
    args = _cli.parse(ap, argv, NAME)
    if args.details is not None:
        problem = _cli.markdown_problem(args.details, f"{NAME}_details")
        if problem:
            ap.error(problem)
    path = args.trace or _cli.shared_dir(args) / "philly-pollux" / "philly.csv"
    _cli.need(
        path, "the Pollux Philly table", "pass --trace FILE, --shared DIR or set GPUSIM_TRACES"
    )
    t0 = time.perf_counter()
    trace = load_philly(path=path, max_jobs=args.max_jobs).jobs
    print(f"trace: {len(trace):,} jobs, loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    results: dict[int, list[dict]] = {}
    details = []
    for nodes in args.nodes:
        rows = results.setdefault(nodes, [])
        for name in args.policies:
            s = run(
                trace,
                nodes,
                name,
                args.thresholds,
                checkpoint_interval=args.checkpoint,
                restart_overhead=args.restart,
            )
            rows.append(s)
            print(
                f"{nodes} nodes, {name}: avg JCT {s['avg_jct']:,.0f} s ({s['wall_seconds']:.1f} s)",
                flush=True,
            )
        title = f"Philly, {len(trace):,} jobs, {nodes} x 8 V100 ({nodes * 8:,} GPUs):"
        details += [title, detail_table(rows)]
        print(f"\n{title}\n{details[-1]}\n")
    summary = jct_table(results, args.policies)
    print("average JCT (s), change versus fifo")
    print(summary)
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    config = (
        f"Trace: `{path.name}` (Pollux copy of the Philly job log; "
        f"{'the first ' if args.max_jobs else ''}{len(trace):,} jobs). Clusters: "
        f"{', '.join(str(n) for n in args.nodes)} nodes of `cluster=default` (8 V100, 80 "
        "cores and 512 GB per node, 8 nodes per rack). Policies: "
        f"{', '.join(f'`{p}`' for p in args.policies)} with their `configs/policy/` defaults"
        + (f"; tiresias thresholds {args.thresholds} GPU-s" if args.thresholds else "")
        + ". Each cell is what `python -m simulator +policy=NAME trace=philly "
        "trace.path=philly.csv cluster.num_nodes=N` gives"
        + f". Checkpoint interval {args.checkpoint:g} s, restart overhead {args.restart:g} s"
        " (0 = free preemption); deterministic (no seed). Average JCT in seconds and change "
        "versus `fifo`:"
    )
    if args.details is None:
        body = _cli.markdown_block(f"experiments.{NAME}", argv, config, summary, *details)
    else:
        body = _cli.markdown_block(f"experiments.{NAME}", argv, config, summary)
        more = _cli.markdown_block(f"experiments.{NAME}", argv, config, *details)
        command = " ".join([f"python -m experiments.{NAME}", *(argv or [])])
        _cli.write_markdown(args.details, f"{NAME}_details", more, command=command)
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
