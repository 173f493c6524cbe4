"""Philly on an oversubscribed leaf-spine fabric: topology-blind vs topology-aware placement.

Usage::

    python -m experiments.fabric_philly [--path PHILLY_CSV] [--nodes 96] [--nodes-per-leaf 4]
        [--oversubscription 2 4] [--comm-fraction 0.2] [--max-jobs N]

The full Pollux Philly table (82,182 jobs, gangs up to 128 GPUs) replays on 96 DGX-H100-like
nodes (768 GPUs; 80 nodes queue too long to compare placements, see replay_real) grouped 4 per
leaf (32 GPUs), with the ``configs/fabric/leaf_spine.yaml`` preset (NVLink 450 GB/s busbw per
GPU, 8 x 400 Gb/s NICs per node) and leaf uplinks oversubscribed ``--oversubscription``:1.
Philly has no model sizes, so every job of >= 2 GPUs spends ``--comm-fraction`` of its ideal
iteration in all-reduce (the preset's default assumption).

Policies (all walk the queue like ``gang``; they differ in placement only):

* ``gang``: the repository's gang placer. Not blind: gangs larger than a node take the fewest
  nodes, then the tightest fit, and only then prefer one rack (a tie-break). Its ``scoring``
  (bestfit/spread/firstfit) only picks the node of single-node jobs, so no scoring value makes
  it topology-blind for gangs.
* ``gang split``: ``allow_split=true`` - blind to the NVLink/network boundary: a job that fits
  one node starts across several whenever no single node has room.
* ``topology``: smallest domain first (node, then leaf, then spine), a soft constraint with a
  bounded wait (``max_wait``) before spreading; ``whole`` = gangs prefer entirely free nodes.

Columns: average JCT and wait (s); p99 slowdown (run seconds / trace duration) over all jobs
and over multi-GPU jobs; mean slowdown of gangs larger than a node; how many of those crossed
the spine; GPU utilisation (allocated GPU-seconds / capacity); wall-clock seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import OmegaConf

from policies.gang import GangPolicy
from policies.topology import TopologyPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.core.extensions import collect_outputs
from simulator.output import metrics
from traces import philly

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = ROOT.parent / "shared" / "traces" / "philly-pollux" / "philly.csv"
PRESET = ROOT / "configs" / "fabric" / "leaf_spine.yaml"


def policies() -> list[tuple[str, object]]:
    return [
        ("gang", GangPolicy()),
        ("gang split", GangPolicy(allow_split=True)),
        ("topology wait 0", TopologyPolicy(max_wait=0)),
        ("topology wait 600", TopologyPolicy(max_wait=600)),
        ("topology whole, wait 600", TopologyPolicy(max_wait=600, whole_nodes=True)),
        ("topology whole, wait 3600", TopologyPolicy(max_wait=3600, whole_nodes=True)),
    ]


def make_fabric(oversubscription: float, comm_fraction: float):
    cfg = OmegaConf.load(PRESET)
    cfg.oversubscription = oversubscription
    cfg.comm_fraction = {2: comm_fraction}
    return instantiate(cfg)


def run(trace: pd.DataFrame, cluster: ClusterSpec, policy, fabric) -> dict:
    t0 = time.perf_counter()
    sim = Simulation(trace, cluster, policy, fabric=fabric).run()
    wall = time.perf_counter() - t0
    jobs, summary = metrics.job_frame(sim), metrics.summary(sim)
    if fabric is not None:
        collect_outputs([fabric], sim, jobs, summary, {})
    done = jobs[jobs["status"] == "finished"]
    multi = done[done["num_gpus"] >= 2]
    gangs = done[done["num_gpus"] > cluster.max_gpus_per_node]
    crossed = (gangs["fabric_tier"] == "spine").sum() if "fabric_tier" in gangs else 0
    return {
        "avg_jct": summary["avg_jct"],
        "avg_wait": summary["avg_wait"],
        "p99_slowdown": summary["p99_slowdown"],
        "p99_slowdown_multi": float(np.percentile(multi["slowdown"], 99)),
        "gang_slowdown": float(gangs["slowdown"].mean()),
        "gangs": len(gangs),
        "spine_gangs": int(crossed),
        "util": summary["gpu_utilization"],
        "wall": wall,
    }


def table(rows: list[tuple[str, str, dict]]) -> str:
    out = [
        "| fabric | policy | avg JCT (s) | avg wait (s) | p99 slowdown | p99 slowdown "
        "(>=2 GPUs) | mean slowdown (gangs > 8 GPUs) | gangs over spine | GPU util | wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fabric, policy, r in rows:
        out.append(
            f"| {fabric} | {policy} | {r['avg_jct']:,.0f} | {r['avg_wait']:,.0f} | "
            f"{r['p99_slowdown']:.3f} | {r['p99_slowdown_multi']:.3f} | "
            f"{r['gang_slowdown']:.3f} | {r['spine_gangs']} / {r['gangs']} | "
            f"{r['util']:.3f} | {r['wall']:.1f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="Pollux philly.csv")
    parser.add_argument("--nodes", type=int, default=96)
    parser.add_argument("--nodes-per-leaf", type=int, default=4)
    parser.add_argument("--oversubscription", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--comm-fraction", type=float, default=0.2)
    parser.add_argument("--max-jobs", type=int, default=None, help="first N jobs only")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    trace = philly.load(path=str(args.path), max_jobs=args.max_jobs).jobs
    cluster = ClusterSpec.homogeneous(
        args.nodes, 8, "H100", nodes_per_rack=args.nodes_per_leaf, name="philly-h100"
    )
    print(
        f"{len(trace):,} jobs on {cluster.describe()}, {args.nodes_per_leaf} nodes per leaf, "
        f"comm fraction {args.comm_fraction}"
    )
    rows = [("none", "gang", run(trace, cluster, GangPolicy(), None))]
    for over in args.oversubscription:
        for name, policy in policies():
            fabric = make_fabric(over, args.comm_fraction)
            rows.append((f"leaf-spine {over:g}:1", name, run(trace, cluster, policy, fabric)))
            print(f"  {rows[-1][0]} / {name}: {rows[-1][2]['wall']:.1f} s", flush=True)
    print()
    print(table(rows))
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
