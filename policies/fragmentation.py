"""GPU fragmentation (Weng et al., ATC'23) and the node scores FGD is compared with.

Fragmentation measure (FGD paper, section 3). A workload is a set of *task types* ``m`` with a
popularity ``p_m`` (share of tasks), each asking for ``g_m`` GPUs of ``d_m`` milli-GPU each
(``g_m = 1, d_m < 1000`` for a shared GPU; ``d_m = 1000`` for whole GPUs; ``g_m = 0`` for a
CPU-only task), ``c_m`` CPU cores and possibly a GPU-model constraint. For a node ``n`` with
free milli-GPU ``f_1..f_G`` per GPU and ``R_n = sum f_k``, the GPU capacity task ``m`` cannot
use is::

    F_n(m) = R_n                       if m asks for no GPU, or n cannot host m at all
                                       (too few CPU cores, wrong GPU model, or fewer than g_m
                                       GPUs with f_k >= d_m)
    F_n(m) = sum of f_k with f_k < d_m otherwise (GPUs too full for m)

and the node's fragmentation for the workload is the expectation ``F_n = sum_m p_m F_n(m)``
(milli-GPU). The cluster's is the sum over nodes. FGD places a task on the node (and GPU) where
``F_n`` grows least (the steepest descent of cluster fragmentation). Memory is not part of a
task type, as in the paper and its artifact.

Baseline node scores (definitions of the paper's artifact, hkust-adsl/kubernetes-scheduler-
simulator, reimplemented). By default nodes are ranked by the exact values; with
``integer_scores`` by the artifact's Kubernetes node scores, integers 0-100 (FGD:
``int(100 sigmoid(-increase/1000))``), which makes many more ties. Exact ties go to the node
with the smallest caller-supplied key (random in the policy, as Kubernetes picks at random
among equal scores):

* ``random``: any feasible node (all costs equal, the tie-break key decides); a random GPU.
* ``dotprod``: smallest dot product of the node's free ``(CPU, GPU)`` vector and the task's
  request, each normalised by ``(max_cpu, max_gpu_milli)`` (the artifact's "merge" GPU
  dimension and "max" normalisation).
* ``gpu_clustering``: nodes already running only tasks of the same GPU shape first (tag =
  shared GPU, or k whole GPUs), then nodes running that shape among others, then idle nodes,
  then nodes of other shapes; within a tier the node with less free GPU.
* ``gpu_packing``: a task that fits on already-shared GPUs first (the fuller those GPUs the
  better), then on partly used nodes (fewer newly opened GPUs first), then on idle nodes (the
  smaller the better).
* ``bestfit``: smallest weighted leftover ``0.5 (cpu_free - c)/max_cpu + 0.5 (gpu_free -
  g d)/max_gpu_milli``.

For shared-GPU tasks every score but ``random`` takes the feasible GPU with the least free
milli-GPU (best fit); whole-GPU tasks take whole free GPUs.

Each kernel ``_name`` is jitted (options from :data:`simulator.core.kernels.JIT_OPTIONS`) and has a
checked public wrapper ``name``. Node arrays follow :class:`simulator.core.cluster.ClusterState`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.core.jit import jit, jit_inline
from simulator.core.kernels import _type_ok

__all__ = [
    "BASELINE_SCORES",
    "TaskTypes",
    "task_types",
    "node_frag",
    "cluster_frag",
    "fgd_select",
    "score_select",
    "shape_tag",
]

MILLI = 1000
_EPS = 1e-9
_TIE = 1e-7
"""Two costs closer than this (milli-GPU) are a tie."""

RANDOM, DOTPROD, GPU_CLUSTERING, GPU_PACKING, BESTFIT = 0, 1, 2, 3, 4
BASELINE_SCORES = {
    "random": RANDOM,
    "dotprod": DOTPROD,
    "gpu_clustering": GPU_CLUSTERING,
    "gpu_packing": GPU_PACKING,
    "bestfit": BESTFIT,
}
"""Names of the baseline scores of :func:`score_select`."""


class TaskTypes(NamedTuple):
    """A workload as task types (one entry per type) and their popularity (sums to 1)."""

    gpus: np.ndarray  # int32[T]
    milli: np.ndarray  # int32[T]
    cpus: np.ndarray  # float64[T]
    mask: np.ndarray  # int64[T]
    pop: np.ndarray  # float64[T]


def task_types(
    num_gpus: np.ndarray,
    milli: np.ndarray,
    cpus: np.ndarray,
    type_mask: np.ndarray,
    popularity_threshold: float = 1.0,
    step: int = 1,
    include_cpu_tasks: bool = True,
) -> TaskTypes:
    """The workload's task types: distinct ``(GPUs, milli-GPU, CPU cores, GPU models)`` demands.

    Types are sorted by popularity (most frequent first, ties by demand); the most popular ones
    are kept, ``step`` at a time, until they cover ``popularity_threshold`` of the tasks, and
    their popularity is renormalised to sum to 1 (the FGD artifact keeps the top 60 % in steps
    of 10 types).

    Args:
        num_gpus: GPUs per task.
        milli: milli-GPU per GPU per task (ignored when ``num_gpus`` is 0).
        cpus: CPU cores per task.
        type_mask: allowed GPU-model bit mask per task (0 = any).
        popularity_threshold: share of tasks the kept types must cover, in (0, 1].
        step: number of types added at a time.
        include_cpu_tasks: count CPU-only tasks as a task type.
    """
    if not 0 < popularity_threshold <= 1:
        raise ValueError("popularity_threshold must be in (0, 1]")
    if step < 1:
        raise ValueError("step must be >= 1")
    g = np.asarray(num_gpus, dtype=np.int64)
    d = np.where(g > 0, np.asarray(milli, dtype=np.int64), 0)
    keep = np.ones(len(g), dtype=bool) if include_cpu_tasks else g > 0
    table = np.stack(
        [g, d, np.asarray(cpus, dtype=np.float64), np.asarray(type_mask, dtype=np.int64)], axis=1
    )[keep]
    if not len(table):
        z = np.zeros(0)
        return TaskTypes(z.astype(np.int32), z.astype(np.int32), z, z.astype(np.int64), z)
    uniq, counts = np.unique(table, axis=0, return_counts=True)
    order = np.lexsort((*uniq.T[::-1], -counts))
    uniq, counts = uniq[order], counts[order]
    cum = np.cumsum(counts) / counts.sum()
    k = 0
    while k < len(uniq) and (k == 0 or cum[k - 1] < popularity_threshold - 1e-12):
        k = min(k + step, len(uniq))
    uniq, counts = uniq[:k], counts[:k]
    return TaskTypes(
        uniq[:, 0].astype(np.int32),
        uniq[:, 1].astype(np.int32),
        uniq[:, 2].astype(np.float64),
        uniq[:, 3].astype(np.int64),
        counts / counts.sum(),
    )


def shape_tag(num_gpus: int, milli: int) -> int:
    """GPU-shape tag of a task for ``gpu_clustering``: -1 no GPU, 0 shared GPU, k whole GPUs."""
    if num_gpus <= 0:
        return -1
    return 0 if milli < MILLI else int(num_gpus)


# ---------------------------------------------------------------------- kernels


@jit_inline
def _node_frag(row, cpu_free, model, t_gpus, t_milli, t_cpus, t_mask, t_pop):
    """Expected unusable milli-GPU ``F_n`` of one node (GPU row ``row``)."""
    total = 0
    for v in row:
        if v > 0:
            total += v
    if total == 0:
        return 0.0
    frag = 0.0
    for m in range(t_gpus.shape[0]):
        p = t_pop[m]
        if t_gpus[m] == 0 or not _type_ok(model, t_mask[m]) or cpu_free + _EPS < t_cpus[m]:
            frag += p * total
            continue
        fits = 0
        small = 0
        for v in row:
            if v < 0:
                continue
            if v >= t_milli[m]:
                fits += 1
            else:
                small += v
        frag += p * (small if fits >= t_gpus[m] else total)
    return frag


@jit
def _cluster_frag(gpu_free, cpu_free, node_model, t_gpus, t_milli, t_cpus, t_mask, t_pop, out):
    for i in range(gpu_free.shape[0]):
        out[i] = _node_frag(
            gpu_free[i], cpu_free[i], node_model[i], t_gpus, t_milli, t_cpus, t_mask, t_pop
        )
    return out


@jit_inline
def _fits_node(i, free_full, gpu_free, cpu_free, mem_free, node_model, node_up, n, milli, c, m, k):
    """Whether a single-node task fits node ``i`` now."""
    if not node_up[i] or not _type_ok(node_model[i], k):
        return False
    if cpu_free[i] + _EPS < c or mem_free[i] + _EPS < m:
        return False
    if n == 0:
        return True
    if milli >= MILLI:
        return free_full[i] >= n
    for v in gpu_free[i]:
        if v >= milli:
            return True
    return False


@jit
def _better(cost, key, best_cost, best_key, have):
    if not have:
        return True
    if cost < best_cost - _TIE:
        return True
    return cost <= best_cost + _TIE and key < best_key


@jit_inline
def _node_choices(
    gpu_free,
    cpu_free,
    i,
    model,
    n_gpus,
    milli,
    cpus,
    t_gpus,
    t_milli,
    t_cpus,
    t_mask,
    t_pop,
    quantize,
    row,
    out_d,
    out_slot,
):
    """The FGD costs of a task on node ``i``, in the order :func:`_fgd_select` weighs them.

    Writes ``(fragmentation increase, GPU slot or -1)`` pairs into ``out_d``/``out_slot`` and
    returns how many: a shared-GPU task has one per distinct free value of the node's GPUs
    (the first slot of each), any other task one. They depend on the node's GPU row, its free
    CPU, its model and the task only, so they can be kept while the node does not change.
    """
    base = _node_frag(gpu_free[i], cpu_free[i], model, t_gpus, t_milli, t_cpus, t_mask, t_pop)
    left = cpu_free[i] - cpus
    k = 0
    if n_gpus > 0 and milli < MILLI:
        for g in range(gpu_free.shape[1]):
            v = gpu_free[i, g]
            if v < milli:
                continue
            seen = False
            for h in range(g):
                if gpu_free[i, h] == v:
                    seen = True
                    break
            if seen:
                continue  # same free value: same fragmentation
            row[:] = gpu_free[i]
            row[g] = v - milli
            d = _node_frag(row, left, model, t_gpus, t_milli, t_cpus, t_mask, t_pop) - base
            out_d[k] = _fgd_int_cost(d) if quantize else d
            out_slot[k] = g
            k += 1
        return k
    row[:] = gpu_free[i]
    if n_gpus > 0:
        taken = 0
        for g in range(gpu_free.shape[1]):
            if taken < n_gpus and row[g] == MILLI:
                row[g] = 0
                taken += 1
    d = _node_frag(row, left, model, t_gpus, t_milli, t_cpus, t_mask, t_pop) - base
    out_d[0] = _fgd_int_cost(d) if quantize else d
    out_slot[0] = -1
    return 1


@jit
def _fgd_select(
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
    t_gpus,
    t_milli,
    t_cpus,
    t_mask,
    t_pop,
    tiebreak,
    quantize,
):
    """(node, GPU slot or -1, fragmentation increase) of the FGD choice; node -1 if none fits."""
    best, best_slot, best_d, best_key = -1, -1, 0.0, 0.0
    g_count = gpu_free.shape[1]
    row = np.empty(g_count, dtype=gpu_free.dtype)
    cd = np.empty(max(g_count, 1), dtype=np.float64)
    cs = np.empty(max(g_count, 1), dtype=np.int64)
    for i in range(gpu_free.shape[0]):
        if not _fits_node(
            i,
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
        ):
            continue
        k = _node_choices(
            gpu_free,
            cpu_free,
            i,
            node_model[i],
            n_gpus,
            milli,
            cpus,
            t_gpus,
            t_milli,
            t_cpus,
            t_mask,
            t_pop,
            quantize,
            row,
            cd,
            cs,
        )
        for c in range(k):
            if _better(cd[c], tiebreak[i], best_d, best_key, best >= 0):
                best, best_slot, best_d, best_key = i, cs[c], cd[c], tiebreak[i]
    return best, best_slot, best_d


class FgdMemo(NamedTuple):
    """Kept FGD costs per (node, demand class), valid while the node's state is unchanged.

    ``snap``/``snap_cpu`` hold each node's GPU row and free CPU when its costs were last
    computed; ``epoch[i]`` counts the changes seen; a class's entry of node ``i`` is valid
    when ``entry_epoch[i, c] == epoch[i]``. Built by :func:`new_fgd_memo`.
    """

    snap: np.ndarray  # gpu_free dtype [nodes, G]: the state the entries were computed on
    snap_cpu: np.ndarray  # float64[nodes]
    epoch: np.ndarray  # int64[nodes]
    entry_epoch: np.ndarray  # int64[nodes, classes] (-1: never computed)
    count: np.ndarray  # int64[nodes, classes]: choices kept
    d: np.ndarray  # float64[nodes, classes, G]: their costs
    slot: np.ndarray  # int64[nodes, classes, G]: their GPU slots (-1: whole GPUs)


MEMO_LIMIT = 1 << 23
"""Largest nodes x classes x GPUs per node kept by :class:`FgdMemo` (about 130 MB); above it
the compiled FGD pass scores every node afresh at each placement (same choices)."""


def new_fgd_memo(gpu_free: np.ndarray, num_classes: int) -> tuple[FgdMemo, bool]:
    """An empty :class:`FgdMemo` for this cluster and trace, and whether it is used.

    Above :data:`MEMO_LIMIT` the memo is empty (no node, no class) and not used.
    """
    nodes, g_count = gpu_free.shape
    g_count = max(g_count, 1)
    used = nodes * max(num_classes, 1) * g_count <= MEMO_LIMIT
    if not used:
        nodes, num_classes = 0, 0
    shape = (nodes, max(num_classes, 1))
    return FgdMemo(
        snap=np.full((nodes, gpu_free.shape[1]), -2, dtype=gpu_free.dtype),
        snap_cpu=np.full(nodes, np.nan),
        epoch=np.zeros(nodes, dtype=np.int64),
        entry_epoch=np.full(shape, -1, dtype=np.int64),
        count=np.zeros(shape, dtype=np.int64),
        d=np.zeros((*shape, g_count), dtype=np.float64),
        slot=np.zeros((*shape, g_count), dtype=np.int64),
    ), used


@jit
def _fgd_select_memo(
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
    t_gpus,
    t_milli,
    t_cpus,
    t_mask,
    t_pop,
    tiebreak,
    quantize,
    cls,
    memo,
):
    """:func:`_fgd_select` for a task of demand class ``cls``, reusing ``memo``'s costs.

    The same comparisons in the same order, on costs recomputed only for nodes whose GPU row
    or free CPU changed since the class's entry was made: the same choice.
    """
    best, best_slot, best_d, best_key = -1, -1, 0.0, 0.0
    g_count = gpu_free.shape[1]
    row = np.empty(g_count, dtype=gpu_free.dtype)
    for i in range(gpu_free.shape[0]):
        if not _fits_node(
            i,
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
        ):
            continue
        same = memo.snap_cpu[i] == cpu_free[i]
        if same:
            for g in range(g_count):
                if memo.snap[i, g] != gpu_free[i, g]:
                    same = False
                    break
        if not same:
            memo.snap[i, :] = gpu_free[i]
            memo.snap_cpu[i] = cpu_free[i]
            memo.epoch[i] += 1
        if memo.entry_epoch[i, cls] != memo.epoch[i]:
            memo.count[i, cls] = _node_choices(
                gpu_free,
                cpu_free,
                i,
                node_model[i],
                n_gpus,
                milli,
                cpus,
                t_gpus,
                t_milli,
                t_cpus,
                t_mask,
                t_pop,
                quantize,
                row,
                memo.d[i, cls],
                memo.slot[i, cls],
            )
            memo.entry_epoch[i, cls] = memo.epoch[i]
        for c in range(memo.count[i, cls]):
            d = memo.d[i, cls, c]
            if _better(d, tiebreak[i], best_d, best_key, best >= 0):
                best, best_slot, best_d, best_key = i, memo.slot[i, cls, c], d, tiebreak[i]
    return best, best_slot, best_d


@jit
def _fgd_int_cost(d):
    """The artifact's integer score ``int(100 sigmoid(-d / 1000))``, negated (a cost)."""
    return -float(int(100.0 / (1.0 + np.exp(d / 1000.0))))


