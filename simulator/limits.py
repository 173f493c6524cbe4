"""Resource limits of a run: a memory estimate checked before building anything, and a time limit.

Memory of a run grows linearly with the jobs and the nodes. The costs below were measured on
the development machine (Python 3.11, NumPy 2, pandas 2, x86-64) as the rise of the process's
peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) from just before the
:class:`~simulator.core.engine.Simulation` is built until its results are written (``jobs.parquet``,
``timeline.parquet``, ``summary.json``), FIFO on a synthetic canonical trace
(:mod:`traces.synthetic`); rerun ``python -m experiments.memory_limits`` to measure them again:

=============================  ==========================  ===================================
jobs x nodes x GPUs per node    peak rise (measured)        estimate (:func:`estimate_bytes`)
=============================  ==========================  ===================================
400,000 x 64 x 8                297 MB                      347 MB
800,000 x 64 x 8                538 MB                      627 MB
1,600,000 x 64 x 8              1,077 MB                    1,187 MB
3,200,000 x 64 x 8              2,129 MB                    2,307 MB
10,000,000 x 64 x 8             6,739 MB                    7,074 MB
20,000 x 32,000 x 8             40 MB                       100 MB
20,000 x 64,000 x 2             37 MB                       106 MB
=============================  ==========================  ===================================

Measured with FIFO before the two event loops became one (``python -m
experiments.memory_limits`` measures again); the slope is 670-675 bytes per
job (673 from 800k to 1.6M jobs, 660 to 3.2M, 674 to 10M);
per node about 320 bytes plus 32 per GPU (cluster arrays, placement index, node names);
``record_events=True``
adds about 800 bytes per job (the event log and placement log). The trace itself, already in
memory when the check runs, takes about 120 bytes per job for a canonical table with integer
ids (more with text ids and extra columns, which are copied into the job table and the results).

A 10M-job run took 8.0 GB peak resident memory for the whole process (trace included) and
36 s including generating the trace; it fits in 24 GiB, where
the check lets about 33M jobs through (28M counting the trace); a cluster of 100k GPUs
(12,500 x 8) adds 7 MB: cluster size is never the memory limit (it is a time limit: every
scheduling pass scans node arrays).

On the command line, ``python -m simulator.limits JOBS NODES GPUS_PER_NODE`` prints the
estimate and whether it fits here (exit status 0 it fits, 1 it does not, 2 bad arguments).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "BASE_BYTES",
    "BYTES_PER_EVENT_JOB",
    "BYTES_PER_GPU",
    "BYTES_PER_JOB",
    "BYTES_PER_NODE",
    "TRACE_BYTES_PER_JOB",
    "MemoryLimitError",
    "TimeLimitError",
    "check",
    "check_cluster",
    "estimate_bytes",
    "main",
    "memory_available",
    "time_limit",
]

BYTES_PER_JOB = 700
"""Peak bytes per job from building the simulation to writing results (620-660 measured)."""
BYTES_PER_EVENT_JOB = 900
"""Extra bytes per job with ``record_events=True`` (about 800 measured)."""
BYTES_PER_NODE = 320
"""Bytes per node (cluster state arrays, placement index, node names)."""
BYTES_PER_GPU = 32
"""Bytes per GPU slot (``num_nodes x max GPUs per node`` free-milli-GPU array and indexes)."""
BASE_BYTES = 64 * 2**20
"""Fixed cost of a run (allocator arenas, Arrow buffers of the result files)."""
TRACE_BYTES_PER_JOB = 120
"""Bytes per job of a canonical trace table in memory (integer ids, no extra columns)."""

_GIB = 2**30


class MemoryLimitError(MemoryError):
    """A run would need more memory than is available; raised before anything is built."""


class TimeLimitError(TimeoutError):
    """A block guarded by :func:`time_limit` ran longer than its wall-clock limit."""


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"limits: {name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"limits: {name} must be finite, got {value!r}")
    return int(math.ceil(value))


def estimate_bytes(
    n_jobs: int,
    num_nodes: int,
    gpus_per_node: int,
    *,
    record_events: bool = False,
    include_trace: bool = False,
) -> int:
    """Estimated peak memory of a run, in bytes (see the module docstring for the figures).

    Args:
        n_jobs: jobs in the trace.
        num_nodes: nodes of the cluster.
        gpus_per_node: GPUs per node (the largest node's count for a heterogeneous cluster).
        record_events: the run keeps the event log.
        include_trace: add the canonical trace table itself (for estimates made before the
            trace is loaded; the check in the entry point runs after loading).

    Returns:
        Bytes.

    Raises:
        ValueError: a negative, NaN or infinite count.
    """
    jobs = _count("n_jobs", n_jobs)
    nodes = _count("num_nodes", num_nodes)
    gpus = _count("gpus_per_node", gpus_per_node)
    per_job = BYTES_PER_JOB + (BYTES_PER_EVENT_JOB if record_events else 0)
    per_job += TRACE_BYTES_PER_JOB if include_trace else 0
    return BASE_BYTES + jobs * per_job + nodes * (BYTES_PER_NODE + gpus * BYTES_PER_GPU)


def memory_available(
    meminfo: str | Path = "/proc/meminfo", cgroup: str | Path = "/sys/fs/cgroup"
) -> int | None:
    """Memory this process may still use, bytes: ``MemAvailable``, capped by a cgroup limit.

    Args:
        meminfo: the ``meminfo`` file to read.
        cgroup: cgroup v2 folder whose ``memory.max`` minus ``memory.current`` caps the answer
            (a container's limit can be far below the machine's free memory).

    Returns:
        Bytes, or None when the files cannot be read (not Linux).
    """
    found = None
    try:
        for line in Path(meminfo).read_text().splitlines():
            key, _, rest = line.partition(":")
            if key == "MemAvailable":
                found = int(rest.split()[0]) * 1024  # the file says kB and means KiB
                break
    except (OSError, ValueError, IndexError):
        found = None
    try:
        limit = Path(cgroup, "memory.max").read_text().strip()
        if limit != "max":
            left = int(limit) - int(Path(cgroup, "memory.current").read_text().strip())
            found = left if found is None else min(found, left)
    except (OSError, ValueError):
        pass
    return found


def check(
    n_jobs: int,
    num_nodes: int,
    gpus_per_node: int,
    available_bytes: int | None = None,
    *,
    record_events: bool = False,
    fraction: float = 0.9,
) -> int:
    """Fail fast when a run would not fit in memory; call before building the Simulation.

    Args:
        n_jobs: jobs in the (loaded) trace.
        num_nodes: nodes of the cluster.
        gpus_per_node: GPUs per node (the largest node's count for a heterogeneous cluster).
        available_bytes: memory the run may use (None = read it with
            :func:`memory_available`; if that is unknown the check passes).
        record_events: the run keeps the event log.
        fraction: share of the available memory the run may take (the rest is head room for
            the estimate's error and for other processes).

    Returns:
        The estimate, bytes.

    Raises:
        MemoryLimitError: the estimate exceeds ``fraction`` of the available memory (the
            message gives both, the per-job cost and what to do).
        ValueError: a negative, NaN or infinite count, or ``fraction`` outside (0, 1].
    """
    if not (isinstance(fraction, int | float) and 0 < fraction <= 1):
        raise ValueError(f"limits: fraction must be in (0, 1], got {fraction!r}")
    need = estimate_bytes(n_jobs, num_nodes, gpus_per_node, record_events=record_events)
    have = memory_available() if available_bytes is None else available_bytes
    if have is None or need <= fraction * have:
        return need
    per_job = BYTES_PER_JOB + (BYTES_PER_EVENT_JOB if record_events else 0)
    fits = max(0, int((fraction * have - (need - int(n_jobs) * per_job)) // per_job))
    raise MemoryLimitError(
        f"not enough memory: {int(n_jobs):,} jobs on {int(num_nodes):,} nodes x "
        f"{int(gpus_per_node)} GPUs need about {need / _GIB:.1f} GiB "
        f"(~{per_job} bytes per job{' with sim.record_events' if record_events else ''}), "
        f"{have / _GIB:.1f} GiB available (at most {fraction:.0%} of it is used); about "
        f"{fits:,} jobs would fit: cut the trace (trace.max_jobs, trace.sample_frac, "
        f"trace.start/end){', turn off sim.record_events' if record_events else ''} or use a "
        "machine with more memory"
    )


def check_cluster(n_jobs: int, cluster: object, **kwargs: object) -> int:
    """:func:`check` for a :class:`~simulator.core.cluster.ClusterSpec` (uses its largest node).

    Args:
        n_jobs: jobs in the (loaded) trace.
        cluster: the cluster spec (``num_nodes`` and ``max_gpus_per_node`` are read).
        **kwargs: ``available_bytes``, ``record_events``, ``fraction`` of :func:`check`.

    Returns:
        The estimate, bytes.
    """
    return check(n_jobs, cluster.num_nodes, max(cluster.max_gpus_per_node, 1), **kwargs)


# ---------------------------------------------------------------------------------- time
@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimeLimitError` in the guarded block after ``seconds`` of wall time.

    Uses ``SIGALRM``, so it works in the main thread of a Unix process and interrupts Python
    code (a call stuck inside C code is interrupted when it returns to Python). Elsewhere it
    does nothing. The previous handler and timer are restored on exit.

    Args:
        seconds: the limit, > 0.
    """
    if not seconds > 0:
        raise ValueError(f"time_limit: seconds must be > 0, got {seconds!r}")
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeLimitError(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------- command line
def _count_arg(text: str) -> int:
    """An argparse type: a count >= 0 (``1e6`` and ``1_000_000`` accepted)."""
    try:
        value = float(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    """``python -m simulator.limits JOBS NODES GPUS_PER_NODE``: would such a run fit here?

    Prints the estimate (:func:`estimate_bytes`, the trace table included) and the memory the
    run may use; the check is :func:`check`'s, the one the simulator makes before a run.

    Returns:
        The exit status: 0 it fits, 1 it does not (the message says what would), 2 bad
        arguments (from argparse), 130 interrupted.
    """
    parser = argparse.ArgumentParser(
        prog="python -m simulator.limits",
        description="Memory estimate of a run and whether it fits in this machine's memory.",
        epilog="Exit status: 0 it fits, 1 it does not, 2 bad arguments, 130 interrupted.",
    )
    parser.add_argument("jobs", type=_count_arg, help="jobs in the trace")
    parser.add_argument("nodes", type=_count_arg, help="nodes of the cluster")
    parser.add_argument("gpus_per_node", type=_count_arg, help="GPUs per node (the largest)")
    parser.add_argument("--record-events", action="store_true", help="the run keeps its event log")
    parser.add_argument(
        "--available-gb",
        type=float,
        default=None,
        metavar="GIB",
        help="memory the run may use, GiB (default: MemAvailable, capped by the cgroup limit)",
    )
    args = parser.parse_args(argv)
    if args.available_gb is not None and not (
        math.isfinite(args.available_gb) and args.available_gb > 0
    ):
        parser.error(f"--available-gb must be > 0, got {args.available_gb}")
    have = None if args.available_gb is None else int(args.available_gb * _GIB)
    try:
        need = check(
            args.jobs, args.nodes, args.gpus_per_node, have, record_events=args.record_events
        )
    except MemoryLimitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    have = memory_available() if have is None else have
    trace = estimate_bytes(
        args.jobs,
        args.nodes,
        args.gpus_per_node,
        record_events=args.record_events,
        include_trace=True,
    )
    room = "unknown" if have is None else f"{have / _GIB:.1f} GiB (90 % of it may be used)"
    print(
        f"{args.jobs:,} jobs on {args.nodes:,} nodes x {args.gpus_per_node} GPUs: about "
        f"{need / _GIB:.2f} GiB ({trace / _GIB:.2f} GiB with the trace table); available "
        f"{room}: fits"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
