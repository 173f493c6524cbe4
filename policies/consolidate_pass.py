"""The compiled pass of :class:`~policies.consolidate.ConsolidatePolicy`.

The queue is walked by the gang pass (:func:`policies.gang.gang_walk`, no starvation guard);
jobs that do not fit are remembered. At a consolidation time, each of them in arrival order
gets the reference's plan search (:meth:`ConsolidatePolicy._best_plan`): for every candidate
target (a node, or the freest nodes for a gang larger than a node) evict the target's movable
jobs, largest first, until the job fits there, re-place them outside the target, keep the plan
moving the fewest GPUs (then jobs). The reference copies the whole cluster into a what-if state
for every target; here two what-if states are kept for the whole consolidation and only the
target's nodes and the nodes the moved jobs land on are touched and restored (copied back from
the live cluster, so no rounding accumulates):

* ``sa`` sees only the target's nodes (``node_up`` off elsewhere): evictions and the job's fit;
* ``sb`` sees everything but the target: where the evicted jobs go.

A target is skipped without a plan when it cannot hold the job even with its first
``max_migrations`` movable jobs gone (a down node, a node of the wrong GPU model, or fewer GPUs
than the job needs by count): the plan would fail there too.

Cost per consolidation: ``O(R log R)`` to bucket the ``R`` running single-node jobs by node,
then per waiting job ``O(N)`` targets, each ``O(1)`` when skipped and otherwise ``O(moves)``
placements; the what-if states are copied once per consolidation and per plan carried out.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from policies.gang import gang_walk
from policies.whatif import give, place_on
from simulator.core.bits import bit_next
from simulator.core.cluster import MILLI
from simulator.core.hooks import PASS_DONE
from simulator.core.jit import jit
from simulator.core.jobs import Status
from simulator.core.kernels import copy_free, min_node, take
from simulator.core.ops import migrate, place_job, start, wake_at

__all__ = ["ConsolidatePass", "new_consolidate_pass"]

_QUEUED = Status.QUEUED


@jit
def _place(es, ps, j):
    """The walk's placement: the shared placer; a job that does not fit is remembered."""
    k = place_job(es, j, ps.walk.mode, ps.walk.allow_split, True)
    if k < 0:
        n = ps.nblocked[0]
        ps.blocked[n] = j
        ps.nblocked[0] = n + 1
    return k


@jit
def _nothing(es, ps, j):
    return 0


@jit
def _buckets(es, ps):
    """Running single-node jobs per node, in eviction order (share, start, job: see below)."""
    ja = es.jobs
    num = ps.bstart.shape[0] - 1
    count = ps.bfill
    count[:] = 0
    run = es.q.running
    v = bit_next(run, 0)
    while v >= 0:
        if ja.p_nodes[v] == 1:
            count[ja.p_node[ja.node_off[v]]] += 1
        v = bit_next(run, v + 1)
    ps.bstart[0] = 0
    for i in range(num):
        ps.bstart[i + 1] = ps.bstart[i] + count[i]
        count[i] = ps.bstart[i]
    v = bit_next(run, 0)
    while v >= 0:
        if ja.p_nodes[v] == 1:
            i = ja.p_node[ja.node_off[v]]
            ps.blist[count[i]] = v
            count[i] += 1
        v = bit_next(run, v + 1)
    for i in range(num):
        a, b = ps.bstart[i], ps.bstart[i + 1]
        if b - a > 1:
            _eviction_order(es, ps, ps.blist[a:b])


@jit
def _eviction_order(es, ps, jobs):
    """Sort ``jobs`` in place by ``(-GPU share, -start, job)`` (``ConsolidatePolicy._movable``)."""
    ja = es.jobs
    order = np.argsort(jobs, kind="mergesort")
    seg = jobs[order]
    order = np.argsort(-ja.run_start[seg], kind="mergesort")
    seg = seg[order]
    order = np.argsort(-ja.share[seg], kind="mergesort")
    seg = seg[order]
    for x in range(seg.shape[0]):
        jobs[x] = seg[x]


@jit
def _restore(es, ps, x):
    """Node ``x`` of both what-if states back to the live cluster (``sa`` keeps it unseen)."""
    min_node(ps.sa, es.cl, es.cl, x)
    ps.sa.node_up[x] = False
    min_node(ps.sb, es.cl, es.cl, x)


