"""A policy-side view of the queue ordered by any key, kept as one heap per demand class.

The engine's :class:`~simulator.core.view.PendingQueue` orders jobs by arrival. Policies that order
by something else (shortest job, remaining time, priority, LAS level) keep a
:class:`KeyedQueue`: it follows the engine queue's push log (every arrival, every job a
controller submits, every job requeued after a preemption or a node failure), keeps one heap of
``(key, job)`` per demand class and drops stale entries lazily (a job that is no longer queued,
or whose key was replaced). Within a class, resources only shrink during a pass, so once the
best job of a class cannot be placed the policy may skip the whole class.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable

from simulator.core.jit import jit
from simulator.core.jobs import JobTable, Status
from simulator.core.view import PendingQueue

__all__ = ["KeyedQueue", "take_pushes"]

_QUEUED = Status.QUEUED


class KeyedQueue:
    """Queued jobs of one simulation, ordered by a policy key within each demand class.

    Args:
        jobs: the simulation's job table (read-only use).
        group: optional group id per job (default: the job's demand class). Jobs are only
            compared with jobs of the same group when a policy skips a failed group.
    """

    def __init__(self, jobs: JobTable, group: Callable[[int], int] | None = None) -> None:
        self._jobs = jobs
        self._group = group or (lambda j: int(jobs.demand_class[j]))
        self._heaps: dict[int, list[tuple[Hashable, int]]] = {}
        self._key: dict[int, Hashable] = {}
        self._cursor = 0
        self._seen: set[int] = set()
        self._mine: set[int] = set()

    def sync(
        self, queue: PendingQueue, key: Callable[[int], Hashable]
    ) -> tuple[list[int], list[int]]:
        """Take in every job that entered the engine queue since the last call.

        Returns:
            ``(new, back)``: jobs queued for the first time (arrivals, controller
            submissions), and jobs that came back by other means than this policy's own
            preemptions (killed by a node failure), both pushed under ``key``. Jobs the policy
            requeued itself with :meth:`push` keep the key it gave them.
        """
        entries = queue.pushed_since(self._cursor)
        self._cursor = queue.pushes
        status = self._jobs.status
        new: list[int] = []
        back: list[int] = []
        others = []
        for j in entries:  # the engine's entry for each push of ours comes first
            if j in self._mine:
                self._mine.discard(j)
            else:
                others.append(j)
        for j in dict.fromkeys(others):
            if status[j] != Status.QUEUED:
                continue
            (back if j in self._seen else new).append(j)
            self._seen.add(j)
            self._insert(j, key(j))
        return new, back

    def _insert(self, j: int, key: Hashable) -> None:
        self._key[j] = key
        heapq.heappush(self._heaps.setdefault(self._group(j), []), (key, j))

    def push(self, j: int, key: Hashable) -> None:
        """Requeue ``j`` under ``key`` (after the policy preempted it); replaces older entries.

        The engine's push of the same requeue is then skipped by :meth:`sync`.
        """
        self._mine.add(j)
        self._seen.add(j)
        self._insert(j, key)

    def rekey(self, j: int, key: Hashable) -> None:
        """Give queued job ``j`` a new key (e.g. a promotion); the old entry becomes stale."""
        self._insert(j, key)

    def group(self, j: int) -> int:
        """Group id of job ``j``."""
        return self._group(j)

    def key(self, j: int) -> Hashable | None:
        """Current key of job ``j`` (None if it was never pushed)."""
        return self._key.get(j)

    def head(self, g: int) -> tuple[Hashable, int] | None:
        """Best ``(key, job)`` of group ``g`` that is still queued, or None."""
        heap = self._heaps.get(g)
        status, keys = self._jobs.status, self._key
        while heap:
            key, j = heap[0]
            if status[j] == Status.QUEUED and keys.get(j) == key:
                return key, j
            heapq.heappop(heap)
            if status[j] != Status.QUEUED and keys.get(j) == key:
                del keys[j]
        if heap is not None:
            del self._heaps[g]
        return None

    def heads(self) -> list[tuple[Hashable, int, int]]:
        """``(key, job, group)`` of the best job of every group, as a heap (best first)."""
        out = []
        for g in list(self._heaps):
            h = self.head(g)
            if h is not None:
                out.append((h[0], h[1], g))
        heapq.heapify(out)
        return out


@jit
def take_pushes(es, cursor, mine, synced, stamp, out):
    """:meth:`KeyedQueue.sync`'s walk of the push log, for compiled passes.

    Writes into ``out`` every job that entered the engine queue since entry ``cursor[0]`` and
    still waits, once each, in order of first entry, skipping the engine's entry of each of the
    pass's own requeues (``mine[j]``, cleared here); ``synced``/``stamp`` mark the jobs taken
    in this call. Moves the cursor; returns how many jobs were written.
    """
    pushes = es.log.pushes
    status = es.jobs.status
    end = es.c[0].pushes
    n = 0
    for i in range(cursor[0], end):
        j = pushes[i]
        if mine[j]:
            mine[j] = False
            continue
        if synced[j] == stamp:
            continue
        synced[j] = stamp
        if status[j] != _QUEUED:
            continue
        out[n] = j
        n += 1
    cursor[0] = end
    return n
