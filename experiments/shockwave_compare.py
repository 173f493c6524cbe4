"""Shockwave's 120-job TACC trace on its 32-GPU cluster, one run per Gavel-class policy.

Runs in-process what ``python -m simulator -m +experiment=shockwave_tacc32`` runs (the same
trace loader, cluster, policies and options, built from the same YAML files) and prints one
row per policy: Gavel's policy name, average JCT and makespan (the Shockwave repository's
definitions: completion - arrival, and the last completion counted from t = 0)::

    python -m experiments.shockwave_compare [--markdown docs/heterogeneity.md]

The inputs are ``shockwave-tacc32/`` in ``--shared`` (default ``$GPUSIM_TRACES``, else
``../shared/traces``). Its SOURCE.md states that the authors' physical-cluster results are
*not* included there, so the table has no measured column: the physical figures have to be
taken from the paper by the reader; nothing here is fitted to them. About 30 s in all.
"""

from __future__ import annotations

import time
from pathlib import Path

from experiments import _cli
from simulator.core.engine import Simulation
from simulator.models.speed import SpeedModel
from simulator.output import metrics
from traces.shockwave import load as load_shockwave

NAME = "shockwave_compare"
POLICIES = ("gavel_maxmin", "gavel_ftf", "gavel_maxsum")
"""Our policies (``configs/policy/NAME.yaml``); the table shows Gavel's name of each."""
ROUND = 120.0
"""The authors' round length (``--time_per_iteration 120`` in ``reproduce/tacc_32gpus.sh``)."""
FOLDER = "shockwave-tacc32"


def run(trace, throughputs: Path, name: str) -> dict:
    """One policy on the tacc32 cluster; returns its summary (as ``python -m simulator``)."""
    cluster = _cli.configured("cluster", "tacc32")
    policy = _cli.configured("policy", name, round_length=ROUND)
    speed = SpeedModel("V100", throughputs)
    sim = Simulation(trace, cluster, policy, speed=speed, timeline_interval=ROUND).run()
    out = metrics.summary(sim)
    out["policy"] = policy.summary_name
    out["config"] = name
    return out


def table(rows: list[dict]) -> str:
    """The markdown table of the runs."""
    lines = [
        "| policy (Gavel name) | ours | avg JCT (h) | makespan (h) | preemptions | wall (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['policy']}` | `{r['config']}` | {r['avg_jct'] / 3600:.2f} | "
            f"{r['makespan'] / 3600:.2f} | {r['preemptions']} | {r['wall_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = _cli.parser(__doc__, shared=True, name=NAME)
    ap.add_argument("--max-jobs", type=_cli.positive_int, default=None, help="first N jobs only")
    args = _cli.parse(ap, argv, NAME)
    folder = _cli.shared_dir(args) / FOLDER
    path = _cli.need(folder / "tacc32_120jobs.trace", "the Shockwave TACC trace")
    tput = _cli.need(folder / "tacc_throughputs.json", "the Shockwave throughput table")
    t0 = time.perf_counter()
    trace = load_shockwave(path, tput, max_jobs=args.max_jobs).jobs
    rows = [run(trace, tput, name) for name in POLICIES]
    config = (
        f"{len(trace)} jobs of `{FOLDER}/tacc32_120jobs.trace` (adapted durations: "
        f"{trace['duration'].sum():,.0f} s in all), 32 single-V100 workers "
        f"(`cluster=tacc32`), round length {ROUND:g} s, speeds from `tacc_throughputs.json`."
    )
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, table(rows))
    print(body)
    print(f"({time.perf_counter() - t0:.1f} s)")
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
