"""Inference serving next to training on one GPU pool: training JCT vs inference SLOs.

Usage::

    python -m experiments.inference_mixed [--shared ../shared/traces] [--scales 1 2 4]
    python -m experiments.inference_mixed --bench      # 1M requests, 1,000 GPUs, with training

The Azure LLM conversation trace (19,366 requests over an hour, 2023) is served by an
autoscaled Llama-2-70B service (4 x H100 per replica, roofline step times, 2-minute model
load) on a 16 x 8 H100 cluster that also runs a Philly training window (jobs submitted
2017-10-02, 1,351 jobs, arrivals compressed 24x into the hour; each job keeps its duration).
Policy: ``priority`` with replicas (priority 100) non-preemptible and preempting training
(priority 0); preempted training jobs roll back to a 30-minute checkpoint and pay 60 s to
restart. Requests start at 30 min, when the training backlog has filled the cluster; the
request trace is time-scaled 1x, 2x, 4x (same requests, higher rate); the first row is
training alone. Prints a Markdown table and wall times.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from policies.priority import PriorityPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.models.serving import (
    Autoscaler,
    AzureRequests,
    Service,
    SyntheticRequests,
    TokenDist,
)
from simulator.output import metrics
from traces import philly

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"
Priority = PriorityPolicy
SIM = {"checkpoint_interval": 1800.0, "restart_overhead": 60.0}


def chat_service(requests, max_replicas: int = 16) -> Service:
    return Service(
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


def mixed(shared: Path, scales: list[float]) -> None:
    conv = shared / "azure-llm-inference-2023" / "AzureLLMInferenceTrace_conv.csv"
    training = philly.load(
        path=str(shared / "philly-pollux" / "philly.csv"),
        start="2017-10-02 00:00:00",
        end="2017-10-03 00:00:00",
        time_scale=24.0,
    ).jobs
    cluster = ClusterSpec.homogeneous(16, 8, "H100", nodes_per_rack=8)
    rows = [("none (training only)", run(training, cluster, None))]
    for scale in scales:
        requests = AzureRequests(path=str(conv), time_scale=scale, offset_s=1800.0)
        service = chat_service(requests)
        rows.append((f"conv x{scale:g}", run(training, cluster, service)))
    print(f"cluster: {cluster.describe()}; training: {len(training)} Philly jobs")
    print(table(rows))


def bench(shared: Path, n: int) -> None:
    """A million requests on 125 x 8 H100 next to a day of Philly training compressed 8x."""
    training = philly.load(
        path=str(shared / "philly-pollux" / "philly.csv"),
        start="2017-10-02 00:00:00",
        end="2017-10-03 00:00:00",
        time_scale=8.0,
    ).jobs
    cluster = ClusterSpec.homogeneous(125, 8, "H100", nodes_per_rack=16)
    requests = SyntheticRequests(
        rate=100.0,
        num_requests=n,
        arrival="gamma",
        cv=2.0,
        prompt=TokenDist("lognormal", 1024, 1.0, high=8192),
        output=TokenDist("lognormal", 200, 1.0, high=2048),
    )
    service = chat_service(requests, max_replicas=64)
    r = run(training, cluster, service)
    print(
        f"bench: {r['requests']:,} requests over {r['span_s']:,.0f} s, {len(training):,} "
        f"training jobs, {cluster.describe()}: SLO attainment {r['slo_attainment']:.3f}, "
        f"avg/max replicas {r['avg_ready_replicas']:.1f}/{r['max_ready_replicas']}, "
        f"{r['iterations']:,} iterations; wall {r['wall']:.1f} s "
        f"(simulation {r['sim_wall']:.1f} s)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--bench", action="store_true", help="run the 1M-request benchmark")
    parser.add_argument("--bench-requests", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.bench:
        bench(args.shared, args.bench_requests)
    else:
        mixed(args.shared, args.scales)
    print(f"total wall time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
