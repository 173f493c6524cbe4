"""Pinned results of the SimPy event loop the compiled core replaced (the oracle of issue 13).

Before the SimPy loop was deleted it ran every scenario below; ``tests/data/oracle.json``
holds a digest of everything a user sees of each run (every column of the job table, the
timeline, the per-queue rows, the summary, the event and placement logs). The compiled core
must reproduce them exactly: ``tests/test_oracle.py``.

Scenarios: random clusters (mixed node sizes, two GPU models, CPU-only nodes, CPU/memory
modelled or not, racks) and traces (ties in submit times and durations, fractional and
CPU-only jobs, gangs larger than a node, GPU-type constraints, up to 70 queues, priorities,
estimates, topology constraints), under every policy of ``configs/policy`` with random
parameters and run options (``until``, timeline interval, checkpoints, restart and migration
overheads), some with node failures or a network fabric.

``python tests/oracle.py OUT.json`` writes the digests of the code on the path.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys

import numpy as np
import pandas as pd

from policies.backfill import BackfillPolicy
from policies.consolidate import ConsolidatePolicy
from policies.fair import FairPolicy
from policies.fgd import FgdPolicy
from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from policies.priority import PriorityPolicy
from policies.sjf import SjfPolicy
from policies.srtf import SrtfPolicy
from policies.tiresias import TiresiasPolicy
from policies.topology import TopologyPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output import metrics

POLICIES = (
    "fifo",
    "gang",
    "sjf",
    "priority",
    "srtf",
    "tiresias",
    "fair",
    "backfill",
    "topology",
    "consolidate",
    "fgd",
)
SEEDS = range(24)


def random_cluster(rng: np.random.Generator) -> ClusterSpec:
    """Mixed nodes: 1-8 GPUs, two GPU models, some CPU-only, CPU/memory modelled or not."""
    n = int(rng.integers(2, 9))
    gpus = rng.choice([0, 1, 2, 4, 8], size=n, p=[0.1, 0.1, 0.2, 0.2, 0.4]).astype(np.int64)
    gpus[0] = 8
    models = tuple("" if g == 0 else str(rng.choice(["A100", "H100"])) for g in gpus)
    modelled = rng.random() < 0.5
    cpus = rng.choice([16.0, 32.0, 64.0], size=n) if modelled else np.full(n, np.inf)
    mem = rng.choice([64.0, 256.0], size=n) if modelled else np.full(n, np.inf)
    racks = (np.arange(n) // int(rng.integers(1, 4))).astype(np.int64)
    return ClusterSpec(
        tuple(f"n{i}" for i in range(n)), gpus, models, cpus.astype(float), mem, racks
    )


def random_trace(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Ties in submit times and durations, fractions, CPU-only jobs, big gangs, types."""
    gaps = rng.choice([0.0, 1.0, 5.0, 17.5], size=n, p=[0.3, 0.3, 0.3, 0.1])
    gpus = rng.choice([0, 1, 1, 1, 2, 3, 4, 8, 12, 16, 40], size=n)
    milli = np.where((gpus == 1) & (rng.random(n) < 0.3), rng.choice([250, 500, 700], size=n), 1000)
    duration = rng.choice([10.0, 10.0, 30.0, 45.5, 200.0, 1000.0], size=n)
    levels = np.array(["", "", "node", "leaf", "spine"], dtype=object)
    frame = pd.DataFrame(
        {
            "job_id": np.arange(n),
            "submit_time": np.cumsum(gaps),
            "duration": duration,
            "num_gpus": gpus,
            "gpu_milli": milli,
            "gpu_type": rng.choice(["", "", "", "A100", "H100", "B200"], size=n),
            "num_cpus": rng.choice([0.0, 0.0, 2.0, 8.0, 24.0], size=n),
            "memory_gb": rng.choice([0.0, 0.0, 16.0, 100.0], size=n),
            "priority": rng.choice([0, 0, 1, 5, 10], size=n),
            "estimate": duration * rng.choice([0.5, 1.0, 2.0, np.nan], size=n),
            "topology_required": rng.choice(levels[[0, 0, 0, 3, 4]], size=n),
            "topology_preferred": rng.choice(levels, size=n),
        }
    )
    if rng.random() < 0.4:
        return frame.assign(queue=[f"q{i % int(rng.integers(2, 70))}" for i in range(n)])
    return frame.assign(queue="a")


