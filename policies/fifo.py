"""First-in first-out with head-of-line blocking."""

from __future__ import annotations

from collections.abc import Iterator

from policies.base import Policy, Start, overrides
from simulator.view import SchedulerView

__all__ = ["FifoPolicy"]


class FifoPolicy(Policy):
    """Start jobs strictly in arrival order; stop at the first job that does not fit.

    The job at the head of the queue blocks everyone behind it until it can start
    (head-of-line blocking), as in a YARN-style capacity scheduler without backfilling.

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

    def replay_spec(self) -> dict | None:
        """What the engine's compiled loop needs to run this policy (None = it cannot)."""
        if overrides(self, FifoPolicy, "schedule", "setup"):
            return None
        return {"kind": "fifo", "placer": self.placer}
