"""First-in first-out with head-of-line blocking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from policies.base import Policy, Start, overrides
from simulator.core.hooks import PASS_DONE
from simulator.core.jit import jit
from simulator.core.ops import first_queued, place_job, start
from simulator.core.view import SchedulerView

__all__ = ["FifoPolicy", "FifoPass"]


class FifoPolicy(Policy):
    """Start jobs strictly in arrival order; stop at the first job that does not fit.

    The job at the head of the queue blocks everyone behind it until it can start
    (head-of-line blocking), as in a YARN-style capacity scheduler without backfilling.

    Cost per pass: O(started jobs x placement), plus O(1) to find the head (the queue is a
    bitset in arrival order). Compiled pass: :class:`FifoPass`; :meth:`schedule` is its
    Python reference.

    Args:
        scoring: node scoring of the shared placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.
        indexed: use the free-GPU bucket index (False = reference linear scan, same result).
    """

    name = "fifo"

    def __init__(
        self, scoring: str = "bestfit", allow_split: bool = False, indexed: bool = True
    ) -> None:
        self.scoring = scoring
        self.allow_split = allow_split
        self.indexed = indexed
        self.placer = None

    def setup(self, view: SchedulerView) -> None:
        """Build the placer over the view's cluster."""
        self.placer = view.placer(self.scoring, self.allow_split, self.indexed)

    def schedule(self, view: SchedulerView) -> Iterator[Start]:
        """Start queue heads in order until one does not fit."""
        queue, jobs, place = view.queue, view.jobs, self.placer.place
        while True:
            j = queue.first()
            if j < 0:
                return
            p = place(jobs, j)
            if p is None:
                return
            yield Start(j, p)

    def compiled_pass(self, view: SchedulerView) -> FifoPass | None:
        """The compiled pass's state (None if a subclass changes the pass)."""
        if overrides(self, FifoPolicy, "schedule", "setup"):
            return None
        p = self.placer
        return FifoPass(p.mode, p.allow_split, p.indexed)

    def compiled_finish(self, state: FifoPass) -> None:
        """Nothing to copy back: FIFO keeps no state between passes."""


@jit
def _fifo_pass(es, fs, ps):
    """:meth:`FifoPolicy.schedule`, compiled."""
    while True:
        j = first_queued(es)
        if j < 0:
            return PASS_DONE
        k = place_job(es, j, ps.mode, ps.allow_split, ps.indexed)
        if k < 0:
            return PASS_DONE
        code = start(es, fs, j, k)
        if code != 0:
            return code


class FifoPass(NamedTuple):
    """Compiled state of :class:`FifoPolicy` (its placer's settings)."""

    mode: int
    allow_split: bool
    indexed: bool

    kernel = _fifo_pass
