"""Trace loading: turn any job-trace source into one canonical job table.

Each format has a module with a ``load(path=None, *, <format options>, <common options>)``
function returning a :class:`~traces.canonical.Trace`; Hydra builds it from
``configs/trace/<name>.yaml``. See ``traces/README.md`` for the formats and options.
"""

from traces.canonical import (
    CANONICAL_COLUMNS,
    Trace,
    TraceError,
    apply_options,
    read_canonical,
    validate,
)
from traces.formats import FORMATS, detect, load

__all__ = [
    "CANONICAL_COLUMNS",
    "FORMATS",
    "Trace",
    "TraceError",
    "apply_options",
    "detect",
    "load",
    "read_canonical",
    "validate",
]
