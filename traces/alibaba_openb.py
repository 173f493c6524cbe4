"""Alibaba GPU-sharing pod lists ("openb", cluster-trace-gpu-v2023, ATC'23 FGD paper).

File format: CSV with header ``name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,
pod_phase,creation_time,deletion_time,scheduled_time`` (23 variants of
``openb_pod_list_*.csv``); the four ``multigpu*`` variants have only the first five columns.
``traces/data/openb_pod_sample.csv`` is a verbatim 2,000-row excerpt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from traces.cache import cached_read
from traces.canonical import Trace, finish, validate
from traces.errors import TraceError, row_error
from traces.tables import (
    add_count,
    blank_cells,
    check,
    duration_rule,
    numbers,
    read_csv_table,
    strings,
)

__all__ = ["DENSE_WINDOW_START", "POD_COLUMNS", "QOS_PRIORITY", "SAMPLE", "load", "read"]

POD_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
"""Header of the timed pod lists; the ``multigpu`` variants stop after ``gpu_milli``."""

_TIME_COLUMNS = ("creation_time", "deletion_time", "scheduled_time")

QOS_PRIORITY: Mapping[str, int] = MappingProxyType(
    {"LS": 2, "Guaranteed": 2, "Burstable": 1, "BE": 0}
)
"""Default ``qos`` -> ``priority``: latency-sensitive and Guaranteed pods above Burstable above
best-effort, following Kubernetes QoS classes (Alibaba's LS ranks with Guaranteed)."""

DENSE_WINDOW_START = 9_960_000.0
"""Seconds: only 31 of the 8,152 default pods are created before this; 99 % arrive after
10,015,331 s, in the last ~33 days of the 149-day span."""

SAMPLE = Path(__file__).resolve().parent / "data" / "openb_pod_sample.csv"
"""Bundled 2,000-pod sample, used when ``path`` is None."""

_CHOICES = {
    "pending": ("drop", "keep"),
    "censored": ("keep", "drop"),
    "dense_window": ("off", "drop", "clip"),
    "untimed": ("error", "batch"),
}


def read(
    path: str | Path | None = None,
    *,
    pending: str = "drop",
    censored: str = "keep",
    trace_end: float | None = None,
    dense_window: str = "off",
    qos_priority: Mapping[str, int] = QOS_PRIORITY,
    untimed: str = "error",
    untimed_duration: float = 1.0e7,
    zero_duration: str = "drop",
    min_duration: float = 1.0,
) -> Trace:
    """Read an openb pod list in full (no trace options applied); see :func:`load`.

    Args:
        path: pod-list CSV; ``None`` = the bundled sample.
        pending: see :func:`load`.
        censored: see :func:`load`.
        trace_end: see :func:`load`.
        dense_window: see :func:`load`.
        qos_priority: see :func:`load`.
        untimed: see :func:`load`.
        untimed_duration: see :func:`load`.
        zero_duration: see :func:`load`.
        min_duration: see :func:`load`.

    Returns:
        The canonical trace with its report.
    """
    for name, value in (
        ("pending", pending),
        ("censored", censored),
        ("dense_window", dense_window),
        ("untimed", untimed),
    ):
        if value not in _CHOICES[name]:
            raise ValueError(
                f"alibaba_openb option {name} must be one of {_CHOICES[name]}, got {value!r}"
            )
    p = SAMPLE if path is None else Path(path)
    source = str(p)
    table, lines = read_csv_table(
        p,
        required=POD_COLUMNS[:5],
        what="Alibaba openb pod list",
        dtype={"name": str, "gpu_spec": str, "qos": str, "pod_phase": str},
    )
    if len(table) == 0:
        raise TraceError(f"{source}: no pods in the file (header only)")
    report: dict[str, int] = {}
    jobs = _resources(table, source, lines, dict(qos_priority))
    if not all(c in table for c in _TIME_COLUMNS):
        jobs = _untimed(jobs, source, untimed, untimed_duration, report)
        return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)
    keep = _times(
        table,
        jobs,
        source,
        lines,
        pending=pending,
        censored=censored,
        trace_end=trace_end,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
    )
    if dense_window != "off":
        keep = _dense_window(jobs, keep, dense_window, report)
    jobs = jobs.drop(columns="began").loc[keep].reset_index(drop=True)
    lines = lines[keep]
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def _resources(
    table: pd.DataFrame, source: str, lines: np.ndarray, qos_priority: dict[str, int]
) -> pd.DataFrame:
    cpu = numbers(table, "cpu_milli", source, lines)
    mem = numbers(table, "memory_mib", source, lines)
    for col, vals in (("cpu_milli", cpu), ("memory_mib", mem)):
        check(vals >= 0, table[col], source, col, "expected a value >= 0", lines)
    gpus = numbers(table, "num_gpu", source, lines, integer=True)
    check(gpus >= 0, table["num_gpu"], source, "num_gpu", "expected a GPU count >= 0", lines)
    missing = blank_cells(table["name"])
    if missing.any():
        raise row_error(source, missing, "name", "missing pod name", lines)
    jobs = pd.DataFrame(
        {
            "job_id": table["name"],
            "num_gpus": gpus.astype(np.int64),
            "gpu_milli": numbers(table, "gpu_milli", source, lines, integer=True),
            "gpu_type": (
                strings(table["gpu_spec"], "")
                if "gpu_spec" in table
                else pd.Series([""] * len(table), dtype=str)
            ),
            "num_cpus": cpu / 1000.0,
            "memory_gb": mem / 1024.0,
        }
    )
    if "qos" in table:
        qos = strings(table["qos"], "")
        check(
            qos.isin(list(qos_priority)).to_numpy(),
            table["qos"],
            source,
            "qos",
            f"unknown QoS class (known: {sorted(qos_priority)}; set qos_priority)",
            lines,
        )
        jobs["priority"] = qos.map(qos_priority).astype(np.int64)
        jobs["qos"] = qos
    if "pod_phase" in table:
        jobs["pod_phase"] = strings(table["pod_phase"], "")
    return jobs


