"""The error raised for bad trace input, and the helper that words it.

Every problem found in a trace file is reported as a :class:`TraceError` whose message names the
file, the 1-based data row, the file line (when known) and the column, so that a user can open
the file at the right place::

    philly.csv: row 17 (line 18), column duration: expected a number > 0, got -3.0

File-level problems (missing file, empty file, missing column) name the file only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["TraceError", "row_error", "where"]


class TraceError(ValueError):
    """A trace file or table is malformed; the message says where and why.

    Formats: ``"{file}: row {r} (line {L}), column {col}: {why}"`` for a bad value (the line is
    given when the table came from a text file) and ``"{file}: {why}"`` for file-level problems.
    """


def row_error(
    source: str,
    bad: np.ndarray,
    column: str,
    why: str,
    lines: Sequence[int] | np.ndarray | None = None,
) -> TraceError:
    """Build the error for the first offending row of a column.

    Args:
        source: file name (or other description) of the table.
        bad: boolean mask over rows (True = offending) or an array of 0-based row positions.
            Must select at least one row.
        column: column name as the user knows it (the name in the file).
        why: explanation, including the offending value where useful.
        lines: optional 1-based file line of each row, or ``(data row, line)`` pairs (see
            :func:`where`).

    Returns:
        The error (the caller raises it), naming the first offending row and how many other rows
        have the same problem.
    """
    bad = np.asarray(bad)
    rows = np.flatnonzero(bad) if bad.dtype == np.bool_ else np.sort(bad.astype(np.int64))
    first = int(rows[0])
    return TraceError(
        f"{source}: {where(first, lines)}, column {column}: {why}{_more(len(rows) - 1)}"
    )


def where(row: int, lines: Sequence[int] | np.ndarray | None = None) -> str:
    """Word a 0-based row position as ``row r`` or ``row r (line L)``.

    ``lines`` is either the 1-based file line of each row (the data row number is then the
    position + 1) or an ``(n, 2)`` array of ``(data row, line)`` pairs, which keeps the numbers
    of the file when a loader has already removed some rows.
    """
    if lines is None:
        return f"row {row + 1}"
    ref = np.asarray(lines)
    if ref.ndim == 2:
        return f"row {int(ref[row, 0])} (line {int(ref[row, 1])})"
    return f"row {row + 1} (line {int(ref[row])})"


def _more(n: int) -> str:
    if n <= 0:
        return ""
    return f" (and {n} more row{'s' if n > 1 else ''} with this problem)"
