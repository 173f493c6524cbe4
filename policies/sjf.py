"""Shortest job first (non-preemptive)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from policies.base import Start
from policies.ordered import OrderedPolicy, job_estimates
from policies.ordered_pass import KIND_SJF, OrderedPass
from simulator.core.view import SchedulerView

__all__ = ["SjfPolicy"]


class SjfPolicy(OrderedPolicy):
    """Non-preemptive shortest job first.

    Each pass starts queued jobs in order of their run-time estimate (shortest first, ties by
    arrival), all-or-nothing, skipping jobs that do not fit so that later (longer) jobs may
    use the room (work-conserving); ``strict=True`` stops at the first job that does not fit
    instead. Running jobs are never preempted. The estimate is the true ``duration`` (oracle)
    or the trace column named by ``estimate_column`` (missing or non-positive values fall back
    to the duration). Long jobs can starve while shorter ones keep arriving (classic SJF).

    Args:
        estimate_column: trace column with per-job run-time estimates in seconds (None = oracle).
        strict: stop the pass at the first job that does not fit (no overtaking).
        scoring: node scoring of the shared placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.

    Cost per pass: O(P log Q) to key the P jobs queued since the last pass, O(C) for the heads
    of C classes, O(log) per head tried (strict: O(C) per start). Compiled pass:
    :mod:`policies.ordered_pass`; :meth:`schedule` is its Python reference.
    """

    name = "sjf"

    def __init__(
        self,
        estimate_column: str | None = None,
        strict: bool = False,
        scoring: str = "bestfit",
        allow_split: bool = False,
    ) -> None:
        super().__init__(scoring, allow_split)
        self.estimate_column = estimate_column
        self.strict = strict
        self.estimate = np.zeros(0)

    def setup(self, view: SchedulerView) -> None:
        """Read the estimates and build placer and queue."""
        super().setup(view)
        self.estimate = job_estimates(view, self.estimate_column)

    def key(self, view: SchedulerView, j: int) -> tuple[float, int]:
        """Estimated run time, then arrival."""
        return (float(self.estimate[j]), j)

    def schedule(self, view: SchedulerView) -> Iterator[Start]:
        """Start jobs shortest first; in strict mode stop at the first that does not fit."""
        if not self.strict:
            yield from super().schedule(view)
            return
        kq = self.kq
        kq.sync(view.queue, lambda j: self.key(view, j))
        while True:
            heads = kq.heads()
            if not heads:
                return
            _, j, _ = heads[0]
            p = self.placer.place(view.jobs, j)
            if p is None:
                return
            yield Start(j, p)

    def compiled_pass(self, view: SchedulerView) -> OrderedPass | None:
        """The compiled pass (:mod:`policies.ordered_pass`); None if a subclass changes it."""
        return self._compiled_state(
            view, SjfPolicy, KIND_SJF, estimate=self.estimate, strict=self.strict
        )
