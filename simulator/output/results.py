"""Write a run's results and load one run or a whole multirun directory into pandas.

A run directory holds ``jobs.parquet``, ``timeline.parquet``, ``summary.json``, Hydra's
``.hydra/`` record (``config.yaml``, ``overrides.yaml``) and ``manifest.json``. Files are written
to a temporary name of their own and renamed, under the run directory's lock
(:class:`simulator.output.rundir.RunLock`: one writer at a time). ``manifest.json`` is written
last: it names every file of the run with its size and SHA-256, so a reader can tell one
complete run from a partial or mixed set of files (:func:`verify_run`); :func:`load_run`,
:func:`load_runs`, :func:`load_tables` and :func:`load_breakdowns` accept a directory only when
its files match it. The tables' columns and dtypes are those of :mod:`simulator.output.schema`
(version in ``summary.json`` and in each file's Parquet metadata); tables of several runs are
concatenated with one dtype per column.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from simulator.output.rundir import RunLock
from simulator.output.schema import SCHEMA_VERSION, arrow_table, concat_frames, typed_series

__all__ = [
    "RunResult",
    "RunDirError",
    "write_run",
    "verify_run",
    "seal_run",
    "adopt_record",
    "strict_json",
    "load_run",
    "load_runs",
    "load_jobs",
    "load_tables",
    "load_breakdowns",
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
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
"""Version of ``manifest.json``'s layout."""
RECORD_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml")
"""Hydra's record of a run, covered by the manifest when present."""


class RunDirError(FileNotFoundError):
    """A directory that does not hold one complete run.

    Files are missing, or do not match ``manifest.json``; the message names the file and why.
    """


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
        """Load ``NAME.parquet`` of this run (e.g. ``queues``), checked against the manifest."""
        f = self.path / f"{name}.parquet"
        files = verify_run(self.path)
        if f.name not in files:
            raise FileNotFoundError(f"{self.path}: no {name}.parquet in this run")
        return pd.read_parquet(f)


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(tmp)`` to a temporary name unique to this writer, then rename.

    Errors (a full disk, a read-only directory) name the file being written.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and str(path) not in str(exc):
            text = f"{path}: cannot write ({exc.strerror or exc})"
            raise (OSError(exc.errno, text) if exc.errno else OSError(text)) from exc
        raise


