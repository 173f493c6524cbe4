"""Microsoft Philly job table, as pre-processed by the Pollux (OSDI'21) artifact.

File format (``philly.csv`` of petuum/adaptdl, branch ``osdi21-artifact``): a CSV with header
``timestamp,duration,num_gpus,gpu_time,cluster``, one row per job, not sorted.
``traces/data/philly_sample.csv`` is a verbatim 3,000-row excerpt (see ``traces/data/README.md``).
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
    check,
    duration_rule,
    numbers,
    read_csv_table,
    strings,
    timestamps,
)

__all__ = ["COLUMNS", "SAMPLE", "TIME_FORMAT", "load", "read"]

COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")
"""Header of the Pollux ``philly.csv``."""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""Format of the ``timestamp`` column (naive wall clock)."""

SAMPLE = Path(__file__).resolve().parent / "data" / "philly_sample.csv"
"""Bundled 3,000-row sample, used when ``path`` is None."""


def read(
    path: str | Path | None = None, *, zero_duration: str = "drop", min_duration: float = 1.0
) -> Trace:
    """Read a Pollux ``philly.csv`` in full (no trace options applied).

    Args:
        path: the CSV file; ``None`` = the bundled sample.
        zero_duration: ``drop``, ``repair`` (to ``min_duration``) or ``error`` for jobs whose
            duration is 0.
        min_duration: seconds given to repaired zero-duration jobs.

    Returns:
        The canonical trace; ``report`` counts ``dropped_duplicate_rows`` and the zero-duration
        rule's ``dropped_zero_duration`` / ``repaired_zero_duration``.
    """
    p = SAMPLE if path is None else Path(path)
    source = str(p)
    table, lines = read_csv_table(
        p,
        required=COLUMNS,
        dtype={"timestamp": str, "cluster": str},
        what="Philly (Pollux philly.csv)",
    )
    report: dict[str, int] = {}
    row_ids = np.arange(len(table))
    dup = table[list(COLUMNS)].duplicated(keep="first").to_numpy()
    add_count(report, "dropped_duplicate_rows", dup.sum())
    if dup.any():
        table, lines, row_ids = table.loc[~dup].reset_index(drop=True), lines[~dup], row_ids[~dup]
    submit = timestamps(table, "timestamp", source, lines, fmt=TIME_FORMAT)
    gpus = numbers(table, "num_gpus", source, lines, integer=True)
    check(gpus >= 0, table["num_gpus"], source, "num_gpus", "expected a GPU count >= 0", lines)
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
            "job_id": "philly-" + pd.Series(row_ids.astype(str)),
            "submit_time": submit,
            "duration": duration,
            "num_gpus": gpus.astype(np.int64),
            "queue": strings(table["cluster"], "default"),
        }
    )
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
    """Load the Philly (Pollux) job table as a canonical trace.

    Column derivation:

    - ``job_id`` = ``"philly-<r>"``, r = 0-based data row of the file (stable for a given file;
      the bundled sample numbers its own rows).
    - ``submit_time`` = ``timestamp``, a naive ``YYYY-MM-DD HH:MM:SS`` wall clock read as UTC
      (no DST shifts), in Unix seconds before rebasing; so ``start``/``end`` may be given as
      date-time strings, e.g. ``start="2017-10-02 00:00:00"``. The Pollux artifact does not say
      whether it is the submit time or the first-attempt start time.
    - ``duration`` = ``duration`` (seconds). ``num_gpus`` = ``num_gpus`` (whole GPUs, gang).
    - ``queue`` = ``cluster`` (Philly virtual cluster id, e.g. ``6214e9``).
    - ``gpu_milli`` 1000, ``gpu_type`` "" (any), ``num_cpus``/``memory_gb`` 0, ``kind``
      "train", ``priority`` 0. ``gpu_time`` (= duration x num_gpus) is not used.

    Pitfalls handled: rows are not sorted (kept in file order; the engine sorts); exact
    duplicate rows (65 in the full file) are dropped and counted as
    ``dropped_duplicate_rows``. Jobs that never started or were still running are not in the
    file (Pollux kept jobs with a known duration). Zero durations follow ``zero_duration``;
    negative durations, missing values and unparseable timestamps are errors naming the row,
    line and column.

    Args:
        path: ``philly.csv``; ``None`` = the bundled sample ``traces/data/philly_sample.csv``.
        zero_duration: ``drop`` (default), ``repair`` or ``error`` for zero-duration jobs.
        min_duration: seconds given to repaired zero-duration jobs.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep jobs submitted at or after this time (Unix seconds or date-time string).
        end: keep jobs submitted before this time (Unix seconds or date-time string).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by submit time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these virtual clusters.
        min_gpus: keep jobs with at least this many GPUs.
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/repaired/filtered rows.
    """
    trace = cached_read(
        "philly",
        read,
        path,
        {"zero_duration": zero_duration, "min_duration": min_duration},
        cache_dir,
    )
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
