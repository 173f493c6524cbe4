"""The engine state as compiled code holds it: one reference, not a hundred arrays.

:class:`~simulator.core.state.EngineState` is a named structure of arrays for Python. Handing
a tuple of about a hundred arrays to every compiled function would cost seconds of compile
time per function and tens of microseconds per call (Numba unpacks every array at each call
boundary), so compiled code gets the same arrays behind Numba *structure references*
(``numba.experimental.structref``): one pointer per call, the same attribute names
(``es.jobs.status``, ``es.cl.gpu_free``, ``es.c[0].now``...), the same memory as the Python
tuples. :func:`engine_ref` and :func:`cluster_ref` build them; with ``NUMBA_DISABLE_JIT=1``
they return the Python tuples themselves, which compiled code then reads as plain Python.

The field types are fixed here (the job table's dtypes); :func:`engine_ref` refuses arrays of
other types with the field named.
"""

from __future__ import annotations

import numpy as np
from numba import config, from_dtype, typeof, types
from numba.experimental import structref

from simulator.core.bits import new_bits
from simulator.core.cluster import BOOKS, ClusterArrays
from simulator.core.jit import jit
from simulator.core.kernels import PlaceBuf
from simulator.core.state import (
    COUNTERS,
    ClassArrays,
    EngineState,
    EventArrays,
    JobArrays,
    LogArrays,
    QueueArrays,
)

__all__ = ["engine_ref", "cluster_ref", "buf_ref"]