def strict_json(value: object) -> object:
    """``value`` with NaN and infinities (also NumPy ones) as ``None``: for strict JSON."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()  # NumPy scalars
        except (TypeError, ValueError):
            return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _file_entry(path: Path) -> dict:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return {"bytes": path.stat().st_size, "sha256": digest}


def _write_manifest(out: Path, names: list[str]) -> None:
    manifest = {
        "format": MANIFEST_FORMAT,
        # identifies the writing run in the manifest only: tables and summary stay byte-identical
        "run_id": uuid.uuid4().hex,
        "files": {name: _file_entry(out / name) for name in names},
    }
    text = json.dumps(manifest, indent=2) + "\n"
    _atomic_write(out / MANIFEST_FILE, lambda p: p.write_text(text))


def _stale_tables(out: Path, keep: set[str]) -> list[Path]:
    """Top-level tables of an earlier run in ``out`` that the new run does not write."""
    return [p for p in out.glob("*.parquet") if p.name not in keep]


def write_run(
    out_dir: str | Path,
    jobs: pd.DataFrame,
    timeline: pd.DataFrame,
    summary: dict,
    extra: dict[str, pd.DataFrame] | None = None,
    record: dict[str, str] | None = None,
) -> Path:
    """Write a run's result files into ``out_dir`` (created if needed), then its manifest.

    ``extra`` maps further table names to frames, written as ``NAME.parquet`` (e.g.
    ``queues``). ``record`` maps Hydra record files (:data:`RECORD_FILES`) to their text,
    rewritten so that they describe this run. Everything happens under the directory's
    :class:`~simulator.output.rundir.RunLock` (another process writing there gets
    :class:`~simulator.output.rundir.RunDirBusy`). The old manifest is removed first, and so
    are tables of an earlier run that this run does not write (every other ``*.parquet`` at
    the top of ``out_dir``); ``manifest.json`` is written last. ``summary.json`` is strict
    JSON: NaN and infinities are written as ``null``; its first key is ``schema_version``
    (:data:`~simulator.output.schema.SCHEMA_VERSION`, also in every table's Parquet metadata).
    """
    out = Path(out_dir)
    summary = {
        "schema_version": SCHEMA_VERSION,
        **{k: v for k, v in summary.items() if k != "schema_version"},
    }
    tables = {**{f"{name}.parquet": f for name, f in (extra or {}).items()}}
    tables[JOBS_FILE] = jobs
    tables[TIMELINE_FILE] = timeline
    text = json.dumps(strict_json(summary), indent=2, allow_nan=False, default=str)
    with RunLock(out):
        (out / MANIFEST_FILE).unlink(missing_ok=True)
        for stale in [out / SUMMARY_FILE, *_stale_tables(out, set(tables))]:
            stale.unlink(missing_ok=True)
        # Arrow encodes and compresses without the GIL: the tables are written side by side
        with ThreadPoolExecutor(max_workers=min(len(tables), os.cpu_count() or 1)) as pool:
            done = [
                pool.submit(_atomic_write, out / name, lambda p, f=frame: _write_parquet(f, p))
                for name, frame in tables.items()
            ]
            for future in done:
                future.result()
        for name, content in (record or {}).items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(out / name, lambda p, c=content: p.write_text(c))
        _atomic_write(out / SUMMARY_FILE, lambda p: p.write_text(text + "\n"))
        names = [*tables, SUMMARY_FILE, *(r for r in RECORD_FILES if (out / r).is_file())]
        _write_manifest(out, names)
    return out


def verify_run(path: str | Path, *, record: bool = True) -> list[str]:
    """Check that ``path`` holds one complete run: every file matches ``manifest.json``.

    Checks that the manifest exists and is readable, names ``jobs.parquet``,
    ``timeline.parquet`` and ``summary.json``, that every file it names has its size and
    SHA-256, and that no table (``*.parquet``) it does not name sits beside them.
    ``record=False`` leaves the Hydra record (``.hydra/``) out of the check.

    Returns:
        The files of the run (paths relative to ``path``).

    Raises:
        RunDirError: naming the directory, the file and what is wrong.
    """
    run = Path(path)
    try:
        manifest = json.loads((run / MANIFEST_FILE).read_text())
    except FileNotFoundError:
        missing = [f for f in (JOBS_FILE, TIMELINE_FILE, SUMMARY_FILE) if not (run / f).is_file()]
        if missing:
            raise RunDirError(
                f"{run}: not a complete run directory (missing {missing + [MANIFEST_FILE]})"
            ) from None
        raise RunDirError(
            f"{run}: no {MANIFEST_FILE}, so not known to be one complete run (still being "
            "written, stopped while writing, or written before result manifests existed); "
            "run it again, or if you trust its files, mark them with "
            f"simulator.output.results.seal_run({str(run)!r})"
        ) from None
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{run}: unreadable {MANIFEST_FILE} ({exc})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise RunDirError(f"{run}: {MANIFEST_FILE} is not a result manifest of this version")
    missing = [f for f in (JOBS_FILE, TIMELINE_FILE, SUMMARY_FILE) if f not in files]
    if missing:
        raise RunDirError(f"{run}: {MANIFEST_FILE} does not list {missing}")
    for name, want in files.items():
        if not record and name.startswith(".hydra/"):
            continue
        f = run / name
        if not f.is_file():
            raise RunDirError(f"{run}: {name} is missing (listed in {MANIFEST_FILE})")
        got = _file_entry(f) if f.stat().st_size == want.get("bytes") else None
        if got != want:
            raise RunDirError(
                f"{run}: {name} does not match {MANIFEST_FILE} (changed after the run wrote "
                "it: by another run in the same directory?); run it again"
            )
    extra = sorted(p.name for p in _stale_tables(run, set(files)))
    if extra:
        raise RunDirError(f"{run}: {extra} not written by the run of {MANIFEST_FILE}")
    return list(files)


def adopt_record(path: str | Path) -> None:
    """Vouch in the manifest for the run's current Hydra record (``.hydra/`` files).

    For ``skip_existing``: Hydra rewrote the record of a run whose results it keeps (same
    config); the tables and summary must still match (checked first).
    """
    run = Path(path)
    with RunLock(run):
        names = verify_run(run, record=False)
        kept = [n for n in names if not n.startswith(".hydra/")]
        _write_manifest(run, [*kept, *(r for r in RECORD_FILES if (run / r).is_file())])


def seal_run(path: str | Path) -> Path:
    """Write ``manifest.json`` for a run directory written before manifests existed.

    Only for directories whose files you trust to be one complete run: the manifest then
    vouches for them as they are (every ``*.parquet`` at the top, ``summary.json`` and the
    Hydra record).
    """
    run = Path(path)
    with RunLock(run):
        missing = [f for f in (JOBS_FILE, TIMELINE_FILE, SUMMARY_FILE) if not (run / f).is_file()]
        if missing:
            raise RunDirError(f"{run}: not a complete run directory (missing {missing})")
        tables = sorted(p.name for p in run.glob("*.parquet"))
        names = [*tables, SUMMARY_FILE, *(r for r in RECORD_FILES if (run / r).is_file())]
        _write_manifest(run, names)
    return run


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # the same Arrow types under any pandas, stamped with the schema version (see
    # simulator.output.schema.arrow_table)
    table = arrow_table(frame)
    # dictionary-encode text columns only: on numbers it costs time and rarely saves space;
    # categoricals too, so that their categories (also unused ones) are kept
    text = [
        f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)
    ]
    pq.write_table(table, path, use_dictionary=text)


def parse_overrides(lines: list[str]) -> dict:
    """Turn Hydra override strings (``+policy=gang``, ``seed=1``) into ``{key: typed value}``.

    Numbers, booleans and null become those; a list or mapping value (``policy.patches=[...]``,
    ``cluster.add_nodes=[{...}]``) stays the text typed, so that runs can be grouped by it.
    """
    out = {}
    for line in lines:
        key, _, value = line.partition("=")
        key = key.lstrip("+~")
        try:
            typed = yaml.safe_load(value) if value != "" else None
        except yaml.YAMLError:
            typed = value
        out[key] = value if isinstance(typed, list | dict) else typed
    return out


def _overrides(run: Path) -> dict:
    f = run / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return {}
    return parse_overrides(yaml.safe_load(f.read_text()) or [])


def load_run(path: str | Path) -> RunResult:
    """Load one run directory.

    Raises:
        RunDirError: (a ``FileNotFoundError``) the directory does not hold one complete run:
            files missing, no ``manifest.json``, or files that do not match it (see
            :func:`verify_run`; the message names the file).
    """
    run = Path(path)
    verify_run(run)
    return RunResult(
        path=run,
        jobs=pd.read_parquet(run / JOBS_FILE),
        timeline=pd.read_parquet(run / TIMELINE_FILE),
        summary=json.loads((run / SUMMARY_FILE).read_text()),
        overrides=_overrides(run),
    )


BREAKDOWNS = {"queue": "queues", "kind": "kinds", "service": "serving"}
"""Entries of ``summary.json`` that hold one dict of numbers per queue, job kind or inference
service: ``by`` of :func:`load_breakdowns` -> summary key. :func:`load_runs` leaves them out."""


def _flat(summary: dict, breakdowns: bool = False) -> dict:
    """Scalars of ``summary``, nested dicts flattened as ``NAME.KEY`` (lists left out).

    The per-queue, per-kind and per-service entries (:data:`BREAKDOWNS`) are left out unless
    ``breakdowns``.
    """
    keep = {k: v for k, v in summary.items() if breakdowns or k not in BREAKDOWNS.values()}
    if not keep:
        return {}
    flat = pd.json_normalize(keep, sep=".")
    # the one row as Python values (to_dict would take 2 ms a run, this 0.2)
    row = zip(flat.columns, flat.to_numpy(dtype=object)[0], strict=True)
    return {k: v for k, v in row if not isinstance(v, list | dict)}


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


SUMMARY_PREFIX = "summary."
"""Prefix of a summary value whose name is also an override's (e.g. ``summary.fabric``)."""


def _run_row(run: Path, overridden: set[str], breakdowns: bool) -> dict:
    """One run's row: overrides as typed, then summary values (``overridden`` names prefixed)."""
    row: dict = {"run_dir": str(run)}
    summary = _read_summary(run)
    row.update(_safe_overrides(run))
    problem = None
    if summary is not None:
        try:
            verify_run(run)
        except RunDirError as exc:
            problem = str(exc).removeprefix(f"{run}: ")
        else:
            row["run_status"] = "ok"
            for key, value in _flat(summary, breakdowns).items():
                row[f"{SUMMARY_PREFIX}{key}" if key in overridden else key] = value
            return row
    if problem is not None:
        row["run_status"] = "incomplete"
        row["error"] = problem
    elif (run / ERROR_FILE).is_file():
        row["run_status"] = "failed"
        row["error"] = error_message((run / ERROR_FILE).read_text(errors="replace"))
    else:
        row["run_status"] = "incomplete"
        if (run / SUMMARY_FILE).is_file():
            row["error"] = f"unreadable {SUMMARY_FILE}"
    if row.get("policy") is None:
        row["policy"] = _hydra_policy(run)
    return row


Paths = str | Path | Iterable[str | Path]
"""One directory, or several: each a run directory or any tree of runs (e.g. a sweep)."""


def _roots(path: Paths) -> list[Path]:
    roots = [Path(path)] if isinstance(path, str | Path) else [Path(p) for p in path]
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such directory")
    return roots


def _runs_under(path: Paths) -> list[Path]:
    """Every run under each directory of ``path`` (natural order per directory), once."""
    return list(dict.fromkeys(run for root in _roots(path) for run in _run_dirs(root)))


def load_runs(path: Paths, breakdowns: bool = False) -> pd.DataFrame:
    """One row per run found under ``path`` (a multirun directory, any tree of runs, or a list).

    Columns: ``run_dir``, ``run_status`` (``ok`` when its files match its ``manifest.json``,
    see :func:`verify_run`; ``failed`` when the run left ``error.txt``, whose final exception
    is in ``error``; ``incomplete`` when it has a Hydra record but no readable summary, e.g. a
    run still going or killed, or when its files do not match the manifest or it has none:
    ``error`` says why), every override as a typed column holding the value as it was
    given on the command line (``fabric=leaf_spine`` gives ``leaf_spine``), and every
    run-level scalar of ``summary.json`` under its own name (nested dicts flattened by
    :func:`pandas.json_normalize`: ``trace_report.dropped_duplicate_rows``), or as
    ``summary.NAME`` when an override of any run has that name (the summary's ``fabric`` is
    the fabric model's full name, ``leaf_spine_h100``; its ``trace`` the file that was read):
    overrides and results never share a column. The per-queue, per-kind and per-service
    numbers (``queues``, ``kinds``, ``serving`` of the summary) are in :func:`load_breakdowns`;
    ``breakdowns=True`` adds them here too, flattened (``queues.NAME.avg_jct``, ...).

    Each column has one dtype: whole numbers int64 (nullable ``Int64`` when some runs have
    no value, e.g. failed runs), flags bool (``boolean``), numbers float64 (a metric without
    any value is NaN, not ``None``), text the text dtype; an override given as numbers in
    some runs and as text in others keeps its values as typed (object). Failed and
    incomplete runs are listed, not dropped (their ``policy`` comes from the override or
    Hydra's record). Rows are sorted by ``run_dir`` (numbers in natural order: run ``2``
    before run ``10``); a tree without runs gives an empty frame with the columns
    ``run_dir`` and ``run_status``. ``attrs["overrides"]`` names the override columns.

    Raises:
        FileNotFoundError: ``path`` (or one of them) is not a directory.
    """
    dirs = _runs_under(path)
    overridden = {k for run in dirs for k in _safe_overrides(run)}
    rows = [_run_row(run, overridden, breakdowns) for run in dirs]
    if not rows:
        df = pd.DataFrame({"run_dir": pd.Series(dtype=str), "run_status": pd.Series(dtype=str)})
    else:
        first = ["run_dir", "run_status"]
        names = [*first, *(c for c in dict.fromkeys(k for r in rows for k in r) if c not in first)]
        df = pd.DataFrame({c: typed_series([r.get(c) for r in rows]) for c in names})
    # which columns came from the command line (the swept parameters), for grouping
    df.attrs["overrides"] = sorted(overridden)
    return df


def _run_keys(run: Path, summary: dict, taken: pd.Index) -> dict:
    """Columns that identify a run in a concatenated table: overrides, policy and seed."""
    keys = {"run_dir": str(run)}
    keys.update(_safe_overrides(run))
    for name in ("policy", "seed"):
        keys.setdefault(name, summary.get(name))
    # a run key never hides a column of the table itself
    return {(f"run.{k}" if k in taken else k): v for k, v in keys.items()}


def _key_columns(keys: dict, n: int) -> dict:
    """The run keys as ``n``-row columns: text as categories (``run_dir`` as text)."""
    out: dict = {}
    for name, value in keys.items():
        if value is None:
            out[name] = np.full(n, None, dtype=object)
        elif name == "run_dir":
            out[name] = pd.Series([value] * n, dtype=pd.Series([value]).dtype)
        elif isinstance(value, bool | int | float):
            out[name] = np.full(n, value)
        else:  # text, or a list or dict given on the command line: as its text
            text = value if isinstance(value, str) else str(value)
            out[name] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[text])
    return out


