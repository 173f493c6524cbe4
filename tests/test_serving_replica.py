"""Continuous batching on one replica: exact event logs, and the fused run vs a naive twin."""

from collections import deque

import numpy as np
import pandas as pd
import pytest
from conftest import simulate

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.gpus import gpu_spec
from simulator.models.serving import (
    MODELS,
    ModelSpec,
    RequestStream,
    RooflineStepTime,
    Service,
    TableStepTime,
)

CLUSTER = ClusterSpec.homogeneous(1, 8, "H100")
TICK = TableStepTime([1], [0.1])  # every iteration takes 0.1 s, whatever its size


def serve(requests, cluster=CLUSTER, policy=None, trace=None, **kw):
    kw.setdefault("step_time", TICK)
    kw.setdefault("warm_start", True)
    svc = Service(requests=requests, **kw)
    jobs = svc.prepare(pd.DataFrame() if trace is None else trace, cluster)
    sim = simulate(jobs, cluster, policy or FifoPolicy(), processes=svc.processes())
    return svc, sim, svc.run_of(sim)


def rounded(events):
    return [(round(t, 9), s, e) for t, s, e in events]


def test_three_requests_exact_log():
    # r0 (prompt 4, output 3) at 0; r1 (prompt 10, output 2) and r2 (prompt 2, output 1) at
    # 0.15. Budget 8 tokens per iteration, 0.1 s each.
    # 0.0-0.1 prefill r0 (4)          -> r0 first token at 0.1
    # 0.1-     decode run of r0 (2 iterations, to 0.3), cut by r1's arrival at 0.15 to end at 0.2
    # 0.2-0.3 admit r1, r2: decode r0 + 7 tokens of r1 (budget 8 - 1) -> r0 finishes at 0.3
    # 0.3-0.4 3 tokens of r1 + 2 of r2 -> both first tokens at 0.4; r2 (1 output) finishes
    # 0.4-0.5 decode r1 -> finishes at 0.5; every request done: the replica stops
    stream = RequestStream([0.0, 0.15, 0.15], [4, 10, 2], [3, 2, 1])
    svc, sim, run = serve(stream, max_batch_size=4, max_batched_tokens=8)
    rep = "replica-0"
    assert rounded(run.events) == [
        (0.0, rep, "submit"),
        (0.0, 0, "arrive"),
        (0.0, rep, "placed"),
        (0.0, rep, "ready"),
        (0.0, 0, "route replica-0"),
        (0.0, 0, "admit"),
        (0.1, 0, "first_token"),
        (0.15, 1, "arrive"),
        (0.15, 1, "route replica-0"),
        (0.15, 2, "arrive"),
        (0.15, 2, "route replica-0"),
        (0.2, 1, "admit"),
        (0.2, 2, "admit"),
        (0.3, 0, "finish"),
        (0.4, 1, "first_token"),
        (0.4, 2, "first_token"),
        (0.4, 2, "finish"),
        (0.5, 1, "finish"),
        (0.5, rep, "stop"),
    ]
    f = svc.tables(sim)["requests"]
    np.testing.assert_allclose(f["ttft"], [0.1, 0.25, 0.25])
    np.testing.assert_allclose(f["e2e_latency"], [0.3, 0.35, 0.25])
    np.testing.assert_allclose(f["queueing_delay"], [0.0, 0.05, 0.05])
    np.testing.assert_allclose(f["tpot"], [0.1, 0.1, np.nan])
    assert list(f["status"]) == ["finished"] * 3 and list(f["replica"]) == [0, 0, 0]
    assert rounded(sim.events) == [
        (0.0, "llm-replica-0", "arrive"),
        (0.0, "llm-replica-0", "start"),
        (0.5, "llm-replica-0", "finish"),
    ]
    s = svc.summary(sim)["serving"]["llm"]
    assert s["finished"] == 3 and s["iterations"] == 5
    assert s["replica_gpu_seconds"] == pytest.approx(0.5)


