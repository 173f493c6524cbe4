"""Compiled replay: the engine's event loop for in-order policies, in one Numba function.

For the built-in ``fifo`` and ``gang`` policies on a run that needs no Python during the
simulation (no network model, no controller processes, no failures, no event log, no
timers), :meth:`Simulation.run
<simulator.engine.Simulation.run>` replays the trace here instead of in the SimPy loop. It is
the same simulation, event for event:

* the same event order: completions before the pass of an instant, ties broken by SimPy's
  insertion counter, which this loop draws at the same moments as the engine does (next
  arrival, each start, each requested pass), so equal-time completions fall in the same order;
* the same arrival handling (jobs of a class that can never fit are ``unschedulable``), the
  same pass rules (one pass per instant, a release with an empty queue records the timeline
  directly) and the same timeline rows;
* the same decisions: the policy's pass is written out below from ``FifoPolicy.schedule`` and
  ``GangPolicy.schedule`` (class-head skipping, starvation guard), and placements come from
  the same kernels with the same arguments as :meth:`Placer.place
  <simulator.placement.Placer.place>`.

``tests/test_replay.py`` runs both loops on random traces and configurations and requires
identical job tables, timelines, summaries and final cluster states. A policy opts in with
``replay_spec()``; a subclass that overrides ``schedule`` or ``setup`` gets the SimPy loop.

The loop runs in chunks of events so that Ctrl-C / SIGTERM (checked between chunks) and the
progress bar keep working.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from simulator.cluster import MILLI
from simulator.engine import PASS as _PASS
from simulator.engine import RELEASE as _RELEASE
from simulator.jobs import Status
from simulator.kernels import (
    _apply,
    _apply_gpus,
    _ctz,
    _pick_full_gpus,
    _place_gang,
    _select_node,
    _take_full,
    jit,
    jit_inline,
)
from simulator.placement import Placement

__all__ = ["FIFO", "GANG", "replay"]

FIFO = 0
"""Policy code: start queue heads in order until one does not fit."""
GANG = 1
"""Policy code: class heads in arrival order, skipping classes that do not fit."""

_FUTURE = Status.FUTURE
_QUEUED = Status.QUEUED
_RUNNING = Status.RUNNING
_FINISHED = Status.FINISHED
_UNSCHEDULABLE = Status.UNSCHEDULABLE

_COMPLETE = 0  # heap entry kinds
_PASS_EVENT = 1

# columns of cls_int (per demand class)
C_GPUS = 0
C_MILLI = 1
C_MASK = 2
C_SINGLE = 3  # fits one node by capacity
C_INDEXED = 4  # the placer searches the bucket index
C_NO_CPU = 5  # takes no CPU and no memory (allocation skips those books)

# integer registers
R_NEXT = 0  # next trace row to arrive
R_EID = 1  # SimPy's insertion counter (next id to draw)
R_HEAP = 2  # entries on the event heap
R_PASSES = 3
R_FIRST = 4  # every row below this one has left the queue
R_QSIZE = 5
R_RUNNING = 6
R_ALLOC = 7  # allocated milli-GPU
R_FREE = 8  # whole free GPUs
R_VERSION = 9  # cluster state version
R_HEAD = 10  # gang: the head the starvation clock runs for
R_ACTIVE = 11  # entries in the active-class list
R_ROWS = 12  # timeline rows
R_STOPS = 13
R_TERMINAL = 14
R_ARR_EID = 15  # insertion id of the pending arrival event (-1 = none)
R_EVENTS = 16  # events processed
NUM_R = 17

# float registers
F_NOW = 0
F_ARR_KEY = 1  # time of the pending arrival event
F_ARRIVAL_AT = 2  # submit time of the next arrival (engine._arrival_at)
F_PASS_AT = 3  # time of a requested pass not yet run (NaN = none)
F_LAST_SAMPLE = 4
F_HEAD_SINCE = 5
NUM_F = 6

DONE = 0
"""The loop ran out of events."""
CHUNK = 1
"""The chunk's event budget is used up; call again."""
UNTIL = 2
"""The next event is at or after ``until``."""


@jit_inline
def _heap_less(t, p, e, i, j):
    if t[i] != t[j]:
        return t[i] < t[j]
    if p[i] != p[j]:
        return p[i] < p[j]
    return e[i] < e[j]


