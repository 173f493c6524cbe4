"""The compiled pass of :class:`~policies.fgd.FgdPolicy`.

The queue is walked by the gang pass (:func:`policies.gang.gang_walk`, no starvation guard):
class heads in arrival order, a class skipped once its head does not fit. Placement is
:meth:`FgdPolicy.place` (the Python reference) on the live cluster with the same kernels of
:mod:`policies.fragmentation`; the tie-break keys and the random slot come from the run's
``numpy.random.Generator`` itself (Numba draws from the same stream), in the reference's order;
with ``tie_break="ranking"`` the keys are the run's node ranking, drawn once by
:meth:`FgdPolicy.setup` (before this pass is built) and shared with the reference.
With ``on_no_fit="reject"`` a task that fits nowhere is rejected in the walk, and the class's
next task is tried, as in the reference. ``gpu_clustering``'s per-node shape tags follow the
stop log.

Cost per pass: the walk's, with one node scoring (``O(nodes)``, FGD ``O(nodes x task types)``)
per class head tried. FGD keeps each node's costs per demand class
(:class:`~policies.fragmentation.FgdMemo`) and recomputes them only for nodes whose GPUs or
free CPU changed since: a check of ``O(GPUs per node)`` for the others.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from policies.fragmentation import _fgd_select, _fgd_select_memo, _score_select, new_fgd_memo
from policies.gang import gang_walk
from simulator.core.cluster import MILLI
from simulator.core.hooks import PASS_DONE
from simulator.core.jit import jit
from simulator.core.jobs import Status
from simulator.core.kernels import BEST_FIT, _pick_full_gpus
from simulator.core.ops import place_job, reject

__all__ = ["FgdPass", "new_fgd_pass"]

_RUNNING = Status.RUNNING


@jit
def _fgd_place(es, ps, j):
    """``FgdPolicy.place`` into ``es.buf`` (nodes used, or -1); rejects when told to."""
    ja, cl, buf = es.jobs, es.cl, es.buf
    n, milli, mask = ja.num_gpus[j], np.int64(ja.milli[j]), ja.type_mask[j]
    if n > ps.node_cap[ja.cls[j]] or es.cls.pods[ja.cls[j]] > 1:
        k = place_job(es, j, BEST_FIT, False, True)  # a gang, or pods: the shared rule
    else:
        cpus, mem = ja.cpus[j], ja.mem[j]
        num = cl.free_full.shape[0]
        key = ps.rng.random(num) if ps.random_keys else ps.fixed_keys
        t = ps.types
        if ps.fgd and ps.memo_on:
            node, slot, _ = _fgd_select_memo(
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
                t.gpus,
                t.milli,
                t.cpus,
                t.mask,
                t.pop,
                key,
                ps.integer_scores,
                ja.cls[j],
                ps.memo,
            )
        elif ps.fgd:
            node, slot, _ = _fgd_select(
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
                t.gpus,
                t.milli,
                t.cpus,
                t.mask,
                t.pop,
                key,
                ps.integer_scores,
            )
        else:
            u = ps.rng.random() if ps.random_slot else 0.0
            node, slot = _score_select(
                ps.score_mode,
                cl.free_full,
                cl.gpu_free,
                cl.cpu_free,
                cl.mem_free,
                cl.node_model,
                cl.node_up,
                cl.capacity,
                n,
                milli,
                cpus,
                mem,
                mask,
                ps.tags,
                key,
                u,
                ps.max_cpu,
                ps.max_gpu,
                ps.integer_scores,
            )
        k = -1
        if node >= 0:
            if n > 0:
                if milli < MILLI:
                    buf.gpus[0] = node * cl.gpu_free.shape[1] + slot
                else:
                    _pick_full_gpus(cl.gpu_free, node, n, buf.gpus, 0)
            buf.nodes[0] = node
            buf.cpu[0] = cpus
            buf.mem[0] = mem
            k = 1
    if k < 0 and ps.reject:
        code = reject(es, j, ps.reason)
        if code != 0:
            ps.state[2] = code
    return k


@jit
def _track(es, ps, j):
    """``FgdPolicy._track``: count a started task's GPU shape on its node (gpu_clustering)."""
    ja = es.jobs
    if not ps.clustering or ja.p_nodes[j] != 1:
        return 0
    n = ja.num_gpus[j]
    if n <= 0:
        return 0
    tag = 0 if ja.milli[j] < MILLI else n
    node = ja.p_node[ja.node_off[j]]
    ps.tags[node, tag] += 1
    ps.tnode[j] = node
    ps.ttag[j] = tag
    return 0


