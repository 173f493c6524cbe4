"""Two queues with 50/50 quotas, one idle then bursting: how fast does it get its share back?

Cluster: 8 nodes x 8 GPUs (64 GPUs). Queue ``a`` deserves 32 GPUs and submits 64 one-GPU jobs
of 4 hours at t=0, taking the whole (otherwise idle) cluster. Queue ``b`` also deserves 32 GPUs;
it is idle until t=1 h, then submits 32 one-GPU jobs of 30 minutes (its "job length"). The
table shows b's share of the GPUs over time and the time-averaged shares and Jain's index
(over quota-normalised shares) in the hour after the burst, with and without reclaim.

    python -m experiments.fair_reclaim [--markdown FILE]

About 2 s (two runs of 96 jobs). ``--markdown FILE`` writes both tables between the
``fair_reclaim`` markers of FILE (README: "Fair share with reclaim").
"""

from __future__ import annotations

import pandas as pd

from experiments import _cli
from policies.fair import FairPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output import fairness
from simulator.output.metrics import queue_timeline_frame

NAME = "fair_reclaim"
HOUR = 3600.0
QUEUES = [{"name": "a", "deserved": 32}, {"name": "b", "deserved": 32}]


def workload() -> pd.DataFrame:
    rows = [(f"a{i}", 0.0, 4 * HOUR, 1, "a") for i in range(64)]
    rows += [(f"b{i}", HOUR, 0.5 * HOUR, 1, "b") for i in range(32)]
    return pd.DataFrame(rows, columns=["job_id", "submit_time", "duration", "num_gpus", "queue"])


def experiment() -> tuple[list[dict], pd.DataFrame]:
    """Both runs (reclaim on and off): their figures, and queue b's share at a few instants."""
    cluster = ClusterSpec.homogeneous(8, 8, "V100")
    trace = workload()
    burst, window = HOUR, 0.5 * HOUR
    rows, curves = [], {}
    for reclaim in (True, False):
        sim = Simulation(trace, cluster, FairPolicy(queues=QUEUES, reclaim=reclaim)).run()
        share = fairness.queue_shares(queue_timeline_frame(sim), capacity=cluster.total_gpus)
        curves[reclaim] = share["b"]
        avg = fairness.time_average(share, burst, burst + window)
        jain = fairness.jain_over_time(share, pd.Series({"a": 0.5, "b": 0.5}))
        jobs = sim.jobs
        is_b = jobs.queue == jobs.queue_names.index("b")
        rows.append(
            {
                "reclaim": reclaim,
                "b_share": avg["b"],
                "a_share": avg["a"],
                "jain": fairness.time_average(jain, burst, burst + window),
                "b_first_start": float(jobs.start[is_b].min() - burst),
                "b_jct": float((jobs.end - jobs.submit)[is_b].mean()),
                "a_jct": float((jobs.end - jobs.submit)[~is_b].mean()),
                "preemptions": int(jobs.preemptions.sum()),
            }
        )
    times = [0, burst - 1, burst, burst + 900, burst + 1800, 2 * HOUR, 4 * HOUR, 4.5 * HOUR]
    shares = pd.DataFrame(
        {k: v.reindex(v.index.union(times)).ffill().loc[times] for k, v in curves.items()}
    )
    return rows, shares


ROWS = [
    ("b's share 30 min after the burst", "b_share", "{:.3f}"),
    ("a's share, same window", "a_share", "{:.3f}"),
    ("Jain's index (quota-normalised), same window", "jain", "{:.3f}"),
    ("b's first start after the burst", "b_first_start", "{:,.0f} s"),
    ("b's average JCT", "b_jct", "{:,.0f} s"),
    ("a's average JCT", "a_jct", "{:,.0f} s"),
    ("preemptions", "preemptions", "{:,}"),
]


def tables(rows: list[dict], shares: pd.DataFrame) -> tuple[str, str]:
    """The summary table (one column per run) and queue b's share over time, as Markdown."""
    on, off = (next(r for r in rows if r["reclaim"] is flag) for flag in (True, False))
    summary = ["| | reclaim | no reclaim |", "|---|---:|---:|"]
    summary += [
        f"| {label} | {fmt.format(on[k])} | {fmt.format(off[k])} |" for label, k, fmt in ROWS
    ]
    over_time = ["| t (s) | b's share, reclaim | b's share, no reclaim |", "|---:|---:|---:|"]
    over_time += [
        f"| {t:,.0f} | {row[True]:.3f} | {row[False]:.3f} |" for t, row in shares.iterrows()
    ]
    return "\n".join(summary), "\n".join(over_time)


CONFIG = (
    "Cluster: 8 nodes x 8 V100 (64 GPUs). Policy `fair` (`policies/fair.py`) with two queues "
    "of 32 deserved GPUs each, reclaim on and off. Queue a: 64 one-GPU jobs of 4 h at t = 0; "
    "queue b: idle until t = 1 h, then 32 one-GPU jobs of 30 min. Shares and Jain's index are "
    "time averages over the 30 min after b's burst. Deterministic (no seed)."
)


def main(argv: list[str] | None = None) -> int:
    args = _cli.parse(_cli.parser(__doc__, name=NAME), argv, NAME)
    rows, shares = experiment()
    summary, over_time = tables(rows, shares)
    print(summary)
    print("\nqueue b's share of the 64 GPUs")
    print(over_time)
    body = _cli.markdown_block(
        f"experiments.{NAME}", argv, CONFIG, summary, "Queue b's share of the 64 GPUs:", over_time
    )
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