@jit_inline
def _heap_swap(t, p, e, k, jb, i, j):
    t[i], t[j] = t[j], t[i]
    p[i], p[j] = p[j], p[i]
    e[i], e[j] = e[j], e[i]
    k[i], k[j] = k[j], k[i]
    jb[i], jb[j] = jb[j], jb[i]


@jit_inline
def _heap_push(t, p, e, k, jb, size, time, prio, eid, kind, job):
    i = size
    t[i] = time
    p[i] = prio
    e[i] = eid
    k[i] = kind
    jb[i] = job
    while i > 0:
        parent = (i - 1) >> 1
        if _heap_less(t, p, e, i, parent):
            _heap_swap(t, p, e, k, jb, i, parent)
            i = parent
        else:
            break
    return size + 1


@jit_inline
def _heap_pop(t, p, e, k, jb, size):
    """Remove the top entry (the caller read it at index 0); returns the new size."""
    size -= 1
    if size > 0:
        _heap_swap(t, p, e, k, jb, 0, size)
        i = 0
        while True:
            left = 2 * i + 1
            if left >= size:
                break
            child = left
            if left + 1 < size and _heap_less(t, p, e, left + 1, left):
                child = left + 1
            if _heap_less(t, p, e, child, i):
                _heap_swap(t, p, e, k, jb, i, child)
                i = child
            else:
                break
    return size


@jit_inline
def _int_heap_push(h, size, v):
    i = size
    h[i] = v
    while i > 0:
        parent = (i - 1) >> 1
        if h[i] < h[parent]:
            h[i], h[parent] = h[parent], h[i]
            i = parent
        else:
            break
    return size + 1


@jit_inline
def _int_heap_pop(h, size):
    top = h[0]
    size -= 1
    if size > 0:
        h[0] = h[size]
        i = 0
        while True:
            left = 2 * i + 1
            if left >= size:
                break
            child = left
            if left + 1 < size and h[left + 1] < h[left]:
                child = left + 1
            if h[child] < h[i]:
                h[i], h[child] = h[child], h[i]
                i = child
            else:
                break
    return top, size


@jit_inline
def _first(status, reg):
    """``PendingQueue.first``: the earliest-arrived queued row, or -1."""
    p = reg[R_FIRST]
    arrived = reg[R_NEXT]
    while p < arrived and status[p] != _QUEUED:
        p += 1
    reg[R_FIRST] = p
    return p if p < arrived else -1


@jit_inline
def _class_head(c, status, c_jobs, c_start, c_ptr, c_active):
    """``PendingQueue.class_head``: the earliest-arrived queued row of class ``c``, or -1."""
    p = c_ptr[c]
    end = c_start[c + 1]
    while p < end:
        j = c_jobs[p]
        s = status[j]
        if s == _QUEUED:
            c_ptr[c] = p
            return j
        if s == _FUTURE:  # not arrived yet: nothing of this class is queued
            break
        p += 1
    c_ptr[c] = p
    c_active[c] = False
    return -1


@jit_inline
def _sample(freg, reg, timeline, interval, q_alloc, q_queued, alloc_q, queued_q):
    """``Simulation._sample``: one timeline row per instant (per-queue rows if ``q_alloc``)."""
    now = freg[F_NOW]
    rows = reg[R_ROWS]
    if rows > 0 and timeline[4 * rows - 4] == now:
        r = rows - 1
    elif now - freg[F_LAST_SAMPLE] >= interval:
        freg[F_LAST_SAMPLE] = now
        r = rows
        timeline[4 * r] = now
        reg[R_ROWS] = rows + 1
    else:
        return
    timeline[4 * r + 1] = reg[R_ALLOC]
    timeline[4 * r + 2] = reg[R_QSIZE]
    timeline[4 * r + 3] = reg[R_RUNNING]
    if q_alloc.shape[0] > 0:
        q_alloc[r, :] = alloc_q
        q_queued[r, :] = queued_q


