"""The compiled pass of :class:`~policies.ordered.OrderedPolicy` for SJF, priority and SRTF.

:meth:`OrderedPolicy.schedule` is the Python reference; :func:`_ordered_pass` makes the same
decisions in compiled code, on the same structures made incremental:

* one binary min-heap of ``(key, job)`` per demand class, in one flat array partitioned like
  the classes' job lists (``es.cls.start``): class ``c``'s heap is
  ``heap[start[c] : start[c] + size[c]]`` and ``slot[j]`` is job ``j``'s place in it (-1 =
  absent). A job is in its class's heap at most once; its key is set when it enters the queue
  (taken from the engine's push log at the start of each pass, or when the pass preempts it);
  jobs that left the queue are dropped lazily when they reach the top;
* per pass, a heap of the classes' best jobs, and a per-job stamp of the jobs started in
  this pass (never victims in the same pass).

A job's key while it waits: SJF its estimate; priority ``-priority``; SRTF its remaining time
(estimate minus work done, which does not change while it waits). Ties go to the earlier
arrival, as in the reference.

Cost per pass: ``O(P log Q)`` to take in ``P`` new queue entries (``Q`` = jobs waiting in a
class), ``O(C)`` to collect the heads of ``C`` classes with waiting jobs, ``O(log)`` per head
tried, and for a job that must preempt, ``O(R)`` to collect the ``R`` running jobs it may
displace and ``O(V log R)`` plus one fit test per victim candidate taken
(:func:`policies.whatif.find_victims_compiled`: candidates come off a heap as far as needed).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from policies.keyed_queue import take_pushes
from policies.whatif import find_victims_compiled
from simulator.core.bits import bit_next
from simulator.core.cluster import MILLI
from simulator.core.hooks import PASS_DONE
from simulator.core.jit import jit, jit_inline
from simulator.core.jobs import Status
from simulator.core.ops import place_job, preempt, start, wake_at

__all__ = [
    "OrderedPass",
    "KIND_SJF",
    "KIND_PRIORITY",
    "KIND_SRTF",
    "KIND_TIRESIAS",
    "new_ordered_pass",
]

KIND_SJF = 0
"""Key: the job's run-time estimate; no preemption."""
KIND_PRIORITY = 1
"""Key: minus the job's priority; victims of strictly lower priority."""
KIND_SRTF = 2
"""Key: estimated remaining time; victims with strictly longer remaining time."""
KIND_TIRESIAS = 3
"""Key: the attained-service queue; victims of strictly lower queues; promotion timers."""

_LEVEL_EPS = 1e-6  # as policies.tiresias._EPS

_QUEUED = Status.QUEUED
_RUNNING = Status.RUNNING


@jit_inline
def _before(key, a, b):
    """Whether job ``a`` comes before job ``b``: smaller key, then earlier arrival."""
    return key[a] < key[b] or (key[a] == key[b] and a < b)


@jit
def _up(heap, slot, key, base, i):
    j = heap[base + i]
    while i > 0:
        p = (i - 1) >> 1
        q = heap[base + p]
        if not _before(key, j, q):
            break
        heap[base + i] = q
        slot[q] = i
        i = p
    heap[base + i] = j
    slot[j] = i


@jit
def _down(heap, slot, key, base, i, n):
    j = heap[base + i]
    while True:
        m = 2 * i + 1
        if m >= n:
            break
        if m + 1 < n and _before(key, heap[base + m + 1], heap[base + m]):
            m += 1
        q = heap[base + m]
        if not _before(key, q, j):
            break
        heap[base + i] = q
        slot[q] = i
        i = m
    heap[base + i] = j
    slot[j] = i


@jit
def _set_key(es, ps, j, k):
    """Put job ``j`` in its class's heap under key ``k`` (or move it there if present)."""
    c = es.jobs.cls[j]
    base = es.cls.start[c]
    i = ps.slot[j]
    old = ps.key[j]
    ps.key[j] = k
    if i < 0:
        n = ps.size[c]
        ps.size[c] = n + 1
        ps.heap[base + n] = j
        _up(ps.heap, ps.slot, ps.key, base, n)
    elif k < old:
        _up(ps.heap, ps.slot, ps.key, base, i)
    elif k > old:
        _down(ps.heap, ps.slot, ps.key, base, i, ps.size[c])


