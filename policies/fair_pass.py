"""The compiled pass of :class:`~policies.fair.FairPolicy`.

:meth:`FairPolicy.schedule` is the Python reference; :func:`_fair_pass` makes the same
decisions, with the same floating-point operations in the same order (the queue tree's fair
shares included: sums of arrays are NumPy's pairwise sums, :func:`_np_sum`), on these
structures:

* the waiting jobs of each group (leaf queue x demand class) as a bitset over the jobs sorted
  by (group, arrival), so a group's oldest waiting job is one bitset lookup (the reference's
  keyed queue, whose key is the arrival index); a bitset of the groups that may have waiting
  jobs;
* per pass, one heap of group heads per leaf (oldest first) and a heap of leaves by usage /
  fair share, as in the reference;
* usage per leaf kept as the pass starts jobs and the stop log says jobs stopped (the
  reference recounts it from the running jobs at each pass; job sizes lie on a binary grid,
  :func:`policies.fair.exact_grid`, so both sums are exact and equal), recounted when jobs
  started by other means run; queued demand kept from the push log; decayed usage, weights
  and shares as in the reference.

Cost per pass: ``O(S)`` for the ``S`` jobs that stopped since the last pass, ``O(T)`` for
the shares of a tree of ``T`` queues, ``O(G)`` for the heads of the ``G`` groups with waiting
jobs, ``O(log)`` per head served; a reclaim costs ``O(R)`` to collect the over-share queues'
jobs, plus the victim search (:func:`policies.whatif.find_victims_compiled`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from policies.keyed_queue import take_pushes
from policies.whatif import find_victims_compiled
from simulator.core.bits import bit_clear, bit_next, bit_set, new_bits
from simulator.core.hooks import PASS_DONE
from simulator.core.jit import jit, jit_inline
from simulator.core.jobs import Status
from simulator.core.ops import place_job, preempt, start

__all__ = ["FairPass", "new_fair_pass"]

_EPS = 1e-9  # as policies.fair._EPS
_QUEUED = Status.QUEUED


@jit
def _pairwise_block(a, lo, n):
    """NumPy's pairwise sum of at most 128 values: 8 accumulators, then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@jit
def _np_sum(a, lo, n):
    """``a[lo:lo + n].sum()`` exactly as NumPy computes it.

    NumPy halves a longer array (at a multiple of 8) until the pieces hold at most 128 values
    and adds the halves' sums; the halving is walked here with an explicit stack (a recursive
    compiled function does not survive Numba's on-disk cache).
    """
    if n <= 128:
        return _pairwise_block(a, lo, n)
    s_lo = np.empty(64, dtype=np.int64)
    s_n = np.empty(64, dtype=np.int64)
    s_stage = np.empty(64, dtype=np.int64)
    s_left = np.empty(64)
    s_lo[0], s_n[0], s_stage[0] = lo, n, 0
    sp = 1
    ret = 0.0
    while sp > 0:
        t = sp - 1
        m = s_n[t]
        if m <= 128:
            ret = _pairwise_block(a, s_lo[t], m)
            sp -= 1
            continue
        half = m // 2
        half -= half % 8
        if s_stage[t] == 0:  # first the left half
            s_stage[t] = 1
            s_lo[sp], s_n[sp], s_stage[sp] = s_lo[t], half, 0
            sp += 1
        elif s_stage[t] == 1:  # then the right half
            s_left[t] = ret
            s_stage[t] = 2
            s_lo[sp], s_n[sp], s_stage[sp] = s_lo[t] + half, m - half, 0
            sp += 1
        else:
            ret = s_left[t] + ret
            sp -= 1
    return ret


