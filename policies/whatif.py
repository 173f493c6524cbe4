"""What-if placement on a private copy of the cluster's free resources.

Policies may not change the simulator's state, but preemption, backfilling and consolidation
need to ask "would job J fit if these jobs were gone / once those jobs end?". A
:class:`Scratch` holds its own :class:`~simulator.core.cluster.ClusterState` of the same cluster,
reset from the live view on demand, and places jobs on it with the shared
:class:`~simulator.core.placement.Placer`, so answers are computed against placement reality
(nodes, GPU slots, CPU, memory, GPU models), never against GPU counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from simulator.core.cluster import ClusterState
from simulator.core.jit import jit
from simulator.core.jobs import JobTable
from simulator.core.kernels import copy_free, fits_on_nodes, new_buf, place_into, take
from simulator.core.placement import Placement, Placer
from simulator.core.refs import buf_ref
from simulator.core.view import SchedulerView

__all__ = ["Scratch", "find_victims", "find_victims_compiled", "give", "place_on"]


class Scratch:
    """A what-if copy of the cluster state with its own placer.

    Args:
        view: the scheduler view (its cluster's spec gives the shape).
        scoring: scoring of the scratch placer (use the policy's own).
        allow_split: as in :class:`~simulator.core.placement.Placer`.
    """

    def __init__(self, view: SchedulerView, scoring: str = "bestfit", allow_split: bool = False):
        self._view = view
        self.state = ClusterState(view.cluster.spec)
        self.placer = Placer(self.state, scoring=scoring, allow_split=allow_split)
        self.ref = self.state.ref
        """The scratch state for compiled passes (see :func:`find_victims_compiled`)."""
        num, g = self.state.gpu_free.shape
        self.buf = buf_ref(new_buf(num, num * g))
        """A placement buffer of its own for compiled passes."""

    def reset(self) -> Scratch:
        """Copy the live free resources into the scratch state; returns ``self``."""
        c = self._view.cluster
        self.load(c.gpu_free, c.cpu_free, c.mem_free, c.node_up)
        return self

    def load(
        self,
        gpu_free: np.ndarray,
        cpu_free: np.ndarray,
        mem_free: np.ndarray,
        node_up: np.ndarray | None = None,
    ) -> Scratch:
        """Set the scratch state to the given free resources (derived counters recomputed)."""
        self.state.load_free(gpu_free, cpu_free, mem_free, node_up)
        return self

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the scratch ``(gpu_free, cpu_free, mem_free)``."""
        st = self.state
        return st.gpu_free.copy(), st.cpu_free.copy(), st.mem_free.copy()

    def release(self, p: Placement) -> None:
        """Give back the resources of placement ``p`` (as if its job had ended)."""
        self.state.release(p.nodes, p.gpus, p.milli, p.cpus, p.mem)

    def take(self, p: Placement) -> None:
        """Take the resources of placement ``p``."""
        self.state.allocate(p.nodes, p.gpus, p.milli, p.cpus, p.mem)

    def fits(self, p: Placement) -> bool:
        """Whether placement ``p`` fits the scratch state's free resources."""
        st = self.state
        flat = st.gpu_free.reshape(-1)
        if len(p.gpus) and (flat[p.gpus] < p.milli).any():
            return False
        return bool(
            (st.cpu_free[p.nodes] + 1e-9 >= p.cpus).all()
            and (st.mem_free[p.nodes] + 1e-9 >= p.mem).all()
        )

    def place(self, jobs: JobTable, j: int) -> Placement | None:
        """Placement of job ``j`` on the scratch state, or None."""
        return self.placer.place(jobs, j)


def find_victims(
    scratch: Scratch, jobs: JobTable, j: int, candidates: Iterable[int]
) -> list[int] | None:
    """Smallest prefix-then-pruned set of running ``candidates`` whose removal lets ``j`` start.

    Candidates are taken in the given order (most preferred victim first) until job ``j`` can be
    placed on the scratch state; then every chosen victim except the last is spared again if
    ``j`` still fits without freeing it (the latest-preferred first). The answer is computed on
    real placements, so preempting exactly the returned jobs makes ``j`` placeable.

    Returns:
        The victims (possibly empty if ``j`` already fits), or None if even all candidates
        together do not make room.
    """
    scratch.reset()
    if scratch.place(jobs, j) is not None:
        return []
    chosen: list[int] = []
    for v in candidates:
        scratch.release(jobs.placements[v])
        chosen.append(v)
        if scratch.place(jobs, j) is not None:
            break
    else:
        return None
    return _prune(scratch, jobs, j, chosen)


def _prune(scratch: Scratch, jobs: JobTable, j: int, chosen: Sequence[int]) -> list[int]:
    keep = list(chosen)
    for v in reversed(chosen[:-1]):
        scratch.take(jobs.placements[v])
        if scratch.place(jobs, j) is not None:
            keep.remove(v)
        else:
            scratch.release(jobs.placements[v])
    return keep


@jit
def _prefer(prim, run_start, cands, a, b):
    """Whether candidate ``a`` (a position in ``cands``) is a more preferred victim than ``b``.

    Smaller primary key first, then the later start, then the later arrival: the order of
    ``np.lexsort((-job, -run_start, prim))`` that the Python policies sort victims by.
    """
    if prim[a] != prim[b]:
        return prim[a] < prim[b]
    ra, rb = run_start[cands[a]], run_start[cands[b]]
    if ra != rb:
        return ra > rb
    return cands[a] > cands[b]


@jit
def _sift(order, i, size, prim, run_start, cands):
    x = order[i]
    while True:
        m = 2 * i + 1
        if m >= size:
            break
        if m + 1 < size and _prefer(prim, run_start, cands, order[m + 1], order[m]):
            m += 1
        if not _prefer(prim, run_start, cands, order[m], x):
            break
        order[i] = order[m]
        i = m
    order[i] = x


@jit
def find_victims_compiled(es, sc, sbuf, j, cands, prim, ncand, mode, allow_split, out, order):
    """:func:`find_victims`, compiled, on scratch cluster ``sc`` with buffer ``sbuf``.

    Candidates are the running jobs ``cands[:ncand]`` in any order, with primary keys
    ``prim[:ncand]``; they are taken most preferred first (see :func:`_prefer`), as the
    Python policies' sorted lists give them, but only as far as needed: a heap yields them one
    by one (``order``: scratch of at least ``ncand`` entries). Writes the victims into ``out``
    and returns their number: 0 if ``j`` fits as things are, -1 if even all candidates
    together do not make room.

    Cost: one copy of the free resources, ``O(ncand)`` to build the heap, then per candidate
    taken ``O(log ncand)`` and a fit test. For a job that must take one node the fit test
    looks only at the nodes freed so far (:func:`~simulator.core.kernels.fits_on_nodes`):
    nothing fitted at the start, and only those nodes changed. Other jobs (gangs over several
    nodes) are placed on the whole scratch state at each step.
    """
    copy_free(sc, es.cl)
    cls = es.cls
    ja = es.jobs
    k = ja.cls[j]
    gpus, milli, mask = cls.gpus[k], cls.milli[k], cls.mask[k]
    cpus, mem, single, pods = cls.cpus[k], cls.mem[k], cls.single[k], cls.pods[k]
    if _place_class(sc, cls, k, mode, allow_split, sbuf) >= 0:
        return 0
    # one node whatever happens: a single-node job that is not split, or a one-pod job
    local = single and pods <= 1 and (pods == 1 or not allow_split or gpus <= 1)
    run_start = ja.run_start
    for i in range(ncand):
        order[i] = i
    for i in range(ncand // 2 - 1, -1, -1):
        _sift(order, i, ncand, prim, run_start, cands)
    num_nodes = sc.free_full.shape[0]
    seen = np.zeros(num_nodes, dtype=np.bool_)
    touched = np.empty(num_nodes, dtype=np.int64)
    nt = 0
    size = ncand
    chosen = 0
    fits = False
    while size > 0:
        v = cands[order[0]]
        size -= 1
        order[0] = order[size]
        _sift(order, 0, size, prim, run_start, cands)
        give(es, sc, v, 1)
        out[chosen] = v
        chosen += 1
        if local:
            a = ja.node_off[v]
            kv = ja.p_nodes[v]
            for m in range(kv):
                node = ja.p_node[a + m]
                if not seen[node]:
                    seen[node] = True
                    touched[nt] = node
                    nt += 1
            ok = fits_on_nodes(sc, ja.p_node[a : a + kv], kv, gpus, milli, mask, cpus, mem)
        else:
            ok = _place_class(sc, cls, k, mode, allow_split, sbuf) >= 0
        if ok:
            fits = True
            break
    if not fits:
        return -1
    # spare every victim but the last that j does not need, latest-preferred first
    keep = np.ones(chosen, dtype=np.bool_)
    for i in range(chosen - 2, -1, -1):
        v = out[i]
        give(es, sc, v, -1)
        if local:
            ok = fits_on_nodes(sc, touched, nt, gpus, milli, mask, cpus, mem)
        else:
            ok = _place_class(sc, cls, k, mode, allow_split, sbuf) >= 0
        if ok:
            keep[i] = False
        else:
            give(es, sc, v, 1)
    m = 0
    for i in range(chosen):
        if keep[i]:
            out[m] = out[i]
            m += 1
    return m


@jit
def give(es, sc, v, sign):
    """Release (``sign=1``) or take back (-1) running job ``v``'s placement on ``sc``."""
    ja = es.jobs
    a, g = ja.node_off[v], ja.gpu_off[v]
    b = a + ja.p_nodes[v]
    n = ja.num_gpus[v]
    take(
        sc,
        ja.p_node[a:b],
        ja.p_gpu[g : g + n],
        ja.milli[v] if n > 0 else 0,
        ja.p_cpu[a:b],
        ja.p_mem[a:b],
        sign,
    )


@jit
def place_on(es, sc, j, mode, allow_split, buf):
    """Where job ``j`` would start on cluster ``sc`` (a what-if state): nodes used, or -1.

    The shared placement rule for ``j``'s demand class (as :func:`~simulator.core.ops.place_job`
    on the live cluster), written into placement buffer ``buf``.
    """
    return _place_class(sc, es.cls, es.jobs.cls[j], mode, allow_split, buf)


@jit
def _place_class(sc, cls, k, mode, allow_split, buf):
    """The shared placement rule for demand class ``k`` on cluster ``sc``: nodes used, or -1."""
    return place_into(
        sc,
        cls.gpus[k],
        cls.milli[k],
        cls.mask[k],
        cls.cpus[k],
        cls.mem[k],
        cls.pods[k],
        cls.single[k],
        mode,
        allow_split,
        True,
        buf,
    )
