"""One number format for what is printed: the run summary, per-run sweep lines, sweep tables.

Each kind of quantity has one format, whatever its size:

* counts: an integer with thousands separators, ``12,345`` (a mean of counts is rounded);
* seconds: one decimal with thousands separators, ``12,345.6 s``;
* a time in a larger unit (the sweep table's ``(min)``, ``(h)``, ``(days)`` columns): two
  decimals with thousands separators, ``1,234.56``;
* shares (GPU utilization, goodput, SLO attainment): a percentage with one decimal,
  ``85.7 %``;
* request latencies (time to first token): milliseconds with one decimal, ``123.4 ms``;
* GPU-hours: one decimal with thousands separators, ``1,234.5``.

A missing value (``None``, NaN, infinite) is ``-``.
"""

from __future__ import annotations

import math
import operator

__all__ = ["MISSING", "count", "gpu_hours", "millis", "scaled", "seconds", "share"]

MISSING = "-"
"""What a missing value is printed as."""


def _value(v: object) -> float | None:
    if v is None or isinstance(v, bool | str):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def count(v: object) -> str:
    """``12,345``."""
    if not isinstance(v, bool):
        try:
            return f"{operator.index(v):,}"  # ints (also NumPy's) exactly, however large
        except TypeError:
            pass
    x = _value(v)
    return MISSING if x is None else f"{x:,.0f}"


def seconds(v: object, unit: bool = True) -> str:
    """``12,345.6 s`` (``unit=False``: without `` s``)."""
    x = _value(v)
    if x is None:
        return MISSING
    return f"{x:,.1f} s" if unit else f"{x:,.1f}"


def scaled(v: object, div: float = 1.0) -> str:
    """A time shown in a larger unit (``v / div``): ``1,234.56``; seconds (``div`` 1) as such."""
    x = _value(v)
    if x is None:
        return MISSING
    return seconds(x, unit=False) if div == 1 else f"{x / div:,.2f}"


def share(v: object, unit: bool = True) -> str:
    """A share given as a ratio (0.857) printed as ``85.7 %`` (``unit=False``: ``85.7``)."""
    x = _value(v)
    if x is None:
        return MISSING
    return f"{100 * x:,.1f} %" if unit else f"{100 * x:,.1f}"


def millis(v: object) -> str:
    """A latency given in seconds printed in milliseconds: ``123.4 ms``."""
    x = _value(v)
    return MISSING if x is None else f"{1000 * x:,.1f} ms"


def gpu_hours(v: object) -> str:
    """``1,234.5``."""
    x = _value(v)
    return MISSING if x is None else f"{x:,.1f}"
