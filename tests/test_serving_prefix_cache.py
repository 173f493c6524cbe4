"""Prefix caching: the block cache, exact hit counts against hash_ids, one cache hit's log."""

import os
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import simulate

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.gpus import gpu_spec
from simulator.models.serving import (
    ModelSpec,
    MooncakeRequests,
    PrefixAffinity,
    PrefixCache,
    PrefixRequestStream,
    RequestStream,
    RooflineStepTime,
    Service,
    SharedPrefix,
    SyntheticRequests,
    TableStepTime,
    TokenDist,
)

CLUSTER = ClusterSpec.homogeneous(1, 8, "H100")
LINEAR = TableStepTime([1, 1001], [0.002, 1.002])  # 1 ms per token + 1 ms
HUGE_KV = ModelSpec("huge-kv", 70e9, layers=1, kv_heads=1, head_dim=1)  # 4 bytes per token
"""A model whose KV cache is, for these traces, unbounded (~1.4e11 tokens on 8 x H100)."""


def prefix_stream(arrival, prompt, output, blocks, block_tokens=512):
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blocks])])
    hashes = np.array([h for b in blocks for h in b], dtype=np.int64)
    return PrefixRequestStream(
        arrival, prompt, output, block_hashes=hashes, block_offsets=offsets,
        block_tokens=block_tokens,
    )  # fmt: skip


def serve(requests, cluster=CLUSTER, **kw):
    kw.setdefault("step_time", LINEAR)
    kw.setdefault("warm_start", True)
    kw.setdefault("prefix_cache", True)
    svc = Service(requests=requests, **kw)
    jobs = svc.prepare(pd.DataFrame(), cluster)
    sim = simulate(jobs, cluster, FifoPolicy(), processes=svc.processes())
    return svc, sim, svc.run_of(sim)


# ---------------------------------------------------------------------------------- the cache
def test_cache_counts_only_the_leading_run_and_evicts_least_recent_tail_first():
    c = PrefixCache(block_tokens=16)
    assert c.acquire([1, 2, 3], room=10) == 0
    assert c.hits([1, 2, 9, 3]) == 2  # 3 is cached but behind a miss
    c.release([1, 2, 3])
    assert list(c.evictable) == [3, 2, 1]  # released tail first
    assert c.acquire([1, 2, 9], room=10) == 2
    assert list(c.evictable) == [3] and c.pins == {1: 1, 2: 1, 3: 0, 9: 1}
    assert c.cost([1, 3, 4]) == 2  # 3 evictable (now pinned) and 4 new; 1 is pinned already
    # room for 4 blocks: holding 1, 2, 9 pinned + 3 evictable, acquiring 5 evicts 3
    assert c.free(4) == 1 and c.acquire([5], room=4) == 0
    assert 3 not in c.pins and c.evicted == 1
    c.release([5])
    c.release([1, 2, 9])
    assert list(c.evictable) == [5, 9, 2, 1]
    with pytest.raises(RuntimeError, match="pinned"):
        c.acquire([6, 7, 8, 10, 11], room=4)


def test_pinned_blocks_are_never_evicted():
    c = PrefixCache(block_tokens=1)
    c.acquire([1, 2], room=2)
    assert c.free(2) == 0 and c.cost([3]) == 1  # does not fit: 1 and 2 are pinned
    c.release([1, 2])
    assert c.free(2) == 2
    assert c.acquire([1, 3], room=2) == 1
    assert c.pins == {1: 1, 3: 1}  # 2 went, 1 (pinned again) stayed


