"""Slow, obviously-correct Python twins of the compiled kernels (for reference tests)."""

from __future__ import annotations

import itertools

import numpy as np

MILLI = 1000


def type_ok(model: int, mask: int) -> bool:
    if mask == 0:
        return True
    if model < 0 or mask < 0:
        return False
    return bool((mask >> model) & 1)


def node_ok(i, cpu_free, mem_free, node_model, node_up, cpus, mem, mask) -> bool:
    return (
        bool(node_up[i])
        and type_ok(int(node_model[i]), mask)
        and cpu_free[i] + 1e-9 >= cpus
        and mem_free[i] + 1e-9 >= mem
    )


def feasible(
    free_full, gpu_free, cpu_free, mem_free, node_model, node_up, n, milli, cpus, mem, mask
) -> list[bool]:
    out = []
    for i in range(len(free_full)):
        ok = node_ok(i, cpu_free, mem_free, node_model, node_up, cpus, mem, mask)
        if ok and n > 0:
            if milli >= MILLI:
                ok = free_full[i] >= n
            else:
                ok = any(v >= milli for v in gpu_free[i] if v >= 0)
        out.append(ok)
    return out


def scores(
    free_full, gpu_free, cpu_free, mem_free, node_model, node_up, n, milli, cpus, mem, mask, spread
) -> dict[int, tuple[float, int]]:
    """Score and chosen GPU slot of every feasible node."""
    res = {}
    ok = feasible(
        free_full, gpu_free, cpu_free, mem_free, node_model, node_up, n, milli, cpus, mem, mask
    )
    for i in range(len(free_full)):
        if not ok[i]:
            continue
        if n == 0:
            left = cpu_free[i] - cpus
            res[i] = (left if np.isfinite(left) else 0.0, -1)
        elif milli >= MILLI:
            res[i] = (float(free_full[i] - n), -1)
        else:
            slots = [(v - milli, g) for g, v in enumerate(gpu_free[i]) if v >= milli]
            left, g = max(slots, key=lambda s: (s[0], -s[1])) if spread else min(slots)
            res[i] = (float(left), g)
    return res


def select_node(
    free_full, gpu_free, cpu_free, mem_free, node_model, node_up, n, milli, cpus, mem, mask, mode
) -> tuple[int, int]:
    sc = scores(
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
        spread=(mode == 1),
    )
    if not sc:
        return -1, -1
    if mode == 2:
        i = min(sc)
    elif mode == 1:
        i = min(sc, key=lambda k: (-sc[k][0], k))
    else:
        i = min(sc, key=lambda k: (sc[k][0], k))
    return i, sc[i][1]


def gang_optimum(usable, racks, n) -> tuple[int, int]:
    """Minimum (nodes, leftover-on-last) over all subsets by brute force.

    The leftover of a subset whose nodes are taken whole except the one with the fewest usable
    GPUs is (sum - n) when the other nodes alone do not reach n.
    """
    idx = [i for i in range(len(usable)) if usable[i] > 0]
    for k in range(1, len(idx) + 1):
        best = None
        for combo in itertools.combinations(idx, k):
            total = sum(usable[i] for i in combo)
            smallest = min(usable[i] for i in combo)
            if total >= n and total - smallest < n:
                left = total - n
                best = left if best is None else min(best, left)
        if best is not None:
            return k, best
    return -1, 0