@jit
def _head(es, ps, c):
    """Best queued job of class ``c`` (dropping jobs that left the queue), or -1."""
    base = es.cls.start[c]
    status = es.jobs.status
    heap, slot = ps.heap, ps.slot
    while ps.size[c] > 0:
        j = heap[base]
        if status[j] == _QUEUED:
            return j
        n = ps.size[c] - 1
        ps.size[c] = n
        slot[j] = -1
        if n > 0:
            heap[base] = heap[base + n]
            _down(heap, slot, ps.key, base, 0, n)
    return -1


@jit_inline
def _remaining(es, ps, j):
    """Estimated seconds of work job ``j`` still needs (as ``SrtfPolicy.remaining``)."""
    ja = es.jobs
    done = ja.work[j]
    if ja.status[j] == _RUNNING:
        done = done + (es.c[0].now - ja.last_update[j]) * ja.rate[j]
    return max(ps.estimate[j] - done, 0.0)


@jit
def _service(es, ps, j):
    """GPU-seconds job ``j`` attained since it last entered queue 0 (``service``)."""
    ja = es.jobs
    held = ja.gpu_seconds[j]
    if ja.status[j] == _RUNNING:
        held = held + ja.share[j] * (es.c[0].now - ja.run_start[j])
    return held - ps.base[j]


@jit
def _level(ps, svc):
    """Queue of a job with service ``svc``: thresholds at or below ``svc`` (+ slack)."""
    x = svc + _LEVEL_EPS
    k = 0
    for t in ps.thresholds:
        if t <= x:
            k += 1
    return k


@jit
def _key_of(es, ps, j):
    if ps.kind == KIND_TIRESIAS:
        return float(_level(ps, _service(es, ps, j)))
    if ps.kind == KIND_PRIORITY:
        return -float(ps.priority[j])
    if ps.kind == KIND_SRTF:
        return _remaining(es, ps, j)
    return ps.estimate[j]


@jit
def _sync(es, ps):
    """Key every job that entered the queue since the last pass and is still waiting.

    As ``KeyedQueue.sync``: the engine's entry of each of the pass's own requeues is skipped
    (the pass keyed the job itself), repeats count once, and a job queued again by other means
    (a node failure) after it ran gets :func:`_on_preempted`.
    """
    ps.tag[1] += 1
    n = take_pushes(es, ps.cursor, ps.mine, ps.synced, ps.tag[1], ps.pushed)
    for i in range(n):
        j = ps.pushed[i]
        back = ps.seen[j]
        ps.seen[j] = True
        _set_key(es, ps, j, _key_of(es, ps, j))
        if back and es.jobs.gpu_seconds[j] > 0:
            _on_preempted(es, ps, j)


# ---------------------------------------------------------------------- Tiresias timers
@jit
def _promo_up(ps, i):
    h, slot, dl = ps.pheap, ps.pslot, ps.pdead
    j = h[i]
    while i > 0:
        p = (i - 1) >> 1
        q = h[p]
        if not (dl[j] < dl[q] or (dl[j] == dl[q] and j < q)):
            break
        h[i] = q
        slot[q] = i
        i = p
    h[i] = j
    slot[j] = i


@jit
def _promo_down(ps, i):
    h, slot, dl = ps.pheap, ps.pslot, ps.pdead
    n = ps.psize[0]
    j = h[i]
    while True:
        m = 2 * i + 1
        if m >= n:
            break
        if m + 1 < n:
            a, b = h[m + 1], h[m]
            if dl[a] < dl[b] or (dl[a] == dl[b] and a < b):
                m += 1
        q = h[m]
        if not (dl[q] < dl[j] or (dl[q] == dl[j] and q < j)):
            break
        h[i] = q
        slot[q] = i
        i = m
    h[i] = j
    slot[j] = i


@jit
def _promo_pop(ps):
    """Drop the earliest promotion entry."""
    j = ps.pheap[0]
    ps.pslot[j] = -1
    n = ps.psize[0] - 1
    ps.psize[0] = n
    if n > 0:
        ps.pheap[0] = ps.pheap[n]
        _promo_down(ps, 0)


