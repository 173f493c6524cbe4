"""KV preemption (vLLM recompute): per-step KV reservation, newest request preempted when full."""

from collections import deque

import numpy as np
import pandas as pd
import pytest
from conftest import simulate

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.gpus import gpu_spec
from simulator.models.serving import (
    ModelSpec,
    RequestStream,
    RooflineStepTime,
    Service,
    TableStepTime,
)
from simulator.models.serving.replica import PreemptingReplica

CLUSTER = ClusterSpec.homogeneous(1, 8, "H100")
TICK = TableStepTime([1], [0.1])  # every iteration takes 0.1 s
# 1 MB of KV per token (bf16), 2 GB of weights; memory 80 GB x 0.0375 = 3 GB: ~1,000 tokens
TINY = ModelSpec("tiny", 1e9, layers=1, kv_heads=1, head_dim=250_000)


def serve(stream, **kw):
    kw.setdefault("step_time", TICK)
    svc = Service(requests=stream, model=TINY, gpu_memory_utilization=3 / 80, warm_start=True,
                  max_batched_tokens=1024, **kw)  # fmt: skip
    jobs = svc.prepare(pd.DataFrame(), CLUSTER)
    sim = simulate(jobs, CLUSTER, FifoPolicy(), processes=svc.processes())
    return svc, sim, svc.run_of(sim)


def test_one_preemption_exact_log():
    # r0 (prompt 500, output 400) and r1 (prompt 400 - c, output 300) at 0, c = 1,000 - the
    # KV capacity (0 or 1 from the float arithmetic), so that the prompts hold capacity - 100
    cap = serve(RequestStream([0.0], [1], [1]), kv_preemption=True)[2].kv_capacity
    stream = RequestStream([0.0, 0.0], [500, cap - 600], [400, 300])
    svc, sim, run = serve(stream, kv_preemption=True)
    # 0.0-0.1 both prefill (900 tokens held), first tokens at 0.1.
    # 0.1-5.1 50 decode steps of both (+2 tokens each): the cache is full (1,000 held).
    # 5.1 r1 (newest) is preempted with 51 tokens generated; nobody is admitted; r0 decodes
    #     alone: 349 steps, finishing at 40.0. 40.0 r1 is readmitted: 400 - c + 51 tokens
    #     prefilled again (one iteration, its 52nd token at 40.1), then 248 steps: ends 64.9.
    log = [(round(t, 9), s, e) for t, s, e in run.events if isinstance(s, int)]
    assert log == [
        (0.0, 0, "arrive"),
        (0.0, 1, "arrive"),  # before the replica is ready at the same instant
        (0.0, 0, "route replica-0"),
        (0.0, 1, "route replica-0"),
        (0.0, 0, "admit"),
        (0.0, 1, "admit"),
        (0.1, 0, "first_token"),
        (0.1, 1, "first_token"),
        (5.1, 1, "kv_preempt"),
        (40.0, 0, "finish"),
        (40.0, 1, "admit"),
        (64.9, 1, "finish"),
    ]
    f = svc.tables(sim)["requests"]
    assert list(f["kv_preemptions"]) == [0, 1]
    np.testing.assert_allclose(f["ttft"], [0.1, 0.1])  # the first token stays where it was
    np.testing.assert_allclose(f["queueing_delay"], [0.0, 0.0])  # first admission
    s = svc.summary(sim)["serving"]["llm"]
    assert s["kv_preemptions"] == 1 and s["kv_preempted_requests"] == 1
    assert s["recomputed_tokens"] == cap - 600 + 51  # its prompt and 51 generated tokens
    # whole-sequence reservation (the default): r1 waits for r0, no preemption
    svc, sim, run = serve(stream)
    np.testing.assert_allclose(run.sched, [0.0, 40.0])
    assert "kv_preemptions" not in svc.tables(sim)["requests"]


