"""The canonical job table every trace is turned into, its checks, and the common trace options.

A trace is a table with one row per job and the columns of :data:`CANONICAL_COLUMNS`. Loaders
for each source format build such a table, :func:`validate` checks and coerces it, and
:func:`apply_options` cuts it down (time window, sampling, first N jobs, load scaling, queue and
GPU-count filters). Every row a loader or an option removes or repairs is counted, by reason, in
the :class:`Trace` report: nothing is dropped or changed silently.

Units: seconds for times, GPUs for ``num_gpus``, milli-GPU (1000 = one GPU) for ``gpu_milli``,
CPU cores, GB of memory.

Accepted ranges (:data:`MAX_SECONDS`, :data:`TIME_RESOLUTION`, :data:`MAX_PRIORITY`): times are
float64 seconds, so ``submit_time``, ``duration`` and their sum must stay below 2**32 s (136
years), where a float64 still resolves 1 microsecond, and ``duration`` must be at least that
microsecond; ``priority`` must be a whole number of magnitude below 2**53 (exact as a float64,
and within int64). Values outside are errors naming file, row, column and value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import pandas as pd

from traces.errors import TraceError, row_error, where
from traces.tables import (
    add_count,
    blank_cells,
    check,
    check_file,
    numbers,
    read_csv_table,
    shown,
    strings,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "KINDS",
    "MAX_PRIORITY",
    "MAX_SECONDS",
    "OUTPUT_COLUMNS",
    "TIME_RESOLUTION",
    "ColumnSpec",
    "Trace",
    "TraceError",
    "apply_options",
    "finish",
    "read_canonical",
    "rename_output_columns",
    "validate",
]


class ColumnSpec(NamedTuple):
    """One column of the canonical job table."""

    dtype: str
    required: bool
    default: object
    meaning: str


CANONICAL_COLUMNS: Mapping[str, ColumnSpec] = MappingProxyType(
    {
        "job_id": ColumnSpec("str or int (kept as given)", True, None, "unique job id"),
        "submit_time": ColumnSpec(
            "float64", True, None, "arrival time in seconds, >= 0; rows need not be sorted"
        ),
        "duration": ColumnSpec("float64", True, None, "run time in seconds at full speed, > 0"),
        "num_gpus": ColumnSpec("int64", True, None, "GPUs of the whole job (gang); 0 = CPU-only"),
        "gpu_milli": ColumnSpec(
            "int64",
            False,
            1000,
            "milli-GPU used on each GPU, 1..1000 (0 when num_gpus == 0); "
            "< 1000 only when num_gpus == 1",
        ),
        "gpu_type": ColumnSpec("str", False, "", "required GPU model; '' = any, 'A|B' = A or B"),
        "num_cpus": ColumnSpec("float64", False, 0.0, "CPU cores of the whole job"),
        "memory_gb": ColumnSpec("float64", False, 0.0, "memory of the whole job in GB"),
        "kind": ColumnSpec("str", False, "train", "'train' or 'infer'"),
        "queue": ColumnSpec("str", False, "default", "tenant / queue / virtual cluster"),
        "priority": ColumnSpec("int64", False, 0, "larger = more important"),
        "pods": ColumnSpec(
            "int64",
            False,
            0,
            "pods of the job, each placed on one node; 0 = no pod shape (today's placement)",
        ),
        "gpus_per_pod": ColumnSpec(
            "int64", False, 0, "GPUs of each pod; pods * gpus_per_pod == num_gpus when pods > 0"
        ),
    }
)
"""Canonical columns: name -> (dtype after :func:`validate`, required, default, meaning)."""

KINDS = ("train", "infer")
"""Allowed values of the ``kind`` column."""

MAX_SECONDS = float(2**32)
"""Times (``submit_time``, ``duration``, their sum) must be below this many seconds (136
years): up to here a float64 second count resolves :data:`TIME_RESOLUTION`."""
TIME_RESOLUTION = 1e-6
"""Smallest ``duration`` accepted, seconds (the resolution kept by times below
:data:`MAX_SECONDS`)."""
OUTPUT_COLUMNS = (
    "start_time",
    "end_time",
    "wait_time",
    "jct",
    "status",
    "nodes",
    "num_nodes",
    "gpu_seconds",
    "preemptions",
    "migrations",
    "restarts",
    "slowdown",
    "lost_seconds",
    "pending_reason",
)
"""Columns the simulator adds to ``jobs.parquet``: a trace column of the same name is renamed
``trace_NAME`` (see :func:`rename_output_columns`)."""
MAX_PRIORITY = 2**53
"""``priority`` must satisfy ``-MAX_PRIORITY < priority < MAX_PRIORITY`` (exact in float64)."""

_TEXT_COLUMNS = {"gpu_type": str, "kind": str, "queue": str, "job_id": str}
_WHOLE_ID = r"-?(?:0|[1-9][0-9]{0,17})"


@dataclass
class Trace:
    """A loaded trace: the canonical job table, where it came from, and what was changed.

    Attributes:
        jobs: canonical job table (see :data:`CANONICAL_COLUMNS`), rows in file order.
        source: the file (or files) the trace was read from.
        report: number of rows dropped or repaired per reason, e.g.
            ``{"dropped_duplicate_rows": 65, "filtered_window": 1200}``.
    """

    jobs: pd.DataFrame = field(repr=False)
    source: str
    report: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- validate
def validate(df: pd.DataFrame, source: str, *, lines: np.ndarray | None = None) -> pd.DataFrame:
    """Check and coerce a canonical job table.

    Required columns must be present and every value well formed; optional columns that are
    absent, and empty (NaN) cells of optional columns, get their default. Columns that are not
    canonical are kept unchanged after the canonical ones.

    Args:
        df: the table (one row per job).
        source: file name (or description) used in error messages.
        lines: optional file line of each row, or ``(data row, line)`` pairs (see
            :func:`traces.errors.where`), added to error messages.

    Returns:
        A new table with the canonical dtypes, canonical columns first, rows in input order and
        a fresh ``RangeIndex``.

    Raises:
        TraceError: naming the file, row and column of the first bad value: missing required
            column, unparseable or ill-typed value, NaN/inf, negative ``submit_time``,
            ``duration <= 0``, ``num_gpus < 0``, ``gpu_milli`` outside 1..1000 (or < 1000 with
            ``num_gpus != 1``, or non-zero for a CPU-only job), duplicate ``job_id`` (both rows
            named), unknown ``kind``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c, spec in CANONICAL_COLUMNS.items() if spec.required and c not in df]
    if missing:
        raise TraceError(
            f"{source}: missing required column(s) {missing}; found {list(df.columns)}"
        )
    t = df.reset_index(drop=True)
    out: dict[str, object] = {"job_id": _job_ids(t, source, lines)}
    out["submit_time"] = numbers(t, "submit_time", source, lines)
    check(
        out["submit_time"] >= 0,
        t["submit_time"],
        source,
        "submit_time",
        "expected a submit time >= 0 s",
        lines,
    )
    out["duration"] = numbers(t, "duration", source, lines)
    check(
        out["duration"] > 0, t["duration"], source, "duration", "expected a duration > 0 s", lines
    )
    _check_time_range(t, out["submit_time"], out["duration"], source, lines)
    gpus = numbers(t, "num_gpus", source, lines, integer=True)
    check(gpus >= 0, t["num_gpus"], source, "num_gpus", "expected a GPU count >= 0", lines)
    check(
        gpus < 2**31, t["num_gpus"], source, "num_gpus", "expected a GPU count below 2**31", lines
    )
    out["num_gpus"] = gpus.astype(np.int64)
    out["gpu_milli"] = _gpu_milli(t, gpus, source, lines)
    out["gpu_type"] = _text(t, "gpu_type")
    for col in ("num_cpus", "memory_gb"):
        out[col] = _non_negative(t, col, source, lines)
    out["kind"] = _text(t, "kind")
    check(
        out["kind"].isin(KINDS).to_numpy(),
        t.get("kind", out["kind"]),
        source,
        "kind",
        f"unknown kind (expected one of {list(KINDS)})",
        lines,
    )
    out["queue"] = _text(t, "queue")
    if "priority" in t:
        prio = numbers(t, "priority", source, lines, fill=0, integer=True)
        check(
            np.abs(prio) < MAX_PRIORITY,
            t["priority"],
            source,
            "priority",
            "expected a priority of magnitude below 2**53",
            lines,
        )
        out["priority"] = prio.astype(np.int64)
    else:
        out["priority"] = np.zeros(len(t), np.int64)
    out["pods"], out["gpus_per_pod"] = _pod_shape(t, gpus, out["gpu_milli"], source, lines)
    jobs = pd.DataFrame(out)
    extras = [c for c in t.columns if c not in CANONICAL_COLUMNS]
    if extras:
        jobs = pd.concat([jobs, t[extras]], axis=1)
    return jobs


