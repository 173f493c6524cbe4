"""Hierarchical fair-share queues with quotas, over-quota weights, limits, DRF and reclaim."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from policies.base import Decision, Policy, Preempt, Start, overrides
from policies.fair_pass import FairPass, new_fair_pass
from policies.keyed_queue import KeyedQueue
from policies.whatif import Scratch, find_victims
from simulator.core.view import SchedulerView

__all__ = ["FairPolicy", "QueueNode", "build_tree", "fair_shares", "exact_grid"]

_EPS = 1e-9


@dataclass
class QueueNode:
    """One queue of the tree (GPU-equivalents for ``deserved`` and ``limit``).

    Attributes:
        name: queue name; leaves are matched to the trace's ``queue`` column.
        deserved: guaranteed share (quota), GPUs.
        over_quota_weight: weight in the split of capacity beyond the deserved shares.
        limit: most GPUs the queue may hold (inf = no limit).
        children: sub-queues (empty for a leaf).
    """

    name: str
    deserved: float = 0.0
    over_quota_weight: float = 1.0
    limit: float = math.inf
    children: list[QueueNode] = field(default_factory=list)
    index: int = -1
    parent: int = -1


def build_tree(
    spec: Sequence[Mapping], default_queue: str, trace_queues: Sequence[str]
) -> tuple[list[QueueNode], np.ndarray]:
    """Flatten the configured queue tree into a list of :class:`QueueNode` (index 0 = root).

    Trace queues absent from the tree are mapped to leaf ``default_queue``, which is added at
    the top level (deserved 0, weight 1) when the tree does not name it.

    Returns:
        ``(nodes, leaf_of)``: all nodes (parents before children) and, per trace queue id, the
        index of its leaf.

    Raises:
        ValueError: duplicate names, negative quotas or weights, or a trace queue that names an
            inner (non-leaf) queue.
    """
    root = QueueNode("<root>", deserved=math.inf, children=[_node(s) for s in spec])
    nodes: list[QueueNode] = []
    _flatten(root, -1, nodes)
    names = {n.name: n for n in nodes[1:]}
    if len(names) != len(nodes) - 1:
        raise ValueError("fair: queue names in the tree must be unique")
    if default_queue not in names:
        leaf = QueueNode(default_queue)
        root.children.append(leaf)
        _flatten(leaf, 0, nodes)
        names[default_queue] = leaf
    leaf_of = []
    for q in trace_queues:
        node = names.get(q, names[default_queue])
        if node.children:
            raise ValueError(f"fair: trace queue {q!r} names an inner queue of the tree")
        leaf_of.append(node.index)
    return nodes, np.array(leaf_of, dtype=np.int64)


def _node(spec: Mapping) -> QueueNode:
    unknown = set(spec) - {"name", "deserved", "over_quota_weight", "limit", "children"}
    if unknown or "name" not in spec:
        raise ValueError(f"fair: queue entry {dict(spec)} needs 'name'; unknown keys {unknown}")
    limit = spec.get("limit")
    node = QueueNode(
        name=str(spec["name"]),
        deserved=float(spec.get("deserved", 0.0) or 0.0),
        over_quota_weight=float(spec.get("over_quota_weight", 1.0)),
        limit=math.inf if limit is None else float(limit),
        children=[_node(c) for c in spec.get("children") or []],
    )
    if node.deserved < 0 or node.over_quota_weight < 0 or node.limit < 0:
        raise ValueError(f"fair: queue {node.name!r} has a negative quota, weight or limit")
    return node


def _flatten(node: QueueNode, parent: int, out: list[QueueNode]) -> None:
    node.index, node.parent = len(out), parent
    out.append(node)
    for c in node.children:
        _flatten(c, node.index, out)


def exact_grid(size: np.ndarray, total_gpus: float) -> np.ndarray:
    """``size`` rounded to a multiple of ``2**-k``, ``k`` chosen so that sums stay exact.

    A queue's usage is a sum of its running jobs' sizes. On this grid (``2**-36`` of a GPU for
    8,192 GPUs; the rounding is below ``1e-10``) every such sum up to four times the cluster's
    GPUs is exact in float64, so it does not depend on the order of the additions: recounting
    it from the running jobs (this module) and keeping it as jobs start and stop (the compiled
    pass) give the same bits.
    """
    k = 52 - int(math.ceil(math.log2(4.0 * max(total_gpus, 1.0) + 1.0)))
    q = 2.0**-k
    return np.round(np.asarray(size, dtype=np.float64) / q) * q


def fair_shares(
    nodes: Sequence[QueueNode], demand: np.ndarray, capacity: float, weights: np.ndarray
) -> np.ndarray:
    """Fair share of every queue, KAI-Scheduler style, in GPU-equivalents.

    At every level of the tree the parent's share is divided among its children: first each
    child gets its deserved quota (capped by its demand and limit; scaled down proportionally
    if the quotas exceed what the parent has), then the rest is split in proportion to the
    children's ``weights`` (over-quota weights, possibly usage-adjusted), water-filling: a child
    never gets more than its demand or limit, and what it cannot take goes to the others.
    Inner queues' demand is the sum of their children's, capped by their limit.

    Args:
        nodes: the flattened tree (index 0 = root).
        demand: per node, GPU-equivalents requested by running + queued jobs (leaves; inner
            values are recomputed).
        capacity: what the root divides (cluster GPUs).
        weights: per node, the effective over-quota weight.
    """
    dem = demand.astype(np.float64).copy()
    for n in reversed(nodes):
        if n.children:
            dem[n.index] = sum(dem[c.index] for c in n.children)
        dem[n.index] = min(dem[n.index], n.limit)
    share = np.zeros(len(nodes))
    share[0] = min(capacity, dem[0])
    for n in nodes:
        if n.children:
            _divide(n.children, share[n.index], dem, weights, share)
    return share


def _divide(kids: Sequence[QueueNode], total: float, dem, weights, share) -> None:
    cap = np.array([min(dem[c.index], c.limit) for c in kids])
    give = np.minimum(np.array([c.deserved for c in kids]), cap)
    if give.sum() > total:
        give *= total / give.sum()
    left = total - give.sum()
    w = np.array([weights[c.index] for c in kids])
    while left > _EPS:
        room = cap - give
        active = (room > _EPS) & (w > 0)
        if not active.any():
            break
        part = np.where(active, left * w / w[active].sum(), 0.0)
        take = np.minimum(part, room)
        give += take
        left -= take.sum()
        if (take >= part - _EPS).all():
            break
    for c, g in zip(kids, give, strict=True):
        share[c.index] = g


class FairPolicy(Policy):
    """Hierarchical fair share (KAI-Scheduler-like) with DRF, limits and reclaim.

    Queues form a tree given in config; each has a ``deserved`` quota (GPUs), an
    ``over_quota_weight`` and a ``limit`` (GPUs, None = none). Trace queues (``queue`` column)
    are matched to leaves by name; the others go to ``default_queue``. Sizes are dominant-
    resource GPU-equivalents: a job's size is ``max(GPUs / cluster GPUs, cores / cluster cores,
    GB / cluster GB) x cluster GPUs`` (DRF; ``dominant_resource=False`` counts GPUs only), a
    queue's usage is the sum over its running jobs and its demand the sum over its running and
    queued jobs. Every pass computes fair shares with :func:`fair_shares` (deserved first, the
    rest by weight, recursively, capped by limit and demand).

    Allocation: repeatedly the leaf with the lowest usage / fair-share ratio starts its oldest
    job that fits (FIFO within a queue, classes that do not fit are skipped), as long as no
    queue on its path would exceed its ``limit``; queues may go beyond their fair share when
    nobody else can use the room (work-conserving). With ``reclaim=True`` a leaf below its fair
    share whose next job does not fit, and whose usage would stay within its fair share with
    that job, preempts running jobs of leaves above their fair share (the most over-share queue
    first, its most recently started job first, only while that queue is still over its share,
    on real placements, unneeded victims spared). A reclaimer never ends above its share, so it
    can never be reclaimed from in turn, and a job started in a pass is never reclaimed in the
    same pass (no loops).

    Time-decayed usage (``usage_decay_half_life`` seconds): each queue accumulates
    GPU-equivalent-seconds of usage, decaying with that half-life; among siblings, a queue's
    over-quota weight is multiplied by ``max(0.05, 1 - its share of the siblings' decayed
    usage)``, so the surplus leans towards queues that used less recently (equal usage leaves
    the weights' proportions unchanged). Shares are recomputed at every pass (arrivals and
    completions), not on a timer.

    Cost per pass of this Python pass (the reference): ``O(R)`` to recount usage from the
    ``R`` running jobs, ``O(T)`` for the shares of a ``T``-queue tree, and a heap over the
    groups' heads; reclaim ``O(R)`` plus the victim search. The compiled pass
    (:mod:`policies.fair_pass`) keeps usage from starts and stops instead of recounting it.

    Args:
        queues: the queue tree, a list of mappings with ``name`` and optional ``deserved``,
            ``over_quota_weight``, ``limit`` and ``children`` (empty = every trace queue is a
            leaf with deserved 0 and weight 1: plain max-min fairness).
        default_queue: leaf for trace queues not in the tree (created at the top level,
            deserved 0, weight 1, if the tree does not name it).
        reclaim: preempt over-share queues for starved ones.
        usage_decay_half_life: seconds; None = weights ignore past usage.
        dominant_resource: measure usage as DRF dominant share over GPU, CPU and memory.
        scoring: node scoring of the placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.
    """

    name = "fair"

    def __init__(
        self,
        queues: Sequence[Mapping] = (),
        default_queue: str = "default",
        reclaim: bool = True,
        usage_decay_half_life: float | None = None,
        dominant_resource: bool = True,
        scoring: str = "bestfit",
        allow_split: bool = False,
    ) -> None:
        if usage_decay_half_life is not None and usage_decay_half_life <= 0:
            raise ValueError("usage_decay_half_life must be > 0 seconds or None")
        self.queue_spec = [dict(q) for q in queues]
        self.default_queue = default_queue
        self.reclaim = reclaim
        self.half_life = usage_decay_half_life
        self.dominant_resource = dominant_resource
        self.scoring = scoring
        self.allow_split = allow_split
        self.nodes: list[QueueNode] = []
        self.shares = np.zeros(0)
        """Fair share per queue node at the last pass (GPU-equivalents), for inspection."""
        self.usage = np.zeros(0)
        """Usage per queue node at the last pass (GPU-equivalents)."""
        self._fresh: set[int] = set()

    # ------------------------------------------------------------------ setup
    def setup(self, view: SchedulerView) -> None:
        """Build the tree, job sizes, queues, placer and what-if state."""
        jobs = view.jobs
        if self.queue_spec:
            self.nodes, leaf_of_queue = build_tree(
                self.queue_spec, self.default_queue, jobs.queue_names
            )
        else:
            flat = [{"name": q} for q in jobs.queue_names]
            self.nodes, leaf_of_queue = build_tree(flat, self.default_queue, jobs.queue_names)
        self.leaf = leaf_of_queue[jobs.queue] if jobs.n else np.zeros(0, dtype=np.int64)
        self.size = self._sizes(view)
        self.path = [self._path(i) for i in range(len(self.nodes))]
        self.placer = view.placer(self.scoring, self.allow_split)
        self.scratch = Scratch(view, self.scoring, self.allow_split)
        ncls = max(jobs.num_classes, 1)
        self.kq = KeyedQueue(
            jobs, group=lambda j: int(self.leaf[j]) * ncls + int(jobs.demand_class[j])
        )
        self.queued = np.zeros(len(self.nodes))
        self.decayed = np.zeros(len(self.nodes))
        self.usage = np.zeros(len(self.nodes))
        self.shares = np.zeros(len(self.nodes))
        self._last = 0.0

    def _sizes(self, view: SchedulerView) -> np.ndarray:
        """Each job's size in GPU-equivalents, on a binary grid (see :func:`exact_grid`)."""
        jobs, c = view.jobs, view.cluster
        gpus = float(c.total_gpus)
        size = jobs.gpu_share.astype(np.float64).copy()
        if self.dominant_resource:
            share = size / gpus if gpus else np.zeros_like(size)
            for demand, cap in ((jobs.cpus, c.cpu_cap), (jobs.mem, c.mem_cap)):
                total = float(cap[np.isfinite(cap)].sum())
                if total > 0:
                    share = np.maximum(share, demand / total)
            size = share * (gpus if gpus else 1.0)
        return exact_grid(size, gpus)

    def _path(self, i: int) -> list[int]:
        out = []
        while i >= 0:
            out.append(i)
            i = self.nodes[i].parent
        return out

    # ------------------------------------------------------------------ the pass
    _PASS_METHODS = (
        "schedule",
        "setup",
        "_sizes",
        "_path",
        "_leaf_heads",
        "_ratio",
        "_serve",
        "_account",
        "_reclaim_victims",
        "_refresh",
        "_weights",
    )

    def compiled_pass(self, view: SchedulerView) -> FairPass | None:
        """The compiled pass (:mod:`policies.fair_pass`); None if a subclass changes a rule."""
        if overrides(self, FairPolicy, *self._PASS_METHODS):
            return None
        return new_fair_pass(self, view)

    def compiled_finish(self, state: FairPass) -> None:
        """Copy back the last pass's usage, shares, queued demand and decayed usage."""
        self.usage = state.usage.copy()
        self.shares = state.shares.copy()
        self.queued = state.queued.copy()
        self.decayed = state.decayed.copy()
        self._last = float(state.last[0])

    def schedule(self, view: SchedulerView) -> Iterator[Decision]:
        """Serve the most under-served leaf first; reclaim for leaves below their share."""
        new, requeued = self.kq.sync(view.queue, lambda j: j)
        if requeued:  # jobs came back by other means (node failure): recount the queued demand
            queued = np.unique(np.asarray(view.queue.jobs(), dtype=np.int64))  # may repeat a job
            self.queued = np.bincount(
                self.leaf[queued], weights=self.size[queued], minlength=len(self.nodes)
            ).astype(np.float64)
        else:
            for j in new:
                self.queued[self.leaf[j]] += self.size[j]
        self._refresh(view)
        self._fresh = set()  # started this pass: never reclaimed in the same pass
        order, heads = self._leaf_heads()
        while order:
            _, leaf = heapq.heappop(order)
            heap = heads[leaf]
            if not heap:
                continue
            j, g = heapq.heappop(heap)
            started = yield from self._serve(view, j)
            if started:
                nxt = self.kq.head(g)
                if nxt is not None:
                    heapq.heappush(heap, (nxt[1], g))
            if heap:
                heapq.heappush(order, (self._ratio(leaf), leaf))

    def _leaf_heads(self) -> tuple[list, dict[int, list]]:
        heads: dict[int, list] = {}
        for _, j, g in self.kq.heads():
            heads.setdefault(int(self.leaf[j]), []).append((j, g))
        for h in heads.values():
            heapq.heapify(h)
        order = [(self._ratio(leaf), leaf) for leaf in heads]
        heapq.heapify(order)
        return order, heads

    def _ratio(self, i: int) -> float:
        f = self.shares[i]
        return self.usage[i] / f if f > _EPS else math.inf

    def _serve(self, view: SchedulerView, j: int):
        """Start ``j`` (reclaiming if entitled); True if it started."""
        size, path = float(self.size[j]), self.path[int(self.leaf[j])]
        if any(self.usage[i] + size > self.nodes[i].limit + _EPS for i in path):
            return False
        p = self.placer.place(view.jobs, j)
        if p is None and self.reclaim:
            victims = self._reclaim_victims(view, j)
            if victims:
                for v in victims:
                    yield Preempt(v)
                    self._account(v, -1)
                    self.kq.push(v, v)
                p = self.placer.place(view.jobs, j)
        if p is None:
            return False
        yield Start(j, p)
        self._fresh.add(j)
        self._account(j, +1)
        return True

    def _account(self, j: int, sign: int) -> None:
        """``j`` started (+1) or was preempted back to the queue (-1)."""
        s = float(self.size[j])
        leaf = int(self.leaf[j])
        self.queued[leaf] -= sign * s
        for i in self.path[leaf]:
            self.usage[i] += sign * s

    def _reclaim_victims(self, view: SchedulerView, j: int) -> list[int] | None:
        leaf, size = int(self.leaf[j]), float(self.size[j])
        if self.usage[leaf] + size > self.shares[leaf] + _EPS:
            return None  # not entitled: it would end above its fair share
        over = {
            i: self.usage[i]
            for i in range(len(self.nodes))
            if not self.nodes[i].children and self.usage[i] > self.shares[i] + _EPS
        }
        if not over:
            return None
        by_leaf: dict[int, list[int]] = {}
        jobs = view.jobs
        for v in view.running:
            lv = int(self.leaf[v])
            if lv in over and v not in self._fresh:
                by_leaf.setdefault(lv, []).append(v)
        for vs in by_leaf.values():
            vs.sort(key=lambda v: (float(jobs.run_start[v]), v))  # pop() = latest start
        cands = []
        while True:
            live = [i for i in by_leaf if by_leaf[i] and over[i] > self.shares[i] + _EPS]
            if not live:
                break
            i = max(live, key=lambda i: (over[i] / max(self.shares[i], _EPS), -i))
            v = by_leaf[i].pop()
            cands.append(v)
            over[i] -= float(self.size[v])
        if not cands:
            return None
        return find_victims(self.scratch, jobs, j, cands)

    # ------------------------------------------------------------------ usage and shares
    def _refresh(self, view: SchedulerView) -> None:
        """Usage from the running jobs, decayed usage, demand and fair shares."""
        nodes = self.nodes
        usage = np.zeros(len(nodes))
        if view.running:
            run = np.fromiter(view.running, dtype=np.int64, count=len(view.running))
            usage = np.bincount(self.leaf[run], weights=self.size[run], minlength=len(nodes))
        for n in reversed(nodes):
            if n.children:
                usage[n.index] = sum(usage[c.index] for c in n.children)
        now = view.now
        if self.half_life is not None:
            dt = now - self._last
            keep = 0.5 ** (dt / self.half_life)
            self.decayed = self.decayed * keep + self.usage * self.half_life / math.log(2) * (
                1 - keep
            )
        self._last = now
        self.usage = usage
        demand = usage + self.queued
        self.shares = fair_shares(nodes, demand, float(view.cluster.total_gpus), self._weights())

    def _weights(self) -> np.ndarray:
        w = np.array([n.over_quota_weight for n in self.nodes], dtype=np.float64)
        if self.half_life is None:
            return w
        for n in self.nodes:
            kids = n.children
            total = sum(self.decayed[c.index] for c in kids)
            if not kids or total <= _EPS:
                continue
            for c in kids:
                w[c.index] *= max(0.05, 1.0 - self.decayed[c.index] / total)
        return w
