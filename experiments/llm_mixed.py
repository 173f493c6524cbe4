"""LLM training gangs and a prefix-cached LLM service on one H100/A100 pool.

Usage::

    python -m experiments.llm_mixed [--full] [--shared DIR] [--acme CSV] [--mooncake JSONL]
        [--train-scale X] [--a100-nodes N] [--h100-nodes N] [--max-replicas K]
        [--serve-at HOURS] [--markdown FILE]

Training: the AcmeTrace Kalos gangs (Shanghai AI Lab, NSDI'24; the converted Kalos file,
COMPLETED Pretrain/SFT/Other jobs of 1 to 1,024 GPUs, each with its real duration), arrivals
compressed ``X`` times (default 4), on ``N`` A100 nodes plus ``N`` H100 nodes of 8 GPUs
(default 120 + 8: 1,024 GPUs, the largest Kalos gang, so the largest gangs need the H100
nodes too); a training job may run on either model.
Serving: the Mooncake (FAST'25) conversation trace with its 512-token prefix-block hashes,
served by Llama-3-70B replicas of 8 H100 (tensor parallel 8, batches of 128 requests /
8,192 tokens, chunked prefill, roofline step times, 2-minute model load, 2 warm replicas at
the start) under the ``slo`` autoscaler (2 to ``K`` replicas, default 8; a decision every
30 s, scale-in after 300 s); SLOs TTFT 2 s and TPOT 100 ms. Policy
``priority``: replicas priority 100 and never preempted, training 0 (preempted training rolls
back to a 30-minute checkpoint and pays 60 s to restart). The service (its controller, its
replicas, its first request) starts when the training-only run has its longest queue, so the
requests meet a full cluster (``--serve-at HOURS`` chooses another time). (``kai`` is not
in ``configs/policy`` yet; only ``priority`` runs.)

Rows: training alone, then the service with whole-sequence KV reservation and no cache, KV
preemption (vLLM recompute) and no cache, the prefix cache with ``least_outstanding``
routing, and the prefix cache with the ``prefix_affinity`` router. Two tables with the same
rows: serving (SLO attainment, hit ratio, prefill tokens saved, replicas) and training +
cluster (JCT mean / p50 / p90 of all training jobs and of those the service window touches,
preemptions, GPU utilisation over the run and in the window).

By default the bundled samples run (``traces/data``: 200 Kalos jobs, 300 Mooncake requests;
about 2 s once Numba has compiled the core, which a fresh cache adds); ``--full`` reads
``DIR/acmetrace/converted_kalos_trace.csv`` (319 jobs) and
``DIR/mooncake-fast25/conversation_trace.jsonl`` (12,031 requests, one hour) from ``--shared
DIR`` (about 9 s on 2 cores); ``--acme`` / ``--mooncake`` name files directly. ``--markdown
FILE`` writes the tables between the ``llm_mixed`` markers of FILE (docs/serving.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import _cli
from policies.priority import PriorityPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.models.serving import Autoscaler, MooncakeRequests, PrefixRequestStream, Service
from simulator.output import metrics
from traces import acmetrace
from traces.errors import TraceError

__all__ = ["CONFIGS", "experiment", "main", "window_mean"]

NAME = "llm_mixed"
ROOT = Path(__file__).resolve().parents[1]
ACME_SAMPLE = ROOT / "traces" / "data" / "acmetrace_kalos_converted_sample.csv"
MOONCAKE_SAMPLE = ROOT / "traces" / "data" / "mooncake_conversation_sample.jsonl"
ACME_FULL = "acmetrace/converted_kalos_trace.csv"
MOONCAKE_FULL = "mooncake-fast25/conversation_trace.jsonl"
SIM = {"checkpoint_interval": 1800.0, "restart_overhead": 60.0}
SERVING_PRIORITY = 100

CONFIGS: tuple[tuple[str, dict], ...] = (
    ("reservation, no cache", {}),
    ("KV preemption, no cache", {"kv_preemption": True}),
    ("prefix cache, least_outstanding", {"prefix_cache": True}),
    ("prefix cache, prefix_affinity", {"prefix_cache": True, "router": "prefix_affinity"}),
)
"""Service variants, one row each after training alone (router ``least_outstanding`` unless
named)."""


def pool(a100_nodes: int, h100_nodes: int) -> ClusterSpec:
    """``a100_nodes`` A100-80GB nodes then ``h100_nodes`` H100 nodes, 8 GPUs each."""
    return ClusterSpec.from_groups(
        [
            {"count": a100_nodes, "num_gpus": 8, "gpu_type": "A100-80GB"},
            {"count": h100_nodes, "num_gpus": 8, "gpu_type": "H100"},
        ],
        nodes_per_rack=16,
        name="llm_pool",
    )


def service(stream: PrefixRequestStream, max_replicas: int, **variant) -> Service:
    """The Mooncake chat service (Llama-3-70B, 8 x H100 per replica), autoscaled."""
    kw = {"router": "least_outstanding", **variant}
    return Service(
        name="chat",
        model="llama-3-70b",
        gpu_type="H100",
        tensor_parallel=8,
        priority=SERVING_PRIORITY,
        requests=stream,
        max_batch_size=128,
        max_batched_tokens=8192,
        load_delay_s=120.0,
        warm_start=True,
        ttft_slo_s=2.0,
        tpot_slo_s=0.1,
        autoscaler=Autoscaler(
            policy="slo",
            min_replicas=min(2, max_replicas),
            max_replicas=max_replicas,
            initial_replicas=min(2, max_replicas),
            interval_s=30.0,
            slo_attainment=0.9,
            queue_high=2.0,
            target_utilization=0.5,
            scale_in_delay_s=300.0,
        ),
        **kw,
    )


def starting_at(at_s: float, process):
    """``process`` (a ``f(sim)`` generator function) started at ``at_s`` instead of 0."""

    def delayed(sim: Simulation):
        yield sim.env.timeout(at_s)
        yield from process(sim)

    return delayed


def window_mean(t: np.ndarray, v: np.ndarray, t0: float, t1: float) -> float:
    """Time average over ``[t0, t1]`` of the step function ``v[i]`` on ``[t[i], t[i+1])``.

    Before ``t[0]`` the value is 0 (nothing allocated before the first pass).
    """
    if t1 <= t0:
        raise ValueError(f"window [{t0}, {t1}] is empty")
    edges = np.append(t, np.inf)
    lo, hi = np.clip(edges[:-1], t0, t1), np.clip(edges[1:], t0, t1)
    return float(((hi - lo) * v).sum() / (t1 - t0))


def simulate(
    training: pd.DataFrame, cluster: ClusterSpec, svc: Service | None, at_s: float
) -> tuple[Simulation, float]:
    """One run under ``priority``, the service (if any) starting at ``at_s``: sim, wall (s)."""
    t0 = time.perf_counter()
    trace = training if svc is None else svc.prepare(training, cluster)
    procs = () if svc is None else [starting_at(at_s, p) for p in svc.processes()]
    policy = PriorityPolicy(non_preemptible_threshold=SERVING_PRIORITY)
    sim = Simulation(trace, cluster, policy, processes=procs, **SIM).run()
    return sim, time.perf_counter() - t0


def longest_queue_time(sim: Simulation) -> float:
    """The first time the run's queue is longest (s)."""
    tl = metrics.timeline_frame(sim)
    if tl.empty:
        return 0.0
    return float(tl["time"].iloc[int(tl["queue_length"].to_numpy().argmax())])


