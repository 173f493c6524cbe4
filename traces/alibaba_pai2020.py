"""Alibaba PAI GPU cluster trace 2020 (cluster-trace-gpu-v2020, NSDI'22 "MLaaS in the Wild").

Input: ``pai_job_table.csv`` (``job_name,inst_id,user,status,start_time,end_time``) and
``pai_task_table.csv`` (``job_name,task_name,inst_num,status,start_time,end_time,plan_cpu,
plan_mem,plan_gpu,gpu_type``). The published CSVs have no header row (the column names are in
separate ``.header`` files); a header row, if present, is recognised and skipped. Times are
seconds shifted by an undisclosed constant. No rows of the job/task tables are on this
machine: the loader follows the published schema, and the tests use rows built to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from traces.cache import cached_read
from traces.canonical import Trace, finish, validate
from traces.errors import TraceError
from traces.tables import (
    add_count,
    blank_cells,
    check,
    check_file,
    duration_rule,
    numbers,
    read_csv_table,
    strings,
)

__all__ = ["JOB_COLUMNS", "TASK_COLUMNS", "load", "read"]

JOB_COLUMNS = ("job_name", "inst_id", "user", "status", "start_time", "end_time")
"""Columns of ``pai_job_table.csv`` (from ``pai_job_table.header``)."""

TASK_COLUMNS = (
    "job_name",
    "task_name",
    "inst_num",
    "status",
    "start_time",
    "end_time",
    "plan_cpu",
    "plan_mem",
    "plan_gpu",
    "gpu_type",
)
"""Columns of ``pai_task_table.csv`` (from ``pai_task_table.header``)."""

_UNFINISHED = ("drop", "censor")


def _table_paths(path: Path, task_path: str | None) -> tuple[Path, Path]:
    if path.is_dir():
        return check_file(path / "pai_job_table.csv"), check_file(
            Path(task_path) if task_path else path / "pai_task_table.csv"
        )
    job = check_file(path)
    return job, check_file(Path(task_path) if task_path else job.with_name("pai_task_table.csv"))


def _read(path: Path, columns: tuple[str, ...], text: tuple[str, ...], what: str):
    with path.open(encoding="utf-8", errors="replace") as f:
        first = f.readline().split(",")[0].strip()
    dtype = {c: str for c in text}
    if first == columns[0]:  # a header row was added by someone
        return read_csv_table(path, required=columns, dtype=dtype, what=what)
    return read_csv_table(path, names=columns, dtype=dtype, what=what)


def read(
    path: str | Path | None = None,
    *,
    task_path: str | None = None,
    statuses: Iterable[str] | None = None,
    unfinished: str = "drop",
    gpu_type_constraint: bool = False,
    zero_duration: str = "drop",
    min_duration: float = 1.0,
) -> Trace:
    """Read the PAI job and task tables in full (no trace options applied); see :func:`load`.

    Args:
        path: ``pai_job_table.csv``, or the folder holding both tables (required).
        task_path: see :func:`load`.
        statuses: see :func:`load`.
        unfinished: see :func:`load`.
        gpu_type_constraint: see :func:`load`.
        zero_duration: see :func:`load`.
        min_duration: see :func:`load`.

    Returns:
        The canonical trace with its report.
    """
    if path is None:
        raise ValueError(
            "trace format 'alibaba_pai2020' needs a path: trace.path=<folder with "
            "pai_job_table.csv and pai_task_table.csv, or pai_job_table.csv>"
        )
    if unfinished not in _UNFINISHED:
        raise ValueError(
            f"alibaba_pai2020 option unfinished must be one of {_UNFINISHED}, got {unfinished!r}"
        )
    job_path, task_path_ = _table_paths(Path(path), task_path)
    jobs_raw, job_lines = _read(
        job_path,
        JOB_COLUMNS,
        ("job_name", "inst_id", "user", "status"),
        "PAI pai_job_table.csv (6 columns, no header)",
    )
    tasks = _task_totals(task_path_)
    report: dict[str, int] = {}
    source = str(job_path)
    names = strings(jobs_raw["job_name"], "")
    check(names != "", jobs_raw["job_name"], source, "job_name", "missing job name", job_lines)
    status = strings(jobs_raw["status"], "")
    submit = numbers(jobs_raw, "start_time", source, job_lines)
    check(
        submit >= 0,
        jobs_raw["start_time"],
        source,
        "start_time",
        "expected a time >= 0 s",
        job_lines,
    )
    job_end = numbers(jobs_raw, "end_time", source, job_lines, fill=np.nan)
    check(
        np.isnan(job_end) | (job_end >= submit),
        jobs_raw["end_time"],
        source,
        "end_time",
        "expected an end time >= the job's start_time",
        job_lines,
    )
    keep = np.ones(len(jobs_raw), dtype=bool)
    if statuses is not None:
        wanted = [statuses] if isinstance(statuses, str) else [str(s) for s in statuses]
        keep = np.array(status.isin(wanted), dtype=bool)
        add_count(report, "filtered_status", (~keep).sum())
    agg = tasks.reindex(names.to_numpy())
    has_tasks = agg["task_rows"].notna().to_numpy()
    add_count(report, "dropped_no_tasks", (keep & ~has_tasks).sum())
    add_count(
        report, "dropped_orphan_tasks", int(tasks.loc[~tasks.index.isin(names), "task_rows"].sum())
    )
    add_count(
        report, "repaired_missing_plan_values", int(agg.loc[keep & has_tasks, "filled_rows"].sum())
    )
    keep &= has_tasks
    began = agg["first_start"].to_numpy(dtype=np.float64, na_value=np.nan)
    ended = agg["last_end"].to_numpy(dtype=np.float64, na_value=np.nan)
    never = keep & (np.isnan(began) | (status == "Waiting").to_numpy())
    add_count(report, "dropped_never_started", never.sum())
    keep &= ~never
    open_end = keep & (
        np.isnan(ended)
        | agg["any_open"].to_numpy(dtype=bool, na_value=False)
        | (status == "Running").to_numpy()
    )
    if unfinished == "drop":
        add_count(report, "dropped_unfinished", open_end.sum())
        keep &= ~open_end
    else:
        trace_end = float(
            np.nanmax(
                np.concatenate(
                    [
                        job_end,
                        tasks["last_end"].to_numpy(dtype=np.float64, na_value=np.nan),
                        [-np.inf],
                    ]
                )
            )
        )
        ended = np.where(open_end, trace_end, ended)
        add_count(report, "kept_censored_at_trace_end", open_end.sum())
    duration, ok = duration_rule(
        np.where(keep, ended - began, 1.0),
        source,
        "task end_time - start_time",
        job_lines,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
    )
    keep &= ok
    gpus, milli, rounded = _gpu_shape(agg["gpu_total"].to_numpy(dtype=np.float64, na_value=0.0))
    add_count(report, "rounded_up_fractional_gpus", (keep & rounded).sum())
    assigned = agg["gpu_types"].fillna("").astype(str).to_numpy()
    jobs = pd.DataFrame(
        {
            "job_id": names,
            "submit_time": submit,
            "duration": duration,
            "num_gpus": gpus,
            "gpu_milli": milli,
            "gpu_type": np.where((gpus > 0) & gpu_type_constraint, assigned, ""),
            "num_cpus": agg["cpu_total"].to_numpy(dtype=np.float64, na_value=0.0),
            "memory_gb": agg["mem_total"].to_numpy(dtype=np.float64, na_value=0.0),
            "trace_status": status,  # not "status": jobs.parquet has the simulated one
            "user": strings(jobs_raw["user"], ""),
            "assigned_gpu_type": assigned,
            "trace_wait_time": began - submit,
        }
    )
    jobs, job_lines = jobs.loc[keep].reset_index(drop=True), job_lines[keep]
    source_all = f"{job_path} + {task_path_}"
    return Trace(jobs=validate(jobs, source, lines=job_lines), source=source_all, report=report)


def _task_totals(path: Path) -> pd.DataFrame:
    """Per-job sums of the task table, indexed by job_name."""
    t, lines = _read(
        path,
        TASK_COLUMNS,
        ("job_name", "task_name", "status", "gpu_type"),
        "PAI pai_task_table.csv (10 columns, no header)",
    )
    source = str(path)
    inst = numbers(t, "inst_num", source, lines, fill=1.0)
    check(inst >= 0, t["inst_num"], source, "inst_num", "expected an instance count >= 0", lines)
    plan = {}
    for col in ("plan_cpu", "plan_mem", "plan_gpu"):
        plan[col] = numbers(t, col, source, lines, fill=0.0)
        check(plan[col] >= 0, t[col], source, col, "expected a value >= 0", lines)
    filled = blank_cells(t["inst_num"])
    for col in plan:
        filled = filled | blank_cells(t[col])
    start = numbers(t, "start_time", source, lines, fill=np.nan)
    end = numbers(t, "end_time", source, lines, fill=np.nan)
    gpu_type = strings(t["gpu_type"], "")
    frame = pd.DataFrame(
        {
            "job_name": strings(t["job_name"], ""),
            "gpu_total": inst * plan["plan_gpu"] / 100.0,
            "cpu_total": inst * plan["plan_cpu"] / 100.0,
            "mem_total": inst * plan["plan_mem"],
            "start": start,
            "end": end,
            "open": ~np.isnan(start) & np.isnan(end),
            "filled": filled,
            "gpu_type": gpu_type.where((plan["plan_gpu"] > 0) & (gpu_type != ""), None),
        }
    )
    groups = frame.groupby("job_name", sort=False)
    out = pd.DataFrame(
        {
            "task_rows": groups.size(),
            "gpu_total": groups["gpu_total"].sum(),
            "cpu_total": groups["cpu_total"].sum(),
            "mem_total": groups["mem_total"].sum(),
            "first_start": groups["start"].min(),
            "last_end": groups["end"].max(),
            "any_open": groups["open"].any(),
            "filled_rows": groups["filled"].sum(),
        }
    )
    out["gpu_types"] = _joined_types(frame).reindex(out.index)
    if out.index.has_duplicates:  # cannot happen after groupby; guards future edits
        raise TraceError(f"{path}: duplicate job names after grouping")
    return out


def _joined_types(frame: pd.DataFrame) -> pd.Series:
    """Distinct GPU models of each job's GPU tasks, sorted and ``|``-joined."""
    pairs = (
        frame.dropna(subset=["gpu_type"])[["job_name", "gpu_type"]]
        .drop_duplicates()
        .sort_values(["job_name", "gpu_type"])
    )
    many = pairs["job_name"].duplicated(keep=False).to_numpy()
    single = pairs.loc[~many].set_index("job_name")["gpu_type"]
    if not many.any():
        return single
    joined = pairs.loc[many].groupby("job_name")["gpu_type"].agg("|".join)
    return pd.concat([single, joined])