@jit
def _touch(ps, x):
    if ps.touched_at[x] != ps.ntouched[1]:
        ps.touched_at[x] = ps.ntouched[1]
        ps.touched[ps.ntouched[0]] = x
        ps.ntouched[0] += 1


@jit
def _plan(es, ps, j, target, nt):
    """``ConsolidatePolicy._plan`` for the nodes ``target[:nt]``: moves into ``ps.cur_*``.

    Returns the number of moves (> 0), or -1 when there is no plan. The what-if states are
    restored before returning.
    """
    ja = es.jobs
    sa, sb, buf = ps.sa, ps.sb, ps.sbuf
    ps.ntouched[0] = 0
    ps.ntouched[1] += 1
    for t in range(nt):
        x = target[t]
        sa.node_up[x] = es.cl.node_up[x]
        sb.node_up[x] = False
        _touch(ps, x)
    # movable jobs of the target, in eviction order
    m = 0
    for t in range(nt):
        x = target[t]
        for y in range(ps.bstart[x], ps.bstart[x + 1]):
            ps.movable[m] = ps.blist[y]
            m += 1
    if nt > 1 and m > 1:
        _eviction_order(es, ps, ps.movable[:m])
    moves = -1
    k = place_on(es, sa, j, ps.walk.mode, ps.walk.allow_split, buf)
    if k < 0:  # it does not fit already
        evicted = 0
        for y in range(m):
            if evicted == ps.max_migrations:
                break
            v = ps.movable[y]
            give(es, sa, v, 1)
            give(es, sb, v, 1)
            ps.cur_job[evicted] = v
            evicted += 1
            k = place_on(es, sa, j, ps.walk.mode, ps.walk.allow_split, buf)
            if k >= 0:
                break
        if k >= 0:
            _save(
                ps.cur_p_nodes,
                ps.cur_p_gpus,
                ps.cur_p_cpu,
                ps.cur_p_mem,
                ps.cur_pk,
                0,
                buf,
                k,
                ja.num_gpus[j],
            )
            moves = evicted
            for x in range(evicted):
                v = ps.cur_job[x]
                q = place_on(es, sb, v, ps.walk.mode, ps.walk.allow_split, buf)
                if q < 0:
                    moves = -1
                    break
                n = ja.num_gpus[v]
                take(
                    sb,
                    buf.nodes[:q],
                    buf.gpus[:n],
                    ja.milli[v] if n > 0 else 0,
                    buf.cpu[:q],
                    buf.mem[:q],
                    -1,
                )
                for y in range(q):
                    _touch(ps, buf.nodes[y])
                _save(ps.cur_nodes, ps.cur_gpus, ps.cur_cpu, ps.cur_mem, ps.cur_k, x, buf, q, n)
    for y in range(ps.ntouched[0]):
        _restore(es, ps, ps.touched[y])
    return moves


@jit
def _save(nodes, gpus, cpu, mem, ks, row, buf, k, n):
    for y in range(k):
        nodes[row, y] = buf.nodes[y]
        cpu[row, y] = buf.cpu[y]
        mem[row, y] = buf.mem[y]
    for y in range(n):
        gpus[row, y] = buf.gpus[y]
    ks[row] = k


@jit
def _keep(ps, moves):
    """The current plan becomes the best one."""
    ps.best[0] = moves
    for x in range(moves):
        ps.best_job[x] = ps.cur_job[x]
        ps.best_k[x] = ps.cur_k[x]
        ps.best_nodes[x, :] = ps.cur_nodes[x, :]
        ps.best_gpus[x, :] = ps.cur_gpus[x, :]
        ps.best_cpu[x, :] = ps.cur_cpu[x, :]
        ps.best_mem[x, :] = ps.cur_mem[x, :]
    ps.best_pk[0] = ps.cur_pk[0]
    ps.best_p_nodes[0, :] = ps.cur_p_nodes[0, :]
    ps.best_p_gpus[0, :] = ps.cur_p_gpus[0, :]
    ps.best_p_cpu[0, :] = ps.cur_p_cpu[0, :]
    ps.best_p_mem[0, :] = ps.cur_p_mem[0, :]


@jit
def _load(es, nodes, gpus, cpu, mem, row, k, n):
    buf = es.buf
    for y in range(k):
        buf.nodes[y] = nodes[row, y]
        buf.cpu[y] = cpu[row, y]
        buf.mem[y] = mem[row, y]
    for y in range(n):
        buf.gpus[y] = gpus[row, y]


