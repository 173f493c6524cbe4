"""Gavel (OSDI'20) job traces: Philly-derived arrivals and GPU counts, Gavel model-zoo jobs.

File format (``*.trace`` of stanford-futuredata/gavel): tab-separated, no header, one job per
line, in one of two layouts:

- 7 fields (``scheduler/traces/msr/seed=*/<vc>.trace``): ``job_type, command, num_steps_arg,
  needs_data_dir, total_steps, arrival_time, scale_factor``;
- 10 fields (``scheduler/traces/physical_cluster/*.trace``): ``job_type, command,
  working_directory, num_steps_arg, needs_data_dir, total_steps, scale_factor,
  priority_weight, SLO, arrival_time``.

Durations come from Gavel's ``simulation_throughputs.json``. The ``command`` field holds shell
commands of Gavel's testbed: it is read as text and never used.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from traces.cache import cached_read
from traces.canonical import Trace, finish, validate
from traces.errors import TraceError, row_error
from traces.tables import (
    add_count,
    check,
    check_file,
    duration_rule,
    numbers,
    read_csv_table,
    strings,
)

__all__ = ["COLUMNS_7", "COLUMNS_10", "THROUGHPUTS_FILE", "find_throughputs", "load", "read"]

COLUMNS_7 = (
    "job_type",
    "command",
    "num_steps_arg",
    "needs_data_dir",
    "total_steps",
    "arrival_time",
    "scale_factor",
)
"""Fields of the 7-column (msr, per-VC) traces."""

COLUMNS_10 = (
    "job_type",
    "command",
    "working_directory",
    "num_steps_arg",
    "needs_data_dir",
    "total_steps",
    "scale_factor",
    "priority_weight",
    "SLO",
    "arrival_time",
)
"""Fields of the 10-column (physical_cluster) traces."""

THROUGHPUTS_FILE = "simulation_throughputs.json"
"""Name of Gavel's throughput table, looked for next to the trace and in its parents."""

_MISSING_RULES = ("drop", "linear", "error")


def find_throughputs(trace_path: Path, levels: int = 3) -> Path | None:
    """Find ``simulation_throughputs.json`` in the trace's folder or up to ``levels`` parents.

    Args:
        trace_path: the ``.trace`` file.
        levels: parent folders to look in.

    Returns:
        The first match, or None.
    """
    folder = trace_path.resolve().parent
    for candidate in [folder, *folder.parents][: levels + 1]:
        if (candidate / THROUGHPUTS_FILE).is_file():
            return candidate / THROUGHPUTS_FILE
    return None


def _field_count(p: Path) -> int:
    with p.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                return line.rstrip("\r\n").count("\t") + 1
    raise TraceError(f"{p}: file is empty")


def _steps_per_second(path: Path, source: Path, worker_type: str) -> dict[tuple[str, int], float]:
    """Isolated throughput (steps/s) of each (job_type, scale_factor) on one worker type."""
    try:
        table = json.loads(check_file(path).read_text())
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: not valid JSON ({exc})") from exc
    if worker_type not in table:
        raise TraceError(
            f"{path}: no worker type {worker_type!r} (has {sorted(table)}); "
            f"set worker_type for {source}"
        )
    rates: dict[tuple[str, int], float] = {}
    for key, entry in table[worker_type].items():
        job_type, _, scale = key.strip("()").rpartition(", ")
        rate = entry.get("null") if isinstance(entry, dict) else None
        if rate:
            rates[(job_type.strip("'\""), int(scale))] = float(rate)
    return rates


