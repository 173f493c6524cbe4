"""The discrete-event engine: one :class:`Simulation` owns the SimPy environment, RNG and state.

Event ordering at one instant ``t`` (SimPy breaks ties by ``(time, priority, insertion)``):

1. ``RELEASE`` events: job completions (and, later, failures) free their resources;
2. ``TIMER`` events: wake-ups that policies asked for with ``view.wake_at``;
3. one ``PASS`` event: it first admits every job with ``submit_time == t`` to the queue (in
   trace order), then runs the policy's scheduling pass, which therefore sees all releases and
   arrivals of ``t``. Jobs it starts begin at ``t``.

The pass event of an arrival instant is the arrival event itself; an instant without arrivals
gets its own pass event when something happened that a policy could act on (a release with a
non-empty queue, a timer). A release that leaves the queue empty needs no pass: the engine
records the timeline row directly.

A job's completion is an event scheduled at ``now + remaining_work / rate``. When a job's rate
changes or it is preempted, its ``version`` is bumped and the stale completion event is ignored
when it fires (SimPy has no event cancellation; a new event replaces it).
"""

from __future__ import annotations

import math
import time as _time
from array import array
from collections.abc import Callable
from heapq import heappop, heappush

import numpy as np
import pandas as pd
import simpy
from simpy.core import StopSimulation
from simpy.events import URGENT, Event

from policies.base import Migrate, Preempt, Reject, Start
from simulator.cluster import MILLI, ClusterSpec, ClusterState
from simulator.interrupts import GracefulStop
from simulator.jobs import JobTable, Status
from simulator.kernels import ALLOC_MESSAGES
from simulator.placement import Placement, Placer
from simulator.queue import PendingQueue
from simulator.view import SchedulerView

__all__ = ["Simulation", "PolicyError", "RELEASE", "TIMER", "PASS"]

RELEASE = 0
"""SimPy priority of completions: first at an instant."""
TIMER = 1
"""SimPy priority of policy wake-ups: after releases."""
PASS = 2
"""SimPy priority of arrivals + scheduling pass: last at an instant."""


_FUTURE = Status.FUTURE
_QUEUED = Status.QUEUED
_RUNNING = Status.RUNNING
_FINISHED = Status.FINISHED

_I64 = np.dtype(np.int64)
_F64 = np.dtype(np.float64)


def _canonical(p: Placement) -> Placement:
    """``p`` with int64 node/GPU ids and float64 CPU/memory arrays (copies only if needed)."""
    if (
        type(p.nodes) is np.ndarray
        and p.nodes.dtype == _I64
        and type(p.gpus) is np.ndarray
        and p.gpus.dtype == _I64
        and type(p.cpus) is np.ndarray
        and p.cpus.dtype == _F64
        and type(p.mem) is np.ndarray
        and p.mem.dtype == _F64
    ):
        return p
    return Placement(
        np.asarray(p.nodes, dtype=np.int64).reshape(-1),
        np.asarray(p.gpus, dtype=np.int64).reshape(-1),
        int(p.milli),
        np.asarray(p.cpus, dtype=np.float64).reshape(-1),
        np.asarray(p.mem, dtype=np.float64).reshape(-1),
    )


def _check_args(**values: object) -> None:
    """Reject meaningless run parameters, naming their ``sim.`` (or top-level) config key."""
    for name, v in values.items():
        key = name if name == "seed" else f"sim.{name}"
        if name in ("seed", "max_retries"):
            if v is None and name == "max_retries":
                continue
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"{key} must be an integer >= 0, got {v!r}")
            continue
        if v is None and name == "until":
            continue
        try:
            x = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            x = math.nan
        if isinstance(v, bool) or not math.isfinite(x) or x < 0 or (name == "until" and x <= 0):
            bound = "> 0 or null" if name == "until" else ">= 0"
            raise ValueError(f"{key} must be a finite number of seconds {bound}, got {v!r}")


class PolicyError(RuntimeError):
    """A policy returned a decision the engine cannot apply (e.g. a placement that does not fit)."""