def _untimed(
    jobs: pd.DataFrame, source: str, untimed: str, duration: float, report: dict[str, int]
) -> pd.DataFrame:
    if untimed == "error":
        raise TraceError(
            f"{source}: this pod list has no time columns {list(_TIME_COLUMNS)} (the openb "
            "'multigpu' variants are made for placement-only experiments); set "
            "untimed=batch to submit every pod at t=0 with duration untimed_duration"
        )
    if not duration > 0:
        raise ValueError(f"untimed_duration must be > 0 seconds, got {duration!r}")
    add_count(report, "repaired_untimed_batch", len(jobs))
    return jobs.assign(submit_time=0.0, duration=float(duration))


def _times(
    table: pd.DataFrame,
    jobs: pd.DataFrame,
    source: str,
    lines: np.ndarray,
    *,
    pending: str,
    censored: str,
    trace_end: float | None,
    zero_duration: str,
    min_duration: float,
    report: dict[str, int],
) -> np.ndarray:
    """Fill submit_time/duration in ``jobs``; return the mask of rows to keep."""
    created = numbers(table, "creation_time", source, lines)
    deleted = numbers(table, "deletion_time", source, lines)
    scheduled = numbers(table, "scheduled_time", source, lines, fill=np.nan)
    check(
        created >= 0,
        table["creation_time"],
        source,
        "creation_time",
        "expected a time >= 0 s",
        lines,
    )
    check(
        deleted >= created,
        table["deletion_time"],
        source,
        "deletion_time",
        "deletion before creation_time",
        lines,
    )
    never = blank_cells(table["scheduled_time"])
    check(
        never | (scheduled >= created),
        table["scheduled_time"],
        source,
        "scheduled_time",
        "scheduled before creation_time",
        lines,
    )
    keep = np.ones(len(table), dtype=bool)
    if pending == "drop":
        keep &= ~never
        add_count(report, "dropped_pending", never.sum())
    else:
        add_count(report, "repaired_pending_duration", never.sum())
    began = np.where(never, created, scheduled)
    duration, ok = duration_rule(
        np.where(keep, deleted - began, 1.0),
        source,
        "deletion_time - scheduled_time",
        lines,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
    )
    keep &= ok
    end = float(trace_end) if trace_end is not None else float(deleted.max())
    at_end = keep & ~never & (deleted >= end)
    if censored == "drop":
        keep &= ~at_end
        add_count(report, "dropped_censored_at_trace_end", at_end.sum())
    else:
        add_count(report, "kept_censored_at_trace_end", at_end.sum())
    jobs["submit_time"] = created
    jobs["duration"] = duration
    jobs["began"] = began
    return keep


def _dense_window(
    jobs: pd.DataFrame, keep: np.ndarray, mode: str, report: dict[str, int]
) -> np.ndarray:
    early = keep & (jobs["submit_time"].to_numpy() < DENSE_WINDOW_START)
    ends = jobs["began"].to_numpy() + jobs["duration"].to_numpy()
    if mode == "drop":
        add_count(report, "filtered_before_dense_window", early.sum())
        return keep & ~early
    alive = early & (ends > DENSE_WINDOW_START)
    add_count(report, "filtered_before_dense_window", (early & ~alive).sum())
    add_count(report, "repaired_clipped_to_dense_window", alive.sum())
    jobs["submit_time"] = np.where(alive, DENSE_WINDOW_START, jobs["submit_time"])
    jobs["duration"] = np.where(alive, ends - DENSE_WINDOW_START, jobs["duration"])
    return keep & ~(early & ~alive)


