"""Priority classes: higher classes start first and preempt lower ones."""

from __future__ import annotations

import numpy as np

from policies.ordered import OrderedPolicy
from policies.ordered_pass import KIND_PRIORITY, OrderedPass
from simulator.core.view import SchedulerView

__all__ = ["PriorityPolicy"]


class PriorityPolicy(OrderedPolicy):
    """Strict priority classes from the trace's ``priority`` column (larger = more important).

    Each pass starts queued jobs by priority (highest first, ties by arrival), skipping jobs
    that do not fit. A queued job that does not fit preempts running jobs of strictly lower
    priority, lowest priority first and, within a priority, the most recently started first
    (least work lost; then the latest arrival), if and only if that makes room for it on real
    placements (unneeded victims are spared). Jobs whose priority is at or above
    ``non_preemptible_threshold`` are never preempted (e.g. inference above training);
    ``preemption=False`` turns preemption off (priority ordering only).

    Args:
        non_preemptible_threshold: priorities >= this are never preempted (None = all may be).
        preemption: may higher classes preempt lower ones at all?
        scoring: node scoring of the shared placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.

    Cost per pass: as :class:`~policies.sjf.SjfPolicy`, plus for a head that does not fit
    O(R) over the R running jobs and O(log R) plus a fit test per victim candidate taken;
    heads whose outcome follows from an earlier one in the pass are not scanned. Compiled
    pass: :mod:`policies.ordered_pass`; :meth:`schedule` is its Python reference.
    """

    name = "priority"

    def __init__(
        self,
        non_preemptible_threshold: int | None = None,
        preemption: bool = True,
        scoring: str = "bestfit",
        allow_split: bool = False,
    ) -> None:
        super().__init__(scoring, allow_split)
        self.non_preemptible_threshold = non_preemptible_threshold
        self.preemption = preemption

    def key(self, view: SchedulerView, j: int) -> tuple[int, int]:
        """Highest priority first, then arrival."""
        return (-int(view.jobs.priority[j]), j)

    def victims(self, view: SchedulerView, j: int) -> list[int]:
        """Preemptible running jobs of strictly lower priority, lowest first, latest start first."""
        if not self.preemption or not view.running:
            return []
        jobs = view.jobs
        run = np.fromiter(view.running, dtype=np.int64, count=len(view.running))
        prio = jobs.priority[run]
        ok = prio < jobs.priority[j]
        if self.non_preemptible_threshold is not None:
            ok &= prio < self.non_preemptible_threshold
        run, prio = run[ok], prio[ok]
        return run[np.lexsort((-run, -jobs.run_start[run], prio))].tolist()

    def compiled_pass(self, view: SchedulerView) -> OrderedPass | None:
        """The compiled pass (:mod:`policies.ordered_pass`); None if a subclass changes it."""
        t = self.non_preemptible_threshold
        return self._compiled_state(
            view,
            PriorityPolicy,
            KIND_PRIORITY,
            preemptive=self.preemption,
            threshold=None if t is None else int(t),
        )
