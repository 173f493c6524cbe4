"""Two queues with 50/50 quotas, one idle then bursting: how fast does it get its share back?

Cluster: 8 nodes x 8 GPUs (64 GPUs). Queue ``a`` deserves 32 GPUs and submits 64 one-GPU jobs
of 4 hours at t=0, taking the whole (otherwise idle) cluster. Queue ``b`` also deserves 32 GPUs;
it is idle until t=1 h, then submits 32 one-GPU jobs of 30 minutes (its "job length"). The
table shows b's share of the GPUs over time and the time-averaged shares and Jain's index
(over quota-normalised shares) in the hour after the burst, with and without reclaim.

    python -m experiments.fair_reclaim
"""

from __future__ import annotations

import sys

import pandas as pd

from policies.fair import FairPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output import fairness
from simulator.output.metrics import queue_timeline_frame

HOUR = 3600.0
QUEUES = [{"name": "a", "deserved": 32}, {"name": "b", "deserved": 32}]


def workload() -> pd.DataFrame:
    rows = [(f"a{i}", 0.0, 4 * HOUR, 1, "a") for i in range(64)]
    rows += [(f"b{i}", HOUR, 0.5 * HOUR, 1, "b") for i in range(32)]
    return pd.DataFrame(rows, columns=["job_id", "submit_time", "duration", "num_gpus", "queue"])


def main() -> int:
    cluster = ClusterSpec.homogeneous(8, 8, "V100")
    trace = workload()
    burst, window = HOUR, 0.5 * HOUR
    rows, curves = [], {}
    for reclaim in (True, False):
        sim = Simulation(trace, cluster, FairPolicy(queues=QUEUES, reclaim=reclaim)).run()
        share = fairness.queue_shares(queue_timeline_frame(sim), capacity=cluster.total_gpus)
        curves[f"reclaim={reclaim}"] = share["b"]
        avg = fairness.time_average(share, burst, burst + window)
        jain = fairness.jain_over_time(share, pd.Series({"a": 0.5, "b": 0.5}))
        jobs = sim.jobs
        is_b = jobs.queue == jobs.queue_names.index("b")
        rows.append(
            {
                "reclaim": reclaim,
                "b share, 30 min after burst": avg["b"],
                "a share, 30 min after burst": avg["a"],
                "Jain (quota-normalised), same window": fairness.time_average(
                    jain, burst, burst + window
                ),
                "b's first start - burst, s": float(jobs.start[is_b].min() - burst),
                "avg JCT of b, s": float((jobs.end - jobs.submit)[is_b].mean()),
                "avg JCT of a, s": float((jobs.end - jobs.submit)[~is_b].mean()),
                "preemptions": int(jobs.preemptions.sum()),
            }
        )
    print(pd.DataFrame(rows).set_index("reclaim").T.to_string(float_format=lambda v: f"{v:,.3f}"))
    times = [0, burst - 1, burst, burst + 900, burst + 1800, 2 * HOUR, 4 * HOUR, 4.5 * HOUR]
    table = pd.DataFrame(
        {k: v.reindex(v.index.union(times)).ffill().loc[times] for k, v in curves.items()}
    )
    table.index = [f"t = {t:,.0f} s" for t in times]
    print("\nqueue b's share of the 64 GPUs")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