@jit
def _hopeless(es, ps, j, x):
    """Node ``x`` cannot hold ``j`` even without its first movable jobs (a sure failure)."""
    cl, ja = es.cl, es.jobs
    if not cl.node_up[x]:
        return True
    n = ja.num_gpus[j]
    if n == 0 or ja.milli[j] < MILLI:
        return False
    mask = ja.type_mask[j]
    model = cl.node_model[x]
    if mask != 0 and (model < 0 or mask < 0 or ((mask >> model) & 1) == 0):
        return True
    whole = cl.free_full[x]
    a, b = ps.bstart[x], ps.bstart[x + 1]
    for y in range(a, min(b, a + ps.max_migrations)):
        whole += ja.num_gpus[ps.blist[y]]
    return whole < n


@jit
def _best_plan(es, ps, j):
    """``ConsolidatePolicy._best_plan``: the cheapest plan over the targets (``ps.best``)."""
    cl, ja = es.cl, es.jobs
    n = ja.num_gpus[j]
    num = cl.capacity.shape[0]
    ps.best[0] = -1
    target = ps.target
    if n <= ps.node_cap[ja.cls[j]]:  # every node with the capacity
        for x in range(num):
            if cl.capacity[x] < n or _hopeless(es, ps, j, x):
                continue
            target[0] = x
            moves = _plan(es, ps, j, target, 1)
            if moves > 0:
                _cost_and_keep(es, ps, moves)
        return
    order = np.argsort(-cl.free_full.astype(np.int64), kind="mergesort")  # ties: lower id
    cap = np.cumsum(cl.capacity[order].astype(np.int64))
    k = np.searchsorted(cap, n) + 1
    if k > num:
        return
    chosen = np.sort(order[:k])
    for t in range(k):
        target[t] = chosen[t]
    moves = _plan(es, ps, j, target, k)
    if moves > 0:
        _cost_and_keep(es, ps, moves)


@jit
def _cost_and_keep(es, ps, moves):
    """Keep the current plan if it moves fewer GPUs (then fewer jobs) than the best so far."""
    share = 0.0
    for x in range(moves):
        share += es.jobs.share[ps.cur_job[x]]
    if (
        ps.best[0] < 0
        or share < ps.best_cost[0]
        or (share == ps.best_cost[0] and moves < ps.best[0])
    ):
        ps.best_cost[0] = share
        _keep(ps, moves)


@jit
def _consolidate_pass(es, fs, ps):
    """:meth:`ConsolidatePolicy.schedule`, compiled (see the module docstring)."""
    ps.nblocked[0] = 0
    code = gang_walk(es, fs, ps, ps.walk)
    if code != PASS_DONE:
        return code
    nb = ps.nblocked[0]
    if nb == 0:
        return PASS_DONE
    now = es.c[0].now
    x = now / ps.interval
    r = float(round(x))
    if now > 0 and abs(x - r) <= 1e-9 * max(abs(x), abs(r)):  # math.isclose
        ja = es.jobs
        fresh = True
        for b in range(nb):
            j = ps.blocked[b]
            if ja.status[j] != _QUEUED:
                continue
            if fresh:  # the what-if states and buckets follow the live cluster
                copy_free(ps.sa, es.cl)
                ps.sa.node_up[:] = False
                copy_free(ps.sb, es.cl)
                _buckets(es, ps)
                fresh = False
            _best_plan(es, ps, j)
            moves = ps.best[0]
            if moves <= 0:
                continue
            for y in range(moves):
                v = ps.best_job[y]
                nv = ja.num_gpus[v]
                _load(
                    es, ps.best_nodes, ps.best_gpus, ps.best_cpu, ps.best_mem, y, ps.best_k[y], nv
                )
                code = migrate(es, fs, v, ps.best_k[y])
                if code != 0:
                    return code
            _load(
                es,
                ps.best_p_nodes,
                ps.best_p_gpus,
                ps.best_p_cpu,
                ps.best_p_mem,
                0,
                ps.best_pk[0],
                ja.num_gpus[j],
            )
            code = start(es, fs, j, ps.best_pk[0])
            if code != 0:
                return code
            fresh = True
    if es.c[0].queued > 0:
        code = wake_at(es, (np.floor(now / ps.interval + 1e-9) + 1) * ps.interval)
        if code != 0:
            return code
    return PASS_DONE


