"""Shared skeleton of policies that start jobs in a key order and may preempt for them.

A subclass gives the order (:meth:`OrderedPolicy.key`, smaller = first) and, if it preempts,
the running jobs a waiting job may displace (:meth:`OrderedPolicy.victims`, most preferred
victim first). Each pass walks the best job of every demand class in key order: a job that fits
starts; a job that does not fit may preempt victims (chosen on real placements, see
:func:`policies.whatif.find_victims`) and start in their place; otherwise its class is skipped
for the pass (resources only shrink during a pass, and later jobs of the class have no better
claim on victims).

Victims must rank strictly below the job they make room for, so a victim can never preempt its
preemptor back at the same instant, and a job started during a pass is never a victim in that
same pass (no start/preempt or preempt/restart loops at one instant). Victims go back to the
queue and may start again in the same pass if the room left over fits them.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Hashable, Iterator

import numpy as np

from policies.base import Decision, Policy, Preempt, Start, overrides
from policies.keyed_queue import KeyedQueue
from policies.ordered_pass import OrderedPass, new_ordered_pass
from policies.whatif import Scratch, find_victims
from simulator.core.cluster import MILLI
from simulator.core.view import SchedulerView

__all__ = ["OrderedPolicy", "job_estimates"]


def job_estimates(view: SchedulerView, column: str | None) -> np.ndarray:
    """Per-job run-time estimate in seconds: ``column`` of the trace, else the true duration.

    Missing (NaN) or non-positive estimates fall back to the job's duration.

    Raises:
        KeyError: ``column`` is not a column of the trace.
    """
    jobs = view.jobs
    if column is None:
        return jobs.duration.copy()
    if column not in jobs.frame.columns:
        raise KeyError(
            f"estimate column {column!r} is not in the trace (columns: {list(jobs.frame.columns)})"
        )
    est = jobs.frame[column].to_numpy(dtype=np.float64, na_value=np.nan).copy()
    bad = ~(est > 0)
    est[bad] = jobs.duration[bad]
    return est


class OrderedPolicy(Policy):
    """Start jobs in :meth:`key` order, skipping classes that do not fit; optionally preempt.

    Args:
        scoring: node scoring of the shared placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.
    """

    name = "ordered"

    def __init__(self, scoring: str = "bestfit", allow_split: bool = False) -> None:
        self.scoring = scoring
        self.allow_split = allow_split
        self.placer = None
        self.scratch: Scratch | None = None
        self.kq: KeyedQueue | None = None
        self._fresh: set[int] = set()

    def setup(self, view: SchedulerView) -> None:
        """Build the placer, the what-if scratch state and the keyed queue."""
        self.placer = view.placer(self.scoring, self.allow_split)
        self.scratch = Scratch(view, self.scoring, self.allow_split)
        self.kq = KeyedQueue(view.jobs)

    # ------------------------------------------------------------------ subclass hooks
    def key(self, view: SchedulerView, j: int) -> Hashable:
        """Order of queued job ``j`` (smaller starts first)."""
        raise NotImplementedError

    def victims(self, view: SchedulerView, j: int) -> list[int]:
        """Running jobs ``j`` may preempt, most preferred victim first (default: none)."""
        return []

    def before_pass(self, view: SchedulerView) -> None:
        """Called at the start of every pass (e.g. to re-key promoted jobs)."""

    def after_pass(self, view: SchedulerView) -> None:
        """Called at the end of every pass (e.g. to ask for a wake-up)."""

    def on_preempted(self, view: SchedulerView, j: int) -> None:
        """Called when running job ``j`` went back to the queue (preempted, or killed)."""

    # ------------------------------------------------------------------ compiled pass
    _PASS_METHODS = (
        "schedule",
        "setup",
        "key",
        "victims",
        "before_pass",
        "after_pass",
        "on_preempted",
        "_start_or_preempt",
        "_enough",
    )

    def _compiled_state(
        self,
        view: SchedulerView,
        base: type,
        kind: int,
        *,
        estimate: np.ndarray | None = None,
        preemptive: bool = False,
        threshold: int | None = None,
        strict: bool = False,
        **tiresias,
    ) -> OrderedPass | None:
        """The compiled pass of ``base``'s rules (None if this object changes any of them)."""
        if overrides(self, base, *self._PASS_METHODS, *getattr(base, "_KEY_METHODS", ())):
            return None
        jobs = view.jobs
        c = view.cluster
        return new_ordered_pass(
            kind,
            num_classes=jobs.num_classes,
            estimate=jobs.duration if estimate is None else estimate,
            priority=jobs.priority,
            strict=strict,
            preemptive=preemptive,
            threshold=threshold,
            mode=self.placer.mode,
            allow_split=self.placer.allow_split,
            total_gpus=float(c.total_gpus),
            scratch=self.scratch,
            share=jobs.gpu_share,
            **tiresias,
        )

    def compiled_finish(self, state: OrderedPass) -> None:
        """Nothing to copy back: the compiled pass keeps its own keyed queue for the run."""

    # ------------------------------------------------------------------ the pass
    def schedule(self, view: SchedulerView) -> Iterator[Decision]:
        """Walk class heads in key order, starting (or preempting for) each in turn."""
        kq = self.kq
        self._fresh = set()
        self.before_pass(view)
        _, requeued = kq.sync(view.queue, lambda j: self.key(view, j))
        for j in requeued:  # killed by a node failure (or submitted by a controller)
            if view.jobs.gpu_seconds[j] > 0:
                self.on_preempted(view, j)
        heads = kq.heads()
        active = {g for _, _, g in heads}
        while heads:
            _, j, g = heapq.heappop(heads)
            active.discard(g)
            freed = yield from self._start_or_preempt(view, j)
            if freed is None:
                continue  # the class is skipped for the rest of the pass
            for h in {g, *(kq.group(v) for v in freed)}:
                nxt = kq.head(h) if h not in active else None
                if nxt is not None:
                    heapq.heappush(heads, (nxt[0], nxt[1], h))
                    active.add(h)
        self.after_pass(view)

    def _start_or_preempt(
        self, view: SchedulerView, j: int
    ) -> Generator[Decision, None, list[int] | None]:
        """Start ``j``, preempting if needed; return the victims, or None if ``j`` must wait."""
        jobs = view.jobs
        p = self.placer.place(jobs, j)
        if p is not None:
            yield Start(j, p)
            self._fresh.add(j)
            return []
        cands = [v for v in self.victims(view, j) if v not in self._fresh]
        if not cands or not self._enough(view, j, cands):
            return None
        victims = find_victims(self.scratch, jobs, j, cands)
        if not victims:
            return None
        for v in victims:
            yield Preempt(v)
            self.on_preempted(view, v)
            self.kq.push(v, self.key(view, v))
        p = self.placer.place(jobs, j)
        if p is None:  # cannot happen: the scratch state showed the room (defensive)
            return victims
        yield Start(j, p)
        self._fresh.add(j)
        return victims

    @staticmethod
    def _enough(view: SchedulerView, j: int, cands: list[int]) -> bool:
        """Cheap necessary condition: free GPUs plus the candidates' GPUs cover ``j``."""
        jobs, c = view.jobs, view.cluster
        free = c.total_gpus - c.allocated_milli / MILLI
        held = float(jobs.gpu_share[np.asarray(cands)].sum())
        return free + held + 1e-9 >= float(jobs.gpu_share[j])
