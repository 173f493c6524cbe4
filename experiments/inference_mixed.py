"""Inference serving next to training on one GPU pool: training JCT vs inference SLOs.

Usage::

    python -m experiments.inference_mixed [--shared DIR] [--scales 1 2 4] [--markdown FILE]
    python -m experiments.inference_mixed --bench      # 1M requests, 1,000 GPUs, with training
    python -m experiments.inference_mixed --bench --bench-prefix-cache   # the same, cache on

The Azure LLM conversation trace (19,366 requests over an hour, 2023) is served by an
autoscaled Llama-2-70B service (4 x H100 per replica, roofline step times, 2-minute model
load) on a 16 x 8 H100 cluster that also runs a Philly training window (jobs submitted
2017-10-02, 1,351 jobs, arrivals compressed 24x into the hour; each job keeps its duration).
Policy: ``priority`` with replicas (priority 100) non-preemptible and preempting training
(priority 0); preempted training jobs roll back to a 30-minute checkpoint and pay 60 s to
restart. Requests start at 30 min, when the training backlog has filled the cluster; the
request trace is time-scaled 1x, 2x, 4x (same requests, higher rate); the first row is
training alone. Prints a Markdown table and wall times (about 6 s in all, 2 cores).

``--markdown FILE`` writes the table between the ``inference_mixed`` markers of FILE (README:
"Results: inference next to training"); with ``--bench`` (about 50 s) its row goes between the
``inference_mixed_bench`` markers instead. Needs ``DIR/philly-pollux/philly.csv`` and (not for
``--bench``) ``DIR/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv``.
``--bench-prefix-cache`` gives the benchmark's prompts a shared-prefix model (64 groups of
1,024 tokens, Zipf 1) and turns prefix caching on.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import _cli
from policies.priority import PriorityPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.models.serving import (
    Autoscaler,
    AzureRequests,
    Service,
    SharedPrefix,
    SyntheticRequests,
    TokenDist,
)
from simulator.output import metrics
from traces import philly

NAME = "inference_mixed"
BENCH_NAME = "inference_mixed_bench"
"""Markers of the ``--bench`` table (the experiment's own are ``inference_mixed``)."""
BENCH_PREFIX_NAME = "inference_mixed_bench_prefix"
"""Markers of the ``--bench --bench-prefix-cache`` table."""
Priority = PriorityPolicy
SIM = {"checkpoint_interval": 1800.0, "restart_overhead": 60.0}


def chat_service(requests, max_replicas: int = 16, prefix_cache: bool = False) -> Service:
    return Service(
        prefix_cache=prefix_cache,
        name="chat",
        model="llama-2-70b",
        gpu_type="H100",
        tensor_parallel=4,
        priority=100,
        requests=requests,
        max_batch_size=128,
        max_batched_tokens=8192,
        load_delay_s=120.0,
        warm_start=True,
        router="least_outstanding",
        ttft_slo_s=2.0,
        tpot_slo_s=0.1,
        autoscaler=Autoscaler(
            policy="utilization",
            min_replicas=1,
            max_replicas=max_replicas,
            initial_replicas=1,
            interval_s=30.0,
            target_utilization=0.25,
            scale_in_delay_s=300.0,
        ),
    )


def run(training: pd.DataFrame, cluster: ClusterSpec, service: Service | None) -> dict:
    t0 = time.perf_counter()
    trace = training if service is None else service.prepare(training, cluster)
    procs = () if service is None else service.processes()
    sim = Simulation(
        trace, cluster, Priority(non_preemptible_threshold=100), processes=procs, **SIM
    ).run()
    wall = time.perf_counter() - t0
    jobs = metrics.job_frame(sim)
    train = jobs[(jobs["kind"] == "train") & (jobs["status"] == "finished")]
    row = {
        "train_jobs": len(train),
        "avg_jct": train["jct"].mean(),
        "p99_jct": train["jct"].quantile(0.99),
        "avg_wait": train["wait_time"].mean(),
        "preemptions": int(train["preemptions"].sum()),
        "wall": wall,
        "sim_wall": sim.wall_seconds,
    }
    if service is not None:
        s = service.summary(sim)["serving"][service.name]
        row.update(s)
    return row


def table(rows: list[tuple[str, dict]]) -> str:
    out = [
        "| inference load | requests | req/s | SLO attain. | p99 TTFT (s) | p99 TPOT (ms) | "
        "goodput (req/s) | avg / max replicas | replica GPU-h | train avg JCT (h) | "
        "train p99 JCT (h) | train avg wait (h) | preemptions | wall (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        if "requests" in r:
            serve = (
                f"{r['requests']:,} | {r['requests'] / r['span_s']:.1f} | "
                f"{r['slo_attainment']:.3f} | {r['p99_ttft']:.2f} | {r['p99_tpot'] * 1e3:.0f} | "
                f"{r['goodput_rps']:.2f} | {r['avg_ready_replicas']:.1f} / "
                f"{r['max_ready_replicas']} | {r['replica_gpu_seconds'] / 3600:.0f}"
            )
        else:
            serve = "- | - | - | - | - | - | - | -"
        out.append(
            f"| {name} | {serve} | {r['avg_jct'] / 3600:.2f} | {r['p99_jct'] / 3600:.1f} | "
            f"{r['avg_wait'] / 3600:.2f} | {r['preemptions']} | {r['wall']:.1f} |"
        )
    return "\n".join(out)


DAY = ("2017-10-02 00:00:00", "2017-10-03 00:00:00")
"""The day of Philly training (submit times) that runs next to the service."""


def load_training(philly_csv: Path, time_scale: float) -> pd.DataFrame:
    """The Philly jobs submitted on :data:`DAY`, arrivals compressed ``time_scale`` times."""
    return philly.load(path=str(philly_csv), start=DAY[0], end=DAY[1], time_scale=time_scale).jobs


def mixed(philly_csv: Path, conv: Path, scales: list[float]) -> tuple[str, str]:
    """The table of training alone and next to the service at each time scale, and its setup."""
    training = load_training(philly_csv, 24.0)
    cluster = ClusterSpec.homogeneous(16, 8, "H100", nodes_per_rack=8)
    rows = [("none (training only)", run(training, cluster, None))]
    for scale in scales:
        requests = AzureRequests(path=str(conv), time_scale=scale, offset_s=1800.0)
        service = chat_service(requests)
        rows.append((f"conv x{scale:g}", run(training, cluster, service)))
    n_requests = next((r["requests"] for _, r in rows if "requests" in r), 0)
    config = (
        f"Cluster: {cluster.describe()}, 8 nodes per rack. Training: the {len(training):,} "
        f"Philly jobs (`{philly_csv.name}`) submitted on {DAY[0][:10]}, arrivals compressed "
        "24x into the hour, durations unchanged. Inference: "
        f"`{conv.name}` ({n_requests:,} requests) from t = 30 min, time-scaled "
        f"{', '.join(f'{s:g}x' for s in scales)}, served by Llama-2-70B (tensor parallel 4 on "
        "H100, roofline step times, batches up to 128 requests / 8,192 tokens, 2-minute model "
        "load, least-outstanding routing, SLOs TTFT 2 s and TPOT 100 ms) with a utilisation "
        "autoscaler (target 0.25, 1-16 replicas, a decision every 30 s, scale-in after 300 s). "
        "Policy `priority`: replicas priority 100 and non-preemptible, training 0; training "
        "checkpoints every 30 min and pays 60 s to restart. Deterministic (no seed). Replica "
        "averages are over the service's life from t = 0."
    )
    return table(rows), config


BENCH_HEADER = (
    "| requests | span (s) | training jobs | cluster | SLO attain. | avg / max replicas "
    "| iterations | wall (s) | simulation (s) |\n|---:|---:|---:|---|---:|---|---:|---:|---:|"
)


BENCH_PREFIX = SharedPrefix(groups=64, tokens=1024, block_tokens=512, zipf=1.0)
"""Shared-prefix model of the benchmark's prompts with ``--bench-prefix-cache``."""


def bench(philly_csv: Path, n: int, prefix_cache: bool = False) -> tuple[str, str]:
    """Requests on 125 x 8 H100 next to a day of Philly training compressed 8x: row, setup."""
    training = load_training(philly_csv, 8.0)
    cluster = ClusterSpec.homogeneous(125, 8, "H100", nodes_per_rack=16)
    requests = SyntheticRequests(
        rate=100.0,
        num_requests=n,
        arrival="gamma",
        cv=2.0,
        prompt=TokenDist("lognormal", 1024, 1.0, high=8192),
        output=TokenDist("lognormal", 200, 1.0, high=2048),
        prefix=BENCH_PREFIX if prefix_cache else None,
    )
    service = chat_service(requests, max_replicas=64, prefix_cache=prefix_cache)
    r = run(training, cluster, service)
    row = (
        f"| {r['requests']:,} | {r['span_s']:,.0f} | {len(training):,} | {cluster.describe()} | "
        f"{r['slo_attainment']:.3f} | {r['avg_ready_replicas']:.1f} / {r['max_ready_replicas']} "
        f"| {r['iterations']:,} | {r['wall']:.1f} | {r['sim_wall']:.1f} |"
    )
    config = (
        f"{n:,} synthetic requests (Gamma arrivals, cv 2, 100 req/s; prompts lognormal median "
        "1,024 tokens, sigma 1, at most 8,192; outputs lognormal median 200, sigma 1, at most "
        "2,048) served by Llama-2-70B (tensor parallel 4, up to 64 replicas, autoscaled as in "
        f"the experiment) on {cluster.describe()} next to the {len(training):,} Philly jobs "
        f"(`{philly_csv.name}`) of {DAY[0][:10]}, arrivals compressed 8x; policy `priority`."
    )
    if prefix_cache:
        pc = r["prefix_cache"]
        config += (
            f" Prefix caching on: prompts share a prefix ({BENCH_PREFIX.groups} groups of "
            f"{BENCH_PREFIX.tokens:,} tokens, Zipf {BENCH_PREFIX.zipf:g}); block hit ratio "
            f"{pc['block_hit_ratio']:.3f}, prefill tokens saved {pc['token_hit_ratio']:.1%}."
        )
    return BENCH_HEADER + "\n" + row, config


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(__doc__, shared=True, name=NAME)
    p.add_argument(
        "--scales",
        type=_cli.positive_float,
        nargs="+",
        default=[1.0, 2.0, 4.0],
        help="time scales of the request trace (default 1 2 4)",
    )
    p.add_argument("--bench", action="store_true", help="run the 1M-request benchmark instead")
    p.add_argument("--bench-requests", type=_cli.positive_int, default=1_000_000)
    p.add_argument(
        "--bench-prefix-cache",
        action="store_true",
        help="with --bench: shared-prefix prompts and prefix caching on",
    )
    args = p.parse_args(argv)
    bench_name = BENCH_PREFIX_NAME if args.bench_prefix_cache else BENCH_NAME
    if args.bench_prefix_cache and not args.bench:
        p.error("--bench-prefix-cache needs --bench")
    _cli.check_markdown(p, args, bench_name if args.bench else NAME)
    shared = _cli.shared_dir(args)
    philly_csv = _cli.need(shared / "philly-pollux" / "philly.csv", "the Pollux Philly table")
    t0 = time.perf_counter()
    if args.bench:
        result, config = bench(philly_csv, args.bench_requests, args.bench_prefix_cache)
        name = bench_name
    else:
        conv = _cli.need(
            shared / "azure-llm-inference-2023" / "AzureLLMInferenceTrace_conv.csv",
            "the Azure LLM conversation trace",
        )
        result, config = mixed(philly_csv, conv, args.scales)
        name = NAME
    total = time.perf_counter() - t0
    print(config)
    print(result)
    print(f"total wall time {total:.1f} s")
    config += f" Total wall time {total:.1f} s."
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, result)
    _cli.emit(args, name, body, argv, script=NAME)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    _cli.run(main)
