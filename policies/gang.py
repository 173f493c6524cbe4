"""Gang scheduling: all-or-nothing starts, best-fit packing, bounded skipping of the head."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from policies.base import Policy, Start, overrides
from simulator.core.bits import bit_next
from simulator.core.hooks import PASS_DONE, policy_hook
from simulator.core.jit import jit
from simulator.core.ops import first_queued, place_job, start
from simulator.core.view import SchedulerView

__all__ = ["GangPolicy", "GangPass", "gang_walk", "new_walk", "place_hook", "started_hook"]

place_hook = policy_hook("place")
"""``type(ps).place(es, ps, j)``: where the walk's policy places job ``j`` (into ``es.buf``)."""
started_hook = policy_hook("started")
"""``type(ps).started(es, ps, j)``: the walk started job ``j``."""


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

    Cost per pass: O(classes with queued jobs tried x placement); the class heads are a
    bitset in arrival order, kept up to date at every queue change, so a pass never sorts the
    queue. Compiled pass: :class:`GangPass`; :meth:`schedule` is its Python reference.

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

    def compiled_pass(self, view: SchedulerView) -> GangPass | None:
        """The compiled pass's state (None if a subclass changes the pass)."""
        if overrides(self, GangPolicy, "schedule", "setup", "_starving"):
            return None
        return self._gang_state(self.placer)

    def _gang_state(self, p) -> GangPass:
        """The walk's state: placer ``p``'s settings and the starvation clock."""
        return new_walk(
            p.mode, p.allow_split, p.indexed, self.starvation_timeout, self._head, self._head_since
        )

    def compiled_finish(self, state: GangPass) -> None:
        """Copy the starvation clock back (the head and since when it is the head)."""
        self._head, self._head_since = int(state.head[0]), float(state.head_since[0])


@jit
def gang_walk(es, fs, ps, w):
    """:meth:`GangPolicy.schedule`, compiled: class heads in arrival order, as they change.

    Placement is ``type(ps).place`` (:data:`place_hook`), so a policy that walks the queue as
    gang does and only places differently (e.g. :mod:`policies.topology`) shares this walk:
    ``ps`` is that policy's state, ``w`` the walk's own (a :class:`GangPass`: the starvation
    clock; ``ps`` itself for gang).
    """
    now = es.c[0].now
    head = first_queued(es)
    if head < 0:
        return PASS_DONE
    if head != w.head[0]:
        w.head[0] = head
        w.head_since[0] = now
    limit = w.limit
    if es.c[0].queued == 1:  # nothing to skip or order
        k = place_hook(es, ps, head)
        if k >= 0:
            code = start(es, fs, head, k)
            if code == 0:
                started_hook(es, ps, head)
            return code
        return PASS_DONE
    starving = limit >= 0 and now - w.head_since[0] >= limit
    heads = es.q.heads
    j = bit_next(heads, 0)
    while j >= 0:
        k = place_hook(es, ps, j)
        if k < 0:
            if starving and j == head:
                return PASS_DONE
        else:
            code = start(es, fs, j, k)  # the class's next job becomes its head (later bit)
            if code != 0:
                return code
            started_hook(es, ps, j)
            if j == head:
                head = first_queued(es)
                starving = False
                if limit >= 0 and head >= 0:
                    if head != w.head[0]:
                        w.head[0] = head
                        w.head_since[0] = now
                    starving = now - w.head_since[0] >= limit
        j = bit_next(heads, j + 1)
    return PASS_DONE


@jit
def _gang_place(es, ps, j):
    return place_job(es, j, ps.mode, ps.allow_split, ps.indexed)


@jit
def _nothing(es, ps, j):
    return 0


@jit
def _gang_pass(es, fs, ps):
    return gang_walk(es, fs, ps, ps)


class GangPass(NamedTuple):
    """Compiled state of :class:`GangPolicy`: placer settings and the starvation clock."""

    mode: int
    allow_split: bool
    indexed: bool
    limit: float  # starvation_timeout, s (< 0 = none)
    head: np.ndarray  # int64[1]: the head the clock runs for
    head_since: np.ndarray  # float64[1]: since when it is the head

    kernel = _gang_pass
    place = _gang_place
    started = _nothing


def new_walk(
    mode: int,
    allow_split: bool,
    indexed: bool = True,
    starvation_timeout: float | None = None,
    head: int = -1,
    head_since: float = 0.0,
) -> GangPass:
    """The state of a gang walk (:func:`gang_walk`): placer settings, the starvation clock."""
    limit = -1.0 if starvation_timeout is None else float(starvation_timeout)
    return GangPass(
        int(mode),
        bool(allow_split),
        bool(indexed),
        limit,
        np.array([head], dtype=np.int64),
        np.array([head_since]),
    )