@jit_inline
def _place(
    c,
    cls_int,
    cls_float,
    gpu_free,
    free_full,
    cpu_free,
    mem_free,
    buckets,
    node_model,
    node_up,
    racks,
    rack_order,
    rack_start,
    reg,
    total_milli,
    mode,
    allow_split,
    gpus_out,
    nodes_out,
    cpu_out,
    mem_out,
    tmp_nodes,
    tmp_counts,
    p_milli,
    j,
):
    """``Placer.place`` for job ``j`` of class ``c``: writes the placement, returns its node count.

    Returns -1 when the job does not fit now. ``cls_int[c]`` = (num_gpus, milli, type mask,
    single-node, indexed, no CPU/memory); ``cls_float[c]`` = (cpus, mem).
    """
    n = cls_int[c, C_GPUS]
    milli = cls_int[c, C_MILLI]
    mask = cls_int[c, C_MASK]
    single = cls_int[c, C_SINGLE] != 0
    indexed = cls_int[c, C_INDEXED] != 0
    cpus = cls_float[c, 0]
    mem = cls_float[c, 1]
    if milli >= MILLI:
        if n > reg[R_FREE]:
            return -1
    elif reg[R_ALLOC] + milli > total_milli:
        return -1
    if indexed:
        node = _take_full(
            buckets,
            gpu_free,
            cpu_free,
            mem_free,
            node_model,
            node_up,
            n,
            cpus,
            mem,
            mask,
            mode,
            gpus_out,
        )
        if node >= 0:
            nodes_out[0] = node
            cpu_out[0] = cpus
            mem_out[0] = mem
            p_milli[j] = milli
            return 1
    elif single:
        node, slot = _select_node(
            free_full,
            gpu_free,
            cpu_free,
            mem_free,
            node_model,
            node_up,
            n,
            milli,
            cpus,
            mem,
            mask,
            mode,
        )
        if node >= 0:
            if n == 0:
                pass
            elif milli < MILLI:
                gpus_out[0] = node * gpu_free.shape[1] + slot
            else:
                _pick_full_gpus(gpu_free, node, n, gpus_out, 0)
            nodes_out[0] = node
            cpu_out[0] = cpus
            mem_out[0] = mem
            p_milli[j] = milli
            return 1
    if single and (not allow_split or n <= 1):
        return -1
    size = min(n, free_full.shape[0])
    k = _place_gang(
        free_full,
        gpu_free,
        cpu_free,
        mem_free,
        node_model,
        node_up,
        racks,
        rack_order,
        rack_start,
        n,
        cpus / n,
        mem / n,
        mask,
        gpus_out,
        tmp_nodes[:size],
        tmp_counts[:size],
    )
    if k < 0:
        return -1
    p_milli[j] = MILLI  # Placer._place_gang: whole GPUs
    for i in range(k):
        nodes_out[i] = tmp_nodes[i]
        if cls_int[c, C_NO_CPU] != 0:
            cpu_out[i] = 0.0
            mem_out[i] = 0.0
        else:
            share = tmp_counts[i] / n
            cpu_out[i] = cpus * share
            mem_out[i] = mem * share
    return k


@jit_inline
def _set_masks(gpus, nodes, masks, g_max):
    for e in range(nodes.shape[0]):
        masks[e] = np.uint64(0)
    e = 0
    for t in range(gpus.shape[0]):
        node = gpus[t] // g_max
        while nodes[e] != node:
            e += 1
        masks[e] |= np.uint64(1) << np.uint64(gpus[t] % g_max)


@jit_inline
def _from_masks(nodes, masks, g_max, out):
    """The GPU ids back from :func:`_set_masks`, in the same order; returns their count."""
    g = 0
    for e in range(nodes.shape[0]):
        m = masks[e]
        while m:
            out[g] = nodes[e] * g_max + _ctz(m)
            g += 1
            m &= m - np.uint64(1)
    return g


@jit_inline
def _take(
    gpus,
    nodes,
    cpus,
    mem,
    milli,
    sign,
    no_cpu,
    gpu_free,
    free_full,
    cpu_free,
    mem_free,
    buckets,
    reg,
):
    """``ClusterState.allocate`` (``sign=-1``) / ``release`` (``+1``) of a placement."""
    if no_cpu:
        reg[R_FREE] += _apply_gpus(gpu_free, free_full, buckets, gpus, milli, sign)
    else:
        reg[R_FREE] += _apply(
            gpu_free, free_full, cpu_free, mem_free, buckets, nodes, gpus, milli, cpus, mem, sign
        )
    reg[R_ALLOC] -= sign * milli * gpus.shape[0]
    reg[R_VERSION] += 1


