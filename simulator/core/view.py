"""What a policy sees: read-only views of the jobs, the queue, the running set and the cluster.

Every array a policy can reach through a :class:`SchedulerView` is a read-only NumPy view of
the live state (it follows the state, and writing to it raises), lists are tuples, and the
trace frame is a copy; a policy changes the simulation only by yielding decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.core.bits import Bits, bit_next, members
from simulator.core.cluster import ClusterArrays, ClusterState
from simulator.core.jit import jit
from simulator.core.jobs import JobTable, Status
from simulator.core.placement import Placer

if TYPE_CHECKING:
    from simulator.core.engine import Simulation

__all__ = ["ClusterView", "SchedulerView", "JobsView", "PendingQueue", "RunningSet"]


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class ClusterView:
    """The cluster state's arrays as read-only NumPy views (they follow the live state).

    Same attribute names as :class:`~simulator.core.cluster.ClusterState`, so a
    :class:`~simulator.core.placement.Placer` works on either.
    """

    def __init__(self, state: ClusterState) -> None:
        self._state = state
        self.arrays = ClusterArrays(*(_readonly(a) for a in state.arrays))
        for name, a in zip(ClusterArrays._fields, self.arrays, strict=True):
            setattr(self, name, a)
        self.ref = state.ref
        """The live state for compiled code (read-only use: placement searches)."""
        self.spec = state.spec
        self.models = tuple(state.models)
        self.total_gpus = state.total_gpus

    def zeros(self, k: int) -> np.ndarray:
        """The live state's shared read-only zeros (see :meth:`ClusterState.zeros`)."""
        return self._state.zeros(k)

    @property
    def free_gpu_total(self) -> int:
        """Whole free GPUs in the cluster."""
        return self._state.free_gpu_total

    @property
    def version(self) -> int:
        """Allocation counter of the live state (bumped by every allocation and release)."""
        return self._state.version

    @property
    def allocated_milli(self) -> int:
        """Milli-GPU allocated in the cluster."""
        return self._state.allocated_milli


class JobsView:
    """A read-only :class:`~simulator.core.jobs.JobTable`: same attributes, nothing writable.

    Arrays are read-only views of the live columns, lists are tuples, ``frame`` is a copy
    (pandas copy-on-write: cheap until written).
    """

    def __init__(self, jobs: JobTable) -> None:
        self._jobs = jobs
        self._cache: dict[str, object] = {}

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        cache = self.__dict__["_cache"]
        if name in cache:
            return cache[name]
        value = getattr(self.__dict__["_jobs"], name)
        if isinstance(value, np.ndarray):
            value = _readonly(value)
        elif isinstance(value, list):
            value = tuple(value)
        elif name == "frame":
            return value.copy(deep=False)
        elif callable(value):
            return value
        cache[name] = value
        return value

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("_jobs", "_cache"):
            object.__setattr__(self, name, value)
            return
        raise AttributeError(f"the job table is read-only for policies (tried to set {name!r})")


@jit
def _next(words, summary, i):
    return bit_next(Bits(words, summary), i)


class PendingQueue:
    """The queued jobs, read-only: by arrival (job index) overall and within each demand class.

    Jobs with identical demand (GPUs, milli-GPU, GPU-type constraint, CPU, memory) share a
    class. If one job of a class cannot be placed during a scheduling pass, no other job of
    that class can be placed later in the same pass (resources only shrink within a pass), so
    a policy may skip the whole class.
    """

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def __len__(self) -> int:
        """Number of queued jobs."""
        return int(self._sim.es.c[0].queued)

    def first(self) -> int:
        """Earliest-arrived queued job, or -1 if the queue is empty."""
        b = self._sim.es.q.queued
        return int(_next(b.words, b.summary, 0))

    def class_head(self, c: int) -> int:
        """Earliest-arrived queued job of class ``c``, or -1."""
        es = self._sim.es
        b = es.q.by_class
        start, end = int(es.cls.start[c]), int(es.cls.start[c + 1])
        p = int(_next(b.words, b.summary, start))
        return int(es.cls.jobs[p]) if 0 <= p < end else -1

    def class_heads(self) -> list[tuple[int, int]]:
        """``(head job, class)`` for every class with queued jobs, sorted by head arrival."""
        es = self._sim.es
        heads = members(es.q.heads, int(es.c[0].queued))
        return list(zip(heads.tolist(), es.jobs.cls[heads].tolist(), strict=True))

    def jobs(self) -> list[int]:
        """All queued jobs in arrival order."""
        es = self._sim.es
        return members(es.q.queued, int(es.c[0].queued)).tolist()

    @property
    def pushes(self) -> int:
        """How many times a job entered the queue so far (a cursor for :meth:`pushed_since`)."""
        return int(self._sim.es.c[0].pushes)

    def pushed_since(self, cursor: int) -> list[int]:
        """Jobs that entered the queue since ``cursor``, in order, repeats included.

        Every entry counts: arrivals, jobs submitted by controllers, and jobs requeued after a
        preemption or a failure. A policy with its own ordering keeps ``cursor = queue.pushes``
        and feeds these into its index (checking that each is still queued).
        """
        es = self._sim.es
        return es.log.pushes[cursor : es.c[0].pushes].tolist()