def read(
    path: str | Path | None = None,
    *,
    throughputs: str | None = None,
    worker_type: str = "v100",
    missing_throughput: str = "drop",
    zero_duration: str = "drop",
    min_duration: float = 1.0,
) -> Trace:
    """Read a Gavel ``.trace`` file in full (no trace options applied); see :func:`load`.

    Args:
        path: the ``.trace`` file (required).
        throughputs: see :func:`load`.
        worker_type: see :func:`load`.
        missing_throughput: see :func:`load`.
        zero_duration: see :func:`load`.
        min_duration: see :func:`load`.

    Returns:
        The canonical trace with its report.
    """
    if path is None:
        raise ValueError("trace format 'gavel' needs a path: trace.path=<file.trace>")
    if missing_throughput not in _MISSING_RULES:
        raise ValueError(
            f"gavel option missing_throughput must be one of {_MISSING_RULES}, "
            f"got {missing_throughput!r}"
        )
    p = check_file(path)
    source = str(p)
    fields = _field_count(p)
    if fields not in (7, 10):
        raise TraceError(
            f"{p}: line 1: expected 7 or 10 tab-separated fields (a Gavel .trace "
            f"file), saw {fields}"
        )
    names = COLUMNS_7 if fields == 7 else COLUMNS_10
    table, lines = read_csv_table(
        p,
        names=names,
        sep="\t",
        quoting=csv.QUOTE_NONE,
        dtype={"job_type": str, "command": str},
        what=f"Gavel .trace ({fields} tab-separated fields)",
    )
    tput_path = Path(throughputs) if throughputs else find_throughputs(p)
    if tput_path is None:
        raise TraceError(
            f"{p}: cannot find {THROUGHPUTS_FILE} next to the trace or in its "
            "parent folders; set throughputs=<path>"
        )
    rates = _steps_per_second(tput_path, p, worker_type)
    report: dict[str, int] = {}
    steps = numbers(table, "total_steps", source, lines, integer=True)
    check(steps >= 0, table["total_steps"], source, "total_steps", "expected steps >= 0", lines)
    check(
        steps < 2**53, table["total_steps"], source, "total_steps", "expected steps < 2**53", lines
    )
    gpus = numbers(table, "scale_factor", source, lines, integer=True)
    check(gpus >= 1, table["scale_factor"], source, "scale_factor", "expected GPUs >= 1", lines)
    arrival = numbers(table, "arrival_time", source, lines)
    check(
        arrival >= 0, table["arrival_time"], source, "arrival_time", "expected a time >= 0 s", lines
    )
    job_type = strings(table["job_type"], "")
    rate, keep = _rates(
        job_type, gpus, rates, missing_throughput, source, lines, report, worker_type
    )
    duration, ok = duration_rule(
        np.where(keep, steps / rate, 1.0),
        source,
        "total_steps / throughput",
        lines,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
    )
    keep &= ok
    jobs = pd.DataFrame(
        {
            "job_id": f"{p.stem}-" + pd.Series(np.arange(len(table)).astype(str)),
            "submit_time": arrival,
            "duration": duration,
            "num_gpus": gpus.astype(np.int64),
            "queue": p.stem,
            "job_type": job_type,
            "total_steps": steps.astype(np.int64),
        }
    )
    if fields == 10:
        jobs["priority_weight"] = numbers(table, "priority_weight", source, lines)
        jobs["slo"] = numbers(table, "SLO", source, lines)
    jobs, lines = jobs.loc[keep].reset_index(drop=True), lines[keep]
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def _rates(
    job_type: pd.Series,
    gpus: np.ndarray,
    rates: dict[tuple[str, int], float],
    rule: str,
    source: str,
    lines: np.ndarray,
    report: dict[str, int],
    worker_type: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps/s of every row and the mask of rows that have one (per the missing rule)."""
    keys = pd.Series(list(zip(job_type, gpus.astype(int), strict=True)), dtype=object)
    rate = keys.map(rates).to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(rate)
    if missing.any() and rule == "linear":
        single = job_type.map({k[0]: v for k, v in rates.items() if k[1] == 1})
        linear = single.to_numpy(dtype=np.float64, na_value=np.nan) * gpus
        repaired = missing & ~np.isnan(linear)
        rate = np.where(repaired, linear, rate)
        add_count(report, "repaired_throughput_linear", repaired.sum())
        missing = np.isnan(rate)
    if missing.any() and rule == "error":
        first = int(np.flatnonzero(missing)[0])
        raise row_error(
            source,
            missing,
            "job_type",
            f"no {worker_type} throughput for ({job_type.iloc[first]!r}, "
            f"{int(gpus[first])} GPUs) (set missing_throughput=drop or linear)",
            lines,
        )
    add_count(report, "dropped_no_throughput", missing.sum())
    return np.where(missing, 1.0, rate), ~missing


def load(
    path: str | Path | None = None,
    *,
    throughputs: str | None = None,
    worker_type: str = "v100",
    missing_throughput: str = "drop",
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
    """Load a Gavel ``.trace`` file (7- or 10-field layout, detected) as a canonical trace.

    Column derivation:

    - ``job_id`` = ``"<file stem>-<r>"``, r = 0-based line; ``queue`` = file stem (the Philly
      virtual cluster id for the per-VC ``msr`` traces, e.g. ``6214e9``).
    - ``submit_time`` = ``arrival_time`` (seconds from the first job; no wall clock, no zone).
    - ``num_gpus`` = ``scale_factor`` (gang size); ``gpu_milli`` 1000; ``gpu_type`` "".
    - ``duration`` = ``total_steps / steps_per_second``, where steps per second is the isolated
      throughput (``"null"`` entry) of ``(job_type, scale_factor)`` on ``worker_type`` in
      Gavel's ``simulation_throughputs.json`` (default ``v100``; also ``p100``, ``k80`` and
      ``*_unconsolidated``). Gavel does not say which GPU its total_steps were matched on.
    - Extra columns: ``job_type``, ``total_steps``, and for 10-field files ``priority_weight``
      and ``slo`` (-1 = none). ``kind`` "train", ``priority`` 0, no CPU/memory.

    Rows whose (job_type, scale_factor) has no throughput (15 of 2,000 in ``6214e9``):
    ``missing_throughput="drop"`` (default, counted ``dropped_no_throughput``), ``"linear"``
    (the 1-GPU throughput times the GPU count, counted ``repaired_throughput_linear``; rows
    without a 1-GPU entry are still dropped) or ``"error"``. The traces have no unfinished or
    never-started jobs. Zero ``total_steps`` follow ``zero_duration``; malformed lines are
    errors naming row, line and field.

    Args:
        path: the ``.trace`` file (required).
        throughputs: ``simulation_throughputs.json``; ``None`` = look next to the trace and
            in up to 3 parent folders.
        worker_type: throughput column used for durations.
        missing_throughput: ``drop``, ``linear`` or ``error`` (see above).
        zero_duration: ``drop``, ``repair`` or ``error`` for zero-duration jobs.
        min_duration: seconds given to repaired zero-duration jobs.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep jobs arriving at or after this time (seconds, before rebasing).
        end: keep jobs arriving before this time (seconds, before rebasing).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by arrival time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these queues (file stems).
        min_gpus: keep jobs with at least this many GPUs.
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/repaired/filtered rows.
    """
    options = {
        "throughputs": throughputs,
        "worker_type": worker_type,
        "missing_throughput": missing_throughput,
        "zero_duration": zero_duration,
        "min_duration": min_duration,
    }
    trace = cached_read("gavel", read, path, options, cache_dir)
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
