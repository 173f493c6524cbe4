"""The engine's event loop: one compiled function for every policy.

:func:`advance` processes the run's job events in time order until it must hand control back
to its host (:class:`~simulator.core.engine.Simulation`, which owns the SimPy environment):

* ``EXT`` — the next event is an extension event (a SimPy event: node failures, serving,
  controllers, user processes) that must come first;
* ``PY_PASS`` — a scheduling pass of a policy that has no compiled pass is due;
* ``NOTICES`` — jobs that Python listens to started or stopped (a Python fabric, serving);
* ``GROW`` — a log or heap needs more room before the next event;
* ``CHUNK`` — ``budget`` events were processed (the host checks for Ctrl-C, draws progress);
* ``UNTIL`` / ``DONE`` — the horizon is reached / nothing is left;
* ``ERROR`` — a compiled operation failed (``es.c[0].err`` tells what).

Order of events at one instant ``t``, written down once here and tested in
``tests/test_engine_order.py``:

1. **releases**: completions of jobs due at ``t`` (in the order they were scheduled);
2. **extension events** at ``t``, in SimPy's order (they may fail nodes, submit or stop
   jobs, change rates, ask for a pass);
3. **timers** the policy asked for with ``wake_at(t)``;
4. **the scheduling pass**: every job submitted at ``t`` is admitted to the queue (in trace
   order), then the policy's pass runs once and sees all of the above. Jobs it starts begin
   at ``t``.

A pass runs only when something happened that a policy could act on: an arrival, a release
while jobs wait, a timer, or a request from an extension (at most one pending pass per
instant). A release that leaves the queue empty records the timeline row without a pass.
Anything scheduled at ``t`` during the pass (a zero-length job, an extension reacting to a
start) comes after it, and may lead to another pass at ``t``.

Completion events are never cancelled: a rate change or preemption bumps the job's version
and the stale event is skipped when it comes up. Ties between completions at one time go by
the order in which they were scheduled.
"""

from __future__ import annotations

import math

from simulator.core.hooks import PASS_DONE, PASS_PYTHON, pass_hook
from simulator.core.jit import jit
from simulator.core.jobs import Status
from simulator.core.ops import (
    ERR_PASS_LOOP,
    admit,
    complete,
    heap_pop,
    request_pass,
    sample,
    timer_pop,
    verify,
)
from simulator.core.state import room_ok

__all__ = [
    "advance",
    "end_pass",
    "DONE",
    "EXT",
    "PY_PASS",
    "NOTICES",
    "GROW",
    "CHUNK",
    "UNTIL",
    "ERROR",
    "RELEASE",
    "EXTENSION",
    "TIMER",
    "PASS",
]

DONE = 0
EXT = 1
PY_PASS = 2
NOTICES = 3
GROW = 4
CHUNK = 5
UNTIL = 6
ERROR = 7

RELEASE = 0
"""Rank of completions at an instant: first."""
EXTENSION = 1
"""Rank of extension (SimPy) events: after releases."""
TIMER = 2
"""Rank of policy timers: after extension events."""
PASS = 3
"""Rank of arrivals + the scheduling pass: last."""

_NONE = -1
_COMPLETE = 0
_TIMER = 1
_PASS = 2
_ARRIVAL = 3

_FUTURE = Status.FUTURE
_RUNNING = Status.RUNNING


@jit
def end_pass(es):
    """After a pass: check the books (``check``), record the timeline, guard against loops."""
    c = es.c[0]
    if c.check:
        code = verify(es)
        if code != 0:
            c.err = code
    sample(es)
    if c.now == c.idle_at and c.decisions == c.idle_mark:
        c.idle_passes += 1
        if c.idle_passes > c.max_idle_passes:
            c.err = ERR_PASS_LOOP
    else:
        c.idle_at = c.now
        c.idle_mark = c.decisions
        c.idle_passes = 0
    if c.now == c.instant_at:
        c.instant_passes += 1
        if c.instant_passes > c.max_instant_passes:
            c.err = ERR_PASS_LOOP
            c.err_aux = 1
    else:
        c.instant_at = c.now
        c.instant_passes = 0