class RunningSet:
    """The running jobs (a read-only set of job indices; iterates in ascending order)."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def __len__(self) -> int:
        """Number of running jobs."""
        return int(self._sim.es.c[0].running)

    def __bool__(self) -> bool:
        """Whether any job runs."""
        return bool(self._sim.es.c[0].running > 0)

    def __contains__(self, j: object) -> bool:
        """Whether job ``j`` runs."""
        try:
            return bool(self._sim.es.jobs.status[j] == Status.RUNNING)
        except (IndexError, TypeError):
            return False

    def array(self) -> np.ndarray:
        """The running jobs, ascending, as an int64 array."""
        es = self._sim.es
        return members(es.q.running, int(es.c[0].running))

    def __iter__(self):
        """Running jobs in ascending order."""
        return iter(self.array().tolist())


class SchedulerView:
    """What a policy may see: time, jobs, queue, running set, cluster, and the run's RNG.

    Attributes:
        jobs: the job table, read-only (:class:`JobsView`).
        queue: the queue, read-only (:class:`PendingQueue`).
        running: the running jobs (:class:`RunningSet`).
        cluster: a :class:`ClusterView`.
        rng: the simulation's ``numpy.random.Generator`` (for randomised policies).
        fabric: the network model, or None (read-only use, e.g. to predict a job's rate).
    """

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim
        self.jobs = JobsView(sim.jobs)
        self.queue = sim.queue
        self.running = sim.running
        self.cluster = ClusterView(sim.state)
        self.rng = sim.rng
        self.fabric = sim.fabric

    @property
    def alloc_by_queue(self) -> np.ndarray:
        """GPUs (fractional shares summed) held by each queue's running jobs, by queue id."""
        return self._sim.alloc_by_queue

    @property
    def queued_by_queue(self) -> np.ndarray:
        """Queued jobs per queue id (ids index ``jobs.queue_names``)."""
        return self._sim.queued_by_queue

    def ended_since(self, mark: int) -> tuple[list[int], int]:
        """Jobs that stopped running since ``mark`` (0 at the start), and the new mark.

        Covers completions, preemptions, failure kills, migrations (the job stops on its old
        placement and starts on the new one) and controller stops.
        """
        es = self._sim.es
        end = int(es.c[0].stops)
        return es.log.stops[mark:end].tolist(), end

    def attained_gpu_seconds(self, j: int) -> float:
        """GPU-seconds job ``j`` has held so far, including its current run."""
        jobs = self._sim.jobs
        held = float(jobs.gpu_seconds[j])
        if jobs.status[j] == Status.RUNNING:
            held += float(jobs.gpu_share[j]) * (self.now - float(jobs.run_start[j]))
        return held

    @property
    def now(self) -> float:
        """Current simulated time in seconds."""
        return float(self._sim.es.c[0].now)

    def placer(
        self, scoring: str = "bestfit", allow_split: bool = False, indexed: bool = True
    ) -> Placer:
        """A :class:`~simulator.core.placement.Placer` over this view's cluster."""
        return Placer(self.cluster, scoring=scoring, allow_split=allow_split, indexed=indexed)

    def wake_at(self, time: float) -> None:
        """Ask for a scheduling pass at ``time`` (seconds) even if nothing else happens then."""
        self._sim.request_pass_at(time)

    def reason_code(self, reason: str) -> int:
        """The code a compiled pass gives :func:`~simulator.core.ops.reject` for ``reason``."""
        return self._sim.reason_code(reason)
