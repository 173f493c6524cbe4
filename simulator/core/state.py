"""The engine's state: one :class:`EngineState`, a named structure of arrays.

Everything the event loop (:mod:`simulator.core.loop`) reads and changes lives here, in NumPy
arrays grouped by what they describe, so that compiled code and Python see the same memory:

* :class:`JobArrays` — the job table's columns (static demand and dynamic state, shared with
  :class:`~simulator.core.jobs.JobTable`) and each job's placement slots;
* :class:`ClassArrays` — per demand class: the demand and the class's jobs in arrival order;
* :class:`~simulator.core.cluster.ClusterArrays` — free resources and topology;
* :class:`QueueArrays` — the queued set, the running set and each class's head, as bitsets;
* :class:`EventArrays` — the completion heap and the timer heap;
* :class:`LogArrays` — what the run records (stops, queue entries, timeline rows, event log,
  placement log, start/stop notices for Python listeners);
* ``books`` — per queue: GPUs held and jobs queued;
* ``c`` — one record of scalars (:data:`COUNTERS`: the clock, counters, options, errors).

Arrays that grow during a run (heaps, logs) are reallocated by :func:`grow` between events;
the loop never writes past their ends (it checks the room it needs before each event, see
:func:`room_needed`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from simulator.core.bits import Bits, new_bits
from simulator.core.cluster import ClusterArrays
from simulator.core.jit import jit
from simulator.core.kernels import PlaceBuf, fits_empty, max_node_gpus, new_buf

__all__ = [
    "COUNTERS",
    "JobArrays",
    "ClassArrays",
    "QueueArrays",
    "EventArrays",
    "LogArrays",
    "EngineState",
    "build_state",
    "grow",
    "room_needed",
    "room_ok",
    "EVENT_NAMES",
    "EV_ARRIVE",
    "EV_UNSCHEDULABLE",
    "EV_START",
    "EV_FINISH",
    "EV_PREEMPT",
    "EV_KILLED",
    "EV_FAILED",
    "EV_MIGRATE",
    "EV_REJECT",
]

# event-log codes
EV_ARRIVE = 0
EV_UNSCHEDULABLE = 1
EV_START = 2
EV_FINISH = 3
EV_PREEMPT = 4
EV_KILLED = 5
EV_FAILED = 6
EV_MIGRATE = 7
EV_REJECT = 8
EVENT_NAMES = (
    "arrive",
    "unschedulable",
    "start",
    "finish",
    "preempt",
    "killed",
    "failed",
    "migrate",
    "reject",
)
"""Names of the event-log codes, as ``Simulation.events`` reports them."""

COUNTERS = np.dtype(
    [
        # clock and the pending core events
        ("now", np.float64),
        ("until", np.float64),  # inf = no horizon
        ("events", np.int64),  # core events processed
        ("eid", np.int64),  # insertion counter: ties between equal-time events
        ("heap_n", np.int64),  # entries on the completion heap
        ("timer_n", np.int64),  # entries on the timer heap
        ("next_arrival", np.int64),  # next trace row to arrive
        ("arrival_t", np.float64),  # time of the pending arrival event (inf = none)
        ("arrival_eid", np.int64),
        ("arrival_at", np.float64),  # submit time of the next arrival row
        ("pass_t", np.float64),  # time of a requested pass not yet run (nan = none)
        ("pass_eid", np.int64),
        ("woken", np.bool_),  # a policy timer fired since the last pass
        # counts
        ("passes", np.int64),
        ("queued", np.int64),
        ("running", np.int64),
        ("terminal", np.int64),
        ("node_failures", np.int64),
        ("decisions", np.int64),  # decisions applied (starts, preemptions, ...)
        # log fills
        ("rows", np.int64),
        ("stops", np.int64),
        ("pushes", np.int64),
        ("log_n", np.int64),
        ("plog_n", np.int64),
        ("plog_nodes", np.int64),
        ("plog_gpus", np.int64),
        ("notices", np.int64),
        # options
        ("interval", np.float64),  # timeline: minimum seconds between rows
        ("last_sample", np.float64),
        ("checkpoint", np.float64),
        ("restart_overhead", np.float64),
        ("migration_overhead", np.float64),
        ("max_retries", np.int64),  # -1 = retry forever
        ("record", np.bool_),  # keep the event and placement logs
        ("check", np.bool_),  # verify the books after every event
        ("notify", np.bool_),  # write start/stop notices for flagged jobs
        ("per_queue", np.bool_),  # keep per-queue timeline rows
        ("defer_completion", np.bool_),  # a Python fabric sets rates before completions
        # pass-loop guard: passes at one instant in a row that changed nothing
        ("idle_passes", np.int64),
        ("idle_at", np.float64),
        ("idle_mark", np.int64),
        ("max_idle_passes", np.int64),
        # and passes at one instant in a row whatever they changed (decisions undoing each other)
        ("instant_passes", np.int64),
        ("instant_at", np.float64),
        ("max_instant_passes", np.int64),
        # error raised inside compiled code: code, job, detail
        ("err", np.int64),
        ("err_job", np.int64),
        ("err_aux", np.int64),
    ],
    align=True,
)
"""The engine's scalars, one record (``es.c[0].now`` etc.)."""


