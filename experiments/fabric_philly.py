"""Philly on an oversubscribed leaf-spine fabric: topology-blind vs topology-aware placement.

Usage::

    python -m experiments.fabric_philly [--shared DIR | --path PHILLY_CSV] [--nodes 96]
        [--nodes-per-leaf 4] [--oversubscription 2 4] [--comm-fraction 0.2] [--max-jobs N]
        [--markdown FILE]

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

About 40 s on an idle 2-core machine (13 runs of the full trace). ``--markdown FILE`` writes
the table between the ``fabric_philly`` markers of FILE (README: "Results: Philly on a 2:1
leaf-spine").
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments import _cli
from policies.gang import GangPolicy
from policies.topology import TopologyPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.core.extensions import collect_outputs
from simulator.output import metrics
from traces import philly

NAME = "fabric_philly"
ROOT = Path(__file__).resolve().parents[1]
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


def main(argv: list[str] | None = None) -> int:
    parser = _cli.parser(__doc__, shared=True, name=NAME)
    parser.add_argument(
        "--path", type=Path, default=None, help="Pollux philly.csv (default: in --shared)"
    )
    parser.add_argument("--nodes", type=_cli.positive_int, default=96)
    parser.add_argument("--nodes-per-leaf", type=_cli.positive_int, default=4)
    parser.add_argument(
        "--oversubscription", type=_cli.positive_float, nargs="+", default=[2.0, 4.0]
    )
    parser.add_argument("--comm-fraction", type=_cli.fraction, default=0.2)
    parser.add_argument(
        "--max-jobs", type=_cli.positive_int, default=None, help="first N jobs only"
    )
    args = _cli.parse(parser, argv, NAME)
    path = args.path or _cli.shared_dir(args) / "philly-pollux" / "philly.csv"
    _cli.need(
        path, "the Pollux Philly table", "pass --path FILE, --shared DIR or set GPUSIM_TRACES"
    )
    t0 = time.perf_counter()
    trace = philly.load(path=str(path), max_jobs=args.max_jobs).jobs
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
    total = time.perf_counter() - t0
    print()
    print(table(rows))
    print(f"\ntotal wall time {total:.0f} s")
    config = (
        f"Trace: `{path.name}` (Pollux Philly table; {'the first ' if args.max_jobs else ''}"
        f"{len(trace):,} jobs). Cluster: {args.nodes} nodes x 8 H100, {args.nodes_per_leaf} "
        "nodes per leaf. Fabric: preset `leaf_spine` (`configs/fabric/leaf_spine.yaml`) with "
        f"leaf uplinks oversubscribed {', '.join(f'{o:g}:1' for o in args.oversubscription)}, "
        f"`comm_fraction` {args.comm_fraction:g} for every job of >= 2 GPUs; the first row "
        "runs without a fabric. Deterministic (no seed); total wall time "
        f"{total:.0f} s."
    )
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, table(rows))
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
