"""The columns and dtypes of a run's result tables, and how tables of several runs are joined.

A run writes its tables in the layout of :data:`SCHEMA_VERSION`, stored in each Parquet file's
key-value metadata (:data:`SCHEMA_KEY`) and as ``schema_version`` in ``summary.json``:

* ``jobs.parquet`` has the columns of :data:`JOB_COLUMNS` first, in that order and with those
  dtypes, whatever the trace: a canonical trace column the trace lacks is filled with its
  default (:data:`traces.canonical.CANONICAL_COLUMNS`), as the engine read it. Then come the
  columns of the run's extensions (:data:`EXTENSION_JOB_COLUMNS`: fabric, serving), then the
  trace's own extra columns, unchanged (one named like a result column is ``trace_NAME``).
* the other tables have the columns and dtypes of :data:`TABLE_COLUMNS`.

Dtypes are named as pandas reads the files: ``string`` is text (``str`` from pandas 3,
``object`` before), ``category`` a categorical of text (a dictionary-encoded Parquet column
whose categories are kept), ``list<int32>`` an object column of int32 arrays. Integer columns
never hold missing values in a file; where a table of several runs has none for a run (a
column only some runs have), :func:`concat_frames` makes it a nullable ``Int64``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa

from traces.canonical import CANONICAL_COLUMNS, KINDS, OUTPUT_COLUMNS

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_KEY",
    "JOB_COLUMNS",
    "EXTENSION_JOB_COLUMNS",
    "TABLE_COLUMNS",
    "CATEGORIES",
    "conform_jobs",
    "conform_table",
    "arrow_table",
    "concat_frames",
    "typed_series",
]

SCHEMA_VERSION = 2
"""Version of the result tables' layout (columns, order, dtypes) and of ``summary.json``.

2: ``jobs.pending_reason``, the ``pending`` table and ``summary.pending_reasons``."""
SCHEMA_KEY = "gpusim.schema_version"
"""Key of :data:`SCHEMA_VERSION` in the key-value metadata of every Parquet file of a run."""

STATUS_CATEGORIES = (
    "future",
    "queued",
    "running",
    "finished",
    "unschedulable",
    "failed",
    "unfinished",
    "rejected",
    "dormant",
)
"""Categories of ``jobs.status``: every status of :data:`simulator.core.jobs.STATUS_NAMES`."""

_CANONICAL_DTYPES = {
    "job_id": "string",
    "submit_time": "float64",
    "duration": "float64",
    "num_gpus": "int64",
    "gpu_milli": "int64",
    "gpu_type": "category",
    "num_cpus": "float64",
    "memory_gb": "float64",
    "kind": "category",
    "queue": "category",
    "priority": "int64",
    "pods": "int64",
    "gpus_per_pod": "int64",
}
_OUTPUT_DTYPES = {
    "start_time": "float64",
    "end_time": "float64",
    "wait_time": "float64",
    "jct": "float64",
    "status": "category",
    "nodes": "list<int32>",
    "num_nodes": "int64",
    "gpu_seconds": "float64",
    "preemptions": "int64",
    "migrations": "int64",
    "restarts": "int64",
    "slowdown": "float64",
    "lost_seconds": "float64",
    "pending_reason": "string",
}
JOB_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        **{c: _CANONICAL_DTYPES[c] for c in CANONICAL_COLUMNS},
        **{c: _OUTPUT_DTYPES[c] for c in OUTPUT_COLUMNS},
    }
)
"""The first columns of ``jobs.parquet``, in order: the canonical trace columns, then the
simulated outcome (name -> dtype)."""

EXTENSION_JOB_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        # fabric=... (simulator.models.fabric)
        "fabric_tier": "category",
        "fabric_ideal_tier": "category",
        "bytes_nvlink": "float64",
        "bytes_leaf": "float64",
        "bytes_spine": "float64",
        "comm_fraction": "float64",
        "allreduce_bytes": "float64",
        # serving=... (simulator.models.serving)
        "service": "category",
        "served_requests": "int64",
    }
)
"""Columns that extensions add to ``jobs.parquet`` (after :data:`JOB_COLUMNS`), with dtypes."""

TABLE_COLUMNS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "timeline": {
            "time": "float64",
            "allocated_gpus": "float64",
            "queue_length": "int64",
            "running_jobs": "int64",
        },
        "queues": {
            "time": "float64",
            "queue": "category",
            "allocated_gpus": "float64",
            "queued_jobs": "int64",
        },
        "requests": {
            "service": "category",
            "request": "int64",
            "arrival_time": "float64",
            "prompt_tokens": "int64",
            "output_tokens": "int64",
            "replica": "int64",
            "queueing_delay": "float64",
            "ttft": "float64",
            "tpot": "float64",
            "e2e_latency": "float64",
            "first_token_time": "float64",
            "end_time": "float64",
            "status": "category",
            "restarts": "int64",
            "slo_met": "bool",
        },
        "replicas": {
            "time": "float64",
            "service": "category",
            "pending": "int64",
            "loading": "int64",
            "ready": "int64",
            "draining": "int64",
            "target": "int64",
        },
        "failures": {
            "time": "float64",
            "node": "int64",
            "node_name": "string",
            "event": "category",
            "jobs_killed": "int64",
            "lost_gpu_seconds": "float64",
        },
        "pending": {
            "job_id": "string",
            "reason": "category",
            "seconds": "float64",
        },
        "links": {
            "time": "float64",
            "tier": "category",
            "link": "int64",
            "flows": "int64",
            "utilization": "float64",
            "peak_utilization": "float64",
        },
    }
)
"""Columns and dtypes of the other tables (``NAME.parquet``); a table's columns keep this
order. ``requests.replica`` is -1 for a request never routed to a replica."""

CATEGORIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "status": STATUS_CATEGORIES,
        "kind": tuple(KINDS),
        "fabric_tier": ("none", "nvlink", "leaf", "spine"),
        "fabric_ideal_tier": ("none", "nvlink", "leaf", "spine"),
        "requests.status": ("unfinished", "finished", "rejected"),
        "failures.event": ("down", "up"),
    }
)
"""Fixed categories (in this order) of categorical columns (``TABLE.COLUMN`` outside the jobs
table); any other value found is appended, sorted. Other categorical columns have the sorted
values of the run as categories."""


# ---------------------------------------------------------------------------------- one run
_TEXT = pd.Series(["x"]).dtype
"""pandas' default dtype of text (``str`` from pandas 3, ``object`` before)."""


