"""The column and dtype tables of docs/outputs.md, from :mod:`simulator.output.schema` itself.

Usage::

    python -m experiments.schema_tables                          # print them
    python -m experiments.schema_tables --markdown docs/outputs.md

One table per result file: ``jobs.parquet`` (the canonical trace columns, the simulated
outcome, then the columns extensions add) and every other table a run can write. A test
(``tests/test_docs.py``) checks that the block in docs/outputs.md is what this prints, so the
documented schema cannot drift from the written one.
"""

from __future__ import annotations

import pandas as pd

from experiments import _cli
from simulator.output import schema

NAME = "schema_tables"


def _table(columns, categories_prefix: str = "") -> str:
    rows = []
    for name, dtype in columns.items():
        fixed = schema.CATEGORIES.get(f"{categories_prefix}{name}")
        note = ", ".join(f"`{c}`" for c in fixed) if fixed else ""
        rows.append({"column": f"`{name}`", "dtype": dtype, "fixed categories": note})
    return pd.DataFrame(rows).to_markdown(
        index=False, tablefmt="pipe", stralign=None, disable_numparse=True
    )


def block() -> str:
    """The markdown of every table's columns (schema version included)."""
    jobs = {**schema.JOB_COLUMNS, **schema.EXTENSION_JOB_COLUMNS}
    parts = [
        f"Schema version {schema.SCHEMA_VERSION} (Parquet metadata `{schema.SCHEMA_KEY}`, "
        "`schema_version` in `summary.json`).",
        "`jobs.parquet`: the canonical trace columns, the outcome, then the columns an "
        "extension adds (fabric, serving: present only in its runs), then the trace's own extra "
        "columns, unchanged (one named like a result column becomes `trace_NAME`):",
        _table(jobs),
    ]
    for name, columns in schema.TABLE_COLUMNS.items():
        parts += [f"`{name}.parquet`:", _table(columns, f"{name}.")]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _cli.parse(_cli.parser(__doc__, name=NAME), argv, NAME)
    text = block()
    print(text, end="")
    _cli.emit(args, NAME, text, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