@jit
def _on_preempted(es, ps, j):
    """Tiresias: start job ``j``'s promotion clock (``TiresiasPolicy.on_preempted``).

    One entry per job: a newer clock replaces the older one (which the reference keeps as a
    stale heap entry and skips).
    """
    if ps.kind != KIND_TIRESIAS:
        return
    i = ps.pslot[j]
    if i >= 0:  # the older clock is stale: move it to the top and drop it
        ps.pdead[j] = -np.inf
        _promo_up(ps, i)
        _promo_pop(ps)
    share = es.jobs.share[j]
    if ps.knob < 0 or share <= 0:
        return
    executed = es.jobs.gpu_seconds[j] / share
    ps.pdead[j] = es.c[0].now + ps.knob * executed
    n = ps.psize[0]
    ps.psize[0] = n + 1
    ps.pheap[n] = j
    _promo_up(ps, n)


@jit
def _before_pass(es, ps):
    """Tiresias: promote waiting jobs whose wait reached the limit (``before_pass``)."""
    now = es.c[0].now
    status = es.jobs.status
    while ps.psize[0] > 0 and ps.pdead[ps.pheap[0]] <= now + 1e-9:
        j = ps.pheap[0]
        _promo_pop(ps)
        if status[j] != _QUEUED:
            continue
        ps.base[j] += _service(es, ps, j)
        _set_key(es, ps, j, _key_of(es, ps, j))


# Tiresias demotions. The reference scans every running job at the end of every pass for the
# next threshold crossing. Here the running jobs that can still move down a queue sit in a heap
# keyed by when they were last computed to cross (``dtime``): while a job runs in one queue
# that time changes only by rounding, and a job that already crossed crosses the next
# threshold later. So ``dtime[v] - _slack(dtime[v])`` bounds from below what the reference
# computes for ``v`` now, and a search of the heap that prunes at the best exact value found
# visits only the jobs that can be the earliest (and the ones that moved down, updated after).
# The heap follows the running set through the stop log; starts the pass does itself are added
# as they happen; any other change (a start from Python, a migration) is seen as a count that
# does not match, and the heap is rebuilt from the running set.


@jit
def _slack(now, t):
    """Bound on the rounding between two evaluations of one job's crossing time."""
    return 1e-9 * (1.0 + abs(now) + abs(t))


@jit
def _d_less(ps, a, b):
    ta, tb = ps.dtime[a], ps.dtime[b]
    return ta < tb or (ta == tb and a < b)


@jit
def _d_up(ps, i):
    h, slot = ps.dheap, ps.dslot
    j = h[i]
    while i > 0:
        p = (i - 1) >> 1
        q = h[p]
        if not _d_less(ps, j, q):
            break
        h[i] = q
        slot[q] = i
        i = p
    h[i] = j
    slot[j] = i


@jit
def _d_down(ps, i):
    h, slot = ps.dheap, ps.dslot
    n = ps.dsize[0]
    j = h[i]
    while True:
        m = 2 * i + 1
        if m >= n:
            break
        if m + 1 < n and _d_less(ps, h[m + 1], h[m]):
            m += 1
        q = h[m]
        if not _d_less(ps, q, j):
            break
        h[i] = q
        slot[q] = i
        i = m
    h[i] = j
    slot[j] = i


@jit
def _d_remove(ps, v):
    i = ps.dslot[v]
    if i < 0:
        return
    ps.dslot[v] = -1
    n = ps.dsize[0] - 1
    ps.dsize[0] = n
    if i < n:
        x = ps.dheap[n]
        ps.dheap[i] = x
        ps.dslot[x] = i
        _d_up(ps, i)
        _d_down(ps, ps.dslot[x])


# SRTF: the running jobs in a dense table (job, version, pass that started it; estimate,
# work, last update, rate, GPUs), so that collecting victim candidates reads consecutive
# memory instead of five job columns at random. A copy is stale once the job's version
# changed (a rate change): the scan then copies it again.


@jit
def _r_copy(es, ps, v):
    """Put running job ``v`` in the dense table (or refresh its row)."""
    i = ps.rslot[v]
    if i < 0:
        i = ps.rn[0]
        ps.rn[0] = i + 1
        ps.rslot[v] = i
        ps.ri[i, 0] = v
        ps.ri[i, 2] = -1
    ja = es.jobs
    ps.ri[i, 1] = ja.version[v]
    ps.rf[i, 0] = ps.estimate[v]
    ps.rf[i, 1] = ja.work[v]
    ps.rf[i, 2] = ja.last_update[v]
    ps.rf[i, 3] = ja.rate[v]
    ps.rf[i, 4] = ja.share[v]


