"""Benchmark: every policy on million-job traces, the deep-queue case, scaling, compilation.

Usage::

    python -m experiments.bench                   # full tables (1M jobs; long)
    python -m experiments.bench --quick           # 100k jobs instead of 1M
    python -m experiments.bench --rows policies deep --policies gang sjf

Each simulator run is a separate ``python -m simulator`` process (what a user runs), timed
from start to exit: Python start-up, Hydra, loading the Parquet trace, simulating and writing
``jobs.parquet``/``timeline.parquet``/``summary.json``. Peak memory is the child's max RSS;
``simulate s`` is the engine's own time (``summary.json`` ``wall_seconds``); ``pass`` is
``compiled`` when the policy's pass ran as compiled code, ``python`` when its ``schedule(view)``
ran in Python (the same event loop either way). The workload (``traces.synthetic``): Poisson
arrivals, lognormal durations (median 30 min, sigma 1.5), gang sizes 1-64 GPUs (70 % 1 GPU,
5 % >= 16), offered load 90 % of the cluster (the deep-queue case: 150 %, on 16 x 8 GPUs).
A run that takes longer than ``--timeout`` seconds is stopped and shown as such.

Rows: ``policies`` (every policy, big trace), ``deep`` (every policy, deep queue), ``compile``
(first run after installation with an empty Numba cache, then warm), ``fabric`` (gang with
``fabric=leaf_spine``), ``scaling`` (every policy across trace lengths and cluster sizes), ``floor``
(bare SimPy, public API, arrivals and completions only), ``load`` (trace loading alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from experiments._cli import provenance, write_markdown
from traces.file import load as load_file
from traces.synthetic import generate

GPUS_PER_NODE = 8
POLICY_DIR = Path(__file__).resolve().parent.parent / "configs" / "policy"


def all_policies() -> list[str]:
    """Every policy of ``configs/policy`` (gang and fifo first)."""
    names = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
    first = [n for n in ("gang", "fifo") if n in names]
    return first + [n for n in names if n not in first]


def write_trace(folder: Path, num_jobs: int, nodes: int, seed: int = 0, load: float = 0.9) -> Path:
    """Generate the benchmark workload for ``nodes`` x 8 GPUs and write it as Parquet."""
    suffix = "" if load == 0.9 else f"_load{load}"
    path = folder / f"bench_{num_jobs}_{nodes}_{seed}{suffix}.parquet"
    if not path.exists():
        generate(num_jobs, nodes * GPUS_PER_NODE, load=load, seed=seed).to_parquet(path)
    return path


def run_simulator(
    trace: Path,
    nodes: int,
    policy: str,
    out: Path,
    extra: tuple[str, ...] = (),
    *,
    timeout: float | None = None,
    env: dict | None = None,
) -> dict | None:
    """Run ``python -m simulator`` on a trace: wall seconds, peak RSS and the summary.

    ``extra``: further Hydra overrides (e.g. ``fabric=leaf_spine``). Returns None if the run
    took longer than ``timeout`` seconds (it is killed).
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
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_stderr.txt", "w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if timer:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if timeout and proc.returncode == -9 and wall >= timeout:
            return None
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"simulator failed: {err.read().decode()[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "summary": summary}


def simpy_floor(trace: Path) -> float:
    """Seconds for bare SimPy to process the trace's arrivals and completions, no policy.

    Every job completes ``duration`` after it arrives (no queueing): two timeouts per job, each
    with one callback, through SimPy's public API only.
    """
    import pandas as pd
    import simpy

    jobs = pd.read_parquet(trace, columns=["submit_time", "duration"]).sort_values("submit_time")
    submit = jobs["submit_time"].to_numpy()
    duration = jobs["duration"].to_numpy()
    env = simpy.Environment()
    state = {"next": 0, "done": 0}

    def after(delay: float, callback) -> None:
        env.timeout(delay).callbacks.append(callback)

    def finish(ev) -> None:
        state["done"] += 1

    def arrive(ev) -> None:
        i = state["next"]
        after(float(duration[i]), finish)
        state["next"] = i + 1
        if i + 1 < len(submit):
            after(float(submit[i + 1]) - env.now, arrive)

    t0 = time.perf_counter()
    after(float(submit[0]), arrive)
    env.run()
    assert state["done"] == len(submit)
    return time.perf_counter() - t0