def conform_jobs(jobs: pd.DataFrame, added: Iterable[str] = ()) -> pd.DataFrame:
    """The jobs table of a run in the layout of :data:`SCHEMA_VERSION`.

    Args:
        jobs: :func:`simulator.output.metrics.job_frame`, with the extensions' columns.
        added: the columns the extensions added (typed by :data:`EXTENSION_JOB_COLUMNS`,
            placed after the fixed columns and before the trace's extra columns).

    Returns:
        A new frame: :data:`JOB_COLUMNS` in order (``job_id`` as text; absent or empty
        canonical cells filled with their default, as the engine read them), the extensions'
        columns, then every other column unchanged, except that a column holding no value at
        all is float64 NaN.

    Raises:
        ValueError: a required column is missing (the message names it).
    """
    missing = [
        c
        for c in JOB_COLUMNS
        if c not in jobs.columns and (c in OUTPUT_COLUMNS or CANONICAL_COLUMNS[c].required)
    ]
    if missing:
        raise ValueError(f"jobs table: missing column(s) {missing}")
    jobs = jobs.reset_index(drop=True)
    out: dict[str, object] = {}
    for name, dtype in JOB_COLUMNS.items():
        col = jobs[name] if name in jobs.columns else _absent(len(jobs), _default(name))
        if name == "gpu_milli":  # 1000 per GPU, 0 for a CPU-only job (as the engine reads it)
            gpus = out["num_gpus"]
            col = (
                pd.to_numeric(col).astype(np.float64).fillna(pd.Series(np.where(gpus > 0, 1000, 0)))
            )
        out[name] = _typed(col, name, dtype, _default(name))
    added = [c for c in dict.fromkeys(added) if c in jobs.columns and c not in JOB_COLUMNS]
    for name in [*added, *(c for c in jobs.columns if c not in out and c not in added)]:
        dtype = EXTENSION_JOB_COLUMNS.get(name) if name in added else None
        out[name] = _typed(jobs[name], name, dtype, None) if dtype else _no_none(jobs[name])
    return pd.DataFrame(out)