# ---------------------------------------------------------------------- shares
@jit_inline
def _divide(ps, node, total, dem, weights, share):
    """``policies.fair._divide``: split ``total`` among the children of ``node``."""
    a, b = ps.child_start[node], ps.child_start[node + 1]
    nk = b - a
    kids = ps.child_list[a:b]
    cap = np.empty(nk)
    give = np.empty(nk)
    w = np.empty(nk)
    for x in range(nk):
        c = kids[x]
        cap[x] = min(dem[c], ps.limit[c])
        give[x] = min(ps.deserved[c], cap[x])
        w[x] = weights[c]
    g = _np_sum(give, 0, nk)
    if g > total:
        f = total / _np_sum(give, 0, nk)
        for x in range(nk):
            give[x] *= f
    left = total - _np_sum(give, 0, nk)
    room = np.empty(nk)
    part = np.empty(nk)
    take = np.empty(nk)
    act = np.empty(nk)
    while left > _EPS:
        m = 0
        for x in range(nk):
            room[x] = cap[x] - give[x]
            if room[x] > _EPS and w[x] > 0:
                act[m] = w[x]
                m += 1
        if m == 0:
            break
        wsum = _np_sum(act, 0, m)
        for x in range(nk):
            if room[x] > _EPS and w[x] > 0:
                part[x] = left * w[x] / wsum
            else:
                part[x] = 0.0
            take[x] = min(part[x], room[x])
            give[x] += take[x]
        left -= _np_sum(take, 0, nk)
        done = True
        for x in range(nk):
            if not take[x] >= part[x] - _EPS:
                done = False
        if done:
            break
    for x in range(nk):
        share[kids[x]] = give[x]


@jit_inline
def _sum_children(ps, vals, node):
    """``sum(vals[c] for c in children)`` as Python adds them (from 0, left to right)."""
    s = 0.0
    for x in range(ps.child_start[node], ps.child_start[node + 1]):
        s += vals[ps.child_list[x]]
    return s


@jit_inline
def _usage_stops(es, ps):
    """Take the jobs that stopped since the last call out of the leaves' usage."""
    stops = es.log.stops
    end = es.c[0].stops
    epoch = ps.ucount[1]
    for i in range(ps.ucount[2], end):
        v = stops[i]
        if ps.inrun[v] == epoch:
            ps.inrun[v] = -1
            ps.ucount[0] -= 1
            ps.lusage[ps.leaf[v]] -= ps.size[v]
    ps.ucount[2] = end


@jit_inline
def _usage_start(ps, j):
    ps.inrun[j] = ps.ucount[1]
    ps.ucount[0] += 1
    ps.lusage[ps.leaf[j]] += ps.size[j]


@jit_inline
def _leaf_usage(es, ps):
    """Usage of every leaf: what its running jobs hold (exact: sizes are on a binary grid).

    Kept as the pass starts jobs and jobs stop (the stop log); counted afresh from the running
    jobs, as the reference does at every pass, when jobs started by other means run.
    """
    _usage_stops(es, ps)
    if ps.ucount[0] == es.c[0].running:
        return
    epoch = ps.ucount[1] + 1
    ps.ucount[1] = epoch
    ps.ucount[0] = 0
    ps.ucount[3] += 1
    ps.lusage[:] = 0.0
    run = es.q.running
    v = bit_next(run, 0)
    while v >= 0:
        _usage_start(ps, v)
        v = bit_next(run, v + 1)


@jit_inline
def _refresh(es, ps):
    """``FairPolicy._refresh``: usage, decayed usage, demand and fair shares."""
    nq = ps.limit.shape[0]
    _leaf_usage(es, ps)
    usage = ps.new_usage
    for i in range(nq):
        usage[i] = ps.lusage[i]
    for i in range(nq - 1, -1, -1):
        if ps.child_start[i + 1] > ps.child_start[i]:
            usage[i] = _sum_children(ps, usage, i)
    now = es.c[0].now
    hl = ps.half_life
    if hl > 0.0:
        keep = 0.5 ** ((now - ps.last[0]) / hl)
        for i in range(nq):
            ps.decayed[i] = ps.decayed[i] * keep + ps.usage[i] * hl / math.log(2) * (1 - keep)
    ps.last[0] = now
    w = ps.weights
    for i in range(nq):
        ps.usage[i] = usage[i]
        w[i] = ps.oqw[i]
    if hl > 0.0:  # FairPolicy._weights
        for i in range(nq):
            a, b = ps.child_start[i], ps.child_start[i + 1]
            if a == b:
                continue
            total = _sum_children(ps, ps.decayed, i)
            if total <= _EPS:
                continue
            for x in range(a, b):
                c = ps.child_list[x]
                w[c] *= max(0.05, 1.0 - ps.decayed[c] / total)
    dem = ps.dem  # fair_shares
    for i in range(nq):
        dem[i] = ps.usage[i] + ps.queued[i]
    for i in range(nq - 1, -1, -1):
        if ps.child_start[i + 1] > ps.child_start[i]:
            dem[i] = _sum_children(ps, dem, i)
        dem[i] = min(dem[i], ps.limit[i])
    share = ps.shares
    share[:] = 0.0
    share[0] = min(ps.capacity, dem[0])
    for i in range(nq):
        if ps.child_start[i + 1] > ps.child_start[i]:
            _divide(ps, i, share[i], dem, w, share)


