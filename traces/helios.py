"""SenseTime Helios job logs (SC'21): ``cluster_log.csv`` of S-Lab-System-Group/HeliosData.

File format: CSV with header ``job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,
start_time,end_time,duration,queue``; times are naive wall-clock strings
``YYYY-MM-DD HH:MM:SS``; ``duration`` = end - start and ``queue`` = start - submit, in seconds.
No rows of the real trace are on this machine: the loader follows the published schema, and
the tests use rows built to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from traces.cache import cached_read
from traces.canonical import Trace, finish, validate
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

__all__ = ["COLUMNS", "REQUIRED", "STATES", "TIME_FORMAT", "load", "read"]

COLUMNS = (
    "job_id",
    "user",
    "vc",
    "gpu_num",
    "cpu_num",
    "node_num",
    "state",
    "submit_time",
    "start_time",
    "end_time",
    "duration",
    "queue",
)
"""Header of Helios ``cluster_log.csv``."""

REQUIRED = ("job_id", "gpu_num", "state", "submit_time", "start_time", "end_time")
"""Columns the loader cannot do without."""

STATES = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL")
"""Final states documented by HeliosData (``SUSPENDED`` occurs once, in Uranus)."""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""Format of the time columns."""


def read(
    path: str | Path | None = None,
    *,
    states: Iterable[str] | None = None,
    zero_duration: str = "drop",
    min_duration: float = 1.0,
) -> Trace:
    """Read a Helios ``cluster_log.csv`` in full (no trace options applied); see :func:`load`.

    Args:
        path: the CSV (required).
        states: see :func:`load`.
        zero_duration: see :func:`load`.
        min_duration: see :func:`load`.

    Returns:
        The canonical trace with its report.
    """
    if path is None:
        raise ValueError("trace format 'helios' needs a path: trace.path=<cluster_log.csv>")
    p = Path(path)
    source = str(p)
    text_cols = {c: str for c in ("user", "vc", "state", "submit_time", "start_time", "end_time")}
    table, lines = read_csv_table(
        p, required=REQUIRED, dtype=text_cols, what="Helios cluster_log.csv"
    )
    report: dict[str, int] = {}
    state = strings(table["state"], "")
    keep = np.ones(len(table), dtype=bool)
    if states is not None:
        wanted = [states] if isinstance(states, str) else [str(s) for s in states]
        keep = np.array(state.isin(wanted), dtype=bool)
        add_count(report, "filtered_state", (~keep).sum())
    submit = timestamps(table, "submit_time", source, lines, fmt=TIME_FORMAT)
    started = timestamps(table, "start_time", source, lines, fmt=TIME_FORMAT, allow_missing=True)
    ended = timestamps(table, "end_time", source, lines, fmt=TIME_FORMAT, allow_missing=True)
    never = keep & np.isnan(started)
    add_count(report, "dropped_never_started", never.sum())
    unfinished = keep & ~never & np.isnan(ended)
    add_count(report, "dropped_unfinished", unfinished.sum())
    keep &= ~never & ~unfinished
    duration = _durations(table, started, ended, keep, source, lines, report)
    duration, ok = duration_rule(
        np.where(keep, duration, 1.0),
        source,
        "duration",
        lines,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
    )
    keep &= ok
    gpus = numbers(table, "gpu_num", source, lines, integer=True)
    check(gpus >= 0, table["gpu_num"], source, "gpu_num", "expected a GPU count >= 0", lines)
    jobs = pd.DataFrame(
        {
            "job_id": table["job_id"],
            "submit_time": submit,
            "duration": duration,
            "num_gpus": gpus.astype(np.int64),
            "num_cpus": _optional(table, "cpu_num", source, lines),
            "queue": strings(table["vc"], "default") if "vc" in table else "default",
            "state": state,
        }
    )
    if "user" in table:
        jobs["user"] = strings(table["user"], "")
    if "node_num" in table:
        jobs["requested_nodes"] = _optional(table, "node_num", source, lines).astype(np.int64)
    jobs["trace_wait_time"] = started - submit
    jobs, lines = jobs.loc[keep].reset_index(drop=True), lines[keep]
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def _durations(
    table: pd.DataFrame,
    started: np.ndarray,
    ended: np.ndarray,
    keep: np.ndarray,
    source: str,
    lines: np.ndarray,
    report: dict[str, int],
) -> np.ndarray:
    """The ``duration`` column; empty cells are computed as end - start (counted)."""
    from_times = ended - started
    if "duration" not in table:
        return from_times
    given = numbers(table, "duration", source, lines, fill=np.nan)
    empty = keep & blank_cells(table["duration"])
    add_count(report, "repaired_duration_from_times", empty.sum())
    return np.where(np.isnan(given), from_times, given)


def _optional(table: pd.DataFrame, col: str, source: str, lines: np.ndarray) -> np.ndarray:
    if col not in table:
        return np.zeros(len(table))
    vals = numbers(table, col, source, lines, fill=0.0)
    check(vals >= 0, table[col], source, col, "expected a value >= 0", lines)
    return vals


def load(
    path: str | Path | None = None,
    *,
    states: Iterable[str] | None = None,
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
    """Load a Helios ``cluster_log.csv`` as a canonical trace.

    Column derivation:

    - ``job_id`` = ``job_id`` (Slurm id, kept as given).
    - ``submit_time`` = ``submit_time``: naive wall clock (Helios is in China, UTC+8, which has
      no DST; the strings are read as if UTC, so differences are exact and ``start``/``end``
      date-time strings mean the same local wall-clock times), Unix seconds before rebasing.
    - ``duration`` = ``duration`` (seconds of execution, end - start); an empty cell is
      computed from ``end_time - start_time`` (counted ``repaired_duration_from_times``).
    - ``num_gpus`` = ``gpu_num`` (0 = CPU-only job; Helios has many), ``num_cpus`` =
      ``cpu_num``, ``queue`` = ``vc`` (virtual cluster).
    - Extra columns: ``state``, ``user``, ``requested_nodes`` (= ``node_num``),
      ``trace_wait_time`` (= start - submit, the real queueing delay, seconds; Helios names it
      ``queue``); named apart from the simulated ``num_nodes`` and ``wait_time``.
    - ``gpu_milli`` 1000 (0 for CPU-only), ``gpu_type`` "", ``memory_gb`` 0, ``kind`` "train",
      ``priority`` 0.

    Every state is kept by default (COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL: the time a
    job held its GPUs is real whatever its outcome); ``states`` keeps a subset (counted
    ``filtered_state``). Jobs without a ``start_time`` never started and are dropped
    (``dropped_never_started``); jobs without an ``end_time`` were unfinished and are dropped
    (``dropped_unfinished``). Jobs cancelled at start have duration 0 and follow
    ``zero_duration`` (default drop). Negative durations and unparseable values are errors
    naming row, line and column.

    Args:
        path: ``cluster_log.csv`` (required).
        states: keep only jobs in these final states (``None`` = all).
        zero_duration: ``drop``, ``repair`` or ``error`` for zero-duration jobs.
        min_duration: seconds given to repaired zero-duration jobs.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep jobs submitted at or after this time (Unix seconds or date-time string).
        end: keep jobs submitted before this time (Unix seconds or date-time string).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by submit time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these virtual clusters.
        min_gpus: keep jobs with at least this many GPUs (1 drops CPU-only jobs).
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/repaired/filtered rows.
    """
    wanted = None if states is None else [states] if isinstance(states, str) else list(states)
    options = {"states": wanted, "zero_duration": zero_duration, "min_duration": min_duration}
    trace = cached_read("helios", read, path, options, cache_dir)
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