HEADER = (
    "| policy | pass | jobs | cluster | wall s (end to end) | jobs/s | simulate s | "
    "simulate us/job | peak RSS MB | avg JCT s | GPU util |\n"
    "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
)


def row(label: str, jobs: int, nodes: int, res: dict | None, timeout: float | None) -> str:
    """One line of the policy tables (``res`` None: the run passed ``timeout``)."""
    if res is None:
        return f"| {label} | | {jobs:,} | {nodes:,} x 8 | > {timeout:.0f} (stopped) | | | | | | |"
    s = res["summary"]
    sim = s["wall_seconds"]
    return (
        f"| {label} | {s['engine']} | {jobs:,} | {nodes:,} x 8 | {res['wall']:.2f} | "
        f"{jobs / res['wall']:,.0f} | {sim:.2f} | {1e6 * sim / jobs:.1f} | "
        f"{res['rss_mb']:,.0f} | {s['avg_jct']:,.0f} | {s['gpu_utilization']:.3f} |"
    )


def table(report: list[str], title: str, lines: list[str], header: str = HEADER) -> None:
    """Print a finished table (its lines were printed as they came) and add it to ``report``."""
    text = f"{title}\n\n{header}\n" + "\n".join(lines)
    report.append(text)
    print(f"\n{text}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k jobs instead of 1M")
    parser.add_argument(
        "--rows",
        nargs="*",
        default=["policies", "deep", "compile", "fabric", "scaling", "floor", "load"],
        help="which parts to run",
    )
    parser.add_argument("--policies", nargs="*", default=None, help="default: all of them")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--workdir", default=None, help="where traces and runs go (temp dir)")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="write the tables to this file (between its bench markers if it has them)",
    )
    args = parser.parse_args(argv)
    big = 100_000 if args.quick else 1_000_000
    policies = args.policies or all_policies()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpusim-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir: {work}", flush=True)
    report: list[str] = []
    small = write_trace(work, 2_000, 16)
    if "compile" in args.rows:
        compile_times(work, small, policies, report)
    # warm the Numba cache of every policy so that the timed runs do not pay compilation
    for name in policies:
        run_simulator(small, 16, name, work / f"warm_{name}")
    if "policies" in args.rows:
        trace = write_trace(work, big, 1024)
        lines = []
        for name in policies:
            res = run_simulator(trace, 1024, name, work / f"big_{name}", timeout=args.timeout)
            lines.append(row(name, big, 1024, res, args.timeout))
            print(lines[-1], flush=True)
        table(report, f"Every policy, {big:,} jobs on 1,024 x 8 GPUs, offered load 90 %:", lines)
    if "deep" in args.rows:
        deep(work, policies, args.timeout, report)
    if "fabric" in args.rows:
        trace = write_trace(work, big, 1024)
        res = run_simulator(
            trace, 1024, "gang", work / "fabric", ("fabric=leaf_spine",), timeout=args.timeout
        )
        table(
            report,
            f"`gang` with a network fabric (`fabric=leaf_spine`), {big:,} jobs:",
            [row("gang", big, 1024, res, args.timeout)],
        )
    if "scaling" in args.rows:
        scaling(work, big, policies, args.timeout, report)
    if "floor" in args.rows:
        trace = write_trace(work, big, 1024)
        line = (
            f"Bare SimPy floor (arrivals and completions through the public API, no policy, "
            f"{big:,} jobs): {simpy_floor(trace):.2f} s."
        )
        report.append(line)
        print(f"\n{line}")
    if "load" in args.rows:
        trace = write_trace(work, big, 1024)
        t0 = time.perf_counter()
        loaded = load_file(trace)
        line = (
            f"Loading a {len(loaded.jobs):,}-row Parquet trace into canonical form: "
            f"{time.perf_counter() - t0:.2f} s."
        )
        report.append(line)
        print(line)
    if args.markdown:
        body = provenance("experiments.bench", argv) + "\n\n" + "\n\n".join(report)
        write_markdown(args.markdown, "bench", body)