def _check_time_range(
    t: pd.DataFrame,
    submit: np.ndarray,
    duration: np.ndarray,
    source: str,
    lines: np.ndarray | None,
) -> None:
    """Times below :data:`MAX_SECONDS` and durations of at least :data:`TIME_RESOLUTION`."""
    limit = "below 2**32 s (136 years, where float64 seconds still resolve 1 us)"
    check(submit < MAX_SECONDS, t["submit_time"], source, "submit_time", f"expected {limit}", lines)
    check(duration < MAX_SECONDS, t["duration"], source, "duration", f"expected {limit}", lines)
    check(
        duration >= TIME_RESOLUTION,
        t["duration"],
        source,
        "duration",
        "expected a duration of at least 1e-06 s (the time resolution)",
        lines,
    )
    check(
        submit + duration < MAX_SECONDS,
        t["duration"],
        source,
        "duration",
        f"expected submit_time + duration {limit}",
        lines,
    )


def rename_output_columns(jobs: pd.DataFrame, report: dict[str, int]) -> pd.DataFrame:
    """Rename trace columns named like a result column (:data:`OUTPUT_COLUMNS`).

    ``status`` becomes ``trace_status`` (``trace_trace_status`` if that is taken too, ...), so
    that the trace's value survives next to the simulated one in ``jobs.parquet``; each rename
    is counted in ``report`` as ``renamed_status_to_trace_status`` (the number of rows).
    """
    names = {}
    for col in OUTPUT_COLUMNS:
        if col in jobs.columns:
            new = f"trace_{col}"
            while new in jobs.columns or new in names.values():
                new = f"trace_{new}"
            names[col] = new
            add_count(report, f"renamed_{col}_to_{new}", max(len(jobs), 1))
    return jobs.rename(columns=names) if names else jobs