@jit
def _r_remove(ps, v):
    i = ps.rslot[v]
    if i < 0:
        return
    ps.rslot[v] = -1
    last = ps.rn[0] - 1
    ps.rn[0] = last
    if i < last:
        w = ps.ri[last, 0]
        ps.ri[i, :] = ps.ri[last, :]
        ps.rf[i, :] = ps.rf[last, :]
        ps.rslot[w] = i


@jit
def _d_place(es, ps, v):
    """Key running job ``v`` by its next crossing now (or take it out if it has none)."""
    share = es.jobs.share[v]
    if ps.kind == KIND_SRTF:
        _r_copy(es, ps, v)
        return
    svc = _service(es, ps, v)
    k = _level(ps, svc)
    epoch = ps.dcount[1]
    if ps.dcounted[v] == epoch:
        ps.lvl_share[ps.dlev[v]] -= share
    ps.lvl_share[k] += share
    ps.dcounted[v] = epoch
    ps.dlev[v] = k
    if share <= 0 or k >= ps.thresholds.shape[0]:
        _d_remove(ps, v)
        return
    now = es.c[0].now
    ps.dtime[v] = now + (ps.thresholds[k] - svc) / share
    i = ps.dslot[v]
    if i < 0:
        n = ps.dsize[0]
        ps.dsize[0] = n + 1
        ps.dheap[n] = v
        _d_up(ps, n)
    else:
        _d_up(ps, i)
        _d_down(ps, ps.dslot[v])


@jit
def _d_stops(es, ps):
    """Take the jobs that stopped since the last call out of the heap (the stop log)."""
    stops = es.log.stops
    end = es.c[0].stops
    epoch = ps.dcount[1]
    for i in range(ps.dcount[2], end):
        v = stops[i]
        if ps.inrun[v] == epoch:
            ps.inrun[v] = -1
            ps.dcount[0] -= 1
            _d_remove(ps, v)
            if ps.kind == KIND_SRTF:
                _r_remove(ps, v)
            if ps.dcounted[v] == epoch:
                ps.lvl_share[ps.dlev[v]] -= es.jobs.share[v]
                ps.dcounted[v] = -1
    ps.dcount[2] = end


@jit
def _d_sync(es, ps):
    """Follow the stop log; rebuild from the running set if anything else changed it."""
    _d_stops(es, ps)
    if ps.dcount[0] == es.c[0].running:
        return
    for i in range(ps.dsize[0]):
        ps.dslot[ps.dheap[i]] = -1
    ps.dsize[0] = 0
    ps.dcount[1] += 1
    epoch = ps.dcount[1]
    ps.dcount[0] = 0
    ps.lvl_share[:] = 0.0
    for i in range(ps.rn[0]):
        ps.rslot[ps.ri[i, 0]] = -1
    ps.rn[0] = 0
    run = es.q.running
    v = bit_next(run, 0)
    while v >= 0:
        ps.inrun[v] = epoch
        ps.dcount[0] += 1
        _d_place(es, ps, v)
        v = bit_next(run, v + 1)
    ps.dcount[3] += 1


@jit
def _d_started(es, ps, v):
    """The pass started job ``v``."""
    _d_stops(es, ps)  # first the stops before it (v may have been preempted in this pass)
    ps.inrun[v] = ps.dcount[1]
    ps.dcount[0] += 1
    _d_place(es, ps, v)
    if ps.kind == KIND_SRTF:
        ps.ri[ps.rslot[v], 2] = ps.tag[0]  # started in this pass: never a victim in it


@jit
def _d_refresh(es, ps):
    """Bring every running job's queue up to date now (those that may have moved down).

    A job still in the queue it was counted in has ``dtime`` later than now by more than the
    level test's slack (``_LEVEL_EPS`` GPU-seconds, i.e. up to ``ps.eps_time`` seconds) and
    the rounding bound, so only the heap's top part needs a look.
    """
    _d_sync(es, ps)
    now = es.c[0].now
    stack = ps.order  # free before the victim search
    moved = ps.victims
    nmoved = 0
    sp = 0
    if ps.dsize[0] > 0:
        stack[0] = 0
        sp = 1
    while sp > 0:
        sp -= 1
        i = stack[sp]
        v = ps.dheap[i]
        t = ps.dtime[v]
        if t - ps.eps_time - _slack(now, t) > now:
            continue
        if _level(ps, _service(es, ps, v)) != ps.dlev[v]:
            moved[nmoved] = v
            nmoved += 1
        m = 2 * i + 1
        if m < ps.dsize[0]:
            stack[sp] = m
            sp += 1
            if m + 1 < ps.dsize[0]:
                stack[sp] = m + 1
                sp += 1
    for i in range(nmoved):
        _d_place(es, ps, moved[i])


