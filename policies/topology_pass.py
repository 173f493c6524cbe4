"""The compiled pass of :class:`~policies.topology.TopologyPolicy`.

The queue is walked by the gang pass (:func:`policies.gang.gang_walk`); only placement
differs: :func:`_domain_place` is ``_DomainPlacer.place`` of :mod:`policies.topology` (the
Python reference), with the same levels, bounded wait and rack choices, on the live cluster.
After the walk, jobs whose required level can never hold them are rejected, latest first, as
the reference does.

Cost per pass: the gang walk's (``O(classes with waiting jobs)`` placements); a placement
inside a leaf or across the spine is ``O(nodes)`` (usable GPUs per node, then a fewest-node
choice per rack).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from policies.gang import gang_walk
from simulator.core.cluster import MILLI
from simulator.core.hooks import PASS_DONE
from simulator.core.jit import jit
from simulator.core.jobs import Status
from simulator.core.kernels import (
    _candidate,
    _pick_full_gpus,
    _select_gang,
    _usable_gpus,
    place_pods_in,
)
from simulator.core.ops import place_job, reject, wake_at

__all__ = ["TopologyPass", "new_topology_pass"]

NODE, LEAF, SPINE = 0, 1, 2  # as policies.topology
_QUEUED = Status.QUEUED


@jit
def _best_rack(usable, cl, n, counts):
    """``policies.topology._best_rack``: the rack holding ``n`` on the fewest nodes, tightest."""
    order, start = cl.rack_order, cl.rack_start
    dummy = np.zeros(0, dtype=np.int64)
    best, best_k, best_left = -1, 0, 0
    for r in range(start.shape[0] - 1):
        members = order[start[r] : start[r + 1]]
        total = 0
        for i in members:
            total += usable[i]
        if total < n:
            continue
        k, left = _candidate(usable, members, n, dummy, False)
        if k > 0 and (best < 0 or k < best_k or (k == best_k and left < best_left)):
            best, best_k, best_left = r, k, left
    if best >= 0:
        _candidate(usable, order[start[best] : start[best + 1]], n, counts, True)
    return best


@jit
def _fewest_racks(usable, cl, n, counts):
    """``policies.topology._fewest_racks``: ``n`` GPUs on the fewest racks, most free first."""
    order, start = cl.rack_order, cl.rack_start
    n_racks = start.shape[0] - 1
    free = np.zeros(n_racks, dtype=np.int64)
    for i in range(usable.shape[0]):
        free[cl.racks[i]] += usable[i]
    by_free = np.argsort(-free, kind="mergesort")
    used = np.searchsorted(np.cumsum(free[by_free]), n) + 1
    if used > n_racks:
        return 0
    size = 0
    for u in range(used):
        r = by_free[u]
        size += start[r + 1] - start[r]
    members = np.empty(size, dtype=np.int64)
    at = 0
    for u in range(used):
        r = by_free[u]
        for i in order[start[r] : start[r + 1]]:
            members[at] = i
            at += 1
    _candidate(usable, np.sort(members), n, counts, True)
    return used


@jit
def _in_level(es, ps, j, n, level, whole):
    """``_DomainPlacer._in_level``: a placement inside one domain of ``level`` into ``es.buf``."""
    k = es.jobs.cls[j]
    pods = es.cls.pods[k]
    if pods > 1:
        cls = es.cls
        return place_pods_in(
            es.cl, n, cls.mask[k], cls.cpus[k], cls.mem[k], pods, ps.walk.mode, level, whole, es.buf
        )
    if level == NODE:
        return place_job(es, j, ps.walk.mode, ps.walk.allow_split, ps.walk.indexed)
    cl, ja, buf = es.cl, es.jobs, es.buf
    cpus, mem = ja.cpus[j], ja.mem[j]
    usable = ps.usable
    _usable_gpus(
        cl.free_full,
        cl.cpu_free,
        cl.mem_free,
        cl.node_model,
        cl.node_up,
        cpus / n,
        mem / n,
        ja.type_mask[j],
        usable,
    )
    total = 0
    for i in range(usable.shape[0]):
        if whole and cl.free_full[i] < cl.capacity[i]:
            usable[i] = 0
        total += usable[i]
    if total < n:
        return -1
    counts = ps.counts
    counts[:] = 0
    if level == LEAF:
        found = _best_rack(usable, cl, n, counts) >= 0
    elif whole:
        found = _fewest_racks(usable, cl, n, counts) > 0
    else:  # partly used nodes: the fewest nodes (gang's rule)
        counts = _select_gang(usable, cl.racks, cl.rack_order, cl.rack_start, n)
        found = False
        for i in range(counts.shape[0]):
            if counts[i] > 0:
                found = True
                break
    if not found:
        return -1
    m = 0
    at = 0
    for i in range(counts.shape[0]):
        if counts[i] > 0:
            buf.nodes[m] = i
            at += _pick_full_gpus(cl.gpu_free, i, counts[i], buf.gpus, at)
            share = counts[i] / n
            buf.cpu[m] = cpus * share
            buf.mem[m] = mem * share
            m += 1
    return m


@jit
def _after_wait(es, ps, j, m):
    """``TopologyPolicy.after_wait``: ``m`` once ``j`` has waited ``max_wait``, else -1."""
    if ps.max_wait < 0.0:
        return -1
    now = es.c[0].now
    since = ps.held[j]
    if math.isnan(since):
        since = now
        ps.held[j] = now
    if now - since >= ps.max_wait:
        return m
    wake_at(es, since + ps.max_wait)
    return -1


@jit
def _domain_place(es, ps, j):
    """``_DomainPlacer.place``: ``j`` in the smallest domain its levels allow (nodes or -1)."""
    ja = es.jobs
    n = ja.num_gpus[j]
    if n == 0 or ja.milli[j] < MILLI:
        return place_job(es, j, ps.walk.mode, ps.walk.allow_split, ps.walk.indexed)
    k = ja.cls[j]
    node_cap, rack_cap = ps.node_cap[k], ps.rack_cap[k]
    lowest = NODE if n <= node_cap else LEAF if n <= rack_cap else SPINE
    required, preferred = ps.required[j], ps.preferred[j]  # TopologyPolicy.levels
    if required < 0 and preferred < 0:
        if ps.default_required:
            required = lowest
        preferred = lowest
    if required < 0:
        required = SPINE
    if preferred < 0:
        preferred = required
    if n <= node_cap and es.cls.pods[k] <= 1 and not ps.split:
        required = min(required, NODE)
    if required < lowest:
        c = ps.nimpossible[0]
        ps.impossible[c] = j
        ps.nimpossible[0] = c + 1
        return -1
    target = max(lowest, min(preferred, required))
    whole = ps.whole_nodes and n > node_cap
    for level in range(lowest, target + 1):  # good enough to start now
        m = _in_level(es, ps, j, n, level, whole)
        if m >= 0:
            return m
    if whole:  # whole nodes further out first, after the bounded wait
        for level in range(target + 1, required + 1):
            m = _in_level(es, ps, j, n, level, True)
            if m >= 0:
                return _after_wait(es, ps, j, m)
    for level in range(lowest if whole else target + 1, required + 1):
        m = _in_level(es, ps, j, n, level, False)
        if m >= 0:
            return _after_wait(es, ps, j, m)
    return -1


@jit
def _started(es, ps, j):
    ps.held[j] = np.nan  # a requeued job waits afresh
    return 0


@jit
def _topology_pass(es, fs, ps):
    """:meth:`TopologyPolicy.schedule`, compiled: the gang walk, then the rejections."""
    code = gang_walk(es, fs, ps, ps.walk)
    if code != PASS_DONE:
        return code
    status = es.jobs.status
    while ps.nimpossible[0] > 0:
        c = ps.nimpossible[0] - 1
        ps.nimpossible[0] = c
        j = ps.impossible[c]
        if status[j] == _QUEUED:
            code = reject(es, j, ps.reason)
            if code != 0:
                return code
    return PASS_DONE


class TopologyPass(NamedTuple):
    """Compiled state of :class:`~policies.topology.TopologyPolicy`."""

    walk: object  # the gang walk's state (GangPass: base placer settings, starvation clock)
    node_cap: np.ndarray  # int64[classes]: largest node of the class's GPU models, GPUs
    rack_cap: np.ndarray  # int64[classes]: largest rack of them, GPUs
    required: np.ndarray  # int64[n]: hard level of each job (-1 = none)
    preferred: np.ndarray  # int64[n]: soft level of each job (-1 = none)
    default_required: bool
    split: bool
    whole_nodes: bool
    max_wait: float  # s (< 0 = None: wait forever)
    held: np.ndarray  # float64[n]: since when the job waits for a compact domain (NaN = not)
    impossible: np.ndarray  # int64[n]: jobs found impossible in this pass, in order
    nimpossible: np.ndarray  # int64[1]
    reason: int  # reject reason code of "topology"
    usable: np.ndarray  # int64[nodes]: work space
    counts: np.ndarray  # int64[nodes]: work space

    kernel = _topology_pass
    place = _domain_place
    started = _started


def new_topology_pass(
    gang,
    *,
    node_cap,
    rack_cap,
    required,
    preferred,
    default_required,
    split,
    whole_nodes,
    max_wait,
    held,
    reason,
    num_nodes,
) -> TopologyPass:
    """A :class:`TopologyPass` from the gang state ``gang`` and the policy's settings."""
    n = len(required)
    return TopologyPass(
        gang,
        np.asarray(node_cap, dtype=np.int64),
        np.asarray(rack_cap, dtype=np.int64),
        np.asarray(required, dtype=np.int64),
        np.asarray(preferred, dtype=np.int64),
        bool(default_required),
        bool(split),
        bool(whole_nodes),
        -1.0 if max_wait is None else float(max_wait),
        np.array(held, dtype=np.float64),
        np.zeros(max(n, 1), dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        int(reason),
        np.zeros(max(num_nodes, 1), dtype=np.int64),
        np.zeros(max(num_nodes, 1), dtype=np.int64),
    )
