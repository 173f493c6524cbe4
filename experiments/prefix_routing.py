"""Prefix caching and cache-aware routing on the Mooncake conversation trace: TTFT and hit ratio.

Usage::

    python -m experiments.prefix_routing [--shared DIR] [--max-requests N] [--replicas K]
        [--time-scale X] [--load-caps C ...] [--markdown FILE]

Replays ``mooncake-fast25/conversation_trace.jsonl`` (in ``DIR`` = ``$GPUSIM_TRACES`` or
``../shared/traces``; 12,031 requests in one hour, 512-token prefix-block hashes) on a
service of ``K`` fixed Llama-3-70B replicas, 8 x H100 each (tensor parallel 8, the
``mooncake_conv`` settings: batches of 128 requests / 8,192 tokens, chunked prefill, TTFT
target 2 s, TPOT 100 ms) on a cluster of exactly those GPUs. One row per configuration: no
prefix cache, then the cache on with each router (``round_robin``, ``least_outstanding``,
``jsq``, and ``prefix_affinity`` with each load cap ``C``, default 1.5, 2 and 4). Each
replica's cache is the KV memory left after the weights (blocks pinned by running requests,
the rest evicted LRU). Next to it, the hit ratio of one unbounded cache shared by all requests
(the count from ``hash_ids``, :func:`traces.mooncake.prefix_reuse`), the most any router
could reach.

Exit status 2 with a one-line message when the trace is missing. About 7 s for the whole
trace on 2 cores. ``--markdown FILE`` writes the table between the ``prefix_routing`` markers
of FILE (docs/serving.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import _cli
from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.models.serving import MooncakeRequests, PrefixRequestStream, Service

__all__ = ["ROUTERS", "experiment", "main", "serve"]

NAME = "prefix_routing"
TRACE = "mooncake-fast25/conversation_trace.jsonl"
ROUTERS = ("round_robin", "least_outstanding", "jsq", "prefix_affinity")
"""Routers compared with the cache on (after one row without a cache)."""


def serve(
    stream: PrefixRequestStream, replicas: int, router: str, cache: bool, load_cap: float = 2.0
) -> dict:
    """One run: the service's summary plus ``wall`` (s)."""
    cluster = ClusterSpec.homogeneous(replicas, 8, "H100")
    service = Service(
        name="chat",
        model="llama-3-70b",
        gpu_type="H100",
        tensor_parallel=8,
        requests=stream,
        max_batch_size=128,
        max_batched_tokens=8192,
        warm_start=True,
        router=router,
        affinity_load_cap=load_cap,
        prefix_cache=cache,
        replicas=replicas,
        ttft_slo_s=2.0,
        tpot_slo_s=0.1,
    )
    t0 = time.perf_counter()
    trace = service.prepare(pd.DataFrame(), cluster)
    sim = Simulation(trace, cluster, FifoPolicy(), processes=service.processes()).run()
    row = service.summary(sim)["serving"]["chat"]
    row["wall"] = time.perf_counter() - t0
    return row


def experiment(
    path: Path,
    replicas: int,
    max_requests: int | None,
    time_scale: float,
    load_caps: Sequence[float],
) -> tuple[list[tuple[str, bool, dict]], float, PrefixRequestStream]:
    """All rows ``(router, cache on, summary)``, the unbounded block share, and the stream."""
    stream = MooncakeRequests(path, time_scale=time_scale, max_requests=max_requests).load()
    rows = [("least_outstanding", False, serve(stream, replicas, "least_outstanding", False))]
    for router in ROUTERS[:-1]:
        rows.append((router, True, serve(stream, replicas, router, True)))
    for cap in load_caps:
        row = serve(stream, replicas, "prefix_affinity", True, cap)
        rows.append((f"prefix_affinity (cap {cap:g})", True, row))
    return rows, stream.prefix_reuse().block_share, stream


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{1000 * x:,.0f}"


def table(rows: list[tuple[str, bool, dict]], unbounded: float) -> str:
    """The Markdown table of :func:`experiment`'s rows."""
    lines = [
        "| router | prefix cache | block hit ratio | prefill tokens saved | mean TTFT (ms) "
        "| p50 TTFT (ms) | p99 TTFT (ms) | SLO attain. | evicted blocks |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for router, cache, r in rows:
        pc = r.get("prefix_cache")
        hit = f"{pc['block_hit_ratio']:.3f}" if pc else "-"
        saved = f"{pc['token_hit_ratio']:.1%}" if pc else "-"
        evicted = f"{pc['evicted_blocks']:,}" if pc else "-"
        lines.append(
            f"| {router} | {'on' if cache else 'off'} | {hit} | {saved} | {_ms(r['avg_ttft'])} "
            f"| {_ms(r['p50_ttft'])} | {_ms(r['p99_ttft'])} | {r['slo_attainment']:.3f} "
            f"| {evicted} |"
        )
    lines.append(
        f"| one unbounded cache (hash_ids) | - | {unbounded:.3f} | - | - | - | - | - | - |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a Markdown table, returns the exit status."""
    parser = _cli.parser(__doc__, shared=True, name=NAME)
    parser.add_argument("--max-requests", type=_cli.positive_int, default=None)
    parser.add_argument("--replicas", type=_cli.positive_int, default=4)
    parser.add_argument("--time-scale", type=_cli.positive_float, default=1.0)
    parser.add_argument(
        "--load-caps",
        type=float,
        nargs="+",
        default=[1.5, 2.0, 4.0],
        help="prefix_affinity load caps, one row each (>= 1; default 1.5 2 4)",
    )
    argv = None if argv is None else list(argv)
    args = _cli.parse(parser, argv, NAME)
    if not all(c >= 1 for c in args.load_caps):
        parser.error("--load-caps must be >= 1")
    path = _cli.need(_cli.shared_dir(args) / TRACE, "the Mooncake conversation trace")
    t0 = time.perf_counter()
    rows, unbounded, stream = experiment(
        path, args.replicas, args.max_requests, args.time_scale, args.load_caps
    )
    total = time.perf_counter() - t0
    result = table(rows, unbounded)
    span = float(stream.arrival[-1] - stream.arrival[0]) if len(stream) else 0.0
    config = (
        f"`{path.name}` (Mooncake, FAST'25): {len(stream):,} requests over {span / 60:.1f} "
        f"min (time scale {args.time_scale:g}), {int(stream.prompt_tokens.sum()):,} prompt "
        f"tokens; {args.replicas} fixed Llama-3-70B replicas of 8 x H100 (tensor parallel 8, "
        "batches of 128 requests / 8,192 tokens, chunked prefill, roofline step times), "
        "TTFT target 2 s, TPOT 100 ms. Prefix cache per replica in the KV memory left after "
        "the weights (512-token blocks); `prefix_affinity` candidates: outstanding requests at "
        "most cap x max(1, the fewest). "
        "Block hit ratio = cached leading blocks / prompt blocks; prefill tokens saved = "
        "share of prompt tokens not prefilled. Last row: one unbounded cache shared by all "
        f"requests (the `hash_ids` count). Total wall time {total:.1f} s."
    )
    print(config)
    print(result)
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, result)
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    _cli.run(main)