@jit
def _held_below(ps, level):
    """GPUs held by running jobs in queues below ``level`` (after :func:`_d_refresh`)."""
    held = 0.0
    for k in range(int(level) + 1, ps.lvl_share.shape[0]):
        held += ps.lvl_share[k]
    return held


@jit
def _next_demotion(es, ps):
    """``TiresiasPolicy._next_demotion``: now plus the least time to a threshold (inf: none)."""
    _d_sync(es, ps)
    now = es.c[0].now
    share = es.jobs.share
    nthr = ps.thresholds.shape[0]
    gap_min = np.inf
    best = np.inf
    stack = ps.victims  # free after the pass
    moved = ps.cands
    nmoved = 0
    sp = 0
    if ps.dsize[0] > 0:
        stack[0] = 0
        sp = 1
    while sp > 0:
        sp -= 1
        i = stack[sp]
        v = ps.dheap[i]
        t = ps.dtime[v]
        if t - _slack(now, t) >= best:
            continue
        svc = _service(es, ps, v)
        k = _level(ps, svc)
        if k != ps.dlev[v]:
            moved[nmoved] = v
            nmoved += 1
        if k < nthr:
            g = (ps.thresholds[k] - svc) / share[v]
            if g < gap_min:
                gap_min = g
                best = now + gap_min
        m = 2 * i + 1
        if m < ps.dsize[0]:
            stack[sp] = m
            sp += 1
            if m + 1 < ps.dsize[0]:
                stack[sp] = m + 1
                sp += 1
    for i in range(nmoved):
        _d_place(es, ps, moved[i])
    if gap_min < np.inf:
        return now + gap_min
    return np.inf


@jit
def _after_pass(es, ps):
    """Tiresias: a pass at the next demotion or promotion (``after_pass``); an error code."""
    c = es.c[0]
    now = c.now
    status = es.jobs.status
    while ps.psize[0] > 0 and status[ps.pheap[0]] != _QUEUED:
        _promo_pop(ps)
    t = np.inf
    if ps.psize[0] > 0:
        t = ps.pdead[ps.pheap[0]]
    if c.running > 0:
        t = min(t, _next_demotion(es, ps))
    if t < np.inf:
        if ps.interval > 0:
            t = math.ceil(t / ps.interval - 1e-9) * ps.interval
        if t > now:
            return wake_at(es, t)
    return 0


@jit
def _candidates(es, ps, j, tag):
    """Running jobs ``j`` may preempt into ``ps.cands``, primary keys into ``ps.prim``.

    In job order; the victim search takes them most preferred first. Jobs started in this
    pass (``ps.fresh == tag``) are left out. Returns their number, -1 if there is none, or 0
    when even all of them together hold too few GPUs for ``j`` (the reference's cheap
    necessary condition).
    """
    ja = es.jobs
    run = es.q.running
    share = ja.share
    n = 0
    held = 0.0
    if ps.kind == KIND_PRIORITY:
        mine = ps.priority[j]
        v = bit_next(run, 0)
        while v >= 0:
            p = ps.priority[v]
            if p < mine and (not ps.has_threshold or p < ps.threshold) and ps.fresh[v] != tag:
                ps.cands[n] = v
                ps.prim[n] = float(p)
                held += share[v]
                n += 1
            v = bit_next(run, v + 1)
    elif ps.kind == KIND_TIRESIAS:
        mine = _level(ps, _service(es, ps, j))
        v = bit_next(run, 0)
        while v >= 0:
            if ps.fresh[v] != tag:
                lv = _level(ps, _service(es, ps, v))
                if lv > mine:
                    ps.cands[n] = v
                    ps.prim[n] = -float(lv)
                    held += share[v]
                    n += 1
            v = bit_next(run, v + 1)
    else:  # SRTF, over the dense table of running jobs (synced at the pass's first search)
        mine = _remaining(es, ps, j)
        now = es.c[0].now
        version = ja.version
        ri, rf = ps.ri, ps.rf
        for i in range(ps.rn[0]):
            if ri[i, 2] == tag:
                continue
            v = ri[i, 0]
            if version[v] != ri[i, 1]:
                _r_copy(es, ps, v)
            r = max(rf[i, 0] - (rf[i, 1] + (now - rf[i, 2]) * rf[i, 3]), 0.0)
            if r > mine:
                ps.cands[n] = v
                ps.prim[n] = -r
                held += rf[i, 4]
                n += 1
    if n == 0:
        return -1
    free = ps.total_gpus - es.cl.books[0].alloc_milli / MILLI
    if free + held + 1e-9 < share[j]:
        return 0
    return n