def _gpu_shape(total: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total GPUs (fractional) -> (num_gpus, gpu_milli, rounded-up mask).

    Up to one GPU: one GPU at ``round(total * 1000)`` milli (at least 1). Above one GPU: whole
    GPUs, rounded up when the total is fractional.
    """
    total = np.round(total, 9)
    share = total <= 1.0
    gpus = np.where(total <= 0, 0, np.where(share, 1, np.ceil(total))).astype(np.int64)
    milli = np.where(
        total <= 0, 0, np.where(share, np.clip(np.round(total * 1000.0), 1, 1000), 1000)
    )
    rounded = ~share & (total != np.floor(total))
    return gpus, milli.astype(np.int64), rounded


def load(
    path: str | Path | None = None,
    *,
    task_path: str | None = None,
    statuses: Iterable[str] | None = None,
    unfinished: str = "drop",
    gpu_type_constraint: bool = False,
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
    """Load the Alibaba PAI 2020 job + task tables as a canonical trace (one PAI job = one job).

    Column derivation:

    - ``job_id`` = ``job_name``; ``submit_time`` = job ``start_time`` (the job's submission,
      per the upstream README; seconds shifted by a constant; in UTC+8 the time of day and
      weekday are the real ones, the dates are not — no time zone handling is needed).
    - ``duration`` = latest task ``end_time`` - earliest task ``start_time`` (the gap between
      job submission and the first task launch is the real wait, kept as ``trace_wait_time``).
    - Resources are summed over the job's tasks, each times its ``inst_num`` (empty = 1):
      ``num_cpus`` = sum ``plan_cpu / 100`` (percent of a core), ``memory_gb`` = sum
      ``plan_mem`` (GB), total GPUs = sum ``plan_gpu / 100`` (percent of a GPU). A total up to
      one GPU becomes ``num_gpus`` 1 with ``gpu_milli`` = total x 1000 (e.g. 50 -> 500 milli);
      a larger total becomes whole GPUs, rounded up when fractional (counted
      ``rounded_up_fractional_gpus``, e.g. 3 instances x 50 % -> 2 GPUs). Empty plan values
      mean none requested (0; rows counted ``repaired_missing_plan_values``).
    - ``gpu_type``: "" by default, because the task ``gpu_type`` is the model the job *was
      given*, not one it required; ``gpu_type_constraint=True`` uses the assigned model(s)
      (``|``-joined when tasks differ). The assigned models are kept as ``assigned_gpu_type``.
    - Extra columns: ``trace_status``, ``user``, ``assigned_gpu_type``, ``trace_wait_time``
      (seconds; named apart from the simulated ``status`` and ``wait_time`` of the results).
      ``kind`` "train" (the trace mixes training and inference without a per-job flag),
      ``queue`` "default", ``priority`` 0.

    Special rows: jobs with no task rows (``dropped_no_tasks``), task rows of unknown jobs
    (``dropped_orphan_tasks``), jobs with status ``Waiting`` or no started task
    (``dropped_never_started``). Jobs still running at the trace end (status ``Running``, or a
    started task without ``end_time``): ``unfinished="drop"`` (``dropped_unfinished``) or
    ``"censor"`` (end = the last end_time in the tables; ``kept_censored_at_trace_end``).
    ``statuses`` keeps only some job statuses (Terminated, Failed, Running, Waiting; counted
    ``filtered_status``). Zero durations follow ``zero_duration``; negative durations and
    unparseable values are errors naming file, row, line and column.

    Args:
        path: folder with ``pai_job_table.csv`` and ``pai_task_table.csv``, or the job table
            (required).
        task_path: task table (``None`` = ``pai_task_table.csv`` next to the job table).
        statuses: keep only jobs with these statuses (``None`` = all).
        unfinished: ``drop`` or ``censor`` jobs still running at the trace end.
        gpu_type_constraint: require the GPU model(s) the job ran on.
        zero_duration: ``drop``, ``repair`` or ``error`` for zero-duration jobs.
        min_duration: seconds given to repaired zero-duration jobs.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep jobs submitted at or after this time (seconds, before rebasing).
        end: keep jobs submitted before this time (seconds, before rebasing).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by submit time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these queues (all jobs are in "default").
        min_gpus: keep jobs with at least this many GPUs.
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/repaired/filtered rows.
    """
    wanted = (
        None if statuses is None else [statuses] if isinstance(statuses, str) else list(statuses)
    )
    options = {
        "task_path": task_path,
        "statuses": wanted,
        "unfinished": unfinished,
        "gpu_type_constraint": gpu_type_constraint,
        "zero_duration": zero_duration,
        "min_duration": min_duration,
    }
    if path is not None:  # name both tables in the cache key (their sizes and times count)
        job_path, task_file = _table_paths(Path(path), task_path)
        path, options["task_path"] = job_path, str(task_file)
    trace = cached_read("alibaba_pai2020", read, path, options, cache_dir)
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