def test_preemption_keeps_kv_within_capacity_on_a_random_load(monkeypatch):
    compose = PreemptingReplica._compose
    seen = []

    def checked(self, now):
        compose(self, now)
        growth = len(self.ids) - self.prefilling
        assert self.kv_used == sum(self.held) and self.kv_used + growth <= self.kv_capacity
        seen.append(len(self.ids))

    monkeypatch.setattr(PreemptingReplica, "_compose", checked)
    rng = np.random.default_rng(5)
    n = 200
    stream = RequestStream(np.cumsum(rng.exponential(0.5, n)), rng.integers(1, 400, n),
                           rng.integers(1, 300, n))  # fmt: skip
    svc, sim, run = serve(stream, kv_preemption=True, max_batch_size=8)
    rep = run.replicas[0]
    s = svc.summary(sim)["serving"]["llm"]
    assert s["finished"] == n and s["kv_preemptions"] > 0
    assert rep.kv_used == 0 and rep.held == [] and max(seen) > 1


def test_kv_preemption_is_not_combined_with_prefix_caching_yet():
    with pytest.raises(ValueError, match="not supported yet"):
        Service(prefix_cache=True, kv_preemption=True)


def naive_preempting(stream, step, max_batch, max_tokens, cap):
    """One event per iteration, chunked prefill, recompute preemption (the reference twin)."""
    arrival, prompt, output = stream.arrival, stream.prompt_tokens, stream.output_tokens
    n = len(arrival)
    sched, first, end = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    gen, preempted = np.zeros(n, np.int64), np.zeros(n, np.int64)
    waiting, batch = deque(), []  # [request, prefill left, output left, ctx, KV held]
    t, i, used = 0.0, 0, 0
    while i < n or waiting or batch:
        if not waiting and not batch:
            t = max(t, arrival[i])
        while i < n and arrival[i] <= t:
            waiting.append(i)
            i += 1
        decoders = sum(1 for b in batch if b[1] == 0)
        any_out = False
        while batch and used + decoders > cap:
            b = batch.pop()
            used -= b[4]
            gen[b[0]] = output[b[0]] - b[2]
            preempted[b[0]] += 1
            waiting.appendleft(b[0])
            decoders = sum(1 for b in batch if b[1] == 0)
            any_out = True
        while not any_out and waiting and len(batch) < max_batch:
            r = waiting[0]
            p = int(prompt[r] + gen[r])
            if used + decoders + p > cap:
                break
            waiting.popleft()
            used += p
            if np.isnan(sched[r]):
                sched[r] = t
            batch.append([r, p, int(output[r] - gen[r]), 0, p])
        budget = max_tokens - decoders
        chunks, prefill, kv = [], 0, 0
        for b in batch:
            if b[1] == 0:
                kv += b[3]
            elif budget > 0:
                c = min(b[1], budget)
                chunks.append((b, c))
                prefill += c
                budget -= c
                kv += b[3]
        t += step.step(prefill, decoders, kv)
        for b in batch:
            if b[1] == 0:
                b[2] -= 1
                b[3] += 1
                b[4] += 1
                used += 1
        for b, c in chunks:
            b[1] -= c
            b[3] += c
            if b[1] == 0:
                b[2] -= 1
                b[3] += 1
                if np.isnan(first[b[0]]):
                    first[b[0]] = t
        for b in [b for b in batch if b[2] == 0]:
            end[b[0]] = t
            used -= b[4]
            batch.remove(b)
    return sched, first, end, preempted


@pytest.mark.parametrize("seed", [0, 1])
def test_preempting_replica_matches_one_event_per_iteration(seed):
    rng = np.random.default_rng(seed)
    n = 150
    stream = RequestStream(np.cumsum(rng.exponential(0.05, n)), rng.integers(1, 300, n),
                           rng.integers(1, 300, n))  # fmt: skip
    step = RooflineStepTime(TINY, gpu_spec("H100"), 1)
    svc, sim, run = serve(stream, step_time=step, kv_preemption=True, max_batch_size=8)
    sched, first, end, preempted = naive_preempting(stream, step, 8, 1024, run.kv_capacity)
    assert preempted.sum() > 10
    np.testing.assert_array_equal(run.kv_preemptions, preempted)
    np.testing.assert_allclose(run.sched, sched, rtol=1e-9)
    np.testing.assert_allclose(run.first, first, rtol=1e-9)
    np.testing.assert_allclose(run.end, end, rtol=1e-9)
