"""Tiresias (NSDI'19) simulator job traces and cluster spec files (SymbioticLab/Tiresias).

File formats (``simulator/`` of SymbioticLab/Tiresias):

- job trace (``60_job.csv``): CSV with header ``job_id,num_gpu,submit_time,iterations,
  model_name,duration,interval``; times in seconds from 0.
- cluster spec (``cluster_spec.csv``, ``n32g4.csv``, ...): CSV with header ``num_switch,
  num_node_p_switch,num_gpu_p_node,num_cpu_p_node,mem_p_node`` and one row (memory in GB).

``traces/data/tiresias_60_job.csv`` and ``traces/data/tiresias_cluster_spec.csv`` are verbatim
copies of the upstream files (see ``traces/data/README.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from traces.cache import cached_read
from traces.canonical import Trace, TraceError, finish, validate
from traces.tables import check, duration_rule, numbers, read_csv_table, strings

if TYPE_CHECKING:
    from simulator.core.cluster import ClusterSpec

__all__ = [
    "CLUSTER_COLUMNS",
    "CLUSTER_SPEC",
    "COLUMNS",
    "REQUIRED",
    "SAMPLE",
    "cluster",
    "load",
    "read",
]

COLUMNS = ("job_id", "num_gpu", "submit_time", "iterations", "model_name", "duration", "interval")
"""Header of the Tiresias job traces (``*_job.csv``)."""

REQUIRED = ("job_id", "num_gpu", "submit_time", "duration")
"""Job-trace columns the loader cannot do without."""

CLUSTER_COLUMNS = (
    "num_switch",
    "num_node_p_switch",
    "num_gpu_p_node",
    "num_cpu_p_node",
    "mem_p_node",
)
"""Header of the Tiresias cluster spec files."""

_DATA = Path(__file__).resolve().parent / "data"
SAMPLE = _DATA / "tiresias_60_job.csv"
"""Bundled ``60_job.csv`` (60 jobs), used when ``path`` is None."""
CLUSTER_SPEC = _DATA / "tiresias_cluster_spec.csv"
"""Bundled ``cluster_spec.csv`` (1 switch x 16 nodes x 4 GPUs, 128 CPUs, 254 GB)."""


def read(
    path: str | Path | None = None, *, zero_duration: str = "drop", min_duration: float = 1.0
) -> Trace:
    """Read a Tiresias job trace in full (no trace options applied); see :func:`load`.

    Args:
        path: the CSV; ``None`` = the bundled ``60_job.csv``.
        zero_duration: see :func:`load`.
        min_duration: see :func:`load`.

    Returns:
        The canonical trace with its report.
    """
    p = SAMPLE if path is None else Path(path)
    source = str(p)
    table, lines = read_csv_table(
        p, required=REQUIRED, dtype={"model_name": str}, what="Tiresias job trace (*_job.csv)"
    )
    report: dict[str, int] = {}
    gpus = numbers(table, "num_gpu", source, lines, integer=True)
    check(gpus >= 0, table["num_gpu"], source, "num_gpu", "expected a GPU count >= 0", lines)
    check(gpus < 2**31, table["num_gpu"], source, "num_gpu", "expected a GPU count < 2**31", lines)
    submit = numbers(table, "submit_time", source, lines)
    check(submit >= 0, table["submit_time"], source, "submit_time", "expected >= 0 s", lines)
    duration, keep = duration_rule(
        numbers(table, "duration", source, lines),
        source,
        "duration",
        lines,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
        raw=table["duration"],
    )
    jobs = pd.DataFrame(
        {
            "job_id": table["job_id"],
            "submit_time": submit,
            "duration": duration,
            "num_gpus": gpus.astype(np.int64),
        }
    )
    if "model_name" in table:
        jobs["model_name"] = strings(table["model_name"], "")
    if "iterations" in table:
        iters = numbers(table, "iterations", source, lines, integer=True)
        ok = (iters >= 0) & (iters < 2**53)
        check(ok, table["iterations"], source, "iterations", "expected 0 <= n < 2**53", lines)
        jobs["iterations"] = iters.astype(np.int64)
    if not keep.all():
        jobs, lines = jobs.loc[keep].reset_index(drop=True), lines[keep]
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def load(
    path: str | Path | None = None,
    *,
    zero_duration: str = "drop",
    min_duration: float = 1.0,
    cache_dir: str | None = None,
    start: float | str | None = None,
    end: float | str | None = None,
    rebase: bool = True,
    sample_frac: float | None = None,
    max_jobs: int | None = None,
    time_scale: float = 1.0,
    queues: Iterable[str] | str | None = None,
    min_gpus: int | None = None,
    max_gpus: int | None = None,
    seed: int = 0,
) -> Trace:
    """Load a Tiresias simulator job trace (``*_job.csv``) as a canonical trace.

    Column derivation:

    - ``job_id`` = ``job_id`` (int when every id is a whole number, else text).
    - ``submit_time`` = ``submit_time`` (seconds from 0).
    - ``duration`` = ``duration`` (seconds; the Tiresias simulator ends the job after it).
    - ``num_gpus`` = ``num_gpu`` (whole job, a gang).
    - Extra columns: ``model_name`` (TF-benchmark CNN the upstream simulator uses to look up
      memory and tensor sizes) and ``iterations`` (unused by Tiresias' own policies).
    - ``interval`` (seconds to the next submission) is derived from ``submit_time`` and not
      kept; other columns of a file (e.g. ``start_time`` of ``tf_job.csv``) are not read.
    - ``gpu_milli`` 1000, ``gpu_type`` "" (any; see :func:`cluster`), ``num_cpus`` /
      ``memory_gb`` 0, ``kind`` "train", ``queue`` "default", ``priority`` 0.

    Every row is a job that ran; the files carry no state. Negative values and unparseable
    cells are errors naming row, line and column; a duplicate ``job_id`` is an error naming
    both rows (the upstream ``tf_job.csv`` lists job 10 twice). Zero durations follow
    ``zero_duration``.

    Args:
        path: the job CSV; ``None`` = bundled ``traces/data/tiresias_60_job.csv``.
        zero_duration: ``drop``, ``repair`` or ``error`` for zero-duration jobs.
        min_duration: seconds given to repaired zero-duration jobs.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep jobs submitted at or after this time (seconds).
        end: keep jobs submitted before this time (seconds).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by submit time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these queues (all jobs are in ``default``).
        min_gpus: keep jobs with at least this many GPUs.
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/repaired/filtered rows.
    """
    options = {"zero_duration": zero_duration, "min_duration": min_duration}
    trace = cached_read("tiresias", read, path, options, cache_dir)
    return finish(
        trace,
        start=start,
        end=end,
        rebase=rebase,
        sample_frac=sample_frac,
        max_jobs=max_jobs,
        time_scale=time_scale,
        queues=queues,
        min_gpus=min_gpus,
        max_gpus=max_gpus,
        seed=seed,
    )


def cluster(
    path: str | Path | None = None, gpu_type: str = "P100", name: str | None = None
) -> ClusterSpec:
    """Build the cluster of a Tiresias cluster spec file.

    ``num_switch x num_node_p_switch`` identical nodes with ``num_gpu_p_node`` GPUs,
    ``num_cpu_p_node`` CPU cores and ``mem_p_node`` GB each; the nodes under one switch form
    one rack (``nodes_per_rack = num_node_p_switch``), as in the Tiresias simulator's
    cluster -> switch -> node hierarchy. The file names no GPU model: ``gpu_type`` defaults to
    ``P100``, the GPU of the Tiresias paper's testbed (NSDI'19: the Michigan ConFlux cluster,
    60 P100 GPUs in 4-GPU machines).

    Args:
        path: the spec CSV; ``None`` = bundled ``traces/data/tiresias_cluster_spec.csv``.
        gpu_type: GPU model of every node.
        name: cluster name (default: the file stem, ``tiresias`` for the bundled file).

    Returns:
        The cluster spec.

    Raises:
        TraceError: missing/empty file, missing column, not exactly one data row, a value
            that is not a whole number >= 1 (>= 0 for CPUs and memory).
    """
    from simulator.core.cluster import ClusterSpec

    p = CLUSTER_SPEC if path is None else Path(path)
    source = str(p)
    table, lines = read_csv_table(
        p, required=CLUSTER_COLUMNS, what="Tiresias cluster spec (num_switch,num_node_p_switch,...)"
    )
    if len(table) != 1:
        raise TraceError(f"{source}: expected exactly one data row, found {len(table)}")
    values = {}
    for col in CLUSTER_COLUMNS:
        v = numbers(table, col, source, lines, integer=col not in ("mem_p_node",))
        low = 0 if col in ("num_cpu_p_node", "mem_p_node") else 1
        check(v >= low, table[col], source, col, f"expected a value >= {low}", lines)
        values[col] = v[0]
    per_switch = int(values["num_node_p_switch"])
    return ClusterSpec.homogeneous(
        num_nodes=int(values["num_switch"]) * per_switch,
        gpus_per_node=int(values["num_gpu_p_node"]),
        gpu_type=gpu_type,
        cpus_per_node=float(values["num_cpu_p_node"]),
        memory_gb_per_node=float(values["mem_p_node"]),
        nodes_per_rack=per_switch,
        name=name or ("tiresias" if path is None else p.stem),
    )
