"""``hetero_greedy``: fastest GPU type first, in arrival order, with a starvation guard.

At every pass, queued jobs are taken in arrival order (the first ``lookahead`` of them). Each
goes on the fastest GPU type, by its own speed (``jobs.speed``, see
:mod:`simulator.models.speed`), that has room for it now, but never on a type slower than
``min_relative_speed`` times its fastest usable type (it waits for a better GPU instead; the
default 0 takes any type it can use, so no GPU idles while a job that fits waits).
Fairness guard: once the earliest queued job has waited ``starvation_timeout`` seconds, jobs
behind it may not start until it has (it then takes any usable type). Nothing is preempted.
A CPU-only job, or a gang larger than any single usable type, is placed by the job's own
GPU-type constraint (a gang across types runs at the slowest type's speed).

Without GPU-type speeds every type has speed 1 and this is FIFO with backfilling into any
free GPUs, guarded against starving the head.

Cost per pass: ``O(min(Q, lookahead) * K)`` placement searches for ``Q`` queued jobs and ``K``
GPU types (each search is the engine's indexed placement), and the pass stops early once no
GPU is free, so it scales to large traces.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from policies.base import Decision, Policy, Start

__all__ = ["HeteroGreedy"]


class HeteroGreedy(Policy):
    """Fastest-type-first greedy placement with a starvation guard.

    Args:
        min_relative_speed: a job never takes a type slower than this times its fastest usable
            type (0 = any type it can use).
        starvation_timeout: seconds after which the head of the queue blocks later jobs
            (None = never).
        lookahead: queued jobs considered per pass, in arrival order.
        scoring: node scoring of the placer within a type (``bestfit``, ``spread``, ``firstfit``).
    """

    name = "hetero_greedy"

    def __init__(
        self,
        min_relative_speed: float = 0.0,
        starvation_timeout: float | None = 3600.0,
        lookahead: int = 256,
        scoring: str = "bestfit",
    ) -> None:
        if not 0.0 <= float(min_relative_speed) <= 1.0:
            raise ValueError(f"min_relative_speed must be in [0, 1], got {min_relative_speed!r}")
        if starvation_timeout is not None and not float(starvation_timeout) >= 0:
            raise ValueError(f"starvation_timeout must be >= 0 s, got {starvation_timeout!r}")
        if int(lookahead) < 1:
            raise ValueError(f"lookahead must be >= 1, got {lookahead!r}")
        self.min_relative_speed = float(min_relative_speed)
        self.starvation_timeout = None if starvation_timeout is None else float(starvation_timeout)
        self.lookahead = int(lookahead)
        self.scoring = scoring

    def setup(self, view) -> None:
        """Per job, its usable GPU types fastest first (computed once)."""
        self.placer = view.placer(self.scoring)
        k = len(view.cluster.models)
        jobs = view.jobs
        speed = np.array(jobs.speed) if jobs.speed.shape[1] else np.ones((jobs.n, k))
        mask = np.asarray(jobs.type_mask)
        for m in range(k):
            bad = (mask != 0) & ((mask < 0) | ((mask >> m) & 1 == 0))
            speed[bad, m] = 0.0
        self._speed = speed
        self._order = np.argsort(-speed, axis=1, kind="stable")
        cap = np.asarray(view.cluster.capacity, dtype=np.int64)
        model = np.asarray(view.cluster.node_model)
        per_type = np.array([cap[model == m].sum() for m in range(k)], dtype=np.int64)
        # the most GPUs one usable type has, per job (a larger gang must span types)
        self._largest = np.where(speed > 0, per_type[None, :], 0).max(axis=1, initial=0)
        self._dirty = True

    def _types(self, j: int, relax: bool) -> list[int]:
        sp = self._speed[j]
        best = sp[self._order[j, 0]] if sp.shape[0] else 0.0
        floor = 0.0 if relax else self.min_relative_speed * best
        return [int(m) for m in self._order[j] if sp[m] > 0 and sp[m] >= floor]

    def schedule(self, view) -> Iterator[Decision]:
        """Start queued jobs on their fastest type with room, the head first when starving."""
        if len(view.queue) == 0:
            return
        jobs, now, cl = view.jobs, view.now, view.cluster
        queued = view.queue.jobs()[: self.lookahead]
        head = queued[0]
        starving = (
            self.starvation_timeout is not None
            and now - float(jobs.submit[head]) >= self.starvation_timeout
        )
        for n, j in enumerate(queued):
            if cl.free_gpu_total == 0 and jobs.num_gpus[j] > 0 and jobs.milli[j] >= 1000:
                continue  # needs whole GPUs and none is free (a GPU share or CPU job may fit)
            relax = starving and n == 0
            p = self._place(jobs, j, relax)
            if p is not None:
                yield Start(j, p)
            elif relax:
                return  # the starving head could not start: nobody overtakes it

    def _place(self, jobs, j: int, relax: bool):
        for m in self._types(j, relax):
            p = self.placer.place(jobs, j, 1 << m)
            if p is not None:
                return p
        if jobs.num_gpus[j] == 0 or jobs.num_gpus[j] > self._largest[j]:
            return self.placer.place(jobs, j)  # CPU-only, or a gang no single type holds
        return None
