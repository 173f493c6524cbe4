"""Gang scheduling: all-or-nothing starts, best-fit packing, bounded skipping of the head."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from policies.base import Policy, Start, overrides
from simulator.view import SchedulerView

__all__ = ["GangPolicy"]


class GangPolicy(Policy):
    """All-or-nothing gang scheduling in arrival order, with skipping and a starvation guard.

    Each pass walks the queue in arrival order. A job starts only if all its GPUs can be placed
    at once (on one node, or on the fewest nodes for gangs larger than a node), best-fit by
    default. A job that does not fit is skipped and later jobs may start ahead of it
    (work-conserving), so small jobs are not stuck behind a large gang. To keep the large gang
    from starving forever, once the oldest queued job (the head) has been the head for
    ``starvation_timeout`` seconds (counted from the first pass that saw it at the head),
    nothing may start ahead of it: the pass stops at it until it starts (its GPUs drain free as
    running jobs finish). ``starvation_timeout=None`` disables the guard (pure greedy).

    Jobs with identical demand form a class; once a job of a class fails in a pass, the rest of
    that class is skipped for the pass (same result as trying each, without the quadratic scan).

    Args:
        scoring: node scoring (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.
        indexed: use the free-GPU bucket index (False = reference linear scan, same result).
        starvation_timeout: seconds the queue head may be overtaken (None = forever).
    """

    name = "gang"

    def __init__(
        self,
        scoring: str = "bestfit",
        allow_split: bool = False,
        indexed: bool = True,
        starvation_timeout: float | None = 3600.0,
    ) -> None:
        if starvation_timeout is not None and starvation_timeout < 0:
            raise ValueError("starvation_timeout must be >= 0 or None")
        self.scoring = scoring
        self.allow_split = allow_split
        self.indexed = indexed
        self.starvation_timeout = starvation_timeout
        self.placer = None
        self._head = -1
        self._head_since = 0.0

    def setup(self, view: SchedulerView) -> None:
        """Build the placer over the view's cluster."""
        self.placer = view.placer(self.scoring, self.allow_split, self.indexed)

    def schedule(self, view: SchedulerView) -> Iterator[Start]:
        """Start every job that fits, in arrival order, respecting the starvation guard."""
        queue, jobs, place = view.queue, view.jobs, self.placer.place
        head = queue.first()
        if head < 0:
            return
        limit = self.starvation_timeout
        now = view.now
        if head != self._head:  # _starving's bookkeeping, inline for the common case below
            self._head, self._head_since = head, now
        if len(queue) == 1:  # common case: nothing to skip or order
            p = place(jobs, head)
            if p is not None:
                yield Start(head, p)
            return
        starving = limit is not None and now - self._head_since >= limit
        heads = queue.class_heads()
        while heads:
            j, c = heapq.heappop(heads)
            p = place(jobs, j)
            if p is None:
                if starving and j == head:
                    return
                continue
            yield Start(j, p)
            if j == head:
                head = queue.first()
                starving = limit is not None and head >= 0 and self._starving(head, now)
            nxt = queue.class_head(c)
            if nxt >= 0:
                heapq.heappush(heads, (nxt, c))

    def _starving(self, head: int, now: float) -> bool:
        if head != self._head:
            self._head, self._head_since = head, now
        return now - self._head_since >= self.starvation_timeout

    def replay_spec(self) -> dict | None:
        """What the engine's compiled loop needs to run this policy (None = it cannot)."""
        if overrides(self, GangPolicy, "schedule", "setup", "_starving"):
            return None
        return {
            "kind": "gang",
            "placer": self.placer,
            "starvation_timeout": self.starvation_timeout,
            "head": self._head,
            "head_since": self._head_since,
            "finish": self._replayed,
        }

    def _replayed(self, head: int, head_since: float) -> None:
        self._head, self._head_since = head, head_since