def _finished_runs(path: Paths) -> Iterator[tuple[Path, dict, list[str]]]:
    """``(run, summary, files)`` of every run under ``path`` that matches its manifest."""
    for run in _runs_under(path):
        summary = _read_summary(run)
        if summary is None:
            continue
        try:
            files = verify_run(run)
        except RunDirError:
            continue  # listed by load_runs as incomplete, with the reason
        yield run, summary, files


def _with_keys(run: Path, summary: dict, frame: pd.DataFrame, names: dict) -> pd.DataFrame:
    """``frame`` prefixed with the run's key columns (their names are added to ``names``)."""
    keys = _key_columns(_run_keys(run, summary, frame.columns), len(frame))
    names.update(dict.fromkeys(keys))
    return pd.concat([pd.DataFrame(keys, index=frame.index), frame], axis=1)


def load_tables(path: Paths, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Concatenate one result table (``NAME.parquet``) of every finished run under ``path``.

    Args:
        path: a multirun directory, any tree of run directories, or a list of them.
        name: the table: ``jobs``, ``timeline``, ``queues``, ``requests``, ...
        columns: read only these columns of the table (saves memory on big sweeps).

    Returns:
        The rows of all finished runs that have the table, each prefixed with its run keys:
        ``run_dir`` (text), every override as a typed column, ``policy`` and ``seed`` (a key
        named like a table column is renamed ``run.KEY``); text keys (``policy``) are
        categorical. Each column has one dtype across runs (see
        :func:`simulator.output.schema.concat_frames`): categoricals get the union of the
        categories, integer columns some runs lack are nullable ``Int64``. The frame
        round-trips through :meth:`pandas.DataFrame.to_parquet`. Failed and incomplete runs
        (see :func:`load_runs`: also runs whose files do not match their manifest) have no
        rows.
    """
    parts, keys = [], {}
    for run, summary, files in _finished_runs(path):
        table = run / f"{name}.parquet"
        if table.name not in files:
            continue
        parts.append(_with_keys(run, summary, pd.read_parquet(table, columns=columns), keys))
    if not parts:
        return pd.DataFrame({"run_dir": pd.Series(dtype=str)})
    return concat_frames(parts, what=f"{name}.parquet", first=keys)


def load_jobs(path: Paths, columns: list[str] | None = None) -> pd.DataFrame:
    """All per-job tables of the finished runs under ``path``, with run keys.

    ``load_jobs(dir).groupby("policy")["jct"].describe()`` compares policies job by job. See
    :func:`load_tables` for the key columns; ``columns`` limits the job columns read.
    """
    return load_tables(path, "jobs", columns)


def load_breakdowns(path: Paths, by: str = "queue") -> pd.DataFrame:
    """The per-queue, per-kind or per-service numbers of every finished run, one row each.

    A tidy table: one row per run and queue (``by="queue"``: the summary's ``queues``), job
    kind (``"kind"``: ``kinds``) or inference service (``"service"``: ``serving``), with the
    run keys of :func:`load_tables` (``run_dir``, overrides, ``policy``, ``seed``), the
    ``by`` column (categorical) and one column per number of the summary's entry (``jobs``,
    ``finished``, ``avg_jct``, ...; nested dicts flattened as ``NAME.KEY``). For a long
    table, ``melt`` it: ``df.melt(id_vars=[..., "queue"], var_name="metric")``.

    ``load_breakdowns(sweep).groupby(["policy", "queue"])["avg_wait"].mean()`` compares
    queues across policies. Runs without such entries (no ``serving``, or written before
    the summary had them) have no rows.

    Raises:
        ValueError: ``by`` is not ``queue``, ``kind`` or ``service``.
        FileNotFoundError: ``path`` (or one of them) is not a directory.
    """
    if by not in BREAKDOWNS:
        raise ValueError(f"load_breakdowns: by must be one of {sorted(BREAKDOWNS)}, got {by!r}")
    parts, keys = [], {}
    for run, summary, _ in _finished_runs(path):
        entries = summary.get(BREAKDOWNS[by])
        if not isinstance(entries, dict) or not entries:
            continue
        rows = [v if isinstance(v, dict) else {"value": v} for v in entries.values()]
        numbers = pd.json_normalize(rows, sep=".")
        lists = [c for c in numbers.columns if numbers[c].map(lambda v: isinstance(v, list)).any()]
        numbers = numbers.drop(columns=lists)
        names = list(entries)
        group = pd.Categorical(names, categories=sorted(names))
        frame = pd.concat([pd.DataFrame({by: group}), numbers], axis=1)
        parts.append(_with_keys(run, summary, frame, keys))
    if not parts:
        return pd.DataFrame({"run_dir": pd.Series(dtype=str), by: pd.Categorical([])})
    return concat_frames(parts, what=f"summary.json {BREAKDOWNS[by]}", first=keys)


def t_quantile(level: float, dof: int) -> float:
    """Two-sided critical value of Student's t: ``P(|T| <= q) = level`` with ``dof`` d.o.f.

    ``t_quantile(0.95, 4)`` is 2.776 (``scipy.stats.t.ppf``).

    Raises:
        ValueError: ``level`` is not in (0, 1) or ``dof`` is below 1.
    """
    if not 0 < level < 1 or dof < 1:
        raise ValueError(f"need 0 < level < 1 and dof >= 1, got {level}, {dof}")
    # imported here: scipy.stats takes about a second to import, most runs never need it
    from scipy.stats import t

    return float(t.ppf((1 + level) / 2, dof))


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