def load(
    path: str | Path | None = None,
    *,
    pending: str = "drop",
    censored: str = "keep",
    trace_end: float | None = None,
    dense_window: str = "off",
    qos_priority: Mapping[str, int] = QOS_PRIORITY,
    untimed: str = "error",
    untimed_duration: float = 1.0e7,
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
    """Load an Alibaba openb pod list as a canonical trace (one pod = one job).

    Column derivation:

    - ``job_id`` = ``name``; ``submit_time`` = ``creation_time`` (seconds from an anonymised
      origin; no wall clock, no time zone).
    - ``duration`` = ``deletion_time - scheduled_time`` for scheduled pods (the time the pod
      held its resources; pods of every final phase — Running, Succeeded, Failed — are jobs).
    - ``num_gpus`` = ``num_gpu``; ``gpu_milli`` = ``gpu_milli`` (share of each GPU; < 1000 only
      for 1-GPU pods; 0 for CPU-only pods); ``gpu_type`` = ``gpu_spec`` (allowed models,
      ``|``-separated, kept as written, e.g. ``V100M16|V100M32``; empty = any).
    - ``num_cpus`` = ``cpu_milli / 1000``; ``memory_gb`` = ``memory_mib / 1024``.
    - ``priority`` = ``qos_priority[qos]`` (default LS 2, Guaranteed 2, Burstable 1, BE 0; an
      unknown class is an error). ``kind`` "train" and ``queue`` "default" (the trace says
      neither). Extra columns ``qos`` and ``pod_phase`` are kept.

    Special rows:

    - Pending pods (empty ``scheduled_time``, never scheduled; 897 in ``default``):
      ``pending="drop"`` (default, counted ``dropped_pending``) or ``"keep"``, which submits
      them with the placeholder duration ``deletion_time - creation_time`` (their lifetime while
      waiting; counted ``repaired_pending_duration``).
    - Pods still running at the trace end (``deletion_time >= trace_end``; ``trace_end``
      defaults to the largest ``deletion_time`` in the file; 34 pods in ``default``): their
      duration is a lower bound. ``censored="keep"`` (default; counted
      ``kept_censored_at_trace_end``) or ``"drop"`` (``dropped_censored_at_trace_end``).
    - Dense window: only 31 pods arrive before :data:`DENSE_WINDOW_START` (9.96e6 s), most of
      them long-running. ``dense_window="off"`` keeps them; ``"drop"`` removes them
      (``filtered_before_dense_window``); ``"clip"`` removes those that ended before the
      window and submits the others at the window start with their remaining duration
      (``repaired_clipped_to_dense_window``), so the cluster starts with the pods that were
      really running. ``start``/``end`` also work on raw seconds (e.g. ``start=9.96e6``).
    - The ``multigpu`` variants have no time columns: ``untimed="error"`` (default) refuses
      them; ``"batch"`` submits every pod at t = 0 in file order with duration
      ``untimed_duration`` (the FGD "fill the cluster" experiment; counted
      ``repaired_untimed_batch``).
    - Zero durations follow ``zero_duration``; negative durations, deletion before creation,
      missing or unparseable values are errors naming row, line and column.

    Args:
        path: pod-list CSV; ``None`` = bundled ``traces/data/openb_pod_sample.csv``.
        pending: ``drop`` or ``keep`` never-scheduled pods.
        censored: ``keep`` or ``drop`` pods still running at the trace end.
        trace_end: end of observation in seconds (``None`` = last deletion_time in the file).
        dense_window: ``off``, ``drop`` or ``clip`` (see above).
        qos_priority: mapping of ``qos`` class to integer priority.
        untimed: ``error`` or ``batch`` for pod lists without time columns.
        untimed_duration: seconds given to every pod in ``untimed="batch"`` mode.
        zero_duration: ``drop``, ``repair`` or ``error`` for zero-duration pods.
        min_duration: seconds given to repaired zero-duration pods.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep pods created at or after this time (seconds, before rebasing).
        end: keep pods created before this time (seconds, before rebasing).
        rebase: shift times so that the first kept pod arrives at 0.
        sample_frac: keep this fraction of the pods, chosen at random with ``seed``.
        max_jobs: keep the first N pods by creation time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these queues (all pods are in "default").
        min_gpus: keep pods with at least this many GPUs.
        max_gpus: keep pods with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/repaired/filtered rows.
    """
    options = {
        "pending": pending,
        "censored": censored,
        "trace_end": trace_end,
        "dense_window": dense_window,
        "qos_priority": dict(qos_priority),
        "untimed": untimed,
        "untimed_duration": untimed_duration,
        "zero_duration": zero_duration,
        "min_duration": min_duration,
    }
    trace = cached_read("alibaba_openb", read, path, options, cache_dir)
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
