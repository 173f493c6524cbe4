"""EASY and conservative backfilling, with reservations computed on real placements."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator

import numpy as np

from policies.backfill_pass import BackfillPass, new_backfill_pass
from policies.base import Policy, Start, overrides
from policies.ordered import job_estimates
from policies.whatif import Scratch
from simulator.core.cluster import MILLI
from simulator.core.jobs import JobTable
from simulator.core.placement import Placement
from simulator.core.view import SchedulerView

__all__ = ["BackfillPolicy"]


class _Profile:
    """Free resources over future time: breakpoints ``times[k]`` and the state from each on.

    ``gpu[k]``, ``cpu[k]``, ``mem[k]`` are the free milli-GPU per GPU slot, cores and GB per
    node between ``times[k]`` and ``times[k+1]``, given that running jobs end at their
    estimated ends and reserved jobs hold their resources over their reserved windows.
    """

    def __init__(
        self, now: float, gpu: np.ndarray, cpu: np.ndarray, mem: np.ndarray, ends, placements
    ) -> None:
        """Profile from the free state now and running jobs ending at ``ends`` (sorted)."""
        times = [now]
        at = []
        for t in ends:
            if t > times[-1]:
                times.append(t)
            at.append(len(times) - 1)
        b = len(times)
        self.times = times
        dg = np.zeros((b, gpu.size), dtype=np.int64)
        dc = np.zeros((b, len(cpu)))
        dm = np.zeros((b, len(mem)))
        if placements:
            at = np.asarray(at)
            ng = np.array([len(p.gpus) for p in placements])
            nn = np.array([len(p.nodes) for p in placements])
            milli = np.array([p.milli for p in placements])
            gpus = np.concatenate([p.gpus for p in placements]).astype(np.int64)
            nodes = np.concatenate([p.nodes for p in placements]).astype(np.int64)
            np.add.at(dg, (np.repeat(at, ng), gpus), np.repeat(milli, ng))
            rows = np.repeat(at, nn)
            np.add.at(dc, (rows, nodes), np.concatenate([p.cpus for p in placements]))
            np.add.at(dm, (rows, nodes), np.concatenate([p.mem for p in placements]))
        self.gpu = (gpu.reshape(1, -1) + np.cumsum(dg, axis=0)).astype(np.int32)
        self.gpu = self.gpu.reshape(b, *gpu.shape)
        self.cpu = cpu[None, :] + np.cumsum(dc, axis=0)
        self.mem = mem[None, :] + np.cumsum(dm, axis=0)
        self._prefix: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def window(self, k: int, length: float) -> int:
        """Index of the last breakpoint before ``times[k] + length`` (at least ``k``)."""
        return max(k, bisect.bisect_left(self.times, self.times[k] + length) - 1)

    def may_fit(self, k: int, jobs: JobTable, j: int) -> bool:
        """Cheap necessary condition: the state at breakpoint ``k`` alone has the GPUs for ``j``."""
        gpu = self.gpu[k]
        n, milli = int(jobs.num_gpus[j]), int(jobs.milli[j])
        if n == 0:
            return True
        if milli >= MILLI:
            return int((gpu == MILLI).sum()) >= n
        return bool((gpu >= milli).any())

    def min_state(self, k: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Element-wise minimum of the states ``k..last`` (room available over the whole span)."""
        if k == 0:
            if self._prefix is None:
                self._prefix = tuple(
                    np.minimum.accumulate(a, axis=0) for a in (self.gpu, self.cpu, self.mem)
                )
            return tuple(a[last] for a in self._prefix)
        return tuple(a[k : last + 1].min(axis=0) for a in (self.gpu, self.cpu, self.mem))

    def hold(self, k: int, length: float, p: Placement) -> None:
        """Reserve ``p`` from ``times[k]`` for ``length`` seconds (splitting a breakpoint)."""
        self._prefix = None
        end = self.times[k] + length
        last = self.window(k, length)
        if last + 1 == len(self.times) or self.times[last + 1] > end:
            self.times.insert(last + 1, end)
            self.gpu = np.insert(self.gpu, last + 1, self.gpu[last], axis=0)
            self.cpu = np.insert(self.cpu, last + 1, self.cpu[last], axis=0)
            self.mem = np.insert(self.mem, last + 1, self.mem[last], axis=0)
        span = slice(k, last + 1)
        if len(p.gpus):
            flat = self.gpu[span].reshape(last + 1 - k, -1)
            flat[:, p.gpus] -= p.milli
        self.cpu[span, p.nodes] -= p.cpus
        self.mem[span, p.nodes] -= p.mem