@jit
def _forget_finished(es, ps):
    """``FgdPolicy._forget_finished``, from the stop log since it last ran."""
    if es.c[0].running == ps.state[0]:
        return  # only this policy starts tasks, so nothing ended in between
    stops, status = es.log.stops, es.jobs.status
    end = es.c[0].stops
    for i in range(ps.state[1], end):
        v = stops[i]
        if ps.tnode[v] >= 0 and status[v] != _RUNNING:
            ps.tags[ps.tnode[v], ps.ttag[v]] -= 1
            ps.tnode[v] = -1
    ps.state[1] = end


@jit
def _fgd_pass(es, fs, ps):
    """:meth:`FgdPolicy.schedule`, compiled (see the module docstring)."""
    if ps.clustering:
        _forget_finished(es, ps)
    code = gang_walk(es, fs, ps, ps.walk)
    if code == PASS_DONE and ps.state[2] != 0:
        code = ps.state[2]
    ps.state[0] = es.c[0].running
    return code


class FgdPass(NamedTuple):
    """Compiled state of :class:`~policies.fgd.FgdPolicy`."""

    walk: object  # the gang walk's state (GangPass: no starvation guard)
    fgd: bool  # scoring "fgd" (else the baseline score ``score_mode``)
    score_mode: int
    random_keys: bool  # tie-break keys drawn per placement (else ``fixed_keys``)
    random_slot: bool  # scoring "random": a uniform number picks the shared GPU
    integer_scores: bool
    max_cpu: float
    max_gpu: float
    reject: bool  # on_no_fit = "reject"
    reason: int  # its reject reason code
    clustering: bool  # scoring "gpu_clustering": keep shape tags
    node_cap: np.ndarray  # int64[classes]: largest node of the class's GPU models, GPUs
    fixed_keys: np.ndarray  # float64[nodes]: the run's node ranking (tie_break="ranking",
    # drawn in FgdPolicy.setup) or node ids ("first"); the smallest key wins a tie
    types: object  # the workload's TaskTypes
    tags: np.ndarray  # int32[nodes, G + 1]: running tasks per node by shape
    tnode: np.ndarray  # int64[jobs]: node a tracked task counts on (-1 = not tracked)
    ttag: np.ndarray  # int64[jobs]: its shape tag
    state: np.ndarray  # int64[3]: running jobs after the last pass, stop-log entries taken in,
    # error code of a rejection
    rng: object  # the run's numpy.random.Generator
    memo: object  # FgdMemo: FGD costs kept per node and demand class while the node is unchanged
    memo_on: bool  # the memo is used (scoring "fgd" and small enough, see MEMO_LIMIT)

    kernel = _fgd_pass
    place = _fgd_place
    started = _track


def new_fgd_pass(gang, **kw) -> FgdPass:
    """An :class:`FgdPass` from the walk's state ``gang`` and the policy's settings."""
    n = kw.pop("num_jobs")
    memo, used = new_fgd_memo(kw["gpu_free"], int(kw["num_classes"]))
    return FgdPass(
        gang,
        fgd=kw["fgd"],
        score_mode=int(kw["score_mode"]),
        random_keys=bool(kw["random_keys"]),
        random_slot=bool(kw["random_slot"]),
        integer_scores=bool(kw["integer_scores"]),
        max_cpu=float(kw["max_cpu"]),
        max_gpu=float(kw["max_gpu"]),
        reject=bool(kw["reject"]),
        reason=int(kw["reason"]),
        clustering=bool(kw["clustering"]),
        node_cap=np.asarray(kw["node_cap"], dtype=np.int64),
        fixed_keys=np.ascontiguousarray(kw["fixed_keys"], dtype=np.float64),
        types=kw["types"],
        tags=kw["tags"],
        tnode=np.full(max(n, 1), -1, dtype=np.int64),
        ttag=np.zeros(max(n, 1), dtype=np.int64),
        state=np.array([kw["seen_running"], 0, 0], dtype=np.int64),
        rng=kw["rng"],
        memo=memo,
        memo_on=bool(kw["fgd"]) and used,
    )
