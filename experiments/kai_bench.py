"""Benchmark of ``+policy=kai``: a 100k-job run on a synthetic Kubernetes-like cluster.

Cluster: ``--nodes`` x 8 H100 (default 128 nodes, 1,024 GPUs). KAI queues: two departments
(``research`` quota 640 GPUs, weight 2; ``production`` quota 384, weight 1, priority 200) with
two teams each (``llm`` 384 / ``vision`` 256; ``serving`` 256 with limit 512 / ``batch`` 128),
CPU and memory unlimited. Workload (``traces.synthetic``): Poisson arrivals at 90 % offered
load, lognormal durations (median 30 min, sigma 1.5), gang sizes 1-64 GPUs shaped as pods of
at most 8 GPUs (a 32-GPU job is 4 pods x 8), queues drawn 40/25/15/20 %, priority classes
train 80 %, build 10 %, inference 10 % (seeded). The policy runs every KAI action (allocate,
consolidation, reclaim, preempt) at every pass.

    python -m experiments.kai_bench [--jobs 100000] [--nodes 128] [--markdown FILE]

Prints the engine's wall seconds (building the simulation and running it; not Python start-up
or writing results), jobs per second, the process's peak resident memory, and what the actions
did. About 10 min for 100k jobs on one core (Python pass).
"""

from __future__ import annotations

import math
import resource
import time

import numpy as np
import pandas as pd

from experiments import _cli
from policies.kai.objects import DEFAULT_PRIORITY_CLASSES, KaiConfig, KaiQueue, ResourceQuota
from policies.kai.policy import KaiPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.core.jobs import Status
from traces.synthetic import generate

NAME = "kai_bench"
GPUS_PER_NODE = 8
LEAVES = {"llm": 0.40, "vision": 0.25, "serving": 0.15, "batch": 0.20}
CLASSES = {50: 0.8, 100: 0.1, 125: 0.1}


def config(total_gpus: int) -> KaiConfig:
    """The queue tree, quotas scaled to ``total_gpus`` (the default cluster: 1,024 GPUs)."""
    f = total_gpus / 1024.0
    free = ResourceQuota(-1.0, 1.0, -1.0)

    def queue(name, parent, quota, weight, limit=-1.0, priority=100, i=0):
        gpu = ResourceQuota(round(quota * f), weight, -1.0 if limit < 0 else round(limit * f))
        res = {"gpu": gpu, "cpu": free, "memory": free}
        return KaiQueue(name, parent, priority, res, created=f"2025-01-01T00:00:0{i}Z")

    qs = [
        queue("research", "", 640, 2, i=0),
        queue("production", "", 384, 1, priority=200, i=1),
        queue("llm", "research", 384, 2, i=2),
        queue("vision", "research", 256, 1, i=3),
        queue("serving", "production", 256, 1, limit=512, i=4),
        queue("batch", "production", 128, 1, i=5),
    ]
    return KaiConfig({q.name: q for q in qs}, dict(DEFAULT_PRIORITY_CLASSES))


def workload(num_jobs: int, nodes: int, seed: int) -> pd.DataFrame:
    """The synthetic trace with pod shapes, queues and priorities (seeded)."""
    trace = generate(num_jobs, nodes * GPUS_PER_NODE, load=0.9, seed=seed)
    rng = np.random.default_rng(seed + 1)
    gpus = trace["num_gpus"].to_numpy()
    trace["pods"] = np.maximum(1, np.ceil(gpus / GPUS_PER_NODE)).astype(int)
    trace["queue"] = rng.choice(list(LEAVES), size=len(trace), p=list(LEAVES.values()))
    trace["priority"] = rng.choice(list(CLASSES), size=len(trace), p=list(CLASSES.values()))
    return trace


def experiment(num_jobs: int, nodes: int, seed: int) -> dict:
    """One run: wall seconds, jobs/s, peak RSS and what the actions did."""
    trace = workload(num_jobs, nodes, seed)
    cluster = ClusterSpec.homogeneous(nodes, GPUS_PER_NODE, "H100", name="kai-bench")
    policy = KaiPolicy(config(cluster.total_gpus))
    t0 = time.perf_counter()
    sim = Simulation(trace, cluster, policy).run()
    wall = time.perf_counter() - t0
    jobs = sim.jobs
    fin = jobs.status == Status.FINISHED
    return {
        "jobs": num_jobs,
        "gpus": cluster.total_gpus,
        "wall": wall,
        "rate": num_jobs / wall,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "finished": int(fin.sum()),
        "stuck": int(((jobs.status == Status.UNFINISHED) & np.isnan(jobs.start)).sum()),
        "wait": float(np.nanmean((jobs.start - jobs.submit)[fin])),
        "preemptions": int(jobs.preemptions.sum()),
        "migrations": int(jobs.migrations.sum()),
        **{f"by_{k}": v for k, v in policy.counts.items()},
    }


ROWS = [
    ("jobs", "jobs", "{:,}"),
    ("GPUs", "gpus", "{:,}"),
    ("wall seconds (build + simulate)", "wall", "{:,.1f}"),
    ("jobs / s", "rate", "{:,.0f}"),
    ("peak resident memory", "peak_mb", "{:,.0f} MB"),
    ("finished", "finished", "{:,}"),
    ("never started (e.g. non-preemptible, larger than its queue's quota)", "stuck", "{:,}"),
    ("mean wait", "wait", "{:,.0f} s"),
    ("started by allocate", "by_allocate", "{:,}"),
    ("started by consolidation", "by_consolidate", "{:,}"),
    ("started by reclaim", "by_reclaim", "{:,}"),
    ("started by preempt", "by_preempt", "{:,}"),
    ("evictions (reclaim + preempt)", "by_evicted", "{:,}"),
    ("migrations (consolidation)", "by_migrated", "{:,}"),
]


def table(row: dict) -> str:
    """The result as a two-column Markdown table."""
    out = ["| | kai |", "|---|---:|"]
    out += [f"| {label} | {fmt.format(row[k])} |" for label, k, fmt in ROWS]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(__doc__, name=NAME)
    p.add_argument("--jobs", type=_cli.positive_int, default=100_000, help="jobs to simulate")
    p.add_argument("--nodes", type=_cli.positive_int, default=128, help="8-GPU nodes")
    p.add_argument("--seed", type=int, default=0, help="seed of the workload")
    args = _cli.parse(p, argv, NAME)
    row = experiment(args.jobs, args.nodes, args.seed)
    text = table(row)
    print(text)
    cfg = (
        f"Cluster: {args.nodes} nodes x 8 H100 ({row['gpus']:,} GPUs); workload: "
        f"{args.jobs:,} synthetic jobs (seed {args.seed}, 90 % offered load, pods of at most "
        "8 GPUs), KAI queues and priority classes as in the script's docstring. Peak memory is "
        f"the whole process's maximum RSS. {math.ceil(args.jobs / 1000)}k-job run."
    )
    _cli.emit(args, NAME, _cli.markdown_block(f"experiments.{NAME}", argv, cfg, text), argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
