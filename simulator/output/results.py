"""Write a run's results and load one run or a whole multirun directory into pandas.

A run directory holds ``jobs.parquet``, ``timeline.parquet``, ``summary.json`` and Hydra's
``.hydra/`` record (``config.yaml``, ``overrides.yaml``). Files are written to a temporary
name and renamed, so a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

__all__ = [
    "RunResult",
    "write_run",
    "load_run",
    "load_runs",
    "load_jobs",
    "load_tables",
    "mean_ci",
    "ci_halfwidth",
    "t_quantile",
    "parse_overrides",
    "error_message",
]

JOBS_FILE = "jobs.parquet"
TIMELINE_FILE = "timeline.parquet"
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.txt"


@dataclass
class RunResult:
    """One run loaded from disk.

    Attributes:
        path: the run directory.
        jobs: per-job table (``jobs.parquet``).
        timeline: cluster state over time (``timeline.parquet``).
        summary: contents of ``summary.json``.
        overrides: the run's Hydra command-line overrides as a dict (typed values).
    """

    path: Path
    jobs: pd.DataFrame
    timeline: pd.DataFrame
    summary: dict
    overrides: dict = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        """Load ``NAME.parquet`` of this run (e.g. ``queues``)."""
        f = self.path / f"{name}.parquet"
        if not f.is_file():
            raise FileNotFoundError(f"{self.path}: no {name}.parquet in this run")
        return pd.read_parquet(f)


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_run(
    out_dir: str | Path,
    jobs: pd.DataFrame,
    timeline: pd.DataFrame,
    summary: dict,
    extra: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write a run's result files into ``out_dir`` (created if needed).

    ``extra`` maps further table names to frames, written as ``NAME.parquet`` (e.g.
    ``queues``). ``summary.json`` is written last, so its presence marks a complete run.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {**{f"{name}.parquet": f for name, f in (extra or {}).items()}}
    tables[JOBS_FILE] = jobs
    tables[TIMELINE_FILE] = timeline
    # Arrow encodes and compresses without the GIL: the tables are written side by side
    with ThreadPoolExecutor(max_workers=min(len(tables), os.cpu_count() or 1)) as pool:
        done = [
            pool.submit(_atomic_write, out / name, lambda p, f=frame: _write_parquet(f, p))
            for name, frame in tables.items()
        ]
        for future in done:
            future.result()
    text = json.dumps(summary, indent=2, sort_keys=False, default=str)
    _atomic_write(out / SUMMARY_FILE, lambda p: p.write_text(text + "\n"))
    return out


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # Without pandas' schema metadata the Arrow list column ``nodes`` reads back as arrays of
    # node ids under any pandas version (the metadata names an Arrow-backed dtype that older
    # readers cannot parse).
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    # dictionary-encode text columns only: on numbers it costs time and rarely saves space
    text = [
        f.name
        for f in table.schema
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    pq.write_table(table, path, use_dictionary=text)


def parse_overrides(lines: list[str]) -> dict:
    """Turn Hydra override strings (``+policy=gang``, ``seed=1``) into ``{key: typed value}``."""
    out = {}
    for line in lines:
        key, _, value = line.partition("=")
        key = key.lstrip("+~")
        try:
            out[key] = yaml.safe_load(value) if value != "" else None
        except yaml.YAMLError:
            out[key] = value
    return out


def _overrides(run: Path) -> dict:
    f = run / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return {}
    return parse_overrides(yaml.safe_load(f.read_text()) or [])


def load_run(path: str | Path) -> RunResult:
    """Load one run directory.

    Raises:
        FileNotFoundError: the directory has no complete results (names what is missing).
    """
    run = Path(path)
    missing = [f for f in (JOBS_FILE, TIMELINE_FILE, SUMMARY_FILE) if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run}: not a complete run directory (missing {missing})")
    return RunResult(
        path=run,
        jobs=pd.read_parquet(run / JOBS_FILE),
        timeline=pd.read_parquet(run / TIMELINE_FILE),
        summary=json.loads((run / SUMMARY_FILE).read_text()),
        overrides=_overrides(run),
    )


def _flat(summary: dict, prefix: str = "") -> dict:
    row = {}
    for k, v in summary.items():
        if isinstance(v, dict):
            row.update(_flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            row[f"{prefix}{k}"] = v
    return row


def _natural(path: Path) -> list:
    """Sort key that puts run ``2`` before run ``10``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(path))]


