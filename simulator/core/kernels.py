"""Compiled placement core: pure Numba kernels over NumPy arrays.

Every kernel ``_name`` is a jitted function over arrays and scalars only (no objects, no pandas).
Its public twin ``name`` checks shapes and dtypes and then calls it. Numba options and the
on-disk cache are set once, in :mod:`simulator.core.jit`.

:func:`place_into` is the placement rule every policy uses (one implementation, called by the
compiled policy passes and, through :class:`~simulator.core.placement.Placer`, by Python ones);
:func:`take` allocates and releases a placement and keeps the cluster's books.

Cluster state arrays (see :class:`simulator.core.cluster.ClusterState`):
``free_full int32[N]`` whole free GPUs per node, ``gpu_free int32[N, G]`` free milli-GPU per GPU
slot (-1 = no such GPU), ``cpu_free``/``mem_free float64[N]``, ``node_model int32[N]``,
``node_up bool[N]``, ``racks int32[N]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.core.bits import _ctz
from simulator.core.jit import JIT_OPTIONS, jit, jit_inline

__all__ = [
    "JIT_OPTIONS",
    "PlaceBuf",
    "new_buf",
    "take",
    "place_into",
    "place_pods_in",
    "fits_empty",
    "fits_on_nodes",
    "max_node_gpus",
    "copy_free",
    "min_node",
    "min_free",
    "BEST_FIT",
    "SPREAD",
    "FIRST_FIT",
    "SCORING_MODES",
    "feasible_mask",
    "select_node",
    "usable_gpus",
    "select_gang",
    "pick_full_gpus",
    "build_buckets",
    "select_full_indexed",
    "rack_index",
    "ALLOC_MESSAGES",
]


BEST_FIT = 0
"""Choose the feasible node that is left with the fewest free resources (bin packing)."""
SPREAD = 1
"""Choose the feasible node left with the most free resources (worst fit / load spreading)."""
FIRST_FIT = 2
"""Choose the lowest-numbered feasible node."""
SCORING_MODES = {
    "bestfit": BEST_FIT,
    "binpack": BEST_FIT,
    "spread": SPREAD,
    "worstfit": SPREAD,
    "firstfit": FIRST_FIT,
}

_EPS = 1e-9
MILLI = 1000


@jit_inline
def _type_ok(model: int, mask: int) -> bool:
    if mask == 0:
        return True
    if model < 0 or mask < 0:
        return False
    return ((mask >> model) & 1) == 1


@jit_inline
def _node_ok(up, cpu_free, mem_free, model, cpus, mem, type_mask):
    """Node-level feasibility from scalars (helpers take no arrays: see below)."""
    if not up:
        return False
    if cpu_free + _EPS < cpus or mem_free + _EPS < mem:
        return False
    return _type_ok(model, type_mask)


# Hot loops call helpers with scalars only, and loop over GPU slots inline: an array passed to
# a helper function is reference-counted on every call, which measured 20 ns per call here, 40x
# the work of the helper itself.


@jit
def _feasible_mask(
    free_full,
    gpu_free,
    cpu_free,
    mem_free,
    node_model,
    node_up,
    n_gpus,
    milli,
    cpus,
    mem,
    type_mask,
    out,
):
    for i in range(free_full.shape[0]):
        ok = _node_ok(node_up[i], cpu_free[i], mem_free[i], node_model[i], cpus, mem, type_mask)
        if ok and n_gpus > 0:
            if milli >= MILLI:
                ok = free_full[i] >= n_gpus
            else:
                ok = False
                for g in range(gpu_free.shape[1]):
                    if gpu_free[i, g] >= milli:
                        ok = True
        out[i] = ok
    return out


@jit
def _select_node(
    free_full,
    gpu_free,
    cpu_free,
    mem_free,
    node_model,
    node_up,
    n_gpus,
    milli,
    cpus,
    mem,
    type_mask,
    mode,
):
    """Best node for a single-node job under ``mode``; returns (node, gpu slot or -1)."""
    best = -1
    best_gpu = -1
    best_score = 0.0
    spread = mode == SPREAD
    for i in range(free_full.shape[0]):
        if not _node_ok(node_up[i], cpu_free[i], mem_free[i], node_model[i], cpus, mem, type_mask):
            continue
        gpu = -1
        if n_gpus == 0:
            left = cpu_free[i] - cpus
            score = left if left < 1e300 else 0.0
        elif milli >= MILLI:
            if free_full[i] < n_gpus:
                continue
            score = float(free_full[i] - n_gpus)
        else:
            # the slot with room for ``milli`` and the least (best-fit) or most (spread) left
            room = 0
            for g in range(gpu_free.shape[1]):
                left = gpu_free[i, g] - milli
                if left < 0:
                    continue
                if gpu < 0 or (spread and left > room) or (not spread and left < room):
                    gpu = g
                    room = left
            if gpu < 0:
                continue
            score = float(room)
        if mode == FIRST_FIT:
            return i, gpu
        if best < 0 or (spread and score > best_score) or (not spread and score < best_score):
            best = i
            best_gpu = gpu
            best_score = score
    return best, best_gpu


@jit
def _usable_gpus(
    free_full, cpu_free, mem_free, node_model, node_up, cpu_per_gpu, mem_per_gpu, type_mask, out
):
    for i in range(free_full.shape[0]):
        u = 0
        if node_up[i] and _type_ok(node_model[i], type_mask):
            u = free_full[i]
            # inf = dimension not modelled on this node
            if cpu_per_gpu > 0 and cpu_free[i] < np.inf:
                u = min(u, int((cpu_free[i] + _EPS) // cpu_per_gpu))
            if mem_per_gpu > 0 and mem_free[i] < np.inf:
                u = min(u, int((mem_free[i] + _EPS) // mem_per_gpu))
        out[i] = u
    return out


@jit
def _best_counts(avail, k, n):
    """How many nodes of each usable-GPU value to take: exactly ``k`` nodes, least total >= n.

    ``avail[v]`` is the number of nodes offering ``v`` GPUs. Bounded-knapsack dynamic program
    over (nodes taken, GPUs); the optimum total is below ``n + V`` (else its smallest node
    could be dropped, contradicting the minimality of ``k``). Returns ``take[v]`` and the
    total, or total -1 when no ``k`` nodes hold ``n`` GPUs.
    """
    top = avail.shape[0] - 1
    size = n + top
    choice = np.full((top + 1, k + 1, size), -1, dtype=np.int32)
    reach = np.zeros((k + 1, size), dtype=np.bool_)
    reach[0, 0] = True
    for v in range(1, top + 1):
        nxt = np.zeros((k + 1, size), dtype=np.bool_)
        for c in range(k + 1):
            for s in range(size):
                t = 0
                while t <= avail[v] and t <= c and s - t * v >= 0:
                    if reach[c - t, s - t * v]:
                        nxt[c, s] = True
                        choice[v, c, s] = t
                        break
                    t += 1
        reach = nxt
    take = np.zeros(top + 1, dtype=np.int64)
    best = -1
    for s in range(n, size):
        if reach[k, s]:
            best = s
            break
    if best < 0:
        return take, -1
    c, s = k, best
    for v in range(top, 0, -1):
        t = choice[v, c, s]
        take[v] = t
        c -= t
        s -= t * v
    return take, best


@jit
def _fewest_nodes(usable, members, n):
    """Fewest of node ids ``members`` that hold ``n`` GPUs: ``(k, avail, greedy total)``.

    ``avail[v]`` counts the members offering ``v`` usable GPUs. ``k`` is -1 when the members
    hold fewer than ``n`` GPUs together. Largest nodes first gives the fewest nodes; when their
    total is exactly ``n`` nothing is left over and that choice is the tightest too.
    """
    top = 0
    total = 0
    for i in members:
        top = max(top, usable[i])
        total += usable[i]
    avail = np.zeros(top + 1, dtype=np.int64)
    if total < n:
        return -1, avail, 0
    for i in members:
        avail[usable[i]] += 1
    k, got = 0, 0
    for v in range(top, 0, -1):
        t = min(avail[v], (n - got + v - 1) // v)
        k += t
        got += t * v
        if got >= n:
            break
    return k, avail, got


@jit
def _tightest(avail, k, n, got):
    """How many nodes of each value to take (``k`` of them, least total >= n) and that total."""
    if got == n:
        top = avail.shape[0] - 1
        take = np.zeros(top + 1, dtype=np.int64)  # greedy is exact: nothing left over
        got = 0
        for v in range(top, 0, -1):
            take[v] = min(avail[v], (n - got + v - 1) // v)
            got += take[v] * v
            if got >= n:
                break
        return take, n
    return _best_counts(avail, k, n)


@jit
def _fill_counts(usable, members, n, take, counts):
    """GPUs taken per node for ``take``: within a value lower node ids first, the last partly."""
    need = n
    for v in range(take.shape[0] - 1, 0, -1):
        left = take[v]
        for i in members:
            if left == 0:
                break
            if usable[i] == v:
                g = min(v, need)
                counts[i] = g
                need -= g
                left -= 1


@jit
def _candidate(usable, members, n, counts, fill):
    """Tightest fewest-node choice among node ids ``members``.

    Returns (nodes used, GPUs left free on them), or (-1, 0) when ``members`` cannot hold n.
    With ``fill``, writes the GPUs taken per node into ``counts``: within a GPU value lower node
    ids are taken first, and the last (smallest) node taken gives only what is still needed.
    """
    k, avail, got = _fewest_nodes(usable, members, n)
    if k < 0:
        return -1, 0
    take, best = _tightest(avail, k, n, got)
    if fill:
        _fill_counts(usable, members, n, take, counts)
    return k, best - n


@jit
def _select_gang(usable, racks, rack_order, rack_start, n):
    """GPUs to take per node for an ``n``-GPU gang spread over several nodes.

    Preference, lexicographic: fewest nodes, then fewest GPUs left free on the chosen nodes
    (tightest fit), then fewest racks spanned. Each rack on its own is tried first (lower rack
    ids win ties), then the whole cluster. ``rack_order`` lists node ids grouped by rack and
    ``rack_start[r]:rack_start[r + 1]`` is rack ``r``'s slice of it. Returns int64[N] counts
    (all zero if infeasible).

    The fewest nodes of every rack and of the cluster come first (a greedy count); the
    tightest fit, a small dynamic program, is computed only for the racks with the fewest
    nodes (in rack order, until one leaves nothing free) and for the cluster when it ties
    with them: the choice is the one trying every rack's tightest fit would make.
    """
    num = usable.shape[0]
    n_racks = rack_start.shape[0] - 1
    counts = np.zeros(num, dtype=np.int64)
    everything = np.arange(num)
    k_all, avail_all, got_all = _fewest_nodes(usable, everything, n)
    if k_all < 0:
        return counts
    fewest = -1  # fewest nodes of any single rack
    for r in range(n_racks):
        k, _, _ = _fewest_nodes(usable, rack_order[rack_start[r] : rack_start[r + 1]], n)
        if k > 0 and (fewest < 0 or k < fewest):
            fewest = k
    best_rack, best_left, best_take = -1, 0, avail_all
    if fewest == k_all:  # a rack can match the cluster's node count: compare the fits
        for r in range(n_racks):
            members = rack_order[rack_start[r] : rack_start[r + 1]]
            k, avail, got = _fewest_nodes(usable, members, n)
            if k != fewest:
                continue
            take, total = _tightest(avail, k, n, got)
            if best_rack < 0 or total - n < best_left:
                best_rack, best_left, best_take = r, total - n, take
                if best_left == 0:
                    break
    if best_rack >= 0 and best_left == 0:  # the cluster cannot do better
        members = rack_order[rack_start[best_rack] : rack_start[best_rack + 1]]
        _fill_counts(usable, members, n, best_take, counts)
        return counts
    take, total = _tightest(avail_all, k_all, n, got_all)
    if best_rack < 0 or total - n < best_left:
        # only the whole cluster does better on nodes or fit: it wins even across racks
        _fill_counts(usable, everything, n, take, counts)
        return counts
    members = rack_order[rack_start[best_rack] : rack_start[best_rack + 1]]
    _fill_counts(usable, members, n, best_take, counts)
    return counts


@jit
def _pick_full_gpus(gpu_free, node, count, out, start):
    """Write the ``count`` lowest whole-free GPU slots of ``node`` as flat ids into ``out``."""
    g_max = gpu_free.shape[1]
    got = 0
    for g in range(g_max):
        if got == count:
            break
        if gpu_free[node, g] == MILLI:
            out[start + got] = node * g_max + g
            got += 1
    return got


# ---------------------------------------------------------------------- free-GPU index
# ``buckets[v]`` is a bitset (uint64 words) of the nodes with exactly ``v`` whole free GPUs, so
# best-fit / spread / first-fit for a whole-GPU single-node job visits only candidate nodes:
# O(G * N / 64) word reads instead of a scan of every node.


@jit_inline
def _bucket_set(buckets, node, value, on):
    bit = np.uint64(1) << np.uint64(node & 63)
    if on:
        buckets[value, node >> 6] |= bit
    else:
        buckets[value, node >> 6] &= ~bit


@jit
def _build_buckets(free_full, g_max):
    words = (free_full.shape[0] + 63) // 64
    buckets = np.zeros((g_max + 1, max(words, 1)), dtype=np.uint64)
    for i in range(free_full.shape[0]):
        _bucket_set(buckets, i, free_full[i], True)
    return buckets


@jit
def _select_full_indexed(
    buckets, cpu_free, mem_free, node_model, node_up, n_gpus, cpus, mem, type_mask, mode
):
    """Same choice as :func:`_select_node` for a whole-GPU job (``n_gpus >= 1``), via buckets.

    Best-fit visits buckets from ``n_gpus`` free GPUs upwards, spread from the top down; within
    a bucket the lowest feasible node id wins, as in the linear scan. First-fit ORs the buckets
    with enough GPUs and takes the lowest feasible id.
    """
    top = buckets.shape[0] - 1
    words = buckets.shape[1]
    if n_gpus > top:
        return -1
    rounds = 1 if mode == FIRST_FIT else top - n_gpus + 1
    for k in range(rounds):
        v = n_gpus + k if mode == BEST_FIT else top - k
        for w in range(words):
            if mode == FIRST_FIT:
                word = np.uint64(0)
                for u in range(n_gpus, top + 1):
                    word |= buckets[u, w]
            else:
                word = buckets[v, w]
            while word:
                i = w * 64 + _ctz(word)
                if _node_ok(
                    node_up[i], cpu_free[i], mem_free[i], node_model[i], cpus, mem, type_mask
                ):
                    return i
                word &= word - np.uint64(1)
    return -1


@jit
def _take_full(
    buckets,
    gpu_free,
    cpu_free,
    mem_free,
    node_model,
    node_up,
    n_gpus,
    cpus,
    mem,
    type_mask,
    mode,
    out,
):
    """:func:`_select_full_indexed` then :func:`_pick_full_gpus` in one call.

    Writes the chosen node's GPUs into ``out[:n_gpus]``; returns the node, or -1 (``out``
    untouched).
    """
    i = _select_full_indexed(
        buckets, cpu_free, mem_free, node_model, node_up, n_gpus, cpus, mem, type_mask, mode
    )
    if i >= 0:
        _pick_full_gpus(gpu_free, i, n_gpus, out, 0)
    return i


@jit
def _place_gang(
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
    cpu_per_gpu,
    mem_per_gpu,
    type_mask,
    gpus_out,
    nodes_out,
    counts_out,
):
    """A multi-node gang in one call: usable GPUs per node, :func:`_select_gang`, then GPUs.

    Writes the chosen nodes (ascending) into ``nodes_out``, the GPUs taken on each into
    ``counts_out`` and the GPUs themselves (lowest free slots of each node, nodes in ascending
    order) into ``gpus_out[:n]``; returns the number of nodes, or -1 when the gang does not fit.
    """
    num = free_full.shape[0]
    usable = np.empty(num, dtype=np.int64)
    _usable_gpus(
        free_full,
        cpu_free,
        mem_free,
        node_model,
        node_up,
        cpu_per_gpu,
        mem_per_gpu,
        type_mask,
        usable,
    )
    if usable.sum() < n:
        return -1
    counts = _select_gang(usable, racks, rack_order, rack_start, n)
    k = 0
    at = 0
    for i in range(num):
        if counts[i] > 0:
            nodes_out[k] = i
            counts_out[k] = counts[i]
            k += 1
            at += _pick_full_gpus(gpu_free, i, counts[i], gpus_out, at)
    return k


@jit
def _place_pods(cl, pods, g, mask, cpp, mpp, mode, rack, whole, buf):
    """``pods`` pods of ``g`` whole GPUs, ``cpp`` CPUs and ``mpp`` GB each, one node per pod.

    Pods are placed one at a time, each on the node ``mode`` scores best for it with the job's
    earlier pods counted (as a Kubernetes scheduler binds one pod after another): best-fit the
    node left with the fewest whole free GPUs (CPU-only pods: free CPUs), spread the most,
    first-fit the lowest id; ties go to the lower node id. Several pods may share a node. Only
    nodes of rack ``rack`` (-1 = any) are used, and with ``whole`` only nodes with every GPU
    free. Writes ``buf`` as :func:`place_into` does (nodes ascending, each node's lowest free
    GPUs); returns the number of nodes used, or -1 when some pod fits nowhere.

    Pods are alike, so taking any node a pod fits on lowers the number of pods the nodes can
    still hold by exactly one: the greedy order never fails when a placement exists.
    """
    num = cl.free_full.shape[0]
    cnt = buf.tmp_counts
    for i in range(num):
        cnt[i] = 0
    lo, hi = 0, num
    if rack >= 0:
        lo, hi = cl.rack_start[rack], cl.rack_start[rack + 1]
    spread = mode == SPREAD
    placed = 0
    for _ in range(pods):
        best = -1
        best_score = 0.0
        for m in range(lo, hi):
            i = cl.rack_order[m] if rack >= 0 else m  # a rack's nodes ascending
            if whole and cl.free_full[i] < cl.capacity[i]:
                continue
            c = cnt[i]
            cpu_left = cl.cpu_free[i] - c * cpp
            if not _node_ok(
                cl.node_up[i], cpu_left, cl.mem_free[i] - c * mpp, cl.node_model[i], cpp, mpp, mask
            ):
                continue
            if g > 0:
                left = cl.free_full[i] - (c + 1) * g
                if left < 0:
                    continue
                score = float(left)
            else:
                left_cpu = cpu_left - cpp
                score = left_cpu if left_cpu < 1e300 else 0.0
            if mode == FIRST_FIT:
                best = i
                break
            if best < 0 or (spread and score > best_score) or (not spread and score < best_score):
                best = i
                best_score = score
        if best < 0:
            break
        cnt[best] += 1
        placed += 1
    k = 0
    if placed == pods:
        at = 0
        for i in range(num):
            if cnt[i] > 0:
                buf.nodes[k] = i
                if g > 0:
                    at += _pick_full_gpus(cl.gpu_free, i, cnt[i] * g, buf.gpus, at)
                buf.cpu[k] = cnt[i] * cpp
                buf.mem[k] = cnt[i] * mpp
                k += 1
    for i in range(num):
        cnt[i] = 0
    return k if placed == pods else -1


@jit
def place_pods_in(cl, n, mask, cpus, mem, pods, mode, level, whole, buf):
    """A pod-shaped job of ``n`` whole GPUs inside one network domain of ``level``.

    Level 0: every pod on one node (the job as one pod); 1: inside one rack, the rack whose
    nodes hold the pods on the fewest nodes (ties: lower rack id); 2: anywhere. Pods are placed
    as :func:`_place_pods` does; ``whole`` uses only nodes with every GPU free. Writes ``buf``;
    returns nodes used or -1.
    """
    if level == 0:
        return _place_pods(cl, 1, n, mask, cpus, mem, mode, -1, whole, buf)
    g, cpp, mpp = n // pods, cpus / pods, mem / pods
    if level >= 2:
        return _place_pods(cl, pods, g, mask, cpp, mpp, mode, -1, whole, buf)
    best, best_k = -1, 0
    for r in range(cl.rack_start.shape[0] - 1):
        k = _place_pods(cl, pods, g, mask, cpp, mpp, mode, r, whole, buf)
        if k > 0 and (best < 0 or k < best_k):
            best, best_k = r, k
            if k == 1:
                break
    if best < 0:
        return -1
    return _place_pods(cl, pods, g, mask, cpp, mpp, mode, best, whole, buf)


@jit
def _pods_on_empty(cl, g, mask, cpp, mpp, want):
    """Whether the idle cluster (every node up) holds ``want`` such pods, one node per pod."""
    total = 0
    for i in range(cl.capacity.shape[0]):
        if not _type_ok(cl.node_model[i], mask):
            continue
        fit = want
        if g > 0:
            fit = min(fit, cl.capacity[i] // g)
        if cpp > 0 and cl.cpu_cap[i] < np.inf:
            fit = min(fit, int((cl.cpu_cap[i] + _EPS) // cpp))
        if mpp > 0 and cl.mem_cap[i] < np.inf:
            fit = min(fit, int((cl.mem_cap[i] + _EPS) // mpp))
        total += fit
        if total >= want:
            return True
    return False


# ---------------------------------------------------------------------- allocation
ALLOC_OK = 0
ALLOC_NO_ROOM = 1
ALLOC_CPU_MEM = 2
ALLOC_NODE_DOWN = 3
ALLOC_GPU_TYPE = 4
ALLOC_BAD_GPU = 5
ALLOC_DUPLICATE = 6
ALLOC_NODES_MISMATCH = 7
ALLOC_MESSAGES = {
    ALLOC_NO_ROOM: "uses a GPU without room",
    ALLOC_CPU_MEM: "exceeds a node's free CPU or memory",
    ALLOC_NODE_DOWN: "uses a node that is down",
    ALLOC_GPU_TYPE: "violates its GPU type",
    ALLOC_BAD_GPU: "names a GPU that does not exist",
    ALLOC_DUPLICATE: "names a GPU or node twice",
    ALLOC_NODES_MISMATCH: "lists nodes that do not match its GPUs",
}


@jit
def _check_alloc(
    gpu_free, cpu_free, mem_free, node_up, node_model, nodes, gpus, milli, cpus, mem, type_mask
):
    """Validate a placement against the free resources; returns an ``ALLOC_*`` code."""
    num, g_max = gpu_free.shape
    for k in range(gpus.shape[0]):
        gid = gpus[k]
        if gid < 0 or gid >= num * g_max:
            return ALLOC_BAD_GPU
        if gpu_free[gid // g_max, gid % g_max] < milli:
            return ALLOC_NO_ROOM
        found = False
        for m in range(nodes.shape[0]):
            if nodes[m] == gid // g_max:
                found = True
        if not found:
            return ALLOC_NODES_MISMATCH
        for kk in range(k):
            if gpus[kk] == gid:
                return ALLOC_DUPLICATE
    for m in range(nodes.shape[0]):
        i = nodes[m]
        if i < 0 or i >= num:
            return ALLOC_BAD_GPU
        for mm in range(m):
            if nodes[mm] == i:
                return ALLOC_DUPLICATE
        if gpus.shape[0] > 0:
            used = False
            for k in range(gpus.shape[0]):
                if gpus[k] // g_max == i:
                    used = True
            if not used:
                return ALLOC_NODES_MISMATCH
        if not node_up[i]:
            return ALLOC_NODE_DOWN
        if cpu_free[i] + _EPS < cpus[m] or mem_free[i] + _EPS < mem[m]:
            return ALLOC_CPU_MEM
        if gpus.shape[0] > 0 and not _type_ok(node_model[i], type_mask):
            return ALLOC_GPU_TYPE
    return ALLOC_OK


@jit
def _apply(gpu_free, free_full, cpu_free, mem_free, buckets, nodes, gpus, milli, cpus, mem, sign):
    """Take (``sign=-1``) or give back (``sign=+1``) resources; returns change in whole-free GPUs.

    Keeps ``free_full`` and the bucket index in step with ``gpu_free``.
    """
    g_max = gpu_free.shape[1]
    for m in range(nodes.shape[0]):
        _bucket_set(buckets, nodes[m], free_full[nodes[m]], False)
    delta = 0
    for k in range(gpus.shape[0]):
        i = gpus[k] // g_max
        s = gpus[k] % g_max
        before = gpu_free[i, s]
        after = before + sign * milli
        gpu_free[i, s] = after
        if before == MILLI:
            free_full[i] -= 1
            delta -= 1
        elif after == MILLI:
            free_full[i] += 1
            delta += 1
    for m in range(nodes.shape[0]):
        i = nodes[m]
        cpu_free[i] += sign * cpus[m]
        mem_free[i] += sign * mem[m]
        _bucket_set(buckets, i, free_full[i], True)
    return delta


@jit
def _apply_gpus(gpu_free, free_full, buckets, gpus, milli, sign):
    """The GPU part of :func:`_apply` (placements without CPU or memory); same result."""
    g_max = gpu_free.shape[1]
    for k in range(gpus.shape[0]):
        i = gpus[k] // g_max
        _bucket_set(buckets, i, free_full[i], False)
    delta = 0
    for k in range(gpus.shape[0]):
        i = gpus[k] // g_max
        s = gpus[k] % g_max
        before = gpu_free[i, s]
        after = before + sign * milli
        gpu_free[i, s] = after
        if before == MILLI:
            free_full[i] -= 1
            delta -= 1
        elif after == MILLI:
            free_full[i] += 1
            delta += 1
    for k in range(gpus.shape[0]):
        i = gpus[k] // g_max
        _bucket_set(buckets, i, free_full[i], True)
    return delta


class PlaceBuf(NamedTuple):
    """Scratch arrays a placement is written into (see :func:`place_into`).

    ``nodes``/``cpu``/``mem`` hold one entry per node used, ``gpus`` the flat GPU ids;
    ``tmp_nodes``/``tmp_counts`` are the gang search's work space.
    """

    nodes: np.ndarray
    gpus: np.ndarray
    cpu: np.ndarray
    mem: np.ndarray
    tmp_nodes: np.ndarray
    tmp_counts: np.ndarray


def new_buf(num_nodes: int, max_gpus: int) -> PlaceBuf:
    """A :class:`PlaceBuf` for placements of up to ``max_gpus`` GPUs on ``num_nodes`` nodes."""
    num_nodes = max(num_nodes, 1)
    return PlaceBuf(
        np.zeros(num_nodes, dtype=np.int64),
        np.zeros(max(max_gpus, 1), dtype=np.int64),
        np.zeros(num_nodes),
        np.zeros(num_nodes),
        np.zeros(num_nodes, dtype=np.int64),
        np.zeros(num_nodes, dtype=np.int64),
    )


@jit
def take(cl, nodes, gpus, milli, cpus, mem, sign):
    """Allocate (``sign=-1``) or release (``+1``) a placement on cluster arrays ``cl``.

    Keeps ``free_full``, the bucket index and the books (whole free GPUs, allocated
    milli-GPU, version) in step. The placement must have been validated (:func:`_check_alloc`).
    """
    no_cpu = True
    for m in range(nodes.shape[0]):
        if cpus[m] != 0.0 or mem[m] != 0.0:
            no_cpu = False
    if no_cpu:
        delta = _apply_gpus(cl.gpu_free, cl.free_full, cl.buckets, gpus, milli, sign)
    else:
        delta = _apply(
            cl.gpu_free,
            cl.free_full,
            cl.cpu_free,
            cl.mem_free,
            cl.buckets,
            nodes,
            gpus,
            milli,
            cpus,
            mem,
            sign,
        )
    b = cl.books[0]
    b.free_gpus += delta
    b.alloc_milli -= sign * milli * gpus.shape[0]
    b.version += 1


@jit
def place_into(cl, n, milli, mask, cpus, mem, pods, single, mode, allow_split, indexed, buf):
    """Where a job of this demand would start now; writes ``buf``, returns the nodes used.

    The rule every policy places by (:class:`~simulator.core.placement.Placer` documents it):
    a job of ``pods > 1`` pods places each pod whole on one node (:func:`_place_pods`); a
    one-pod job takes one node and is never split. Otherwise a job whose GPUs fit one node by
    capacity (``single``) goes on one node chosen by ``mode``, through the bucket index when
    ``indexed`` and it takes whole GPUs; otherwise (or, with ``allow_split``, when no single
    node has room) it is a gang on the fewest nodes (:func:`_place_gang`), its CPU and memory
    split in proportion to its GPUs per node.

    Args:
        cl: cluster arrays (:class:`~simulator.core.cluster.ClusterArrays`).
        n: GPUs.
        milli: milli-GPU per GPU.
        mask: GPU-type mask.
        cpus: CPU cores in all.
        mem: memory in GB in all.
        pods: pods of the job (0 = no pod shape); each pod takes ``n / pods`` GPUs,
            ``cpus / pods`` CPUs and ``mem / pods`` GB on one node.
        single: the job fits one node by capacity.
        mode: scoring mode.
        allow_split: may a job that fits one node be split over several.
        indexed: use the bucket index for whole-GPU single-node jobs.
        buf: a :class:`PlaceBuf` (``nodes[:k]``, ``gpus[:n]``, ``cpu[:k]``, ``mem[:k]``).

    Returns:
        ``k`` nodes used, or -1 when the job does not fit now.
    """
    books = cl.books[0]
    if milli >= MILLI:
        if n > books.free_gpus:
            return -1
    elif books.alloc_milli + milli > books.total_milli:
        return -1
    if pods > 1:
        return _place_pods(cl, pods, n // pods, mask, cpus / pods, mem / pods, mode, -1, False, buf)
    if pods == 1:
        if not single:
            return -1  # one pod larger than every node
        allow_split = False
    if indexed and single and n >= 1 and milli >= MILLI:
        node = _take_full(
            cl.buckets,
            cl.gpu_free,
            cl.cpu_free,
            cl.mem_free,
            cl.node_model,
            cl.node_up,
            n,
            cpus,
            mem,
            mask,
            mode,
            buf.gpus,
        )
        if node >= 0:
            buf.nodes[0] = node
            buf.cpu[0] = cpus
            buf.mem[0] = mem
            return 1
    elif single:
        node, slot = _select_node(
            cl.free_full,
            cl.gpu_free,
            cl.cpu_free,
            cl.mem_free,
            cl.node_model,
            cl.node_up,
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
                buf.gpus[0] = node * cl.gpu_free.shape[1] + slot
            else:
                _pick_full_gpus(cl.gpu_free, node, n, buf.gpus, 0)
            buf.nodes[0] = node
            buf.cpu[0] = cpus
            buf.mem[0] = mem
            return 1
    if single and (not allow_split or n <= 1):
        return -1
    size = min(n, cl.free_full.shape[0])
    k = _place_gang(
        cl.free_full,
        cl.gpu_free,
        cl.cpu_free,
        cl.mem_free,
        cl.node_model,
        cl.node_up,
        cl.racks,
        cl.rack_order,
        cl.rack_start,
        n,
        cpus / n,
        mem / n,
        mask,
        buf.gpus,
        buf.tmp_nodes[:size],
        buf.tmp_counts[:size],
    )
    if k < 0:
        return -1
    for i in range(k):
        buf.nodes[i] = buf.tmp_nodes[i]
        if cpus == 0.0 and mem == 0.0:
            buf.cpu[i] = 0.0
            buf.mem[i] = 0.0
        else:
            share = buf.tmp_counts[i] / n
            buf.cpu[i] = cpus * share
            buf.mem[i] = mem * share
    return k


@jit
def fits_on_nodes(cl, nodes, count, n, milli, mask, cpus, mem):
    """Whether a single-node job of this demand fits one of ``nodes[:count]`` now.

    The same conditions as :func:`place_into` for a job that must take one node (``single``
    and not split): the books' totals, then per node :func:`_select_node`'s test. A what-if
    search that only frees resources on known nodes checks those nodes alone with it.
    """
    books = cl.books[0]
    if milli >= MILLI:
        if n > books.free_gpus:
            return False
    elif books.alloc_milli + milli > books.total_milli:
        return False
    for m in range(count):
        i = nodes[m]
        if not _node_ok(
            cl.node_up[i], cl.cpu_free[i], cl.mem_free[i], cl.node_model[i], cpus, mem, mask
        ):
            continue
        if n == 0:
            return True
        if milli >= MILLI:
            if cl.free_full[i] >= n:
                return True
            continue
        for g in range(cl.gpu_free.shape[1]):
            if cl.gpu_free[i, g] - milli >= 0:
                return True
    return False


@jit
def fits_empty(cl, n, milli, mask, cpus, mem, pods, single, allow_split):
    """Whether a job of this demand could be placed with every node up and idle."""
    if mask < 0:
        return False
    if pods > 1:
        return _pods_on_empty(cl, n // pods, mask, cpus / pods, mem / pods, pods)
    if pods == 1:
        if not single:
            return False
        allow_split = False
    num, g_max = cl.gpu_free.shape
    gpu_free = np.empty((num, g_max), dtype=np.int32)
    for i in range(num):
        for g in range(g_max):
            gpu_free[i, g] = MILLI if g < cl.capacity[i] else -1
    up = np.ones(num, dtype=np.bool_)
    if single:
        node, _ = _select_node(
            cl.capacity,
            gpu_free,
            cl.cpu_cap,
            cl.mem_cap,
            cl.node_model,
            up,
            n,
            milli,
            cpus,
            mem,
            mask,
            FIRST_FIT,
        )
        if node >= 0 or not allow_split or n <= 1:
            return node >= 0
    usable = np.empty(num, dtype=np.int64)
    _usable_gpus(
        cl.capacity, cl.cpu_cap, cl.mem_cap, cl.node_model, up, cpus / n, mem / n, mask, usable
    )
    return usable.sum() >= n


@jit
def max_node_gpus(cl, mask):
    """Largest GPU capacity of a node whose model satisfies ``mask``."""
    best = 0
    for i in range(cl.capacity.shape[0]):
        if _type_ok(cl.node_model[i], mask) and cl.capacity[i] > best:
            best = cl.capacity[i]
    return best


@jit
def copy_free(dst, src):
    """Make cluster ``dst`` (a what-if copy of the same cluster) hold ``src``'s free resources.

    Copies free GPUs, CPU, memory, node states, the bucket index and the books (the version
    is bumped, not copied).
    """
    num, g_max = src.gpu_free.shape
    for i in range(num):  # plain loops: array expressions cost seconds of compile time
        for g in range(g_max):
            dst.gpu_free[i, g] = src.gpu_free[i, g]
        dst.free_full[i] = src.free_full[i]
        dst.cpu_free[i] = src.cpu_free[i]
        dst.mem_free[i] = src.mem_free[i]
        dst.node_up[i] = src.node_up[i]
    for v in range(src.buckets.shape[0]):
        for w in range(src.buckets.shape[1]):
            dst.buckets[v, w] = src.buckets[v, w]
    d, s = dst.books[0], src.books[0]
    d.free_gpus = s.free_gpus
    d.alloc_milli = s.alloc_milli
    d.version += 1


@jit
def min_node(dst, a, b, i):
    """Make node ``i`` of cluster ``dst`` hold the element-wise minimum of ``a`` and ``b``.

    ``a``, ``b`` and ``dst`` are states of the same cluster: free milli-GPU per slot, CPU and
    memory become the smaller of the two, ``node_up`` is ``a``'s; ``free_full``, the bucket
    index and the books of ``dst`` stay consistent. (What is free over a span of time is the
    minimum of what is free at each instant of it.)
    """
    books = dst.books[0]
    _bucket_set(dst.buckets, i, dst.free_full[i], False)
    full = 0
    for g in range(dst.gpu_free.shape[1]):
        old = dst.gpu_free[i, g]
        new = min(a.gpu_free[i, g], b.gpu_free[i, g])
        dst.gpu_free[i, g] = new
        if new >= 0:
            books.alloc_milli += old - new
        if new == MILLI:
            full += 1
    books.free_gpus += full - dst.free_full[i]
    dst.free_full[i] = full
    dst.cpu_free[i] = min(a.cpu_free[i], b.cpu_free[i])
    dst.mem_free[i] = min(a.mem_free[i], b.mem_free[i])
    dst.node_up[i] = a.node_up[i]
    _bucket_set(dst.buckets, i, full, True)
    books.version += 1


@jit
def min_free(dst, a, b):
    """:func:`min_node` for every node: ``dst`` becomes the minimum of states ``a`` and ``b``."""
    for i in range(dst.free_full.shape[0]):
        min_node(dst, a, b, i)


# ---------------------------------------------------------------------- public wrappers


def _check_state(free_full, gpu_free, cpu_free, mem_free, node_model, node_up) -> None:
    n = free_full.shape[0]
    expect = {
        "free_full": (free_full, np.int32),
        "gpu_free": (gpu_free, np.int32),
        "cpu_free": (cpu_free, np.float64),
        "mem_free": (mem_free, np.float64),
        "node_model": (node_model, np.int32),
        "node_up": (node_up, np.bool_),
    }
    for name, (arr, dtype) in expect.items():
        if arr.dtype != dtype:
            raise TypeError(f"{name} must be {np.dtype(dtype).name}, got {arr.dtype}")
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows, expected {n}")
    if gpu_free.ndim != 2:
        raise ValueError("gpu_free must be 2-D (nodes x GPU slots)")


def feasible_mask(
    free_full: np.ndarray,
    gpu_free: np.ndarray,
    cpu_free: np.ndarray,
    mem_free: np.ndarray,
    node_model: np.ndarray,
    node_up: np.ndarray,
    n_gpus: int,
    milli: int,
    cpus: float,
    mem: float,
    type_mask: int,
) -> np.ndarray:
    """Boolean mask of nodes on which a single-node job fits right now.

    A job fits a node when the node is up, its GPU model is allowed by ``type_mask``, it has
    ``cpus`` cores and ``mem`` GB free and either ``n_gpus`` whole free GPUs (``milli`` =
    1000) or one GPU with ``milli`` milli-GPU free (fractional job).
    """
    _check_state(free_full, gpu_free, cpu_free, mem_free, node_model, node_up)
    out = np.zeros(free_full.shape[0], dtype=np.bool_)
    return _feasible_mask(
        free_full,
        gpu_free,
        cpu_free,
        mem_free,
        node_model,
        node_up,
        int(n_gpus),
        int(milli),
        float(cpus),
        float(mem),
        int(type_mask),
        out,
    )


def select_node(
    free_full: np.ndarray,
    gpu_free: np.ndarray,
    cpu_free: np.ndarray,
    mem_free: np.ndarray,
    node_model: np.ndarray,
    node_up: np.ndarray,
    n_gpus: int,
    milli: int,
    cpus: float,
    mem: float,
    type_mask: int,
    mode: int = BEST_FIT,
) -> tuple[int, int]:
    """Pick a node for a single-node job: ``(node, gpu slot)``; node -1 when none fits.

    Scores: whole-GPU jobs by whole free GPUs left on the node, fractional jobs by milli-GPU
    left on the chosen GPU, CPU-only jobs by free cores left. ``BEST_FIT`` minimises the score,
    ``SPREAD`` maximises it, ``FIRST_FIT`` takes the first feasible node; ties go to the lowest
    node id. The slot is only chosen for fractional jobs (-1 otherwise).
    """
    _check_state(free_full, gpu_free, cpu_free, mem_free, node_model, node_up)
    if mode not in (BEST_FIT, SPREAD, FIRST_FIT):
        raise ValueError(f"unknown scoring mode {mode}")
    node, gpu = _select_node(
        free_full,
        gpu_free,
        cpu_free,
        mem_free,
        node_model,
        node_up,
        int(n_gpus),
        int(milli),
        float(cpus),
        float(mem),
        int(type_mask),
        int(mode),
    )
    return int(node), int(gpu)


def usable_gpus(
    free_full: np.ndarray,
    cpu_free: np.ndarray,
    mem_free: np.ndarray,
    node_model: np.ndarray,
    node_up: np.ndarray,
    cpu_per_gpu: float,
    mem_per_gpu: float,
    type_mask: int,
) -> np.ndarray:
    """Whole GPUs each node could give a multi-node gang (limited by CPU and memory per GPU)."""
    out = np.zeros(free_full.shape[0], dtype=np.int64)
    return _usable_gpus(
        free_full,
        cpu_free,
        mem_free,
        node_model,
        node_up,
        float(cpu_per_gpu),
        float(mem_per_gpu),
        int(type_mask),
        out,
    )


def select_gang(usable: np.ndarray, racks: np.ndarray, n_gpus: int) -> np.ndarray:
    """GPUs per node for a gang of ``n_gpus`` whole GPUs (see :func:`_select_gang`).

    Returns:
        int64 array, one count per node, summing to ``n_gpus``; all zeros when infeasible.
    """
    if usable.dtype != np.int64 or racks.dtype != np.int32 or usable.shape != racks.shape:
        raise TypeError("usable must be int64[N] and racks int32[N]")
    order, start = rack_index(racks)
    return _select_gang(usable, racks, order, start, int(n_gpus))


def rack_index(racks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node ids grouped by rack (stable) and each rack's start offset in that list.

    Rack ids must be dense (0..R-1), as :class:`~simulator.core.cluster.ClusterSpec` makes them.
    """
    order = np.argsort(racks, kind="stable").astype(np.int64)
    counts = np.bincount(racks, minlength=int(racks.max()) + 1 if racks.size else 0)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return order, start


