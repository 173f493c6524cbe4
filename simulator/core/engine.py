"""The simulation host: one :class:`Simulation` owns the SimPy environment, the RNG and the state.

The job events (arrivals, passes, starts, completions, preemptions, migrations, rate changes,
timers) run in one compiled event loop, :func:`simulator.core.loop.advance`, over the
engine's arrays (:class:`~simulator.core.state.EngineState`). The SimPy ``Environment`` is the
clock of the simulation and hosts every other process (node failures, serving controllers and
autoscalers, user processes): the loop runs until the next SimPy event (``env.peek()``), then
SimPy steps (``env.step()``), then the loop continues. The order of events at one instant
across both is written down in :mod:`simulator.core.loop`.

A policy's scheduling pass runs compiled inside the loop when the policy offers a compiled
pass (:class:`~simulator.core.hooks.CompiledPolicy`); otherwise the loop returns here and the
policy's ``schedule(view)`` runs in Python, each decision applied at once through the same
compiled operations (:mod:`simulator.core.ops`) after it is validated.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import simpy

from simulator.core import loop, ops
from simulator.core.bits import members
from simulator.core.cluster import MILLI, ClusterSpec, ClusterState
from simulator.core.decisions import Migrate, Preempt, Reject, Start, Wait
from simulator.core.hooks import NoFabric, PythonPass
from simulator.core.interrupts import GracefulStop
from simulator.core.jit import jit
from simulator.core.jobs import JobTable, Status
from simulator.core.kernels import ALLOC_MESSAGES
from simulator.core.pending import PendingReasons
from simulator.core.placement import Placement, Placer
from simulator.core.refs import engine_ref
from simulator.core.state import EVENT_NAMES, build_state, grow, room_ok
from simulator.core.view import PendingQueue, RunningSet, SchedulerView

__all__ = ["Simulation", "PolicyError", "CompiledPolicy", "CompiledFabric", "CHUNK_EVENTS"]

CHUNK_EVENTS = 1 << 16
"""Events per call of the compiled loop: between calls the host checks for Ctrl-C."""


class PolicyError(RuntimeError):
    """A policy returned a decision the engine cannot apply (e.g. a placement that does not fit)."""


@runtime_checkable
class CompiledPolicy(Protocol):
    """A policy with a compiled pass (besides its Python ``schedule``, the reference).

    ``compiled_pass(view)`` is called after ``setup(view)``; it returns the policy's compiled
    state (a ``NamedTuple`` whose class has a jitted ``kernel``, see
    :mod:`simulator.core.hooks`), or None to run the Python pass (e.g. a subclass overrides
    ``schedule``). ``compiled_finish(state)`` is called after the run (to copy state back).
    """

    def compiled_pass(self, view: SchedulerView) -> NamedTuple | None:
        """The compiled state of this run's passes, or None for the Python pass."""

    def compiled_finish(self, state: NamedTuple) -> None:
        """Copy what the compiled passes kept back into the policy object."""


@runtime_checkable
class CompiledFabric(Protocol):
    """A network model with a compiled rate model (besides its Python one, the reference).

    ``compiled_state(sim)`` is called after ``setup(sim)``; it returns a ``NamedTuple`` whose
    class has jitted ``on_start(es, fs, j)`` and ``on_stop(es, fs, j)`` (see
    :mod:`simulator.core.hooks`), which change rates with :func:`simulator.core.ops.set_rate`
    (and set a starting job's own ``es.jobs.rate[j]``), or None for the Python model.
    ``compiled_finish(sim, state)`` is called after the run.
    """

    def compiled_state(self, sim: Simulation) -> NamedTuple | None:
        """The compiled state of the rate model, or None."""

    def compiled_finish(self, sim: Simulation, state: NamedTuple) -> None:
        """Copy back what the compiled model recorded."""


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


def _check_flag(name: str, v: object, none_ok: bool = False) -> None:
    if (v is None and none_ok) or isinstance(v, bool | np.bool_):
        return
    raise ValueError(f"sim.{name} must be true or false, got {v!r}")


