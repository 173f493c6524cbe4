"""Reusable prefix of the Mooncake (FAST'25) request traces, next to the paper's figures.

Usage::

    python -m experiments.mooncake_reuse [FILE.jsonl ...] [--block-tokens 512] [--shared DIR]
        [--markdown FILE]

For every trace (default: ``conversation_trace.jsonl`` and ``synthetic_trace.jsonl`` in
``DIR/mooncake-fast25/``, ``DIR`` = ``$GPUSIM_TRACES`` or ``../shared/traces``), replays its
requests in arrival order (ties in file order) through one unbounded prefix cache, i.e. one
replica that never evicts: a request's reusable prefix is its leading run of 512-token blocks
whose hash an earlier request already had. Prints the share of input tokens (and of blocks) in
reusable prefixes, and the "Cache Ratio" the Mooncake paper reports for the same trace (Qin et
al., FAST'25, Table 2: 40 % conversation, 59 % tool&agent, 66 % synthetic). ``non-leading
hits`` counts blocks seen before but behind a miss; it is 0 when every hash names its whole
prefix.

Exit status 2 with a one-line message when an input file is missing or malformed. A few
seconds for the two default files. ``--markdown FILE`` writes the table between the
``mooncake_reuse`` markers of FILE (traces/README.md: "Reusable prefix").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from experiments import _cli
from simulator.models.serving import MooncakeRequests
from traces.canonical import TraceError

__all__ = ["PAPER_CACHE_RATIO", "main", "reuse_row"]

NAME = "mooncake_reuse"
SUBDIR = "mooncake-fast25"
DEFAULT_NAMES = ("conversation_trace.jsonl", "synthetic_trace.jsonl")
"""The files read without arguments, in ``--shared DIR``'s ``mooncake-fast25/``."""

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
    parser = _cli.parser(__doc__, shared=True, name=NAME)
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="Mooncake .jsonl traces (default: the FAST'25 traces in --shared)",
    )
    parser.add_argument(
        "--block-tokens", type=_cli.positive_int, default=512, help="tokens per hash block"
    )
    argv = None if argv is None else list(argv)
    args = _cli.parse(parser, argv, NAME)
    folder = _cli.shared_dir(args) / SUBDIR
    files = args.files or [folder / name for name in DEFAULT_NAMES]
    for f in files:
        if not f.is_file():
            how = "give Mooncake .jsonl files" + (
                "" if args.files else ", or pass --shared DIR or set GPUSIM_TRACES"
            )
            print(f"error: {f}: file not found ({how})", file=sys.stderr)
            return 2
    try:
        rows = [reuse_row(f, args.block_tokens) for f in files]
    except (TraceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_table(rows))
    config = (
        f"Traces: {', '.join(f'`{f.name}`' for f in files)} (Mooncake, FAST'25), requests "
        "replayed in arrival order (ties in file order) through one unbounded prefix cache (one "
        f"replica that never evicts), {args.block_tokens}-token hash blocks. Paper: Qin et "
        'al., FAST\'25, Table 2 "Cache Ratio".'
    )
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, _table(rows))
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
