"""Slow, obviously-correct Python twins of the fragmentation kernels (policies.fragmentation)."""

from __future__ import annotations

import math

MILLI = 1000


def type_ok(model: int, mask: int) -> bool:
    if mask == 0:
        return True
    if model < 0 or mask < 0:
        return False
    return bool((mask >> model) & 1)


def node_frag(row, cpu_free, model, types) -> float:
    """F_n = sum_m p_m F_n(m), straight from the paper's definition."""
    free = [int(v) for v in row if v >= 0]
    total = sum(free)
    out = 0.0
    for g, d, c, mask, p in zip(*types, strict=True):
        hostable = (
            g > 0
            and type_ok(int(model), int(mask))
            and cpu_free + 1e-9 >= c
            and sum(1 for v in free if v >= d) >= g
        )
        unusable = sum(v for v in free if v < d) if hostable else total
        out += p * unusable
    return out


def feasible(state, i, n, milli, cpus, mem, mask) -> bool:
    if not state.node_up[i] or not type_ok(int(state.node_model[i]), mask):
        return False
    if state.cpu_free[i] + 1e-9 < cpus or state.mem_free[i] + 1e-9 < mem:
        return False
    gpus = [int(v) for v in state.gpu_free[i] if v >= 0]
    if n == 0:
        return True
    if milli >= MILLI:
        return sum(1 for v in gpus if v == MILLI) >= n
    return any(v >= milli for v in gpus)


def fgd_options(state, n, milli, cpus, mem, mask, types) -> list[tuple[float, int, int]]:
    """Every (fragmentation increase, node, slot) FGD may choose among."""
    out = []
    for i in range(len(state.gpu_free)):
        if not feasible(state, i, n, milli, cpus, mem, mask):
            continue
        row = [int(v) for v in state.gpu_free[i]]
        model = int(state.node_model[i])
        before = node_frag(row, state.cpu_free[i], model, types)
        left = state.cpu_free[i] - cpus
        if n > 0 and milli < MILLI:
            for g, v in enumerate(row):
                if v >= milli:
                    new = list(row)
                    new[g] -= milli
                    out.append((node_frag(new, left, model, types) - before, i, g))
        else:
            new = list(row)
            taken = 0
            for g, v in enumerate(new):
                if taken < n and v == MILLI:
                    new[g] = 0
                    taken += 1
            out.append((node_frag(new, left, model, types) - before, i, -1))
    return out


def baseline_costs(mode, state, n, milli, cpus, mem, mask, tags, max_cpu=128.0, max_gpu=8000.0):
    """Cost (lower = better) of every feasible node under a baseline score (exact values)."""
    out = {}
    req = n * milli
    for i in range(len(state.gpu_free)):
        if not feasible(state, i, n, milli, cpus, mem, mask):
            continue
        gpus = [int(v) for v in state.gpu_free[i] if v >= 0]
        free = sum(gpus)
        cpu = state.cpu_free[i] if math.isfinite(state.cpu_free[i]) else 0.0
        if mode == "random":
            cost = 0.0
        elif mode == "dotprod":
            cost = cpu / max_cpu * cpus / max_cpu + free / max_gpu * req / max_gpu
        elif mode == "bestfit":
            left = cpu - cpus if math.isfinite(state.cpu_free[i]) else 0.0
            cost = 0.5 * left / max_cpu + 0.5 * (free - req) / max_gpu
        elif n == 0:
            cost = 0.0
        elif mode == "gpu_packing":
            cost = -packing(gpus, int(state.free_full[i]), int(state.capacity[i]), n, milli)
        else:
            tag = 0 if milli < MILLI else n
            kinds = [t for t, c in enumerate(tags[i]) if c > 0]
            if tag in kinds:
                tier = 3 if len(kinds) == 1 else 2
            else:
                tier = 1 if not kinds else 0
            cost = -(25 * tier + 25 * (max_gpu - free) / max_gpu)
        out[i] = cost
    return out


def packing(gpus, free_full, capacity, n, milli) -> float:
    if free_full == capacity:
        return 33.0 - free_full
    used = sorted(v for v in gpus if v >= milli)[:n]
    opened = sum(1 for v in used if v == MILLI)
    if opened:
        return max(50.0 - opened, 33.0)
    return max(100.0 - sum(used) / 100.0, 50.0)


def task_types(num_gpus, milli, cpus, masks, threshold=1.0, step=1, include_cpu=True):
    """Counting dict of demands, sorted by count (desc) then demand, cut at the threshold."""
    counts: dict[tuple, int] = {}
    for g, d, c, k in zip(num_gpus, milli, cpus, masks, strict=True):
        if g == 0 and not include_cpu:
            continue
        key = (int(g), int(d) if g > 0 else 0, float(c), int(k))
        counts[key] = counts.get(key, 0) + 1
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(counts.values())
    kept, covered = [], 0
    while items and (not kept or covered / total < threshold - 1e-12):
        for key, cnt in items[:step]:
            kept.append((key, cnt))
            covered += cnt
        items = items[step:]
    size = sum(c for _, c in kept)
    return [(key, cnt / size) for key, cnt in kept]
