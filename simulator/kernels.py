"""Compiled placement core: pure Numba kernels over NumPy arrays.

Every kernel ``_name`` is a jitted function over arrays and scalars only (no objects, no pandas).
Its public twin ``name`` checks shapes and dtypes and then calls it. Numba options are set here
once (:data:`JIT_OPTIONS`); ``cache=True`` keeps compiled code between runs.

Cluster state arrays (see :class:`simulator.cluster.ClusterState`):
``free_full int32[N]`` whole free GPUs per node, ``gpu_free int32[N, G]`` free milli-GPU per GPU
slot (-1 = no such GPU), ``cpu_free``/``mem_free float64[N]``, ``node_model int32[N]``,
``node_up bool[N]``, ``racks int32[N]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "JIT_OPTIONS",
    "BEST_FIT",
    "SPREAD",
    "FIRST_FIT",
    "SCORING_MODES",
    "feasible_mask",
    "select_node",
    "usable_gpus",
    "select_gang",
    "pick_full_gpus",
]

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False}
jit = njit(**JIT_OPTIONS)

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


@jit
def _type_ok(model: int, mask: int) -> bool:
    if mask == 0:
        return True
    if model < 0 or mask < 0:
        return False
    return ((mask >> model) & 1) == 1


@jit
def _node_ok(i, cpu_free, mem_free, node_model, node_up, cpus, mem, type_mask):
    return (
        node_up[i]
        and _type_ok(node_model[i], type_mask)
        and cpu_free[i] + _EPS >= cpus
        and mem_free[i] + _EPS >= mem
    )


@jit
def _best_gpu(gpu_free, i, milli, mode):
    """Slot on node ``i`` with room for ``milli`` (least room left if best-fit), or -1."""
    best = -1
    best_left = 0
    for g in range(gpu_free.shape[1]):
        left = gpu_free[i, g] - milli
        if gpu_free[i, g] < 0 or left < 0:
            continue
        better = left > best_left if mode == SPREAD else left < best_left
        if best < 0 or better:
            best = g
            best_left = left
    return best


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
        ok = _node_ok(i, cpu_free, mem_free, node_model, node_up, cpus, mem, type_mask)
        if ok and n_gpus > 0:
            if milli >= MILLI:
                ok = free_full[i] >= n_gpus
            else:
                ok = _best_gpu(gpu_free, i, milli, BEST_FIT) >= 0
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
    for i in range(free_full.shape[0]):
        if not _node_ok(i, cpu_free, mem_free, node_model, node_up, cpus, mem, type_mask):
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
            gpu = _best_gpu(gpu_free, i, milli, mode)
            if gpu < 0:
                continue
            score = float(gpu_free[i, gpu] - milli)
        if mode == FIRST_FIT:
            return i, gpu
        if (
            best < 0
            or (mode == SPREAD and score > best_score)
            or (mode != SPREAD and score < best_score)
        ):
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
def _candidate(usable, members, n, counts):
    """Tightest fewest-node choice among node ids ``members``; fills ``counts``.

    Returns (nodes used, GPUs left free on them), or (-1, 0) when ``members`` cannot hold n.
    Within a GPU value, lower node ids are taken first; the last (smallest) node taken gives
    only what is still needed.
    """
    top = 0
    total = 0
    for i in members:
        top = max(top, usable[i])
        total += usable[i]
    if total < n:
        return -1, 0
    avail = np.zeros(top + 1, dtype=np.int64)
    for i in members:
        avail[usable[i]] += 1
    k, got = 0, 0
    for v in range(top, 0, -1):
        t = min(avail[v], (n - got + v - 1) // v)
        k += t
        got += t * v
        if got >= n:
            break
    take, best = _best_counts(avail, k, n)
    need = n
    for v in range(top, 0, -1):
        left = take[v]
        if left == 0:
            continue
        for i in members:
            if left == 0:
                break
            if usable[i] == v:
                g = min(v, need)
                counts[i] = g
                need -= g
                left -= 1
    return k, best - n


@jit
def _racks_spanned(counts, racks, n_racks):
    seen = np.zeros(n_racks, dtype=np.bool_)
    spanned = 0
    for i in range(counts.shape[0]):
        if counts[i] > 0 and not seen[racks[i]]:
            seen[racks[i]] = True
            spanned += 1
    return spanned


@jit
def _select_gang(usable, racks, n_racks, n):
    """GPUs to take per node for an ``n``-GPU gang spread over several nodes.

    Preference, lexicographic: fewest nodes, then fewest GPUs left free on the chosen nodes
    (tightest fit), then fewest racks spanned. Each rack on its own is tried first (lower rack
    ids win ties), then the whole cluster. Returns int64[N] counts (all zero if infeasible).
    """
    num = usable.shape[0]
    best = np.zeros(num, dtype=np.int64)
    best_k, best_left, best_span = -1, 0, 0
    order = np.argsort(racks, kind="mergesort")
    lo = 0
    while lo < num:
        hi = lo
        while hi < num and racks[order[hi]] == racks[order[lo]]:
            hi += 1
        cand = np.zeros(num, dtype=np.int64)
        k, left = _candidate(usable, order[lo:hi], n, cand)
        if k > 0 and (best_k < 0 or k < best_k or (k == best_k and left < best_left)):
            best, best_k, best_left, best_span = cand, k, left, 1
        lo = hi
    cand = np.zeros(num, dtype=np.int64)
    k, left = _candidate(usable, np.arange(num), n, cand)
    if k > 0:
        span = _racks_spanned(cand, racks, n_racks)
        if (
            best_k < 0
            or k < best_k
            or (k == best_k and (left < best_left or (left == best_left and span < best_span)))
        ):
            best = cand
    return best


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
    n_racks = int(racks.max()) + 1 if racks.size else 1
    return _select_gang(usable, racks, n_racks, int(n_gpus))


def pick_full_gpus(gpu_free: np.ndarray, node: int, count: int) -> np.ndarray:
    """Flat ids (``node * G + slot``) of the ``count`` lowest whole-free GPUs of ``node``."""
    out = np.empty(count, dtype=np.int64)
    got = _pick_full_gpus(gpu_free, int(node), int(count), out, 0)
    if got != count:
        raise ValueError(f"node {node} has only {got} whole free GPUs, {count} requested")
    return out