def _run_dirs(root: Path) -> list[Path]:
    """Every directory under ``root`` that holds a run (finished, failed or started)."""
    found = (
        {p.parent for p in root.rglob(SUMMARY_FILE)}
        | {p.parent for p in root.rglob(ERROR_FILE)}
        | {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    )
    return sorted(found, key=_natural)


def _read_summary(run: Path) -> dict | None:
    """``summary.json`` of a run, or None when it is missing or unreadable."""
    try:
        summary = json.loads((run / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _safe_overrides(run: Path) -> dict:
    try:
        return _overrides(run)
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        return {}


def _hydra_policy(run: Path) -> str | None:
    """The policy choice in Hydra's record (for runs that died before writing a summary)."""
    try:
        record = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())
        return record["hydra"]["runtime"]["choices"].get("policy")
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None


def error_message(text: str) -> str:
    """The final exception (``Type: message``, on one line) of a Python traceback text."""
    lines = text.strip().splitlines()
    # the message follows the last frame line (indented) of the last traceback
    last = max(
        (i for i, line in enumerate(lines) if line.startswith((" ", "Traceback"))), default=-1
    )
    return " ".join(" ".join(lines[last + 1 :]).split())


def _run_row(run: Path) -> dict:
    row: dict = {"run_dir": str(run)}
    summary = _read_summary(run)
    row.update(_safe_overrides(run))
    if summary is not None:
        row["run_status"] = "ok"
        row.update(_flat(summary))
        return row
    if (run / ERROR_FILE).is_file():
        row["run_status"] = "failed"
        row["error"] = error_message((run / ERROR_FILE).read_text(errors="replace"))
    else:
        row["run_status"] = "incomplete"
        if (run / SUMMARY_FILE).is_file():
            row["error"] = f"unreadable {SUMMARY_FILE}"
    if row.get("policy") is None:
        row["policy"] = _hydra_policy(run)
    return row


def load_runs(path: str | Path) -> pd.DataFrame:
    """One row per run found under ``path`` (a multirun directory, or any tree of runs).

    Columns: ``run_dir``, ``run_status`` (``ok``; ``failed`` when the run left ``error.txt``,
    whose final exception is in ``error``; ``incomplete`` when it has a Hydra record but no readable
    summary, e.g. a run still going or killed), every override as a typed column, and every
    scalar of ``summary.json``. Failed and incomplete runs are listed, not dropped (their
    ``policy`` comes from the override or Hydra's record). Rows are sorted by ``run_dir``
    (numbers in natural order: run ``2`` before run ``10``); a
    tree without runs gives an empty frame with the columns ``run_dir`` and ``run_status``.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    dirs = _run_dirs(root)
    rows = [_run_row(run) for run in dirs]
    if not rows:
        df = pd.DataFrame({"run_dir": pd.Series(dtype=str), "run_status": pd.Series(dtype=str)})
    else:
        df = pd.DataFrame(rows)
        first = ["run_dir", "run_status"]
        df = df[first + [c for c in df.columns if c not in first]]
    # which columns came from the command line (the swept parameters), for grouping
    df.attrs["overrides"] = sorted({k for run in dirs for k in _safe_overrides(run)})
    return df


def _run_keys(run: Path, summary: dict, taken: pd.Index) -> dict:
    """Columns that identify a run in a concatenated table: overrides, policy and seed."""
    keys = {"run_dir": str(run)}
    keys.update(_safe_overrides(run))
    for name in ("policy", "seed"):
        keys.setdefault(name, summary.get(name))
    # a run key never hides a column of the table itself
    return {(f"run.{k}" if k in taken else k): v for k, v in keys.items()}


def load_tables(path: str | Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Concatenate one result table (``NAME.parquet``) of every finished run under ``path``.

    Args:
        path: a multirun directory, or any tree of run directories.
        name: the table: ``jobs``, ``timeline`` or ``queues``.
        columns: read only these columns of the table (saves memory on big sweeps).

    Returns:
        The rows of all finished runs that have the table, each prefixed with its run keys:
        ``run_dir``, every override as a typed column, ``policy`` and ``seed`` (a key named
        like a table column is renamed ``run.KEY``). Failed and incomplete runs (see
        :func:`load_runs`) have no rows.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    parts = []
    for run in _run_dirs(root):
        summary = _read_summary(run)
        table = run / f"{name}.parquet"
        if summary is None or not table.is_file():
            continue
        frame = pd.read_parquet(table, columns=columns)
        keys = _run_keys(run, summary, frame.columns)
        key_frame = pd.DataFrame({k: [v] * len(frame) for k, v in keys.items()}, index=frame.index)
        parts.append(pd.concat([key_frame, frame], axis=1))
    if not parts:
        return pd.DataFrame({"run_dir": pd.Series(dtype=str)})
    return pd.concat(parts, ignore_index=True)


def load_jobs(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """All per-job tables of the finished runs under ``path``, with run keys.

    ``load_jobs(dir).groupby("policy")["jct"].describe()`` compares policies job by job. See
    :func:`load_tables` for the key columns; ``columns`` limits the job columns read.
    """
    return load_tables(path, "jobs", columns)


def _t_two_sided(t: float, dof: int) -> float:
    """P(|T| <= t) for Student's t with integer ``dof`` (closed-form series, A&S 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, dof // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total
    if dof == 1:
        return 2 * theta / math.pi
    term, total = 1.0, 1.0
    for k in range(1, (dof - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)


def t_quantile(level: float, dof: int) -> float:
    """Two-sided critical value of Student's t: ``P(|T| <= q) = level`` with ``dof`` d.o.f.

    ``t_quantile(0.95, 4)`` is 2.776. Above 1,000 degrees of freedom the normal quantile is
    used (the difference is below 0.1 %).
    """
    if not 0 < level < 1 or dof < 1:
        raise ValueError(f"need 0 < level < 1 and dof >= 1, got {level}, {dof}")
    if dof > 1000:
        return NormalDist().inv_cdf((1 + level) / 2)
    lo, hi = 0.0, 1.0
    while _t_two_sided(hi, dof) < level:
        lo, hi = hi, hi * 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_two_sided(mid, dof) < level else (lo, mid)
    return (lo + hi) / 2


def ci_halfwidth(values, level: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean of ``values``.

    NaN values are ignored; fewer than two values give NaN (no interval).
    """
    x = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna()
    if len(x) < 2:
        return float("nan")
    return t_quantile(level, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


DEFAULT_METRICS = ("avg_jct", "p99_jct", "avg_wait", "p99_wait", "gpu_utilization", "makespan")
"""Summary metrics compared by :func:`mean_ci` unless told otherwise."""


def mean_ci(
    runs: pd.DataFrame,
    by: str | list[str] = "policy",
    metrics: list[str] | tuple[str, ...] = DEFAULT_METRICS,
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean and confidence interval of summary metrics across the runs of each group.

    Args:
        runs: the frame of :func:`load_runs`; only rows with ``run_status == "ok"`` count.
        by: column(s) defining a group, e.g. ``"policy"`` or ``["policy", "trace.time_scale"]``;
            the remaining variation (typically seeds) is treated as independent replications.
        metrics: summary columns to aggregate (missing ones are skipped).
        level: confidence level of the Student-t interval.

    Returns:
        One row per group: the ``by`` columns, ``runs`` (finished runs in the group), and per
        metric ``METRIC_mean`` and ``METRIC_ci`` (half-width; NaN with fewer than two runs).
    """
    keys = [by] if isinstance(by, str) else list(by)
    ok = runs[runs["run_status"] == "ok"] if "run_status" in runs else runs
    present = [m for m in metrics if m in ok.columns]
    rows = []
    for group, part in ok.groupby(keys, sort=True, dropna=False):
        values = group if isinstance(group, tuple) else (group,)
        row = dict(zip(keys, values, strict=True))
        row["runs"] = len(part)
        for m in present:
            col = pd.to_numeric(part[m], errors="coerce")
            row[f"{m}_mean"] = float(col.mean()) if col.notna().any() else float("nan")
            row[f"{m}_ci"] = ci_halfwidth(col, level)
        rows.append(row)
    columns = keys + ["runs"] + [f"{m}_{s}" for m in present for s in ("mean", "ci")]
    return pd.DataFrame(rows, columns=columns)
