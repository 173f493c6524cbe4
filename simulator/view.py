"""Read-only view of the simulation handed to policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.cluster import ClusterState
from simulator.placement import Placer

if TYPE_CHECKING:
    from simulator.engine import Simulation

__all__ = ["ClusterView", "SchedulerView"]

_ARRAYS = (
    "gpu_free",
    "free_full",
    "cpu_free",
    "mem_free",
    "cpu_cap",
    "mem_cap",
    "capacity",
    "node_model",
    "node_up",
    "racks",
    "buckets",
    "rack_order",
    "rack_start",
)


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class ClusterView:
    """The cluster state's arrays as read-only NumPy views (they follow the live state).

    Same attribute names as :class:`~simulator.cluster.ClusterState`, so a
    :class:`~simulator.placement.Placer` works on either.
    """

    def __init__(self, state: ClusterState) -> None:
        self._state = state
        for name in _ARRAYS:
            setattr(self, name, _readonly(getattr(state, name)))
        self.spec = state.spec
        self.models = tuple(state.models)
        self.total_gpus = state.total_gpus
        self.uid = state.uid
        """Identity of the live state (see :attr:`Placement.stamp`)."""

    def zeros(self, k: int) -> np.ndarray:
        """The live state's shared read-only zeros (see :meth:`ClusterState.zeros`)."""
        return self._state.zeros(k)

    @property
    def free_gpu_total(self) -> int:
        """Whole free GPUs in the cluster."""
        return self._state.free_gpu_total

    @property
    def version(self) -> int:
        """Allocation counter of the live state (see :attr:`Placement.stamp`)."""
        return self._state.version

    @property
    def allocated_milli(self) -> int:
        """Milli-GPU allocated in the cluster."""
        return self._state.allocated_milli


class SchedulerView:
    """What a policy may see: time, jobs, queue, running set, cluster, and the run's RNG.

    Attributes:
        jobs: the :class:`~simulator.jobs.JobTable` (read its columns, never write them).
        queue: the :class:`~simulator.queue.PendingQueue` (read-only use).
        running: set of running job indices.
        cluster: a :class:`ClusterView`.
        rng: the simulation's ``numpy.random.Generator`` (for randomised policies).
    """

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim
        self.jobs = sim.jobs
        self.queue = sim.queue
        self.running = sim.running
        self.cluster = ClusterView(sim.state)
        self.rng = sim.rng
        self.fabric = sim.fabric
        """The network model, or None; read-only for policies (e.g. to predict a job's rate)."""

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
        stops = self._sim.stops
        return stops[mark:].tolist(), len(stops)

    def attained_gpu_seconds(self, j: int) -> float:
        """GPU-seconds job ``j`` has held so far, including its current run."""
        jobs = self.jobs
        held = float(jobs.gpu_seconds[j])
        if j in self.running:
            held += float(jobs.gpu_share[j]) * (self.now - float(jobs.run_start[j]))
        return held

    @property
    def now(self) -> float:
        """Current simulated time in seconds."""
        return self._sim.env._now

    def placer(
        self, scoring: str = "bestfit", allow_split: bool = False, indexed: bool = True
    ) -> Placer:
        """A :class:`~simulator.placement.Placer` over this view's cluster."""
        return Placer(self.cluster, scoring=scoring, allow_split=allow_split, indexed=indexed)

    def wake_at(self, time: float) -> None:
        """Ask for a scheduling pass at ``time`` (seconds) even if nothing else happens then."""
        self._sim.request_pass_at(time)
