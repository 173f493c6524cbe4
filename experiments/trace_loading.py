"""Loading-speed benchmark: synthetic canonical traces of N jobs as CSV and Parquet.

Usage::

    python -m experiments.trace_loading [--jobs 1000000] [--dir /tmp/trace-bench] [--philly FILE]
        [--markdown FILE]

Writes the synthetic files once (seeded), then reports the wall time of
:func:`traces.file.load` on each, of a cold and a warm :mod:`traces.cache` load of the CSV, and
optionally of :func:`traces.philly.load` on a real ``philly.csv``. About 30 s for 1M jobs the
first time (writing the files), a few seconds after. ``--markdown FILE`` writes the table
between the ``trace_loading`` markers of FILE (traces/README.md: "Cache for big files").
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import _cli
from traces import file as file_format
from traces import philly

__all__ = ["main", "synthetic_jobs", "timed"]

NAME = "trace_loading"


def synthetic_jobs(n: int, seed: int = 0) -> pd.DataFrame:
    """A random canonical job table of ``n`` jobs with every canonical column.

    Args:
        n: number of jobs.
        seed: RNG seed.

    Returns:
        The table (valid for :func:`traces.canonical.validate`).
    """
    rng = np.random.default_rng(seed)
    gpus = rng.choice([0, 1, 2, 4, 8], n, p=[0.1, 0.7, 0.1, 0.05, 0.05])
    milli = np.where(gpus == 0, 0, np.where(gpus == 1, rng.choice([250, 500, 1000], n), 1000))
    return pd.DataFrame(
        {
            "job_id": np.arange(n),
            "submit_time": np.sort(rng.uniform(0, 1e7, n)).round(3),
            "duration": (rng.exponential(3600, n) + 1).round(3),
            "num_gpus": gpus,
            "gpu_milli": milli,
            "gpu_type": rng.choice(["", "V100", "A100-80GB|H100"], n),
            "num_cpus": rng.integers(0, 64, n).astype(float),
            "memory_gb": rng.integers(0, 512, n).astype(float),
            "kind": rng.choice(["train", "infer"], n),
            "queue": rng.choice(["a", "b", "c"], n),
            "priority": rng.integers(0, 3, n),
        }
    )


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints one line per measurement."""
    parser = _cli.parser(__doc__, name=NAME)
    parser.add_argument("--jobs", type=_cli.positive_int, default=1_000_000)
    parser.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "trace-bench"))
    parser.add_argument("--philly", type=Path, help="a full Pollux philly.csv to time as well")
    argv = None if argv is None else list(argv)
    args = _cli.parse(parser, argv, NAME)
    if args.philly is not None:
        _cli.need(args.philly, "the --philly file", "give the path of a Pollux philly.csv")
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    csv, pq = folder / f"jobs{args.jobs}.csv", folder / f"jobs{args.jobs}.parquet"
    if not (csv.is_file() and pq.is_file()):
        jobs = synthetic_jobs(args.jobs)
        jobs.to_csv(csv, index=False)
        jobs.to_parquet(pq, index=False)
    cache = folder / "cache"
    for old in cache.glob("*") if cache.is_dir() else ():
        old.unlink()
    results = {
        f"canonical CSV, {args.jobs:,} jobs": timed(lambda: file_format.load(str(csv))),
        f"canonical Parquet, {args.jobs:,} jobs": timed(lambda: file_format.load(str(pq))),
        "canonical CSV, cache miss": timed(
            lambda: file_format.load(str(csv), cache_dir=str(cache))
        ),
        "canonical CSV, cache hit": timed(lambda: file_format.load(str(csv), cache_dir=str(cache))),
    }
    if args.philly:
        rows = len(philly.load(str(args.philly)).jobs)
        results[f"{args.philly.name} (Pollux, {rows:,} jobs)"] = timed(
            lambda: philly.load(str(args.philly))
        )
    for name, seconds in results.items():
        print(f"{name:<40} {seconds:7.2f} s")
    table = "\n".join(
        ["| load | wall (s) |", "|---|---:|"]
        + [f"| {name} | {seconds:.2f} |" for name, seconds in results.items()]
    )
    config = (
        f"Synthetic canonical traces of {args.jobs:,} jobs (seeded, every canonical column, "
        "`synthetic_jobs`) written once as CSV and Parquet, then each loaded once with "
        "`traces.file.load` (cold OS cache not forced); the cache rows go through "
        "`trace.cache_dir` (a miss parses and stores, a hit reads the stored Parquet)"
        + (f"; `{args.philly.name}` loaded with `traces.philly.load`" if args.philly else "")
        + "."
    )
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, table)
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
