"""Reading delimited text tables and parsing their columns, vectorised, with errors that say where.

These helpers are shared by the canonical reader and every format loader. Each parser checks a
whole column at once with NumPy/pandas and only looks at individual rows to word the error for
the first offending one (see :func:`traces.errors.row_error`).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import re
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from traces.errors import TraceError, row_error

__all__ = [
    "ZERO_DURATION_RULES",
    "add_count",
    "blank_cells",
    "check",
    "check_file",
    "duration_rule",
    "numbers",
    "read_csv_table",
    "shown",
    "strings",
    "timestamps",
]

ZERO_DURATION_RULES = ("drop", "repair", "error")
"""Values of the loaders' ``zero_duration`` option."""

_EPOCH = pd.Timestamp("1970-01-01")


def check_file(path: str | Path) -> Path:
    """Return ``path`` as a Path after checking it is an existing, non-empty file.

    Raises:
        TraceError: missing file, a directory, or a zero-byte file.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise TraceError(f"{p}: file not found")
    if not p.is_file():
        raise TraceError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise TraceError(f"{p}: file is empty")
    return p


def read_csv_table(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    names: Sequence[str] | None = None,
    sep: str = ",",
    dtype: dict | None = None,
    what: str = "trace",
    quoting: int = csv.QUOTE_MINIMAL,
    data_lines: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a delimited text file into a DataFrame and the data row and file line of every row.

    Blank lines are skipped (their line numbers are accounted for). Values are left for the
    column parsers to check, so a garbage cell becomes a row/column error, not a crash.

    Args:
        path: the file.
        required: columns that must be present (checked against the header row).
        names: column names for a file without a header row (``None`` = first line is a header).
        sep: field separator.
        dtype: pandas dtypes for some columns (use ``str`` for text columns).
        what: what the file should be, for error messages (e.g. ``"Philly CSV"``).
        quoting: ``csv`` quoting mode (``csv.QUOTE_NONE`` for files whose text has stray quotes).
        data_lines: file line of every data row, when the caller knows them (files with comment
            lines, whose rows pandas cannot place); lines starting with ``;`` are then comments.

    Returns:
        ``(table, lines)``; ``lines`` is an ``(n, 2)`` int array of 1-based ``(data row, file
        line)`` pairs, to be filtered together with the table (see :func:`traces.errors.where`).

    Raises:
        TraceError: missing/empty/unreadable file, ragged rows, missing columns.
    """
    p = check_file(path)
    header = None if names is not None else 0
    first_line = 1 if names is not None else 2
    if data_lines is not None and len(data_lines):
        first_line = int(data_lines[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(
                p,
                sep=sep,
                header=header,
                names=list(names) if names is not None else None,
                dtype=dtype,
                skip_blank_lines=data_lines is not None,
                index_col=False,
                quoting=quoting,
                comment=";" if data_lines is not None else None,
            )
    except pd.errors.ParserWarning as exc:  # first data row longer than the header
        width = len(names) if names is not None else len(pd.read_csv(p, sep=sep, nrows=0).columns)
        raise TraceError(
            f"{p}: line {first_line}: expected {width} fields, saw more (expected format: {what})"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise TraceError(f"{p}: file is empty (no header line)") from exc
    except pd.errors.ParserError as exc:
        raise TraceError(f"{p}: {_parser_message(exc)} (expected format: {what})") from exc
    except UnicodeDecodeError as exc:
        raise TraceError(f"{p}: not a UTF-8 text file ({exc.reason})") from exc
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:  # bad compressed data
        raise TraceError(f"{p}: cannot read ({type(exc).__name__}: {exc})") from exc
    if names is None:
        _check_header(p, sep)
    _check_short_rows(p, sep, len(table.columns), data_lines is not None, what)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise TraceError(
            f"{p}: missing column(s) {missing}; found {list(table.columns)} "
            f"(expected format: {what})"
        )
    if data_lines is not None:
        if len(data_lines) != len(table):
            raise TraceError(
                f"{p}: found {len(table)} data rows but {len(data_lines)} data "
                f"lines (expected format: {what})"
            )
        return table, np.column_stack([np.arange(1, len(table) + 1), data_lines])
    lines = np.arange(len(table), dtype=np.int64) + first_line
    blank = table.isna().to_numpy().all(axis=1) if len(table.columns) else np.zeros(0, bool)
    if blank.any():
        table = table.loc[~blank].reset_index(drop=True)
        lines = lines[~blank]
    return table, np.column_stack([np.arange(1, len(table) + 1), lines])


_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
"""Compressed text files read by pandas (by suffix) whose bytes the checks below decompress."""


def _raw_bytes(p: Path) -> bytes | None:
    """The file's text bytes (decompressed), None for a compression not handled here."""
    suffix = p.suffix.lower()
    if suffix in _OPENERS:
        with _OPENERS[suffix](p, "rb") as f:
            return f.read()
    if suffix in (".zip", ".zst", ".tar"):
        return None
    return p.read_bytes()


def _check_header(p: Path, sep: str) -> None:
    """A column name given twice would be renamed by pandas (``x.1``) and silently lost."""
    suffix = p.suffix.lower()
    if suffix in (".zip", ".zst", ".tar"):
        return
    with _OPENERS.get(suffix, open)(p, "rb") as f:
        first = f.readline().decode("utf-8-sig", errors="replace")
    names = [n.strip().strip('"') for n in first.rstrip("\r\n").split(sep)]
    seen: set[str] = set()
    for name in names:
        if name in seen and name:
            raise TraceError(f"{p}: column name {name!r} appears twice in the header")
        seen.add(name)


def _check_short_rows(p: Path, sep: str, width: int, comments: bool, what: str) -> None:
    """Rows with fewer fields than the header: pandas would pad them with empty cells.

    Counted with NumPy over the raw bytes; files with quotes (where a separator may sit inside
    a field) are left to the CSV parser, and so are whitespace-separated files.
    """
    if width < 2 or sep not in (",", "\t", ";", "|"):
        return
    data = _raw_bytes(p)
    if data is None:
        return
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0 or (raw == ord('"')).any():
        return
    ends = np.flatnonzero(raw == ord("\n"))
    if ends.size == 0 or ends[-1] != raw.size - 1:
        ends = np.append(ends, raw.size)  # last line without a newline
    seps = np.concatenate([[0], np.cumsum(raw == ord(sep))])
    starts = np.concatenate([[0], ends[:-1] + 1])
    fields = seps[ends] - seps[starts] + 1
    length = ends - starts - (raw[np.maximum(ends - 1, 0)] == ord("\r"))
    content = length > 0
    if comments:
        content &= raw[np.minimum(starts, raw.size - 1)] != ord(";")
    short = np.flatnonzero(content & (fields < width))
    short = short[short > 0]  # line 1 is the header (or a first row pandas already checked)
    if short.size:
        k = int(short[0])
        row = int(content[1 : k + 1].sum())  # data rows up to this one (line 1 is the header)
        raise TraceError(
            f"{p}: row {row} (line {k + 1}): expected {width} fields, saw "
            f"{int(fields[k])} (truncated row?) (expected format: {what})"
        )


def _parser_message(exc: Exception) -> str:
    text = str(exc).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return f"line {m.group(2)}: expected {m.group(1)} fields, saw {m.group(3)}"
    return text.replace("Error tokenizing data. C error: ", "")


def shown(value: object) -> str:
    """Represent a cell value for an error message (NumPy scalars as plain Python values)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def check(
    ok: np.ndarray,
    raw: pd.Series,
    source: str,
    column: str,
    why: str,
    lines: np.ndarray | None = None,
) -> None:
    """Raise a row error ``"{why}, got {value}"`` for the first row where ``ok`` is False."""
    bad = ~np.asarray(ok, dtype=bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise row_error(source, bad, column, f"{why}, got {shown(raw.iloc[first])}", lines)


def blank_cells(s: pd.Series) -> np.ndarray:
    """Mask of missing cells: NaN/None, or text that is empty after stripping."""
    missing = s.isna().to_numpy()
    if isinstance(s.dtype, pd.StringDtype):
        missing = missing | (s.str.strip() == "").to_numpy(dtype=bool, na_value=False)
    elif s.dtype == object:
        text = s.where(~missing, "").astype(str)
        missing = missing | (text.str.strip() == "").to_numpy(dtype=bool, na_value=False)
    return missing


def numbers(
    table: pd.DataFrame,
    column: str,
    source: str,
    lines: np.ndarray | None = None,
    *,
    fill: float | None = None,
    integer: bool = False,
    label: str | None = None,
) -> np.ndarray:
    """Parse a column as finite numbers (float64).

    Args:
        table: the table.
        column: its column to parse.
        source: file name for errors.
        lines: file line per row (or ``(row, line)`` pairs), for errors.
        fill: value (or per-row array of values) for missing (empty/NaN) cells; ``None`` makes
            a missing cell an error; ``np.nan`` keeps missing cells as NaN.
        integer: require whole numbers.
        label: column name to show in errors (default ``column``).

    Returns:
        float64 array, one value per row.

    Raises:
        TraceError: missing value (when ``fill`` is None), unparseable text, infinity, fraction.
    """
    s = table[column]
    name = label or column
    temporal = isinstance(s.dtype, pd.DatetimeTZDtype) or (
        isinstance(s.dtype, np.dtype) and s.dtype.kind in "mM"
    )
    if temporal:
        raise TraceError(
            f"{source}: column {name}: expected a number, got a {s.dtype} column (date-times "
            "and time spans are not read as numbers: their unit would be lost; store seconds)"
        )
    if pd.api.types.is_bool_dtype(s.dtype):
        raise row_error(
            source,
            np.ones(len(s), bool),
            name,
            f"expected a number, got a boolean ({shown(s.iloc[0])})",
            lines,
        )
    missing = blank_cells(s)
    if pd.api.types.is_numeric_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        vals = pd.to_numeric(s.where(~missing, np.nan), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        check(~(np.isnan(vals) & ~missing), s, source, name, "cannot parse as a number", lines)
    if missing.any():
        if fill is None:
            raise row_error(source, missing, name, "missing value (empty or NaN)", lines)
        vals = np.where(missing, fill, vals)
    check(np.isfinite(vals) | missing, s, source, name, "expected a finite number", lines)
    if integer:
        check((vals == np.round(vals)) | missing, s, source, name, "expected a whole number", lines)
    return vals


def timestamps(
    table: pd.DataFrame,
    column: str,
    source: str,
    lines: np.ndarray | None = None,
    *,
    fmt: str,
    allow_missing: bool = False,
) -> np.ndarray:
    """Parse wall-clock strings as seconds since the Unix epoch, treating naive times as UTC.

    Args:
        table: the table.
        column: its column of date-time strings.
        source: file name for errors.
        lines: file line per row (or ``(row, line)`` pairs), for errors.
        fmt: ``strptime``-style format, e.g. ``"%Y-%m-%d %H:%M:%S"``.
        allow_missing: return NaN for empty cells instead of raising.

    Returns:
        float64 seconds since 1970-01-01 00:00:00 (UTC when the strings carry no zone).
    """
    s = table[column]
    missing = blank_cells(s)
    if missing.any() and not allow_missing:
        raise row_error(source, missing, column, "missing date-time", lines)
    text = s.astype(object).where(~missing, None)
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    unparsed = parsed.isna().to_numpy() & ~missing
    check(~unparsed, s, source, column, f"cannot parse as a date-time of format {fmt!r}", lines)
    return (parsed - _EPOCH).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)


def strings(s: pd.Series, fill: str) -> pd.Series:
    """Text values of a column; missing or blank cells become ``fill``."""
    missing = blank_cells(s)
    if not isinstance(s.dtype, pd.StringDtype):
        s = s.astype(object).where(~missing, fill).astype(str)
    elif missing.any():
        s = s.where(~missing, fill)
    return s.reset_index(drop=True)


def add_count(report: dict[str, int], key: str, n: int | np.integer) -> None:
    """Add ``n`` to ``report[key]`` (keys with a zero count are not created)."""
    n = int(n)
    if n:
        report[key] = report.get(key, 0) + n


def duration_rule(
    duration: np.ndarray,
    source: str,
    column: str,
    lines: np.ndarray | None,
    *,
    zero_duration: str,
    min_duration: float,
    report: dict[str, int],
    raw: pd.Series | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply a loader's zero-duration rule; negative durations are always an error.

    Args:
        duration: durations in seconds (NaN = unknown, passed through).
        source: file name for errors.
        column: column(s) the duration comes from, for errors.
        lines: file line per row (or ``(row, line)`` pairs), for errors.
        zero_duration: ``"drop"`` the row (counted as ``dropped_zero_duration``), ``"repair"``
            it to ``min_duration`` (counted as ``repaired_zero_duration``) or raise (``"error"``).
        min_duration: seconds used by ``"repair"``; must be > 0.
        report: counts, updated in place.
        raw: values to show in errors (default ``duration``).

    Returns:
        ``(duration, keep)``: the repaired durations and the mask of rows to keep.
    """
    if zero_duration not in ZERO_DURATION_RULES:
        raise ValueError(
            f"zero_duration must be one of {ZERO_DURATION_RULES}, got {zero_duration!r}"
        )
    if not min_duration > 0:
        raise ValueError(f"min_duration must be > 0 seconds, got {min_duration!r}")
    shown_vals = raw if raw is not None else pd.Series(duration)
    check(~(duration < 0), shown_vals, source, column, "negative duration", lines)
    zero = duration == 0
    keep = np.ones(len(duration), dtype=bool)
    if zero.any():
        if zero_duration == "error":
            check(
                ~zero,
                shown_vals,
                source,
                column,
                "zero duration (set zero_duration=drop or repair to accept)",
                lines,
            )
        elif zero_duration == "drop":
            keep = ~zero
            add_count(report, "dropped_zero_duration", zero.sum())
        else:
            duration = np.where(zero, float(min_duration), duration)
            add_count(report, "repaired_zero_duration", zero.sum())
    return duration, keep