def make_policy(name: str, rng: np.random.Generator):
    """A policy of kind ``name`` with random parameters (a factory: one object per run)."""
    scoring = str(rng.choice(["bestfit", "spread", "firstfit"]))
    split = bool(rng.random() < 0.3)
    est = None if rng.random() < 0.5 else "estimate"
    if name == "fifo":
        indexed = bool(rng.random() < 0.7)
        return lambda: FifoPolicy(scoring=scoring, allow_split=split, indexed=indexed)
    if name == "gang":
        indexed = bool(rng.random() < 0.7)
        timeout = rng.choice([None, 0.0, 30.0, 600.0])
        return lambda: GangPolicy(scoring, split, indexed, timeout)
    if name == "sjf":
        strict = bool(rng.random() < 0.3)
        return lambda: SjfPolicy(est, strict, scoring, split)
    if name == "priority":
        threshold = rng.choice([None, 5])
        preemption = bool(rng.random() < 0.8)
        return lambda: PriorityPolicy(threshold, preemption, scoring, split)
    if name == "srtf":
        return lambda: SrtfPolicy(est, scoring, split)
    if name == "tiresias":
        thresholds = [[3600.0], [100.0], [50.0, 500.0]][int(rng.integers(3))]
        knob = rng.choice([None, 2.0, 8.0])
        interval = rng.choice([None, None, 30.0])
        return lambda: TiresiasPolicy(thresholds, knob, interval, True, scoring, split)
    if name == "fair":
        queues = []
        if rng.random() < 0.5:
            queues = [
                {"name": "q0", "deserved": 8, "over_quota_weight": 2},
                {"name": "grp", "deserved": 4, "children": [{"name": "q1"}, {"name": "q2"}]},
                {"name": "a", "deserved": 2, "limit": 16},
            ]
        half_life = rng.choice([None, 600.0])
        drf = bool(rng.random() < 0.7)
        reclaim = bool(rng.random() < 0.8)
        return lambda: FairPolicy(queues, "default", reclaim, half_life, drf, scoring, split)
    if name == "backfill":
        conservative = bool(rng.random() < 0.4)
        cap = rng.choice([None, 3])
        return lambda: BackfillPolicy(est, conservative, cap, scoring, split)
    if name == "topology":
        max_wait = rng.choice([0.0, 60.0, None])
        mode = str(rng.choice(["preferred", "required"]))
        whole = bool(rng.random() < 0.4)
        timeout = rng.choice([None, 600.0])
        return lambda: TopologyPolicy(max_wait, mode, split, whole, timeout)
    if name == "consolidate":
        interval = float(rng.choice([20.0, 300.0]))
        moves = int(rng.integers(1, 5))
        return lambda: ConsolidatePolicy(interval, moves, scoring, split)
    if name == "fgd":
        kind = str(rng.choice(["fgd", "dotprod", "gpu_packing", "gpu_clustering", "bestfit"]))
        on_no_fit = str(rng.choice(["wait", "reject"]))
        return lambda: FgdPolicy(kind, on_no_fit, tie_break="first")
    raise ValueError(name)


def scenario(policy: str, seed: int) -> dict:
    """Trace, cluster, policy factory and run options of one oracle scenario."""
    rng = np.random.default_rng([seed, POLICIES.index(policy)])
    cluster = random_cluster(rng)
    trace = random_trace(rng, int(rng.integers(1, 160)))
    factory = make_policy(policy, rng)
    kw: dict = {"record_events": bool(rng.random() < 0.5)}
    if rng.random() < 0.3:
        kw["until"] = float(rng.choice([1.0, 100.0, 400.0]))
    if rng.random() < 0.3:
        kw["timeline_interval"] = float(rng.choice([5.0, 60.0]))
    if rng.random() < 0.4:
        kw["checkpoint_interval"] = float(rng.choice([0.0, 7.0, 50.0]))
        kw["restart_overhead"] = float(rng.choice([0.0, 2.0]))
        kw["migration_overhead"] = float(rng.choice([0.0, 3.0]))
    return {"trace": trace, "cluster": cluster, "policy": factory, "kw": kw}


def _values(col: pd.Series) -> list:
    out = []
    for v in col.tolist():
        if isinstance(v, float):
            out.append("nan" if math.isnan(v) else repr(v))
        elif isinstance(v, list | tuple | np.ndarray):
            out.append([int(x) for x in v])
        elif v is None or v is pd.NA:
            out.append("nan")
        else:
            out.append(repr(v.item() if hasattr(v, "item") else v))
    return out


def _digest(obj: object) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _frame_digests(prefix: str, frame: pd.DataFrame) -> dict[str, str]:
    return {f"{prefix}.{c}": _digest(_values(frame[c])) for c in frame.columns}


def digests(sim: Simulation) -> dict[str, str]:
    """Digest per column of every table, and of the summary's values and the logs."""
    out = _frame_digests("jobs", metrics.job_frame(sim))
    out.update(_frame_digests("timeline", metrics.timeline_frame(sim)))
    out.update(_frame_digests("queues", metrics.queue_timeline_frame(sim)))
    summary = metrics.summary(sim)
    for key in ("wall_seconds", "engine"):
        summary.pop(key, None)
    # the pinned digests were written when utilization divided by the makespan; since
    # issue 17 a run cut with jobs unfinished divides by its span to the cut instead
    # (tests/test_runs.py), so the oracle compares the quantities the SimPy loop produced
    cap = sim.state.total_gpus * summary["makespan"]
    summary["gpu_utilization"] = float(sim.jobs.gpu_seconds.sum() / cap) if cap > 0 else None
    for key, value in summary.items():
        out[f"summary.{key}"] = _digest(value)
    if sim.record_events:
        out["events"] = _digest([(repr(t), str(j), e) for t, j, e in sim.events])
        out["placements"] = _digest(
            [(repr(t), int(j), p.nodes.tolist(), p.gpus.tolist()) for t, j, p in sim.placement_log]
        )
    return out


def run(policy: str, seed: int) -> dict[str, str]:
    """Digests of one scenario (or of the error it raises)."""
    s = scenario(policy, seed)
    try:
        sim = Simulation(s["trace"], s["cluster"], s["policy"](), **s["kw"]).run()
    except Exception as e:  # noqa: BLE001 - an error is an outcome the oracle pins too
        return {"error": f"{type(e).__name__}: {str(e)[:80]}"}
    return digests(sim)


def main(argv: list[str]) -> None:
    """Write the digests of every scenario to ``argv[0]``."""
    out = {f"{p}/{s}": run(p, s) for p in POLICIES for s in SEEDS}
    with open(argv[0], "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
    print(f"{len(out)} scenarios -> {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