@jit
def _replay(
    # trace, in arrival order (read only)
    submit,
    duration,
    class_of,
    queue_of,
    share_of,
    # demand classes
    cls_int,
    cls_float,
    cls_fits,
    c_jobs,
    c_start,
    # cluster state (changed in place)
    gpu_free,
    free_full,
    cpu_free,
    mem_free,
    buckets,
    node_model,
    node_up,
    racks,
    rack_order,
    rack_start,
    total_milli,
    # policy
    kind,
    mode,
    allow_split,
    starvation,
    # job columns (changed in place)
    status,
    start,
    end,
    run_start,
    last_update,
    gpu_seconds,
    run_seconds,
    work,
    # placements: node entries n_off[j] .. n_off[j] + p_nodes[j] of each started job
    n_off,
    p_milli,
    p_nodes,
    nodes_flat,
    masks_flat,
    cpu_flat,
    mem_flat,
    tmp_gpus,
    tmp_nodes,
    tmp_counts,
    # engine state
    reg,
    freg,
    h_time,
    h_prio,
    h_eid,
    h_kind,
    h_job,
    alloc_q,
    queued_q,
    c_ptr,
    c_active,
    c_listed,
    active,
    heads,
    timeline,
    q_alloc,
    q_queued,
    stops,
    until,
    interval,
    max_events,
):
    """Run events until none is left, ``until`` is reached or ``max_events`` more were run.

    Returns :data:`DONE`, :data:`UNTIL` or :data:`CHUNK`; every piece of state lives in the
    arrays, so a call after :data:`CHUNK` continues where the last one stopped.
    ``starvation < 0`` means no starvation guard (``starvation_timeout=None``).
    """
    n = submit.shape[0]
    g_max = gpu_free.shape[1]
    budget = reg[R_EVENTS] + max_events
    while reg[R_EVENTS] < budget:
        # --- the next event: the pending arrival or the heap's top, in (time, prio, id) order
        size = reg[R_HEAP]
        arrival = reg[R_ARR_EID] >= 0
        if arrival and size > 0:
            at = freg[F_ARR_KEY]
            if h_time[0] < at or (
                h_time[0] == at
                and (h_prio[0] < _PASS or (h_prio[0] == _PASS and h_eid[0] < reg[R_ARR_EID]))
            ):
                arrival = False
        if arrival:
            if freg[F_ARR_KEY] >= until:
                return UNTIL
            now = freg[F_ARR_KEY]
            freg[F_NOW] = now
            reg[R_ARR_EID] = -1
            reg[R_EVENTS] += 1
            # admit every row submitted by now, in trace order
            i = reg[R_NEXT]
            while i < n and submit[i] <= now:
                if status[i] == _FUTURE:
                    c = class_of[i]
                    if not cls_fits[c]:
                        status[i] = _UNSCHEDULABLE
                        reg[R_TERMINAL] += 1
                    else:
                        status[i] = _QUEUED
                        reg[R_QSIZE] += 1
                        queued_q[queue_of[i]] += 1
                        c_active[c] = True
                        if not c_listed[c]:
                            c_listed[c] = True
                            active[reg[R_ACTIVE]] = c
                            reg[R_ACTIVE] += 1
                i += 1
            reg[R_NEXT] = i
            if i < n and submit[i] < math.inf:
                at = submit[i]
                freg[F_ARRIVAL_AT] = at
                freg[F_ARR_KEY] = now + (at - now)
                reg[R_ARR_EID] = reg[R_EID]
                reg[R_EID] += 1
            else:
                freg[F_ARRIVAL_AT] = math.inf
            run_pass = True
        elif size > 0:
            if h_time[0] >= until:
                return UNTIL
            now = h_time[0]
            freg[F_NOW] = now
            ev_kind = h_kind[0]
            j = h_job[0]
            reg[R_HEAP] = _heap_pop(h_time, h_prio, h_eid, h_kind, h_job, size)
            reg[R_EVENTS] += 1
            if ev_kind == _PASS_EVENT:
                freg[F_PASS_AT] = math.nan
                run_pass = True
            else:
                # --- completion of job j (Simulation._complete)
                c = class_of[j]
                a = n_off[j]
                b = a + p_nodes[j]
                g = _from_masks(nodes_flat[a:b], masks_flat[a:b], g_max, tmp_gpus)
                _take(
                    tmp_gpus[:g],
                    nodes_flat[a:b],
                    cpu_flat[a:b],
                    mem_flat[a:b],
                    p_milli[j],
                    1,
                    cls_int[c, C_NO_CPU] != 0,
                    gpu_free,
                    free_full,
                    cpu_free,
                    mem_free,
                    buckets,
                    reg,
                )
                share = share_of[j]
                alloc_q[queue_of[j]] -= share
                ran = now - run_start[j]
                gpu_seconds[j] += share * ran
                run_seconds[j] += ran
                reg[R_RUNNING] -= 1
                stops[reg[R_STOPS]] = j
                reg[R_STOPS] += 1
                work[j] = duration[j]
                status[j] = _FINISHED
                end[j] = now
                reg[R_TERMINAL] += 1
                run_pass = False
                if reg[R_QSIZE] > 0:  # Simulation.request_pass
                    if not (freg[F_ARRIVAL_AT] == now or freg[F_PASS_AT] == now):
                        freg[F_PASS_AT] = now
                        reg[R_HEAP] = _heap_push(
                            h_time,
                            h_prio,
                            h_eid,
                            h_kind,
                            h_job,
                            reg[R_HEAP],
                            now + 0.0,
                            _PASS,
                            reg[R_EID],
                            _PASS_EVENT,
                            -1,
                        )
                        reg[R_EID] += 1
                else:
                    _sample(freg, reg, timeline, interval, q_alloc, q_queued, alloc_q, queued_q)
        else:
            return DONE
        if not run_pass:
            continue
        # --- the scheduling pass (Simulation._pass with the policy's schedule written out)
        if reg[R_QSIZE] > 0:
            reg[R_PASSES] += 1
            nheads = 0
            head = -1
            starving = False
            only_head = False
            tried = False
            if kind == GANG:
                head = _first(status, reg)
                if head >= 0:
                    if head != reg[R_HEAD]:
                        reg[R_HEAD] = head
                        freg[F_HEAD_SINCE] = now
                    if reg[R_QSIZE] == 1:  # nothing to skip or order: try the head alone
                        only_head = True
                    else:
                        starving = starvation >= 0 and now - freg[F_HEAD_SINCE] >= starvation
                        # PendingQueue.class_heads: the head of every class with queued jobs
                        kept = 0
                        for a in range(reg[R_ACTIVE]):
                            c = active[a]
                            h = -1
                            if c_active[c]:
                                h = _class_head(c, status, c_jobs, c_start, c_ptr, c_active)
                            if h >= 0:
                                active[kept] = c
                                kept += 1
                                nheads = _int_heap_push(heads, nheads, h)
                            else:
                                c_listed[c] = False
                        reg[R_ACTIVE] = kept
            while True:
                # the next job the policy tries
                if kind == FIFO:
                    j = _first(status, reg)
                    if j < 0:
                        break
                elif only_head:
                    if tried:
                        break
                    tried = True
                    j = head
                elif nheads > 0:
                    j, nheads = _int_heap_pop(heads, nheads)
                else:
                    break
                c = class_of[j]
                k = _place(
                    c,
                    cls_int,
                    cls_float,
                    gpu_free,
                    free_full,
                    cpu_free,
                    mem_free,
                    buckets,
                    node_model,
                    node_up,
                    racks,
                    rack_order,
                    rack_start,
                    reg,
                    total_milli,
                    mode,
                    allow_split,
                    tmp_gpus[: cls_int[c, C_GPUS]],
                    nodes_flat[n_off[j] : n_off[j + 1]],
                    cpu_flat[n_off[j] : n_off[j + 1]],
                    mem_flat[n_off[j] : n_off[j + 1]],
                    tmp_nodes,
                    tmp_counts,
                    p_milli,
                    j,
                )
                if k < 0:
                    if kind == FIFO or (starving and j == head):
                        break
                    continue
                # --- start job j (Simulation._start)
                p_nodes[j] = k
                a = n_off[j]
                b = a + k
                gpus = tmp_gpus[: cls_int[c, C_GPUS]]
                _set_masks(gpus, nodes_flat[a:b], masks_flat[a:b], g_max)
                _take(
                    gpus,
                    nodes_flat[a:b],
                    cpu_flat[a:b],
                    mem_flat[a:b],
                    p_milli[j],
                    -1,
                    cls_int[c, C_NO_CPU] != 0,
                    gpu_free,
                    free_full,
                    cpu_free,
                    mem_free,
                    buckets,
                    reg,
                )
                alloc_q[queue_of[j]] += share_of[j]
                status[j] = _RUNNING
                reg[R_QSIZE] -= 1
                queued_q[queue_of[j]] -= 1
                reg[R_RUNNING] += 1
                start[j] = now
                run_start[j] = now
                last_update[j] = now
                d = duration[j]
                if d != math.inf:  # as Simulation._start (a NaN duration ends at once)
                    reg[R_HEAP] = _heap_push(
                        h_time,
                        h_prio,
                        h_eid,
                        h_kind,
                        h_job,
                        reg[R_HEAP],
                        now + (d if d > 0.0 else 0.0),
                        _RELEASE,
                        reg[R_EID],
                        _COMPLETE,
                        j,
                    )
                    reg[R_EID] += 1
                if only_head:
                    break
                if kind == GANG:
                    if j == head:
                        head = _first(status, reg)
                        starving = False
                        if starvation >= 0 and head >= 0:  # GangPolicy._starving
                            if head != reg[R_HEAD]:
                                reg[R_HEAD] = head
                                freg[F_HEAD_SINCE] = now
                            starving = now - freg[F_HEAD_SINCE] >= starvation
                    nxt = _class_head(c, status, c_jobs, c_start, c_ptr, c_active)
                    if nxt >= 0:
                        nheads = _int_heap_push(heads, nheads, nxt)
        _sample(freg, reg, timeline, interval, q_alloc, q_queued, alloc_q, queued_q)
    return CHUNK


