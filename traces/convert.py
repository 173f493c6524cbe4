"""Convert any supported trace to a canonical Parquet or CSV file.

Usage::

    python -m traces.convert --format philly philly.csv philly.parquet --max-jobs 10000
    python -m traces.convert openb_pod_list_default.csv openb.parquet -o dense_window=clip

The output keeps every canonical column and the extra columns of the format; read it back with
``trace=file trace.path=OUT``. ``--format`` defaults to ``auto`` (guessed from the file, see
:func:`traces.formats.detect`). Format options are passed as ``--option KEY=VALUE`` (values are
read as YAML: ``1.5``, ``true``, ``[a, b]``, ``null``). The conversion report (rows dropped or
repaired, by reason) is printed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import yaml

from traces.cache import write_parquet
from traces.canonical import Trace, TraceError
from traces.file import REPORT_ATTR, SOURCE_ATTR
from traces.formats import FORMATS, load

__all__ = ["add_trace_arguments", "interruptible", "load_from_args", "main", "write_trace"]


def add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--format``, ``--option`` and the common trace options to a parser."""
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", *FORMATS],
        help="trace format (default: guess from the file)",
    )
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="format option, e.g. -o pending=keep (repeatable)",
    )
    parser.add_argument("--start", help="keep jobs submitted at/after this time (s or date)")
    parser.add_argument("--end", help="keep jobs submitted before this time (s or date)")
    parser.add_argument("--no-rebase", action="store_true", help="keep the original times")
    parser.add_argument("--sample-frac", type=float, help="keep this random fraction of jobs")
    parser.add_argument("--max-jobs", type=int, help="keep the first N jobs by submit time")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="divide inter-arrival times by this factor"
    )
    parser.add_argument("--queues", help="comma-separated queues to keep")
    parser.add_argument("--min-gpus", type=int, help="keep jobs with at least this many GPUs")
    parser.add_argument("--max-gpus", type=int, help="keep jobs with at most this many GPUs")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample-frac")
    parser.add_argument("--cache-dir", help="parsed-Parquet cache directory (traces.cache)")


def _format_options(pairs: Sequence[str]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _time(value: str | None) -> float | str | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def load_from_args(args: argparse.Namespace) -> Trace:
    """Load the trace named by parsed command-line arguments (see :func:`add_trace_arguments`)."""
    options = _format_options(args.option)
    queues = [q.strip() for q in args.queues.split(",")] if args.queues else None
    return load(
        args.format,
        args.input,
        start=_time(args.start),
        end=_time(args.end),
        rebase=not args.no_rebase,
        sample_frac=args.sample_frac,
        max_jobs=args.max_jobs,
        time_scale=args.time_scale,
        queues=queues,
        min_gpus=args.min_gpus,
        max_gpus=args.max_gpus,
        seed=args.seed,
        cache_dir=args.cache_dir,
        **options,
    )


def write_trace(trace: Trace, out: str | Path) -> Path:
    """Write a trace's job table as ``.parquet`` or ``.csv`` (chosen by the suffix).

    Parquet files also store the trace's source and report (pandas ``attrs`` metadata), which
    the ``file`` loader reads back.

    Args:
        trace: the trace.
        out: output file.

    Returns:
        The output path.
    """
    p = Path(out)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        jobs = trace.jobs.copy(deep=False)
        jobs.attrs = {REPORT_ATTR: dict(trace.report), SOURCE_ATTR: trace.source}
        write_parquet(jobs, p)
    elif suffix == ".csv" or p.name.lower().endswith(".csv.gz"):
        _lists_as_json(trace.jobs).to_csv(p, index=False)
    else:
        raise ValueError(f"{p}: output must end in .parquet or .csv")
    return p


def _lists_as_json(jobs: pd.DataFrame) -> pd.DataFrame:
    """List columns (Mooncake ``hash_ids``) as JSON text, e.g. ``[0, 14, 15]``, for CSV."""
    nested = [
        c
        for c in jobs.columns
        if isinstance(jobs[c].dtype, pd.ArrowDtype)
        and pa.types.is_nested(jobs[c].dtype.pyarrow_dtype)
    ]
    if not nested:
        return jobs
    out = jobs.copy(deep=False)
    for c in nested:
        out[c] = [json.dumps(v) for v in pa.array(out[c]).to_pylist()]
    return out


EXIT_FAILED = 1
"""Exit status when the work failed (here: the output file could not be written)."""
EXIT_USAGE = 2
"""Exit status of a usage or input error (bad option, missing or malformed input file)."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C or SIGTERM."""


def _output_ok(out: str | Path) -> bool:
    p = Path(out)
    return p.suffix.lower() in (".parquet", ".pq", ".csv") or p.name.lower().endswith(".csv.gz")


def interruptible(main: Callable[[Sequence[str] | None], int]) -> Callable[..., int]:
    """Wrap a command-line ``main``: Ctrl-C (or SIGTERM) gives one line and status 130."""

    def run(argv: Sequence[str] | None = None) -> int:
        previous = signal.getsignal(signal.SIGTERM)
        if previous in (signal.SIG_DFL, None) and (
            threading.current_thread() is threading.main_thread()
        ):
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            if previous in (signal.SIG_DFL, None) and (
                threading.current_thread() is threading.main_thread()
            ):
                signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)

    run.__doc__ = main.__doc__
    return run


@interruptible
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    0 written; 1 the output could not be written; 2 a bad option, or an input file that is
    missing, unreadable or malformed; 130 interrupted.
    """
    parser = argparse.ArgumentParser(
        prog="python -m traces.convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="trace file (or PAI folder)")
    parser.add_argument("output", help="canonical .parquet or .csv file to write")
    add_trace_arguments(parser)
    args = parser.parse_args(argv)
    if not _output_ok(args.output):
        print(f"error: {args.output}: output must end in .parquet or .csv", file=sys.stderr)
        return EXIT_USAGE
    try:
        trace = load_from_args(args)
    except (TraceError, ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        out = write_trace(trace, args.output)
    except (OSError, pa.ArrowException) as exc:
        print(f"error: cannot write {args.output}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    report = ", ".join(f"{k} {v}" for k, v in trace.report.items()) or "nothing"
    print(f"{out}: {len(trace.jobs)} jobs from {trace.source}; dropped/repaired: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
