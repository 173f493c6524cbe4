"""Replay the real Philly and Alibaba openb traces under fifo and gang, next to what they record.

Usage::

    python -m experiments.replay_real [--shared DIR] [--nodes 80 96 128] [--max-jobs N]
        [--markdown FILE]

Philly (82,182 jobs after dropping 65 duplicate rows) runs on 80, 96 and 128 nodes x 8 GPUs:
80 is the smallest 8-GPU-node cluster that carries the busiest month's demand (589 GPUs on
average, October 2017) below 95 % load. openb (`openb_pod_list_default.csv`, 7,255 scheduled
pods, the 31 pods created before the dense window clipped to its start) runs on its own node
list (1,213 nodes, 6,212 GPUs). Next to the simulated waits the script prints what the
traces themselves record: openb's ``scheduled_time - creation_time`` and the Philly queueing
delays published with AcmeTrace (``cluster_summary.csv``, full raw Philly trace).

About 10 s (2 s of simulation, the wall column; a first run also compiles, 30-70 s).
``--markdown FILE`` writes the table and the recorded figures between the ``replay_real``
markers of FILE (README: "Real traces replayed"). Needs ``DIR/philly-pollux/philly.csv`` and
``DIR/alibaba-openb-gpu-v2023/openb_pod_list_default.csv``; ``DIR/acmetrace`` is optional.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import _cli
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output import metrics
from traces import alibaba_openb, philly
from traces.inventories import alibaba_openb as openb_cluster

NAME = "replay_real"


def run(trace: pd.DataFrame, cluster: ClusterSpec, policy) -> dict:
    t0 = time.perf_counter()
    sim = Simulation(trace, cluster, policy).run()
    s = metrics.summary(sim)
    s["wall"] = time.perf_counter() - t0
    s["span_days"] = float(trace["submit_time"].max() - trace["submit_time"].min()) / 86400
    return s


def table(rows: list[tuple[str, str, dict]]) -> str:
    out = [
        "| trace | policy | jobs | span (days) | avg JCT (s) | p99 JCT (s) | avg wait (s) | "
        "p99 wait (s) | GPU util | wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for trace, policy, s in rows:
        out.append(
            f"| {trace} | {policy} | {s['jobs_finished']:,} | {s['span_days']:.1f} | "
            f"{s['avg_jct']:,.0f} | {s['p99_jct']:,.0f} | {s['avg_wait']:,.0f} | "
            f"{s['p99_wait']:,.0f} | {s['gpu_utilization']:.3f} | {s['wall']:.1f} |"
        )
    return "\n".join(out)


def recorded_openb_wait(path: Path) -> tuple[float, float, float]:
    """Mean, median and p99 of ``scheduled_time - creation_time`` over scheduled pods (s)."""
    raw = pd.read_csv(path, usecols=["creation_time", "scheduled_time"])
    wait = (raw["scheduled_time"] - raw["creation_time"]).dropna().to_numpy()
    return float(wait.mean()), float(np.median(wait)), float(np.percentile(wait, 99))


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(__doc__, shared=True, name=NAME)
    p.add_argument(
        "--nodes",
        type=_cli.positive_int,
        nargs="+",
        default=[80, 96, 128],
        help="Philly cluster sizes, nodes of 8 V100 (default 80 96 128)",
    )
    p.add_argument(
        "--max-jobs", type=_cli.positive_int, default=None, help="first N jobs of each trace"
    )
    args = _cli.parse(p, argv, NAME)
    shared = _cli.shared_dir(args)
    philly_csv = _cli.need(shared / "philly-pollux" / "philly.csv", "the Pollux Philly table")
    openb_csv = _cli.need(
        shared / "alibaba-openb-gpu-v2023" / "openb_pod_list_default.csv", "the openb pod list"
    )
    rows = []
    ph = philly.load(path=str(philly_csv), max_jobs=args.max_jobs)
    for nodes in args.nodes:
        # built as `python -m simulator cluster.num_nodes=N +policy=NAME` builds them
        ph_cluster = _cli.configured("cluster", "default", num_nodes=nodes)
        for policy in (_cli.configured("policy", "fifo"), _cli.configured("policy", "gang")):
            rows.append(
                (f"Philly ({nodes} x 8 GPUs)", policy.name, run(ph.jobs, ph_cluster, policy))
            )
            print(rows[-1][0], rows[-1][1], f"{rows[-1][2]['wall']:.1f} s", flush=True)
    ob = alibaba_openb.load(path=str(openb_csv), dense_window="clip", max_jobs=args.max_jobs)
    ob_cluster = openb_cluster()
    for policy in (_cli.configured("policy", "fifo"), _cli.configured("policy", "gang")):
        rows.append(
            (
                f"openb default ({ob_cluster.num_nodes:,} nodes)",
                policy.name,
                run(ob.jobs, ob_cluster, policy),
            )
        )
        print(rows[-1][0], rows[-1][1], f"{rows[-1][2]['wall']:.1f} s", flush=True)
    recorded = [f"Philly loader report: {ph.report}; openb loader report: {ob.report}."]
    mean, med, p99 = recorded_openb_wait(openb_csv)
    recorded.append(
        f"openb recorded wait (scheduled - creation, scheduled pods): mean {mean:,.0f} s, "
        f"median {med:,.0f} s, p99 {p99:,.0f} s."
    )
    summary = shared / "acmetrace" / "cluster_summary.csv"
    if summary.is_file():
        acme = pd.read_csv(summary).set_index("id")
        recorded.append(
            f"Philly recorded queueing (AcmeTrace, all {acme.loc['Philly', 'gpu_job_num']:,} "
            f"GPU jobs of the raw trace): mean {acme.loc['Philly', 'avg_que_time_gpu']:,.0f} s, "
            f"median {acme.loc['Philly', 'med_que_time_gpu']:,.0f} s."
        )
    print()
    print(table(rows))
    print()
    print("\n".join(recorded))
    config = (
        f"Traces: `philly-pollux/philly.csv` ({'the first ' if args.max_jobs else ''}"
        f"{len(ph.jobs):,} jobs) on {', '.join(str(n) for n in args.nodes)} nodes x 8 V100 "
        "(`cluster=default` with `cluster.num_nodes=N`: 80 cores, 512 GB, 8 nodes per rack); "
        f"`alibaba-openb-gpu-v2023/openb_pod_list_default.csv` ("
        f"{'the first ' if args.max_jobs else ''}{len(ob.jobs):,} pods, "
        f"`dense_window=clip`) on its own inventory ({ob_cluster.describe()}). Policies `fifo` "
        "and `gang` as `configs/policy/` sets them (`gang`: `starvation_timeout=3600`); "
        "deterministic (no seed)."
    )
    body = _cli.markdown_block(
        f"experiments.{NAME}", argv, config, table(rows), "\n".join(f"- {r}" for r in recorded)
    )
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