@jit
def _start_or_preempt(es, fs, ps, j, tag):
    """Start ``j``, preempting if needed: ``(code, victims)``; code -1 = ``j`` must wait."""
    k = place_job(es, j, ps.mode, ps.allow_split, True)
    if k >= 0:
        ps.fresh[j] = tag
        code = start(es, fs, j, k)
        if ps.kind == KIND_TIRESIAS or ps.kind == KIND_SRTF:
            _d_started(es, ps, j)
        return code, 0
    if not ps.preemptive:
        return -1, 0
    # Between two preemptions a head with a larger key has fewer candidates (only jobs ranked
    # strictly below it may be displaced, never one started in this pass) and free GPUs only
    # shrink. So a head whose key is at least that of a head that had no candidate has none,
    # and one whose key and GPUs are at least those of a head whose candidates held too few
    # GPUs lacks them too: both outcomes are known without a scan. (Heads do not always come in
    # key order: a class that was in the pass's heap when a victim joined it comes back later
    # with the victim as its head, hence the keys in the memo.)
    key = ps.key[j]
    share = es.jobs.share[j]
    if key >= ps.memo[0] or (key >= ps.memo[1] and share >= ps.memo[2]):
        return -1, 0
    if ps.kind == KIND_SRTF and ps.dcount[4] != tag:
        _d_sync(es, ps)  # the dense table of running jobs, up to date
        ps.dcount[4] = tag
    if ps.kind == KIND_TIRESIAS:
        # the GPUs of every running job in a lower queue (a superset of the candidates)
        if ps.dcount[4] != tag:
            _d_refresh(es, ps)
            ps.dcount[4] = tag
        free = ps.total_gpus - es.cl.books[0].alloc_milli / MILLI
        if free + _held_below(ps, key) + 1e-6 < share:
            if share < ps.memo[2] or (share == ps.memo[2] and key < ps.memo[1]):
                ps.memo[1] = key
                ps.memo[2] = share
            return -1, 0
    n = _candidates(es, ps, j, tag)
    if n < 0:
        ps.memo[0] = min(ps.memo[0], key)
        return -1, 0
    if n == 0:
        if share < ps.memo[2] or (share == ps.memo[2] and key < ps.memo[1]):
            ps.memo[1] = key
            ps.memo[2] = share
        return -1, 0
    nv = find_victims_compiled(
        es, ps.sc, ps.sbuf, j, ps.cands, ps.prim, n, ps.mode, ps.allow_split, ps.victims, ps.order
    )
    if nv <= 0:
        return -1, 0
    for i in range(nv):
        v = ps.victims[i]
        code = preempt(es, fs, v)
        if code != 0:
            return code, 0
        _on_preempted(es, ps, v)
        ps.memo[:] = np.inf
        ps.mine[v] = True
        ps.seen[v] = True
        _set_key(es, ps, v, _key_of(es, ps, v))
    if ps.kind == KIND_TIRESIAS or ps.kind == KIND_SRTF:
        _d_stops(es, ps)  # the victims leave the running tables now
    k = place_job(es, j, ps.mode, ps.allow_split, True)
    if k < 0:  # cannot happen: the what-if placement showed the room (defensive)
        return 0, nv
    ps.fresh[j] = tag
    code = start(es, fs, j, k)
    if ps.kind == KIND_TIRESIAS or ps.kind == KIND_SRTF:
        _d_started(es, ps, j)
    return code, nv


@jit
def _push_head(ps, m, j):
    """Add job ``j`` to the pass's heap of class heads (``m`` entries); the new size."""
    ps.heads[m] = j
    _up(ps.heads, ps.hslot, ps.key, 0, m)
    return m + 1


