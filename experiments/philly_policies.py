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
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from policies.sjf import SjfPolicy
from policies.srtf import SrtfPolicy
from policies.tiresias import TiresiasPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output import metrics
from traces.philly import load as load_philly

TRACE = Path(__file__).resolve().parents[2] / "shared/traces/philly-pollux/philly.csv"
POLICIES = {
    "fifo": FifoPolicy,
    "gang": lambda: GangPolicy(starvation_timeout=None),
    "sjf": SjfPolicy,
    "srtf": SrtfPolicy,
    "tiresias": TiresiasPolicy,
}


def run(trace: pd.DataFrame, nodes: int, name: str, thresholds=None, **sim) -> dict:
    """Simulate one policy; returns the summary plus wall time."""
    cluster = ClusterSpec.homogeneous(nodes, 8, "V100", nodes_per_rack=8, name="philly")
    if name == "tiresias" and thresholds:
        policy = TiresiasPolicy(thresholds=thresholds)
    else:
        policy = POLICIES[name]()
    sim_ = Simulation(trace, cluster, policy, **sim).run()
    out = metrics.summary(sim_)
    out["policy"] = name
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--nodes", type=int, default=80, help="8-GPU nodes (default 80 = 640 GPUs)")
    ap.add_argument("--max-jobs", type=int, default=None, help="first N jobs only")
    ap.add_argument("--policies", nargs="+", default=["fifo", "gang", "sjf", "srtf", "tiresias"])
    ap.add_argument("--checkpoint", type=float, default=0.0, help="checkpoint interval, s")
    ap.add_argument("--restart", type=float, default=0.0, help="restart overhead, s")
    ap.add_argument(
        "--thresholds", type=float, nargs="+", help="tiresias queue limits, GPU-s (default 3600)"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    trace = load_philly(path=args.trace, max_jobs=args.max_jobs).jobs
    print(f"trace: {len(trace):,} jobs, loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for name in args.policies:
        s = run(
            trace,
            args.nodes,
            name,
            args.thresholds,
            checkpoint_interval=args.checkpoint,
            restart_overhead=args.restart,
        )
        rows.append(s)
        print(f"{name}: avg JCT {s['avg_jct']:,.0f} s ({s['wall_seconds']:.1f} s)", flush=True)
    table = pd.DataFrame(rows).set_index("policy")
    base = table["avg_jct"].get("fifo")
    cols = {
        "avg_jct": "avg JCT s",
        "p50_jct": "p50 JCT s",
        "p99_jct": "p99 JCT s",
        "avg_wait": "avg wait s",
        "preemptions": "preemptions",
        "gpu_utilization": "GPU util",
        "wall_seconds": "wall s",
    }
    show = table[list(cols)].rename(columns=cols)
    if base is not None:
        show.insert(1, "vs fifo", [f"{(v / base - 1) * 100:+.1f} %" for v in table["avg_jct"]])
    print(f"\nPhilly, {len(trace):,} jobs, {args.nodes} x 8 V100 ({args.nodes * 8} GPUs)")
    print(show.to_string(float_format=lambda v: f"{v:,.3f}" if v < 10 else f"{v:,.0f}"))
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
