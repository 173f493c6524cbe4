"""Canonical trace files: a CSV or Parquet table that already has the canonical columns.

This is the format that :mod:`traces.convert` writes and that any external tool can produce.
See :data:`traces.canonical.CANONICAL_COLUMNS` for the columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from traces.cache import cached_read
from traces.canonical import Trace, finish, read_canonical

__all__ = ["REPORT_ATTR", "SOURCE_ATTR", "load", "read"]

REPORT_ATTR = "trace_report"
"""``DataFrame.attrs`` key (stored in Parquet metadata) of the report of a converted trace."""
SOURCE_ATTR = "trace_source"
"""``DataFrame.attrs`` key of the source of a converted trace."""


def read(path: str | Path | None) -> Trace:
    """Read a canonical CSV or Parquet file in full (no options applied).

    Args:
        path: the ``.csv``/``.csv.gz``/``.parquet`` file.

    Returns:
        The validated trace. Nothing is dropped or repaired here; a Parquet file written by
        :mod:`traces.convert` brings back the report of its conversion.
    """
    if path is None or str(path) == "???":
        raise ValueError(
            "trace format 'file' needs a path: trace.path=<canonical .csv or .parquet file>"
        )
    jobs = read_canonical(path)
    report = {str(k): int(v) for k, v in jobs.attrs.pop(REPORT_ATTR, {}).items()}
    source = jobs.attrs.pop(SOURCE_ATTR, None)
    return Trace(
        jobs=jobs, source=f"{path} (from {source})" if source else str(path), report=report
    )


def load(
    path: str | Path | None = None,
    *,
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
    """Load a canonical trace file and apply the common trace options.

    Column derivation: none — every canonical column is read as written; optional columns that
    are absent or empty get their defaults (``gpu_milli`` 1000, or 0 for CPU-only jobs;
    ``gpu_type`` ""; ``num_cpus``/``memory_gb`` 0; ``kind`` "train"; ``queue`` "default";
    ``priority`` 0). Extra columns are kept. Jobs that never started or were still running
    cannot be told apart here: every row is a job to simulate. Zero or negative durations, NaN
    or inf values, negative submit times and duplicate ids are errors (the message names file,
    row, line and column). Times are plain seconds; there are no time zones.

    Args:
        path: canonical ``.csv``, ``.csv.gz`` or ``.parquet`` file (required).
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep jobs with ``submit_time >= start`` (seconds, before rebasing).
        end: keep jobs with ``submit_time < end`` (seconds, before rebasing).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by submit time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these queues.
        min_gpus: keep jobs with at least this many GPUs.
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace (see :func:`traces.canonical.apply_options` for the order of the options).
    """
    trace = cached_read("file", read, path, {}, cache_dir)
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