def training_row(
    sim: Simulation, window: tuple[float, float], touched: np.ndarray, wall: float
) -> dict:
    """Training JCT (all jobs, and the jobs in ``touched``), preemptions, utilisation."""
    jobs = metrics.job_frame(sim)
    train = jobs[(jobs["kind"] == "train") & (jobs["status"] == "finished")]
    jct = train["jct"].to_numpy()
    near = train["jct"][train["job_id"].isin(touched)].to_numpy()
    tl = metrics.timeline_frame(sim)
    alloc = window_mean(tl["time"].to_numpy(), tl["allocated_gpus"].to_numpy(), *window)
    return {
        "train_finished": len(train),
        "train_jobs": int((jobs["kind"] == "train").sum()),
        "jct_mean": float(jct.mean()),
        "jct_p50": float(np.percentile(jct, 50)),
        "jct_p90": float(np.percentile(jct, 90)),
        "touched": len(near),
        "touched_jct_mean": float(near.mean()) if near.size else float("nan"),
        "preemptions": int(train["preemptions"].sum()),
        "gpu_util": metrics.summary(sim)["gpu_utilization"],
        "window_util": alloc / sim.state.total_gpus,
        "wall": wall,
    }


def experiment(
    acme: Path,
    mooncake: Path,
    train_scale: float,
    cluster: ClusterSpec,
    max_replicas: int,
    serve_at_s: float | None = None,
) -> tuple[list[tuple[str, dict, dict | None]], dict]:
    """Training alone, then each of :data:`CONFIGS`: rows ``(name, training, serving)``, setup.

    The service starts at ``serve_at_s`` (None: when the training-only run's queue is longest).
    """
    training = acmetrace.load(path=str(acme), time_scale=train_scale).jobs
    base, wall = simulate(training, cluster, None, 0.0)
    at = longest_queue_time(base) if serve_at_s is None else float(serve_at_s)
    stream = MooncakeRequests(str(mooncake), offset_s=at).load()
    window = (at, float(stream.arrival[-1]))
    if window[1] <= window[0]:
        raise TraceError(f"{mooncake}: the requests span no time (need two arrival instants)")
    bj = metrics.job_frame(base)
    bt = bj[bj["kind"] == "train"]
    touched = bt["job_id"][(bt["submit_time"] < window[1]) & (bt["end_time"] > window[0])]
    touched = touched.to_numpy()
    rows = [("training only", training_row(base, window, touched, wall), None)]
    for name, variant in CONFIGS:
        svc = service(stream, max_replicas, **variant)
        sim, wall = simulate(training, cluster, svc, at)
        rows.append((name, training_row(sim, window, touched, wall), svc.summary(sim)))
    setup = {
        "training": training,
        "stream": stream,
        "serve_at": at,
        "window": window,
        "touched": len(touched),
        "longest_queue": int(metrics.timeline_frame(base)["queue_length"].max()),
        "chosen": serve_at_s is not None,
    }
    return rows, setup


