"""AcmeTrace (Shanghai AI Lab, NSDI'24): LLM-development jobs of the Seren and Kalos clusters.

Two file layouts are read (detected from the header, or forced with ``layout``):

- ``job_trace``: the official job logs ``data/job_trace/trace_{seren,kalos}.csv`` of
  InternLM/AcmeTrace, header ``job_id,user,node_num,gpu_num,cpu_num,[mem_per_pod_GB,
  shared_mem_per_pod,]type,state,submit_time,start_time,end_time,[fail_time,stop_time,]
  duration,queue,gpu_time`` (bracketed columns only in Kalos); time zone-aware date-times
  (Kalos ``+00:00``, Seren ``+08:00``).
- ``converted``: ``converted_kalos_trace.csv`` of the hyunnnchoi/AcmeTrace fork, header
  ``job_id,arrival_time,num_iteration,iteration_computing_time,iteration_networking_time,
  gpu_workers,ps,gpu_per_worker,cpu_per_gpu_worker,cpu_per_ps_worker,tensorsizes,
  profiled_network``: the COMPLETED Pretrain/SFT/Other GPU jobs of ``trace_kalos.csv``,
  re-encoded by the fork's ``transform_trace.py`` (lossy; see :func:`load`).

``traces/data/acmetrace_kalos_converted_sample.csv`` holds the first 200 rows of the converted
file; ``acmetrace_{kalos,seren}_readme_rows.csv`` the example rows of the upstream README and
``acmetrace_cluster_summary.csv`` the official per-cluster summary (``traces/data/README.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from traces.cache import cached_read
from traces.canonical import Trace, TraceError, finish, validate
from traces.tables import (
    add_count,
    blank_cells,
    check,
    duration_rule,
    numbers,
    read_csv_table,
    strings,
    timestamps,
)

__all__ = [
    "CANCELLED_STATES",
    "CLUSTER_SUMMARY",
    "COMPLETED_STATES",
    "CONVERTED_COLUMNS",
    "CONVERTED_ITERATION_S",
    "FAILED_STATES",
    "JOB_TRACE_REQUIRED",
    "LAYOUTS",
    "SAMPLE",
    "STATE_RULES",
    "TIME_FORMAT",
    "UNFINISHED_STATES",
    "cluster_summary",
    "load",
    "read",
]

CONVERTED_COLUMNS = (
    "job_id",
    "arrival_time",
    "num_iteration",
    "iteration_computing_time",
    "iteration_networking_time",
    "gpu_workers",
    "ps",
    "gpu_per_worker",
    "cpu_per_gpu_worker",
    "cpu_per_ps_worker",
    "tensorsizes",
    "profiled_network",
)
"""Header of the fork's ``converted_kalos_trace.csv``."""

_CONVERTED_REQUIRED = ("job_id", "arrival_time", "num_iteration", "gpu_workers", "gpu_per_worker")

JOB_TRACE_REQUIRED = ("job_id", "node_num", "gpu_num", "state", "submit_time", "start_time")
"""Columns of ``trace_{seren,kalos}.csv`` the loader cannot do without (plus ``end_time``)."""

LAYOUTS = ("auto", "job_trace", "converted")
"""Values of the ``layout`` option."""

COMPLETED_STATES = ("COMPLETED",)
FAILED_STATES = ("FAILED", "TIMEOUT", "NODE_FAIL")
"""States counted as failed (the AcmeTrace README regards TIMEOUT and NODE_FAIL as failed)."""
CANCELLED_STATES = ("CANCELLED",)
UNFINISHED_STATES = ("RUNNING", "PENDING")
"""States of jobs that had not ended when the log was cut (no usable run time)."""

STATE_RULES = ("keep", "drop")
"""Values of the ``failed`` and ``cancelled`` options."""

CONVERTED_ITERATION_S = 0.5
"""Seconds per iteration the fork divided the Kalos ``duration`` by (``avg_iter_time``)."""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S%z"
"""Format of the date-time columns of ``trace_{seren,kalos}.csv`` (``2023-05-17 11:00:58+00:00``).
"""

