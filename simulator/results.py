"""Write a run's results and load one run or a whole multirun directory into pandas.

A run directory holds ``jobs.parquet``, ``timeline.parquet``, ``summary.json`` and Hydra's
``.hydra/`` record (``config.yaml``, ``overrides.yaml``). Files are written to a temporary
name and renamed, so a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

__all__ = ["RunResult", "write_run", "load_run", "load_runs", "parse_overrides"]

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
    for name, frame in (extra or {}).items():
        _atomic_write(out / f"{name}.parquet", lambda p, f=frame: _write_parquet(f, p))
    _atomic_write(out / JOBS_FILE, lambda p: _write_parquet(jobs, p))
    _atomic_write(out / TIMELINE_FILE, lambda p: _write_parquet(timeline, p))
    text = json.dumps(summary, indent=2, sort_keys=False, default=str)
    _atomic_write(out / SUMMARY_FILE, lambda p: p.write_text(text + "\n"))
    return out


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # Without pandas' schema metadata the Arrow list column ``nodes`` reads back as arrays of
    # node ids under any pandas version (the metadata names an Arrow-backed dtype that older
    # readers cannot parse).
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path)


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


def load_runs(path: str | Path) -> pd.DataFrame:
    """One row per run found under ``path`` (a multirun directory, or any tree of runs).

    Columns: ``run_dir``, ``run_status`` (``ok``, ``failed`` when the run left an error, or
    ``incomplete`` when it has a Hydra record but no summary), every override as a typed
    column, and every scalar of ``summary.json``. Failed and incomplete runs are listed, not
    dropped. Rows are sorted by ``run_dir``.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    runs = sorted(
        {p.parent for p in root.rglob(SUMMARY_FILE)}
        | {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    )
    rows = []
    for run in runs:
        row: dict = {"run_dir": str(run)}
        summary_file = run / SUMMARY_FILE
        if summary_file.is_file():
            row["run_status"] = "ok"
            row.update(_overrides(run))
            row.update(_flat(json.loads(summary_file.read_text())))
        else:
            row["run_status"] = "failed" if (run / ERROR_FILE).is_file() else "incomplete"
            row.update(_overrides(run))
            if (run / ERROR_FILE).is_file():
                row["error"] = (run / ERROR_FILE).read_text().strip().splitlines()[-1]
        rows.append(row)
    return pd.DataFrame(rows)