class JobArrays(NamedTuple):
    """Per-job columns (job index = arrival order) and placement slots.

    The first group is shared with :class:`~simulator.core.jobs.JobTable` (same arrays).
    Placement: job ``j`` keeps its current (or last) placement in node entries
    ``node_off[j] : node_off[j] + p_nodes[j]`` of ``p_node``/``p_cpu``/``p_mem`` and in GPU
    entries ``gpu_off[j] : gpu_off[j] + num_gpus[j]`` of ``p_gpu`` (flat GPU ids).
    """

    submit: np.ndarray
    arrival: np.ndarray
    duration: np.ndarray
    num_gpus: np.ndarray
    milli: np.ndarray
    cpus: np.ndarray
    mem: np.ndarray
    type_mask: np.ndarray
    queue: np.ndarray
    cls: np.ndarray
    share: np.ndarray
    status: np.ndarray
    start: np.ndarray
    end: np.ndarray
    run_start: np.ndarray
    last_update: np.ndarray
    work: np.ndarray
    kept: np.ndarray
    rate: np.ndarray
    version: np.ndarray
    gpu_seconds: np.ndarray
    run_seconds: np.ndarray
    lost: np.ndarray
    preemptions: np.ndarray
    migrations: np.ndarray
    restarts: np.ndarray
    speed: np.ndarray
    tspeed: np.ndarray
    type_seconds: np.ndarray
    notify: np.ndarray
    node_off: np.ndarray
    gpu_off: np.ndarray
    p_nodes: np.ndarray
    p_node: np.ndarray
    p_cpu: np.ndarray
    p_mem: np.ndarray
    p_gpu: np.ndarray


class ClassArrays(NamedTuple):
    """Per demand class (jobs of identical demand): the demand, and its jobs by arrival.

    ``jobs[start[c] : start[c + 1]]`` are class ``c``'s jobs in arrival order; ``pos[j]`` is
    job ``j``'s index in ``jobs``. ``pods`` = pods of the demand (0 = no pod shape);
    ``single`` = fits one node by capacity; ``fits`` = fits the empty cluster (1) or can never
    be placed (0).
    """

    gpus: np.ndarray
    milli: np.ndarray
    mask: np.ndarray
    cpus: np.ndarray
    mem: np.ndarray
    pods: np.ndarray
    single: np.ndarray
    fits: np.ndarray
    start: np.ndarray
    jobs: np.ndarray
    pos: np.ndarray


class QueueArrays(NamedTuple):
    """Sets of jobs as bitsets, and queued jobs per class.

    ``queued`` (by job index), ``by_class`` (by position in ``ClassArrays.jobs``: a class's
    queued jobs are a contiguous range), ``heads`` (by job index: the earliest queued job of
    every class that has one), ``running`` (by job index).
    """

    queued: Bits
    by_class: Bits
    heads: Bits
    running: Bits
    class_queued: np.ndarray


class EventArrays(NamedTuple):
    """Pending completions (a binary heap on ``(time, eid)``) and policy timers (times).

    Completion entry: ``time``, insertion id ``eid``, ``job``, and the job's ``version``
    when it was scheduled (a later version makes it stale).
    """

    time: np.ndarray
    eid: np.ndarray
    job: np.ndarray
    version: np.ndarray
    timers: np.ndarray