class ConsolidatePass(NamedTuple):
    """Compiled state of :class:`~policies.consolidate.ConsolidatePolicy`."""

    walk: object  # the gang walk's state (GangPass: placer settings, no starvation guard)
    interval: float
    max_migrations: int
    node_cap: np.ndarray  # int64[classes]: largest node of the class's GPU models, GPUs
    blocked: np.ndarray  # int64[jobs]: jobs of this pass that did not fit
    nblocked: np.ndarray  # int64[1]
    bstart: np.ndarray  # int64[nodes+1]: running single-node jobs of node x: blist[a:b]
    bfill: np.ndarray  # int64[nodes]
    blist: np.ndarray  # int64[jobs]
    movable: np.ndarray  # int64[jobs]: the target's movable jobs
    target: np.ndarray  # int64[nodes]
    touched: np.ndarray  # int64[nodes]: nodes a plan changed in the what-if states
    touched_at: np.ndarray  # int64[nodes]: plan that last touched the node
    ntouched: np.ndarray  # int64[2]: touched count, plan number
    cur_job: np.ndarray  # int64[M]: the plan being made: moved jobs
    cur_k: np.ndarray  # int64[M]: ... nodes of each new placement
    cur_nodes: np.ndarray  # int64[M, G]
    cur_gpus: np.ndarray  # int64[M, G]
    cur_cpu: np.ndarray  # float64[M, G]
    cur_mem: np.ndarray  # float64[M, G]
    cur_pk: np.ndarray  # int64[1]: nodes of the waiting job's placement
    cur_p_nodes: np.ndarray  # int64[1, nodes]
    cur_p_gpus: np.ndarray  # int64[1, gpus]
    cur_p_cpu: np.ndarray  # float64[1, nodes]
    cur_p_mem: np.ndarray  # float64[1, nodes]
    best: np.ndarray  # int64[1]: moves of the best plan (-1 = none)
    best_cost: np.ndarray  # float64[1]: GPUs it moves
    best_job: np.ndarray
    best_k: np.ndarray
    best_nodes: np.ndarray
    best_gpus: np.ndarray
    best_cpu: np.ndarray
    best_mem: np.ndarray
    best_pk: np.ndarray
    best_p_nodes: np.ndarray
    best_p_gpus: np.ndarray
    best_p_cpu: np.ndarray
    best_p_mem: np.ndarray
    sa: object  # what-if cluster seeing only the target
    sb: object  # what-if cluster seeing all but the target
    sbuf: object  # placement buffer of the what-if placements

    kernel = _consolidate_pass
    place = _place
    started = _nothing


def new_consolidate_pass(gang, *, interval, max_migrations, node_cap, num_jobs, at, out):
    """A :class:`ConsolidatePass`; ``at``, ``out``: two :class:`~policies.whatif.Scratch`."""
    num, g = at.state.gpu_free.shape
    m = int(max_migrations)
    n = max(int(num_jobs), 1)

    def plan_arrays(rows, cols):
        return (
            np.zeros(rows, dtype=np.int64),
            np.zeros((rows, cols), dtype=np.int64),
            np.zeros((rows, cols), dtype=np.int64),
            np.zeros((rows, cols)),
            np.zeros((rows, cols)),
        )

    def p_arrays():
        return (
            np.zeros(1, dtype=np.int64),
            np.zeros((1, num), dtype=np.int64),
            np.zeros((1, num * g), dtype=np.int64),
            np.zeros((1, num)),
            np.zeros((1, num)),
        )

    cur_k, cur_nodes, cur_gpus, cur_cpu, cur_mem = plan_arrays(m, g)
    best_k, best_nodes, best_gpus, best_cpu, best_mem = plan_arrays(m, g)
    return ConsolidatePass(
        gang,
        float(interval),
        m,
        np.asarray(node_cap, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.zeros(num + 1, dtype=np.int64),
        np.zeros(num, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(num, dtype=np.int64),
        np.zeros(num, dtype=np.int64),
        np.full(num, -1, dtype=np.int64),
        np.zeros(2, dtype=np.int64),
        np.zeros(m, dtype=np.int64),
        cur_k,
        cur_nodes,
        cur_gpus,
        cur_cpu,
        cur_mem,
        *p_arrays(),
        np.full(1, -1, dtype=np.int64),
        np.zeros(1),
        np.zeros(m, dtype=np.int64),
        best_k,
        best_nodes,
        best_gpus,
        best_cpu,
        best_mem,
        *p_arrays(),
        at.ref,
        out.ref,
        at.buf,
    )
