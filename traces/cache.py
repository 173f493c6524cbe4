"""On-disk cache of parsed traces as canonical Parquet, for big source files.

Parsing a large CSV (millions of rows) takes seconds; reading the same jobs back from Parquet
takes a fraction of that. Every loader takes a ``cache_dir`` option: when it is set, the full
canonical table of a source file (after format parsing, before the common trace options such as
``start`` or ``max_jobs``) is stored in that directory as

    <cache_dir>/<file stem>.<format>.<key>.parquet   the canonical jobs
    <cache_dir>/<file stem>.<format>.<key>.json      source name and report counts

where ``key`` is a hash of the format name, the resolved absolute path, the file's size and
modification time (ns) (and those of any other file named by a format option, such as the PAI
task table or Gavel's throughput table), the format options and :data:`CACHE_VERSION`.
Editing or replacing the file, or changing a format option, therefore misses the cache; old
entries are never reused and may be deleted at any time (``rm -r <cache_dir>``). Files are
written atomically (temporary name, then rename), so concurrent runs at worst both parse the
file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as parquet

from traces.canonical import Trace

__all__ = ["CACHE_VERSION", "cache_paths", "cached_read", "read_parquet", "write_parquet"]

CACHE_VERSION = 1
"""Bump when loaders change what they produce, to invalidate old cache entries."""


def cache_paths(
    cache_dir: str | Path, fmt: str, path: str | Path, options: Mapping[str, object]
) -> tuple[Path, Path]:
    """The Parquet and JSON file names of the cache entry for a source file and options.

    Args:
        cache_dir: cache directory.
        fmt: trace format name (e.g. ``"philly"``).
        path: source file.
        options: format options that change the parsed table.

    Returns:
        ``(parquet_path, json_path)``.
    """
    src = Path(path).expanduser().resolve()
    files = {"path": _identity(src)}
    for name, value in options.items():  # option files (e.g. a throughput table) count too
        if isinstance(value, str | Path) and Path(value).expanduser().is_file():
            files[name] = _identity(Path(value).expanduser().resolve())
    ident = json.dumps(
        {"format": fmt, "files": files, "options": dict(options), "version": CACHE_VERSION},
        sort_keys=True,
        default=str,
    )
    key = hashlib.sha256(ident.encode()).hexdigest()[:20]
    folder = Path(cache_dir).expanduser()
    base = f"{src.stem}.{fmt}.{key}"
    return folder / f"{base}.parquet", folder / f"{base}.json"


def _identity(p: Path) -> list[object]:
    stat = p.stat()
    return [str(p), stat.st_size, stat.st_mtime_ns]


def cached_read(
    fmt: str,
    read: Callable[..., Trace],
    path: str | Path | None,
    options: Mapping[str, object],
    cache_dir: str | Path | None,
) -> Trace:
    """Call ``read(path, **options)``, or return its stored result.

    Args:
        fmt: trace format name, part of the cache key.
        read: the format's reader (returns the full canonical trace of a file).
        path: source file; ``None`` (a bundled sample) is never cached.
        options: format options passed to ``read`` and hashed into the key.
        cache_dir: cache directory; ``None`` disables the cache.

    Returns:
        The trace, from the cache when a valid entry exists.
    """
    if cache_dir is None or path is None:
        return read(path, **options)
    pq, meta = cache_paths(cache_dir, fmt, path, options)
    if pq.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            return Trace(
                jobs=read_parquet(pq),
                source=info["source"],
                report={k: int(v) for k, v in info["report"].items()},
            )
        except (OSError, ValueError, KeyError):
            pass  # unreadable entry: parse again and overwrite it
    trace = read(path, **options)
    pq.parent.mkdir(parents=True, exist_ok=True)
    try:
        _atomic_write(pq, lambda tmp: write_parquet(trace.jobs, tmp))
    except (ValueError, TypeError, pa.ArrowException):
        return trace  # a column Parquet cannot store (e.g. mixed-type ids): no cache entry
    _atomic_write(
        meta,
        lambda tmp: tmp.write_text(
            json.dumps({"source": trace.source, "report": trace.report}, indent=1)
        ),
    )
    return trace


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a job table as Parquet that ``pandas.read_parquet`` reads back.

    Like ``frame.to_parquet(path, index=False)`` (``frame.attrs`` are kept in the pandas
    metadata), except that Arrow list columns (e.g. Mooncake's ``hash_ids``) are declared as
    object columns in that metadata: pandas cannot parse the name of a nested Arrow dtype
    (``large_list<item: int32>[pyarrow]``) and would fail to read the file. Such a column
    reads back as one NumPy array per row.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    nested = {f.name for f in table.schema if pa.types.is_nested(f.type)}
    if nested and b"pandas" in meta:
        info = json.loads(meta[b"pandas"])
        for col in info.get("columns", []):
            if col.get("name") in nested:
                col["numpy_type"], col["pandas_type"] = "object", "object"
        meta[b"pandas"] = json.dumps(info).encode()
        table = table.replace_schema_metadata(meta)
    parquet.write_table(table, path)


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a job table written by :func:`write_parquet`; list columns come back Arrow-backed.

    Same as ``pandas.read_parquet`` except that a list column is a ``pandas.ArrowDtype`` column
    (one flat buffer) instead of one NumPy array per row.
    """
    table = parquet.read_table(path)
    return table.to_pandas(
        types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_nested(t) else None
    )


def _atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