class BackfillPolicy(Policy):
    """Backfilling in arrival order: EASY (default) or conservative.

    Jobs are considered in arrival order. Every job is checked against a *profile* of the free
    resources over future time, built from the running jobs' estimated ends (``estimate_column``
    of the trace, e.g. a user walltime, falling back to the true duration; a job past its
    estimate is assumed to end any moment) and from the reservations made so far in the pass. A
    job starts now if a placement exists that is free now *and* stays free for its whole
    estimated run time in the profile, so it never delays a reservation: it either ends before
    the reservation begins or uses only resources (nodes, GPU slots, CPU, memory) the reserved
    jobs do not need.

    A job that cannot start gets a reservation, if reservations are left: the earliest
    breakpoint of the profile from which a placement stays free for its estimated run time; its
    resources are then held in the profile from there. EASY gives a reservation only to the
    first job that cannot start (the queue head, in practice); ``conservative=True`` gives one to
    every waiting job (``max_reservations`` caps how many, None = all), so no job is ever
    delayed by a later one. Reservations are recomputed at every pass.

    Everything is computed on real placements with the shared placer (not on GPU counts): a
    reservation is a concrete placement, so "4 GPUs free in total" never counts as room for a
    4-GPU single-node job spread over two nodes.

    Cost per pass of this Python pass (the reference): queued jobs x breakpoints (distinct
    estimated end times) x nodes. EASY mode has a compiled pass (:class:`BackfillPass`,
    :mod:`policies.backfill_pass`) that makes the same decisions without the profile:
    ``O(classes)`` placements until a job fits after a failure, one search over the running
    jobs' ends for the reservation (``O(R + k log R)``), then ``O(queued)`` with a placement
    only for classes not known to fail. Conservative mode runs this Python pass.
    ``reservations`` is filled by the Python pass only.

    Args:
        estimate_column: trace column with run-time estimates in seconds (None = true duration).
        conservative: reserve for every waiting job instead of only the first.
        max_reservations: cap on reservations per pass in conservative mode (None = no cap).
        scoring: node scoring of the placer (``bestfit``, ``spread``, ``firstfit``).
        allow_split: let jobs that fit one node span several when no node has room.
    """

    name = "backfill"

    def __init__(
        self,
        estimate_column: str | None = None,
        conservative: bool = False,
        max_reservations: int | None = None,
        scoring: str = "bestfit",
        allow_split: bool = False,
    ) -> None:
        if max_reservations is not None and max_reservations < 1:
            raise ValueError("max_reservations must be >= 1 or None")
        self.estimate_column = estimate_column
        self.conservative = conservative
        self.max_reservations = max_reservations
        self.scoring = scoring
        self.allow_split = allow_split
        self.estimate = np.zeros(0)
        self.scratch: Scratch | None = None
        self._up: np.ndarray | None = None
        self.reservations: dict[int, tuple[float, Placement]] = {}
        """Reservations of the last pass: job -> (start time, placement), for inspection."""

    def setup(self, view: SchedulerView) -> None:
        """Read estimates; build the what-if state."""
        self.estimate = job_estimates(view, self.estimate_column)
        self.scratch = Scratch(view, self.scoring, self.allow_split)

    def _depth(self) -> float:
        if not self.conservative:
            return 1
        return math.inf if self.max_reservations is None else self.max_reservations

    def schedule(self, view: SchedulerView) -> Iterator[Start]:
        """Start every job that fits the profile now; reserve for the first (or every) other."""
        jobs = view.jobs
        self.reservations = {}
        self._up = view.cluster.node_up
        profile = self._profile(view)
        depth = self._depth()
        # A job that cannot start now, with its run covering the breakpoints up to time t,
        # rules out every job of its demand class whose run covers at least up to t (less
        # room, same demand). Times, unlike indices, stay valid when breakpoints are added.
        failed_at: dict[int, float] = {}
        queued = np.unique(np.asarray(view.queue.jobs(), dtype=np.int64))  # may repeat a job
        lengths = np.maximum(self.estimate[queued] - jobs.work[queued], 1e-9)
        windows = None
        for idx, j in enumerate(queued.tolist()):
            length = float(lengths[idx])
            reserve = len(self.reservations) < depth
            c = int(jobs.demand_class[j])
            if not reserve and c in failed_at:
                if windows is None:  # last breakpoint inside each job's run, if started now
                    times = np.asarray(profile.times)
                    at = np.searchsorted(times, times[0] + lengths, side="left") - 1
                    windows = times[np.maximum(at, 0)]  # as window(0, length)
                if windows[idx] >= failed_at[c]:
                    continue
            for k in range(len(profile.times) if reserve else 1):
                if k and not profile.may_fit(k, jobs, j):
                    continue
                p = self._place_over(jobs, j, profile, k, length)
                if p is None:
                    if k == 0:
                        last = profile.times[profile.window(0, length)]
                        failed_at[c] = min(failed_at.get(c, last), last)
                    continue
                profile.hold(k, length, p)
                windows = None
                if k == 0:
                    yield Start(j, p)
                else:
                    self.reservations[j] = (profile.times[k], p)
                    failed_at.clear()  # the profile changed under the cached failures
                break

    def compiled_pass(self, view: SchedulerView) -> BackfillPass | None:
        """The compiled pass (EASY only; None in conservative mode or if a subclass changes it)."""
        methods = ("schedule", "setup", "_depth", "_place_over", "_profile")
        if self.conservative or overrides(self, BackfillPolicy, *methods):
            return None
        low = Scratch(view, self.scoring, self.allow_split)
        p = self.scratch.placer
        return new_backfill_pass(
            self.estimate, view.jobs.num_classes, p.mode, p.allow_split, self.scratch, low
        )

    def compiled_finish(self, state: BackfillPass) -> None:
        """Nothing to copy back (reservations are made anew at every pass)."""

    def _place_over(
        self, jobs: JobTable, j: int, profile: _Profile, k: int, length: float
    ) -> Placement | None:
        """A placement of ``j`` free from ``times[k]`` for ``length`` seconds, or None."""
        gpu, cpu, mem = profile.min_state(k, profile.window(k, length))
        return self.scratch.load(gpu, cpu, mem, self._up).place(jobs, j)

    def _profile(self, view: SchedulerView) -> _Profile:
        """Free resources now and at every estimated end of a running job."""
        jobs, c, now = view.jobs, view.cluster, view.now
        ends, placements = [], []
        if view.running:
            run = np.fromiter(view.running, dtype=np.int64, count=len(view.running))
            done = jobs.work[run] + (now - jobs.last_update[run]) * jobs.rate[run]
            t = now + np.maximum(self.estimate[run] - done, 0.0) / jobs.rate[run]
            t = np.maximum(t, np.nextafter(now, math.inf))  # overdue: may end any moment
            order = np.argsort(t, kind="stable")
            ends = t[order].tolist()
            placements = [jobs.placements[v] for v in run[order]]
        return _Profile(now, c.gpu_free, c.cpu_free, c.mem_free, ends, placements)