class Simulation:
    """One simulation run: trace + cluster + policy -> per-job results, timeline, summary.

    Args:
        trace: canonical job table (see ``traces.canonical``).
        cluster: the cluster spec.
        policy: object with ``schedule(view)`` (and optionally ``setup(view)``).
        seed: seed of the run's ``numpy.random.Generator``.
        record_events: keep the ``(time, job_id, event)`` log in :attr:`events`.
        check_invariants: verify resource accounting after every event (slow; for tests).
        timeline_interval: minimum simulated seconds between timeline rows (0 = every change).
        until: stop at this simulated time (None = run until every job is terminal).
        checkpoint_interval: seconds of progress between checkpoints; a preempted job keeps
            the progress of its last checkpoint (0 = it keeps all progress).
        restart_overhead: seconds a preempted job pays again when it restarts.
        migration_overhead: seconds of progress a migrated job loses (state transfer, restart).
        max_retries: a job killed by node failures more than this many times ends ``failed``
            (None = retry forever).
        fabric: network model with ``setup(sim)``, ``on_start(j, placement, now)`` and
            ``on_stop(j, now)``, the last two returning ``{job: rate}`` changes (see
            ``simulator.fabric``); None = placement never changes speed.
        processes: generator functions ``f(sim)`` started as SimPy processes before the run
            (failure injectors, autoscalers, ...).
        progress: show a progress bar (None = only on an interactive terminal).
        compiled: run in the compiled event loop (:mod:`simulator.replay`, same results) when
            the policy offers one and the run needs no Python during the simulation.
    """

    def __init__(
        self,
        trace: pd.DataFrame,
        cluster: ClusterSpec,
        policy: object,
        seed: int = 0,
        *,
        record_events: bool = False,
        check_invariants: bool = False,
        timeline_interval: float = 0.0,
        until: float | None = None,
        checkpoint_interval: float = 0.0,
        restart_overhead: float = 0.0,
        migration_overhead: float = 0.0,
        max_retries: int | None = None,
        fabric: object | None = None,
        processes: tuple = (),
        progress: bool | None = False,
        compiled: bool = True,
    ) -> None:
        _check_args(
            seed=seed,
            until=until,
            timeline_interval=timeline_interval,
            checkpoint_interval=checkpoint_interval,
            restart_overhead=restart_overhead,
            migration_overhead=migration_overhead,
            max_retries=max_retries,
        )
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.spec = cluster
        self.state = ClusterState(cluster)
        self.jobs = JobTable(trace, self.state)
        self.queue = PendingQueue(self.jobs.status, self.jobs.demand_class, self.jobs.num_classes)
        self.running: set[int] = set()
        self.policy = policy
        self.record_events = record_events
        self.events: list[tuple[float, object, str]] = []
        self.stops = array("q")
        """Every job that left the running set (finish, preemption, kill, migration away,
        stop), in order; policies follow it with ``view.ended_since``."""
        self.placement_log: list[tuple[float, int, Placement]] = []
        """With ``record_events``: (time, job index, placement) of every start."""
        self.check_invariants = check_invariants
        self.timeline_interval = float(timeline_interval)
        self.until = until
        self.checkpoint_interval = float(checkpoint_interval)
        self.restart_overhead = float(restart_overhead)
        self.migration_overhead = float(migration_overhead)
        self.max_retries = max_retries
        self.fabric = fabric
        self._processes = tuple(processes)
        self.node_failures = 0
        self.interrupted = False
        """True when the run was stopped early by Ctrl-C / SIGTERM (results are partial)."""
        self.progress = progress
        self.compiled = compiled
        self.engine = ""
        """Which loop ran: ``compiled`` (simulator.replay) or ``simpy``."""
        self.lost_seconds = np.zeros(self.jobs.n)
        self._num_queues = nq = len(self.jobs.queue_names)
        # per-queue counters as Python lists: scalar updates on lists are several times cheaper
        # than on NumPy arrays, and they happen on every start and end
        self._alloc_q: list[float] = [0.0] * nq
        self._queued_q: list[int] = [0] * nq
        self._queue_of: list[int] = self.jobs.queue.tolist()
        self._share_of: list[float] = self.jobs.gpu_share.tolist()
        self.reject_reasons: dict[str, int] = {}
        self._queue_timeline: list[tuple[float, np.ndarray, np.ndarray]] = []
        self.max_queue_timeline = 64
        self._queue_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        """The per-queue rows as arrays, when the compiled replay recorded them."""
        self.view = SchedulerView(self)
        self._placer = Placer(self.state)
        self._class_fits = [-1] * self.jobs.num_classes
        self._next_arrival = 0
        # engine-private Python lists: scalar access in the hot path is several times cheaper
        # than on NumPy arrays (the public columns in ``jobs`` stay the source of truth)
        self._arrivals: list[float] = self.jobs.submit.tolist()
        """Submit times as in the trace (``jobs.submit`` of a dormant job changes on submit)."""
        self._duration: list[float] = self.jobs.duration.tolist()
        self._version: list[int] = [0] * self.jobs.n
        """Completion-event versions (``jobs.version`` is filled in at the end of the run)."""
        self._unstarted = [True] * self.jobs.n
        self._arrival_at = math.inf
        self._arrival_key: tuple[float, int, int] | None = None
        """Heap key of the next arrival event (kept off the heap; see :meth:`_loop`)."""
        self._pass_at: float | None = None
        self._wakeups: set[float] = set()
        self._woken = False
        self._terminal = 0
        self._bar = None
        # timeline rows, flat: time (s), allocated milli-GPU, queue length, running jobs; a
        # typed array keeps a million-row timeline at 8 bytes a value (see timeline_rows)
        self._timeline = array("d")
        self._last_sample = -math.inf
        self.wall_seconds = 0.0
        self.passes = 0

    # ------------------------------------------------------------------ event plumbing
    def _schedule(
        self, callback: Callable[[object], None], delay: float, priority: int, value: object = None
    ) -> None:
        """Call ``callback(value)`` after ``delay`` at ``priority``.

        The engine's own events skip SimPy's Event objects: they go straight onto the
        environment's event heap as ``(time, priority, id, callback, value)``, sharing SimPy's
        time arithmetic and id counter, so they interleave with SimPy events (processes,
        timeouts) exactly as SimPy would order them. :meth:`_loop` runs both kinds.
        """
        env = self.env
        heappush(env._queue, (env._now + delay, priority, next(env._eid), callback, value))

    def _log(self, j: int, what: str) -> None:
        if self.record_events:
            job_id = self.jobs.job_ids[j]
            self.events.append((self.env.now, getattr(job_id, "item", lambda: job_id)(), what))

    def request_pass(self) -> None:
        """Make sure a scheduling pass runs at the current instant (at most one per instant)."""
        now = self.env.now
        if self._arrival_at == now or self._pass_at == now:
            return
        self._pass_at = now
        self._schedule(self._on_pass, 0.0, PASS)

    def request_pass_at(self, t: float) -> None:
        """Schedule a scheduling pass at simulated time ``t`` (policies' timers)."""
        if t < self.env.now:
            raise ValueError(f"wake-up time {t} is in the past (now {self.env.now})")
        if t not in self._wakeups:
            self._wakeups.add(t)
            self._schedule(self._wake, t - self.env.now, TIMER, t)

    def _wake(self, t: float) -> None:
        self._wakeups.discard(t)
        self._woken = True
        self.request_pass()

    # ------------------------------------------------------------------ arrivals + pass
    def _on_arrival(self, _: object) -> None:
        """The PASS-priority event of an arrival instant: admit its jobs, then run the pass."""
        env = self.env
        now = env._now
        n = self.jobs.n
        i = self._next_arrival
        submit = self._arrivals  # trace order; dormant rows (inf) last, never scanned past
        status = self.jobs.status
        fits = self._class_fits
        class_of = self.jobs.class_of
        while i < n and submit[i] <= now:
            if status[i] == _FUTURE:
                if self.record_events or fits[class_of[i]] != 1:
                    self._admit(i)
                else:  # _admit for a job of a class known to fit, inlined
                    status[i] = _QUEUED
                    self.queue.push(i)
                    self._queued_q[self._queue_of[i]] += 1
            i += 1
        self._next_arrival = i
        if i < n and submit[i] < math.inf:
            at = self._arrival_at = submit[i]
            self._arrival_key = (now + (at - now), PASS, next(env._eid))
        else:
            self._arrival_at = math.inf
        self._pass()

    def _on_pass(self, _: object) -> None:
        self._pass_at = None
        self._pass()

    def _admit(self, j: int) -> None:
        jobs = self.jobs
        if self.record_events:
            self._log(j, "arrive")
        c = jobs.class_of[j]
        fits = self._class_fits[c]
        if fits < 0:
            fits = self._class_fits[c] = int(self._placer.fits_empty(jobs, j))
        if not fits:
            jobs.status[j] = Status.UNSCHEDULABLE
            if self.record_events:
                self._log(j, "unschedulable")
            self._count_terminal()
            return
        jobs.status[j] = _QUEUED
        self.queue.push(j)
        self._queued_q[self._queue_of[j]] += 1

    def _pass(self) -> None:
        """One scheduling pass: ask the policy, apply its decisions, record the timeline."""
        # An empty queue needs no decisions, unless the policy asked to be woken (it may
        # want to preempt or rebalance running jobs).
        if self.queue._size or self._woken:
            self._woken = False
            self.passes += 1
            start = self._start
            for decision in self.policy.schedule(self.view):
                kind = type(decision)
                if kind is Start:
                    start(decision[0], decision[1])
                elif kind is Preempt:
                    self.preempt(decision.job)
                elif kind is Migrate:
                    self.migrate(decision.job, decision.placement)
                elif kind is Reject:
                    self.reject(decision.job, decision.reason)
                else:
                    raise PolicyError(f"policy returned {decision!r}, not a decision")
        if self.check_invariants:
            self.verify()
        self._sample()

    def _sample(self) -> None:
        """Record the cluster state now (one row per instant: a later change replaces it)."""
        now = self.env._now
        rows = self._timeline
        if rows and rows[-4] == now:
            rows[-3] = self.state.allocated_milli
            rows[-2] = self.queue._size
            rows[-1] = len(self.running)
        elif now - self._last_sample >= self.timeline_interval:
            self._last_sample = now
            rows.fromlist([now, self.state.allocated_milli, self.queue._size, len(self.running)])
        else:
            return
        if self._num_queues > 1 and self._num_queues <= self.max_queue_timeline:
            qrow = (now, np.array(self._alloc_q), np.array(self._queued_q))
            qrows = self._queue_timeline
            if qrows and qrows[-1][0] == now:
                qrows[-1] = qrow
            else:
                qrows.append(qrow)

    def _check_placement(self, j: int, p: Placement) -> Placement:
        """Validate ``p`` for job ``j`` (raises PolicyError); returns it with canonical dtypes."""
        jobs = self.jobs
        p = _canonical(p)
        n, milli = int(jobs.num_gpus[j]), int(jobs.milli[j])
        if len(p.gpus) != n or (n and p.milli != milli):
            raise PolicyError(
                f"placement of job {jobs.job_ids[j]!r} gives {len(p.gpus)} GPUs x "
                f"{p.milli} milli; the job needs {n} x {milli}"
            )
        code = self.state.check(p.nodes, p.gpus, p.milli, p.cpus, p.mem, int(jobs.type_mask[j]))
        if code:
            raise PolicyError(f"placement of job {jobs.job_ids[j]!r} {ALLOC_MESSAGES[code]}")
        return p

    def _start(self, j: int, p: Placement) -> None:
        # the hottest path with _complete: written for speed (locals, no helper calls)
        jobs = self.jobs
        env = self.env
        now = env._now
        status = jobs.status
        if status[j] != _QUEUED:
            raise PolicyError(f"job {jobs.job_ids[j]!r} is not queued (status {status[j]})")
        st = self.state
        if p.stamp is None or p.stamp != (st.uid, st.version, jobs.class_of[j]):
            p = self._check_placement(j, p)
        nodes, gpus, milli, cpus, mem, _ = p
        st.allocate(nodes, gpus, milli, cpus, mem)
        q = self._queue_of[j]
        self._alloc_q[q] += self._share_of[j]
        status[j] = _RUNNING
        self.queue._size -= 1  # PendingQueue.discard
        self._queued_q[q] -= 1
        self.running.add(j)
        first = self._unstarted[j]
        if first:
            self._unstarted[j] = False
            jobs.start[j] = now
        jobs.run_start[j] = now
        jobs.last_update[j] = now
        jobs.placements[j] = p
        jobs._nodes_used[j] = p.nodes  # the list behind jobs.nodes_used (no property call)
        if self.record_events:
            self._log(j, "start")
            self.placement_log.append((now, j, p))
        if self.fabric is not None:
            self._apply_rates(self.fabric.on_start(j, p, now), started=j)
            first = False  # the fabric may have set a rate
        d = self._duration[j]
        if first and d < math.inf:  # _schedule_completion's first case, inlined
            heappush(
                env._queue,
                (
                    now + (d if d > 0.0 else 0.0),
                    RELEASE,
                    next(env._eid),
                    self._complete,
                    (j, self._version[j]),
                ),
            )
        else:
            self._schedule_completion(j)

    def _schedule_completion(self, j: int) -> None:
        """Schedule job ``j``'s completion at its current rate (none if it never ends)."""
        jobs = self.jobs
        delay = float((jobs.duration[j] - jobs.work[j]) / jobs.rate[j])
        if delay == math.inf:
            return  # runs until a controller stops it (e.g. an inference replica)
        env = self.env
        heappush(
            env._queue,
            (
                env._now + (delay if delay > 0.0 else 0.0),
                RELEASE,
                next(env._eid),
                self._complete,
                (j, self._version[j]),
            ),
        )

    def _take(self, j: int, p: Placement) -> None:
        self.state.allocate(p.nodes, p.gpus, p.milli, p.cpus, p.mem)
        self._alloc_q[self._queue_of[j]] += self._share_of[j]

    def _release(self, j: int) -> None:
        jobs, now = self.jobs, self.env._now
        nodes, gpus, milli, cpus, mem, _ = jobs.placements[j]
        self.state.release(nodes, gpus, milli, cpus, mem)
        share = self._share_of[j]
        self._alloc_q[self._queue_of[j]] -= share
        ran = now - jobs.run_start[j]
        jobs.gpu_seconds[j] += share * ran
        jobs.run_seconds[j] += ran
        self.running.discard(j)
        self.stops.append(j)
        if self.fabric is not None:
            self._apply_rates(self.fabric.on_stop(j, now))

    def _complete(self, value: tuple[int, int]) -> None:
        j, version = value
        jobs = self.jobs
        status = jobs.status
        if self._version[j] != version or status[j] != _RUNNING:
            return  # superseded by a rate change or preemption
        # _release(j), inlined: this runs once per job and a call costs ~3 % of the run
        now = self.env._now
        nodes, gpus, milli, cpus, mem, _ = jobs.placements[j]
        self.state.release(nodes, gpus, milli, cpus, mem)
        share = self._share_of[j]
        self._alloc_q[self._queue_of[j]] -= share
        ran = now - jobs.run_start[j]
        jobs.gpu_seconds[j] += share * ran
        jobs.run_seconds[j] += ran
        self.running.discard(j)
        self.stops.append(j)
        if self.fabric is not None:
            self._apply_rates(self.fabric.on_stop(j, now))
        jobs.placements[j] = None  # only the node list is kept (jobs.nodes_used)
        jobs.work[j] = self._duration[j]
        status[j] = _FINISHED
        jobs.end[j] = now
        if self.record_events:
            self._log(j, "finish")
        self._terminal += 1  # _count_terminal, inlined
        if self._bar is not None and (self._terminal & 1023) == 0:
            self._bar.update(self._terminal - self._bar.n)
        if self.check_invariants:
            self.verify()
        if self.queue._size or self._woken:
            self.request_pass()
        else:
            self._sample()

    def timeline_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The timeline so far: time (s), allocated GPUs, queue length, running jobs."""
        rows = np.frombuffer(self._timeline, dtype=np.float64).reshape(-1, 4)
        return (
            rows[:, 0].copy(),
            rows[:, 1] / MILLI,
            rows[:, 2].astype(np.int64),
            rows[:, 3].astype(np.int64),
        )

    def queue_timeline_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Per-queue rows so far: times, GPUs held (rows x queues), queued jobs (rows x queues).

        None when they are not recorded (one queue, or more than ``max_queue_timeline``).
        """
        if self._queue_arrays is not None:
            return self._queue_arrays
        rows = self._queue_timeline
        if not rows:
            return None
        return (
            np.array([r[0] for r in rows]),
            np.stack([r[1] for r in rows]),
            np.stack([r[2] for r in rows]),
        )

    @property
    def alloc_by_queue(self) -> np.ndarray:
        """GPUs (fractional shares summed) held by each queue's running jobs, by queue id."""
        return np.array(self._alloc_q)

    @property
    def queued_by_queue(self) -> np.ndarray:
        """Queued jobs per queue id (ids index ``jobs.queue_names``)."""
        return np.array(self._queued_q, dtype=np.int64)

    # ------------------------------------------------------------------ running-job changes
    def _progress(self, j: int) -> float:
        jobs, now = self.jobs, self.env.now
        work = jobs.work[j] + (now - jobs.last_update[j]) * jobs.rate[j]
        jobs.work[j] = work
        jobs.last_update[j] = now
        return float(work)

    def _apply_rates(self, rates: dict[int, float], started: int = -1) -> None:
        """Apply the fabric's new rates; the job being started just takes its rate."""
        for k, rate in rates.items():
            if k == started:
                if rate <= 0:
                    raise ValueError("rate must be > 0")
                self.jobs.rate[k] = rate
            elif self.jobs.status[k] == Status.RUNNING and self.jobs.rate[k] != rate:
                self.set_rate(k, rate)

    def set_rate(self, j: int, rate: float) -> None:
        """Change the speed of running job ``j`` (1 = full speed) and reschedule its completion."""
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._progress(j)
        self.jobs.rate[j] = rate
        self._version[j] += 1
        self._schedule_completion(j)

    def _stop_running(self, j: int) -> None:
        """Stop running job ``j``, rolling its work back to the last checkpoint.

        The work done since the last checkpoint (every ``checkpoint_interval`` seconds of
        progress) is lost, and ``restart_overhead`` seconds are owed again on restart; both are
        counted in ``lost_seconds``. The job leaves the cluster; the caller decides its status.
        """
        jobs = self.jobs
        work = self._progress(j)
        kept = jobs.kept[j]  # last checkpoint
        if work >= kept:  # past the restart overhead: a checkpoint every C s of progress
            c = self.checkpoint_interval
            kept += math.floor((work - kept) / c) * c if c > 0 else work - kept
            wasted = work - kept
        else:  # killed while still paying the restart overhead: the checkpoint is intact
            wasted = work - (kept - self.restart_overhead)
        self.lost_seconds[j] += wasted + self.restart_overhead
        jobs.kept[j] = kept
        jobs.work[j] = kept - self.restart_overhead
        self._version[j] += 1
        self._release(j)
        jobs.placements[j] = None

    def _requeue(self, j: int) -> None:
        self.jobs.status[j] = Status.QUEUED
        self.queue.push(j)
        self._queued_q[self._queue_of[j]] += 1

    def preempt(self, j: int) -> None:
        """Stop running job ``j``: roll back to its last checkpoint and requeue it."""
        jobs = self.jobs
        if jobs.status[j] != Status.RUNNING:
            raise PolicyError(f"cannot preempt job {jobs.job_ids[j]!r}: it is not running")
        self._stop_running(j)
        jobs.preemptions[j] += 1
        self._requeue(j)
        self._log(j, "preempt")

    # ------------------------------------------------------------------ faults
    def fail_node(self, node: int) -> list[int]:
        """Take ``node`` out of the placement pool and kill every job that uses it.

        A killed job (the whole gang, on all its nodes) rolls back to its last checkpoint,
        pays ``restart_overhead`` again and returns to the queue, or ends with status
        ``failed`` once it has been killed more than ``max_retries`` times. Returns the killed
        job indices. The node stays down until :meth:`repair_node`.
        """
        st, jobs = self.state, self.jobs
        if not st.node_up[node]:
            return []
        st.node_up[node] = False
        self.node_failures += 1
        victims = sorted(j for j in self.running if node in jobs.nodes_used[j])
        for j in victims:
            self._stop_running(j)
            jobs.restarts[j] += 1
            if self.max_retries is not None and jobs.restarts[j] > self.max_retries:
                jobs.status[j] = Status.FAILED
                jobs.end[j] = self.env.now
                self._log(j, "failed")
                self._count_terminal()
            else:
                self._requeue(j)
                self._log(j, "killed")
        self.request_pass()
        return victims

    def repair_node(self, node: int) -> None:
        """Return ``node`` to the placement pool."""
        if not self.state.node_up[node]:
            self.state.node_up[node] = True
            self.request_pass()

    # ------------------------------------------------------------------ controllers
    def submit(self, j: int) -> None:
        """Submit dormant job ``j`` now (rows with ``submit_time = inf`` wait for this call).

        Used by controllers such as an inference autoscaler that start replicas on demand.
        """
        jobs = self.jobs
        if jobs.status[j] != Status.FUTURE or np.isfinite(jobs.submit[j]):
            raise ValueError(f"job {jobs.job_ids[j]!r} is not a dormant job")
        jobs.submit[j] = self.env.now
        self._admit(j)
        self.request_pass()

    def stop(self, j: int) -> None:
        """End job ``j`` now as ``finished`` (a drained replica); a queued job is withdrawn.

        Its ``end_time`` is now; its work counts as done. Used by controllers (scale-in).
        """
        jobs = self.jobs
        if jobs.status[j] == Status.RUNNING:
            self._progress(j)
            self._release(j)
            jobs.placements[j] = None
            self._version[j] += 1
        elif jobs.status[j] == Status.QUEUED:
            self.queue.discard(j)
            self._queued_q[self._queue_of[j]] -= 1
        else:
            raise ValueError(f"job {jobs.job_ids[j]!r} is neither running nor queued")
        jobs.status[j] = Status.FINISHED
        jobs.end[j] = self.env.now
        self._log(j, "finish")
        self._count_terminal()
        self.request_pass()

    def migrate(self, j: int, p: Placement) -> None:
        """Move running job ``j`` to placement ``p``; it loses ``migration_overhead`` seconds."""
        jobs = self.jobs
        if jobs.status[j] != Status.RUNNING:
            raise PolicyError(f"cannot migrate job {jobs.job_ids[j]!r}: it is not running")
        self._progress(j)
        self._release(j)
        self.running.add(j)
        try:
            p = self._check_placement(j, p)
        except PolicyError:
            self._take(j, jobs.placements[j])  # put it back as it was, then report
            jobs.run_start[j] = self.env.now
            if self.fabric is not None:
                self._apply_rates(
                    self.fabric.on_start(j, jobs.placements[j], self.env.now), started=j
                )
            raise
        self._take(j, p)
        jobs.placements[j] = p
        jobs.nodes_used[j] = p.nodes
        if self.record_events:
            self.placement_log.append((self.env.now, j, p))
        jobs.run_start[j] = self.env.now
        jobs.work[j] -= self.migration_overhead
        self.lost_seconds[j] += self.migration_overhead
        jobs.migrations[j] += 1
        self._version[j] += 1
        self._log(j, "migrate")
        if self.fabric is not None:
            self._apply_rates(self.fabric.on_start(j, p, self.env.now), started=j)
        self._schedule_completion(j)

    def reject(self, j: int, reason: str = "") -> None:
        """Turn queued job ``j`` away for good (status ``rejected``)."""
        jobs = self.jobs
        if jobs.status[j] != Status.QUEUED:
            raise PolicyError(f"cannot reject job {jobs.job_ids[j]!r}: it is not queued")
        jobs.status[j] = Status.REJECTED
        jobs.end[j] = np.nan
        self.queue.discard(j)
        self._queued_q[self._queue_of[j]] -= 1
        self.reject_reasons[reason] = self.reject_reasons.get(reason, 0) + 1
        self._log(j, "reject")
        self._count_terminal()

    # ------------------------------------------------------------------ checks
    def verify(self) -> None:
        """Check resource accounting against the running jobs' placements.

        Raises:
            AssertionError: a resource is over-allocated or the books do not balance.
        """
        st, jobs = self.state, self.jobs
        used = np.zeros(st.gpu_free.size, dtype=np.int64)
        cpu = np.zeros(len(st.cpu_free))
        mem = np.zeros(len(st.mem_free))
        for j in self.running:
            assert jobs.status[j] == Status.RUNNING, f"job {j} in running set but not running"
            p = jobs.placements[j]
            assert len(p.gpus) == jobs.num_gpus[j], f"job {j} holds part of its gang"
            assert st.node_up[p.nodes].all(), f"job {j} runs on a node that is down"
            np.add.at(used, p.gpus, p.milli)
            np.add.at(cpu, p.nodes, p.cpus)
            np.add.at(mem, p.nodes, p.mem)
        cap = np.where(st.gpu_free.reshape(-1) >= 0, MILLI, 0)
        real = st.gpu_free.reshape(-1) >= 0
        assert (used <= cap).all(), "a GPU is over-allocated"
        assert (st.gpu_free.reshape(-1)[real] == (cap - used)[real]).all(), "GPU books differ"
        full = (st.gpu_free == MILLI).sum(axis=1)
        assert (full == st.free_full).all(), "free_full out of step"
        assert full.sum() == st.free_gpu_total, "free GPU total out of step"
        assert used.sum() == st.allocated_milli, "allocated milli out of step"
        assert (cpu <= st.cpu_cap + 1e-6).all() and (mem <= st.mem_cap + 1e-6).all(), (
            "CPU or memory over-allocated"
        )
        fin = np.isfinite(st.cpu_cap)
        assert np.allclose(st.cpu_free[fin], (st.cpu_cap - cpu)[fin]), "CPU books differ"
        queued = int((jobs.status == Status.QUEUED).sum())
        assert queued == len(self.queue), f"queue holds {len(self.queue)}, {queued} queued"
        running = int((jobs.status == Status.RUNNING).sum())
        assert running == len(self.running), f"{running} jobs running, {len(self.running)} in set"
        assert sum(self._queued_q) == queued, "per-queue queued counts out of step"

    # ------------------------------------------------------------------ run
    def _count_terminal(self) -> None:
        self._terminal += 1
        if self._bar is not None and (self._terminal & 1023) == 0:
            self._bar.update(self._terminal - self._bar.n)

    def run(self, stop: GracefulStop | None = None) -> Simulation:
        """Run to completion (or to ``until``); returns ``self`` for chaining.

        Ctrl-C or SIGTERM (when the entry point maps it like Ctrl-C) stops the run between two
        events: :attr:`interrupted` is then True and unfinished jobs are marked so. ``stop``: a
        :class:`~simulator.interrupts.GracefulStop` the caller already holds (so that a
        signal during loading or writing is also handled); None = one for this call.
        """
        if stop is None:
            with GracefulStop() as own:
                return self.run(own)
        t0 = _time.perf_counter()
        if hasattr(self.policy, "setup"):
            self.policy.setup(self.view)
        if self.fabric is not None:
            self.fabric.setup(self)
        if self.progress is not False:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.jobs.n,
                unit="job",
                desc="simulating",
                disable=None if self.progress is None else False,
                mininterval=0.5,
            )
        if self.jobs.n and self.jobs.submit[0] < math.inf:
            env = self.env
            self._arrival_at = at = float(self.jobs.submit[0])
            self._arrival_key = (env._now + at, PASS, next(env._eid))
        for process in self._processes:
            self.env.process(process(self))
        spec = self._replay_spec()
        self.engine = "simpy"
        if spec is not None:
            from simulator.replay import replay

            if replay(self, spec, stop):
                self.engine = "compiled"
                self._stopped(stop)
        if self.engine == "simpy":
            self._loop(stop)
        self._finalise()
        if self._bar is not None:
            self._bar.update(self._terminal - self._bar.n)
            self._bar.close()
        self.wall_seconds = _time.perf_counter() - t0
        return self

    def _loop(self, stop: GracefulStop) -> None:
        """``env.run(until)`` for both kinds of heap entries, checking for a stop request.

        SimPy events (4-tuples) are processed as ``Environment.step`` does; the engine's own
        entries (5-tuples, see :meth:`_schedule`) are a direct call. The next arrival is not
        on the heap: its key ``(time, PASS, id)`` (id drawn from SimPy's counter when it is
        scheduled, as for any event) is compared with the heap's top, so it takes its place in
        SimPy's order without a push and a pop per job.
        """
        env = self.env
        if self.until is not None:
            end = Event(env)
            end._ok = True
            end._value = None
            end.callbacks.append(StopSimulation.callback)
            env.schedule(end, URGENT, self.until - env.now)
        heap = env._queue
        on_arrival = self._on_arrival
        try:
            while not stop.requested:
                arrival = self._arrival_key
                if arrival is not None and (not heap or arrival < heap[0]):
                    self._arrival_key = None
                    env._now = arrival[0]
                    on_arrival(None)
                    continue
                if not heap:
                    break
                item = heappop(heap)
                env._now = item[0]
                if len(item) == 5:
                    item[3](item[4])
                    continue
                event = item[3]
                callbacks, event.callbacks = event.callbacks, None
                for callback in callbacks:
                    callback(event)
                if not event._ok and not hasattr(event, "_defused"):
                    # a process failed and nobody handled it: raise as SimPy does
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation:
            return
        self._stopped(stop)

    def _stopped(self, stop: GracefulStop) -> None:
        """After the loop: note an interrupted run (or give up on a second interrupt)."""
        if not stop.requested:
            return  # no events left
        if stop.aborted:
            raise KeyboardInterrupt("a second interrupt: run abandoned")
        # a signal: keep what was simulated so far; jobs not done are marked unfinished
        self.interrupted = True

    def _replay_spec(self) -> dict | None:
        """The policy's compiled-replay spec if this run can use it (see simulator.replay)."""
        describe = getattr(self.policy, "replay_spec", None)
        if (
            not self.compiled
            or type(self) is not Simulation  # a subclass may hook the methods it replays
            or describe is None
            or self.fabric is not None
            or self._processes
            or self.record_events
            or self.check_invariants
            or self._wakeups
            or self.env._queue
            or self.state.gpu_free.shape[1] > 64  # a node's GPU slots are one bitmask there
            or not np.isfinite(self.jobs.submit).all()  # dormant rows wait for controllers
            or (self.jobs.status != _FUTURE).any()
        ):
            return None
        spec = describe()
        if spec is None or spec["placer"].cluster.uid != self.state.uid:
            return None
        return spec

    def _finalise(self) -> None:
        jobs = self.jobs
        now = self.env.now
        jobs.version[:] = self._version
        for j in list(self.running):
            jobs.gpu_seconds[j] += jobs.gpu_share[j] * (now - jobs.run_start[j])
            jobs.run_seconds[j] += now - jobs.run_start[j]
            self._progress(j)
        dormant = (jobs.status == Status.FUTURE) & np.isinf(jobs.submit)
        jobs.status[dormant] = Status.DORMANT
        left = np.isin(jobs.status, (Status.FUTURE, Status.QUEUED, Status.RUNNING))
        jobs.status[left] = Status.UNFINISHED
        self._terminal += int(left.sum() + dormant.sum())
