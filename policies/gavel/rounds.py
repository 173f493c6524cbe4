"""Gavel's round-based mechanism (OSDI'20, section 5) as engine events: one LP per round.

Every ``round_length`` seconds (a policy timer, ``view.wake_at``) the policy

1. computes the allocation ``X`` (active jobs x GPU types: the fraction of time each job
   should spend on each type) with one of :mod:`policies.gavel.allocation`'s objectives over
   the jobs' effective throughputs on each type, when the set of active (queued or running)
   jobs changed since the last round (Gavel recomputes it on arrivals and completions; in
   between it keeps the last one);
2. turns it into priorities as Gavel does: ``priority[j, k] = X[j, k] / f[j, k]``, where
   ``f[j, k]`` is the share of the job's time in the system that it has spent on type ``k``
   (a job with ``X > 0`` that never ran there has infinite priority); ties are broken by the
   deficit ``X[j, k] * age_j - time_on_k`` and then by ``X``;
3. walks the (job, type) entries by descending priority and picks, greedily, each job at most
   once, on a type with enough GPUs left for its gang and a throughput above 0 (Gavel's
   ``_schedule_jobs_on_workers_helper`` rules);
4. applies the picks for the round: running jobs not picked are preempted, a picked job
   running on another type moves (a migration when its new GPUs are free at that point, else
   a preemption and a start), picked queued jobs start on their type, or, when no placement
   on it exists (the LP counts GPUs only, not CPU, memory or node shapes), on any free GPUs
   their constraint allows.

Between two rounds nothing changes: a job that finishes mid-round leaves its GPUs idle until
the next round, as in Gavel's simulator; only a pick that a node failure killed restarts as
soon as it fits again (the round's plan still holds). A round starts at once when a job
arrives at an idle cluster (no round pending). Rounds that would repeat the last one exactly
(no job queued, every running job on the only type its allocation gives it time on) are
skipped until the next arrival or completion, which resumes the round grid; :attr:`rounds`
counts the rounds held.

Throughputs are the engine's GPU-type speeds (``jobs.speed``: seconds of reference-type work
per second, 1 everywhere without ``sim.speed_reference``), so ``X`` is over work rates. Max-min
and finish-time fairness are unchanged by scaling a job's row; max-sum throughput is not, so
``gavel_maxsum`` (:mod:`policies.gavel_maxsum`) multiplies each row by the job's steps/s on
the reference type (column ``ref_steps_per_s``, 1 if absent): Gavel's raw-throughput objective.

Cost per round with ``J`` active jobs and ``K`` types: an ``O(J K log(J K))`` sort, plus,
when the job set changed, one LP of ``J*K`` variables (max-sum), one or two (max-min), or
about 20 (finish-time fairness, a bisection); see docs/heterogeneity.md for measured times.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from policies.base import Decision, Migrate, Policy, Preempt, Start
from simulator.core.jobs import Status

__all__ = ["GavelRounds"]


class GavelRounds(Policy):
    """Base of the Gavel round policies; subclasses give :meth:`allocate`.

    Args:
        round_length: seconds per round (Gavel's and Shockwave's ``time_per_iteration``).
        heterogeneity_aware: the LP sees each job's speed on each type (Gavel's ``*_perf``
            policies); False = one pooled type of all GPUs at throughput 1, each job's time
            then spread over its usable types by their size (Gavel's heterogeneity-agnostic
            baselines). Jobs run at their real speeds either way.
    """

    name = "gavel"

    @property
    def summary_name(self) -> str:
        """The policy's name in Gavel's code (``summary.json``'s ``policy``)."""
        return self.name

    def __init__(self, round_length: float = 360.0, heterogeneity_aware: bool = True) -> None:
        if not (isinstance(round_length, int | float) and round_length > 0):
            raise ValueError(f"round_length must be > 0 seconds, got {round_length!r}")
        self.round_length = float(round_length)
        self.heterogeneity_aware = bool(heterogeneity_aware)
        self.rounds = 0
        self.solves = 0
        self._next = math.inf
        self._x: np.ndarray | None = None
        self._x_jobs = np.zeros(0, dtype=np.int64)
        self._quiet = False  # rounds skipped: they would repeat the last one exactly
        self._quiet_running = 0  # running jobs when the quiet began
        self._picks: dict[int, int] = {}
        self._anchor = 0.0  # time of the last round (rounds stay on its grid)

    def setup(self, view) -> None:
        """Workers (GPUs) per type, and per-job time on each type (for the priorities)."""
        cl = view.cluster
        self.models = list(cl.models)
        k = len(self.models)
        cap = np.asarray(cl.capacity, dtype=np.int64)
        model = np.asarray(cl.node_model)
        self.workers = np.array([int(cap[model == m].sum()) for m in range(k)], dtype=np.int64)
        jobs = view.jobs
        self.extra = _row_scale(jobs.frame) if self.raw_rows else None
        self._type_time = np.zeros((jobs.n, k))  # seconds each job ran on each type
        self._on = np.full(jobs.n, -1, dtype=np.int64)  # type of the current run, -1 = none
        self._since = np.zeros(jobs.n)
        self._inside = np.zeros(jobs.n, dtype=bool)  # covered by the allocation (last round)
        self.rounds = self.solves = 0  # a fresh run: nothing carried over from another
        self._next = math.inf
        self._x, self._x_jobs = None, np.zeros(0, dtype=np.int64)
        self._quiet, self._anchor, self._quiet_running = False, 0.0, 0
        self._picks: dict[int, int] = {}  # this round's picks

    raw_rows = False
    """Whether the objective needs raw steps/s (rows scaled by ``ref_steps_per_s``)."""

    # ------------------------------------------------------------------ subclass hook
    def allocate(self, thr: np.ndarray, sf: np.ndarray, view, active: np.ndarray) -> np.ndarray:
        """The allocation ``X`` (``len(active)`` x columns of ``thr``) over ``lp_workers``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the pass
    def schedule(self, view) -> Iterator[Decision]:
        """At a round boundary: allocate, pick this round's jobs, apply; else nothing."""
        now = view.now
        jobs = view.jobs
        if len(view.queue) and self._picks:
            yield from self._resume(view)
        if self._quiet:
            if len(view.queue) == 0 and len(view.running) == self._quiet_running:
                return  # the job set is as at the last round: every round would repeat it
            self._quiet = False
            steps = math.ceil((now - self._anchor) / self.round_length)
            self._next = self._anchor + steps * self.round_length
            if self._next > now:
                view.wake_at(self._next)
                return
        if self._next == math.inf:
            if len(view.queue) == 0:
                return
            self._next = now  # a job arrived at an idle cluster: a round starts now
        if now < self._next:
            return
        every = np.array(sorted(view.queue.jobs() + view.running.array().tolist()), dtype=np.int64)
        self._account(view, now)
        if len(every) == 0:
            self._next = math.inf
            return
        # jobs outside the allocation start when they fit and are never preempted: CPU-only
        # jobs, service replicas (no finite duration), and gangs that no single GPU type can
        # hold (they span types, at the slowest)
        inside = self._fits_a_type(jobs, every)
        active, outside = every[inside], every[~inside]
        self.rounds += 1
        self._anchor = now
        self._next = now + self.round_length
        thr = self._throughputs(jobs, active)
        sf = jobs.num_gpus[active].astype(np.int64)  # a GPU share counts as its one GPU
        if self._x is None or not np.array_equal(self._x_jobs, active):
            # as in Gavel, the allocation is recomputed when the set of active jobs changes
            self._x, self._x_jobs = self._allocation(thr, sf, view, active), active
            self.solves += 1
        x = self._x
        picks = self._pick(x, thr, sf, active, now - jobs.submit[active])
        if self._settled(view, x, active, picks):
            self._picks = picks
            self._quiet = True  # no timer: the next arrival or completion ends the quiet
            self._quiet_running = len(view.running)
            return
        view.wake_at(self._next)
        self._picks = picks
        yield from self._apply(view, picks)
        placer = view.placer()
        for j in outside.tolist():
            if jobs.status[j] == Status.QUEUED:
                p = placer.place(jobs, j)
                if p is not None:
                    yield Start(j, p)

    def _resume(self, view) -> Iterator[Decision]:
        """Restart this round's picks that a node failure sent back to the queue, if they fit.

        The round's plan still holds: a job killed mid-round (the policy never preempts its
        picks between rounds) runs again as soon as GPUs of its type (or any) are free.
        """
        jobs, placer = view.jobs, None
        for j, k in self._picks.items():
            if jobs.status[j] != Status.QUEUED:
                continue
            placer = placer or view.placer()
            p = placer.place(jobs, j, 1 << k) or placer.place(jobs, j)
            if p is not None:
                self._begin(j, int(view.cluster.node_model[int(p.nodes[0])]), view.now)
                yield Start(j, p)

    def _settled(self, view, x: np.ndarray, active: np.ndarray, picks: dict[int, int]) -> bool:
        """Whether this round and every later one, until the job set changes, change nothing.

        True when no job is queued and every running job is picked on its current type, the
        only type its allocation row gives time to: its priority is then positive there and 0
        elsewhere whatever the time shares become, so the picks repeat round after round.
        """
        if len(view.queue) or len(picks) != len(active):
            return False
        for r, j in enumerate(active.tolist()):
            k = self._type_of(view, j)
            row = x[r]
            if picks.get(j) != k or not row[k] > 0 or np.count_nonzero(row) != 1:
                return False
        return True

    def _fits_a_type(self, jobs, js: np.ndarray) -> np.ndarray:
        """Which of ``js`` the allocation covers.

        GPU jobs of finite duration (not service replicas) whose gang one usable type holds.
        """
        thr = self._throughputs(jobs, js)
        sf = jobs.num_gpus[js]
        inside = (sf > 0) & ((thr > 0) & (sf[:, None] <= self.workers[None, :])).any(axis=1)
        inside &= np.isfinite(jobs.duration[js])
        self._inside[js] = inside
        return inside

    def _allocation(self, thr, sf, view, active) -> np.ndarray:
        """``X`` of this round: the objective over the speeds, or over one pooled type.

        Heterogeneity-agnostic (as Gavel's baselines): the LP sees all GPUs as one type with
        throughput 1 for every job, and each job's time is then spread over the types it can
        use in proportion to their GPUs.
        """
        if len(active) == 0:  # only CPU-only jobs are active
            return np.zeros((0, len(self.models)))
        if self.heterogeneity_aware:
            self.lp_workers = self.workers
            return self.allocate(thr, sf, view, active)
        usable = thr > 0
        self.lp_workers = np.array([int(self.workers.sum())])
        pooled = self.allocate(usable.any(axis=1, keepdims=True).astype(float), sf, view, active)
        weight = usable * self.workers[None, :].astype(float)
        total = weight.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, pooled * weight / total, 0.0)

    def _throughputs(self, jobs, active: np.ndarray) -> np.ndarray:
        k = len(self.models)
        speed = jobs.speed
        thr = np.array(speed[active]) if speed.shape[1] else np.ones((len(active), k))
        mask = jobs.type_mask[active]
        for m in range(k):  # a type the job may not use (its gpu_type constraint) has 0
            bad = (mask != 0) & ((mask < 0) | ((mask >> m) & 1 == 0))
            thr[bad, m] = 0.0
        if self.extra is not None:
            thr *= self.extra[active, None]
        return thr

    def _account(self, view, now: float) -> None:
        """Add the time since the last round to each running job's type time."""
        on = self._on
        run = np.flatnonzero(on >= 0)
        self._type_time[run, on[run]] += now - self._since[run]
        self._since[run] = now
        status = view.jobs.status
        on[run[status[run] != Status.RUNNING]] = -1  # ended (finished) during the round

    def _pick(self, x, thr, sf, active, age) -> dict[int, int]:
        """Gavel's greedy selection: ``{job: type}`` for this round."""
        tt = self._type_time[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = tt / np.maximum(age, 1e-12)[:, None]
            prio = np.where(frac > 0, x / frac, np.where(x > 0, math.inf, 0.0))
        deficit = x * age[:, None] - tt
        rows, cols = np.nonzero(thr > 0)
        order = np.lexsort((-x[rows, cols], -deficit[rows, cols], -prio[rows, cols]))
        left = self.workers.copy()
        picks: dict[int, int] = {}
        for i in order.tolist():
            r, k = int(rows[i]), int(cols[i])
            j = int(active[r])
            if j in picks or sf[r] > left[k]:
                continue
            left[k] -= sf[r]
            picks[j] = k
        return picks

    def _apply(self, view, picks: dict[int, int]) -> Iterator[Decision]:
        """Preempt, move and start jobs so that this round runs exactly ``picks``."""
        jobs, now = view.jobs, view.now
        moving = []
        for j in view.running.array().tolist():
            k = picks.get(j)
            if not self._inside[j]:
                continue  # outside the allocation: never preempted
            if k is None:
                self._stop(j)
                yield Preempt(j)
            elif k != self._type_of(view, j):
                moving.append(j)
        placer = view.placer()
        for j in moving:
            p = placer.place(jobs, j, 1 << picks[j])
            self._stop(j)
            if p is not None:
                self._begin(j, picks[j], now)
                yield Migrate(j, p)
            else:
                yield Preempt(j)
        todo = [j for j in picks if jobs.status[j] == Status.QUEUED]
        todo.sort(key=lambda j: (-int(jobs.num_gpus[j]), j))  # largest gangs first (Gavel)
        for j in todo:
            p = placer.place(jobs, j, 1 << picks[j])
            k = picks[j]
            if p is None:  # the LP does not see CPU, memory or node shapes: any free GPUs
                p = placer.place(jobs, j)
                k = int(view.cluster.node_model[int(p.nodes[0])]) if p is not None else k
            if p is not None:
                self._begin(j, k, now)
                yield Start(j, p)

    def _type_of(self, view, j: int) -> int:
        if self._on[j] >= 0:
            return int(self._on[j])
        nodes = view.jobs.nodes_used[j]
        return int(view.cluster.node_model[int(nodes[0])]) if nodes is not None else -1

    def _begin(self, j: int, k: int, now: float) -> None:
        self._on[j] = k
        self._since[j] = now

    def _stop(self, j: int) -> None:
        self._on[j] = -1


def _row_scale(frame) -> np.ndarray:
    """Steps/s on the reference type per job (``ref_steps_per_s``), 1 where unknown."""
    if "ref_steps_per_s" not in frame.columns:
        return np.ones(len(frame))
    vals = frame["ref_steps_per_s"].to_numpy(np.float64, na_value=np.nan)
    return np.where(np.isfinite(vals) & (vals > 0), vals, 1.0)