@jit
def _best_fit_slot(gpu_free, i, milli):
    best = -1
    for g in range(gpu_free.shape[1]):
        v = gpu_free[i, g]
        if v >= milli and (best < 0 or v < gpu_free[i, best]):
            best = g
    return best


@jit
def _random_slot(gpu_free, i, milli, u):
    count = 0
    for v in gpu_free[i]:
        if v >= milli:
            count += 1
    pick = min(int(u * count), count - 1)
    for g in range(gpu_free.shape[1]):
        if gpu_free[i, g] >= milli:
            if pick == 0:
                return g
            pick -= 1
    return -1


@jit
def _packing_score(gpu_free, free_full, capacity, i, n_gpus, milli, quantize):
    """GPU-packing score of node ``i`` (higher is better; integer as the artifact's if asked)."""
    if free_full[i] == capacity[i]:
        return max(33.0 - free_full[i], float(free_full[i])) if quantize else 33.0 - free_full[i]
    vals = np.sort(gpu_free[i])
    need = n_gpus
    opened = 0
    left = 0.0
    for v in vals:
        if need == 0:
            break
        if v >= milli:
            need -= 1
            left += (v * 100) // MILLI if quantize else v / 10.0
            if v == MILLI:
                opened += 1
    if opened > 0:
        return max(50.0 - opened, 33.0)
    return max(100.0 - (left // 10 if quantize else left / 10.0), 50.0)


@jit
def _clustering_score(node_tags, i, tag, free_milli, max_gpu, quantize):
    has = node_tags[i, tag] > 0
    kinds = 0
    for t in range(node_tags.shape[1]):
        if node_tags[i, t] > 0:
            kinds += 1
    if has:
        tier = 3 if kinds == 1 else 2
    else:
        tier = 1 if kinds == 0 else 0
    if quantize:
        return 25.0 * tier + (25 * int(max_gpu - free_milli)) // int(max_gpu)
    return 25.0 * tier + 25.0 * (max_gpu - free_milli) / max_gpu


@jit
def _score_select(
    mode,
    free_full,
    gpu_free,
    cpu_free,
    mem_free,
    node_model,
    node_up,
    capacity,
    n_gpus,
    milli,
    cpus,
    mem,
    type_mask,
    node_tags,
    tiebreak,
    slot_u,
    max_cpu,
    max_gpu,
    quantize,
):
    """(node, GPU slot or -1) chosen by baseline score ``mode``; node -1 if none fits."""
    best, best_cost, best_key = -1, 0.0, 0.0
    req = float(n_gpus * milli)
    tag = -1 if n_gpus == 0 else (0 if milli < MILLI else n_gpus)
    for i in range(gpu_free.shape[0]):
        if not _fits_node(
            i,
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
        ):
            continue
        free_milli = 0.0
        for v in gpu_free[i]:
            if v > 0:
                free_milli += v
        cpu_term = cpu_free[i] if cpu_free[i] < np.inf else 0.0
        cost = 0.0
        if mode == DOTPROD:
            cost = cpu_term * cpus / max_cpu**2 + free_milli * req / max_gpu**2
            if quantize:  # the artifact's int(100 (1 - dot / 2)), negated
                cost = -float(int(100.0 * (1.0 - cost / 2.0)))
        elif mode == BESTFIT:
            cpu_left = cpu_term - cpus if cpu_free[i] < np.inf else 0.0
            cost = 0.5 * cpu_left / max_cpu + 0.5 * (free_milli - req) / max_gpu
            if quantize:  # the artifact's int(100 (1 - leftover)), negated
                cost = -float(int(100.0 * (1.0 - cost)))
        elif mode == GPU_PACKING and n_gpus > 0:
            cost = -_packing_score(gpu_free, free_full, capacity, i, n_gpus, milli, quantize)
        elif mode == GPU_CLUSTERING and n_gpus > 0:
            cost = -_clustering_score(node_tags, i, tag, free_milli, max_gpu, quantize)
        if _better(cost, tiebreak[i], best_cost, best_key, best >= 0):
            best, best_cost, best_key = i, cost, tiebreak[i]
    slot = -1
    if best >= 0 and n_gpus > 0 and milli < MILLI:
        if mode == RANDOM:
            slot = _random_slot(gpu_free, best, milli, slot_u)
        else:
            slot = _best_fit_slot(gpu_free, best, milli)
    return best, slot


# ---------------------------------------------------------------------- public wrappers


def _check_types(types: TaskTypes) -> None:
    expect = (np.int32, np.int32, np.float64, np.int64, np.float64)
    for name, arr, dtype in zip(TaskTypes._fields, types, expect, strict=True):
        if arr.dtype != dtype or arr.ndim != 1 or arr.shape != types.gpus.shape:
            raise TypeError(f"task types: {name} must be 1-D {np.dtype(dtype).name}")


def _check_nodes(gpu_free, cpu_free, node_model, *more) -> None:
    if gpu_free.dtype != np.int32 or gpu_free.ndim != 2:
        raise TypeError("gpu_free must be int32[nodes, GPU slots]")
    n = gpu_free.shape[0]
    for name, arr, dtype in (
        ("cpu_free", cpu_free, np.float64),
        ("node_model", node_model, np.int32),
        *more,
    ):
        if arr.dtype != dtype or arr.shape[0] != n:
            raise TypeError(f"{name} must be {np.dtype(dtype).name} with {n} rows")


def node_frag(gpu_row: np.ndarray, cpu_free: float, model: int, types: TaskTypes) -> float:
    """Fragmentation ``F_n`` (milli-GPU) of one node with free milli-GPU ``gpu_row`` per GPU slot.

    Slots of -1 are GPUs the node does not have. ``model`` is the node's GPU model id.
    """
    _check_types(types)
    row = np.asarray(gpu_row, dtype=np.int32)
    return float(_node_frag(row, float(cpu_free), int(model), *types))


def cluster_frag(
    gpu_free: np.ndarray, cpu_free: np.ndarray, node_model: np.ndarray, types: TaskTypes
) -> np.ndarray:
    """``F_n`` of every node (milli-GPU); the cluster's fragmentation is the sum."""
    _check_types(types)
    _check_nodes(gpu_free, cpu_free, node_model)
    out = np.zeros(gpu_free.shape[0])
    return _cluster_frag(gpu_free, cpu_free, node_model, *types, out)


def fgd_select(
    state,
    n_gpus: int,
    milli: int,
    cpus: float,
    mem: float,
    type_mask: int,
    types: TaskTypes,
    tiebreak: np.ndarray | None = None,
    integer_scores: bool = False,
) -> tuple[int, int, float]:
    """FGD placement of a single-node task: ``(node, GPU slot, fragmentation increase)``.

    ``state`` is any object with the arrays of :class:`~simulator.core.cluster.ClusterState`. The
    node (and, for a shared-GPU task, the GPU) is the feasible one whose ``F_n`` grows least;
    ties go to the smallest ``tiebreak`` key (default: lowest node id). Slot is -1 for whole-GPU
    and CPU-only tasks (take any whole free GPUs); node is -1 when nothing fits. With
    ``integer_scores`` nodes are ranked by the artifact's Kubernetes score
    ``int(100 sigmoid(-increase / 1000))`` instead (coarser: more ties), and the returned third
    value is that score, negated.
    """
    _check_types(types)
    _check_nodes(
        state.gpu_free,
        state.cpu_free,
        state.node_model,
        ("mem_free", state.mem_free, np.float64),
        ("free_full", state.free_full, np.int32),
        ("node_up", state.node_up, np.bool_),
    )
    key = _tiebreak(tiebreak, state.gpu_free.shape[0])
    node, slot, d = _fgd_select(
        state.free_full,
        state.gpu_free,
        state.cpu_free,
        state.mem_free,
        state.node_model,
        state.node_up,
        int(n_gpus),
        int(milli),
        float(cpus),
        float(mem),
        int(type_mask),
        *types,
        key,
        bool(integer_scores),
    )
    return int(node), int(slot), float(d)


def score_select(
    score: str,
    state,
    n_gpus: int,
    milli: int,
    cpus: float,
    mem: float,
    type_mask: int,
    node_tags: np.ndarray | None = None,
    tiebreak: np.ndarray | None = None,
    slot_u: float = 0.0,
    max_cpu: float = 128.0,
    max_gpu_milli: float = 8000.0,
    integer_scores: bool = False,
) -> tuple[int, int]:
    """Baseline placement of a single-node task: ``(node, GPU slot)``; node -1 if none fits.

    Args:
        score: one of :data:`BASELINE_SCORES`.
        state: object with the arrays of :class:`~simulator.core.cluster.ClusterState`.
        n_gpus: GPUs of the task.
        milli: milli-GPU per GPU.
        cpus: CPU cores.
        mem: memory, GB (feasibility only).
        type_mask: allowed GPU models (0 = any).
        node_tags: ``int32[N, G + 1]`` running tasks per node by :func:`shape_tag`
            (``gpu_clustering`` only).
        tiebreak: per-node key, smallest wins exact ties (default: node id).
        slot_u: uniform number in [0, 1) choosing the GPU of a shared task under ``random``.
        max_cpu: CPU normalisation, cores (the artifact's 128).
        max_gpu_milli: GPU normalisation, milli-GPU (the artifact's 8000).
        integer_scores: rank by the artifact's integer 0-100 Kubernetes scores (more ties).
    """
    if score not in BASELINE_SCORES:
        raise ValueError(f"unknown score {score!r}; choose one of {sorted(BASELINE_SCORES)}")
    g = state.gpu_free.shape[1]
    _check_nodes(
        state.gpu_free,
        state.cpu_free,
        state.node_model,
        ("mem_free", state.mem_free, np.float64),
        ("free_full", state.free_full, np.int32),
        ("node_up", state.node_up, np.bool_),
        ("capacity", state.capacity, np.int32),
    )
    if node_tags is None:
        node_tags = np.zeros((state.gpu_free.shape[0], g + 1), dtype=np.int32)
    if node_tags.dtype != np.int32 or node_tags.shape != (state.gpu_free.shape[0], g + 1):
        raise TypeError(f"node_tags must be int32[nodes, {g + 1}]")
    node, slot = _score_select(
        BASELINE_SCORES[score],
        state.free_full,
        state.gpu_free,
        state.cpu_free,
        state.mem_free,
        state.node_model,
        state.node_up,
        state.capacity,
        int(n_gpus),
        int(milli),
        float(cpus),
        float(mem),
        int(type_mask),
        node_tags,
        _tiebreak(tiebreak, state.gpu_free.shape[0]),
        float(slot_u),
        float(max_cpu),
        float(max_gpu_milli),
        bool(integer_scores),
    )
    return int(node), int(slot)


def _tiebreak(key: np.ndarray | None, n: int) -> np.ndarray:
    if key is None:
        return np.arange(n, dtype=np.float64)
    key = np.asarray(key, dtype=np.float64)
    if key.shape != (n,):
        raise ValueError(f"tiebreak must have one key per node ({n})")
    return key
