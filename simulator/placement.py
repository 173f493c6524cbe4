"""Placement: turn a job's demand into concrete nodes and GPUs using the compiled kernels.

One :class:`Placer` serves every policy, so all policies place jobs by the same rules:

* A job whose GPUs fit on one node of the cluster (by capacity) is placed on a single node,
  chosen by the scoring mode (best-fit / spread / first-fit).
* A job larger than any eligible node is a multi-node gang: whole GPUs on the fewest nodes,
  then tightest fit, then fewest racks (see :func:`simulator.kernels.select_gang`). CPU and
  memory are split over its nodes in proportion to the GPUs taken on each.
* With ``allow_split=True``, a job that could fit one node may also be spread when no single
  node has room now.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator import kernels
from simulator.cluster import MILLI, ClusterState
from simulator.jobs import JobTable

__all__ = ["Placement", "Placer"]

_new = tuple.__new__


def _frozen(a: np.ndarray) -> np.ndarray:
    """Mark an array read-only: cached arrays are shared by many placements."""
    a.flags.writeable = False
    return a


class Placement(NamedTuple):
    """Where a job runs.

    Attributes:
        nodes: node ids used (int64[k], ascending).
        gpus: flat GPU ids ``node * G + slot`` (int64[num_gpus]); empty for CPU-only jobs.
        milli: milli-GPU taken on each of those GPUs.
        cpus: CPU cores taken on each node in ``nodes``.
        mem: memory (GB) taken on each node in ``nodes``.
    """

    nodes: np.ndarray
    gpus: np.ndarray
    milli: int
    cpus: np.ndarray
    mem: np.ndarray
    stamp: tuple[int, int, int] | None = None
    """Set by :class:`Placer`: (state uid, state version, demand class) it was computed for.
    The engine skips re-validating a placement whose stamp matches the live state (not a
    what-if copy), unchanged since, and the job's demand; any other placement is checked."""


