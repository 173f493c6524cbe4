"""Periodic defragmentation: migrate running jobs so that a waiting gang can start."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

import numpy as np

from policies.base import Decision, Migrate, Policy, Start, overrides
from policies.consolidate_pass import ConsolidatePass, new_consolidate_pass
from policies.gang import new_walk
from policies.whatif import Scratch
from simulator.core.jobs import Status
from simulator.core.placement import Placement
from simulator.core.view import SchedulerView

__all__ = ["ConsolidatePolicy"]


class ConsolidatePolicy(Policy):
    """Gang scheduling in arrival order plus periodic consolidation by migration.

    Every pass starts jobs in arrival order, all-or-nothing, skipping jobs that do not fit (as
    ``gang`` without a starvation guard). Every ``interval`` seconds (the first consolidation at
    ``interval``, then at its multiples, only while some job waits) the policy tries, for the
    waiting jobs in arrival order, to make room by moving running single-node jobs: for each
    candidate target set (the single node, or for a gang larger than a node, the nodes with the
    most free GPUs until their capacity covers it) it evicts the target's movable jobs, largest
    first, until the waiting job fits there, re-places every evicted job on the other nodes
    (shared placer), and checks all of it on a what-if copy of the cluster. Among the feasible
    plans it takes the one moving the fewest GPUs (then fewest jobs, then lowest node id),
    issues one ``Migrate`` per moved job (each loses ``sim.migration_overhead`` seconds of
    progress) and starts the waiting job. At most ``max_migrations`` jobs move per started job;
    jobs spanning several nodes are never moved. A migrated job keeps running, so nothing is
    requeued and nothing can loop.

    Cost per pass: the gang walk's; at a consolidation time, per waiting job, one plan per
    target (every node for a job that fits one) on a what-if copy of the cluster. The compiled
    pass (:mod:`policies.consolidate_pass`) skips targets that cannot hold the job even
    without their movable jobs and restores its what-if states node by node instead of
    copying the cluster per target.

    Args:
        interval: seconds between consolidation attempts.
        max_migrations: most jobs moved to start one waiting job.
        scoring: node scoring of the placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.
    """

    name = "consolidate"

    def __init__(
        self,
        interval: float = 300.0,
        max_migrations: int = 4,
        scoring: str = "bestfit",
        allow_split: bool = False,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        if max_migrations < 1:
            raise ValueError("max_migrations must be >= 1")
        self.interval = float(interval)
        self.max_migrations = int(max_migrations)
        self.scoring = scoring
        self.allow_split = allow_split
        self.placer = None
        self.scratch: Scratch | None = None

    def setup(self, view: SchedulerView) -> None:
        """Build the placer and the what-if state."""
        self.placer = view.placer(self.scoring, self.allow_split)
        self.scratch = Scratch(view, self.scoring, self.allow_split)

    def compiled_pass(self, view: SchedulerView) -> ConsolidatePass | None:
        """The compiled pass (:mod:`policies.consolidate_pass`); None if a subclass changes it."""
        methods = ("schedule", "setup", "_consolidate_for", "_targets", "_movable")
        if overrides(self, ConsolidatePolicy, *methods, "_best_plan", "_plan"):
            return None
        p = self.placer
        walk = new_walk(p.mode, p.allow_split)
        jobs = view.jobs
        return new_consolidate_pass(
            walk,
            interval=self.interval,
            max_migrations=self.max_migrations,
            node_cap=[p.max_node_gpus(int(mask)) for _, _, mask, _, _ in jobs.demands],
            num_jobs=jobs.n,
            at=self.scratch,
            out=Scratch(view, self.scoring, self.allow_split),
        )

    def compiled_finish(self, state: ConsolidatePass) -> None:
        """Nothing to copy back."""

    def schedule(self, view: SchedulerView) -> Iterator[Decision]:
        """Start what fits; at consolidation times migrate jobs to start blocked ones."""
        jobs, place = view.jobs, self.placer.place
        blocked = []
        heads = view.queue.class_heads()
        while heads:
            j, c = heapq.heappop(heads)
            p = place(jobs, j)
            if p is None:
                blocked.append(j)
                continue
            yield Start(j, p)
            nxt = view.queue.class_head(c)
            if nxt >= 0:
                heapq.heappush(heads, (nxt, c))
        if not blocked:
            return
        now = view.now
        due = now > 0 and math.isclose(now / self.interval, round(now / self.interval))
        if due:
            for j in sorted(blocked):
                if jobs.status[j] == Status.QUEUED:
                    yield from self._consolidate_for(view, j)
        if len(view.queue):
            view.wake_at((math.floor(now / self.interval + 1e-9) + 1) * self.interval)

    def _consolidate_for(self, view: SchedulerView, j: int) -> Iterator[Decision]:
        plan = self._best_plan(view, j)
        if plan is None:
            return
        moves, p = plan
        for v, q in moves:
            yield Migrate(v, q)
        yield Start(j, p)

    # ------------------------------------------------------------------ planning
    def _targets(self, view: SchedulerView, j: int) -> list[np.ndarray]:
        """Candidate node sets for ``j``: single nodes, or the freest nodes for a large gang."""
        c, jobs = view.cluster, view.jobs
        n = int(jobs.num_gpus[j])
        if n <= self.placer.max_node_gpus(int(jobs.type_mask[j])):
            return [np.array([i]) for i in range(len(c.capacity)) if c.capacity[i] >= n]
        order = np.lexsort((np.arange(len(c.free_full)), -c.free_full))
        cap = np.cumsum(c.capacity[order])
        k = int(np.searchsorted(cap, n)) + 1
        return [np.sort(order[:k])] if k <= len(order) else []

    def _movable(self, view: SchedulerView, target: np.ndarray) -> list[int]:
        """Running single-node jobs on ``target`` nodes, largest first (fewest moves)."""
        jobs = view.jobs
        inside = set(target.tolist())
        out = [
            v
            for v in view.running
            if len(jobs.placements[v].nodes) == 1 and int(jobs.placements[v].nodes[0]) in inside
        ]
        out.sort(key=lambda v: (-float(jobs.gpu_share[v]), -float(jobs.run_start[v]), v))
        return out

    def _best_plan(
        self, view: SchedulerView, j: int
    ) -> tuple[list[tuple[int, Placement]], Placement] | None:
        best, best_cost = None, None
        for target in self._targets(view, j):
            plan = self._plan(view, j, target)
            if plan is None:
                continue
            moves = plan[0]
            cost = (sum(float(view.jobs.gpu_share[v]) for v, _ in moves), len(moves))
            if best_cost is None or cost < best_cost:
                best, best_cost = plan, cost
        return best

    def _plan(
        self, view: SchedulerView, j: int, target: np.ndarray
    ) -> tuple[list[tuple[int, Placement]], Placement] | None:
        """Evict movable jobs from ``target`` until ``j`` fits there; re-place them elsewhere."""
        jobs, s = view.jobs, self.scratch
        up = view.cluster.node_up
        inside = np.zeros(len(up), dtype=bool)
        inside[target] = True
        evicted: list[int] = []
        s.reset()
        s.load(*s.arrays(), up & inside)
        if s.place(jobs, j) is None:
            for v in self._movable(view, target):
                if len(evicted) == self.max_migrations:
                    return None
                s.release(jobs.placements[v])
                evicted.append(v)
                if s.place(jobs, j) is not None:
                    break
            else:
                return None
        if not evicted:
            return None  # it fits already: nothing to consolidate
        gpu, cpu, mem = s.arrays()
        s.load(gpu, cpu, mem, up & ~inside)  # evicted jobs go outside the target
        moves = []
        for v in evicted:
            q = s.place(jobs, v)
            if q is None:
                return None
            s.take(q)
            moves.append((v, q))
        gpu, cpu, mem = s.arrays()
        p = s.load(gpu, cpu, mem, up & inside).place(jobs, j)
        return (moves, p) if p is not None else None
