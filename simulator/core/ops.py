"""Every change to the engine's state, compiled: one implementation for the loop and for Python.

Each operation takes the :class:`~simulator.core.state.EngineState` ``es`` (and, where a job
starts or stops, the fabric state ``fs``, see :mod:`simulator.core.hooks`) and acts at the
current time ``es.c[0].now``. Compiled policy passes call them directly; Python policies and
extensions reach them through :class:`~simulator.core.engine.Simulation`, which validates
their input first. Operations that can be refused return an error code (``ERR_*``, 0 = done)
and change nothing when they refuse.

Semantics (times in seconds, work in seconds of full-speed progress):

* a start takes the placement in ``es.buf`` (``k`` nodes, the job's GPUs), copies it into the
  job's slots, allocates it and schedules the job's completion at
  ``now + (duration - work) / rate`` (none if that is infinite);
* a job that stops running (finish, preemption, failure kill, migration away, controller stop)
  gives its resources back and is appended to the stop log; a preemption or kill rolls its
  work back to the last checkpoint (every ``checkpoint`` seconds of progress) and charges
  ``restart_overhead`` seconds again on restart, both counted in ``lost``;
* with GPU-type speeds (``jobs.speed`` has a column per GPU model), a job's rate is the
  speed of the model it is placed on (the slowest, for a gang over several models) times the
  fabric's factor (:func:`set_rate`); ``work`` and ``duration`` are seconds on the reference
  type, so progress carries over unchanged when a job moves between types;
* a rate change or preemption bumps the job's ``version``: its pending completion becomes
  stale and is skipped when it comes up (a new one replaces it);
* at most one scheduling pass is pending at an instant (:func:`request_pass`).
"""

from __future__ import annotations

import math

import numpy as np

from simulator.core.bits import bit_clear, bit_next, bit_next_below, bit_set, bit_test
from simulator.core.cluster import MILLI
from simulator.core.hooks import start_hook, stop_hook
from simulator.core.jit import jit, jit_inline
from simulator.core.jobs import Status
from simulator.core.kernels import ALLOC_OK, _check_alloc, place_into, take
from simulator.core.state import (
    EV_ARRIVE,
    EV_FAILED,
    EV_FINISH,
    EV_KILLED,
    EV_MIGRATE,
    EV_PREEMPT,
    EV_REJECT,
    EV_START,
    EV_UNSCHEDULABLE,
)

_FUTURE = Status.FUTURE
_QUEUED = Status.QUEUED
_RUNNING = Status.RUNNING
_FINISHED = Status.FINISHED
_UNSCHEDULABLE = Status.UNSCHEDULABLE
_FAILED = Status.FAILED
_REJECTED = Status.REJECTED

# error codes (0 = done); 100 + k = the placement check's ALLOC_* code k
OK = 0
ERR_NOT_QUEUED = 1
ERR_NOT_RUNNING = 2
ERR_SIZE = 3
ERR_CPU = 4
ERR_BAD_JOB = 5
ERR_WAKE_PAST = 6
ERR_NOT_DORMANT = 7
ERR_NOT_ACTIVE = 8
ERR_RATE = 9
ERR_HEAP = 10
ERR_PASS_LOOP = 11
ERR_SAME_PLACE = 12
ERR_REASON = 13
ERR_NO_NODES = 14
ERR_INVARIANT = 50  # 50 + k: invariant k of verify() failed
ERR_ALLOC = 100

NOTICE_STOP = 0
NOTICE_START = 1

_EPS = 1e-6


# ---------------------------------------------------------------------- completion heap
@jit_inline
def _less(ev, a, b):
    if ev.time[a] != ev.time[b]:
        return ev.time[a] < ev.time[b]
    return ev.eid[a] < ev.eid[b]


@jit_inline
def _swap(ev, a, b):
    ev.time[a], ev.time[b] = ev.time[b], ev.time[a]
    ev.eid[a], ev.eid[b] = ev.eid[b], ev.eid[a]
    ev.job[a], ev.job[b] = ev.job[b], ev.job[a]
    ev.version[a], ev.version[b] = ev.version[b], ev.version[a]