_DATA = Path(__file__).resolve().parent / "data"
SAMPLE = _DATA / "acmetrace_kalos_converted_sample.csv"
"""First 200 jobs of the converted Kalos trace, used when ``path`` is None."""
CLUSTER_SUMMARY = _DATA / "acmetrace_cluster_summary.csv"
"""Official ``cluster_summary.csv`` (Seren, Kalos, Philly, Helios, PAI job statistics)."""


def read(
    path: str | Path | None = None,
    *,
    layout: str = "auto",
    failed: str = "keep",
    cancelled: str = "keep",
    iteration_s: float = CONVERTED_ITERATION_S,
    zero_duration: str = "drop",
    min_duration: float = 1.0,
) -> Trace:
    """Read an AcmeTrace file in full (no trace options applied); see :func:`load`.

    Args:
        path: the CSV; ``None`` = the bundled converted Kalos sample.
        layout: see :func:`load`.
        failed: see :func:`load`.
        cancelled: see :func:`load`.
        iteration_s: see :func:`load`.
        zero_duration: see :func:`load`.
        min_duration: see :func:`load`.

    Returns:
        The canonical trace with its report.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    for name, rule in (("failed", failed), ("cancelled", cancelled)):
        if rule not in STATE_RULES:
            raise ValueError(f"{name} must be one of {STATE_RULES}, got {rule!r}")
    if not iteration_s > 0:
        raise ValueError(f"iteration_s must be > 0 seconds, got {iteration_s!r}")
    p = SAMPLE if path is None else Path(path)
    table, lines = read_csv_table(
        p,
        dtype={c: str for c in ("user", "type", "state", "submit_time", "start_time", "end_time")},
        what="AcmeTrace job trace or converted Kalos trace",
    )
    if layout == "auto":
        layout = _layout(p, table)
    rule = {"zero_duration": zero_duration, "min_duration": min_duration}
    if layout == "converted":
        return _converted(p, table, lines, iteration_s, rule)
    return _job_trace(p, table, lines, failed, cancelled, rule)


def _layout(p: Path, table: pd.DataFrame) -> str:
    cols = set(table.columns)
    if {"arrival_time", "num_iteration"} <= cols:
        return "converted"
    if {"submit_time", "state"} <= cols:
        return "job_trace"
    raise TraceError(
        f"{p}: cannot tell the AcmeTrace layout from the header {list(table.columns)}; expected "
        f"the job-trace columns {list(JOB_TRACE_REQUIRED)} or the converted columns "
        f"{list(_CONVERTED_REQUIRED)} (or set layout=job_trace|converted)"
    )


def _require(p: Path, table: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise TraceError(
            f"{p}: missing column(s) {missing}; found {list(table.columns)} "
            f"(expected format: {what})"
        )


def _converted(
    p: Path, table: pd.DataFrame, lines: np.ndarray, iteration_s: float, rule: dict
) -> Trace:
    """The fork's ``converted_kalos_trace.csv`` (see :func:`load` for the derivation)."""
    _require(p, table, _CONVERTED_REQUIRED, "converted Kalos trace (hyunnnchoi/AcmeTrace)")
    source, report = str(p), {}
    arrival = numbers(table, "arrival_time", source, lines)
    iters = numbers(table, "num_iteration", source, lines, integer=True)
    check(iters >= 0, table["num_iteration"], source, "num_iteration", "expected >= 0", lines)
    workers = numbers(table, "gpu_workers", source, lines, integer=True)
    ok = (workers >= 1) & (workers < 2**31)
    check(ok, table["gpu_workers"], source, "gpu_workers", "expected 1 <= n < 2**31", lines)
    per_worker = numbers(table, "gpu_per_worker", source, lines)
    check(
        per_worker >= 0, table["gpu_per_worker"], source, "gpu_per_worker", "expected >= 0", lines
    )
    gpus = workers * per_worker
    check(
        (gpus == np.round(gpus)) & (gpus < 2**31),
        table["gpu_per_worker"],
        source,
        "gpu_per_worker",
        "gpu_workers x gpu_per_worker is not a whole number of GPUs below 2**31",
        lines,
    )
    duration, keep = duration_rule(
        iters * float(iteration_s),
        source,
        "num_iteration",
        lines,
        report=report,
        raw=table["num_iteration"],
        **rule,
    )
    jobs = pd.DataFrame(
        {
            "job_id": table["job_id"],
            "submit_time": arrival,
            "duration": duration,
            "num_gpus": gpus.astype(np.int64),
            "num_cpus": _per_unit(table, "cpu_per_gpu_worker", gpus, source, lines),
            "memory_gb": _per_unit(table, "tensorsizes", workers * 100.0, source, lines),
            "state": "COMPLETED",
            "requested_nodes": workers.astype(np.int64),
        }
    )
    if "profiled_network" in table:
        net = numbers(table, "profiled_network", source, lines)
        jobs["type"] = np.where(net == 1000, "Pretrain", "SFT_or_Other")
    if not keep.all():
        jobs, lines = jobs.loc[keep].reset_index(drop=True), lines[keep]
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def _per_unit(
    table: pd.DataFrame, col: str, units: np.ndarray, source: str, lines: np.ndarray
) -> np.ndarray:
    """``col x units`` (0 when the column is absent); ``col`` must be >= 0."""
    if col not in table:
        return np.zeros(len(table))
    vals = numbers(table, col, source, lines)
    check(vals >= 0, table[col], source, col, "expected a value >= 0", lines)
    return vals * units


