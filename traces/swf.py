"""Standard Workload Format (SWF 2.2) of the Parallel Workloads Archive.

File format: header comment lines starting with ``;`` (``; UnixStartTime: 1234``,
``; MaxProcs: 128`` ...), then one job per line with 18 whitespace-separated numeric fields;
``-1`` means "missing". Fields, in order: job number, submit time (s), wait time (s), run time
(s), allocated processors, average CPU time, used memory (KB/processor), requested processors,
requested time (s), requested memory (KB/processor), status (1 completed, 0 failed,
5 cancelled, 2/3/4 partial-execution records), user id, group id, executable number, queue
number, partition number, preceding job number, think time (s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from traces.cache import cached_read
from traces.canonical import Trace, finish, validate
from traces.errors import TraceError
from traces.tables import add_count, check, check_file, duration_rule, numbers, read_csv_table

__all__ = ["FIELDS", "PARTIAL_STATUSES", "header_values", "load", "read"]

FIELDS = (
    "job_number",
    "submit_time",
    "wait_time",
    "run_time",
    "allocated_processors",
    "average_cpu_time",
    "used_memory",
    "requested_processors",
    "requested_time",
    "requested_memory",
    "status",
    "user_id",
    "group_id",
    "executable_number",
    "queue_number",
    "partition_number",
    "preceding_job_number",
    "think_time",
)
"""The 18 SWF fields, in file order."""

PARTIAL_STATUSES = (2, 3, 4)
"""Status codes of partial-execution records (extra lines for checkpointed/swapped jobs)."""

_HEADER = re.compile(rb"^\s*;\s*(\w+)\s*:\s*(.*?)\s*$")


def _scan(p: Path) -> tuple[np.ndarray, dict[str, str]]:
    """File line of every data line, and the ``; Key: value`` header comments."""
    raw = p.read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    first = [ln.lstrip()[:1] for ln in raw]
    data = np.fromiter((c not in (b"", b";") for c in first), dtype=bool, count=len(first))
    header = {}
    for ln in raw[: int(np.argmax(data)) if data.any() else len(raw)]:
        m = _HEADER.match(ln)
        if m:
            header[m.group(1).decode(errors="replace")] = m.group(2).decode(errors="replace")
    return np.flatnonzero(data) + 1, header


def header_values(path: str | Path) -> dict[str, str]:
    """The ``; Key: value`` comments before the first job line (e.g. ``UnixStartTime``).

    Args:
        path: the SWF file.

    Returns:
        Mapping of header key to its text value.
    """
    return _scan(check_file(path))[1]


def read(
    path: str | Path | None = None,
    *,
    procs_per_gpu: float = 1.0,
    statuses: Iterable[int] | None = None,
    wall_clock: bool = False,
    zero_duration: str = "drop",
    min_duration: float = 1.0,
) -> Trace:
    """Read an SWF file in full (no trace options applied); see :func:`load`.

    Args:
        path: the ``.swf`` file (required).
        procs_per_gpu: see :func:`load`.
        statuses: see :func:`load`.
        wall_clock: see :func:`load`.
        zero_duration: see :func:`load`.
        min_duration: see :func:`load`.

    Returns:
        The canonical trace with its report.
    """
    if path is None:
        raise ValueError("trace format 'swf' needs a path: trace.path=<file.swf>")
    if not (isinstance(procs_per_gpu, int | float) and procs_per_gpu > 0):
        raise ValueError(f"swf option procs_per_gpu must be > 0, got {procs_per_gpu!r}")
    p = check_file(path)
    source = str(p)
    data_lines, header = _scan(p)
    if len(data_lines) == 0:
        raise TraceError(f"{p}: no job lines (only comments)")
    table, lines = read_csv_table(
        p,
        names=FIELDS,
        sep=r"\s+",
        data_lines=data_lines,
        what="SWF (18 whitespace-separated fields)",
    )
    report: dict[str, int] = {}
    v = {f: numbers(table, f, source, lines) for f in FIELDS}
    status = v["status"].astype(np.int64)
    keep = ~np.isin(status, PARTIAL_STATUSES)
    add_count(report, "dropped_partial_records", (~keep).sum())
    if statuses is not None:
        wanted = np.isin(status, [int(s) for s in statuses])
        add_count(report, "filtered_status", (keep & ~wanted).sum())
        keep &= wanted
    check(
        v["submit_time"] >= 0,
        table["submit_time"],
        source,
        "submit_time",
        "expected a submit time >= 0 s (-1 = missing is not allowed)",
        lines,
    )
    no_runtime = keep & (v["run_time"] == -1)
    add_count(report, "dropped_missing_runtime", no_runtime.sum())
    keep &= ~no_runtime
    for field in ("allocated_processors", "requested_processors"):
        check(
            (v[field] >= 0) | (v[field] == -1),
            table[field],
            source,
            field,
            "expected a processor count >= 0 (or -1 = missing)",
            lines,
        )
    procs = np.where(
        v["allocated_processors"] >= 0, v["allocated_processors"], v["requested_processors"]
    )
    no_procs = keep & (procs < 0)
    add_count(report, "dropped_missing_processors", no_procs.sum())
    keep &= ~no_procs
    duration, ok = duration_rule(
        np.where(keep, v["run_time"], 1.0),
        source,
        "run_time",
        lines,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
        raw=table["run_time"],
    )
    keep &= ok
    offset = _start_offset(header, source) if wall_clock else 0.0
    queue = v["queue_number"].astype(np.int64)
    jobs = pd.DataFrame(
        {
            "job_id": v["job_number"].astype(np.int64),
            "submit_time": v["submit_time"] + offset,
            "duration": duration,
            "num_gpus": np.ceil(np.maximum(procs, 0) / procs_per_gpu - 1e-9).astype(np.int64),
            "queue": np.where(queue < 0, "default", queue.astype(str)),
            "processors": procs.astype(np.int64),
            "trace_status": status,
            "user_id": v["user_id"].astype(np.int64),
            "partition": v["partition_number"].astype(np.int64),
            "trace_wait_time": v["wait_time"],
            "requested_time": v["requested_time"],
        }
    )
    jobs, lines = jobs.loc[keep].reset_index(drop=True), lines[keep]
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def _start_offset(header: dict[str, str], source: str) -> float:
    value = header.get("UnixStartTime")
    if value is None:
        raise TraceError(f"{source}: wall_clock=true needs a '; UnixStartTime:' header comment")
    try:
        return float(value)
    except ValueError as exc:
        raise TraceError(f"{source}: header UnixStartTime: cannot parse {value!r}") from exc


def load(
    path: str | Path | None = None,
    *,
    procs_per_gpu: float = 1.0,
    statuses: Iterable[int] | None = None,
    wall_clock: bool = False,
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
    """Load a Standard Workload Format file as a canonical trace (processors become GPUs).

    Column derivation:

    - ``job_id`` = job number (field 1); ``submit_time`` = submit time (field 2, seconds from
      the log start; with ``wall_clock=True`` the header's ``UnixStartTime`` is added, so that
      ``start``/``end`` may be date-time strings, UTC; the header's time zone is not applied).
    - ``duration`` = run time (field 4, seconds). Run time -1 (missing) rows are dropped
      (``dropped_missing_runtime``); run time 0 (ran < 0.5 s) follows ``zero_duration``.
    - processors = allocated processors (field 5), or requested processors (field 8) when
      field 5 is -1; rows with neither are dropped (``dropped_missing_processors``).
      ``num_gpus`` = ``ceil(processors / procs_per_gpu)`` (0 processors = CPU-only job).
    - ``queue`` = queue number (field 15) as text, ``"default"`` when -1.
    - Extra columns: ``processors``, ``trace_status``, ``user_id``, ``partition``,
      ``trace_wait_time``, ``requested_time`` (status and wait time are named apart from the
      simulated ones). ``gpu_milli`` 1000, ``gpu_type`` "", ``num_cpus``/``memory_gb`` 0
      (SWF memory is per processor and mostly missing), ``kind`` "train", ``priority`` 0.

    Partial-execution records (status 2, 3, 4: extra lines for checkpointed or swapped jobs,
    which the archive writes besides the job's summary line) are dropped
    (``dropped_partial_records``). All other statuses (completed, failed, cancelled, unknown)
    are kept unless ``statuses`` lists the wanted codes (``filtered_status``). Jobs that never
    ran have run time -1 or 0 and are handled as above. A missing (-1) submit time, a wrong
    number of fields or a non-numeric field is an error naming row, line and field.

    Args:
        path: the ``.swf`` file (required).
        procs_per_gpu: processors that make one GPU (e.g. 8 for 8-core-per-GPU nodes).
        statuses: keep only these status codes (``None`` = all but partial records).
        wall_clock: add the header's ``UnixStartTime`` to submit times.
        zero_duration: ``drop``, ``repair`` or ``error`` for zero run times.
        min_duration: seconds given to repaired zero-duration jobs.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep jobs submitted at or after this time (seconds, before rebasing).
        end: keep jobs submitted before this time (seconds, before rebasing).
        rebase: shift times so that the first kept job arrives at 0.
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by submit time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these queues (queue numbers as text).
        min_gpus: keep jobs with at least this many GPUs.
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/repaired/filtered rows.
    """
    options = {
        "procs_per_gpu": procs_per_gpu,
        "statuses": None if statuses is None else [int(s) for s in statuses],
        "wall_clock": wall_clock,
        "zero_duration": zero_duration,
        "min_duration": min_duration,
    }
    trace = cached_read("swf", read, path, options, cache_dir)
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