@jit_inline
def _ratio(ps, i):
    f = ps.shares[i]
    return ps.usage[i] / f if f > _EPS else math.inf


# ---------------------------------------------------------------------- queues
@jit_inline
def _group_head(es, ps, g):
    """Oldest waiting job of group ``g`` (dropping jobs that left the queue), or -1."""
    end = ps.gstart[g + 1]
    status = es.jobs.status
    x = bit_next(ps.gbits, ps.gstart[g])
    while x >= 0 and x < end:
        j = ps.gjobs[x]
        if status[j] == _QUEUED:
            return j
        bit_clear(ps.gbits, x)
        x = bit_next(ps.gbits, x + 1)
    bit_clear(ps.gact, g)
    return -1


@jit_inline
def _enqueue(ps, j):
    bit_set(ps.gbits, ps.gpos[j])
    bit_set(ps.gact, ps.group[j])


@jit_inline
def _sync(es, ps):
    """``kq.sync`` and the queued demand: new jobs add to it, requeues recount it."""
    ps.tag[1] += 1
    n = take_pushes(es, ps.cursor, ps.mine, ps.synced, ps.tag[1], ps.pushed)
    back = False
    for i in range(n):
        j = ps.pushed[i]
        if ps.seen[j]:
            back = True
        else:
            ps.queued[ps.leaf[j]] += ps.size[j]
        ps.seen[j] = True
        _enqueue(ps, j)
    if back:  # killed by a node failure (or submitted by a controller): recount
        ps.queued[:] = 0.0
        q = es.q.queued
        j = bit_next(q, 0)
        while j >= 0:
            ps.queued[ps.leaf[j]] += ps.size[j]
            j = bit_next(q, j + 1)


@jit_inline
def _account(ps, j, sign):
    """``FairPolicy._account``: ``j`` started (+1) or was preempted back to the queue (-1)."""
    s = ps.size[j]
    leaf = ps.leaf[j]
    ps.queued[leaf] -= sign * s
    for x in range(ps.path_start[leaf], ps.path_start[leaf + 1]):
        ps.usage[ps.path_list[x]] += sign * s


# ---------------------------------------------------------------------- heaps
@jit_inline
def _lpush(ps, leaf, j):
    h, base = ps.lheap, ps.lstart[leaf]
    i = ps.lsize[leaf]
    ps.lsize[leaf] = i + 1
    while i > 0:
        p = (i - 1) >> 1
        if h[base + p] <= j:
            break
        h[base + i] = h[base + p]
        i = p
    h[base + i] = j


@jit_inline
def _lpop(ps, leaf):
    h, base = ps.lheap, ps.lstart[leaf]
    top = h[base]
    n = ps.lsize[leaf] - 1
    ps.lsize[leaf] = n
    if n > 0:
        x = h[base + n]
        i = 0
        while True:
            m = 2 * i + 1
            if m >= n:
                break
            if m + 1 < n and h[base + m + 1] < h[base + m]:
                m += 1
            if h[base + m] >= x:
                break
            h[base + i] = h[base + m]
            i = m
        h[base + i] = x
    return top


@jit_inline
def _oless(ps, a, b):
    ka, kb = ps.okey[a], ps.okey[b]
    return ka < kb or (ka == kb and a < b)


@jit_inline
def _opush(ps, leaf):
    ps.okey[leaf] = _ratio(ps, leaf)
    h = ps.oheap
    i = ps.osize[0]
    ps.osize[0] = i + 1
    while i > 0:
        p = (i - 1) >> 1
        if not _oless(ps, leaf, h[p]):
            break
        h[i] = h[p]
        i = p
    h[i] = leaf


@jit_inline
def _opop(ps):
    h = ps.oheap
    top = h[0]
    n = ps.osize[0] - 1
    ps.osize[0] = n
    if n > 0:
        x = h[n]
        i = 0
        while True:
            m = 2 * i + 1
            if m >= n:
                break
            if m + 1 < n and _oless(ps, h[m + 1], h[m]):
                m += 1
            if not _oless(ps, h[m], x):
                break
            h[i] = h[m]
            i = m
        h[i] = x
    return top