class LogArrays(NamedTuple):
    """What the run records, filled up to the counters of the same names in ``c``."""

    stops: np.ndarray  # every job that left the running set, in order
    pushes: np.ndarray  # every job that entered the queue, in order
    timeline: np.ndarray  # rows x (time, allocated milli-GPU, queued, running)
    queue_alloc: np.ndarray  # rows x queues: GPUs held (only with per_queue)
    queue_queued: np.ndarray  # rows x queues: jobs queued
    log_time: np.ndarray  # event log (only with record): time, job, EV_* code
    log_job: np.ndarray
    log_code: np.ndarray
    plog: np.ndarray  # placement log: entries x (time, job, nodes, gpus, milli)
    plog_node: np.ndarray  # nodes, cpus, mem of each entry, flat
    plog_cpu: np.ndarray
    plog_mem: np.ndarray
    plog_gpu: np.ndarray
    notice_job: np.ndarray  # start/stop notices for Python listeners: job, 1 = start 0 = stop
    notice_kind: np.ndarray
    rejects: np.ndarray  # count per reject-reason code


class EngineState(NamedTuple):
    """All of the engine's state (see the module docstring)."""

    jobs: JobArrays
    cls: ClassArrays
    cl: ClusterArrays
    q: QueueArrays
    ev: EventArrays
    log: LogArrays
    queue_alloc: np.ndarray  # per queue: GPUs held now
    queue_queued: np.ndarray  # per queue: jobs queued now
    buf: PlaceBuf
    c: np.ndarray