@jit
def _pop_head(ps, m):
    """Take the best head off the pass's heap (``m`` entries); ``(job, new size)``."""
    j = ps.heads[0]
    m -= 1
    if m > 0:
        ps.heads[0] = ps.heads[m]
        _down(ps.heads, ps.hslot, ps.key, 0, 0, m)
    return j, m


@jit
def _strict_pass(es, fs, ps):
    """SJF ``strict``: start the best waiting job while it fits; stop at the first that does not."""
    ncls = ps.size.shape[0]
    while True:
        best = -1
        for c in range(ncls):
            if ps.size[c] > 0:
                h = _head(es, ps, c)
                if h >= 0 and (best < 0 or _before(ps.key, h, best)):
                    best = h
        if best < 0:
            return PASS_DONE
        k = place_job(es, best, ps.mode, ps.allow_split, True)
        if k < 0:
            return PASS_DONE
        code = start(es, fs, best, k)
        if code != 0:
            return code


@jit
def _ordered_pass(es, fs, ps):
    """:meth:`OrderedPolicy.schedule` for SJF, priority, SRTF and Tiresias, compiled."""
    tiresias = ps.kind == KIND_TIRESIAS
    if tiresias:
        _before_pass(es, ps)
    _sync(es, ps)
    if ps.strict:
        return _strict_pass(es, fs, ps)
    ps.tag[0] += 1
    tag = ps.tag[0]
    ps.memo[:] = np.inf
    ncls = ps.size.shape[0]
    active = ps.active
    m = 0
    for c in range(ncls):
        active[c] = False
        if ps.size[c] > 0:
            h = _head(es, ps, c)
            if h >= 0:
                m = _push_head(ps, m, h)
                active[c] = True
    cls = es.jobs.cls
    while m > 0:
        j, m = _pop_head(ps, m)
        g = cls[j]
        active[g] = False
        code, nv = _start_or_preempt(es, fs, ps, j, tag)
        if code < 0:
            continue  # the class is skipped for the rest of the pass
        if code != 0:
            return code
        for i in range(-1, nv):
            h = g if i < 0 else cls[ps.victims[i]]
            if not active[h]:
                nxt = _head(es, ps, h)
                if nxt >= 0:
                    m = _push_head(ps, m, nxt)
                    active[h] = True
    if tiresias:
        return _after_pass(es, ps)
    return PASS_DONE