def build_buckets(free_full: np.ndarray, max_gpus: int) -> np.ndarray:
    """Bucket index of nodes by whole free GPUs: ``uint64[max_gpus + 1, ceil(N / 64)]``."""
    if free_full.dtype != np.int32:
        raise TypeError("free_full must be int32")
    if free_full.size and (free_full.min() < 0 or free_full.max() > max_gpus):
        raise ValueError("free_full values must lie in 0..max_gpus")
    return _build_buckets(free_full, int(max_gpus))


def select_full_indexed(
    buckets: np.ndarray,
    cpu_free: np.ndarray,
    mem_free: np.ndarray,
    node_model: np.ndarray,
    node_up: np.ndarray,
    n_gpus: int,
    cpus: float,
    mem: float,
    type_mask: int,
    mode: int = BEST_FIT,
) -> int:
    """Node for a whole-GPU single-node job via the bucket index, or -1.

    Gives the same answer as :func:`select_node` (tested), visiting only candidate nodes.
    """
    if buckets.dtype != np.uint64 or buckets.ndim != 2:
        raise TypeError("buckets must be a 2-D uint64 array (see build_buckets)")
    if n_gpus < 1:
        raise ValueError("the indexed search is for jobs with at least one whole GPU")
    return int(
        _select_full_indexed(
            buckets,
            cpu_free,
            mem_free,
            node_model,
            node_up,
            int(n_gpus),
            float(cpus),
            float(mem),
            int(type_mask),
            int(mode),
        )
    )


def pick_full_gpus(gpu_free: np.ndarray, node: int, count: int) -> np.ndarray:
    """Flat ids (``node * G + slot``) of the ``count`` lowest whole-free GPUs of ``node``."""
    out = np.empty(count, dtype=np.int64)
    got = _pick_full_gpus(gpu_free, int(node), int(count), out, 0)
    if got != count:
        raise ValueError(f"node {node} has only {got} whole free GPUs, {count} requested")
    return out