# ---------------------------------------------------------------------------------- exact log
def test_one_cache_hit_exact_log():
    # r0: 1,536 tokens (blocks 1 2 3), 2 outputs, at 0.  r1: 1,200 tokens (blocks 1 2 9) at 5:
    # blocks 1 and 2 are cached, so its prefill is 1,200 - 1,024 = 176 tokens. r2 at 10 is r0
    # again: all 3 blocks hit, but the last prompt token is computed (1,535 tokens saved).
    stream = prefix_stream([0.0, 5.0, 10.0], [1536, 1200, 1536], [2, 2, 2],
                           [[1, 2, 3], [1, 2, 9], [1, 2, 3]])  # fmt: skip
    svc, sim, run = serve(stream)
    log = [(round(t, 9), s, e) for t, s, e in run.events if isinstance(s, int)]
    prefill = {1536: 1.537, 176: 0.177, 1: 0.002}  # LINEAR at those token counts
    decode = 0.002
    assert log == [
        (0.0, 0, "arrive"),
        (0.0, 0, "route replica-0"),
        (0.0, 0, "admit"),
        (1.537, 0, "first_token"),
        (1.539, 0, "finish"),
        (5.0, 1, "arrive"),
        (5.0, 1, "route replica-0"),
        (5.0, 1, "cache_hit 2 blocks 1024 tokens"),
        (5.0, 1, "admit"),
        (round(5.0 + prefill[176], 9), 1, "first_token"),
        (round(5.0 + prefill[176] + decode, 9), 1, "finish"),
        (10.0, 2, "arrive"),
        (10.0, 2, "route replica-0"),
        (10.0, 2, "cache_hit 3 blocks 1535 tokens"),
        (10.0, 2, "admit"),
        (round(10.0 + prefill[1], 9), 2, "first_token"),
        (round(10.0 + prefill[1] + decode, 9), 2, "finish"),
    ]
    f = svc.tables(sim)["requests"]
    # the hit shortens the prefill by exactly the cached tokens' prefill time (1 ms a token)
    assert f["ttft"][1] == pytest.approx(LINEAR.step(1200, 0, 0) - 1024 * 0.001, abs=1e-12)
    assert list(f["cached_blocks"]) == [0, 2, 3]
    assert list(f["cached_tokens"]) == [0, 1024, 1535]
    pc = svc.summary(sim)["serving"]["llm"]["prefix_cache"]
    assert pc["hit_blocks"] == 5 and pc["lookup_blocks"] == 9
    assert pc["saved_prefill_tokens"] == 2559 and pc["prompt_tokens"] == 4272
    assert pc["requests_with_hit"] == 2 and pc["evicted_blocks"] == 0


def test_cache_off_adds_no_columns_and_no_summary_section():
    stream = prefix_stream([0.0, 5.0], [1536, 1536], [2, 2], [[1, 2, 3], [1, 2, 3]])
    svc, sim, run = serve(stream, prefix_cache=False)
    f = svc.tables(sim)["requests"]
    assert "cached_tokens" not in f and "prefix_cache" not in svc.summary(sim)["serving"]["llm"]
    np.testing.assert_allclose(f["ttft"], [1.537, 1.537])


def test_prefix_cache_needs_block_hashes():
    svc = Service(requests=RequestStream([0.0], [10], [1]), prefix_cache=True)
    with pytest.raises(ValueError, match="prefix_cache needs requests with prefix-block hashes"):
        svc.prepare(pd.DataFrame(), CLUSTER)
    with pytest.raises(ValueError, match="prefix_affinity needs prefix_cache"):
        Service(router="prefix_affinity")


# ---------------------------------------------------------------------------------- validation
def assert_hits_match_hash_ids(stream):
    """One replica, unbounded cache: simulated hit blocks == the count from hash_ids."""
    reuse = stream.prefix_reuse()
    svc, sim, run = serve(stream, model=HUGE_KV, tensor_parallel=8)
    f = svc.tables(sim)["requests"]
    s = svc.summary(sim)["serving"]["llm"]
    assert s["finished"] == len(stream) and s["prefix_cache"]["evicted_blocks"] == 0
    np.testing.assert_array_equal(f["cached_blocks"], reuse.hit_blocks)
    assert s["prefix_cache"]["hit_blocks"] == int(reuse.hit_blocks.sum())
    # tokens: the same, except that a full hit still computes its last prompt token
    full = reuse.hit_tokens == stream.prompt_tokens
    np.testing.assert_array_equal(f["cached_tokens"], reuse.hit_tokens - full)
    return int(reuse.hit_blocks.sum())


def test_unbounded_hits_equal_hash_id_count_on_the_shipped_sample():
    assert assert_hits_match_hash_ids(MooncakeRequests().load()) == 676


def shared_traces() -> Path:
    env = os.environ.get("GPUSIM_TRACES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "traces"


def test_unbounded_hits_equal_hash_id_count_on_the_real_trace():
    path = shared_traces() / "mooncake-fast25" / "conversation_trace.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found (set GPUSIM_TRACES)")
    stream = MooncakeRequests(path).load()  # all 12,031 requests
    assert assert_hits_match_hash_ids(stream) == 105_710  # of 288,500 blocks