def compile_times(work: Path, trace: Path, policies: list[str], report: list[str]) -> None:
    """End-to-end seconds of a 2,000-job run with an empty Numba cache, then warm.

    The empty cache is what a user's first run after installation sees: every compiled
    function the run uses is compiled then, and cached on disk for later runs. Policies are
    run in turn on one cache, so a later policy reuses what an earlier one compiled (the
    core's kernels) and compiles only its own pass and the loop for it.
    """
    cache = Path(tempfile.mkdtemp(prefix="numba-cold-", dir=work))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    lines = []
    for name in policies:
        cold = run_simulator(trace, 16, name, work / f"cold_{name}", env=env)
        warm = run_simulator(trace, 16, name, work / f"cold2_{name}", env=env)
        lines.append(
            f"| {name} | {cold['summary']['engine']} | {cold['wall']:.1f} | {warm['wall']:.1f} |"
        )
        print(lines[-1], flush=True)
    table(
        report,
        "First run after installation (an empty Numba cache), then the same run warm; "
        "2,000 jobs on 16 x 8 GPUs, policies in turn on one cache:",
        lines,
        "| policy | pass | first run s | warm s |\n|---|---|---:|---:|",
    )


def deep(work: Path, policies: list[str], timeout: float, report: list[str]) -> None:
    """Every policy on 20,000 jobs offered 150 % of 16 x 8 GPUs (thousands waiting)."""
    jobs, nodes = 20_000, 16
    trace = write_trace(work, jobs, nodes, load=1.5)
    lines, gang = [], None
    for name in policies:
        res = run_simulator(trace, nodes, name, work / f"deep_{name}", timeout=timeout)
        if name == "gang" and res is not None:
            gang = res["summary"]["wall_seconds"]
        line = row(name, jobs, nodes, res, timeout)
        ratio = "" if res is None or not gang else f"{res['summary']['wall_seconds'] / gang:.1f}"
        lines.append(f"{line} {ratio} |")
        print(lines[-1], flush=True)
    table(
        report,
        "The deep-queue case: 20,000 jobs offered 150 % of 16 x 8 GPUs (thousands waiting; "
        "last column: simulating time over `gang`'s):",
        lines,
        HEADER.replace("GPU util |\n", "GPU util | simulate / gang's |\n") + "---:|",
    )


def scaling(work: Path, big: int, policies: list[str], timeout: float, report: list[str]) -> None:
    """Cost per job of every policy across trace lengths (1,024 nodes) and cluster sizes.

    ``simulate us/job`` is the engine's own time per job (summary ``wall_seconds``), without
    the fixed start-up, loading and writing costs that dominate short runs end to end. Trace
    lengths are ``big`` / 10 and ``big``; cluster sizes 128 and 4,096 nodes with ``big`` / 5
    jobs (the load stays 90 % of the cluster); each ratio is the larger over the smaller.
    """
    small_n = big // 10
    jobs = max(big // 5, 20_000)
    traces = {
        "short": write_trace(work, small_n, 1024),
        "long": write_trace(work, big, 1024),
        128: write_trace(work, jobs, 128),
        4096: write_trace(work, jobs, 4096),
    }
    lines = []
    for name in policies:
        us = {}
        for key, trace in traces.items():
            nodes = key if isinstance(key, int) else 1024
            n = {"short": small_n, "long": big}.get(key, jobs)
            res = run_simulator(trace, nodes, name, work / f"sc_{name}_{key}", timeout=timeout)
            us[key] = None if res is None else 1e6 * res["summary"]["wall_seconds"] / n

        def cell(v):
            return "stopped" if v is None else f"{v:.1f}"

        def ratio(a, b):
            return "" if a is None or b is None else f"{a / b:.2f}"

        lines.append(
            f"| {name} | {cell(us['short'])} | {cell(us['long'])} | "
            f"{ratio(us['long'], us['short'])} | {cell(us[128])} | {cell(us[4096])} | "
            f"{ratio(us[4096], us[128])} |"
        )
        print(lines[-1], flush=True)
    table(
        report,
        f"Cost per simulated job (simulate us/job): {small_n:,} and {big:,} jobs on 1,024 x 8 "
        f"GPUs, and {jobs:,} jobs on 128 x 8 and 4,096 x 8 GPUs:",
        lines,
        f"| policy | {small_n:,} jobs | {big:,} jobs | ratio | 128 nodes | 4,096 nodes | ratio |\n"
        "|---|---:|---:|---:|---:|---:|---:|",
    )


if __name__ == "__main__":
    main()
