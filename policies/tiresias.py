"""Tiresias: discretised two-dimensional least-attained-service (Gu et al., NSDI'19)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from policies.ordered import OrderedPolicy
from policies.ordered_pass import KIND_TIRESIAS, OrderedPass
from simulator.core.jobs import Status
from simulator.core.view import SchedulerView

__all__ = ["TiresiasPolicy"]

_EPS = 1e-6
"""GPU-seconds of slack when comparing attained service with a threshold (float round-off)."""


class TiresiasPolicy(OrderedPolicy):
    """Discretised 2D-LAS with K priority queues, starvation promotion and preemption.

    A job's *service* is the GPU-seconds it has attained (GPUs x seconds run, fractional GPUs
    by their share) since it last entered the top queue. ``thresholds`` (ascending, in
    GPU-seconds) cut service into ``K = len(thresholds) + 1`` queues: queue 0 holds jobs with
    service below ``thresholds[0]``, queue ``k`` those with ``thresholds[k-1] <= service <
    thresholds[k]``. Jobs are served by queue (0 first) and FIFO by arrival within a queue,
    all-or-nothing, skipping jobs that do not fit. A waiting job that does not fit preempts
    running jobs of strictly lower queues (lowest queue first, most recently started first) if
    that makes room on real placements. Preempted jobs keep their service (so they stay
    demoted) and requeue.

    Starvation: a preempted job that has waited ``promote_knob`` x its executed (wall-clock
    running) time since its preemption goes back to queue 0 and its service restarts from 0
    (``promote_knob=None`` disables promotion).

    Re-evaluation: a running job moves down a queue the moment its service crosses a threshold
    and a waiting job is promoted the moment its wait reaches the limit; the policy asks the
    engine (``view.wake_at``) for a pass at the earliest such instant, so priorities are
    re-evaluated exactly when they change. With ``interval`` set, wake-ups are rounded up to
    the next multiple of ``interval`` seconds instead (a scheduler that runs periodically).

    Args:
        thresholds: queue limits in GPU-seconds of attained service, ascending.
        promote_knob: waiting time / executed time ratio that promotes a job (None = never).
        interval: seconds between re-evaluations (None = exactly when a priority changes).
        preemption: may higher queues preempt lower ones?
        scoring: node scoring of the shared placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.

    Cost per pass: as :class:`~policies.priority.PriorityPolicy`, plus O(log n) per promotion
    due and O(R) over the running jobs for the next demotion. Compiled pass:
    :mod:`policies.ordered_pass`; :meth:`schedule` is its Python reference.
    """

    name = "tiresias"
    _KEY_METHODS = ("service", "level", "_next_demotion")

    def __init__(
        self,
        thresholds: Sequence[float] = (3600.0,),
        promote_knob: float | None = 8.0,
        interval: float | None = None,
        preemption: bool = True,
        scoring: str = "bestfit",
        allow_split: bool = False,
    ) -> None:
        super().__init__(scoring, allow_split)
        limits = [float(t) for t in thresholds]
        if any(t <= 0 for t in limits) or limits != sorted(set(limits)):
            raise ValueError(f"thresholds must be positive and strictly ascending, got {limits}")
        if promote_knob is not None and promote_knob < 0:
            raise ValueError("promote_knob must be >= 0 or None")
        if interval is not None and interval <= 0:
            raise ValueError("interval must be > 0 or None")
        self.thresholds = np.array(limits)
        self.promote_knob = promote_knob
        self.interval = interval
        self.preemption = preemption
        self._base = np.zeros(0)
        self._stamp = np.zeros(0, dtype=np.int64)
        self._promotions: list[tuple[float, int, int]] = []

    def setup(self, view: SchedulerView) -> None:
        """Per-job service offsets and the promotion timers."""
        super().setup(view)
        self._base = np.zeros(view.jobs.n)
        self._stamp = np.zeros(view.jobs.n, dtype=np.int64)

    # ------------------------------------------------------------------ service and queues
    def service(self, view: SchedulerView, js: np.ndarray) -> np.ndarray:
        """GPU-seconds attained by jobs ``js`` since they last entered queue 0."""
        jobs = view.jobs
        held = jobs.gpu_seconds[js].copy()
        run = jobs.status[js] == Status.RUNNING
        held[run] += jobs.gpu_share[js[run]] * (view.now - jobs.run_start[js[run]])
        return held - self._base[js]

    def level(self, view: SchedulerView, js: np.ndarray) -> np.ndarray:
        """Queue index (0 = highest priority) of jobs ``js``."""
        return np.searchsorted(self.thresholds, self.service(view, js) + _EPS, side="right")

    def key(self, view: SchedulerView, j: int) -> tuple[int, int]:
        """Queue, then arrival."""
        return (int(self.level(view, np.array([j]))[0]), j)

    def victims(self, view: SchedulerView, j: int) -> list[int]:
        """Running jobs of strictly lower queues: lowest queue, then latest start/arrival, first."""
        if not self.preemption or not view.running:
            return []
        run = np.fromiter(view.running, dtype=np.int64, count=len(view.running))
        lvl = self.level(view, run)
        ok = lvl > self.level(view, np.array([j]))[0]
        run, lvl = run[ok], lvl[ok]
        return run[np.lexsort((-run, -view.jobs.run_start[run], -lvl))].tolist()

    # ------------------------------------------------------------------ promotion and timers
    def on_preempted(self, view: SchedulerView, j: int) -> None:
        """Start the promotion clock of a preempted job."""
        self._stamp[j] += 1
        share = float(view.jobs.gpu_share[j])
        if self.promote_knob is None or share <= 0:
            return
        executed = float(view.jobs.gpu_seconds[j]) / share
        deadline = view.now + self.promote_knob * executed
        heapq.heappush(self._promotions, (deadline, j, int(self._stamp[j])))

    def before_pass(self, view: SchedulerView) -> None:
        """Promote waiting jobs whose wait reached ``promote_knob`` x executed time."""
        heap, status = self._promotions, view.jobs.status
        while heap and heap[0][0] <= view.now + 1e-9:
            _, j, stamp = heapq.heappop(heap)
            if status[j] != Status.QUEUED or stamp != self._stamp[j]:
                continue
            self._base[j] += self.service(view, np.array([j]))[0]
            self.kq.rekey(j, self.key(view, j))

    def after_pass(self, view: SchedulerView) -> None:
        """Ask for a pass at the next demotion or promotion."""
        now = view.now
        t = math.inf
        heap, status = self._promotions, view.jobs.status
        while heap and (
            status[heap[0][1]] != Status.QUEUED or heap[0][2] != self._stamp[heap[0][1]]
        ):
            heapq.heappop(heap)
        if heap:
            t = heap[0][0]
        if view.running:
            t = min(t, self._next_demotion(view))
        if math.isfinite(t):
            if self.interval is not None:
                t = math.ceil(t / self.interval - 1e-9) * self.interval
            if t > now:
                view.wake_at(t)

    def _next_demotion(self, view: SchedulerView) -> float:
        jobs = view.jobs
        run = np.fromiter(view.running, dtype=np.int64, count=len(view.running))
        share = jobs.gpu_share[run]
        run, share = run[share > 0], share[share > 0]
        if not len(run):
            return math.inf
        svc = self.service(view, run)
        idx = np.searchsorted(self.thresholds, svc + _EPS, side="right")
        below = idx < len(self.thresholds)
        if not below.any():
            return math.inf
        gap = self.thresholds[idx[below]] - svc[below]
        return float(view.now + (gap / share[below]).min())

    def compiled_pass(self, view: SchedulerView) -> OrderedPass | None:
        """The compiled pass (:mod:`policies.ordered_pass`); None if a subclass changes it."""
        return self._compiled_state(
            view,
            TiresiasPolicy,
            KIND_TIRESIAS,
            preemptive=self.preemption,
            thresholds=self.thresholds,
            knob=self.promote_knob,
            interval=self.interval,
        )
