"""Reusable prefix of the Mooncake (FAST'25) request traces, next to the paper's figures.

Usage::

    python -m experiments.mooncake_reuse [FILE.jsonl ...] [--block-tokens 512]

For every trace (default: ``conversation_trace.jsonl`` and ``synthetic_trace.jsonl`` in
``../shared/traces/mooncake-fast25/``), replays its requests in arrival order (ties in file
order) through one unbounded prefix cache, i.e. one replica that never evicts: a request's
reusable prefix is its leading run of 512-token blocks whose hash an earlier request already
had. Prints the share of input tokens (and of blocks) in reusable prefixes, and the "Cache
Ratio" the Mooncake paper reports for the same trace (Qin et al., FAST'25, Table 2: 40 %
conversation, 59 % tool&agent, 66 % synthetic). ``non-leading hits`` counts blocks seen before
but behind a miss; it is 0 when every hash names its whole prefix.

Exit status 2 with a one-line message when an input file is missing or malformed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from simulator.models.serving import MooncakeRequests
from traces.canonical import TraceError

__all__ = ["PAPER_CACHE_RATIO", "main", "reuse_row"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "mooncake-fast25"
DEFAULT_FILES = (SHARED / "conversation_trace.jsonl", SHARED / "synthetic_trace.jsonl")

PAPER_CACHE_RATIO = {
    "conversation_trace": 0.40,
    "toolagent_trace": 0.59,
    "synthetic_trace": 0.66,
}
"""Mooncake FAST'25 paper, Table 2 ("Workload Statistics"), row "Cache Ratio", by file stem."""


def reuse_row(path: str | Path, block_tokens: int = 512) -> dict[str, object]:
    """Prefix-reuse figures of one trace file (one unbounded cache for all requests).

    Args:
        path: a Mooncake ``.jsonl`` file.
        block_tokens: tokens per hash block.

    Returns:
        ``trace``, ``requests``, ``input_tokens``, ``reusable_tokens``, ``token_share``,
        ``block_share``, ``non_leading_hits`` and ``paper_cache_ratio`` (None if unknown).
    """
    stream = MooncakeRequests(path, block_tokens=block_tokens).load()
    reuse = stream.prefix_reuse()
    stem = Path(path).stem
    return {
        "trace": stem,
        "requests": len(stream),
        "input_tokens": int(reuse.input_tokens.sum()),
        "reusable_tokens": int(reuse.hit_tokens.sum()),
        "token_share": reuse.token_share,
        "block_share": reuse.block_share,
        "non_leading_hits": int((reuse.seen_blocks - reuse.hit_blocks).sum()),
        "paper_cache_ratio": PAPER_CACHE_RATIO.get(stem),
    }


def _table(rows: list[dict[str, object]]) -> str:
    head = (
        "| trace | requests | input tokens | reusable tokens | share of tokens "
        "| share of blocks | non-leading hits | paper (Table 2) |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        paper = r["paper_cache_ratio"]
        lines.append(
            f"| {r['trace']} | {r['requests']:,} | {r['input_tokens']:,} | "
            f"{r['reusable_tokens']:,} | {100 * r['token_share']:.1f} % | "
            f"{100 * r['block_share']:.1f} % | {r['non_leading_hits']} | "
            + (f"{100 * paper:.0f} % |" if paper is not None else "n/a |")
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a Markdown table, returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.mooncake_reuse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files", nargs="*", help="Mooncake .jsonl traces (default: the shared FAST'25 traces)"
    )
    parser.add_argument("--block-tokens", type=int, default=512, help="tokens per hash block")
    args = parser.parse_args(argv)
    files = [Path(f) for f in args.files] or list(DEFAULT_FILES)
    for f in files:
        if not f.is_file():
            print(f"error: {f}: file not found (give Mooncake .jsonl files)", file=sys.stderr)
            return 2
    try:
        rows = [reuse_row(f, args.block_tokens) for f in files]
    except (TraceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
