"""Measure the memory a run needs, to calibrate :mod:`simulator.limits` (Linux).

``python -m experiments.memory_limits`` runs FIFO on synthetic traces of several sizes, each in
a fresh process, and prints the peak rise of the resident set next to
:func:`simulator.limits.estimate_bytes`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from simulator.limits import estimate_bytes


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


def main(argv: list[str] | None = None) -> None:
    """``python -m experiments.memory_limits``: measure the per-job and per-node costs again."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        n, m, g, events = (int(a) for a in argv[1:5])
        print(_child(n, m, g, bool(events)))
        return
    rows = [
        (400_000, 64, 8),
        (800_000, 64, 8),
        (1_600_000, 64, 8),
        (20_000, 2_000, 8),
        (20_000, 32_000, 8),
    ]
    peaks = {}
    print("jobs        nodes   GPUs/node   peak rise MB   estimate MB")
    for n, m, g in rows:
        peaks[(n, m, g)] = peak = measure_peak(n, m, g)
        est = estimate_bytes(n, m, g)
        print(f"{n:>9,} {m:>8,} {g:>9} {peak / 1e6:>14,.0f} {est / 1e6:>13,.0f}")
    per_job = (peaks[rows[2]] - peaks[rows[1]]) / (rows[2][0] - rows[1][0])
    per_node = (peaks[rows[4]] - peaks[rows[3]]) / (rows[4][1] - rows[3][1])
    print(f"bytes per job: {per_job:,.0f}; bytes per node of 8 GPUs: {per_node:,.0f}")


if __name__ == "__main__":
    main()
