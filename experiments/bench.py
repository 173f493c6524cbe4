"""Benchmark: million-job traces end to end, scaling, and the bare-SimPy floor.

Usage::

    python -m experiments.bench                 # full table (1M jobs; a few minutes)
    python -m experiments.bench --quick         # 100k-job version of every row
    python -m experiments.bench --rows gang fifo load

Each simulator run is a separate ``python -m simulator`` process (what a user runs), timed
from start to exit: Python start-up, Hydra, loading the Parquet trace, simulating and writing
``jobs.parquet``/``timeline.parquet``/``summary.json``. Peak memory is the child's max RSS.
The workload (``traces.synthetic``): Poisson arrivals, lognormal durations (median 30 min,
sigma 1.5), gang sizes 1-64 GPUs (70 % 1 GPU, 5 % >= 16), offered load 90 % of the cluster.
``gang`` and ``fifo`` run in the compiled event loop (``simulator.core.replay``), as they do for a
user; the ``-simpy`` rows run the same policies with ``sim.compiled=false``, in the SimPy loop
every other policy uses.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from traces.file import load as load_file
from traces.synthetic import generate

GPUS_PER_NODE = 8


def write_trace(folder: Path, num_jobs: int, nodes: int, seed: int = 0, load: float = 0.9) -> Path:
    """Generate the benchmark workload for ``nodes`` x 8 GPUs and write it as Parquet."""
    suffix = "" if load == 0.9 else f"_load{load}"
    path = folder / f"bench_{num_jobs}_{nodes}_{seed}{suffix}.parquet"
    if not path.exists():
        generate(num_jobs, nodes * GPUS_PER_NODE, load=load, seed=seed).to_parquet(path)
    return path


def run_simulator(
    trace: Path, nodes: int, policy: str, out: Path, extra: tuple[str, ...] = ()
) -> dict:
    """Run ``python -m simulator`` on a trace; returns wall seconds, peak RSS and the summary.

    ``extra``: further Hydra overrides (e.g. ``sim.compiled=false``).
    """
    args = [
        sys.executable,
        "-m",
        "simulator",
        f"+policy={policy}",
        "trace=file",
        f"trace.path={trace}",
        f"cluster.num_nodes={nodes}",
        f"cluster.gpus_per_node={GPUS_PER_NODE}",
        "cluster.nodes_per_rack=32",
        f"hydra.run.dir={out}",
        "sim.progress=false",
        "print_summary=false",
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    proc.wait()
    if proc.returncode:
        raise RuntimeError(f"simulator failed: {err[-2000:]}")
    import json

    summary = json.loads((out / "summary.json").read_text())
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "summary": summary}


def simpy_floor(trace: Path) -> float:
    """Seconds for bare SimPy to process the trace's arrivals and completions, no policy.

    Every job completes ``duration`` after it arrives (no queueing): two events per job, each a
    raw SimPy event with one callback, as the engine uses.
    """
    import pandas as pd
    import simpy
    from simpy.events import Event

    jobs = pd.read_parquet(trace, columns=["submit_time", "duration"]).sort_values("submit_time")
    submit = jobs["submit_time"].to_numpy()
    duration = jobs["duration"].to_numpy()
    env = simpy.Environment()
    state = {"next": 0, "done": 0}

    def schedule(callback, delay, value=None):
        ev = Event(env)
        ev._ok = True
        ev._value = value
        ev.callbacks.append(callback)
        env.schedule(ev, 1, delay)

    def finish(ev):
        state["done"] += 1

    def arrive(ev):
        i = state["next"]
        schedule(finish, float(duration[i]))
        state["next"] = i + 1
        if i + 1 < len(submit):
            schedule(arrive, float(submit[i + 1]) - env.now)

    t0 = time.perf_counter()
    schedule(arrive, float(submit[0]))
    env.run()
    assert state["done"] == len(submit)
    return time.perf_counter() - t0


def row(label: str, jobs: int, nodes: int, res: dict) -> str:
    s = res["summary"]
    return (
        f"| {label} | {jobs:,} | {nodes:,} x 8 | {res['wall']:.2f} | "
        f"{jobs / res['wall']:,.0f} | {1e6 * res['wall'] / jobs:.1f} | "
        f"{s['wall_seconds']:.2f} | {res['rss_mb']:,.0f} | {s['avg_jct']:,.0f} | "
        f"{s['gpu_utilization']:.3f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k jobs instead of 1M")
    parser.add_argument(
        "--rows",
        nargs="*",
        default=["gang", "fifo", "gang-simpy", "fifo-simpy", "load", "floor", "scaling"],
        help="which parts to run (NAME-simpy: the policy with sim.compiled=false)",
    )
    parser.add_argument("--workdir", default=None, help="where traces and runs go (temp dir)")
    args = parser.parse_args(argv)
    big = 100_000 if args.quick else 1_000_000
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpusim-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir: {work}")
    header = (
        "| run | jobs | cluster | wall s (end to end) | jobs/s | us/job | "
        "simulate s | peak RSS MB | avg JCT s | GPU util |\n|---|---:|---|---:|---:|---:|"
        "---:|---:|---:|---:|"
    )
    trace = write_trace(work, big, 1024)
    # warm the Numba cache so the first timed run does not pay compilation
    run_simulator(write_trace(work, 2_000, 16), 16, "gang", work / "warm")
    lines = []
    for name in ("gang", "fifo", "gang-simpy", "fifo-simpy"):
        if name in args.rows:
            policy, _, loop = name.partition("-")
            extra = ("sim.compiled=false",) if loop else ()
            res = run_simulator(trace, 1024, policy, work / f"run_{name}", extra)
            label = f"{policy} ({res['summary']['engine']} loop)"
            lines.append(row(label, big, 1024, res))
            print(lines[-1], flush=True)
    if lines:
        print("\n" + header + "\n" + "\n".join(lines))
    if "load" in args.rows:
        t0 = time.perf_counter()
        loaded = load_file(trace)
        print(
            f"\nload {len(loaded.jobs):,}-row Parquet trace into canonical form: "
            f"{time.perf_counter() - t0:.2f} s"
        )
    if "floor" in args.rows:
        print(
            f"bare SimPy floor (arrivals + completions, no policy, {big:,} jobs): "
            f"{simpy_floor(trace):.2f} s"
        )
    if "scaling" in args.rows:
        scaling(work, big)


def scaling(work: Path, big: int) -> None:
    """Cost per job across trace lengths (1,024 nodes) and cluster sizes (big / 5 jobs).

    ``simulate`` is the engine's own wall time (summary ``wall_seconds``), without the fixed
    start-up, loading and writing costs that dominate short runs end to end.
    """
    print("\nscaling, gang:\n")
    print(
        "| jobs | cluster | wall s (end to end) | simulate s | simulate us/job |\n"
        "|---:|---|---:|---:|---:|"
    )

    def show(label: str, cluster: str, jobs: int, res: dict) -> None:
        sim = res["summary"]["wall_seconds"]
        print(
            f"| {label} | {cluster} | {res['wall']:.2f} | {sim:.2f} | {1e6 * sim / jobs:.1f} |",
            flush=True,
        )

    for jobs in sorted({big // 10, big // 3, big}):
        res = run_simulator(write_trace(work, jobs, 1024), 1024, "gang", work / f"s_{jobs}")
        show(f"{jobs:,}", "1,024 x 8", jobs, res)
    jobs = max(big // 5, 20_000)
    res = run_simulator(write_trace(work, jobs, 1024, load=1.3), 1024, "gang", work / "deep")
    show(f"{jobs:,} (load 1.3: deep queue)", "1,024 x 8", jobs, res)
    for nodes in (128, 512, 1024, 4096):
        res = run_simulator(write_trace(work, jobs, nodes), nodes, "gang", work / f"n_{nodes}")
        show(f"{jobs:,}", f"{nodes:,} x 8", jobs, res)


if __name__ == "__main__":
    main()