def test_no_chunking_runs_a_prompt_whole_and_batch_limit_holds_the_queue():
    # Without chunked prefill r1's 10-token prompt does not fit the budget left next to r0's
    # decode (7) and waits for an iteration of its own; batch size 1 serialises requests.
    stream = RequestStream([0.0, 0.0], [4, 10], [2, 1])
    _, _, run = serve(stream, max_batch_size=2, max_batched_tokens=8, chunked_prefill=False)
    # 0-0.1 prefill r0 (4) and r1 (10 > 8-4 left: waits); 0.1-0.2 r0 decode + r1 whole prompt
    np.testing.assert_allclose(run.first, [0.1, 0.2])
    np.testing.assert_allclose(run.end, [0.2, 0.2])
    _, _, run = serve(stream, max_batch_size=1, max_batched_tokens=8, chunked_prefill=True)
    np.testing.assert_allclose(run.sched, [0.0, 0.2])  # r1 is admitted when r0 leaves
    np.testing.assert_allclose(run.end, [0.2, 0.4])  # 10 tokens: 2 chunks of 8 + 2


def test_kv_capacity_blocks_admission_and_rejects_what_never_fits():
    # 2 GB of weights, 1 MB of KV per token, 3 GB usable: room for 1,000 tokens.
    tiny = ModelSpec("tiny", 1e9, layers=1, kv_heads=1, head_dim=250_000)
    stream = RequestStream([0.0, 0.0, 0.0], [500, 400, 2000], [100, 50, 10])
    svc, sim, run = serve(stream, model=tiny, gpu_memory_utilization=3 / 80)
    assert run.kv_capacity in (999, 1000)
    # r0 holds 600 tokens; r1 needs 450 and waits until r0 finishes; r2 can never fit
    assert run.sched[1] == pytest.approx(run.end[0])
    assert list(svc.tables(sim)["requests"]["status"]) == ["finished", "finished", "rejected"]


def naive_replica(stream, step, max_batch, max_tokens, kv_cap, chunked):
    """One event per iteration, written as plainly as possible (the reference twin)."""
    arrival, prompt, output = stream.arrival, stream.prompt_tokens, stream.output_tokens
    n = len(arrival)
    sched, first, end = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    waiting, batch = deque(), []  # batch entries: [request, prefill left, output left, ctx]
    t, i, used = 0.0, 0, 0
    while i < n or waiting or batch:
        if not waiting and not batch:
            t = max(t, arrival[i])
        while i < n and arrival[i] <= t:
            waiting.append(i)
            i += 1
        while waiting:
            r = waiting[0]
            need = prompt[r] + output[r]
            if len(batch) >= max_batch or used + need > kv_cap:
                break
            waiting.popleft()
            used += need
            sched[r] = t
            batch.append([r, int(prompt[r]), int(output[r]), 0])
        decoders = [b for b in batch if b[1] == 0]
        budget = max_tokens - len(decoders)
        chunks, prefill = [], 0
        for b in batch:
            if b[1] == 0 or budget <= 0:
                continue
            c = min(b[1], budget) if chunked else b[1]
            if not chunked and c > budget and prefill > 0:
                break
            chunks.append((b, c))
            prefill += c
            budget -= c
        kv = sum(b[3] for b in decoders) + sum(b[3] for b, _ in chunks)
        t += step.step(prefill, len(decoders), kv)
        for b in decoders:
            b[2] -= 1
            b[3] += 1
        for b, c in chunks:
            b[1] -= c
            b[3] += c
            if b[1] == 0:
                b[2] -= 1
                b[3] += 1
                first[b[0]] = t
        for b in [b for b in batch if b[2] == 0]:
            end[b[0]] = t
            used -= prompt[b[0]] + output[b[0]]
            batch.remove(b)
    return sched, first, end


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunked", [True, False])
def test_fused_decode_runs_match_one_event_per_iteration(seed, chunked):
    rng = np.random.default_rng(seed)
    n = 300
    stream = RequestStream(
        np.cumsum(rng.exponential(0.08, n)),
        rng.integers(1, 700, n),
        rng.geometric(1 / 40, n),
    )
    step = RooflineStepTime(MODELS["llama-3-8b"], gpu_spec("H100"), 1)
    kw = dict(max_batch_size=16, max_batched_tokens=512, chunked_prefill=chunked)
    _, _, run = serve(stream, step_time=step, **kw)
    sched, first, end = naive_replica(stream, step, 16, 512, run.kv_capacity, chunked)
    np.testing.assert_allclose(run.sched, sched, rtol=1e-9)
    np.testing.assert_allclose(run.first, first, rtol=1e-9)
    np.testing.assert_allclose(run.end, end, rtol=1e-9)