@jit
def _arrivals(es):
    """Admit every row submitted by now, in trace order; schedule the next arrival."""
    c, jobs = es.c[0], es.jobs
    now = c.now
    arrival, status = jobs.arrival, jobs.status
    n = arrival.shape[0]
    c.arrival_eid = -1
    c.arrival_t = math.inf
    i = c.next_arrival
    while i < n and arrival[i] <= now:  # rows never submitted (inf) come last
        if status[i] == _FUTURE:
            admit(es, i)
        i += 1
    c.next_arrival = i
    if i < n and arrival[i] < math.inf:
        at = arrival[i]
        c.arrival_at = at
        c.arrival_t = now + (at - now)  # as a delay from now, like any scheduled event
        c.arrival_eid = c.eid
        c.eid += 1
    else:
        c.arrival_at = math.inf


@jit
def advance(es, fs, ps, t_ext, budget):
    """Process job events until control must go back to the host; returns why (module doc).

    Args:
        es: the engine state.
        fs: the fabric's compiled state (:mod:`simulator.core.hooks`).
        ps: the policy's compiled state (:mod:`simulator.core.hooks`).
        t_ext: time of the next extension event (``inf`` if none).
        budget: most events to process in this call.
    """
    c, ev, jobs = es.c[0], es.ev, es.jobs
    stop_at = c.events + budget
    while True:
        if c.err != 0:
            return ERROR
        if c.notices > 0:
            return NOTICES
        if not room_ok(es):
            return GROW
        if c.events >= stop_at:
            return CHUNK
        # the next core event by (time, rank, insertion id)
        kind = _NONE
        t = math.inf
        rank = 9
        eid = 0
        if c.heap_n > 0:
            kind, t, rank, eid = _COMPLETE, ev.time[0], RELEASE, ev.eid[0]
        if c.timer_n > 0:
            tt = ev.timers[0]
            if tt < t or (tt == t and TIMER < rank):
                kind, t, rank, eid = _TIMER, tt, TIMER, 0
        if not math.isnan(c.pass_t):
            tp = c.pass_t
            if tp < t or (tp == t and (PASS < rank or (PASS == rank and c.pass_eid < eid))):
                kind, t, rank, eid = _PASS, tp, PASS, c.pass_eid
        if c.arrival_eid >= 0:
            ta = c.arrival_t
            if ta < t or (ta == t and (PASS < rank or (PASS == rank and c.arrival_eid < eid))):
                kind, t, rank, eid = _ARRIVAL, ta, PASS, c.arrival_eid
        if kind == _NONE:
            return DONE
        if t > t_ext or (t == t_ext and rank > EXTENSION):
            return EXT
        if t >= c.until:
            return UNTIL
        c.now = t
        c.events += 1
        if kind == _COMPLETE:
            j = ev.job[0]
            version = ev.version[0]
            heap_pop(es)
            if jobs.version[j] != version or jobs.status[j] != _RUNNING:
                continue  # superseded by a rate change or a preemption
            complete(es, fs, j)
            if c.check:
                code = verify(es)
                if code != 0:
                    c.err = code
            if c.queued > 0 or c.woken:
                request_pass(es)
            else:
                sample(es)
            continue
        if kind == _TIMER:
            while c.timer_n > 0 and ev.timers[0] == t:
                timer_pop(es)
            c.woken = True
            request_pass(es)
            continue
        if kind == _PASS:
            c.pass_t = math.nan
        else:
            _arrivals(es)
        # --- the scheduling pass
        if c.queued > 0 or c.woken:
            c.woken = False
            c.passes += 1
            code = pass_hook(es, fs, ps)
            if code == PASS_PYTHON:
                return PY_PASS
            if code != PASS_DONE:
                c.err = code
                continue
        end_pass(es)