@jit
def _sift_down(ev, i, size):
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        child = left
        if left + 1 < size and _less(ev, left + 1, left):
            child = left + 1
        if _less(ev, child, i):
            _swap(ev, i, child)
            i = child
        else:
            return


@jit
def heap_pop(es):
    """Remove the top completion entry (read it at index 0 first)."""
    ev, c = es.ev, es.c[0]
    size = c.heap_n - 1
    c.heap_n = size
    if size > 0:
        _swap(ev, 0, size)
        _sift_down(ev, 0, size)


@jit
def _compact(es):
    """Drop stale completion entries and rebuild the heap; returns the entries kept."""
    ev, c, jobs = es.ev, es.c[0], es.jobs
    k = 0
    for i in range(c.heap_n):
        j = ev.job[i]
        if jobs.version[j] == ev.version[i] and jobs.status[j] == _RUNNING:
            ev.time[k] = ev.time[i]
            ev.eid[k] = ev.eid[i]
            ev.job[k] = j
            ev.version[k] = ev.version[i]
            k += 1
    c.heap_n = k
    for i in range(k // 2 - 1, -1, -1):
        _sift_down(ev, i, k)
    return k


@jit
def push_completion(es, t, j):
    """Schedule job ``j``'s completion at time ``t`` (with its current version)."""
    ev, c = es.ev, es.c[0]
    if c.heap_n == ev.time.shape[0]:
        _compact(es)
        if c.heap_n == ev.time.shape[0]:
            c.err = ERR_HEAP
            return ERR_HEAP
    i = c.heap_n
    ev.time[i] = t
    ev.eid[i] = c.eid
    ev.job[i] = j
    ev.version[i] = es.jobs.version[j]
    c.eid += 1
    c.heap_n = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        if _less(ev, i, parent):
            _swap(ev, i, parent)
            i = parent
        else:
            break
    return OK


# ---------------------------------------------------------------------- timer heap
@jit
def timer_push(es, t):
    """Add a policy timer at time ``t`` (duplicates are allowed and fire together)."""
    ev, c = es.ev, es.c[0]
    h = ev.timers
    i = c.timer_n
    if i == h.shape[0]:  # room is checked before every event; dedupe as a last resort
        h[:i].sort()
        k = 0
        for m in range(i):
            if k == 0 or h[m] != h[k - 1]:
                h[k] = h[m]
                k += 1
        i = k
        if i == h.shape[0]:
            c.err = ERR_HEAP
            return ERR_HEAP
    h[i] = t
    c.timer_n = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        if h[i] < h[parent]:
            h[i], h[parent] = h[parent], h[i]
            i = parent
        else:
            break
    return OK


@jit
def timer_pop(es):
    """Remove the earliest timer."""
    h, c = es.ev.timers, es.c[0]
    size = c.timer_n - 1
    c.timer_n = size
    if size > 0:
        h[0] = h[size]
        i = 0
        while True:
            left = 2 * i + 1
            if left >= size:
                break
            child = left
            if left + 1 < size and h[left + 1] < h[left]:
                child = left + 1
            if h[child] < h[i]:
                h[i], h[child] = h[child], h[i]
                i = child
            else:
                break


# ---------------------------------------------------------------------- queue and running set
@jit
def class_head(es, c):
    """Earliest-arrived queued job of demand class ``c``, or -1."""
    cls = es.cls
    p = bit_next_below(es.q.by_class, cls.start[c], cls.start[c + 1])
    return cls.jobs[p] if p >= 0 else -1


@jit_inline
def first_queued(es):
    """Earliest-arrived queued job, or -1."""
    return bit_next(es.q.queued, 0)


@jit
def q_push(es, j):
    """Queue job ``j`` (status, sets, counts, push log)."""
    q, cls, jobs, c = es.q, es.cls, es.jobs, es.c[0]
    k = jobs.cls[j]
    jobs.status[j] = _QUEUED
    bit_set(q.queued, j)
    h = class_head(es, k)
    if h < 0:
        bit_set(q.heads, j)
    elif cls.pos[j] < cls.pos[h]:
        bit_clear(q.heads, h)
        bit_set(q.heads, j)
    bit_set(q.by_class, cls.pos[j])
    q.class_queued[k] += 1
    c.queued += 1
    es.queue_queued[jobs.queue[j]] += 1
    es.log.pushes[c.pushes] = j
    c.pushes += 1


@jit
def q_remove(es, j):
    """Take queued job ``j`` out of the queue's sets and counts (the caller sets its status)."""
    q, cls, jobs, c = es.q, es.cls, es.jobs, es.c[0]
    k = jobs.cls[j]
    bit_clear(q.queued, j)
    bit_clear(q.by_class, cls.pos[j])
    if bit_test(q.heads, j):
        bit_clear(q.heads, j)
        h = class_head(es, k)
        if h >= 0:
            bit_set(q.heads, h)
    q.class_queued[k] -= 1
    c.queued -= 1
    es.queue_queued[jobs.queue[j]] -= 1


# ---------------------------------------------------------------------- records
@jit_inline
def log_event(es, j, code):
    """Append ``(now, j, code)`` to the event log (with ``record`` only)."""
    c = es.c[0]
    if c.record:
        lg = es.log
        lg.log_time[c.log_n] = c.now
        lg.log_job[c.log_n] = j
        lg.log_code[c.log_n] = code
        c.log_n += 1


@jit_inline
def _notice(es, j, kind):
    c = es.c[0]
    if c.notify and es.jobs.notify[j]:
        es.log.notice_job[c.notices] = j
        es.log.notice_kind[c.notices] = kind
        c.notices += 1


@jit
def _log_placement(es, j):
    c, jobs, lg = es.c[0], es.jobs, es.log
    a = jobs.node_off[j]
    k = jobs.p_nodes[j]
    g = jobs.gpu_off[j]
    n = jobs.num_gpus[j]
    row = c.plog_n
    lg.plog[row, 0] = c.now
    lg.plog[row, 1] = j
    lg.plog[row, 2] = k
    lg.plog[row, 3] = n
    lg.plog[row, 4] = jobs.milli[j]
    for i in range(k):
        lg.plog_node[c.plog_nodes + i] = jobs.p_node[a + i]
        lg.plog_cpu[c.plog_nodes + i] = jobs.p_cpu[a + i]
        lg.plog_mem[c.plog_nodes + i] = jobs.p_mem[a + i]
    for i in range(n):
        lg.plog_gpu[c.plog_gpus + i] = jobs.p_gpu[g + i]
    c.plog_n = row + 1
    c.plog_nodes += k
    c.plog_gpus += n


@jit
def sample(es):
    """Record the cluster now: one timeline row per instant (a later change replaces it)."""
    c, lg = es.c[0], es.log
    now = c.now
    r = c.rows
    if r > 0 and lg.timeline[r - 1, 0] == now:
        r -= 1
    elif now - c.last_sample >= c.interval:
        c.last_sample = now
        lg.timeline[r, 0] = now
        c.rows = r + 1
    else:
        return
    lg.timeline[r, 1] = es.cl.books[0].alloc_milli
    lg.timeline[r, 2] = c.queued
    lg.timeline[r, 3] = c.running
    if c.per_queue:
        for q in range(lg.queue_alloc.shape[1]):
            lg.queue_alloc[r, q] = es.queue_alloc[q]
            lg.queue_queued[r, q] = es.queue_queued[q]


# ---------------------------------------------------------------------- passes and timers
@jit
def request_pass(es):
    """Make sure a scheduling pass runs at the current instant (at most one is pending)."""
    c = es.c[0]
    now = c.now
    if c.arrival_at == now or c.pass_t == now:
        return
    c.pass_t = now + 0.0
    c.pass_eid = c.eid
    c.eid += 1


@jit
def wake_at(es, t):
    """Ask for a scheduling pass at time ``t`` (a policy timer)."""
    c = es.c[0]
    if t < c.now:
        return ERR_WAKE_PAST
    return timer_push(es, c.now + (t - c.now))


# ---------------------------------------------------------------------- running jobs
@jit_inline
def progress(es, j):
    """Bring job ``j``'s work up to now; returns it."""
    jobs, now = es.jobs, es.c[0].now
    work = jobs.work[j] + (now - jobs.last_update[j]) * jobs.rate[j]
    jobs.work[j] = work
    jobs.last_update[j] = now
    return work


@jit
def schedule_completion(es, j):
    """Schedule ``j``'s completion at its current rate (none if it never ends)."""
    jobs = es.jobs
    delay = (jobs.duration[j] - jobs.work[j]) / jobs.rate[j]
    if delay == math.inf:
        return OK
    return push_completion(es, es.c[0].now + (delay if delay > 0.0 else 0.0), j)


@jit_inline
def _placement(es, j):
    jobs = es.jobs
    a = jobs.node_off[j]
    g = jobs.gpu_off[j]
    b = a + jobs.p_nodes[j]
    return (
        jobs.p_node[a:b],
        jobs.p_gpu[g : g + jobs.num_gpus[j]],
        jobs.p_cpu[a:b],
        jobs.p_mem[a:b],
    )


@jit
def _take(es, j, sign):
    nodes, gpus, cpus, mem = _placement(es, j)
    milli = es.jobs.milli[j] if gpus.shape[0] > 0 else 0
    take(es.cl, nodes, gpus, milli, cpus, mem, sign)
    es.queue_alloc[es.jobs.queue[j]] -= sign * es.jobs.share[j]


@jit
def placement_speed(es, j):
    """Speed of job ``j`` on its current GPUs: the slowest model's (1.0 if it holds none)."""
    jobs = es.jobs
    g_max = es.cl.gpu_free.shape[1]
    g = jobs.gpu_off[j]
    s = math.inf
    for i in range(jobs.num_gpus[j]):
        v = jobs.speed[j, es.cl.node_model[jobs.p_gpu[g + i] // g_max]]
        if v < s:
            s = v
    return 1.0 if s == math.inf else s


@jit
def add_type_seconds(es, j, ran):
    """Add ``ran`` seconds of ``j``'s current GPUs to its GPU-seconds per model."""
    jobs = es.jobs
    g_max = es.cl.gpu_free.shape[1]
    g = jobs.gpu_off[j]
    per = jobs.milli[j] / MILLI
    for i in range(jobs.num_gpus[j]):
        jobs.type_seconds[j, es.cl.node_model[jobs.p_gpu[g + i] // g_max]] += per * ran


@jit
def release(es, fs, j):
    """Job ``j`` leaves the cluster (its status is the caller's): resources, books, logs."""
    jobs, c = es.jobs, es.c[0]
    _take(es, j, 1)
    now = c.now
    ran = now - jobs.run_start[j]
    jobs.gpu_seconds[j] += jobs.share[j] * ran
    if jobs.speed.shape[1] > 0:
        add_type_seconds(es, j, ran)
    jobs.run_seconds[j] += ran
    bit_clear(es.q.running, j)
    c.running -= 1
    es.log.stops[c.stops] = j
    c.stops += 1
    _notice(es, j, NOTICE_STOP)
    stop_hook(es, fs, j)


@jit
def _copy_in(es, j, k):
    """Copy the placement in ``es.buf`` (``k`` nodes) into job ``j``'s slots."""
    jobs, buf = es.jobs, es.buf
    a = jobs.node_off[j]
    g = jobs.gpu_off[j]
    for i in range(k):
        jobs.p_node[a + i] = buf.nodes[i]
        jobs.p_cpu[a + i] = buf.cpu[i]
        jobs.p_mem[a + i] = buf.mem[i]
    for i in range(jobs.num_gpus[j]):
        jobs.p_gpu[g + i] = buf.gpus[i]
    jobs.p_nodes[j] = k


@jit
def _begin(es, fs, j, k):
    """Put ``j`` on the placement in ``es.buf`` and schedule its end (shared by start/migrate)."""
    jobs, c = es.jobs, es.c[0]
    _copy_in(es, j, k)
    _take(es, j, -1)
    bit_set(es.q.running, j)
    c.running += 1
    now = c.now
    jobs.run_start[j] = now
    jobs.last_update[j] = now
    if jobs.speed.shape[1] > 0:  # GPU-type speeds: the fabric's factor (if any) comes on top
        sp = placement_speed(es, j)
        jobs.tspeed[j] = sp
        jobs.rate[j] = sp
    if c.record:
        _log_placement(es, j)
    _notice(es, j, NOTICE_START)
    start_hook(es, fs, j)
    c.decisions += 1
    if c.defer_completion and jobs.notify[j]:
        return OK  # the host sets the fabric's rates first, then schedules it
    return schedule_completion(es, j)


@jit
def check_placement(es, j, k, own):
    """Whether the placement in ``es.buf`` (``k`` nodes) is valid for job ``j``: 0 or ``ERR_*``.

    It must give the job exactly its GPUs at its milli-GPU, its CPU and memory in total (none
    negative), on nodes that are up, of its GPU type, with room. ``own``: ``j``'s current
    resources count as free (a migration).
    """
    jobs, buf = es.jobs, es.buf
    if j < 0 or j >= jobs.status.shape[0]:
        return ERR_BAD_JOB
    if k < 1 or k > es.cl.free_full.shape[0]:
        return ERR_NO_NODES
    slots = jobs.node_off[j + 1] - jobs.node_off[j]
    if k > slots:
        return ERR_SIZE
    cpus = 0.0
    mem = 0.0
    for i in range(k):
        if not (buf.cpu[i] >= 0.0 and buf.mem[i] >= 0.0):
            return ERR_CPU
        cpus += buf.cpu[i]
        mem += buf.mem[i]
    want_c = jobs.cpus[j]
    want_m = jobs.mem[j]
    if abs(cpus - want_c) > _EPS * max(1.0, want_c) or abs(mem - want_m) > _EPS * max(1.0, want_m):
        return ERR_CPU
    n = jobs.num_gpus[j]
    nodes = buf.nodes[:k]
    gpus = buf.gpus[:n]
    milli = jobs.milli[j] if n > 0 else 0
    if own:
        _take(es, j, 1)
    code = _check_alloc(
        es.cl.gpu_free,
        es.cl.cpu_free,
        es.cl.mem_free,
        es.cl.node_up,
        es.cl.node_model,
        nodes,
        gpus,
        milli,
        buf.cpu[:k],
        buf.mem[:k],
        jobs.type_mask[j],
    )
    if own:
        _take(es, j, -1)
    if code != ALLOC_OK:
        return ERR_ALLOC + code
    return OK


@jit
def start(es, fs, j, k):
    """Start queued job ``j`` on the placement in ``es.buf`` (``k`` nodes; trusted)."""
    jobs = es.jobs
    if jobs.status[j] != _QUEUED:
        return ERR_NOT_QUEUED
    q_remove(es, j)
    jobs.status[j] = _RUNNING
    if math.isnan(jobs.start[j]):
        jobs.start[j] = es.c[0].now
    log_event(es, j, EV_START)
    return _begin(es, fs, j, k)


@jit
def complete(es, fs, j):
    """Job ``j`` finished its work now."""
    jobs, c = es.jobs, es.c[0]
    release(es, fs, j)
    jobs.work[j] = jobs.duration[j]
    jobs.status[j] = _FINISHED
    jobs.end[j] = c.now
    log_event(es, j, EV_FINISH)
    c.terminal += 1


@jit
def stop_running(es, fs, j):
    """Stop running job ``j``, rolling its work back to the last checkpoint (status: caller's)."""
    jobs, c = es.jobs, es.c[0]
    work = progress(es, j)
    kept = jobs.kept[j]  # last checkpoint
    if work >= kept:  # past the restart overhead: a checkpoint every C s of progress
        ck = c.checkpoint
        kept += math.floor((work - kept) / ck) * ck if ck > 0 else work - kept
        wasted = work - kept
    else:  # stopped while still paying the restart overhead: the checkpoint is intact
        wasted = work - (kept - c.restart_overhead)
    jobs.lost[j] += wasted + c.restart_overhead
    jobs.kept[j] = kept
    jobs.work[j] = kept - c.restart_overhead
    jobs.version[j] += 1
    release(es, fs, j)


@jit
def preempt(es, fs, j):
    """Stop running job ``j``: roll back to its last checkpoint and requeue it."""
    jobs = es.jobs
    if j < 0 or j >= jobs.status.shape[0]:
        return ERR_BAD_JOB
    if jobs.status[j] != _RUNNING:
        return ERR_NOT_RUNNING
    stop_running(es, fs, j)
    jobs.preemptions[j] += 1
    q_push(es, j)
    log_event(es, j, EV_PREEMPT)
    es.c[0].decisions += 1
    return OK


@jit
def same_place(es, j, k):
    """Whether the placement in ``es.buf`` is on job ``j``'s current nodes and GPUs.

    Compared as sets (any order); the CPU and memory split over the nodes does not count: a
    placement on the same nodes and GPUs does not move the job.
    """
    nodes, gpus, _, _ = _placement(es, j)
    buf = es.buf
    if k != nodes.shape[0]:
        return False
    for i in range(k):
        found = False
        for m in range(k):
            if buf.nodes[i] == nodes[m]:
                found = True
                break
        if not found:
            return False
    n = gpus.shape[0]
    for i in range(n):
        found = False
        for m in range(n):
            if buf.gpus[i] == gpus[m]:
                found = True
                break
        if not found:
            return False
    return True


@jit
def migrate(es, fs, j, k):
    """Move running job ``j`` to the placement in ``es.buf`` (``k`` nodes; trusted).

    It keeps its progress minus ``migration_overhead`` seconds.
    """
    jobs, c = es.jobs, es.c[0]
    if jobs.status[j] != _RUNNING:
        return ERR_NOT_RUNNING
    progress(es, j)
    release(es, fs, j)
    jobs.work[j] -= c.migration_overhead
    jobs.lost[j] += c.migration_overhead
    jobs.migrations[j] += 1
    jobs.version[j] += 1
    log_event(es, j, EV_MIGRATE)
    return _begin(es, fs, j, k)


@jit
def reject(es, j, reason):
    """Turn queued job ``j`` away for good (reason code ``reason``)."""
    jobs, c = es.jobs, es.c[0]
    if j < 0 or j >= jobs.status.shape[0]:
        return ERR_BAD_JOB
    if jobs.status[j] != _QUEUED:
        return ERR_NOT_QUEUED
    if reason < 0 or reason >= es.log.rejects.shape[0]:
        return ERR_REASON
    q_remove(es, j)
    jobs.status[j] = _REJECTED
    jobs.end[j] = np.nan
    es.log.rejects[reason] += 1
    log_event(es, j, EV_REJECT)
    c.terminal += 1
    c.decisions += 1
    return OK


@jit
def set_rate(es, j, rate):
    """Change the speed factor of job ``j`` (1 = full speed) and reschedule its completion.

    The job's rate becomes ``rate`` times the speed of its GPU type (``tspeed``, 1.0 without
    GPU-type speeds).
    """
    if not rate > 0:
        return ERR_RATE
    progress(es, j)
    es.jobs.rate[j] = rate * es.jobs.tspeed[j]
    es.jobs.version[j] += 1
    return schedule_completion(es, j)


@jit
def place_job(es, j, mode, allow_split, indexed):
    """Where queued job ``j`` would start now, written into ``es.buf``; nodes used or -1.

    The shared placement rule (:func:`simulator.core.kernels.place_into`) for ``j``'s demand.
    """
    cls = es.cls
    k = es.jobs.cls[j]
    return place_into(
        es.cl,
        cls.gpus[k],
        cls.milli[k],
        cls.mask[k],
        cls.cpus[k],
        cls.mem[k],
        cls.pods[k],
        cls.single[k],
        mode,
        allow_split,
        indexed,
        es.buf,
    )


# ---------------------------------------------------------------------- arrivals, controllers
@jit_inline
def class_fits(es, k):
    """Whether demand class ``k`` can ever be placed here (computed when the run is built)."""
    return es.cls.fits[k] != 0


@jit
def admit(es, j):
    """Job ``j`` arrives: queued, or ``unschedulable`` if it fits not even the empty cluster."""
    log_event(es, j, EV_ARRIVE)
    if not class_fits(es, es.jobs.cls[j]):
        es.jobs.status[j] = _UNSCHEDULABLE
        log_event(es, j, EV_UNSCHEDULABLE)
        es.c[0].terminal += 1
        return
    q_push(es, j)


@jit
def submit(es, j):
    """Submit dormant job ``j`` now (rows with ``submit_time = inf`` wait for this)."""
    jobs = es.jobs
    if j < 0 or j >= jobs.status.shape[0]:
        return ERR_BAD_JOB
    if jobs.status[j] != _FUTURE or not math.isinf(jobs.submit[j]):
        return ERR_NOT_DORMANT
    jobs.submit[j] = es.c[0].now
    admit(es, j)
    request_pass(es)
    return OK


@jit
def stop_job(es, fs, j):
    """End job ``j`` now as ``finished`` (a drained replica); a queued job is withdrawn."""
    jobs, c = es.jobs, es.c[0]
    if j < 0 or j >= jobs.status.shape[0]:
        return ERR_BAD_JOB
    if jobs.status[j] == _RUNNING:
        progress(es, j)
        release(es, fs, j)
        jobs.version[j] += 1
    elif jobs.status[j] == _QUEUED:
        q_remove(es, j)
    else:
        return ERR_NOT_ACTIVE
    jobs.status[j] = _FINISHED
    jobs.end[j] = c.now
    log_event(es, j, EV_FINISH)
    c.terminal += 1
    request_pass(es)
    return OK


@jit
def uses_node(es, j, node):
    """Whether job ``j``'s placement uses ``node``."""
    jobs = es.jobs
    a = jobs.node_off[j]
    for i in range(a, a + jobs.p_nodes[j]):
        if jobs.p_node[i] == node:
            return True
    return False


@jit
def fail_node(es, fs, node):
    """Take ``node`` out of the pool and kill every job on it; returns how many were killed.

    A killed job (the whole gang) rolls back to its last checkpoint, pays the restart
    overhead again and is requeued, or ends ``failed`` after more than ``max_retries`` kills.
    The victims are the last entries of the stop log, in ascending job order.
    """
    cl, jobs, c = es.cl, es.jobs, es.c[0]
    if not cl.node_up[node]:
        return 0
    cl.node_up[node] = False
    c.node_failures += 1
    killed = 0
    j = bit_next(es.q.running, 0)
    while j >= 0:
        nxt = bit_next(es.q.running, j + 1)
        if uses_node(es, j, node):
            stop_running(es, fs, j)
            killed += 1
            jobs.restarts[j] += 1
            if c.max_retries >= 0 and jobs.restarts[j] > c.max_retries:
                jobs.status[j] = _FAILED
                jobs.end[j] = c.now
                log_event(es, j, EV_FAILED)
                c.terminal += 1
            else:
                q_push(es, j)
                log_event(es, j, EV_KILLED)
        j = nxt
    request_pass(es)
    return killed


@jit
def repair_node(es, node):
    """Return ``node`` to the placement pool."""
    if not es.cl.node_up[node]:
        es.cl.node_up[node] = True
        request_pass(es)


# ---------------------------------------------------------------------- checks
@jit_inline
def _close(a, b):
    return abs(a - b) <= 1e-8 + 1e-5 * abs(b)  # numpy.isclose's default tolerances


@jit
def verify(es):
    """Check the books against the running jobs' placements: 0, or ``ERR_INVARIANT + k``.

    ``k``: 1 a GPU over-allocated or its books differ, 2 ``free_full`` or the free-GPU total
    out of step, 3 allocated milli-GPU out of step, 4 CPU or memory over-allocated or their
    books differ, 5 a job holds part of its gang, 6 a running job on a node that is down,
    7 queued/running counts out of step, 8 per-queue counts out of step.
    """
    cl, jobs, c = es.cl, es.jobs, es.c[0]
    num, g_max = cl.gpu_free.shape
    used = np.zeros(num * g_max, dtype=np.int64)
    cpu = np.zeros(num)
    mem = np.zeros(num)
    running = 0
    queued = 0
    per_queue = np.zeros(es.queue_queued.shape[0], dtype=np.int64)
    for j in range(jobs.status.shape[0]):
        s = jobs.status[j]
        if s == _QUEUED:
            queued += 1
            per_queue[jobs.queue[j]] += 1
            if not bit_test(es.q.queued, j):
                return ERR_INVARIANT + 7
        if s != _RUNNING:
            if bit_test(es.q.running, j):
                return ERR_INVARIANT + 7
            continue
        running += 1
        if not bit_test(es.q.running, j):
            return ERR_INVARIANT + 7
        nodes, gpus, cpus, mems = _placement(es, j)
        if gpus.shape[0] != jobs.num_gpus[j]:
            return ERR_INVARIANT + 5
        milli = jobs.milli[j] if gpus.shape[0] > 0 else 0
        for g in gpus:
            used[g] += milli
        for i in range(nodes.shape[0]):
            if not cl.node_up[nodes[i]]:
                return ERR_INVARIANT + 6
            cpu[nodes[i]] += cpus[i]
            mem[nodes[i]] += mems[i]
    if running != c.running or queued != c.queued:
        return ERR_INVARIANT + 7
    for k in range(per_queue.shape[0]):
        if per_queue[k] != es.queue_queued[k]:
            return ERR_INVARIANT + 8
    total_used = 0
    free_total = 0
    for i in range(num):
        full = 0
        for g in range(g_max):
            f = cl.gpu_free[i, g]
            if f < 0:
                if used[i * g_max + g] != 0:
                    return ERR_INVARIANT + 1
                continue
            if used[i * g_max + g] > MILLI or f != MILLI - used[i * g_max + g]:
                return ERR_INVARIANT + 1
            total_used += used[i * g_max + g]
            if f == MILLI:
                full += 1
        if full != cl.free_full[i]:
            return ERR_INVARIANT + 2
        free_total += full
        if cpu[i] > cl.cpu_cap[i] + 1e-6 or mem[i] > cl.mem_cap[i] + 1e-6:
            return ERR_INVARIANT + 4
        if cpu[i] < -1e-6 or mem[i] < -1e-6:
            return ERR_INVARIANT + 4
        if math.isfinite(cl.cpu_cap[i]) and not _close(cl.cpu_free[i], cl.cpu_cap[i] - cpu[i]):
            return ERR_INVARIANT + 4
        if math.isfinite(cl.mem_cap[i]) and not _close(cl.mem_free[i], cl.mem_cap[i] - mem[i]):
            return ERR_INVARIANT + 4
    if free_total != cl.books[0].free_gpus:
        return ERR_INVARIANT + 2
    if total_used != cl.books[0].alloc_milli:
        return ERR_INVARIANT + 3
    return OK