CHUNK_EVENTS = 1 << 16
"""Events per compiled call: between calls the driver checks for Ctrl-C and updates the bar."""


def _max_entries(n: int) -> int:
    """Most node entries (32 bytes each) the replay allocates for ``n`` jobs."""
    return 8 * n + (1 << 20)


def _initial_rows(n: int) -> int:
    """Timeline rows to allocate up front (about two per job; the buffer doubles if needed)."""
    return min(2 * n, 1 << 22)


def replay(sim, spec: dict, stop) -> bool:
    """Run ``sim`` (fresh, set up by ``Simulation.run``) in the compiled loop; see the module.

    Returns False, having changed nothing, when the run's placements would need too much
    memory here (the caller then runs the SimPy loop).
    """
    jobs, st, env = sim.jobs, sim.state, sim.env
    n = jobs.n
    placer = spec["placer"]
    kind = {"fifo": FIFO, "gang": GANG}[spec["kind"]]
    limit = spec.get("starvation_timeout")
    starvation = -1.0 if limit is None else float(limit)

    # demand classes: their jobs in arrival order, and what Placer.place needs of each
    ncls = jobs.num_classes
    c_jobs = np.argsort(jobs.demand_class, kind="stable").astype(np.int64)
    c_start = np.zeros(ncls + 1, dtype=np.int64)
    np.cumsum(np.bincount(jobs.demand_class, minlength=ncls), out=c_start[1:])
    cls_int = np.zeros((ncls, 6), dtype=np.int64)
    cls_float = np.zeros((ncls, 2))
    cls_fits = np.zeros(ncls, dtype=np.bool_)
    for c in range(ncls):
        num, milli, mask, cpus, mem, single, _, _, indexed = placer._info.get(
            c
        ) or placer._class_info(jobs, c)
        cls_int[c] = (num, milli, mask, single, indexed, cpus == 0 and mem == 0)
        cls_float[c] = (cpus, mem)
        fits = sim._class_fits[c]
        if fits < 0:  # as Simulation._admit decides it, with the engine's own placer
            fits = sim._class_fits[c] = int(sim._placer.fits_empty(jobs, int(c_jobs[c_start[c]])))
        cls_fits[c] = fits

    # where each job's placement is kept (a job starts at most once here): its node entries
    # (node, bitmask of GPU slots, CPU, memory), as many as its placement may use nodes
    num_nodes = st.free_full.shape[0]
    split = bool(placer.allow_split)
    slots = np.where(
        cls_fits,
        np.where(
            (cls_int[:, C_SINGLE] != 0) & ~(split & (cls_int[:, C_GPUS] > 1)),
            1,
            np.minimum(cls_int[:, C_GPUS], num_nodes),
        ),
        0,
    )
    slots = np.maximum(slots, cls_fits.astype(np.int64))
    n_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(slots[jobs.demand_class], out=n_off[1:])
    entries = int(n_off[-1])
    if entries > _max_entries(n):
        return False  # e.g. a million 512-GPU gangs on 64 nodes: the SimPy loop uses less memory
    nodes_flat = np.zeros(entries, dtype=np.int64)
    masks_flat = np.zeros(entries, dtype=np.uint64)
    cpu_flat = np.zeros(entries)
    mem_flat = np.zeros(entries)
    tmp_gpus = np.zeros(max(int(cls_int[cls_fits, C_GPUS].max(initial=0)), 1), dtype=np.int64)
    p_milli = np.zeros(n, dtype=np.int64)
    p_nodes = np.zeros(n, dtype=np.int64)
    tmp_nodes = np.zeros(num_nodes, dtype=np.int64)
    tmp_counts = np.zeros(num_nodes, dtype=np.int64)

    # engine state, as Simulation.run left it
    reg = np.zeros(NUM_R, dtype=np.int64)
    freg = np.zeros(NUM_F)
    if sim.until is not None:
        next(env._eid)  # the id Simulation._loop gives its `until` event
    reg[R_EID] = next(env._eid)
    reg[R_PASSES] = sim.passes
    reg[R_ALLOC] = st.allocated_milli
    reg[R_FREE] = st.free_gpu_total
    reg[R_VERSION] = st.version
    reg[R_TERMINAL] = sim._terminal
    reg[R_HEAD] = spec.get("head", -1)
    key = sim._arrival_key
    reg[R_ARR_EID] = -1 if key is None else key[2]
    freg[F_NOW] = env._now
    freg[F_ARR_KEY] = math.inf if key is None else key[0]
    freg[F_ARRIVAL_AT] = sim._arrival_at
    freg[F_PASS_AT] = math.nan
    freg[F_LAST_SAMPLE] = sim._last_sample
    freg[F_HEAD_SINCE] = spec.get("head_since", 0.0)
    h_time = np.zeros(n + 2)
    h_prio = np.zeros(n + 2, dtype=np.int64)
    h_eid = np.zeros(n + 2, dtype=np.int64)
    h_kind = np.zeros(n + 2, dtype=np.int64)
    h_job = np.zeros(n + 2, dtype=np.int64)
    alloc_q = np.array(sim._alloc_q, dtype=np.float64)
    queued_q = np.array(sim._queued_q, dtype=np.int64)
    c_ptr = c_start[:-1].copy()
    c_active = np.zeros(ncls, dtype=np.bool_)
    c_listed = np.zeros(ncls, dtype=np.bool_)
    active = np.zeros(max(ncls, 1), dtype=np.int64)
    heads = np.zeros(max(ncls, 1), dtype=np.int64)
    timeline = np.zeros(4 * (_initial_rows(n) + CHUNK_EVENTS + 1))
    nq = len(alloc_q)
    with_q = 1 < nq <= sim.max_queue_timeline  # per-queue rows, as Simulation._sample keeps
    q_alloc = np.zeros((timeline.shape[0] // 4 if with_q else 0, nq))
    q_queued = np.zeros((q_alloc.shape[0], nq), dtype=np.int64)
    stops = np.zeros(n, dtype=np.int64)
    until = math.inf if sim.until is None else float(sim.until)
    end_time = None if sim.until is None else env._now + (sim.until - env._now)  # as SimPy's
    interval = sim.timeline_interval

    code = CHUNK
    while code == CHUNK and not stop.requested:
        while timeline.shape[0] < 4 * (reg[R_ROWS] + CHUNK_EVENTS + 1):
            timeline = np.concatenate([timeline, np.zeros_like(timeline)])
            if with_q:
                q_alloc = np.concatenate([q_alloc, np.zeros_like(q_alloc)])
                q_queued = np.concatenate([q_queued, np.zeros_like(q_queued)])
        code = _replay(
            jobs.submit, jobs.duration, jobs.demand_class, jobs.queue, jobs.gpu_share,
            cls_int, cls_float, cls_fits, c_jobs, c_start,
            st.gpu_free, st.free_full, st.cpu_free, st.mem_free, st.buckets, st.node_model,
            st.node_up, st.racks, st.rack_order, st.rack_start, st.total_gpus * MILLI,
            kind, placer.mode, placer.allow_split, starvation,
            jobs.status, jobs.start, jobs.end, jobs.run_start, jobs.last_update,
            jobs.gpu_seconds, jobs.run_seconds, jobs.work,
            n_off, p_milli, p_nodes, nodes_flat, masks_flat, cpu_flat, mem_flat,
            tmp_gpus, tmp_nodes, tmp_counts,
            reg, freg, h_time, h_prio, h_eid, h_kind, h_job, alloc_q, queued_q,
            c_ptr, c_active, c_listed, active, heads, timeline, q_alloc, q_queued, stops,
            until, interval, CHUNK_EVENTS,
        )  # fmt: skip
        if sim._bar is not None:
            sim._bar.update(int(reg[R_TERMINAL]) - sim._bar.n)

    # hand the state back to the Simulation, as its own loop would have left it
    # SimPy's loop ends on its `until` event even when the jobs ran out before it
    if code != CHUNK and sim.until is not None:
        env._now = end_time
    elif reg[R_EVENTS] > 0:
        env._now = float(freg[F_NOW])
    env._eid = itertools.count(int(reg[R_EID]))
    st.free_gpu_total = int(reg[R_FREE])
    st.allocated_milli = int(reg[R_ALLOC])
    st.version = int(reg[R_VERSION])
    sim.passes = int(reg[R_PASSES])
    sim._terminal = int(reg[R_TERMINAL])
    sim._next_arrival = int(reg[R_NEXT])
    sim._arrival_at = float(freg[F_ARRIVAL_AT])
    sim._arrival_key = (
        None if reg[R_ARR_EID] < 0 else (float(freg[F_ARR_KEY]), 2, int(reg[R_ARR_EID]))
    )
    sim._last_sample = float(freg[F_LAST_SAMPLE])
    sim._alloc_q = alloc_q.tolist()
    sim._queued_q = queued_q.tolist()
    sim.stops.frombytes(stops[: reg[R_STOPS]].tobytes())
    sim._timeline.frombytes(timeline[: 4 * reg[R_ROWS]].tobytes())
    if with_q and reg[R_ROWS] > 0:
        rows = int(reg[R_ROWS])
        sim._queue_arrays = (timeline[0 : 4 * rows : 4].copy(), q_alloc[:rows], q_queued[:rows])
    if "finish" in spec:
        spec["finish"](int(reg[R_HEAD]), float(freg[F_HEAD_SINCE]))
    jobs.set_flat_nodes(n_off[:-1], p_nodes, nodes_flat)
    sim._unstarted = np.isnan(jobs.start).tolist()
    queue = sim.queue
    queue._size = 0
    for j in np.flatnonzero(jobs.status == Status.QUEUED).tolist():
        queue.push(j)
    g_max = st.gpu_free.shape[1]
    for j in np.flatnonzero(jobs.status == Status.RUNNING).tolist():
        sim.running.add(j)
        k = int(p_nodes[j])
        a = int(n_off[j])
        c = jobs.class_of[j]
        if cls_int[c, C_NO_CPU]:
            cpus = mem = st.zeros(k)
        else:
            cpus, mem = cpu_flat[a : a + k].copy(), mem_flat[a : a + k].copy()
        gpus = np.zeros(int(jobs.num_gpus[j]), dtype=np.int64)
        _from_masks(nodes_flat[a : a + k], masks_flat[a : a + k], g_max, gpus)
        jobs.placements[j] = Placement(
            nodes_flat[a : a + k].copy(),
            gpus,
            int(p_milli[j]),
            cpus,
            mem,
        )
    return True