def _job_ids(t: pd.DataFrame, source: str, lines: np.ndarray | None) -> pd.Series:
    ids = t["job_id"]
    missing = blank_cells(ids)
    if missing.any():
        raise row_error(source, missing, "job_id", "missing job id", lines)
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        second = int(np.flatnonzero(dup)[0])
        value = ids.iloc[second]
        first = int(np.flatnonzero((ids == value).to_numpy())[0])
        raise TraceError(
            f"{source}: {where(second, lines)}, column job_id: duplicate job_id "
            f"{shown(value)} (same as {where(first, lines)})"
        )
    return ids


def _gpu_milli(
    t: pd.DataFrame, gpus: np.ndarray, source: str, lines: np.ndarray | None
) -> np.ndarray:
    default = np.where(gpus > 0, 1000, 0).astype(np.float64)
    if "gpu_milli" not in t:
        return default.astype(np.int64)
    raw = t["gpu_milli"]
    milli = numbers(t, "gpu_milli", source, lines, fill=default, integer=True)
    cpu_only = gpus == 0
    check(
        ~cpu_only | (milli == 0),
        raw,
        source,
        "gpu_milli",
        "expected 0 (or empty) for a CPU-only job (num_gpus == 0)",
        lines,
    )
    check(
        cpu_only | ((milli >= 1) & (milli <= 1000)),
        raw,
        source,
        "gpu_milli",
        "expected milli-GPU in 1..1000",
        lines,
    )
    check(
        cpu_only | (milli == 1000) | (gpus == 1),
        raw,
        source,
        "gpu_milli",
        "a GPU share below 1000 milli-GPU needs num_gpus == 1",
        lines,
    )
    return milli.astype(np.int64)


