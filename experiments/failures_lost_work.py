"""Lost work per node failure against the analytic expectation, over checkpoint intervals.

Usage::

    python -m experiments.failures_lost_work              # 5,000 kills per row (~15 s)
    python -m experiments.failures_lost_work --kills 20000 --markdown README.md   # ~1 min

Setup (as in ``tests/test_failures.py``): 64 nodes of one GPU, each running one job that never
ends; node failures with MTBF 10 h (exponential, or Weibull of shape 0.7), repairs 30 min; the
killed job restarts on its node the instant it is repaired. A kill loses the progress since
the last checkpoint plus the restart overhead R = 10 s. For each checkpoint interval C the
table gives the measured mean loss per kill with its standard error, the first-order rule
``C/2 + R`` and the exact expectation ``E[T] - C sum_k S(kC) + R`` (``T`` the time from restart to
kill, ``S`` its survival function; :func:`simulator.models.failures.expected_lost_per_kill`), and
``z`` = (measured - exact) / standard error. The last column is the share of all allocated
GPU time lost to kills. Rows of one failure model share the same failure schedule (same seed:
common random numbers), so only the checkpoint interval differs between them.
``--markdown FILE`` writes the table between the ``failures_lost_work`` markers of FILE.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from experiments import _cli
from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.models.failures import HOUR, RandomFailures, expected_lost_per_kill

NAME = "failures_lost_work"
NODES = 64
MTBF_HOURS = 10.0
REPAIR_HOURS = 0.5
OVERHEAD = 10.0
INTERVALS = (600.0, 1800.0, 3600.0, 7200.0, 14400.0)


def run(distribution: str, shape: float, interval: float, kills: int, seed: int) -> dict:
    """One row: simulate until about ``kills`` kills and compare with theory."""
    injector = RandomFailures(
        mtbf_hours=MTBF_HOURS,
        distribution=distribution,
        shape=shape,
        repair_hours=REPAIR_HOURS,
        seed=seed,
    )
    trace = pd.DataFrame(
        {"job_id": np.arange(NODES), "submit_time": 0.0, "duration": 1e15, "num_gpus": 1}
    )
    horizon = kills / NODES * (MTBF_HOURS + REPAIR_HOURS) * HOUR
    sim = Simulation(
        trace,
        ClusterSpec.homogeneous(NODES, 1, "H100"),
        FifoPolicy(),
        until=horizon,
        checkpoint_interval=interval,
        restart_overhead=OVERHEAD,
        processes=injector.processes(),
    ).run()
    table = injector.tables(sim)["failures"]
    lost = table.loc[table["event"] == "down", "lost_gpu_seconds"].to_numpy()
    se = lost.std(ddof=1) / math.sqrt(len(lost))
    exact = expected_lost_per_kill(MTBF_HOURS * HOUR, interval, OVERHEAD, shape)
    return {
        "failures": f"{distribution}" + (f" k={shape:g}" if distribution == "weibull" else ""),
        "C (s)": interval,
        "kills": len(lost),
        "measured": lost.mean(),
        "se": se,
        "C/2+R": interval / 2 + OVERHEAD,
        "exact": exact,
        "z": (lost.mean() - exact) / se,
        "lost share": lost.sum() / float(sim.jobs.gpu_seconds.sum()),
    }


HEADER = (
    "| failures | C (s) | kills | measured lost/kill (s) | C/2 + R (s) | exact (s) | z "
    "| GPU time lost |\n|---|---:|---:|---:|---:|---:|---:|---:|"
)


def line(r: dict) -> str:
    """One row of the table."""
    return (
        f"| {r['failures']} | {r['C (s)']:,.0f} | {r['kills']:,} | "
        f"{r['measured']:,.1f} ± {r['se']:.1f} | {r['C/2+R']:,.0f} | {r['exact']:,.1f} | "
        f"{r['z']:+.2f} | {r['lost share']:.2%} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(__doc__, name=NAME)
    p.add_argument(
        "--kills", type=_cli.positive_int, default=5000, help="kills per row (default 5000)"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the failure schedule (1)")
    args = _cli.parse(p, argv, NAME)
    print(HEADER)
    lines = []
    for distribution, shape in (("exponential", 1.0), ("weibull", 0.7)):
        for interval in INTERVALS:
            lines.append(line(run(distribution, shape, interval, args.kills, args.seed)))
            print(lines[-1], flush=True)
    config = (
        f"{NODES} nodes x 1 H100, each running one job that never ends (FIFO); node failures "
        f"with MTBF {MTBF_HOURS:g} h, exponential and Weibull of shape 0.7, repairs "
        f"{REPAIR_HOURS * 60:g} min; restart overhead R = {OVERHEAD:g} s; checkpoint intervals "
        f"C = {', '.join(f'{c:,.0f}' for c in INTERVALS)} s; about {args.kills:,} kills per "
        f"row; seed {args.seed} (rows of one failure model share the failure schedule)."
    )
    table = HEADER + "\n" + "\n".join(lines)
    _cli.emit(args, NAME, _cli.markdown_block(f"experiments.{NAME}", argv, config, table), argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