def _job_trace(
    p: Path,
    table: pd.DataFrame,
    lines: np.ndarray,
    failed: str,
    cancelled: str,
    rule: dict,
) -> Trace:
    """The official ``trace_{seren,kalos}.csv`` (see :func:`load` for the derivation)."""
    _require(p, table, (*JOB_TRACE_REQUIRED, "end_time"), "AcmeTrace trace_{seren,kalos}.csv")
    source, report = str(p), {}
    state = strings(table["state"], "").str.strip().str.upper()
    known = (*COMPLETED_STATES, *FAILED_STATES, *CANCELLED_STATES, *UNFINISHED_STATES)
    check(
        state.isin(known).to_numpy(),
        table["state"],
        source,
        "state",
        f"unknown job state (expected one of {list(known)})",
        lines,
    )
    is_failed = state.isin(FAILED_STATES).to_numpy()
    is_cancelled = state.isin(CANCELLED_STATES).to_numpy()
    keep = np.ones(len(table), dtype=bool)
    if failed == "drop":
        add_count(report, "dropped_failed", is_failed.sum())
        keep &= ~is_failed
    if cancelled == "drop":
        add_count(report, "dropped_cancelled", is_cancelled.sum())
        keep &= ~is_cancelled
    submit = timestamps(table, "submit_time", source, lines, fmt=TIME_FORMAT)
    started = timestamps(table, "start_time", source, lines, fmt=TIME_FORMAT, allow_missing=True)
    ended = timestamps(table, "end_time", source, lines, fmt=TIME_FORMAT, allow_missing=True)
    unfinished = keep & (state.isin(UNFINISHED_STATES).to_numpy() | np.isnan(ended))
    never = keep & np.isnan(started) & ~unfinished
    add_count(report, "dropped_unfinished", unfinished.sum())
    add_count(report, "dropped_never_started", never.sum())
    keep &= ~unfinished & ~never
    run = np.where(keep, ended - started, 1.0)
    check(
        ~(run < 0),
        table["end_time"],
        source,
        "end_time",
        "end_time is before start_time",
        lines,
    )
    duration, ok = duration_rule(run, source, "start_time, end_time", lines, report=report, **rule)
    keep &= ok
    gpus = numbers(table, "gpu_num", source, lines, integer=True)
    ok = (gpus >= 0) & (gpus < 2**31)
    check(ok, table["gpu_num"], source, "gpu_num", "expected a GPU count in 0..2**31-1", lines)
    nodes = numbers(table, "node_num", source, lines, integer=True)
    ok = (nodes >= 0) & (nodes < 2**31)
    check(ok, table["node_num"], source, "node_num", "expected a node count in 0..2**31-1", lines)
    jobs = pd.DataFrame(
        {
            "job_id": table["job_id"],
            "submit_time": submit,
            "duration": duration,
            "num_gpus": gpus.astype(np.int64),
            "num_cpus": _per_unit(table, "cpu_num", np.ones(len(table)), source, lines),
            "memory_gb": _pod_memory(table, nodes, source, lines),
            "state": state,
            "type": strings(table["type"], "") if "type" in table else "",
            "user": strings(table["user"], "") if "user" in table else "",
            "requested_nodes": nodes.astype(np.int64),
            "trace_wait_time": started - submit,
        }
    )
    jobs, lines = jobs.loc[keep].reset_index(drop=True), lines[keep]
    add_count(report, "kept_failed", jobs["state"].isin(FAILED_STATES).sum())
    add_count(report, "kept_cancelled", jobs["state"].isin(CANCELLED_STATES).sum())
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def _pod_memory(
    table: pd.DataFrame, nodes: np.ndarray, source: str, lines: np.ndarray
) -> np.ndarray:
    """Kalos ``mem_per_pod_GB`` x ``node_num`` (one pod per node); 0 = not given (Seren)."""
    if "mem_per_pod_GB" not in table:
        return np.zeros(len(table))
    per_pod = numbers(table, "mem_per_pod_GB", source, lines, fill=0.0)
    check(per_pod >= 0, table["mem_per_pod_GB"], source, "mem_per_pod_GB", "expected >= 0", lines)
    return per_pod * nodes


