"""The compiled pass of :class:`~policies.backfill.BackfillPolicy` in EASY mode.

:meth:`BackfillPolicy.schedule` is the Python reference: a dense profile of the free resources
at every estimated end of a running job, a reservation for the first job that cannot start,
and every other job started only if it fits the profile over its whole estimated run. The
compiled pass makes the same decisions without building the profile, from three facts:

* before the reservation is made, nothing is held after ``now``: resources only come back as
  jobs end, so the least free over any span starting now is what is free now (the live
  cluster), and the least free over a span starting at a later breakpoint is what is free at
  that breakpoint;
* so the reservation is found by releasing running jobs (and the jobs this pass started, at
  the end of their estimates) in order of their estimated ends on a what-if copy of the
  cluster, trying the job at each distinct end: ``O(R)`` to collect the ``R`` running jobs,
  then ``O(log R)`` per job released until it fits;
* after the reservation, held from ``s_r``, a job whose estimated run ends by ``s_r`` fits iff
  it fits the live cluster, and any other job iff it fits the element-wise minimum of the live
  cluster and the cluster at ``s_r`` minus the reservation (kept up to date as jobs start).

The reservation is only computed when it matters: when every node is up, the first job that
cannot start is sure to get one (the last breakpoint frees every GPU), so it is computed when a
later job is found to fit the live cluster, which is still the state the reference reserved on
(nothing started in between). Jobs of a demand class that failed on a state are skipped while
that state only shrinks (the placer's answer is monotone in the free resources).

Cost per pass: ``O(C)`` placements for the ``C`` classes with waiting jobs until a job fits
after a failure; then one reservation search (above), and ``O(Q)`` for the ``Q`` waiting jobs
after it, with a placement only for jobs of classes not yet known to fail (the walk stops
when every class with waiting jobs is known to fail).

Conservative mode (a reservation for every waiting job) keeps the Python pass.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from policies.whatif import give, place_on
from simulator.core.bits import bit_next
from simulator.core.hooks import PASS_DONE
from simulator.core.jit import jit
from simulator.core.kernels import copy_free, min_free, min_node, take
from simulator.core.ops import first_queued, place_job, start

__all__ = ["BackfillPass", "new_backfill_pass"]

_MIN_LENGTH = 1e-9  # as BackfillPolicy.schedule
ERR_NO_RESERVATION = 200
"""The job owed a reservation fits at no estimated end (cannot happen: every node is up)."""


@jit
def _sift_down(ht, hv, i, size):
    while True:
        m = i
        a = 2 * i + 1
        b = a + 1
        if a < size and ht[a] < ht[m]:
            m = a
        if b < size and ht[b] < ht[m]:
            m = b
        if m == i:
            return
        ht[i], ht[m] = ht[m], ht[i]
        hv[i], hv[m] = hv[m], hv[i]
        i = m


@jit
def _reserve(es, ps, h, tag):
    """Earliest estimated end at which job ``h`` fits, holding it on ``ps.sc``; -1 if none.

    On success ``ps.sc`` holds the cluster at that time minus ``h``'s placement there, and
    ``ps.sb`` the element-wise minimum of it and the live cluster.
    """
    ja = es.jobs
    now = es.c[0].now
    sc = ps.sc
    copy_free(sc, es.cl)
    ht, hv = ps.ht, ps.hv
    size = 0
    after = np.nextafter(now, math.inf)
    run = es.q.running
    v = bit_next(run, 0)
    while v >= 0:
        if ps.stamp[v] != tag:  # running since before the pass: ends at its estimate
            done = ja.work[v] + (now - ja.last_update[v]) * ja.rate[v]
            t = now + max(ps.est[v] - done, 0.0) / ja.rate[v]
            ht[size] = max(t, after)
            hv[size] = v
            size += 1
        v = bit_next(run, v + 1)
    for i in range(ps.nstart[0]):  # started in this pass: held for their estimates
        ht[size] = ps.st_end[i]
        hv[size] = ps.st_job[i]
        size += 1
    for i in range(size // 2 - 1, -1, -1):
        _sift_down(ht, hv, i, size)
    gpus, milli = ja.num_gpus[h], ja.milli[h]
    buf = ps.sbuf
    while size > 0:
        t = ht[0]
        while size > 0 and ht[0] == t:
            give(es, sc, hv[0], 1)
            size -= 1
            ht[0] = ht[size]
            hv[0] = hv[size]
            _sift_down(ht, hv, 0, size)
        m = place_on(es, sc, h, ps.mode, ps.allow_split, buf)
        if m >= 0:
            take(sc, buf.nodes[:m], buf.gpus[:gpus], milli, buf.cpu[:m], buf.mem[:m], -1)
            min_free(ps.sb, es.cl, sc)
            return t
    return -1.0


@jit
def _all_up(es):
    up = es.cl.node_up
    for i in range(up.shape[0]):
        if not up[i]:
            return False
    return True


@jit
def _backfill_pass(es, fs, ps):
    """:meth:`BackfillPolicy.schedule` (EASY), compiled (see the module docstring)."""
    j = first_queued(es)
    if j < 0:
        return PASS_DONE
    ja = es.jobs
    now = es.c[0].now
    ps.nstart[1] += 1
    tag = ps.nstart[1]
    ps.nstart[0] = 0
    mode, split = ps.mode, ps.allow_split
    est, live_fail = ps.est, ps.live_fail
    # phase 1: no reservation yet (state 0) or one owed to job h (state 1): class heads in
    # arrival order on the live cluster, as long as nothing fits after a failure
    state = 0
    h = -1
    s_r = -1.0
    heads = es.q.heads
    j = bit_next(heads, 0)
    while j >= 0:
        k = ja.cls[j]
        m = place_job(es, j, mode, split, True)
        if m >= 0:
            if state == 1:
                s_r = _reserve(es, ps, h, tag)
                if s_r < 0.0:
                    return ERR_NO_RESERVATION
                state = 2
                break
            code = start(es, fs, j, m)
            if code != 0:
                return code
            i = ps.nstart[0]
            ps.st_job[i] = j
            ps.st_end[i] = now + max(est[j] - ja.work[j], _MIN_LENGTH)
            ps.stamp[j] = tag
            ps.nstart[0] = i + 1
        else:
            live_fail[k] = tag
            if state == 0:
                if _all_up(es):
                    state = 1
                    h = j
                else:
                    s_r = _reserve(es, ps, j, tag)
                    if s_r >= 0.0:
                        state = 2
                        j = bit_next(es.q.queued, j + 1)
                        break
        j = bit_next(heads, j + 1)
    if state != 2:
        return PASS_DONE
    # phase 2: every waiting job from j on, against the live cluster or its minimum with the
    # cluster at the reservation
    sc, sb, both_fail = ps.sc, ps.sb, ps.both_fail
    queued = es.q.queued
    counts = es.q.class_queued
    alive = 0  # classes with waiting jobs not known to fail on the live cluster
    x = bit_next(heads, 0)
    while x >= 0:
        if live_fail[ja.cls[x]] != tag:
            alive += 1
        x = bit_next(heads, x + 1)
    while j >= 0 and alive > 0:
        k = ja.cls[j]
        if live_fail[k] != tag:
            span = s_r < now + max(est[j] - ja.work[j], _MIN_LENGTH)
            if span:
                if both_fail[k] != tag:
                    m = place_on(es, sb, j, mode, split, es.buf)
                    if m >= 0:
                        code = start(es, fs, j, m)
                        if code != 0:
                            return code
                        give(es, sc, j, -1)
                        give(es, sb, j, -1)
                        if counts[k] == 0:
                            alive -= 1
                    else:
                        both_fail[k] = tag
            else:
                m = place_job(es, j, mode, split, True)
                if m >= 0:
                    code = start(es, fs, j, m)
                    if code != 0:
                        return code
                    a = ja.node_off[j]
                    for i in range(ja.p_nodes[j]):
                        min_node(sb, es.cl, sc, ja.p_node[a + i])
                    if counts[k] == 0:
                        alive -= 1
                else:
                    live_fail[k] = tag
                    alive -= 1
        j = bit_next(queued, j + 1)
    return PASS_DONE


class BackfillPass(NamedTuple):
    """Compiled state of :class:`~policies.backfill.BackfillPolicy` (EASY)."""

    mode: int
    allow_split: bool
    est: np.ndarray  # float64[n]: run-time estimates
    stamp: np.ndarray  # int64[n]: pass number of the job's start in it
    live_fail: np.ndarray  # int64[classes]: pass in which the class failed on the live cluster
    both_fail: np.ndarray  # int64[classes]: ... on the minimum with the reservation's cluster
    nstart: np.ndarray  # int64[2]: jobs started in this pass so far, pass number
    st_job: np.ndarray  # int64[n]: jobs started in this pass, in order
    st_end: np.ndarray  # float64[n]: ... and the end of their estimates
    ht: np.ndarray  # float64[n]: heap of estimated ends (reservation search)
    hv: np.ndarray  # int64[n]: ... and their jobs
    sc: object  # what-if cluster: at the reservation, minus it (Scratch.ref)
    sb: object  # what-if cluster: minimum of the live one and sc
    sbuf: object  # placement buffer of the reservation search

    kernel = _backfill_pass


def new_backfill_pass(
    estimate: np.ndarray, num_classes: int, mode: int, allow_split: bool, at, low
) -> BackfillPass:
    """A fresh :class:`BackfillPass`; ``at``, ``low``: two :class:`~policies.whatif.Scratch`."""
    n = int(estimate.shape[0])
    ncls = max(int(num_classes), 1)
    return BackfillPass(
        int(mode),
        bool(allow_split),
        np.array(estimate, dtype=np.float64),
        np.zeros(n, dtype=np.int64),
        np.zeros(ncls, dtype=np.int64),
        np.zeros(ncls, dtype=np.int64),
        np.zeros(2, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        at.ref,
        low.ref,
        at.buf,
    )