# ---------------------------------------------------------------------- serving a job
@jit
def _reclaim_candidates(es, ps, j, tag):
    """``FairPolicy._reclaim_victims`` up to the victim search: candidates into ``ps.cands``.

    Returns their number (0 = none).
    """
    leaf, size = ps.leaf[j], ps.size[j]
    if ps.usage[leaf] + size > ps.shares[leaf] + _EPS:
        return 0
    nq = ps.limit.shape[0]
    over, count = ps.over, ps.bcount
    anyover = False
    for i in range(nq):
        count[i] = -1  # not an over-share leaf
        if ps.child_start[i + 1] == ps.child_start[i] and ps.usage[i] > ps.shares[i] + _EPS:
            over[i] = ps.usage[i]
            count[i] = 0
            anyover = True
    if not anyover:
        return 0
    run = es.q.running
    v = bit_next(run, 0)
    while v >= 0:  # count the over-share leaves' running jobs, not started in this pass
        if count[ps.leaf[v]] >= 0 and ps.fresh[v] != tag:
            count[ps.leaf[v]] += 1
        v = bit_next(run, v + 1)
    start = ps.bstart
    start[0] = 0
    for i in range(nq):
        start[i + 1] = start[i] + max(count[i], 0)
        ps.bfill[i] = start[i]
    v = bit_next(run, 0)
    while v >= 0:
        lv = ps.leaf[v]
        if count[lv] >= 0 and ps.fresh[v] != tag:
            ps.blist[ps.bfill[lv]] = v
            ps.bfill[lv] += 1
        v = bit_next(run, v + 1)
    run_start = es.jobs.run_start
    for i in range(nq):  # each leaf's jobs by (start, job): the last one starts latest
        a, b = start[i], start[i + 1]
        if b - a > 1:
            seg = ps.blist[a:b].copy()
            order = np.argsort(run_start[seg], kind="mergesort")
            for x in range(b - a):
                ps.blist[a + x] = seg[order[x]]
        ps.bfill[i] = b  # pop from the end
    n = 0
    while True:
        best = -1
        best_r = 0.0
        for i in range(nq):
            if count[i] < 0 or ps.bfill[i] == start[i]:
                continue
            if not over[i] > ps.shares[i] + _EPS:
                continue
            r = over[i] / max(ps.shares[i], _EPS)
            if best < 0 or r > best_r:
                best, best_r = i, r
        if best < 0:
            break
        ps.bfill[best] -= 1
        v = ps.blist[ps.bfill[best]]
        ps.cands[n] = v
        ps.prim[n] = float(n)  # taken in this order
        n += 1
        over[best] -= ps.size[v]
    return n


@jit_inline
def _serve(es, fs, ps, j, tag):
    """``FairPolicy._serve``: 1 if ``j`` started, 0 if not, < 0 = -(error code)."""
    size = ps.size[j]
    leaf = ps.leaf[j]
    for x in range(ps.path_start[leaf], ps.path_start[leaf + 1]):
        i = ps.path_list[x]
        if ps.usage[i] + size > ps.limit[i] + _EPS:
            return 0
    k = place_job(es, j, ps.mode, ps.allow_split, True)
    if k < 0 and ps.reclaim:
        n = _reclaim_candidates(es, ps, j, tag)
        if n > 0:
            nv = find_victims_compiled(
                es,
                ps.sc,
                ps.sbuf,
                j,
                ps.cands,
                ps.prim,
                n,
                ps.mode,
                ps.allow_split,
                ps.victims,
                ps.order,
            )
            if nv > 0:
                for x in range(nv):
                    v = ps.victims[x]
                    code = preempt(es, fs, v)
                    if code != 0:
                        return -code
                    _account(ps, v, -1)
                    ps.mine[v] = True
                    ps.seen[v] = True
                    _enqueue(ps, v)
                k = place_job(es, j, ps.mode, ps.allow_split, True)
    if k < 0:
        return 0
    code = start(es, fs, j, k)
    if code != 0:
        return -code
    _usage_stops(es, ps)  # the victims first: a job may restart in the pass that preempted it
    _usage_start(ps, j)
    ps.fresh[j] = tag
    _account(ps, j, 1)
    return 1


