"""Pending-job queue kept per demand class, ordered by arrival.

Jobs with identical demand (GPUs, milli-GPU, GPU-type constraint, CPU, memory) share a class.
If one job of a class cannot be placed during a scheduling pass, no other job of that class can
be placed later in the same pass (resources only shrink within a pass), so a policy may skip
the whole class. Keeping one heap per class makes that skip O(1) instead of a scan of the queue.
Removal is lazy: a started job stays in its heaps until it reaches the top.
"""

from __future__ import annotations

import heapq
from array import array
from heapq import heappush

import numpy as np

from simulator.jobs import Status

__all__ = ["PendingQueue"]

_QUEUED = Status.QUEUED


class PendingQueue:
    """Queued jobs, by arrival order (job index) overall and within each demand class.

    Args:
        status: the job table's status column (read to skip jobs no longer queued).
        demand_class: class id of every job.
        num_classes: number of distinct classes.
    """

    def __init__(self, status: np.ndarray, demand_class: np.ndarray, num_classes: int) -> None:
        self._status = status
        self._class: list[int] = demand_class.tolist()  # Python ints: cheap scalar access
        self._all: list[int] = []
        self._by_class: list[list[int]] = [[] for _ in range(num_classes)]
        self._active: set[int] = set()
        self._size = 0
        self._log = array("q")

    def __len__(self) -> int:
        """Number of queued jobs."""
        return self._size

    def push(self, j: int) -> None:
        """Add job ``j`` (its status must already be QUEUED)."""
        c = self._class[j]
        heappush(self._all, j)
        heappush(self._by_class[c], j)
        self._active.add(c)
        self._size += 1
        self._log.append(j)

    @property
    def pushes(self) -> int:
        """How many times a job entered the queue so far (a cursor for :meth:`pushed_since`)."""
        return len(self._log)

    def pushed_since(self, cursor: int) -> list[int]:
        """Jobs that entered the queue since ``cursor``, in order, repeats included.

        Every entry counts: arrivals, jobs submitted by controllers, and jobs requeued after a
        preemption or a failure. A policy with its own ordering keeps ``cursor = queue.pushes``
        and feeds these into its index (checking that each is still queued).
        """
        return self._log[cursor:].tolist()

    def discard(self, j: int) -> None:
        """Note that job ``j`` left the queue (its status is no longer QUEUED)."""
        self._size -= 1

    def first(self) -> int:
        """Earliest-arrived queued job, or -1 if the queue is empty."""
        heap, status = self._all, self._status
        while heap and status[heap[0]] != _QUEUED:
            heapq.heappop(heap)
        return heap[0] if heap else -1

    def class_head(self, c: int) -> int:
        """Earliest-arrived queued job of class ``c``, or -1."""
        heap, status = self._by_class[c], self._status
        while heap and status[heap[0]] != _QUEUED:
            heapq.heappop(heap)
        if not heap:
            self._active.discard(c)
            return -1
        return heap[0]

    def class_heads(self) -> list[tuple[int, int]]:
        """``(head job, class)`` for every class with queued jobs, sorted by head arrival."""
        heads = []
        for c in list(self._active):
            h = self.class_head(c)
            if h >= 0:
                heads.append((h, c))
        heads.sort()
        return heads

    def jobs(self) -> list[int]:
        """All queued jobs in arrival order (O(n log n); for policies that need a full scan)."""
        status = self._status
        # a requeued job can have an older heap entry too: a set keeps each job once
        return sorted({j for j in self._all if status[j] == Status.QUEUED})