class _Ref(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


@structref.register
class ClusterRefType(_Ref):
    """Numba type of a cluster reference."""


@structref.register
class JobsRefType(_Ref):
    """Numba type of the job arrays' reference."""


@structref.register
class ClassRefType(_Ref):
    """Numba type of the demand classes' reference."""


@structref.register
class QueueRefType(_Ref):
    """Numba type of the queue sets' reference."""


@structref.register
class EventsRefType(_Ref):
    """Numba type of the event heaps' reference."""


@structref.register
class LogRefType(_Ref):
    """Numba type of the logs' reference."""


@structref.register
class BufRefType(_Ref):
    """Numba type of a placement buffer's reference."""


@structref.register
class EngineRefType(_Ref):
    """Numba type of the engine state's reference."""


class ClusterRef(structref.StructRefProxy):
    """A cluster's arrays, for compiled code."""


class JobsRef(structref.StructRefProxy):
    """The job arrays, for compiled code."""


class ClassRef(structref.StructRefProxy):
    """The demand classes, for compiled code."""


class QueueRef(structref.StructRefProxy):
    """The queue sets, for compiled code."""


class EventsRef(structref.StructRefProxy):
    """The event heaps, for compiled code."""


class LogRef(structref.StructRefProxy):
    """The logs, for compiled code."""


class BufRef(structref.StructRefProxy):
    """A placement buffer, for compiled code."""


class EngineRef(structref.StructRefProxy):
    """The engine state, for compiled code."""


for _t, _p in (
    (ClusterRefType, ClusterRef),
    (JobsRefType, JobsRef),
    (ClassRefType, ClassRef),
    (QueueRefType, QueueRef),
    (EventsRefType, EventsRef),
    (LogRefType, LogRef),
    (BufRefType, BufRef),
    (EngineRefType, EngineRef),
):
    structref.define_boxing(_t, _p)


def _a(dtype: object, ndim: int = 1) -> types.Array:
    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C")


_F8, _I8, _I4, _I1, _B1, _U8 = (_a(d) for d in ("f8", "i8", "i4", "i1", "?", "u8"))
_BITS = typeof(new_bits(1))
_COUNTERS = typeof(np.zeros(1, COUNTERS).view(np.recarray))
_BOOKS = typeof(np.zeros(1, BOOKS).view(np.recarray))

CLUSTER_FIELDS = {
    "gpu_free": _a("i4", 2),
    "free_full": _I4,
    "cpu_free": _F8,
    "mem_free": _F8,
    "buckets": _a("u8", 2),
    "books": _BOOKS,
    "capacity": _I4,
    "cpu_cap": _F8,
    "mem_cap": _F8,
    "node_model": _I4,
    "node_up": _B1,
    "racks": _I4,
    "rack_order": _I8,
    "rack_start": _I8,
}
JOB_FIELDS = {
    "submit": _F8,
    "arrival": _F8,
    "duration": _F8,
    "num_gpus": _I8,
    "milli": _I4,
    "cpus": _F8,
    "mem": _F8,
    "type_mask": _I8,
    "queue": _I4,
    "cls": _I4,
    "share": _F8,
    "status": _I1,
    "start": _F8,
    "end": _F8,
    "run_start": _F8,
    "last_update": _F8,
    "work": _F8,
    "kept": _F8,
    "rate": _F8,
    "version": _I8,
    "gpu_seconds": _F8,
    "run_seconds": _F8,
    "lost": _F8,
    "preemptions": _I4,
    "migrations": _I4,
    "restarts": _I4,
    "speed": _a("f8", 2),
    "tspeed": _F8,
    "type_seconds": _a("f8", 2),
    "notify": _B1,
    "node_off": _I8,
    "gpu_off": _I8,
    "p_nodes": _I8,
    "p_node": _I8,
    "p_cpu": _F8,
    "p_mem": _F8,
    "p_gpu": _I8,
}
CLASS_FIELDS = {
    "gpus": _I8,
    "milli": _I8,
    "mask": _I8,
    "cpus": _F8,
    "mem": _F8,
    "pods": _I8,
    "single": _B1,
    "fits": _I8,
    "start": _I8,
    "jobs": _I8,
    "pos": _I8,
}
QUEUE_FIELDS = {
    "queued": _BITS,
    "by_class": _BITS,
    "heads": _BITS,
    "running": _BITS,
    "class_queued": _I8,
}
EVENT_FIELDS = {"time": _F8, "eid": _I8, "job": _I8, "version": _I8, "timers": _F8}
LOG_FIELDS = {
    "stops": _I8,
    "pushes": _I8,
    "timeline": _a("f8", 2),
    "queue_alloc": _a("f8", 2),
    "queue_queued": _a("i8", 2),
    "log_time": _F8,
    "log_job": _I8,
    "log_code": _I1,
    "plog": _a("f8", 2),
    "plog_node": _I8,
    "plog_cpu": _F8,
    "plog_mem": _F8,
    "plog_gpu": _I8,
    "notice_job": _I8,
    "notice_kind": _I1,
    "rejects": _I8,
}
BUF_FIELDS = {name: (_F8 if name in ("cpu", "mem") else _I8) for name in PlaceBuf._fields}

CLUSTER_T = ClusterRefType(list(CLUSTER_FIELDS.items()))
JOBS_T = JobsRefType(list(JOB_FIELDS.items()))
CLASS_T = ClassRefType(list(CLASS_FIELDS.items()))
QUEUE_T = QueueRefType(list(QUEUE_FIELDS.items()))
EVENTS_T = EventsRefType(list(EVENT_FIELDS.items()))
LOG_T = LogRefType(list(LOG_FIELDS.items()))
BUF_T = BufRefType(list(BUF_FIELDS.items()))
ENGINE_T = EngineRefType(
    [
        ("jobs", JOBS_T),
        ("cls", CLASS_T),
        ("cl", CLUSTER_T),
        ("q", QUEUE_T),
        ("ev", EVENTS_T),
        ("log", LOG_T),
        ("queue_alloc", _F8),
        ("queue_queued", _I8),
        ("buf", BUF_T),
        ("c", _COUNTERS),
    ]
)

for _tuple, _fields in (
    (ClusterArrays, CLUSTER_FIELDS),
    (JobArrays, JOB_FIELDS),
    (ClassArrays, CLASS_FIELDS),
    (QueueArrays, QUEUE_FIELDS),
    (EventArrays, EVENT_FIELDS),
    (LogArrays, LOG_FIELDS),
    (PlaceBuf, BUF_FIELDS),
):
    assert tuple(_fields) == _tuple._fields, f"{_tuple.__name__}: fields out of step"


@jit
def _new_cluster(t):
    r = structref.new(CLUSTER_T)
    r.gpu_free = t.gpu_free
    r.free_full = t.free_full
    r.cpu_free = t.cpu_free
    r.mem_free = t.mem_free
    r.buckets = t.buckets
    r.books = t.books
    r.capacity = t.capacity
    r.cpu_cap = t.cpu_cap
    r.mem_cap = t.mem_cap
    r.node_model = t.node_model
    r.node_up = t.node_up
    r.racks = t.racks
    r.rack_order = t.rack_order
    r.rack_start = t.rack_start
    return r


@jit
def _new_buf(t):
    r = structref.new(BUF_T)
    r.nodes = t.nodes
    r.gpus = t.gpus
    r.cpu = t.cpu
    r.mem = t.mem
    r.tmp_nodes = t.tmp_nodes
    r.tmp_counts = t.tmp_counts
    return r


@jit
def _new_jobs(t):
    r = structref.new(JOBS_T)
    r.submit = t.submit
    r.arrival = t.arrival
    r.duration = t.duration
    r.num_gpus = t.num_gpus
    r.milli = t.milli
    r.cpus = t.cpus
    r.mem = t.mem
    r.type_mask = t.type_mask
    r.queue = t.queue
    r.cls = t.cls
    r.share = t.share
    r.status = t.status
    r.start = t.start
    r.end = t.end
    r.run_start = t.run_start
    r.last_update = t.last_update
    r.work = t.work
    r.kept = t.kept
    r.rate = t.rate
    r.version = t.version
    r.gpu_seconds = t.gpu_seconds
    r.run_seconds = t.run_seconds
    r.lost = t.lost
    r.preemptions = t.preemptions
    r.migrations = t.migrations
    r.restarts = t.restarts
    r.speed = t.speed
    r.tspeed = t.tspeed
    r.type_seconds = t.type_seconds
    r.notify = t.notify
    r.node_off = t.node_off
    r.gpu_off = t.gpu_off
    r.p_nodes = t.p_nodes
    r.p_node = t.p_node
    r.p_cpu = t.p_cpu
    r.p_mem = t.p_mem
    r.p_gpu = t.p_gpu
    return r


@jit
def _new_classes(t):
    r = structref.new(CLASS_T)
    r.gpus = t.gpus
    r.milli = t.milli
    r.mask = t.mask
    r.cpus = t.cpus
    r.mem = t.mem
    r.pods = t.pods
    r.single = t.single
    r.fits = t.fits
    r.start = t.start
    r.jobs = t.jobs
    r.pos = t.pos
    return r


@jit
def _new_queue(t):
    r = structref.new(QUEUE_T)
    r.queued = t.queued
    r.by_class = t.by_class
    r.heads = t.heads
    r.running = t.running
    r.class_queued = t.class_queued
    return r


@jit
def _new_events(t):
    r = structref.new(EVENTS_T)
    r.time = t.time
    r.eid = t.eid
    r.job = t.job
    r.version = t.version
    r.timers = t.timers
    return r


@jit
def _new_log(t):
    r = structref.new(LOG_T)
    r.stops = t.stops
    r.pushes = t.pushes
    r.timeline = t.timeline
    r.queue_alloc = t.queue_alloc
    r.queue_queued = t.queue_queued
    r.log_time = t.log_time
    r.log_job = t.log_job
    r.log_code = t.log_code
    r.plog = t.plog
    r.plog_node = t.plog_node
    r.plog_cpu = t.plog_cpu
    r.plog_mem = t.plog_mem
    r.plog_gpu = t.plog_gpu
    r.notice_job = t.notice_job
    r.notice_kind = t.notice_kind
    r.rejects = t.rejects
    return r


@jit
def _new_engine(jobs, cls, cl, q, ev, log, queue_alloc, queue_queued, buf, c):
    r = structref.new(ENGINE_T)
    r.jobs = jobs
    r.cls = cls
    r.cl = cl
    r.q = q
    r.ev = ev
    r.log = log
    r.queue_alloc = queue_alloc
    r.queue_queued = queue_queued
    r.buf = buf
    r.c = c
    return r


def _conform(t: tuple, fields: dict, what: str) -> None:
    for name, want in fields.items():
        got = typeof(getattr(t, name))
        if got != want:
            raise TypeError(f"engine state {what}.{name}: expected {want}, got {got}")


def cluster_ref(arrays: ClusterArrays):
    """The compiled-code reference to a cluster's arrays (the tuple itself without JIT)."""
    if config.DISABLE_JIT:
        return arrays
    _conform(arrays, CLUSTER_FIELDS, "cl")
    return _new_cluster(arrays)


def buf_ref(buf: PlaceBuf):
    """The compiled-code reference to a placement buffer (the tuple itself without JIT)."""
    if config.DISABLE_JIT:
        return buf
    return _new_buf(buf)


def engine_ref(es: EngineState, cl=None):
    """The compiled-code reference to engine state ``es`` (``es`` itself without JIT).

    ``cl``: an existing reference to ``es.cl`` (shared, so the same object is seen).
    """
    if config.DISABLE_JIT:
        return es
    for t, fields, what in (
        (es.jobs, JOB_FIELDS, "jobs"),
        (es.cls, CLASS_FIELDS, "cls"),
        (es.ev, EVENT_FIELDS, "ev"),
        (es.log, LOG_FIELDS, "log"),
    ):
        _conform(t, fields, what)
    return _new_engine(
        _new_jobs(es.jobs),
        _new_classes(es.cls),
        cluster_ref(es.cl) if cl is None else cl,
        _new_queue(es.q),
        _new_events(es.ev),
        _new_log(es.log),
        es.queue_alloc,
        es.queue_queued,
        buf_ref(es.buf),
        es.c,
    )