class OrderedPass(NamedTuple):
    """Compiled state of an SJF, priority, SRTF or Tiresias pass (see the module docstring)."""

    kind: int  # KIND_*
    strict: bool  # SJF: stop at the first job that does not fit
    preemptive: bool
    has_threshold: bool  # priority: jobs at or above ``threshold`` are never preempted
    threshold: int
    mode: int  # placer scoring
    allow_split: bool
    total_gpus: float
    estimate: np.ndarray  # float64[jobs]
    priority: np.ndarray  # int64[jobs]
    key: np.ndarray  # float64[jobs]: key of each job in its class heap
    heap: np.ndarray  # int64[jobs]: the class heaps, partitioned like es.cls.jobs
    slot: np.ndarray  # int64[jobs]: place of each job in its class heap (-1 = absent)
    size: np.ndarray  # int64[classes]: entries of each class heap
    cursor: np.ndarray  # int64[1]: push-log entries taken in
    heads: np.ndarray  # int64[classes]: the pass's heap of class heads
    hslot: np.ndarray  # int64[jobs]: scratch slots of that heap
    active: np.ndarray  # bool[classes]: class has an entry in the pass's heap
    fresh: np.ndarray  # int64[jobs]: tag of the pass that started the job
    tag: np.ndarray  # int64[2]: passes run, syncs run
    prim: np.ndarray  # float64[jobs]: primary victim key of each candidate (smaller first)
    order: np.ndarray  # int64[jobs]: heap scratch of the victim search
    cands: np.ndarray  # int64[jobs]: victim candidates
    victims: np.ndarray  # int64[jobs]: chosen victims
    memo: np.ndarray  # float64[3], since the last preemption: least key of a head without
    # victim candidates; key and GPUs of a head whose candidates held too few GPUs (inf: none)
    seen: np.ndarray  # bool[jobs]: job was keyed before
    mine: np.ndarray  # bool[jobs]: the pass requeued it; skip the engine's entry once
    synced: np.ndarray  # int64[jobs]: sync that last took the job in (repeats count once)
    thresholds: np.ndarray  # float64[K-1]: Tiresias queue limits, GPU-seconds
    knob: float  # Tiresias promote_knob (< 0 = no promotion)
    interval: float  # Tiresias re-evaluation period (<= 0 = exact)
    base: np.ndarray  # float64[jobs]: Tiresias service offsets
    pdead: np.ndarray  # float64[jobs]: promotion deadline of each job's clock
    pheap: np.ndarray  # int64[jobs]: heap of running promotion clocks
    pslot: np.ndarray  # int64[jobs]: place in it (-1 = none)
    psize: np.ndarray  # int64[1]
    dtime: np.ndarray  # float64[jobs]: when a running job was computed to cross its threshold
    dlev: np.ndarray  # int64[jobs]: the queue it was in then
    dheap: np.ndarray  # int64[jobs]: heap of running jobs by dtime
    dslot: np.ndarray  # int64[jobs]: place in it (-1 = none)
    dsize: np.ndarray  # int64[1]
    inrun: np.ndarray  # int64[jobs]: epoch in which the job was counted running (-1 = not)
    dcount: np.ndarray  # int64[5]: jobs counted running, epoch, stop-log entries taken in,
    # rebuilds, pass of the last refresh
    dcounted: np.ndarray  # int64[jobs]: epoch in which the job's GPUs count in lvl_share
    lvl_share: np.ndarray  # float64[K]: GPUs held by running jobs per queue
    eps_time: float  # seconds the level test's slack can be worth (for the least share)
    ri: np.ndarray  # int64[jobs, 3]: SRTF dense running table: job, version, start pass
    rf: np.ndarray  # float64[jobs, 5]: estimate, work, last update, rate, GPUs
    rslot: np.ndarray  # int64[jobs]: row of each job (-1 = none)
    rn: np.ndarray  # int64[1]: rows in use
    pushed: np.ndarray  # int64[jobs]: jobs a sync takes in (take_pushes)
    sc: object  # what-if cluster (Scratch.ref)
    sbuf: object  # its placement buffer (Scratch.buf)

    kernel = _ordered_pass


def new_ordered_pass(
    kind: int,
    *,
    num_classes: int,
    estimate: np.ndarray,
    priority: np.ndarray,
    strict: bool,
    preemptive: bool,
    threshold: int | None,
    mode: int,
    allow_split: bool,
    total_gpus: float,
    scratch,
    thresholds: np.ndarray | None = None,
    knob: float | None = None,
    interval: float | None = None,
    share: np.ndarray | None = None,
) -> OrderedPass:
    """A fresh :class:`OrderedPass` for a run (nothing keyed yet)."""
    n = int(estimate.shape[0])
    positive = share[share > 0] if share is not None and len(share) else np.ones(1)
    min_share = float(positive.min()) if len(positive) else 1.0
    ncls = max(int(num_classes), 1)
    return OrderedPass(
        int(kind),
        bool(strict),
        bool(preemptive),
        threshold is not None,
        0 if threshold is None else int(threshold),
        int(mode),
        bool(allow_split),
        float(total_gpus),
        np.array(estimate, dtype=np.float64),  # copies: writable, contiguous
        np.array(priority, dtype=np.int64),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        np.full(n, -1, dtype=np.int64),
        np.zeros(ncls, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.zeros(ncls, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(ncls, dtype=np.bool_),
        np.full(n, -1, dtype=np.int64),
        np.zeros(2, dtype=np.int64),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.full(3, np.inf),
        np.zeros(n, dtype=np.bool_),
        np.zeros(n, dtype=np.bool_),
        np.zeros(n, dtype=np.int64),
        np.zeros(0) if thresholds is None else np.array(thresholds, dtype=np.float64),
        -1.0 if knob is None else float(knob),
        -1.0 if interval is None else float(interval),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        np.full(n, -1, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.full(n, -1, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.full(n, -1, dtype=np.int64),
        np.zeros(5, dtype=np.int64),
        np.full(n, -1, dtype=np.int64),
        np.zeros(1 if thresholds is None else len(thresholds) + 1),
        _LEVEL_EPS / min_share,
        np.zeros((n if kind == KIND_SRTF else 0, 3), dtype=np.int64),
        np.zeros((n if kind == KIND_SRTF else 0, 5)),
        np.full(n, -1, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        scratch.ref,
        scratch.buf,
    )
