"""Prefill/decode disaggregation versus colocated serving at equal GPUs (Splitwise-like).

Usage::

    python -m experiments.disagg_splitwise [--requests N] [--rate R] [--markdown FILE]

Llama-3-70B on 16 H100 (2 nodes of 8, no fabric: 50 GB/s between nodes, 450 GB/s inside),
TP 4: colocated = 4 replicas; disaggregated = 2 prefill + 2 decode replicas. Two request
mixes (lognormal, cv 0.5, Poisson arrivals at ``R`` requests/s): prompt-heavy (prompt 4,096 /
output 64 tokens on average) and decode-heavy (512 / 512). TTFT target 2 s, TPOT 50 ms, KV
transfer latency 1 ms. ``--markdown FILE`` writes the table between the
``disagg_splitwise`` markers of FILE (docs/serving.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from experiments import _cli
from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.models.serving import Service, SyntheticRequests

__all__ = ["MIXES", "main", "serve"]

NAME = "disagg_splitwise"
MIXES = {"prompt-heavy": (4096, 64), "decode-heavy": (512, 512)}
"""Mean prompt and output tokens of each mix."""


def serve(mix: str, disagg: bool, requests: int, rate: float) -> dict:
    """One run's service summary."""
    p, o = MIXES[mix]
    req = SyntheticRequests(
        rate=rate,
        num_requests=requests,
        seed=1,
        prompt={"kind": "lognormal", "mean": p, "cv": 0.5, "low": 16, "high": 8192},
        output={"kind": "lognormal", "mean": o, "cv": 0.5, "low": 2, "high": 2048},
    )
    pools = {"prefill": {"replicas": 2}, "decode": {"replicas": 2}} if disagg else {}
    svc = Service(model="llama-3-70b", gpu_type="H100", tensor_parallel=4, requests=req,
                  replicas=4, warm_start=True, ttft_slo_s=2.0, tpot_slo_s=0.05,
                  kv_transfer_latency_s=0.001, **pools)  # fmt: skip
    cluster = ClusterSpec.homogeneous(2, 8, "H100")
    jobs = svc.prepare(pd.DataFrame(), cluster)
    sim = Simulation(jobs, cluster, FifoPolicy(), processes=svc.processes()).run()
    return svc.summary(sim)["serving"]["llm"]


def table(requests: int, rate: float) -> str:
    """The Markdown table: one row per (mix, mode)."""
    lines = [
        "| mix | mode | p50 TTFT s | p99 TTFT s | p50 TPOT ms | p99 TPOT ms | SLO met | "
        "mean / p99 KV transfer s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mix in MIXES:
        for disagg in (False, True):
            s = serve(mix, disagg, requests, rate)
            d = s.get("disaggregation")
            xfer = f"{d['avg_kv_transfer_s']:.4f} / {d['p99_kv_transfer_s']:.4f}" if d else "-"
            lines.append(
                f"| {mix} | {'disaggregated 2+2' if disagg else 'colocated 4'} | "
                f"{s['p50_ttft']:.3f} | {s['p99_ttft']:.3f} | {1e3 * s['p50_tpot']:.1f} | "
                f"{1e3 * s['p99_tpot']:.1f} | {s['slo_attainment']:.3f} | {xfer} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a Markdown table, returns the exit status."""
    parser = _cli.parser(__doc__, name=NAME)
    parser.add_argument("--requests", type=_cli.positive_int, default=400)
    parser.add_argument("--rate", type=_cli.positive_float, default=3.0)
    argv = None if argv is None else list(argv)
    args = _cli.parse(parser, argv, NAME)
    result = table(args.requests, args.rate)
    config = (
        f"{args.requests} requests per mix at {args.rate:g} requests/s (Poisson); Llama-3-70B, "
        "16 H100 in 2 nodes, TP 4: 4 colocated replicas vs 2 prefill + 2 decode; no fabric "
        "(50 GB/s between nodes), 1 ms transfer latency; TTFT target 2 s, TPOT 50 ms."
    )
    print(config)
    print(result)
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, result)
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    _cli.run(main)