def _pod_shape(
    t: pd.DataFrame, gpus: np.ndarray, milli: np.ndarray, source: str, lines: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``pods`` and ``gpus_per_pod``: both 0 (no shape) unless given; one may be derived.

    With ``pods`` given and ``gpus_per_pod`` empty, ``gpus_per_pod = num_gpus / pods``; with
    ``gpus_per_pod`` given and ``pods`` empty, ``pods = num_gpus / gpus_per_pod``; either way
    ``pods * gpus_per_pod`` must equal ``num_gpus``. A shared GPU (``gpu_milli < 1000``) is one
    pod on one GPU.
    """
    n = len(t)
    if "pods" not in t and "gpus_per_pod" not in t:
        return np.zeros(n, np.int64), np.zeros(n, np.int64)
    pods = _shape_column(t, "pods", source, lines)
    per = _shape_column(t, "gpus_per_pod", source, lines)
    raw = t["pods"] if "pods" in t else t["gpus_per_pod"]
    check(
        ~(np.isnan(pods) & (per == 0)),
        t["gpus_per_pod"] if "gpus_per_pod" in t else raw,
        source,
        "gpus_per_pod",
        "gpus_per_pod = 0 needs the pod count (pods)",
        lines,
    )
    derive_per = ~np.isnan(pods) & (pods > 0) & np.isnan(per)
    per = np.where(derive_per, gpus / np.where(pods > 0, pods, 1), per)
    derive_pods = np.isnan(pods) & (per > 0)
    pods = np.where(derive_pods, gpus / np.where(per > 0, per, 1), pods)
    pods, per = np.nan_to_num(pods), np.nan_to_num(per)
    shaped = pods > 0
    check(
        ~shaped | ((pods == np.round(pods)) & (per == np.round(per)) & (pods * per == gpus)),
        raw,
        source,
        "pods",
        "pods * gpus_per_pod must equal num_gpus (a whole number of GPUs per pod)",
        lines,
    )
    check(
        (pods > 0) | (per == 0),
        raw,
        source,
        "gpus_per_pod",
        "gpus_per_pod > 0 needs pods > 0",
        lines,
    )
    check(
        ~shaped | (milli == 1000) | (gpus == 0) | (pods == 1),
        raw,
        source,
        "pods",
        "a shared GPU (gpu_milli < 1000) is a single pod",
        lines,
    )
    return pods.astype(np.int64), per.astype(np.int64)


def _shape_column(t: pd.DataFrame, col: str, source: str, lines: np.ndarray | None) -> np.ndarray:
    """The column as float64 with NaN for empty cells (absent column = all empty)."""
    if col not in t:
        return np.full(len(t), np.nan)
    vals = numbers(t, col, source, lines, fill=np.nan, integer=True)
    check(np.isnan(vals) | (vals >= 0), t[col], source, col, "expected a count >= 0", lines)
    check(
        np.isnan(vals) | (vals < 2**31), t[col], source, col, "expected a count below 2**31", lines
    )
    return vals


def _text(t: pd.DataFrame, col: str) -> pd.Series:
    default = str(CANONICAL_COLUMNS[col].default)
    if col not in t:
        return pd.Series([default] * len(t), dtype=str)
    return strings(t[col], default)


def _non_negative(t: pd.DataFrame, col: str, source: str, lines: np.ndarray | None) -> np.ndarray:
    if col not in t:
        return np.zeros(len(t))
    vals = numbers(t, col, source, lines, fill=0.0)
    check(vals >= 0, t[col], source, col, "expected a value >= 0", lines)
    return vals


# ---------------------------------------------------------------------------------- read
def read_canonical(path: str | Path) -> pd.DataFrame:
    """Read and validate a canonical trace file (``.csv``, ``.csv.gz`` or ``.parquet``).

    In CSV files, ``job_id`` values that are all plain whole numbers are read as int64;
    otherwise they are kept as text exactly as written (so ``007`` stays ``"007"``).

    Args:
        path: the file; the suffix selects the reader.

    Returns:
        The validated job table (see :func:`validate`). Parquet metadata saved by pandas
        (``DataFrame.attrs``, e.g. the conversion report written by :mod:`traces.convert`) is
        kept in ``attrs``. In Parquet files, a ``submit_time`` of timestamps (``timestamp[us]``,
        with or without time zone) is read as seconds after the earliest timestamp, and
        time spans (``duration[us]``) of ``submit_time`` or ``duration`` as seconds; each
        conversion is counted in ``attrs["trace_report"]`` (other temporal columns are errors).

    Raises:
        TraceError: missing or empty file, unknown suffix, unreadable content, no rows, or any
            problem :func:`validate` finds (with the CSV line number).
    """
    p = check_file(path)
    suffixes = [s.lower() for s in p.suffixes[-2:]]
    lines = None
    converted: dict[str, int] = {}
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        try:
            table = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise TraceError(f"{p}: cannot read as Parquet ({exc})") from exc
        table = _temporal_to_seconds(table, converted)
    elif suffixes and (suffixes[-1] == ".csv" or suffixes[0] == ".csv"):
        table, lines = read_csv_table(p, required=(), dtype=_TEXT_COLUMNS, what="canonical CSV")
        if "job_id" in table:
            table["job_id"] = _maybe_int_ids(table["job_id"])
    else:
        raise TraceError(
            f"{p}: unknown file type {p.suffix!r}; a canonical trace is a .csv, "
            ".csv.gz or .parquet file"
        )
    if len(table) == 0:
        raise TraceError(f"{p}: no jobs in the file (header only)")
    jobs = validate(table, str(p), lines=lines)
    jobs.attrs.update(table.attrs)  # Parquet written by traces.convert carries its report
    if converted:
        report = dict(jobs.attrs.get("trace_report", {}))
        for key, n in converted.items():
            add_count(report, key, n)
        jobs.attrs["trace_report"] = report
    return jobs


def _temporal_to_seconds(table: pd.DataFrame, report: dict[str, int]) -> pd.DataFrame:
    """Parquet date-time and time-span columns of the two time columns, as float seconds.

    ``submit_time`` as timestamps (with or without a zone) becomes seconds after the earliest
    one; as time spans (``duration[us]``), seconds. ``duration`` as time spans becomes seconds.
    Each conversion is counted (rows) in ``report``; any other temporal column is left for
    :func:`validate` to refuse.
    """
    out = table
    for col, kinds in (("submit_time", ("datetime", "timedelta")), ("duration", ("timedelta",))):
        if col not in table.columns:
            continue
        s = table[col]
        if "datetime" in kinds and pd.api.types.is_datetime64_any_dtype(s.dtype):
            if getattr(s.dt, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            seconds = (s - s.min()).dt.total_seconds()
            key = f"converted_{col}_timestamps_to_seconds_after_first"
        elif pd.api.types.is_timedelta64_dtype(s.dtype):
            seconds = s.dt.total_seconds()
            key = f"converted_{col}_timedeltas_to_seconds"
        else:
            continue
        if out is table:
            out = table.copy()
        out[col] = seconds.astype(np.float64)
        add_count(report, key, max(len(s), 1))
    return out


def _maybe_int_ids(ids: pd.Series) -> pd.Series:
    text = ids.astype(object).where(ids.notna(), "")
    text = text.astype(str)
    if len(text) and text.str.fullmatch(_WHOLE_ID).all():
        return text.astype(np.int64)
    return ids


# ---------------------------------------------------------------------------------- options
def apply_options(
    df: pd.DataFrame,
    report: dict[str, int],
    *,
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
) -> pd.DataFrame:
    """Cut a canonical job table down and rescale its arrivals; count every removed row.

    Steps, in this order: time window on the trace's own ``submit_time`` (before any rebase);
    queue filter; GPU-count filter; random sample; first ``max_jobs`` by submit time; load
    scaling; rebase. Filters run before sampling so that ``sample_frac`` and ``max_jobs`` apply
    to the jobs that are actually wanted; rebasing runs last so that the first kept job always
    arrives at 0.

    Args:
        df: validated canonical table.
        report: counts of removed/repaired rows; updated in place with ``filtered_window``,
            ``filtered_queue``, ``filtered_min_gpus``, ``filtered_max_gpus``, ``sampled_out``,
            ``truncated_max_jobs``.
        start: keep jobs with ``submit_time >= start``. Seconds in the trace's own time base,
            or a date-time string (``"2017-10-02 00:00:00"``, UTC) for loaders whose times are
            Unix seconds (wall-clock formats).
        end: keep jobs with ``submit_time < end`` (same units as ``start``).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep ``round(sample_frac * n)`` jobs chosen at random (0 < f <= 1).
        max_jobs: keep the first ``max_jobs`` jobs by submit time (ties: file order).
        time_scale: divide inter-arrival times by this factor (2 = twice the arrival rate);
            durations are unchanged.
        queues: keep only jobs of these queues (a single name or a list).
        min_gpus: keep jobs with ``num_gpus >= min_gpus``.
        max_gpus: keep jobs with ``num_gpus <= max_gpus``.
        seed: seed of the sampling RNG (``np.random.default_rng(seed)``).

    Returns:
        The kept rows in input order, with a fresh ``RangeIndex``.
    """
    lo, hi = _seconds(start, "start"), _seconds(end, "end")
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"trace options: start ({start!r}) must be before end ({end!r})")
    if not (isinstance(time_scale, int | float) and math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"trace option time_scale must be a number > 0, got {time_scale!r}")
    jobs = df.reset_index(drop=True)
    t = jobs["submit_time"].to_numpy()
    in_window = np.ones(len(jobs), dtype=bool)
    if lo is not None:
        in_window &= t >= lo
    if hi is not None:
        in_window &= t < hi
    jobs = _keep(jobs, in_window, report, "filtered_window")
    if queues is not None:
        names = [queues] if isinstance(queues, str) else [str(q) for q in queues]
        jobs = _keep(jobs, jobs["queue"].isin(names).to_numpy(), report, "filtered_queue")
    if min_gpus is not None:
        jobs = _keep(
            jobs,
            jobs["num_gpus"].to_numpy() >= _count(min_gpus, "min_gpus", 0),
            report,
            "filtered_min_gpus",
        )
    if max_gpus is not None:
        jobs = _keep(
            jobs,
            jobs["num_gpus"].to_numpy() <= _count(max_gpus, "max_gpus", 0),
            report,
            "filtered_max_gpus",
        )
    if sample_frac is not None:
        jobs = _keep(jobs, _sample_mask(len(jobs), sample_frac, seed), report, "sampled_out")
    if max_jobs is not None:
        jobs = _keep(
            jobs, _first_mask(jobs, _count(max_jobs, "max_jobs", 1)), report, "truncated_max_jobs"
        )
    if len(jobs):
        t = jobs["submit_time"].to_numpy()
        t0 = t.min()
        shifted = (t - t0) / float(time_scale)
        jobs["submit_time"] = shifted if rebase else t0 + shifted
        ends = jobs["submit_time"].to_numpy() + jobs["duration"].to_numpy()
        if not (ends < MAX_SECONDS).all():
            raise ValueError(
                f"trace option time_scale={time_scale!r} stretches the arrivals beyond 2**32 s "
                f"(136 years; the last job would end at {float(ends.max()):.6g} s): use a "
                "larger time_scale"
            )
    return jobs


def _keep(jobs: pd.DataFrame, mask: np.ndarray, report: dict[str, int], key: str) -> pd.DataFrame:
    mask = np.asarray(mask, dtype=bool)
    add_count(report, key, (~mask).sum())
    if mask.all():
        return jobs
    return jobs.loc[mask].reset_index(drop=True)


def _sample_mask(n: int, frac: float, seed: int) -> np.ndarray:
    if not (isinstance(frac, int | float) and 0 < frac <= 1):
        raise ValueError(f"trace option sample_frac must be in (0, 1], got {frac!r}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=int(round(frac * n)), replace=False)] = True
    return mask


def _first_mask(jobs: pd.DataFrame, k: int) -> np.ndarray:
    order = np.argsort(jobs["submit_time"].to_numpy(), kind="stable")
    mask = np.zeros(len(jobs), dtype=bool)
    mask[order[:k]] = True
    return mask


def _count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"trace option {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _seconds(value: float | str | None, name: str) -> float | None:
    """A time option as seconds: a number, or a date-time string read as UTC Unix seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"trace option {name} must be seconds or a date-time, got {value!r}")
    if isinstance(value, int | float | np.number):
        return float(value)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        stamp = pd.Timestamp(value)
    except ValueError as exc:
        raise ValueError(
            f"trace option {name}: cannot read {value!r} as seconds or as a date-time"
        ) from exc
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.timestamp()


def finish(
    trace: Trace,
    *,
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
    """Apply the common trace options (see :func:`apply_options`) to a loaded trace.

    Args:
        trace: a full trace as read from its source.
        start: see :func:`apply_options`.
        end: see :func:`apply_options`.
        rebase: see :func:`apply_options`.
        sample_frac: see :func:`apply_options`.
        max_jobs: see :func:`apply_options`.
        time_scale: see :func:`apply_options`.
        queues: see :func:`apply_options`.
        min_gpus: see :func:`apply_options`.
        max_gpus: see :func:`apply_options`.
        seed: see :func:`apply_options`.

    Returns:
        A new Trace (the input is not modified) whose report adds the option counts. Trace
        columns named like result columns are renamed first (:func:`rename_output_columns`).

    Raises:
        TraceError: the options removed every job.
    """
    report = dict(trace.report)
    jobs = apply_options(
        rename_output_columns(trace.jobs, report),
        report,
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
    if jobs.empty:
        raise TraceError(
            f"{trace.source}: no jobs left after the trace options (removed: {report})"
        )
    return Trace(jobs=jobs, source=trace.source, report=report)
