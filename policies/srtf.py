"""Shortest remaining time first (preemptive)."""

from __future__ import annotations

import numpy as np

from policies.ordered import OrderedPolicy, job_estimates
from policies.ordered_pass import KIND_SRTF, OrderedPass
from simulator.core.jobs import Status
from simulator.core.view import SchedulerView

__all__ = ["SrtfPolicy"]


class SrtfPolicy(OrderedPolicy):
    """Preemptive shortest remaining time first.

    A job's remaining time is its estimate (true ``duration``, or the trace column
    ``estimate_column``) minus the work it has done (work kept after a preemption's rollback
    counts; lost work must be redone). Each pass starts queued jobs in order of remaining time
    (ties by arrival), skipping those that do not fit. A queued job that does not fit preempts
    running jobs whose remaining time is strictly longer than its own, longest remaining first,
    if and only if that makes room for it on real placements (fewest victims: unnecessary ones
    are spared). Preempted jobs requeue with their remaining time; the strict ordering means a
    victim never preempts its preemptor back.

    Args:
        estimate_column: trace column with per-job run-time estimates in seconds (None = oracle).
        scoring: node scoring of the shared placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.

    Cost per pass: as :class:`~policies.priority.PriorityPolicy`. Compiled pass:
    :mod:`policies.ordered_pass`; :meth:`schedule` is its Python reference.
    """

    name = "srtf"
    _KEY_METHODS = ("remaining", "_done")

    def __init__(
        self,
        estimate_column: str | None = None,
        scoring: str = "bestfit",
        allow_split: bool = False,
    ) -> None:
        super().__init__(scoring, allow_split)
        self.estimate_column = estimate_column
        self.estimate = np.zeros(0)

    def setup(self, view: SchedulerView) -> None:
        """Read the estimates and build placer, scratch state and queue."""
        super().setup(view)
        self.estimate = job_estimates(view, self.estimate_column)

    def remaining(self, view: SchedulerView, j: int) -> float:
        """Estimated seconds of work job ``j`` still needs (>= 0)."""
        return max(float(self.estimate[j]) - self._done(view, np.array([j]))[0], 0.0)

    def key(self, view: SchedulerView, j: int) -> tuple[float, int]:
        """Remaining time, then arrival."""
        return (self.remaining(view, j), j)

    def victims(self, view: SchedulerView, j: int) -> list[int]:
        """Running jobs with longer remaining time: longest, then latest start/arrival, first."""
        if not view.running:
            return []
        run = np.fromiter(view.running, dtype=np.int64, count=len(view.running))
        rem = np.maximum(self.estimate[run] - self._done(view, run), 0.0)
        mine = self.remaining(view, j)
        ok = rem > mine
        run, rem = run[ok], rem[ok]
        order = np.lexsort((-run, -view.jobs.run_start[run], -rem))
        return run[order].tolist()

    @staticmethod
    def _done(view: SchedulerView, js: np.ndarray) -> np.ndarray:
        jobs = view.jobs
        done = jobs.work[js].copy()
        running = jobs.status[js] == Status.RUNNING
        done[running] += (view.now - jobs.last_update[js[running]]) * jobs.rate[js[running]]
        return done

    def compiled_pass(self, view: SchedulerView) -> OrderedPass | None:
        """The compiled pass (:mod:`policies.ordered_pass`); None if a subclass changes it."""
        return self._compiled_state(
            view, SrtfPolicy, KIND_SRTF, estimate=self.estimate, preemptive=True
        )
