"""Benchmark: a 100k-job run under ``kueue`` (Kueue's admission driving the engine).

``python -m experiments.kueue_bench`` builds, in this process, a Kubernetes cluster of
``--nodes`` x 8-GPU nodes (half labelled H100, half A100: two ResourceFlavors), four
ClusterQueues in one cohort (each nominal 1/4 of both flavors, two BestEffortFIFO and two
StrictFIFO, with borrowing and lending limits, reclaim and within-queue preemption), and a
synthetic workload (``traces.synthetic``: Poisson arrivals at ``--load`` offered load (0.9),
lognormal durations with median 30 min, 1-64 GPUs as pods of at most 8 GPUs, priorities 0-2,
spread over the four LocalQueues). It prints the wall seconds of the simulation, jobs per
second and the
peak resident memory of the process, and the run's outcome (admissions, preemptions,
waitForPodsReady evictions, mean wait)::

    python -m experiments.kueue_bench [--jobs 100000] [--nodes 128] [--load 0.9] [--markdown F]

``--markdown FILE`` writes the table between the ``kueue_bench`` markers of FILE
(docs/kubernetes.md, "Kueue: performance").
"""

from __future__ import annotations

import json
import resource
import time

import numpy as np
import pandas as pd
import yaml

from experiments import _cli
from policies.kueue.objects import parse_kueue_config
from policies.kueue.policy import KueuePolicy
from simulator.core.engine import Simulation
from simulator.k8s.manifests import parse_manifests
from simulator.k8s.nodes import nodes_from_manifests
from traces.synthetic import generate

NAME = "kueue_bench"
GPUS = 8
FLAVORS = {"h100": "NVIDIA-H100-80GB-HBM3", "a100": "NVIDIA-A100-SXM4-80GB"}
QUEUES = ("team-a", "team-b", "team-c", "team-d")


def cluster(nodes: int):
    """``nodes`` x 8-GPU nodes, the first half H100, the rest A100 (GPU feature discovery)."""
    items = []
    for i in range(nodes):
        product = FLAVORS["h100"] if i < nodes // 2 else FLAVORS["a100"]
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"node-{i:04d}",
                    "labels": {
                        "kubernetes.io/hostname": f"node-{i:04d}",
                        "nvidia.com/gpu.product": product,
                        "topology.kubernetes.io/rack": f"rack-{i // 8}",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "224", "memory": "2000Gi", "nvidia.com/gpu": str(GPUS)},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    return nodes_from_manifests(parse_manifests(text, "bench-nodes"), "bench-nodes")


def kueue_objects(nodes: int) -> str:
    """The Kueue objects of the benchmark as YAML (a ``v1 List``)."""
    per_flavor = nodes // 2 * GPUS
    share = per_flavor // len(QUEUES)
    items: list[dict] = [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta1",
            "kind": "ResourceFlavor",
            "metadata": {"name": fl},
            "spec": {"nodeLabels": {"nvidia.com/gpu.product": product}},
        }
        for fl, product in FLAVORS.items()
    ]
    items.append(
        {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Cohort", "metadata": {"name": "org"}}
    )
    for k, q in enumerate(QUEUES):
        flavors = [
            {
                "name": fl,
                "resources": [
                    {
                        "name": "nvidia.com/gpu",
                        "nominalQuota": share,
                        "borrowingLimit": 2 * share,
                        "lendingLimit": share // 2 if k % 2 else share,
                    }
                ],
            }
            for fl in (FLAVORS if k < 2 else reversed(FLAVORS))
        ]
        items.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta1",
                "kind": "ClusterQueue",
                "metadata": {"name": q},
                "spec": {
                    "cohort": "org",
                    "queueingStrategy": "BestEffortFIFO" if k % 2 == 0 else "StrictFIFO",
                    "preemption": {
                        "withinClusterQueue": "LowerPriority",
                        "reclaimWithinCohort": "Any" if k < 2 else "LowerPriority",
                    },
                    "resourceGroups": [
                        {"coveredResources": ["nvidia.com/gpu"], "flavors": flavors}
                    ],
                },
            }
        )
        items.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta1",
                "kind": "LocalQueue",
                "metadata": {"name": f"{q}-queue", "namespace": q},
                "spec": {"clusterQueue": q},
            }
        )
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})