def _slots(jobs, cls: ClassArrays, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Node and GPU slot offsets: how many nodes a job's placement may ever use, and GPUs.

    Any placement a policy may build uses at most one node per GPU or per pod (a CPU-only job
    without pods: one node); a job that can never be placed gets no slots.
    """
    fits = cls.fits[jobs.demand_class] > 0 if jobs.n else np.zeros(0, dtype=np.bool_)
    most = np.maximum(np.maximum(jobs.num_gpus, jobs.pods), 1)
    nodes = np.where(fits, np.minimum(most, num_nodes), 0)
    node_off = np.zeros(jobs.n + 1, dtype=np.int64)
    np.cumsum(nodes, out=node_off[1:])
    gpu_off = np.zeros(jobs.n + 1, dtype=np.int64)
    np.cumsum(np.where(fits, jobs.num_gpus, 0), out=gpu_off[1:])
    return node_off, gpu_off


def build_classes(jobs, cl_ref) -> ClassArrays:
    """Per-class demand, whether it fits one node, and its jobs in arrival order.

    ``cl_ref``: the cluster as compiled code takes it (:func:`simulator.core.refs.cluster_ref`).
    """
    ncls = jobs.num_classes
    d = np.array(jobs.demands, dtype=np.float64).reshape(-1, 5)
    gpus = d[:, 0].astype(np.int64)
    milli = d[:, 1].astype(np.int64)
    mask = d[:, 2].astype(np.int64)
    cpus, mem = d[:, 3].copy(), d[:, 4].copy()
    pods = np.asarray(jobs.class_pods, dtype=np.int64).reshape(-1)
    caps: dict[int, int] = {}
    single = np.zeros(ncls, dtype=np.bool_)
    for c in range(ncls):
        m = int(mask[c])
        if m not in caps:
            caps[m] = int(max_node_gpus(cl_ref, m))
        single[c] = gpus[c] <= caps[m]
    order = np.argsort(jobs.demand_class, kind="stable").astype(np.int64)
    start = np.zeros(ncls + 1, dtype=np.int64)
    np.cumsum(np.bincount(jobs.demand_class, minlength=ncls), out=start[1:])
    pos = np.empty(jobs.n, dtype=np.int64)
    pos[order] = np.arange(jobs.n)
    fits = np.zeros(ncls, dtype=np.int64)
    for c in range(ncls):
        fits[c] = fits_empty(
            cl_ref, gpus[c], milli[c], mask[c], cpus[c], mem[c], pods[c], bool(single[c]), False
        )
    return ClassArrays(gpus, milli, mask, cpus, mem, pods, single, fits, start, order, pos)


def build_state(
    jobs,
    cl: ClusterArrays,
    cl_ref,
    num_queues: int,
    *,
    until: float | None,
    interval: float,
    checkpoint: float,
    restart_overhead: float,
    migration_overhead: float,
    max_retries: int | None,
    record: bool,
    check: bool,
    per_queue: bool,
    num_reasons: int,
) -> EngineState:
    """The state of a fresh run over job table ``jobs`` on cluster arrays ``cl``.

    ``cl_ref`` is the same cluster as compiled code takes it.
    """
    n = jobs.n
    cls = build_classes(jobs, cl_ref)
    num_nodes = cl.free_full.shape[0]
    node_off, gpu_off = _slots(jobs, cls, num_nodes)
    ja = JobArrays(
        jobs.submit,
        jobs.submit.copy(),  # arrival: as in the trace (a dormant row's submit changes)
        jobs.duration,
        jobs.num_gpus,
        jobs.milli,
        jobs.cpus,
        jobs.mem,
        jobs.type_mask,
        jobs.queue,
        jobs.demand_class,
        jobs.gpu_share,
        jobs.status,
        jobs.start,
        jobs.end,
        jobs.run_start,
        jobs.last_update,
        jobs.work,
        jobs.kept,
        jobs.rate,
        jobs.version,
        jobs.gpu_seconds,
        jobs.run_seconds,
        jobs.lost,
        jobs.preemptions,
        jobs.migrations,
        jobs.restarts,
        jobs.speed,
        jobs.tspeed,
        jobs.type_seconds,
        np.zeros(n, dtype=np.bool_),
        node_off,
        gpu_off,
        np.zeros(n, dtype=np.int64),
        np.zeros(int(node_off[-1]), dtype=np.int64),
        np.zeros(int(node_off[-1])),
        np.zeros(int(node_off[-1])),
        np.zeros(int(gpu_off[-1]), dtype=np.int64),
    )
    q = QueueArrays(
        new_bits(n),
        new_bits(n),
        new_bits(n),
        new_bits(n),
        np.zeros(max(jobs.num_classes, 1), dtype=np.int64),
    )
    first = 1024
    ev = EventArrays(
        np.zeros(first),
        np.zeros(first, dtype=np.int64),
        np.zeros(first, dtype=np.int64),
        np.zeros(first, dtype=np.int64),
        np.zeros(64),
    )
    nq = num_queues if per_queue else 0
    rows = 1024
    big = 2 * n + 1024
    ev_cap = 4 * n + 1024 if record else 0
    pl_cap = 2 * n + 64 if record else 0
    log = LogArrays(
        np.zeros(n + 1024, dtype=np.int64),
        np.zeros(big, dtype=np.int64),
        np.zeros((rows, 4)),
        np.zeros((rows, nq)),
        np.zeros((rows, nq), dtype=np.int64),
        np.zeros(ev_cap),
        np.zeros(ev_cap, dtype=np.int64),
        np.zeros(ev_cap, dtype=np.int8),
        np.zeros((pl_cap, 5)),
        np.zeros(int(node_off[-1]) + 64 if record else 0, dtype=np.int64),
        np.zeros(int(node_off[-1]) + 64 if record else 0),
        np.zeros(int(node_off[-1]) + 64 if record else 0),
        np.zeros(int(gpu_off[-1]) + 64 if record else 0, dtype=np.int64),
        np.zeros(64, dtype=np.int64),
        np.zeros(64, dtype=np.int8),
        np.zeros(max(num_reasons, 1), dtype=np.int64),
    )
    max_gpus = int(cls.gpus[cls.fits > 0].max(initial=0))  # no buffer for what never fits
    c = np.zeros(1, dtype=COUNTERS).view(np.recarray)
    r = c[0]
    r.now = 0.0
    r.until = math.inf if until is None else float(until)
    r.arrival_t = math.inf
    r.arrival_eid = -1
    r.arrival_at = math.inf
    r.pass_t = math.nan
    r.interval = float(interval)
    r.last_sample = -math.inf
    r.checkpoint = float(checkpoint)
    r.restart_overhead = float(restart_overhead)
    r.migration_overhead = float(migration_overhead)
    r.max_retries = -1 if max_retries is None else int(max_retries)
    r.record = bool(record)
    r.check = bool(check)
    r.per_queue = bool(per_queue)
    r.idle_at = math.nan
    r.max_idle_passes = 10_000
    r.instant_at = math.nan
    r.max_instant_passes = 100_000
    return EngineState(
        ja,
        cls,
        cl,
        q,
        ev,
        log,
        np.zeros(max(num_queues, 1)),
        np.zeros(max(num_queues, 1), dtype=np.int64),
        new_buf(num_nodes, max_gpus),
        c,
    )


@jit
def room_needed(es):
    """Entries each growing array must have free before the next event (worst cases).

    Returns the room needed in: completion heap, timer heap, stops, pushes, timeline rows,
    event log, placement-log entries, placement-log nodes, placement-log GPUs, notices. One
    event (a pass, a node failure) can stop every running job, requeue them, start every
    queued job and admit every remaining arrival.
    """
    r = es.c[0]
    n = es.jobs.status.shape[0]
    active = r.running + r.queued
    arriving = n - r.next_arrival
    return (
        active + 64,
        64,
        r.running + 64,
        arriving + r.running + 64,
        2,
        2 * arriving + 3 * active + 64,
        r.queued + arriving + 64,
        es.jobs.p_node.shape[0] + 64,
        es.jobs.p_gpu.shape[0] + 64,
        2 * (active + arriving) + 64,
    )


@jit
def room_ok(es):
    """Whether every growing array has the room :func:`room_needed` asks for."""
    r = es.c[0]
    ev, log = es.ev, es.log
    heap, timers, stops, pushes, rows, events, plog, pnodes, pgpus, notices = room_needed(es)
    if ev.time.shape[0] - r.heap_n < heap or ev.timers.shape[0] - r.timer_n < timers:
        return False
    if log.stops.shape[0] - r.stops < stops or log.pushes.shape[0] - r.pushes < pushes:
        return False
    if log.timeline.shape[0] - r.rows < rows:
        return False
    if r.record:
        if log.log_time.shape[0] - r.log_n < events or log.plog.shape[0] - r.plog_n < plog:
            return False
        if log.plog_node.shape[0] - r.plog_nodes < pnodes:
            return False
        if log.plog_gpu.shape[0] - r.plog_gpus < pgpus:
            return False
    if r.notify and log.notice_job.shape[0] - r.notices < notices:
        return False
    return True


def _bigger(a: np.ndarray, need: int) -> np.ndarray:
    size = max(2 * a.shape[0], need, 64)
    out = np.zeros((size, *a.shape[1:]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def grow(es: EngineState) -> EngineState:
    """Reallocate the arrays that lack the room :func:`room_needed` asks for."""
    r = es.c[0]
    heap, timers, stops, pushes, rows, events, plog, pnodes, pgpus, notices = (
        int(x) for x in room_needed(es)
    )
    ev, log = es.ev, es.log
    if ev.time.shape[0] - r.heap_n < heap:
        need = int(r.heap_n) + heap
        ev = ev._replace(
            time=_bigger(ev.time, need),
            eid=_bigger(ev.eid, need),
            job=_bigger(ev.job, need),
            version=_bigger(ev.version, need),
        )
    if ev.timers.shape[0] - r.timer_n < timers:
        ev = ev._replace(timers=_bigger(ev.timers, int(r.timer_n) + timers))
    if log.stops.shape[0] - r.stops < stops:
        log = log._replace(stops=_bigger(log.stops, int(r.stops) + stops))
    if log.pushes.shape[0] - r.pushes < pushes:
        log = log._replace(pushes=_bigger(log.pushes, int(r.pushes) + pushes))
    if log.timeline.shape[0] - r.rows < rows:
        need = int(r.rows) + rows
        log = log._replace(
            timeline=_bigger(log.timeline, need),
            queue_alloc=_bigger(log.queue_alloc, need),
            queue_queued=_bigger(log.queue_queued, need),
        )
    if r.record:
        if log.log_time.shape[0] - r.log_n < events:
            need = int(r.log_n) + events
            log = log._replace(
                log_time=_bigger(log.log_time, need),
                log_job=_bigger(log.log_job, need),
                log_code=_bigger(log.log_code, need),
            )
        if log.plog.shape[0] - r.plog_n < plog:
            log = log._replace(plog=_bigger(log.plog, int(r.plog_n) + plog))
        if log.plog_node.shape[0] - r.plog_nodes < pnodes:
            need = int(r.plog_nodes) + pnodes
            log = log._replace(
                plog_node=_bigger(log.plog_node, need),
                plog_cpu=_bigger(log.plog_cpu, need),
                plog_mem=_bigger(log.plog_mem, need),
            )
        if log.plog_gpu.shape[0] - r.plog_gpus < pgpus:
            log = log._replace(plog_gpu=_bigger(log.plog_gpu, int(r.plog_gpus) + pgpus))
    if r.notify and log.notice_job.shape[0] - r.notices < notices:
        need = int(r.notices) + notices
        log = log._replace(
            notice_job=_bigger(log.notice_job, need), notice_kind=_bigger(log.notice_kind, need)
        )
    return es._replace(ev=ev, log=log)
