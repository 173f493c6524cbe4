"""Summarise a trace: jobs, time span, GPU-size histogram, offered load.

Usage::

    python -m traces.describe FILE [--format NAME] [--max-jobs N] [--option KEY=VALUE ...]

The format is guessed from the file when ``--format`` is not given (see
:func:`traces.formats.detect`). The common trace options of :mod:`traces.convert` apply too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

from traces.canonical import Trace
from traces.convert import (
    EXIT_USAGE,
    _format_options,
    add_trace_arguments,
    interruptible,
    load_from_args,
)
from traces.mooncake import BLOCK_TOKENS, hash_arrays, prefix_reuse

__all__ = ["format_summary", "main", "summarize"]


def summarize(trace: Trace, block_tokens: int = 512) -> dict[str, object]:
    """Key figures of a trace.

    Args:
        trace: a loaded trace.
        block_tokens: tokens per prefix block of a ``hash_ids`` column (Mooncake traces).

    Returns:
        A dict with ``jobs``, ``first_submit``/``last_submit``/``span`` (seconds),
        ``gpu_histogram`` (GPUs per job -> jobs), ``fractional_gpu_jobs``, ``cpu_only_jobs``,
        ``gpu_seconds`` (sum of GPUs x milli/1000 x duration), ``offered_load`` (GPU-seconds
        per second of span, i.e. the average number of busy GPUs if every job ran on arrival;
        NaN for a zero span), ``duration_percentiles`` (p10/p50/p90/p99/max, seconds),
        ``queues`` (jobs per queue) and ``kinds`` (jobs per kind), and the ``report``; for a
        trace with block hashes (``hash_ids``, e.g. Mooncake) also ``prefix_reuse``: the
        ``token_share`` and ``block_share`` of prompts that are reusable prefix with one
        unbounded cache (requests in submit order; see :func:`traces.mooncake.prefix_reuse`).
    """
    jobs = trace.jobs
    submit = jobs["submit_time"].to_numpy(dtype=np.float64)
    duration = jobs["duration"].to_numpy(dtype=np.float64)
    gpus = jobs["num_gpus"].to_numpy() * jobs["gpu_milli"].to_numpy() / 1000.0
    first, last = float(submit.min()), float(submit.max())
    span = last - first
    gpu_seconds = float((gpus * duration).sum())
    pct = np.percentile(duration, [10, 50, 90, 99, 100])
    out = {
        "source": trace.source,
        "jobs": len(jobs),
        "first_submit": first,
        "last_submit": last,
        "span": span,
        "gpu_histogram": {
            int(k): int(v) for k, v in jobs["num_gpus"].value_counts().sort_index().items()
        },
        "fractional_gpu_jobs": int(((jobs["num_gpus"] > 0) & (jobs["gpu_milli"] < 1000)).sum()),
        "cpu_only_jobs": int((jobs["num_gpus"] == 0).sum()),
        "gpu_seconds": gpu_seconds,
        "offered_load": gpu_seconds / span if span > 0 else float("nan"),
        "duration_percentiles": dict(
            zip(["p10", "p50", "p90", "p99", "max"], (float(x) for x in pct), strict=True)
        ),
        "queues": {str(k): int(v) for k, v in jobs["queue"].value_counts().items()},
        "kinds": {str(k): int(v) for k, v in jobs["kind"].value_counts().items()},
        "report": dict(trace.report),
    }
    if "hash_ids" in jobs and "prompt_tokens" in jobs:
        order = np.argsort(submit, kind="stable")
        hashes, offsets = hash_arrays(jobs["hash_ids"].iloc[order])
        tokens = jobs["prompt_tokens"].to_numpy(dtype=np.int64)[order]
        reuse = prefix_reuse(hashes, offsets, tokens, block_tokens)
        out["prefix_reuse"] = {"token_share": reuse.token_share, "block_share": reuse.block_share}
    return out


def format_summary(s: dict[str, object]) -> str:
    """Human-readable text of :func:`summarize`'s result."""
    n = s["jobs"]
    hist = s["gpu_histogram"]
    lines = [
        f"source        {s['source']}",
        f"jobs          {n}",
        f"submit times  {s['first_submit']:.1f} .. {s['last_submit']:.1f} s "
        f"(span {s['span']:.1f} s = {s['span'] / 86400:.2f} days)",
        f"offered load  {s['offered_load']:.2f} GPU-seconds per second "
        f"({s['gpu_seconds'] / 3600:.1f} GPU-hours)",
        "duration      "
        + ", ".join(f"{k} {v:.4g} s" for k, v in s["duration_percentiles"].items()),
        f"GPU sharing   {s['fractional_gpu_jobs']} fractional-GPU jobs, "
        f"{s['cpu_only_jobs']} CPU-only jobs",
        "GPUs per job  jobs      share",
    ]
    lines += [f"  {k:>10}  {v:>8}  {100 * v / n:6.2f} %" for k, v in hist.items()]
    queues = pd.Series(s["queues"])
    lines.append(
        f"queues        {len(queues)}: "
        + ", ".join(f"{k} {v}" for k, v in queues.head(10).items())
        + (" ..." if len(queues) > 10 else "")
    )
    lines.append("kinds         " + ", ".join(f"{k} {v}" for k, v in s["kinds"].items()))
    if "prefix_reuse" in s:
        r = s["prefix_reuse"]
        lines.append(
            f"prefix reuse  {100 * r['token_share']:.1f} % of prompt tokens "
            f"({100 * r['block_share']:.1f} % of blocks) reusable, one unbounded cache"
        )
    report = s["report"]
    lines.append(
        "report        "
        + (
            ", ".join(f"{k} {v}" for k, v in report.items())
            if report
            else "nothing dropped or repaired"
        )
    )
    return "\n".join(lines)


@interruptible
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    0 done; 2 a bad option, or an input file that is missing, unreadable or malformed;
    130 interrupted.
    """
    parser = argparse.ArgumentParser(
        prog="python -m traces.describe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="trace file (or PAI folder)")
    add_trace_arguments(parser)
    args = parser.parse_args(argv)
    try:
        trace = load_from_args(args)
    except (ValueError, TypeError, OSError) as exc:  # TraceError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    block = _format_options(args.option).get("block_tokens", BLOCK_TOKENS)
    print(format_summary(summarize(trace, block_tokens=block)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