def workload(jobs: int, nodes: int, seed: int, load: float = 0.9) -> pd.DataFrame:
    """Synthetic jobs with pod shapes (<= 8 GPUs per pod), LocalQueues and priorities."""
    df = generate(jobs, nodes * GPUS, load=load, seed=seed)
    rng = np.random.default_rng(seed + 1)
    q = rng.integers(0, len(QUEUES), len(df))
    df["queue"] = [f"{QUEUES[i]}-queue" for i in q]
    df["job_id"] = [f"{QUEUES[i]}/job-{n}" for n, i in enumerate(q)]
    df["pods"] = np.maximum(1, df["num_gpus"].to_numpy() // GPUS)
    df["priority"] = rng.integers(0, 3, len(df))
    return df


def run(jobs: int, nodes: int, seed: int, load: float = 0.9) -> dict:
    """One run; wall seconds of building + simulating, jobs/s, peak RSS and the outcome."""
    df = workload(jobs, nodes, seed, load)
    spec = cluster(nodes)
    cfg = parse_kueue_config(parse_manifests(kueue_objects(nodes), "bench-kueue"), "bench-kueue")
    t0 = time.perf_counter()
    pol = KueuePolicy(kueue_config=cfg)
    sim = Simulation(df, spec, pol, seed=seed).run()
    wall = time.perf_counter() - t0
    events = pd.Series([e for _, _, e, _ in pol.log]).value_counts().to_dict()
    wait = sim.jobs.start - sim.jobs.submit
    return {
        "jobs": jobs,
        "nodes": nodes,
        "wall_s": wall,
        "jobs_per_s": jobs / wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "passes": sim.passes,
        "finished": int((sim.jobs.status == 3).sum()),
        "admitted": int(events.get("admitted", 0)),
        "preempted": int(events.get("preempted", 0)),
        "evicted": int(events.get("evicted", 0)),
        "rejected": int(events.get("rejected", 0)),
        "unschedulable": int((sim.jobs.status == 4).sum()),
        "mean_wait_s": float(np.nanmean(wait)),
    }


def table(r: dict) -> str:
    """The result as a markdown table."""
    head = (
        "| jobs | nodes x GPUs | wall s | jobs/s | peak RSS MB | passes | finished | admissions | "
        "preemptions | pods-ready evictions | mean wait s |"
    )
    row = (
        f"| {r['jobs']:,} | {r['nodes']} x {GPUS} | {r['wall_s']:,.1f} | {r['jobs_per_s']:,.0f} "
        f"| {r['peak_rss_mb']:,.0f} | {r['passes']:,} | {r['finished']:,} | {r['admitted']:,} "
        f"| {r['preempted']:,} | {r['evicted']:,} | {r['mean_wait_s']:,.0f} |"
    )
    return "\n".join([head, "|" + "---|" * 11, row])


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.kueue_bench``: time one ``kueue`` run."""
    p = _cli.parser(__doc__, name=NAME)
    p.add_argument("--jobs", type=_cli.positive_int, default=100_000, help="jobs (default 100000)")
    p.add_argument("--nodes", type=_cli.positive_int, default=128, help="8-GPU nodes (default 128)")
    p.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    p.add_argument("--load", type=_cli.positive_float, default=0.9, help="offered load (0.9)")
    args = _cli.parse(p, argv, NAME)
    if args.nodes < 2:
        p.error("--nodes must be >= 2 (one per flavor)")
    r = run(args.jobs, args.nodes, args.seed, args.load)
    text = table(r)
    print(text)
    config = (
        f"`kueue` with its defaults (waitForPodsReady on, 300 s timeout, backoff 60 s doubling "
        f"to 3600 s); {args.nodes} x 8-GPU nodes, half H100 and half A100 (two ResourceFlavors); "
        "four ClusterQueues in one cohort, each nominal 1/4 of both flavors, borrowing limit "
        "2x, lending limit 1/2 or all, two BestEffortFIFO and two StrictFIFO; "
        f"`traces.synthetic` ({args.jobs:,} jobs, load {args.load:g}, seed {args.seed}), pods of "
        "at most 8 GPUs, priorities 0-2. Wall seconds: building the Simulation and running it in "
        "this process (no result files); peak RSS of the whole process."
    )
    _cli.emit(args, NAME, _cli.markdown_block(f"experiments.{NAME}", argv, config, text), argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
