"""Compiled core of the network fabric: placement profiles and max-min fair link sharing.

Pure Numba kernels over NumPy arrays and scalars (no objects), each with a thin public wrapper
that checks dtypes, as in :mod:`simulator.core.kernels` (whose :data:`JIT_OPTIONS` they share).
Slow Python twins live in ``tests/test_fabric_kernels.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.core.kernels import JIT_OPTIONS

__all__ = ["placement_profile", "max_min_fair", "TOLERANCE"]

jit = njit(**JIT_OPTIONS)

TOLERANCE = 1e-12
"""Relative slack under which a link counts as full or a flow as at its cap."""


@jit
def _profile(gpus, g_max, node_domain, node_leaf, node_nic, leaves_out):
    """Where a gang's GPUs sit, for the all-reduce model.

    ``gpus`` are flat ids ``node * g_max + slot``; ``node_domain``/``node_leaf`` give each
    node's NVLink domain and leaf switch, ``node_nic`` each node's NIC bandwidth per GPU
    (bytes/s). Writes the distinct leaves into ``leaves_out[:leaves]`` (size >= len(gpus)).

    Returns ``(domains, leaves, min_egress, max_per_domain, aligned)``: NVLink domains used,
    leaves used, the smallest NIC bandwidth (bytes/s) any used domain has for this job (sum
    over the job's GPUs there), the most GPUs in one domain, and whether every node uses the
    same GPU slots (rail-aligned; nodes with more than 62 slots count as aligned).
    """
    n = gpus.shape[0]
    dom = np.empty(n, dtype=np.int64)
    for k in range(n):
        dom[k] = node_domain[gpus[k] // g_max]
    order = np.argsort(dom)
    domains = 0
    max_per = 0
    min_egress = np.inf
    k = 0
    while k < n:
        d = dom[order[k]]
        egress = 0.0
        count = 0
        while k < n and dom[order[k]] == d:
            egress += node_nic[gpus[order[k]] // g_max]
            count += 1
            k += 1
        domains += 1
        max_per = max(max_per, count)
        min_egress = min(min_egress, egress)
    leaves = 0
    for k in range(n):
        leaf = node_leaf[gpus[k] // g_max]
        seen = False
        for m in range(leaves):
            if leaves_out[m] == leaf:
                seen = True
                break
        if not seen:
            leaves_out[leaves] = leaf
            leaves += 1
    aligned = True
    if g_max <= 62:
        by_id = np.sort(gpus)
        first = -1
        k = 0
        while k < n:
            node = by_id[k] // g_max
            mask = 0
            while k < n and by_id[k] // g_max == node:
                mask |= 1 << (by_id[k] % g_max)
                k += 1
            if first < 0:
                first = mask
            elif mask != first:
                aligned = False
    return domains, leaves, min_egress, max_per, aligned


@jit
def _max_min_fair(link_cap, flow_ptr, flow_links, flow_cap, rates):
    """Max-min fair rates by progressive filling (water-filling).

    Flow ``f`` crosses links ``flow_links[flow_ptr[f]:flow_ptr[f + 1]]`` (local link ids) and
    may not exceed ``flow_cap[f]``; link ``l`` carries at most ``link_cap[l]``. All unfrozen
    flows rise together; a flow freezes when it reaches its cap or one of its links fills.
    Writes the rates into ``rates``; returns the number of filling rounds.
    """
    n_links = link_cap.shape[0]
    n_flows = flow_cap.shape[0]
    left = link_cap.copy()
    frozen = np.zeros(n_flows, dtype=np.bool_)
    count = np.zeros(n_links, dtype=np.int64)
    for f in range(n_flows):
        rates[f] = 0.0
    active = n_flows
    rounds = 0
    while active > 0:
        rounds += 1
        count[:] = 0
        for f in range(n_flows):
            if not frozen[f]:
                for p in range(flow_ptr[f], flow_ptr[f + 1]):
                    count[flow_links[p]] += 1
        step = np.inf
        for f in range(n_flows):
            if not frozen[f]:
                step = min(step, flow_cap[f] - rates[f])
        for link in range(n_links):
            if count[link] > 0:
                step = min(step, left[link] / count[link])
        step = max(step, 0.0)
        for f in range(n_flows):
            if not frozen[f]:
                rates[f] += step
        for link in range(n_links):
            if count[link] > 0:
                left[link] -= step * count[link]
        before = active
        for f in range(n_flows):
            if frozen[f]:
                continue
            full = flow_cap[f] - rates[f] <= TOLERANCE * flow_cap[f]
            for p in range(flow_ptr[f], flow_ptr[f + 1]):
                link = flow_links[p]
                if left[link] <= TOLERANCE * link_cap[link]:
                    full = True
            if full:
                frozen[f] = True
                active -= 1
        if active == before:  # rounding left nobody frozen: stop where we are
            break
    return rounds


def placement_profile(
    gpus: np.ndarray,
    g_max: int,
    node_domain: np.ndarray,
    node_leaf: np.ndarray,
    node_nic: np.ndarray,
) -> tuple[int, int, float, int, bool, np.ndarray]:
    """Profile of a gang's placement (see :func:`_profile`); also returns the leaf ids."""
    for name, arr, dtype in (
        ("gpus", gpus, np.int64),
        ("node_domain", node_domain, np.int64),
        ("node_leaf", node_leaf, np.int64),
        ("node_nic", node_nic, np.float64),
    ):
        if arr.dtype != dtype:
            raise TypeError(f"{name} must be {np.dtype(dtype).name}, got {arr.dtype}")
    if gpus.size == 0:
        raise ValueError("a placement profile needs at least one GPU")
    leaves = np.empty(gpus.shape[0], dtype=np.int64)
    d, nl, egress, most, aligned = _profile(
        gpus, int(g_max), node_domain, node_leaf, node_nic, leaves
    )
    return int(d), int(nl), float(egress), int(most), bool(aligned), leaves[:nl].copy()


def max_min_fair(
    link_cap: np.ndarray, flow_links: list[list[int]], flow_cap: np.ndarray
) -> np.ndarray:
    """Max-min fair rates of flows over capacitated links (see :func:`_max_min_fair`).

    Args:
        link_cap: capacity of each link (bytes/s), float64.
        flow_links: for each flow, the link ids it crosses.
        flow_cap: the most each flow can use anyway (its other bottlenecks), float64.
    """
    link_cap = np.asarray(link_cap, dtype=np.float64)
    flow_cap = np.asarray(flow_cap, dtype=np.float64)
    if len(flow_links) != flow_cap.shape[0]:
        raise ValueError("flow_links and flow_cap must have one entry per flow")
    ptr = np.zeros(len(flow_links) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(f) for f in flow_links])
    flat = np.array([x for f in flow_links for x in f], dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= link_cap.shape[0]):
        raise ValueError("a flow names a link that does not exist")
    rates = np.zeros(flow_cap.shape[0])
    _max_min_fair(link_cap, ptr, flat, flow_cap, rates)
    return rates
