"""Measure the memory a run needs, to calibrate :mod:`simulator.limits` (Linux).

``python -m experiments.memory_limits`` runs FIFO on synthetic traces of several sizes, each in
a fresh process, and prints the peak rise of the resident set next to
:func:`simulator.limits.estimate_bytes`, with the bytes per job and per node between runs that
differ in one of them. About a minute with the default runs (2.8M jobs in all)::

    python -m experiments.memory_limits [--runs 400000x64x8 1600000x64x8 ...] [--markdown FILE]

``--markdown FILE`` writes the table between the ``memory_limits`` markers of FILE (README:
"Limits"; its rows: ``--runs 400000x64x8 1600000x64x8 3200000x64x8 10000000x64x8
20000x32000x8 20000x64000x2``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from experiments import _cli
from simulator.limits import estimate_bytes

NAME = "memory_limits"


# ---------------------------------------------------------------------------------- measuring
def _rss() -> tuple[int, int]:
    """Current and peak resident set of this process, bytes (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def _child(n_jobs: int, num_nodes: int, gpus_per_node: int, record_events: bool) -> int:
    """Peak memory rise of one run in this process, bytes (see :func:`measure_peak`)."""
    import gc
    import tempfile

    from policies.fifo import FifoPolicy
    from simulator.core.cluster import ClusterSpec
    from simulator.core.engine import Simulation
    from simulator.output import metrics
    from simulator.output.results import write_run
    from traces.canonical import validate
    from traces.synthetic import generate

    def run(jobs: object, cluster: ClusterSpec, out: str) -> None:
        sim = Simulation(jobs, cluster, FifoPolicy(), record_events=record_events).run()
        write_run(out, metrics.job_frame(sim), metrics.timeline_frame(sim), metrics.summary(sim))

    with tempfile.TemporaryDirectory() as tmp:
        small = ClusterSpec.homogeneous(4, 8, "V100")
        run(validate(generate(2000, 32, load=0.5), "synthetic"), small, f"{tmp}/warm-up")
        cluster = ClusterSpec.homogeneous(num_nodes, gpus_per_node, "V100")
        trace = validate(generate(n_jobs, num_nodes * gpus_per_node, load=0.5), "synthetic")
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM)
        base = _rss()[0]
        run(trace, cluster, f"{tmp}/run")
        return _rss()[1] - base


def measure_peak(
    n_jobs: int, num_nodes: int, gpus_per_node: int, record_events: bool = False
) -> int:
    """Measure the peak memory rise of a real run, bytes, in a fresh Python process (Linux).

    The child builds a synthetic canonical trace (:mod:`traces.synthetic`, load 0.5) and the
    cluster, warms up on a small run, resets its peak resident set, then simulates (FIFO) and
    writes the result files; the answer is the rise of the peak over the resident set just
    before. Used to calibrate :data:`BYTES_PER_JOB` and :data:`BYTES_PER_NODE`.

    Args:
        n_jobs: jobs.
        num_nodes: nodes.
        gpus_per_node: GPUs per node.
        record_events: keep the event log.

    Returns:
        Bytes.
    """
    args = [
        sys.executable,
        "-m",
        "experiments.memory_limits",
        "--child",
        str(n_jobs),
        str(num_nodes),
        str(gpus_per_node),
        str(int(record_events)),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.split()[-1])


DEFAULT_RUNS = ["400000x64x8", "800000x64x8", "1600000x64x8", "20000x2000x8", "20000x32000x8"]
"""Jobs x nodes x GPUs per node of the default measurements."""


def run_spec(text: str) -> tuple[int, int, int]:
    """An argparse type: ``JOBSxNODESxGPUS`` (``400000x64x8``, ``1_600_000x64x8``)."""
    try:
        n, m, g = (int(part.replace("_", "").replace(",", "")) for part in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected JOBSxNODESxGPUS (e.g. 400000x64x8), got {text!r}"
        ) from None
    if n < 1 or m < 1 or g < 1:
        raise argparse.ArgumentTypeError(f"expected counts >= 1, got {text!r}")
    return n, m, g


def slopes(peaks: dict[tuple[int, int, int], int]) -> list[str]:
    """Bytes per job (runs that differ in jobs only) and per node (in nodes only)."""
    out = []
    runs = sorted(peaks, key=lambda r: (r[1], r[2], r[0]))
    for (n1, m1, g1), (n2, m2, g2) in zip(runs, runs[1:], strict=False):
        if (m1, g1) == (m2, g2) and n2 > n1:
            per = (peaks[(n2, m2, g2)] - peaks[(n1, m1, g1)]) / (n2 - n1)
            out.append(f"bytes per job from {n1:,} to {n2:,} jobs ({m1:,} x {g1}): {per:,.0f}")
    by_nodes = sorted(peaks, key=lambda r: (r[0], r[2], r[1]))
    for (n1, m1, g1), (n2, m2, g2) in zip(by_nodes, by_nodes[1:], strict=False):
        if (n1, g1) == (n2, g2) and m2 > m1:
            per = (peaks[(n2, m2, g2)] - peaks[(n1, m1, g1)]) / (m2 - m1)
            out.append(
                f"bytes per node of {g1} GPUs from {m1:,} to {m2:,} nodes ({n1:,} jobs): {per:,.0f}"
            )
    return out


def table(peaks: dict[tuple[int, int, int], int]) -> str:
    """The measured peaks next to the estimates, in the README's shape."""
    out = ["| run | peak rise | estimate |", "|---|---:|---:|"]
    for n, m, g in peaks:
        peak, est = peaks[(n, m, g)] / 1e6, estimate_bytes(n, m, g) / 1e6
        out.append(f"| {n:,} jobs, {m:,} x {g} GPUs | {peak:,.0f} MB | {est:,.0f} MB |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.memory_limits``: measure the per-job and per-node costs again."""
    p = _cli.parser(__doc__, name=NAME)
    p.add_argument(
        "--runs",
        type=run_spec,
        nargs="+",
        default=[run_spec(r) for r in DEFAULT_RUNS],
        metavar="JOBSxNODESxGPUS",
        help=f"what to measure (default {' '.join(DEFAULT_RUNS)})",
    )
    p.add_argument("--child", type=int, nargs=4, help=argparse.SUPPRESS)  # measure_peak's child
    args = _cli.parse(p, argv, NAME)
    if args.child:
        n, m, g, events = args.child
        print(_child(n, m, g, bool(events)))
        return 0
    peaks = {}
    print("jobs        nodes   GPUs/node   peak rise MB   estimate MB")
    for n, m, g in dict.fromkeys(args.runs):
        peaks[(n, m, g)] = peak = measure_peak(n, m, g)
        est = estimate_bytes(n, m, g)
        print(f"{n:>9,} {m:>8,} {g:>9} {peak / 1e6:>14,.0f} {est / 1e6:>13,.0f}", flush=True)
    lines = slopes(peaks)
    print("\n".join(lines))
    config = (
        "FIFO on synthetic canonical traces (`traces.synthetic`, load 0.5), each run in a fresh "
        "process after a 2,000-job warm-up: the rise of the peak resident set (`VmHWM`) from "
        "building the `Simulation` to writing its results (`jobs.parquet`, "
        "`timeline.parquet`, `summary.json`); estimate: `simulator.limits.estimate_bytes`. "
        "Linux only."
    )
    body = _cli.markdown_block(
        f"experiments.{NAME}", argv, config, table(peaks), "\n".join(f"- {x}" for x in lines)
    )
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