def test_bounded_cache_evicts_and_never_hits_more_than_the_unbounded_one():
    # 1 MB of KV per token, room for 1,000 tokens: 7 blocks of 128 tokens next to outputs
    rng = np.random.default_rng(3)
    n = 120
    heads = rng.integers(0, 4, n)  # 4 shared 2-block prefixes, then 1-2 own blocks
    blocks = [[10 * h, 10 * h + 1] + [1000 + 10 * i + k for k in range(rng.integers(1, 3))]
              for i, h in enumerate(heads)]  # fmt: skip
    prompt = [128 * len(b) - int(rng.integers(0, 100)) for b in blocks]
    stream = prefix_stream(np.cumsum(rng.exponential(0.2, n)), prompt, rng.integers(1, 20, n),
                           blocks, block_tokens=128)  # fmt: skip
    tiny = ModelSpec("tiny", 1e9, layers=1, kv_heads=1, head_dim=250_000)
    svc, sim, run = serve(stream, model=tiny, gpu_memory_utilization=3 / 80, max_batch_size=4)
    s = svc.summary(sim)["serving"]["llm"]
    assert s["finished"] == n and s["prefix_cache"]["evicted_blocks"] > 0
    hits = svc.tables(sim)["requests"]["cached_blocks"].to_numpy()
    unbounded = stream.prefix_reuse().hit_blocks
    assert (hits <= unbounded).all() and 0 < hits.sum() < unbounded.sum()


# ---------------------------------------------------------------------------------- router
class FakeReplica:
    def __init__(self, slot, load, cached):
        self.slot, self.load, self.cached, self.work_tokens = slot, load, cached, 0

    def cached_prefix(self, request):
        return self.cached


def test_affinity_prefers_the_longest_cached_prefix_within_the_load_cap():
    router = PrefixAffinity(load_cap=2.0)
    reps = [FakeReplica(0, 3, 0), FakeReplica(1, 5, 5), FakeReplica(2, 2, 3)]
    assert router.choose(reps, 0).slot == 2  # slot 1 (5 > 2 x 2 outstanding) is over the cap
    reps[1].load = 4
    reps[2].load = 3  # cap 2 x 3 = 6: all candidates
    assert router.choose(reps, 0).slot == 1
    reps[1].cached = reps[2].cached = 0  # no hit anywhere: least outstanding, then lowest slot
    assert router.choose(reps, 0).slot == 0
    idle = [FakeReplica(0, 2, 1), FakeReplica(1, 0, 0)]  # cap 2 x max(1, 0) = 2
    assert router.choose(idle, 0).slot == 0
    idle[0].load = 3
    assert router.choose(idle, 0).slot == 1
    with pytest.raises(ValueError, match="load_cap"):
        PrefixAffinity(load_cap=0.5)