@jit
def _fair_pass(es, fs, ps):
    """:meth:`FairPolicy.schedule`, compiled (see the module docstring)."""
    _sync(es, ps)
    if es.c[0].queued == 0 and ps.half_life <= 0.0:
        # nothing to serve, and nothing of this pass's shares outlives it (no decayed usage)
        return PASS_DONE
    _refresh(es, ps)
    ps.tag[0] += 1
    tag = ps.tag[0]
    nq = ps.limit.shape[0]
    for i in range(nq):
        ps.lsize[i] = 0
    g = bit_next(ps.gact, 0)
    while g >= 0:
        h = _group_head(es, ps, g)
        if h >= 0:
            _lpush(ps, ps.gleaf[g], h)
        g = bit_next(ps.gact, g + 1)
    ps.osize[0] = 0
    for i in range(nq):
        if ps.lsize[i] > 0:
            _opush(ps, i)
    while ps.osize[0] > 0:
        leaf = _opop(ps)
        if ps.lsize[leaf] == 0:
            continue
        j = _lpop(ps, leaf)
        r = _serve(es, fs, ps, j, tag)
        if r < 0:
            return -r
        if r == 1:
            nxt = _group_head(es, ps, ps.group[j])
            if nxt >= 0:
                _lpush(ps, leaf, nxt)
        if ps.lsize[leaf] > 0:
            _opush(ps, leaf)
    return PASS_DONE


class FairPass(NamedTuple):
    """Compiled state of :class:`~policies.fair.FairPolicy` (see the module docstring)."""

    mode: int
    allow_split: bool
    reclaim: bool
    half_life: float  # s (<= 0 = none)
    capacity: float  # GPUs the root divides
    child_start: np.ndarray  # int64[T+1]: children of queue i are child_list[a:b]
    child_list: np.ndarray  # int64
    path_start: np.ndarray  # int64[T+1]: queue i and its ancestors are path_list[a:b]
    path_list: np.ndarray  # int64
    deserved: np.ndarray  # float64[T]
    oqw: np.ndarray  # float64[T]: over-quota weights
    limit: np.ndarray  # float64[T]
    leaf: np.ndarray  # int64[jobs]: leaf queue of each job
    size: np.ndarray  # float64[jobs]: GPU-equivalents of each job
    group: np.ndarray  # int64[jobs]: group (leaf x demand class) of each job
    gpos: np.ndarray  # int64[jobs]: place of each job in the jobs sorted by (group, job)
    gjobs: np.ndarray  # int64[jobs]: the jobs sorted so
    gstart: np.ndarray  # int64[G+1]: group g's jobs are gjobs[a:b]
    gleaf: np.ndarray  # int64[G]: leaf of each group
    gbits: object  # Bits over gjobs positions: waiting (lazily dropped)
    gact: object  # Bits over groups: may have waiting jobs
    lstart: np.ndarray  # int64[T+1]: each leaf's slice of lheap (one slot per group)
    lheap: np.ndarray  # int64[G]: per pass, each leaf's group heads (oldest first)
    lsize: np.ndarray  # int64[T]
    oheap: np.ndarray  # int64[T]: per pass, leaves by (usage / share, leaf)
    okey: np.ndarray  # float64[T]: the ratio each leaf was pushed with
    osize: np.ndarray  # int64[1]
    queued: np.ndarray  # float64[T]: GPU-equivalents waiting per queue
    decayed: np.ndarray  # float64[T]
    usage: np.ndarray  # float64[T]
    shares: np.ndarray  # float64[T]
    new_usage: np.ndarray  # float64[T]: work space
    weights: np.ndarray  # float64[T]: work space
    dem: np.ndarray  # float64[T]: work space
    last: np.ndarray  # float64[1]: time of the last pass
    cursor: np.ndarray  # int64[1]: push-log entries taken in
    mine: np.ndarray  # bool[jobs]: the pass requeued it; skip the engine's entry once
    seen: np.ndarray  # bool[jobs]
    synced: np.ndarray  # int64[jobs]
    pushed: np.ndarray  # int64[jobs]
    tag: np.ndarray  # int64[2]: passes run, syncs run
    fresh: np.ndarray  # int64[jobs]: pass that started the job
    over: np.ndarray  # float64[T]: reclaim: usage left above share per over-share leaf
    bcount: np.ndarray  # int64[T]: reclaim: candidates per leaf (-1 = not over share)
    bstart: np.ndarray  # int64[T+1]
    bfill: np.ndarray  # int64[T]
    blist: np.ndarray  # int64[jobs]
    cands: np.ndarray  # int64[jobs]
    prim: np.ndarray  # float64[jobs]
    victims: np.ndarray  # int64[jobs]
    order: np.ndarray  # int64[jobs]
    lusage: np.ndarray  # float64[T]: what the leaves' running jobs hold (kept, not recounted)
    inrun: np.ndarray  # int64[jobs]: epoch in which the job counts in lusage (-1 = not)
    ucount: np.ndarray  # int64[4]: jobs counted, epoch, stop-log entries taken in, recounts
    sc: object  # what-if cluster (Scratch.ref)
    sbuf: object  # its placement buffer

    kernel = _fair_pass