class _Placements:
    """``jobs.placements``: the current placement of each running job, else None."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def __len__(self) -> int:
        return self._sim.jobs.n

    def __getitem__(self, j: int) -> Placement | None:
        es = self._sim.es
        if es.jobs.status[j] != Status.RUNNING:
            return None
        return self._sim.placement_of(j)

    def __iter__(self):
        return (self[j] for j in range(len(self)))


class _NodesUsed:
    """``jobs.nodes_used``: each job's last nodes (int64 array), None if it never ran."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def __len__(self) -> int:
        return self._sim.jobs.n

    def __getitem__(self, j: int) -> np.ndarray | None:
        ja = self._sim.es.jobs
        k = int(ja.p_nodes[j])
        if k == 0:
            return None
        a = int(ja.node_off[j])
        return ja.p_node[a : a + k].copy()

    def __iter__(self):
        return (self[j] for j in range(len(self)))

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        ja = self._sim.es.jobs
        counts = ja.p_nodes.astype(np.int64)
        slots = np.diff(ja.node_off)
        owner = np.repeat(np.arange(len(counts)), slots)
        keep = np.arange(ja.node_off[-1]) - ja.node_off[:-1][owner] < counts[owner]
        return counts, ja.p_node[keep]


class Simulation:
    """One simulation run: trace + cluster + policy -> per-job results, timeline, summary.

    Args:
        trace: canonical job table (see ``traces.canonical``).
        cluster: the cluster spec.
        policy: object with ``schedule(view)`` (and optionally ``setup(view)``, and a compiled
            pass: :class:`CompiledPolicy`).
        seed: seed of the run's ``numpy.random.Generator``.
        record_events: keep the ``(time, job_id, event)`` log in :attr:`events` and every
            start's placement in :attr:`placement_log`.
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
            ``simulator.models.fabric``), and optionally ``notified_jobs()`` (after
            ``setup``: a bool per job, the jobs whose starts and stops it must see; the
            others run at rate 1 and are not reported to it); None = placement never
            changes speed.
        processes: generator functions ``f(sim)`` started as SimPy processes before the run
            (failure injectors, autoscalers, ...).
        progress: show a progress bar (None = only on an interactive terminal).
        reference_passes: run the policy's Python ``schedule`` even if it has a compiled pass
            (the reference the compiled pass is tested against; slower, same results).
        speed: GPU-type speeds, an object with ``matrix(frame, models)`` (see
            :class:`simulator.models.speed.SpeedModel`): a job runs at its speed on the GPU
            model it is placed on, ``duration`` being its time on the model's reference type;
            None = every model runs every job at the same speed.
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
        reference_passes: bool = False,
        speed: object | None = None,
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
        for name, v in (
            ("record_events", record_events),
            ("check_invariants", check_invariants),
            ("reference_passes", reference_passes),
        ):
            _check_flag(name, v)
        _check_flag("progress", progress, none_ok=True)
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.spec = cluster
        self.state = ClusterState(cluster)
        self.speed = speed
        self.jobs = JobTable(trace, self.state, speed)
        self.policy = policy
        self.record_events = bool(record_events)
        self.check_invariants = bool(check_invariants)
        self.timeline_interval = float(timeline_interval)
        self.until = until
        self.checkpoint_interval = float(checkpoint_interval)
        self.restart_overhead = float(restart_overhead)
        self.migration_overhead = float(migration_overhead)
        self.max_retries = max_retries
        self.fabric = fabric
        self.progress = progress
        self.reference_passes = bool(reference_passes)
        self._processes = tuple(processes)
        self._reasons: dict[str, int] = {"": 0}
        self.pending = PendingReasons(self.jobs.n)
        """Why queued jobs waited: the reasons the policy gave with :class:`Wait`."""
        self.max_queue_timeline = 64
        nq = len(self.jobs.queue_names)
        self.es = build_state(
            self.jobs,
            self.state.arrays,
            self.state.ref,
            nq,
            until=until,
            interval=self.timeline_interval,
            checkpoint=self.checkpoint_interval,
            restart_overhead=self.restart_overhead,
            migration_overhead=self.migration_overhead,
            max_retries=max_retries,
            record=self.record_events,
            check=self.check_invariants,
            per_queue=1 < nq <= self.max_queue_timeline,
            num_reasons=8,
        )
        self._c = self.es.c
        self.core = engine_ref(self.es, self.state.ref)
        """The state as compiled code takes it (same arrays as :attr:`es`)."""
        self.jobs.placements = _Placements(self)
        self.jobs.nodes_used = _NodesUsed(self)
        self.queue = PendingQueue(self)
        self.running = RunningSet(self)
        self.view = SchedulerView(self)
        self._fs: NamedTuple = NoFabric(np.zeros(0))
        self._ps: NamedTuple = PythonPass(np.zeros(0))
        self._listeners: dict[int, list[tuple[Callable | None, Callable | None]]] = {}
        self._pending_calls: list[tuple[Callable, int]] = []
        self.interrupted = False
        """True when the run was stopped early by Ctrl-C / SIGTERM (results are partial)."""
        self.engine = ""
        """Which pass ran: ``compiled`` (the policy's compiled pass) or ``python``."""
        self.wall_seconds = 0.0
        self._bar = None
        self._end: float | None = None
        self.gpus_held_at_end = 0.0
        """GPUs (shares counted) held by jobs still running when the run stopped."""
        self._dirty = False

    # ------------------------------------------------------------------ reading the state
    @property
    def now(self) -> float:
        """Current simulated time in seconds (the end of the run once it has run)."""
        if self._end is not None:
            return self._end
        return max(float(self._c[0].now), float(self.env.now))

    @property
    def passes(self) -> int:
        """Scheduling passes run so far."""
        return int(self._c[0].passes)

    @property
    def node_failures(self) -> int:
        """Node failures so far."""
        return int(self._c[0].node_failures)

    @property
    def lost_seconds(self) -> np.ndarray:
        """Per job: seconds of work lost to preemptions, failures and migrations."""
        return self.jobs.lost

    @property
    def stops(self) -> np.ndarray:
        """Every job that left the running set (finish, preemption, kill, migration, stop)."""
        return self.es.log.stops[: self._c[0].stops].copy()

    @property
    def unschedulable_reasons(self) -> dict[str, int]:
        """How many jobs were ``unschedulable`` (could never be placed here), by reason.

        E.g. ``{"no node can hold one pod (8 GPUs, 120 CPUs)": 3}``.
        """
        out: dict[str, int] = {}
        for why in self.unschedulable_why().values():
            out[why] = out.get(why, 0) + 1
        return out

    def unschedulable_why(self) -> dict[int, str]:
        """Per ``unschedulable`` job (index): why it can never be placed on this cluster."""
        never = np.flatnonzero(self.jobs.status == Status.UNSCHEDULABLE)
        if not len(never):
            return {}
        placer = Placer(self.state)
        return {j: placer.never_fits_reason(self.jobs, j) for j in never.tolist()}

    @property
    def reject_reasons(self) -> dict[str, int]:
        """How many jobs were rejected, by reason."""
        counts = self.es.log.rejects
        return {r: int(counts[k]) for r, k in self._reasons.items() if counts[k]}

    @property
    def events(self) -> list[tuple[float, object, str]]:
        """With ``record_events``: the ``(time, job_id, event)`` log."""
        n = int(self._c[0].log_n)
        lg = self.es.log
        ids = self.jobs.job_ids.tolist()  # Python scalars
        times, js, codes = lg.log_time[:n].tolist(), lg.log_job[:n], lg.log_code[:n]
        return [(t, ids[j], EVENT_NAMES[k]) for t, j, k in zip(times, js, codes, strict=True)]

    @property
    def placement_log(self) -> list[tuple[float, int, Placement]]:
        """With ``record_events``: ``(time, job index, placement)`` of every start."""
        lg, c = self.es.log, self._c[0]
        out = []
        at_n = at_g = 0
        for t, j, k, g, milli in lg.plog[: c.plog_n].tolist():
            k, g = int(k), int(g)
            p = Placement(
                lg.plog_node[at_n : at_n + k].copy(),
                lg.plog_gpu[at_g : at_g + g].copy(),
                int(milli) if g else 0,
                lg.plog_cpu[at_n : at_n + k].copy(),
                lg.plog_mem[at_n : at_n + k].copy(),
            )
            at_n += k
            at_g += g
            out.append((t, int(j), p))
        return out

    def placement_of(self, j: int) -> Placement:
        """Job ``j``'s current (or last) placement, as new arrays."""
        ja = self.es.jobs
        a, k = int(ja.node_off[j]), int(ja.p_nodes[j])
        g, n = int(ja.gpu_off[j]), int(ja.num_gpus[j])
        return Placement(
            ja.p_node[a : a + k].copy(),
            ja.p_gpu[g : g + n].copy(),
            int(ja.milli[j]) if n else 0,
            ja.p_cpu[a : a + k].copy(),
            ja.p_mem[a : a + k].copy(),
        )

    @property
    def alloc_by_queue(self) -> np.ndarray:
        """GPUs (fractional shares summed) held by each queue's running jobs, by queue id."""
        return self.es.queue_alloc[: len(self.jobs.queue_names)].copy()

    @property
    def queued_by_queue(self) -> np.ndarray:
        """Queued jobs per queue id (ids index ``jobs.queue_names``)."""
        return self.es.queue_queued[: len(self.jobs.queue_names)].copy()

    def timeline_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The timeline so far: time (s), allocated GPUs, queue length, running jobs."""
        rows = self.es.log.timeline[: self._c[0].rows]
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
        c = self._c[0]
        if not c.per_queue or c.rows == 0:
            return None
        lg = self.es.log
        r = int(c.rows)
        return lg.timeline[:r, 0].copy(), lg.queue_alloc[:r].copy(), lg.queue_queued[:r].copy()

    # ------------------------------------------------------------------ errors
    def _job(self, j: object) -> str:
        try:
            return repr(self.jobs.job_ids[int(j)].item())
        except (AttributeError, IndexError, TypeError, ValueError):
            try:
                return repr(self.jobs.job_ids[int(j)])
            except (IndexError, TypeError, ValueError):
                return f"index {j!r}"

    def _message(self, code: int, j: object) -> str:
        what = {
            ops.ERR_NOT_QUEUED: "is not queued",
            ops.ERR_NOT_RUNNING: "is not running",
            ops.ERR_SIZE: "gives a placement of the wrong size",
            ops.ERR_CPU: "gives CPU or memory that does not add up to the job's request "
            "(or a negative amount)",
            ops.ERR_BAD_JOB: "is not a job of this run",
            ops.ERR_NOT_DORMANT: "is not a dormant job",
            ops.ERR_NOT_ACTIVE: "is neither running nor queued",
            ops.ERR_RATE: "was given a rate that is not > 0",
            ops.ERR_SAME_PLACE: "would migrate onto the nodes and GPUs it runs on",
            ops.ERR_NO_NODES: "gives a placement without nodes (or with too many)",
            ops.ERR_REASON: "gives an unknown reject reason",
        }.get(code)
        if what is None and code >= ops.ERR_ALLOC:
            what = f"gives a placement that {ALLOC_MESSAGES[code - ops.ERR_ALLOC]}"
        if code == ops.ERR_BAD_JOB:
            return f"job index {j!r} {what} (0 <= index < {self.jobs.n})"
        return f"job {self._job(j)} {what or f'failed (code {code})'}"

    def _raise_loop_error(self) -> None:
        c = self._c[0]
        code = int(c.err)
        c.err = 0
        if code == ops.ERR_PASS_LOOP and c.err_aux == 1:
            c.err_aux = 0
            raise PolicyError(
                f"policy {type(self.policy).__name__} ran {int(c.max_instant_passes)} scheduling "
                f"passes in a row at t={float(c.now)} s: simulated time does not advance "
                "(decisions that undo each other, with a wake-up at the current time?); stopping"
            )
        if code == ops.ERR_PASS_LOOP:
            raise PolicyError(
                f"policy {type(self.policy).__name__} ran {int(c.max_idle_passes)} scheduling "
                f"passes at t={float(c.now)} s without changing anything (a wake-up at the "
                "current time on every pass?); stopping"
            )
        if code == ops.ERR_HEAP:
            raise RuntimeError("engine: the event heap is full (please report this)")
        if code >= ops.ERR_INVARIANT and code < ops.ERR_ALLOC:
            raise AssertionError(
                f"invariant {code - ops.ERR_INVARIANT} broken at t={float(c.now)} s "
                f"(see simulator.core.ops.verify)"
            )
        raise PolicyError(f"compiled pass of {type(self.policy).__name__}: error code {code}")

    def _check(self, code: int, j: object) -> None:
        if code:
            raise PolicyError(self._message(int(code), j))

    # ------------------------------------------------------------------ operations
    def _ready(self) -> None:
        """Before an operation from Python: the core's clock is SimPy's, and there is room."""
        c = self._c[0]
        now = self.env.now
        if now > c.now:
            c.now = now
        self._dirty = True
        if not room_ok(self.core):
            self._grow()

    def _grow(self) -> None:
        self.es = grow(self.es)
        self.core = engine_ref(self.es, self.state.ref)

    def _index(self, j: object) -> int:
        if isinstance(j, bool) or not isinstance(j, int | np.integer):
            raise PolicyError(f"job index {j!r} is not an integer")
        j = int(j)
        if not 0 <= j < self.jobs.n:
            raise PolicyError(self._message(ops.ERR_BAD_JOB, j))
        return j

    def _load(self, j: int, p: object) -> int:
        """Copy placement ``p`` into the state's buffer; returns its node count."""
        if not isinstance(p, Placement | tuple) or len(p) < 5:
            raise PolicyError(f"placement of job {self._job(j)} is {p!r}, not a Placement")
        buf = self.es.buf
        try:
            nodes = np.asarray(p[0], dtype=np.int64).reshape(-1)
            gpus = np.asarray(p[1], dtype=np.int64).reshape(-1)
            cpus = np.asarray(p[3], dtype=np.float64).reshape(-1)
            mem = np.asarray(p[4], dtype=np.float64).reshape(-1)
            milli = int(p[2])
        except (TypeError, ValueError, OverflowError) as e:
            raise PolicyError(f"placement of job {self._job(j)}: {e}") from None
        n = int(self.jobs.num_gpus[j])
        want = int(self.jobs.milli[j])
        if len(gpus) != n or (n and milli != want):
            raise PolicyError(
                f"placement of job {self._job(j)} gives {len(gpus)} GPUs x {milli} milli; "
                f"the job needs {n} x {want}"
            )
        k = len(nodes)
        if not (len(cpus) == len(mem) == k) or k > len(buf.nodes):
            raise PolicyError(
                f"placement of job {self._job(j)} gives {k} nodes but {len(cpus)} CPU and "
                f"{len(mem)} memory entries (one each per node, at most {len(buf.nodes)} nodes)"
            )
        buf.nodes[:k] = nodes
        buf.gpus[:n] = gpus
        buf.cpu[:k] = cpus
        buf.mem[:k] = mem
        return k

    def _check_placement(self, code: int, j: int, k: int) -> None:
        """Raise :class:`PolicyError` for a refused placement (in ``es.buf``), saying why."""
        if not code:
            return
        buf, ja = self.es.buf, self.es.jobs
        what = f"placement of job {self._job(j)}"
        if code == ops.ERR_CPU:
            cpus, mem = buf.cpu[:k], buf.mem[:k]
            if not ((cpus >= 0).all() and (mem >= 0).all()):
                raise PolicyError(
                    f"{what} gives a negative or NaN amount: CPUs per node {cpus.tolist()}, "
                    f"memory per node {mem.tolist()} GB"
                )
            raise PolicyError(
                f"{what} gives {float(cpus.sum()):g} CPUs and {float(mem.sum()):g} GB of memory "
                f"in total; the job asks for {float(ja.cpus[j]):g} CPUs and "
                f"{float(ja.mem[j]):g} GB"
            )
        if code == ops.ERR_SIZE:
            slots = int(ja.node_off[j + 1] - ja.node_off[j])
            raise PolicyError(f"{what} spans {k} nodes; the job can use at most {slots}")
        self._check(code, j)

    def start(self, j: object, p: Placement) -> None:
        """Start queued job ``j`` on placement ``p`` (validated; raises :class:`PolicyError`)."""
        self._ready()
        j = self._index(j)
        k = self._load(j, p)
        self._check_placement(ops_start(self.core, self._fs, j, k), j, k)
        if self.pending.current[j]:
            self.pending.close(j, self.now)
        self._notices()

    def preempt(self, j: object) -> None:
        """Stop running job ``j``: roll back to its last checkpoint and requeue it."""
        self._ready()
        j = self._index(j)
        self._check(ops.preempt(self.core, self._fs, j), j)
        self._notices()

    def migrate(self, j: object, p: Placement) -> None:
        """Move running job ``j`` to placement ``p``; it loses ``migration_overhead`` seconds."""
        self._ready()
        j = self._index(j)
        k = self._load(j, p)
        self._check_placement(ops_migrate(self.core, self._fs, j, k), j, k)
        self._notices()

    def reject(self, j: object, reason: str = "") -> None:
        """Turn queued job ``j`` away for good (status ``rejected``)."""
        self._ready()
        j = self._index(j)
        self._check(ops.reject(self.core, j, self.reason_code(str(reason))), j)
        if self.pending.current[j]:
            self.pending.close(j, self.now)

    def wait(self, j: object, reason: str) -> None:
        """Record that queued job ``j`` waits because of ``reason`` (see :class:`Wait`)."""
        j = self._index(j)
        if self.jobs.status[j] != Status.QUEUED:
            raise PolicyError(self._message(ops.ERR_NOT_QUEUED, j))
        if not isinstance(reason, str) or not reason:
            raise PolicyError(
                f"policy gives job {self._job(j)} the pending reason {reason!r}, not a "
                "non-empty text"
            )
        self.pending.give(j, reason, self.now)

    def reason_code(self, reason: str) -> int:
        """The code of a reject reason (compiled passes pass codes, not strings)."""
        code = self._reasons.get(reason)
        if code is None:
            code = self._reasons[reason] = len(self._reasons)
            lg = self.es.log
            if code >= len(lg.rejects):
                bigger = np.zeros(2 * len(lg.rejects), dtype=np.int64)
                bigger[: len(lg.rejects)] = lg.rejects
                self.es = self.es._replace(log=lg._replace(rejects=bigger))
                self.core = engine_ref(self.es, self.state.ref)
        return code

    def set_rate(self, j: int, rate: float) -> None:
        """Change the speed of job ``j`` (1 = full speed) and reschedule its completion.

        With GPU-type speeds on, ``rate`` is a factor on the speed of the job's GPU type.
        """
        self._ready()
        if not float(rate) > 0:
            raise ValueError("rate must be > 0")
        ops.set_rate(self.core, self._index(j), float(rate))

    def request_pass(self) -> None:
        """Make sure a scheduling pass runs at the current instant (at most one per instant)."""
        self._ready()
        ops.request_pass(self.core)

    def request_pass_at(self, t: float) -> None:
        """Schedule a scheduling pass at simulated time ``t`` (policies' timers)."""
        self._ready()
        t = float(t)
        if not t >= self._c[0].now:
            raise ValueError(f"wake-up time {t} is in the past (now {float(self._c[0].now)})")
        ops.wake_at(self.core, t)

    def fail_node(self, node: int) -> list[int]:
        """Take ``node`` out of the placement pool and kill every job that uses it.

        A killed job (the whole gang, on all its nodes) rolls back to its last checkpoint,
        pays ``restart_overhead`` again and returns to the queue, or ends with status
        ``failed`` once it has been killed more than ``max_retries`` times. Returns the killed
        job indices. The node stays down until :meth:`repair_node`.
        """
        self._ready()
        node = self._node(node)
        before = int(self._c[0].stops)
        killed = ops.fail_node(self.core, self._fs, node)
        victims = self.es.log.stops[before : before + killed].tolist()
        self._notices()
        return victims

    def repair_node(self, node: int) -> None:
        """Return ``node`` to the placement pool."""
        self._ready()
        ops.repair_node(self.core, self._node(node))

    def _node(self, node: object) -> int:
        if isinstance(node, bool) or not isinstance(node, int | np.integer):
            raise ValueError(f"node {node!r} is not an integer")
        if not 0 <= int(node) < self.spec.num_nodes:
            raise ValueError(f"node {node!r} is not a node of this cluster")
        return int(node)

    def submit(self, j: int) -> None:
        """Submit dormant job ``j`` now (rows with ``submit_time = inf`` wait for this call).

        Used by controllers such as an inference autoscaler that start replicas on demand.
        """
        self._ready()
        code = ops.submit(self.core, self._index(j))
        if code:
            raise ValueError(self._message(code, j))

    def stop(self, j: int) -> None:
        """End job ``j`` now as ``finished`` (a drained replica); a queued job is withdrawn.

        Its ``end_time`` is now; its work counts as done. Used by controllers (scale-in).
        """
        self._ready()
        code = ops.stop_job(self.core, self._fs, self._index(j))
        if code:
            raise ValueError(self._message(code, j))
        self._notices()

    def listen(
        self,
        jobs: Iterable[int],
        on_start: Callable[[int], None] | None = None,
        on_stop: Callable[[int], None] | None = None,
    ) -> None:
        """Call ``on_start(j)`` / ``on_stop(j)`` when one of ``jobs`` starts or stops running.

        Called at the same simulated instant, after the event (for a start in a scheduling
        pass: after the pass), in the order the starts and stops happened.
        """
        idx = np.asarray(list(jobs), dtype=np.int64)
        self.es.jobs.notify[idx] = True
        for j in idx.tolist():
            self._listeners.setdefault(j, []).append((on_start, on_stop))
        self._c[0].notify = True

    def verify(self) -> None:
        """Check resource accounting against the running jobs' placements.

        Raises:
            AssertionError: a resource is over-allocated or the books do not balance.
        """
        code = ops.verify(self.core)
        if code:
            raise AssertionError(
                f"invariant {code - ops.ERR_INVARIANT} broken at t={self.now} s "
                "(see simulator.core.ops.verify)"
            )

    # ------------------------------------------------------------------ notices
    def _notices(self) -> None:
        """Hand start/stop notices to the Python fabric and the listeners, in order."""
        c = self._c[0]
        n = int(c.notices)
        if not n:
            return
        lg = self.es.log
        entries = list(zip(lg.notice_job[:n].tolist(), lg.notice_kind[:n].tolist(), strict=True))
        c.notices = 0
        fabric = self.fabric
        for j, kind in entries:
            if fabric is not None:
                if kind == ops.NOTICE_START:
                    self._apply_rates(fabric.on_start(j, self.placement_of(j), self.now), j)
                    ops.schedule_completion(self.core, j)
                else:
                    self._apply_rates(fabric.on_stop(j, self.now), -1)
            for on_start, on_stop in self._listeners.get(j, ()):
                fn = on_start if kind == ops.NOTICE_START else on_stop
                if fn is not None:
                    self._pending_calls.append((fn, j))

    def _apply_rates(self, rates: dict[int, float], started: int) -> None:
        """Apply the fabric's new rates; the job being started just takes its rate."""
        jobs = self.jobs
        for k, rate in rates.items():
            if k == started:
                if not rate > 0:
                    raise ValueError("rate must be > 0")
                jobs.rate[k] = rate * jobs.tspeed[k]
            elif jobs.status[k] == Status.RUNNING and jobs.rate[k] != rate * jobs.tspeed[k]:
                self._check(ops.set_rate(self.core, int(k), float(rate)), k)

    def _call_listeners(self) -> None:
        calls, self._pending_calls = self._pending_calls, []
        for fn, j in calls:
            fn(j)

    # ------------------------------------------------------------------ passes
    def _python_pass(self) -> None:
        """One scheduling pass of the policy's ``schedule``, each decision applied at once."""
        for decision in self.policy.schedule(self.view):
            kind = type(decision)
            if kind is Start:
                self.start(decision[0], decision[1])
            elif kind is Preempt:
                self.preempt(decision[0])
            elif kind is Migrate:
                self.migrate(decision[0], decision[1])
            elif kind is Reject:
                self.reject(decision[0], decision[1])
            elif kind is Wait:
                self.wait(decision[0], decision[1])
            else:
                raise PolicyError(f"policy returned {decision!r}, not a decision")
        loop.end_pass(self.core)

    # ------------------------------------------------------------------ run
    def _setup(self) -> None:
        if hasattr(self.policy, "setup"):
            self.policy.setup(self.view)
        if self.fabric is not None:
            self.fabric.setup(self)
            fs = None
            if isinstance(self.fabric, CompiledFabric) and not self.reference_passes:
                fs = self.fabric.compiled_state(self)
            if fs is not None:
                self._fs = fs  # rates change inside the loop, at every start and stop
            else:  # the Python model, told of the starts and stops it asks for, in order
                mask = getattr(self.fabric, "notified_jobs", None)
                if mask is None:
                    self.es.jobs.notify[:] = True
                else:  # jobs it never slows down run at rate 1 without a round trip
                    notify = self.es.jobs.notify
                    notify |= np.asarray(mask(), dtype=bool)
                self._c[0].notify = True
                self._c[0].defer_completion = True
        self.engine = "python"
        if isinstance(self.policy, CompiledPolicy) and not self.reference_passes:
            ps = self.policy.compiled_pass(self.view)
            if ps is not None:
                self._ps = ps
                self.engine = "compiled"
        ja, c = self.es.jobs, self._c[0]
        if self.jobs.n and ja.arrival[0] < math.inf:
            at = float(ja.arrival[0])
            c.arrival_at = at
            c.arrival_t = 0.0 + at
            c.arrival_eid = c.eid
            c.eid += 1
        for process in self._processes:
            self.env.process(process(self))

    def run(self, stop: GracefulStop | None = None) -> Simulation:
        """Run to completion (or to ``until``); returns ``self`` for chaining.

        Ctrl-C or SIGTERM (when the entry point maps it like Ctrl-C) stops the run between two
        events: :attr:`interrupted` is then True and unfinished jobs are marked so. ``stop``: a
        :class:`~simulator.core.interrupts.GracefulStop` the caller already holds (so that a
        signal during loading or writing is also handled); None = one for this call.
        """
        if stop is None:
            with GracefulStop() as own:
                return self.run(own)
        t0 = _time.perf_counter()
        self._setup()
        if self.progress is not False:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.jobs.n,
                unit="job",
                desc="simulating",
                disable=None if self.progress is None else False,
                mininterval=0.5,
            )
        ended = self._drive(stop)
        if stop.aborted:
            raise KeyboardInterrupt("a second interrupt: run abandoned")
        # a signal that came once nothing was left to simulate (e.g. during the last compiled
        # chunk) cut nothing: the run is complete, as an uninterrupted one
        self.interrupted = bool(stop.requested) and not ended
        self._finalise()
        if self.engine == "compiled":
            self.policy.compiled_finish(self._ps)
        if not isinstance(self._fs, NoFabric):
            self.fabric.compiled_finish(self, self._fs)
        if self._bar is not None:
            self._bar.update(int(self._c[0].terminal) - self._bar.n)
            self._bar.close()
        self.wall_seconds = _time.perf_counter() - t0
        return self

    def _core_next(self) -> tuple[float, int]:
        """Time and rank of the core's next event (``inf`` if none), read from the state."""
        c, ev = self._c[0], self.es.ev
        t, rank = math.inf, 9
        if c.heap_n:
            t, rank = float(ev.time[0]), loop.RELEASE
        if c.timer_n and ev.timers[0] < t:
            t, rank = float(ev.timers[0]), loop.TIMER
        for at, pending in (
            (c.pass_t, not math.isnan(c.pass_t)),
            (c.arrival_t, c.arrival_eid >= 0),
        ):
            if pending and (at < t or (at == t and rank > loop.PASS)):
                t, rank = float(at), loop.PASS
        return t, rank

    def _steps(self, until: float) -> None:
        """SimPy events, one after another, while they come before the core's next event.

        An operation from Python (a controller submitting a job, a failure) may change the
        core's next event: then control goes back to the loop.
        """
        env = self.env
        step, peek = env.step, env.peek
        notices = self._c["notices"]  # a view: reading [0] is cheaper than a record's field
        t_core, rank = self._core_next()
        ext_first = rank < loop.EXTENSION
        while True:
            self._dirty = False
            step()
            if notices[0]:
                self._notices()
            if self._pending_calls:
                self._call_listeners()
            if self._dirty:
                return
            t_ext = peek()
            if t_ext >= until or t_ext > t_core or (t_ext == t_core and ext_first):
                return

    def _drive(self, stop: GracefulStop) -> bool:
        """Alternate the compiled loop and SimPy's events until both are done (or ``until``).

        Returns True when the run ended by itself (nothing left before ``until``), False when
        ``stop`` cut it short.
        """
        env = self.env
        until = math.inf if self.until is None else float(self.until)
        advance = loop.advance
        ended = False
        while not stop.requested:
            t_ext = env.peek()
            code = advance(self.core, self._fs, self._ps, t_ext, CHUNK_EVENTS)
            if code == loop.EXT or code == loop.DONE or code == loop.UNTIL:
                if t_ext >= until:  # also: nothing left at all (t_ext = inf)
                    ended = True
                    break
                self._steps(until)
            elif code == loop.PY_PASS:
                self._python_pass()
                self._call_listeners()
            elif code == loop.NOTICES:
                self._notices()
                self._call_listeners()
            elif code == loop.GROW:
                self._grow()
            elif code == loop.CHUNK:
                if self._bar is not None:
                    self._bar.update(int(self._c[0].terminal) - self._bar.n)
            elif code == loop.ERROR:
                self._raise_loop_error()
        if not ended and min(self._core_next()[0], env.peek()) >= until:
            ended = True  # stopped with nothing left to do: the same end as without the stop
        if self.until is not None and ended and env.now < until:
            env.run(until=until)  # SimPy's clock ends at the horizon, as the core's does
        return ended

    def _finalise(self) -> None:
        jobs, c = self.jobs, self._c[0]
        if self.until is not None and not self.interrupted:
            end = float(self.until)
        else:
            end = max(float(c.now), float(self.env.now))
        c.now = end
        self._end = end
        self.pending.close_all(end)
        run = members(self.es.q.running, int(c.running))
        self.gpus_held_at_end = float(jobs.gpu_share[run].sum()) if len(run) else 0.0
        if len(run):
            ran = end - jobs.run_start[run]
            jobs.gpu_seconds[run] += jobs.gpu_share[run] * ran
            jobs.run_seconds[run] += ran
            jobs.work[run] += (end - jobs.last_update[run]) * jobs.rate[run]
            jobs.last_update[run] = end
            if jobs.speed.shape[1] > 0:
                for j in run.tolist():
                    ops.add_type_seconds(self.core, j, end - float(jobs.run_start[j]))
        dormant = (jobs.status == Status.FUTURE) & np.isinf(jobs.submit)
        jobs.status[dormant] = Status.DORMANT
        left = np.isin(jobs.status, (Status.FUTURE, Status.QUEUED, Status.RUNNING))
        jobs.status[left] = Status.UNFINISHED
        c.terminal += int(left.sum() + dormant.sum())


# compiled entry points of Python decisions: validate, then apply
_QUEUED = Status.QUEUED
_RUNNING = Status.RUNNING


@jit
def ops_start(es, fs, j, k):
    """Validate the placement in ``es.buf`` for queued job ``j``, then start it."""
    if es.jobs.status[j] != _QUEUED:
        return ops.ERR_NOT_QUEUED
    code = ops.check_placement(es, j, k, False)
    if code != 0:
        return code
    return ops.start(es, fs, j, k)


@jit
def ops_migrate(es, fs, j, k):
    """Validate the placement in ``es.buf`` for running job ``j``, then migrate it there."""
    if es.jobs.status[j] != _RUNNING:
        return ops.ERR_NOT_RUNNING
    code = ops.check_placement(es, j, k, True)  # first: a valid placement has no duplicates
    if code != 0:
        return code
    if ops.same_place(es, j, k):
        return ops.ERR_SAME_PLACE
    return ops.migrate(es, fs, j, k)
