"""Placement: turn a job's demand into concrete nodes and GPUs, by one rule for every policy.

The rule (:func:`simulator.core.kernels.place_into`, compiled; compiled policy passes call it
directly and Python policies through :class:`Placer`):

* A job whose GPUs fit on one node of the cluster (by capacity) is placed on a single node,
  chosen by the scoring mode (best-fit / spread / first-fit).
* A job larger than any eligible node is a multi-node gang: whole GPUs on the fewest nodes,
  then tightest fit, then fewest racks (see :func:`simulator.core.kernels.select_gang`). CPU
  and memory are split over its nodes in proportion to the GPUs taken on each.
* With ``allow_split=True``, a job that could fit one node may also be spread when no single
  node has room now.
* A pod-shaped job (``pods > 0`` in the trace) is placed pod by pod instead: each pod takes
  ``num_gpus / pods`` whole GPUs and its share of CPU and memory on one node, on the node the
  scoring mode prefers with the job's earlier pods counted; a one-pod job is never split (see
  :func:`simulator.core.kernels._place_pods`). Jobs without pods keep the rules above.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.core import kernels
from simulator.core.cluster import ClusterState
from simulator.core.jobs import JobTable
from simulator.core.refs import buf_ref

__all__ = ["Placement", "Placer"]


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


class Placer:
    """Finds placements on a cluster state (or a read-only view of one) without changing it.

    Args:
        cluster: the state to read (a :class:`~simulator.core.cluster.ClusterState` or the
            policy's :class:`~simulator.core.view.ClusterView`): anything with ``arrays``.
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
        self._arrays = cluster.ref
        self._max_cap: dict[int, int] = {}
        num_nodes, g = cluster.gpu_free.shape
        self._buf_arrays = kernels.new_buf(num_nodes, num_nodes * g)
        self._buf = buf_ref(self._buf_arrays)

    def max_node_gpus(self, type_mask: int) -> int:
        """Largest GPU capacity of a node whose model satisfies ``type_mask``."""
        cap = self._max_cap.get(type_mask)
        if cap is None:
            cap = self._max_cap[type_mask] = int(kernels.max_node_gpus(self._arrays, type_mask))
        return cap

    def place(self, jobs: JobTable, j: int, type_mask: int | None = None) -> Placement | None:
        """Placement for job ``j`` on the current free resources, or None if it cannot start.

        ``type_mask``: GPU model bits to place on instead of the job's own (a policy that
        picks the GPU type, e.g. Gavel's); None = the job's.
        """
        c = jobs.class_of[j]
        n, milli, mask, cpus, mem = jobs.demands[c]
        if type_mask is not None:
            mask = int(type_mask)
        buf = self._buf_arrays
        k = kernels.place_into(
            self._arrays,
            n,
            milli,
            mask,
            cpus,
            mem,
            jobs.class_pods[c],
            n <= self.max_node_gpus(mask),
            self.mode,
            self.allow_split,
            self.indexed,
            self._buf,
        )
        if k < 0:
            return None
        return Placement(
            buf.nodes[:k].copy(),
            buf.gpus[:n].copy(),
            milli,
            buf.cpu[:k].copy(),
            buf.mem[:k].copy(),
        )

    def place_pods_in(self, jobs: JobTable, j: int, level: int, whole: bool) -> Placement | None:
        """Placement of pod-shaped job ``j`` inside one domain of ``level``, or None.

        Level 0: all pods on one node; 1: in one rack; 2: anywhere (see
        :func:`simulator.core.kernels.place_pods_in`); ``whole``: only entirely free nodes.
        """
        c = jobs.class_of[j]
        n, milli, mask, cpus, mem = jobs.demands[c]
        buf = self._buf_arrays
        k = kernels.place_pods_in(
            self._arrays, n, mask, cpus, mem, jobs.class_pods[c], self.mode, level, whole, self._buf
        )
        if k < 0:
            return None
        return Placement(
            buf.nodes[:k].copy(),
            buf.gpus[:n].copy(),
            milli,
            buf.cpu[:k].copy(),
            buf.mem[:k].copy(),
        )

    def never_fits_reason(self, jobs: JobTable, j: int) -> str:
        """Why job ``j`` cannot be placed even on the idle cluster, in words.

        E.g. ``no node can hold one pod (8 GPUs, 120 CPUs)``; meant for jobs whose
        :meth:`fits_empty` is false.
        """
        c = jobs.class_of[j]
        n, milli, mask, cpus, mem = jobs.demands[c]
        pods = jobs.class_pods[c]
        if mask < 0:
            return "no node has the GPU model asked for"
        if pods > 1:
            g, cpp, mpp = n // pods, cpus / pods, mem / pods
            shape = _words(g, milli, cpp, mpp)
            one = kernels.fits_empty(
                self._arrays, g, milli, mask, cpp, mpp, 1, g <= self.max_node_gpus(mask), False
            )
            if not one:
                return f"no node can hold one pod ({shape})"
            return f"the nodes cannot hold all {pods} pods ({shape} each)"
        if pods == 1:
            return f"no node can hold its one pod ({_words(n, milli, cpus, mem)})"
        if n <= self.max_node_gpus(mask):
            return f"no node can hold it ({_words(n, milli, cpus, mem)})"
        return f"the cluster cannot hold it ({_words(n, milli, cpus, mem)})"

    def fits_empty(self, jobs: JobTable, j: int) -> bool:
        """Whether job ``j`` could be placed on this cluster with every node up and idle."""
        c = jobs.class_of[j]
        n, milli, mask, cpus, mem = jobs.demands[c]
        return bool(
            kernels.fits_empty(
                self._arrays,
                n,
                milli,
                mask,
                cpus,
                mem,
                jobs.class_pods[c],
                n <= self.max_node_gpus(mask),
                self.allow_split,
            )
        )


def _words(gpus: int, milli: int, cpus: float, mem: float) -> str:
    """A demand as ``8 GPUs, 120 CPUs, 900 GB`` (zero dimensions left out)."""
    parts = []
    if gpus and milli < kernels.MILLI:
        parts.append(f"{milli} milli-GPU")
    elif gpus:
        parts.append(f"{gpus} GPU" + ("s" if gpus != 1 else ""))
    if cpus:
        parts.append(f"{cpus:g} CPUs")
    if mem:
        parts.append(f"{mem:g} GB")
    return ", ".join(parts) or "nothing"