def test_affinity_routes_repeated_prefixes_to_the_replica_that_cached_them():
    # three conversations (2-block prefixes) taking turns, one request per second, 2 replicas
    n = 12
    conv = np.arange(n) % 3
    blocks = [[100 * c, 100 * c + 1, 5000 + i] for i, c in enumerate(conv)]
    stream = prefix_stream(np.arange(n) * 1.0, [1400] * n, [2] * n, blocks)
    cluster = ClusterSpec.homogeneous(2, 8, "H100")
    kw = dict(replicas=2, tensor_parallel=8)
    svc, sim, _ = serve(stream, cluster, router="prefix_affinity", **kw)
    f = svc.tables(sim)["requests"]
    home = {c: f["replica"][c] for c in range(3)}
    assert [f["replica"][i] for i in range(n)] == [home[c] for c in conv]
    assert list(f["cached_blocks"]) == [0, 0, 0] + [2] * (n - 3)
    # round robin sends conversation c alternately to both replicas: fewer hits
    svc, sim, _ = serve(stream, cluster, router="round_robin", **kw)
    rr = svc.tables(sim)["requests"]
    assert list(rr["replica"]) == [0, 1] * (n // 2)
    assert rr["cached_blocks"].sum() < f["cached_blocks"].sum()


# ---------------------------------------------------------------------------------- synthetic
def test_shared_prefix_model_gives_group_blocks_and_unbounded_hits_match():
    model = SharedPrefix(groups=3, tokens=1100, block_tokens=512, zipf=1.0)
    req = SyntheticRequests(5.0, 200, prompt=TokenDist("uniform", high=3000), prefix=model)
    stream = req.load()
    plain = SyntheticRequests(5.0, 200, prompt=TokenDist("uniform", high=3000)).load()
    np.testing.assert_array_equal(stream.prompt_tokens, plain.prompt_tokens)  # same lengths
    np.testing.assert_array_equal(stream.num_blocks, -(-stream.prompt_tokens // 512))
    shared = {tuple(stream.blocks(i)[:2]) for i in range(200) if stream.prompt_tokens[i] >= 1024}
    assert shared == {(0, 1), (2, 3), (4, 5)}  # 2 whole blocks of 1,100 tokens per group
    short = [i for i in range(200) if stream.prompt_tokens[i] < 512]
    assert all(stream.blocks(i)[0] >= 6 for i in short)  # a partial block is a request's own
    assert_hits_match_hash_ids(stream)
    with pytest.raises(ValueError, match="shared prefix: need groups >= 1"):
        SharedPrefix(groups=0)


def naive_caching(stream, step, max_batch, max_tokens, cap):
    """One event per iteration, chunked prefill, an LRU block cache in lists (reference twin)."""
    arrival, prompt, output = stream.arrival, stream.prompt_tokens, stream.output_tokens
    b_tok = stream.block_tokens
    n = len(arrival)
    first, end, hits = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, np.int64)
    pins, lru = {}, []  # block -> running requests holding it; unpinned blocks, oldest first
    waiting, batch = deque(), []  # [request, prefill left, output left, ctx]
    t, i, own_used = 0.0, 0, 0
    while i < n or waiting or batch:
        if not waiting and not batch:
            t = max(t, arrival[i])
        while i < n and arrival[i] <= t:
            waiting.append(i)
            i += 1
        while waiting and len(batch) < max_batch:
            r = waiting[0]
            blocks = list(stream.blocks(r))
            own = int(output[r] + max(0, prompt[r] - b_tok * len(blocks)))
            room = (cap - own_used - own) // b_tok
            cost = len({h for h in blocks if pins.get(h, 0) == 0})
            if cost > room - len(pins) + len(lru):
                break
            waiting.popleft()
            hit = 0
            while hit < len(blocks) and blocks[hit] in pins:
                hit += 1
            for h in blocks:
                if pins.get(h) == 0:
                    lru.remove(h)
                pins[h] = pins.get(h, 0) + 1
            while len(pins) > room:
                del pins[lru.pop(0)]
            own_used += own
            saved = min(hit * b_tok, int(prompt[r]) - 1)
            hits[r] = hit
            batch.append([r, int(prompt[r]) - saved, int(output[r]), saved, own])
        decoders = [b for b in batch if b[1] == 0]
        budget = max_tokens - len(decoders)
        chunks, prefill = [], 0
        for b in batch:
            if b[1] and budget > 0:
                c = min(b[1], budget)
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
            own_used -= b[4]
            for h in reversed(list(stream.blocks(b[0]))):
                pins[h] -= 1
                if pins[h] == 0:
                    lru.append(h)
            batch.remove(b)
    return first, end, hits


@pytest.mark.parametrize("seed", [0, 1])
def test_caching_replica_matches_one_event_per_iteration(seed):
    n = 200  # at most 5 blocks of 128 + 200 outputs: every request fits the ~1,000 KV tokens
    model = SharedPrefix(groups=5, tokens=600, block_tokens=128, zipf=1.0)
    lengths = dict(prompt=TokenDist("uniform", low=1, high=600),
                   output=TokenDist("geometric", 40, high=200))  # fmt: skip
    stream = SyntheticRequests(8.0, n, seed=seed, prefix=model, **lengths).load()
    tiny = ModelSpec("tiny", 1e9, layers=1, kv_heads=1, head_dim=250_000)  # ~1,000 KV tokens
    step = RooflineStepTime(tiny, gpu_spec("H100"), 1)
    kw = dict(model=tiny, gpu_memory_utilization=3 / 80, max_batch_size=6, max_batched_tokens=512)
    svc, sim, run = serve(stream, step_time=step, **kw)
    first, end, hits = naive_caching(stream, step, 6, 512, run.kv_capacity)
    f = svc.tables(sim)["requests"]
    assert svc.summary(sim)["serving"]["llm"]["prefix_cache"]["evicted_blocks"] > 0
    assert f["status"].eq("finished").all() and hits.sum() > 0
    np.testing.assert_array_equal(f["cached_blocks"], hits)
    np.testing.assert_allclose(run.first, first, rtol=1e-9)
    np.testing.assert_allclose(run.end, end, rtol=1e-9)