def conform_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Table ``name`` (``timeline``, ``queues``, ...) in the layout of :data:`TABLE_COLUMNS`.

    Columns of the schema come first, in its order, cast to its dtypes; other columns follow
    unchanged (a column holding no value at all becomes float64 NaN). A table the schema does
    not know is returned with only that last rule applied.
    """
    spec = TABLE_COLUMNS.get(name, {})
    frame = frame.reset_index(drop=True)
    cols = {c: _typed(frame[c], f"{name}.{c}", spec[c], None) for c in spec if c in frame}
    cols.update({c: _no_none(frame[c]) for c in frame.columns if c not in spec})
    return pd.DataFrame(cols, index=frame.index)


def _absent(n: int, default: object) -> pd.Series:
    """An absent column: its default (NaN when it has none)."""
    if default is None:
        return pd.Series(np.full(n, np.nan))
    return pd.Series(np.full(n, default, dtype=object if isinstance(default, str) else None))


def _default(name: str) -> object:
    spec = CANONICAL_COLUMNS.get(name)
    return spec.default if spec is not None else None


def _typed(col: pd.Series, name: str, dtype: str, default: object) -> pd.Series | pd.Categorical:
    """``col`` as ``dtype``, empty cells filled with ``default`` (when not None)."""
    if dtype == "category":
        fixed = CATEGORIES.get(name, CATEGORIES.get(name.rpartition(".")[2]))
        return _categorical(_text(col, default), fixed)
    if dtype == "string":
        return _text(col, default)
    if dtype == "int64":
        return _integers(col, name, default)
    if dtype == "float64":
        num = (col if col.dtype.kind in "fiub" else pd.to_numeric(col)).astype(np.float64)
        return num.fillna(default) if default is not None else num
    if dtype == "bool":
        return col.astype(bool)
    return col  # list<int32>: the Arrow list column of job_frame, kept


def _text(col: pd.Series, default: object) -> pd.Series:
    """Text values, empty cells ``default`` (or missing, when the default is None)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if default is not None:
        col = col.where(col.notna(), str(default))
    if not (isinstance(_TEXT, pd.StringDtype) and col.dtype == _TEXT):
        col = col.where(col.isna(), col.astype(str)).astype(_TEXT)
    return col


def _categorical(text: pd.Series, fixed: tuple[str, ...] | None) -> pd.Categorical:
    """Categories ``fixed`` (in that order), then every other value found, sorted."""
    cat = pd.Categorical(text)  # categories: the sorted values
    fixed = tuple(fixed or ())
    found = [c for c in cat.categories if c not in fixed]
    cats = pd.Index([*fixed, *found], dtype=_TEXT)
    return cat if cats.equals(cat.categories) else cat.set_categories(cats)


def _integers(col: pd.Series, name: str, default: object) -> pd.Series:
    """int64 values, empty cells ``default`` (if any).

    A column with a value that is not a whole number (or an empty cell without a default)
    stays float64, with a warning naming the table and column.
    """
    if col.dtype.kind in "iub" and not col.isna().any():
        return col.astype(np.int64)
    num = pd.to_numeric(col).astype(np.float64)
    if default is not None:
        num = num.fillna(default)
    whole = np.isfinite(num) & (num == np.round(num)) & (np.abs(num) < 2**63)
    if not whole.all():
        table, _, column = name.rpartition(".")
        warnings.warn(
            f"{table or 'jobs'}.parquet, column {column}: {float(num[~whole].iloc[0])!r} is not a "
            "whole number: the column is written as float64, not int64",
            stacklevel=4,
        )
        return num
    return num.astype(np.int64)


def _no_none(col: pd.Series) -> pd.Series:
    """``col``, or float64 NaN when it holds no value at all (not object ``None``)."""
    if len(col) and col.dtype == object and col.isna().all():
        return pd.Series(np.nan, index=col.index, dtype=np.float64)
    return col