def _h(x: float) -> str:
    return f"{x / 3600:.2f}"


def serving_table(rows: list[tuple[str, dict, dict | None]]) -> str:
    """Serving figures, one row per service variant."""
    out = [
        "| service | SLO attain. | TTFT attain. | TPOT attain. | p50 / p99 TTFT (s) "
        "| p99 TPOT (ms) | block hit ratio | prefill tokens saved | KV preemptions "
        "| avg / max replicas | replica GPU-h |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, _, summary in rows:
        if summary is None:
            continue
        s = summary["serving"]["chat"]
        pc = s.get("prefix_cache")
        hit = f"{pc['block_hit_ratio']:.3f}" if pc else "-"
        saved = f"{pc['token_hit_ratio']:.1%} ({pc['saved_prefill_tokens']:,})" if pc else "-"
        kvp = f"{s['kv_preemptions']:,}" if "kv_preemptions" in s else "-"
        out.append(
            f"| {name} | {s['slo_attainment']:.3f} | {s['ttft_attainment']:.3f} "
            f"| {s['tpot_attainment']:.3f} | {s['p50_ttft']:.2f} / {s['p99_ttft']:.2f} "
            f"| {s['p99_tpot'] * 1e3:.0f} | {hit} | {saved} | {kvp} "
            f"| {s['avg_ready_replicas']:.1f} / {s['max_ready_replicas']} "
            f"| {s['replica_gpu_seconds'] / 3600:.1f} |"
        )
    return "\n".join(out)


def training_table(rows: list[tuple[str, dict, dict | None]]) -> str:
    """Training and cluster figures, training alone first."""
    out = [
        "| run | train JCT mean (h) | p50 (h) | p90 (h) | window jobs: mean JCT (h) "
        "| training preemptions | GPU util. (run) | GPU util. (window) | wall (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r, _ in rows:
        out.append(
            f"| {name} | {_h(r['jct_mean'])} | {_h(r['jct_p50'])} | {_h(r['jct_p90'])} "
            f"| {_h(r['touched_jct_mean'])} | {r['preemptions']} | {r['gpu_util']:.3f} "
            f"| {r['window_util']:.3f} | {r['wall']:.2f} |"
        )
    return "\n".join(out)


def describe(
    acme: Path, mooncake: Path, args, cluster: ClusterSpec, setup: dict, rows: list
) -> str:
    """The exact configuration, for the block above the tables."""
    training, stream = setup["training"], setup["stream"]
    w0, w1 = setup["window"]
    unfinished = [n for n, r, _ in rows if r["train_finished"] != r["train_jobs"]]
    when = (
        "(`--serve-at`)"
        if setup["chosen"]
        else f"when the training-only run has its longest queue ({setup['longest_queue']} jobs)"
    )
    return (
        f"Cluster: {cluster.describe()}, 16 nodes per rack. Training: {len(training):,} "
        f"AcmeTrace Kalos jobs (`{acme.name}`, {int(training['num_gpus'].min())} to "
        f"{int(training['num_gpus'].max()):,} GPUs, any GPU model), arrivals compressed "
        f"{args.train_scale:g}x, durations unchanged. Serving: `{mooncake.name}` (Mooncake, "
        f"FAST'25; {len(stream):,} requests over {(w1 - w0) / 60:.1f} min, "
        f"{int(stream.prompt_tokens.sum()):,} prompt tokens) starting at t = {w0 / 3600:.2f} h "
        f"{when}; Llama-3-70B on 8 x H100 per replica (tensor parallel 8, batches of 128 "
        "requests / 8,192 tokens, chunked prefill, roofline step times, 2-minute model load, "
        "2 warm "
        f"replicas at the start), SLO autoscaler 2-{args.max_replicas} replicas (every 30 s: "
        "+1 when the interval's TTFT attainment is below 0.9 or more than 2 requests queue "
        "per ready replica, -1 when attainment holds, no queue and the rest stay below 0.5 "
        "utilisation; scale-in after 300 s), SLOs TTFT 2 s / TPOT 100 ms. Policy "
        "`priority`: replicas priority 100 and never preempted, training 0; training "
        "checkpoints every 30 min and pays 60 s to restart. Block hit ratio = cached leading "
        "blocks / prompt blocks (per-replica caches in the KV memory left after the weights); "
        "prefill tokens saved = share (count) of prompt tokens not prefilled. Window = the "
        f"requests' arrival span; window jobs = the {setup['touched']} training jobs "
        "submitted before its end and ending after its start in the training-only run. "
        "Deterministic (no seed)."
        + (f" Unfinished training in: {', '.join(unfinished)}." if unfinished else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the two tables, returns the exit status."""
    p = _cli.parser(__doc__, shared=True, name=NAME)
    p.add_argument("--full", action="store_true", help="the real traces from --shared DIR")
    p.add_argument("--acme", type=Path, default=None, help="an AcmeTrace CSV (overrides --full)")
    p.add_argument("--mooncake", type=Path, default=None, help="a Mooncake JSONL (idem)")
    p.add_argument("--train-scale", type=_cli.positive_float, default=4.0)
    p.add_argument("--a100-nodes", type=_cli.positive_int, default=120)
    p.add_argument("--h100-nodes", type=_cli.positive_int, default=8)
    p.add_argument("--max-replicas", type=_cli.positive_int, default=8)
    p.add_argument(
        "--serve-at",
        type=_cli.positive_float,
        default=None,
        metavar="HOURS",
        help="start the service then (default: at the training-only run's longest queue)",
    )
    argv = None if argv is None else list(argv)
    args = _cli.parse(p, argv, NAME)
    shared = _cli.shared_dir(args)
    acme, mooncake = ACME_SAMPLE, MOONCAKE_SAMPLE
    if args.full:
        acme = _cli.need(shared / ACME_FULL, "the converted AcmeTrace Kalos trace")
        mooncake = _cli.need(shared / MOONCAKE_FULL, "the Mooncake conversation trace")
    if args.acme is not None:
        acme = _cli.need(args.acme, "the AcmeTrace file", how="check --acme")
    if args.mooncake is not None:
        mooncake = _cli.need(args.mooncake, "the Mooncake file", how="check --mooncake")
    cluster = pool(args.a100_nodes, args.h100_nodes)
    t0 = time.perf_counter()
    at = None if args.serve_at is None else args.serve_at * 3600.0
    rows, setup = experiment(acme, mooncake, args.train_scale, cluster, args.max_replicas, at)
    total = time.perf_counter() - t0
    config = describe(acme, mooncake, args, cluster, setup, rows)
    config += f" Total wall time {total:.1f} s."
    serve, train = serving_table(rows), training_table(rows)
    print(config)
    print(serve)
    print(train)
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, serve, train)
    _cli.emit(args, NAME, body, argv)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    _cli.run(main)