def _offsets(lists) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in lists], out=start[1:])
    flat = np.array([v for x in lists for v in x], dtype=np.int64)
    return start, flat


def new_fair_pass(policy, view) -> FairPass:
    """The compiled state of a :class:`~policies.fair.FairPolicy` after ``setup(view)``."""
    nodes = policy.nodes
    nq = len(nodes)
    jobs = view.jobs
    n = jobs.n
    child_start, child_list = _offsets([[c.index for c in q.children] for q in nodes])
    path_start, path_list = _offsets(policy.path)
    leaf = np.asarray(policy.leaf, dtype=np.int64)
    ncls = max(jobs.num_classes, 1)
    raw = leaf * ncls + np.asarray(jobs.demand_class, dtype=np.int64)
    ids, group = np.unique(raw, return_inverse=True)
    group = group.astype(np.int64).reshape(-1)
    ng = max(len(ids), 1)
    gjobs = np.lexsort((np.arange(n), group)).astype(np.int64)
    gpos = np.empty(n, dtype=np.int64)
    gpos[gjobs] = np.arange(n)
    gstart = np.zeros(ng + 1, dtype=np.int64)
    np.cumsum(np.bincount(group, minlength=ng), out=gstart[1:])
    gleaf = (ids // ncls).astype(np.int64) if len(ids) else np.zeros(1, dtype=np.int64)
    lstart = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(np.bincount(gleaf, minlength=nq)[:nq], out=lstart[1:])
    half_life = -1.0 if policy.half_life is None else float(policy.half_life)
    zq = lambda: np.zeros(nq)  # noqa: E731
    zn = lambda: np.zeros(n, dtype=np.int64)  # noqa: E731
    return FairPass(
        int(policy.placer.mode),
        bool(policy.placer.allow_split),
        bool(policy.reclaim),
        half_life,
        float(view.cluster.total_gpus),
        child_start,
        child_list,
        path_start,
        path_list,
        np.array([q.deserved for q in nodes], dtype=np.float64),
        np.array([q.over_quota_weight for q in nodes], dtype=np.float64),
        np.array([q.limit for q in nodes], dtype=np.float64),
        leaf,
        np.asarray(policy.size, dtype=np.float64).copy(),
        group,
        gpos,
        gjobs,
        gstart,
        gleaf,
        new_bits(n),
        new_bits(ng),
        lstart,
        np.zeros(ng, dtype=np.int64),
        np.zeros(nq, dtype=np.int64),
        np.zeros(nq, dtype=np.int64),
        zq(),
        np.zeros(1, dtype=np.int64),
        np.array(policy.queued, dtype=np.float64),
        np.array(policy.decayed, dtype=np.float64),
        np.array(policy.usage, dtype=np.float64),
        np.array(policy.shares, dtype=np.float64),
        zq(),
        zq(),
        zq(),
        np.array([policy._last]),
        np.zeros(1, dtype=np.int64),
        np.zeros(n, dtype=np.bool_),
        np.zeros(n, dtype=np.bool_),
        zn(),
        zn(),
        np.zeros(2, dtype=np.int64),
        zn(),
        zq(),
        np.zeros(nq, dtype=np.int64),
        np.zeros(nq + 1, dtype=np.int64),
        np.zeros(nq, dtype=np.int64),
        zn(),
        zn(),
        np.zeros(n),
        zn(),
        zn(),
        zq(),
        np.full(n, -1, dtype=np.int64),
        np.array([-1, 0, 0, 0], dtype=np.int64),  # -1 counted: the first pass counts afresh
        policy.scratch.ref,
        policy.scratch.buf,
    )