def load(
    path: str | Path | None = None,
    *,
    layout: str = "auto",
    failed: str = "keep",
    cancelled: str = "keep",
    iteration_s: float = CONVERTED_ITERATION_S,
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
    """Load an AcmeTrace job log (official or the converted Kalos file) as a canonical trace.

    Official job logs (``layout=job_trace``, ``trace_{seren,kalos}.csv``):

    - ``job_id`` as given; ``submit_time`` = ``submit_time`` (zone-aware, as Unix seconds UTC
      before rebasing; ``start``/``end`` date-time strings are UTC).
    - ``duration`` = ``end_time - start_time`` (seconds of execution). The file's ``duration``
      column is not used: in ``trace_kalos.csv`` it is ``end_time - submit_time`` (queueing
      included; see the README's own Kalos example rows), in Seren ``end_time - start_time``.
    - ``num_gpus`` = ``gpu_num`` (0 = CPU-only job), ``num_cpus`` = ``cpu_num``,
      ``memory_gb`` = ``mem_per_pod_GB x node_num`` (Kalos; one pod per node; 0 for Seren).
    - Extra columns: ``state``, ``type`` (Pretrain, SFT, Evaluation, Debug, Other, ...),
      ``user``, ``requested_nodes`` (= ``node_num``), ``trace_wait_time`` (start - submit, s).
    - States: COMPLETED jobs are kept. FAILED, TIMEOUT and NODE_FAIL are *failed* (the upstream
      README regards TIMEOUT and NODE_FAIL as failed); CANCELLED is *cancelled*. ``failed`` /
      ``cancelled`` = ``keep`` (default) replays such a job for the time it really held its
      resources (counted ``kept_failed`` / ``kept_cancelled``; its ``state`` says how it really
      ended, the simulation runs it to the end of that time); ``drop`` removes them
      (``dropped_failed`` / ``dropped_cancelled``). RUNNING / PENDING jobs and jobs without
      ``end_time`` had not ended when the log was cut: ``dropped_unfinished``; jobs without
      ``start_time`` never ran: ``dropped_never_started``. Any other state is an error.

    Converted Kalos file (``layout=converted``; every row is a COMPLETED Pretrain/SFT/Other
    GPU job, the fork's own filter, so ``failed``/``cancelled`` have nothing to act on and
    how many jobs the fork removed cannot be counted):

    - ``job_id`` as given (0..318 in submit order); ``submit_time`` = ``arrival_time`` (s
      from the first kept job).
    - ``duration`` = ``num_iteration x iteration_s`` (0.5 s: the fork wrote
      ``int(duration / 0.5)``, so the real value lies in ``[d, d + 0.5)``). It is the Kalos
      ``duration`` column, i.e. **it includes each job's queueing delay**, which the file no
      longer holds (Kalos GPU jobs waited 17 s median, 214 s mean: ``cluster_summary.csv``).
    - ``num_gpus`` = ``gpu_workers x gpu_per_worker`` (nodes x GPUs per node);
      ``num_cpus`` = ``cpu_per_gpu_worker x num_gpus`` (= ``cpu_num``); ``memory_gb`` =
      ``tensorsizes x 100 x gpu_workers`` (the fork stored ``mem_per_pod_GB / 100``; one pod per
      node).
    - Extra columns: ``state`` (``COMPLETED``), ``requested_nodes`` (= ``gpu_workers``),
      ``type`` = ``Pretrain`` where ``profiled_network == 1000`` (the fork's marker of
      Pretrain jobs) else ``SFT_or_Other``.
    - Not used: ``iteration_computing_time``, ``iteration_networking_time``, ``ps``,
      ``cpu_per_ps_worker`` and the values of ``profiled_network`` (constants the fork invented).

    Both layouts: ``gpu_milli`` 1000 (0 for CPU-only jobs), ``gpu_type`` "" (all A100),
    ``kind`` "train", ``queue`` "default", ``priority`` 0. Zero durations follow
    ``zero_duration``; negative run times and unparseable cells are errors naming row, line
    and column.

    Args:
        path: the CSV; ``None`` = bundled ``traces/data/acmetrace_kalos_converted_sample.csv``.
        layout: ``auto`` (from the header), ``job_trace`` or ``converted``.
        failed: ``keep`` or ``drop`` FAILED / TIMEOUT / NODE_FAIL jobs (job_trace layout).
        cancelled: ``keep`` or ``drop`` CANCELLED jobs (job_trace layout).
        iteration_s: seconds per ``num_iteration`` (converted layout).
        zero_duration: ``drop``, ``repair`` or ``error`` for zero-duration jobs.
        min_duration: seconds given to repaired zero-duration jobs.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep jobs submitted at or after this time (seconds in the file's time base, or
            a date-time string for the job_trace layout).
        end: keep jobs submitted before this time (same units).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by submit time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these queues (all jobs are in ``default``).
        min_gpus: keep jobs with at least this many GPUs (1 drops CPU-only jobs).
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/kept/repaired/filtered rows.
    """
    options = {
        "layout": layout,
        "failed": failed,
        "cancelled": cancelled,
        "iteration_s": iteration_s,
        "zero_duration": zero_duration,
        "min_duration": min_duration,
    }
    trace = cached_read("acmetrace", read, path, options, cache_dir)
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


def cluster_summary(path: str | Path | None = None) -> pd.DataFrame:
    """The official AcmeTrace ``cluster_summary.csv``: one row of job statistics per cluster.

    Columns as in the file (index = cluster name ``id``): job counts, GPU-job run time and
    queueing time (mean / median / max, seconds), GPUs per job (mean / median / max),
    completion / cancellation / failure rates (fractions of jobs and of GPU time) and GPU time
    per outcome (GPU-seconds), plus the CPU-job equivalents. Empty cells are NaN (Philly and PAI
    have no CPU jobs; PAI no outcome rates). It holds no hardware figures.

    Args:
        path: the CSV; ``None`` = the bundled copy.

    Returns:
        The table, indexed by cluster name.
    """
    p = CLUSTER_SUMMARY if path is None else Path(path)
    table, lines = read_csv_table(p, required=("id", "job_num"), dtype={"id": str})
    source = str(p)
    out = pd.DataFrame(index=pd.Index(strings(table["id"], ""), name="id"))
    for col in table.columns:
        if col != "id":
            out[col] = numbers(table, col, source, lines, fill=np.nan)
    if blank_cells(table["id"]).any():
        raise TraceError(f"{source}: a row has no cluster id")
    return out