# ---------------------------------------------------------------------------------- files
def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as the Arrow table written to Parquet: the same types under any pandas.

    Text is ``string`` (not pandas 3's ``large_string``), categoricals are dictionaries with
    int32 indices (whatever the number of categories), and the metadata holds only
    :data:`SCHEMA_KEY`: without pandas' own metadata the Arrow list column ``nodes`` reads
    back as arrays of node ids under any pandas version (that metadata names an Arrow-backed
    dtype that older readers cannot parse).
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_dictionary(t):
            v = t.value_type  # no categories (an empty table): text all the same
            values = pa.string() if pa.types.is_large_string(v) or pa.types.is_null(v) else v
            t = pa.dictionary(pa.int32(), values, t.ordered)
        fields.append(pa.field(f.name, t, f.nullable))
    table = table.cast(pa.schema(fields))
    return table.replace_schema_metadata({SCHEMA_KEY: str(SCHEMA_VERSION)})


# ---------------------------------------------------------------------------------- many runs
def concat_frames(
    parts: list[pd.DataFrame], what: str = "tables", first: Iterable[str] = ()
) -> pd.DataFrame:
    """Concatenate tables of several runs into one with one dtype per column.

    Columns keep their order of first appearance (those named in ``first`` before the
    others, e.g. the run keys of :func:`simulator.output.results.load_tables`). Categoricals
    (and text concatenated with them) get the union of the categories (sorted when each
    part's were); integer and boolean columns that some parts lack become nullable ``Int64``
    and ``boolean``; a column with text in some parts and numbers in others becomes text
    (with a warning naming it and ``what``); a part's column holding no value at all takes
    the dtype of the others (float64 NaN if no part has a value).
    """
    if not parts:
        return pd.DataFrame()
    found = dict.fromkeys(c for p in parts for c in p.columns)
    columns = [*(c for c in dict.fromkeys(first) if c in found), *found]
    columns = list(dict.fromkeys(columns))
    plans = {c: _plan(c, parts, what) for c in columns}
    out = []
    for p in parts:
        p = p.reset_index(drop=True)
        cols = {c: plans[c](p[c] if c in p.columns else None, len(p)) for c in columns}
        out.append(pd.DataFrame(cols, index=p.index))
    return pd.concat(out, ignore_index=True)


def _kind(col: pd.Series) -> str | None:
    """What a column holds: category, text, int, bool, float, list, mixed (None: no value)."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if dtype.kind == "b":
        return "bool"
    if dtype.kind in "iu":
        return "int"
    if dtype.kind == "f":
        return "float"
    if isinstance(dtype, pd.StringDtype):
        return "text"
    if not pd.api.types.is_object_dtype(dtype):
        return "other"
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    if inferred == "empty":
        return None
    kinds = {"string": "text", "integer": "int", "boolean": "bool", "floating": "float"}
    if inferred in kinds or inferred == "mixed-integer-float":
        return kinds.get(inferred, "float")
    first = col.dropna().iloc[0]
    return "list" if isinstance(first, list | tuple | np.ndarray) else "mixed"


def _plan(name: str, parts: list[pd.DataFrame], what: str):
    """A function ``(a part's column or None, rows) -> column``: one dtype for every part."""
    kinds = [(_kind(p[name]) if name in p.columns else None) for p in parts]
    seen = {k for k in kinds if k is not None}
    gaps = None in kinds or any(
        k in ("int", "bool") and p[name].isna().any() for p, k in zip(parts, kinds, strict=True)
    )
    if not seen:
        return lambda col, n: np.full(n, np.nan)
    if seen == {"text"}:
        return lambda col, n: _text(col, None) if col is not None else _no_text(n)
    if seen <= {"category", "text"}:
        cats = _union_categories([p[name] for p, k in zip(parts, kinds, strict=True) if k])
        if all(isinstance(c, str) for c in cats):
            cats = pd.Index(cats, dtype=_TEXT)
        return lambda col, n: pd.Categorical(
            col.astype(object).to_numpy() if col is not None else [None] * n, categories=cats
        )
    if seen in ({"int"}, {"bool"}):
        dtype = {"int": ("Int64", np.int64), "bool": ("boolean", bool)}[seen.pop()][not gaps]
        na = "Int64" if dtype in ("Int64", np.int64) else "boolean"
        return lambda col, n: (
            col.astype(dtype) if col is not None and _kind(col) else pd.array([None] * n, na)
        )
    if seen <= {"int", "float", "bool"}:
        return lambda col, n: (
            pd.to_numeric(col).astype(np.float64) if col is not None else np.full(n, np.nan)
        )
    if seen == {"list"}:
        return lambda col, n: col if col is not None else pd.Series([None] * n, dtype=object)
    warnings.warn(
        f"{what}: column {name!r} holds {' and '.join(sorted(seen))} values in different "
        "runs: read as text",
        stacklevel=3,
    )
    return lambda col, n: _text(col, None) if col is not None else _no_text(n)


def _no_text(n: int) -> pd.Series:
    return pd.Series([None] * n, dtype=_TEXT)


def _union_categories(cols: list[pd.Series]) -> list:
    """Categories of every part in order of first appearance; sorted if each part's were."""
    union: dict = {}
    ordered = True
    for col in cols:
        if isinstance(col.dtype, pd.CategoricalDtype):
            cats = list(col.cat.categories)
        else:
            cats = sorted(set(col.dropna().tolist()))
        try:
            ordered = ordered and cats == sorted(cats)
        except TypeError:
            ordered = False
        union.update(dict.fromkeys(cats))
    cats = list(union)
    if ordered:
        try:
            cats = sorted(cats)
        except TypeError:
            pass
    return cats


def typed_series(values: list) -> pd.Series:
    """Python values (a run-level column) as a Series of one dtype.

    Whole numbers give int64 (nullable ``Int64`` with gaps), booleans bool (``boolean``),
    numbers float64, text the default text dtype; a column without any value is float64 NaN;
    values of mixed types stay as they are (object).
    """
    present = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    gaps = len(present) < len(values)
    if not present:
        return pd.Series(np.full(len(values), np.nan))
    if all(isinstance(v, bool | np.bool_) for v in present):
        return pd.Series(values, dtype="boolean" if gaps else bool)
    numbers = all(isinstance(v, int | float | np.number) for v in present)
    if numbers and all(isinstance(v, int | np.integer) for v in present):
        if all(-(2**63) <= v < 2**63 for v in present):
            return pd.Series(values, dtype="Int64" if gaps else np.int64)
    if numbers and not any(isinstance(v, bool | np.bool_) for v in present):
        return pd.Series([np.nan if v is None else v for v in values], dtype=np.float64)
    if all(isinstance(v, str) for v in present):
        return pd.Series(values, dtype=_TEXT)
    return pd.Series(values, dtype=object)