class Placer:
    """Finds placements on a :class:`ClusterState` without changing it.

    Args:
        cluster: the state to read (the policy's read-only view of it).
        scoring: ``bestfit`` (alias ``binpack``), ``spread`` (``worstfit``) or ``firstfit``.
        allow_split: let jobs that could fit one node span several when no node has room.
        indexed: find nodes for whole-GPU jobs through the free-GPU bucket index (default);
            ``False`` scans every node with the plain kernel instead: the reference path that
            tests compare the fast path with (same placements, slower).
    """

    def __init__(
        self,
        cluster: ClusterState,
        scoring: str = "bestfit",
        allow_split: bool = False,
        indexed: bool = True,
    ) -> None:
        if scoring not in kernels.SCORING_MODES:
            raise ValueError(
                f"unknown scoring {scoring!r}; choose one of {sorted(kernels.SCORING_MODES)}"
            )
        self.cluster = cluster
        self.mode = kernels.SCORING_MODES[scoring]
        self.allow_split = allow_split
        self.indexed = indexed
        self._max_cap: dict[int, int] = {}
        self._info: dict[int, tuple] = {}
        self._nodes: dict[int, np.ndarray] = {}

    def max_node_gpus(self, type_mask: int) -> int:
        """Largest GPU capacity of a node whose model satisfies ``type_mask``."""
        cap = self._max_cap.get(type_mask)
        if cap is None:
            c = self.cluster
            ok = np.array([kernels._type_ok(int(m), type_mask) for m in c.node_model])
            cap = int(c.capacity[ok].max()) if ok.any() else 0
            self._max_cap[type_mask] = cap
        return cap

    def _class_info(self, jobs: JobTable, c: int) -> tuple:
        n, milli, mask, cpus, mem = jobs.demands[c]
        single = n <= self.max_node_gpus(mask)
        if cpus == 0 and mem == 0:  # the cluster's shared zeros: allocation skips CPU/memory
            cpu_arr = mem_arr = self.cluster.zeros(1)
        else:
            cpu_arr, mem_arr = _frozen(np.array([cpus])), _frozen(np.array([mem]))
        # whole GPUs on one node: one kernel call searches the bucket index and picks GPUs
        indexed = self.indexed and single and n >= 1 and milli >= MILLI
        info = (n, milli, mask, cpus, mem, single, cpu_arr, mem_arr, indexed)
        self._info[c] = info
        return info

    def _node_array(self, node: int) -> np.ndarray:
        arr = self._nodes.get(node)
        if arr is None:
            arr = self._nodes[node] = _frozen(np.array([node], dtype=np.int64))
        return arr

    def place(self, jobs: JobTable, j: int) -> Placement | None:
        """Placement for job ``j`` on the current free resources, or None if it cannot start."""
        cls = jobs.class_of[j]
        info = self._info.get(cls) or self._class_info(jobs, cls)
        n, milli, mask, cpus, mem, single, cpu_arr, mem_arr, indexed = info
        c = self.cluster
        if milli >= MILLI:
            if n > c.free_gpu_total:
                return None
        elif c.allocated_milli + milli > c.total_gpus * MILLI:
            return None
        p = None
        if indexed:
            gpus = np.empty(n, dtype=np.int64)
            node = kernels._take_full(
                c.buckets,
                c.gpu_free,
                c.cpu_free,
                c.mem_free,
                c.node_model,
                c.node_up,
                n,
                cpus,
                mem,
                mask,
                self.mode,
                gpus,
            )
            if node >= 0:
                nodes = self._nodes.get(node)
                if nodes is None:
                    nodes = self._node_array(node)
                # tuple.__new__: a NamedTuple's own constructor is a slower Python function
                return _new(
                    Placement, (nodes, gpus, milli, cpu_arr, mem_arr, (c.uid, c.version, cls))
                )
        elif single:
            p = self._place_single(n, milli, cpus, mem, mask, cpu_arr, mem_arr)
        if single and (p is not None or not self.allow_split or n <= 1):
            return p and p._replace(stamp=(c.uid, c.version, cls))
        p = self._place_gang(n, cpus, mem, mask)
        return p and p._replace(stamp=(c.uid, c.version, cls))

    def _place_single(
        self,
        n: int,
        milli: int,
        cpus: float,
        mem: float,
        mask: int,
        cpu_arr: np.ndarray,
        mem_arr: np.ndarray,
    ) -> Placement | None:
        """Fractional-GPU and CPU-only jobs (and whole-GPU jobs: same rule, linear scan)."""
        c = self.cluster
        node, slot = kernels._select_node(
            c.free_full,
            c.gpu_free,
            c.cpu_free,
            c.mem_free,
            c.node_model,
            c.node_up,
            n,
            milli,
            cpus,
            mem,
            mask,
            self.mode,
        )
        if node < 0:
            return None
        if n == 0:
            gpus = np.empty(0, dtype=np.int64)
        elif milli < MILLI:
            gpus = np.array([node * c.gpu_free.shape[1] + slot], dtype=np.int64)
        else:
            gpus = np.empty(n, dtype=np.int64)
            kernels._pick_full_gpus(c.gpu_free, node, n, gpus, 0)
        return Placement(self._node_array(node), gpus, milli, cpu_arr, mem_arr)

    def _place_gang(self, n: int, cpus: float, mem: float, mask: int) -> Placement | None:
        c = self.cluster
        gpus = np.empty(n, dtype=np.int64)
        size = min(n, c.free_full.shape[0])
        nodes = np.empty(size, dtype=np.int64)
        counts = np.empty(size, dtype=np.int64)
        k = kernels._place_gang(
            c.free_full,
            c.gpu_free,
            c.cpu_free,
            c.mem_free,
            c.node_model,
            c.node_up,
            c.racks,
            c.rack_order,
            c.rack_start,
            n,
            cpus / n,
            mem / n,
            mask,
            gpus,
            nodes,
            counts,
        )
        if k < 0:
            return None
        nodes = nodes[:k]
        if cpus == 0 and mem == 0:
            zero = c.zeros(k)
            return Placement(nodes, gpus, MILLI, zero, zero)
        share = counts[:k] / n
        return Placement(nodes, gpus, MILLI, cpus * share, mem * share)

    def fits_empty(self, jobs: JobTable, j: int) -> bool:
        """Whether job ``j`` could be placed on this cluster with every node up and idle."""
        c = self.cluster
        n, milli = int(jobs.num_gpus[j]), int(jobs.milli[j])
        mask, cpus, mem = int(jobs.type_mask[j]), float(jobs.cpus[j]), float(jobs.mem[j])
        if mask < 0:
            return False
        gpu_free = np.where(c.gpu_free >= 0, MILLI, -1).astype(np.int32)
        up = np.ones_like(c.node_up)
        if n <= self.max_node_gpus(mask):
            node, _ = kernels._select_node(
                c.capacity,
                gpu_free,
                c.cpu_cap,
                c.mem_cap,
                c.node_model,
                up,
                n,
                milli,
                cpus,
                mem,
                mask,
                kernels.FIRST_FIT,
            )
            if node >= 0 or not self.allow_split or n <= 1:
                return node >= 0
        usable = np.empty(c.capacity.shape[0], dtype=np.int64)
        kernels._usable_gpus(
            c.capacity, c.cpu_cap, c.mem_cap, c.node_model, up, cpus / n, mem / n, mask, usable
        )
        return int(usable.sum()) >= n
