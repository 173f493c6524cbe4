"""Topology-aware gang scheduling: each gang in the smallest network domain that holds it.

Domains, smallest first: a node (``node``), a leaf switch = the cluster's rack (``leaf``), the
whole cluster across the spine (``spine``). The queue is walked exactly as by
:class:`~policies.gang.GangPolicy` (arrival order, skipping, starvation guard); only placement
differs. A job's *level* is the largest domain it may use:

* ``topology_required`` (trace column, hard; Kueue TAS ``podset-required-topology``, Volcano
  ``highestTierAllowed`` with ``mode: hard``): the job only starts inside one domain of that
  level or smaller, and waits otherwise.
* ``topology_preferred`` (soft; Kueue ``podset-preferred-topology``, Volcano ``mode: soft``):
  the job starts inside a domain of that level if one has room; if only a larger domain has
  room, it waits for at most ``max_wait`` seconds (counted from the first pass that could
  have started it spread), then starts spread.
* A job without either column gets ``default_mode`` at the smallest level that can hold it on
  the empty cluster.

Levels are ``node``/``leaf`` (alias ``rack``)/``spine`` (alias ``cluster``) or the tier numbers
0/1/2 (Volcano numbers hyperNode tiers from 1 = the leaf). A job whose required level can
never hold it is rejected (reason ``topology``).

Inside a level: a node is chosen best-fit (as by gang); a leaf is the rack that holds the gang
on the fewest nodes, tightest (lowest rack id on ties); across the spine the gang takes the
fewest nodes, tightest, as gang does (the GPUs a ring has on its thinnest node bound its
network bandwidth), or, when it takes only whole nodes, the fewest racks (racks with most free
GPUs first). With ``whole_nodes`` a gang larger than a node first looks for entirely free nodes
(at its preferred level); after ``max_wait`` it takes whole nodes across the spine before
partly used ones inside a leaf.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from policies.base import Reject, Start, overrides
from policies.gang import GangPolicy
from policies.topology_pass import TopologyPass, new_topology_pass
from simulator.core import kernels
from simulator.core.cluster import MILLI
from simulator.core.jobs import Status
from simulator.core.placement import Placement
from simulator.core.view import SchedulerView

__all__ = ["TopologyPolicy", "LEVELS", "parse_level"]

NODE, LEAF, SPINE = 0, 1, 2
LEVELS = {"node": NODE, "leaf": LEAF, "rack": LEAF, "spine": SPINE, "cluster": SPINE}
"""Level names accepted in the constraint columns (tier numbers 0/1/2 too)."""
_MODES = ("preferred", "required")


def parse_level(value: object, column: str = "level") -> int:
    """Level number of a column value; -1 for empty/missing.

    Raises:
        ValueError: an unknown name or number (the message names the column).
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return -1
    text = str(value).strip().lower()
    if text in ("", "nan", "none"):
        return -1
    if text in LEVELS:
        return LEVELS[text]
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if number in (0.0, 1.0, 2.0):
        return int(number)
    raise ValueError(
        f"column {column}: unknown topology level {value!r}; use one of {sorted(LEVELS)} or 0/1/2"
    )


# Rack choice is orchestrated in Python around the compiled ``kernels._candidate`` (one call
# per rack, only for multi-node gangs). A jitted caller in this module would embed its own copy
# of ``_candidate`` in Numba's on-disk cache, which is not invalidated when kernels.py changes.


def _rack_free(usable: np.ndarray, racks: np.ndarray, n_racks: int) -> np.ndarray:
    return np.bincount(racks, weights=usable, minlength=n_racks).astype(np.int64)


def _best_rack(usable, racks, rack_order, rack_start, n: int, counts: np.ndarray) -> int:
    """Fill ``counts`` for the rack that holds ``n`` GPUs on the fewest nodes, tightest.

    Ties go to the lower rack id. Returns the rack, or -1 when no rack can hold ``n``.
    """
    best, best_key = -1, None
    dummy = np.zeros(0, dtype=np.int64)
    for r, total in enumerate(_rack_free(usable, racks, len(rack_start) - 1).tolist()):
        if total < n:
            continue
        members = rack_order[rack_start[r] : rack_start[r + 1]]
        k, left = kernels._candidate(usable, members, n, dummy, False)
        if k > 0 and (best_key is None or (k, left) < best_key):
            best, best_key = r, (k, left)
    if best >= 0:
        members = rack_order[rack_start[best] : rack_start[best + 1]]
        kernels._candidate(usable, members, n, counts, True)
    return best


def _fewest_racks(usable, racks, rack_order, rack_start, n: int, counts: np.ndarray) -> int:
    """Fill ``counts`` for ``n`` GPUs on the fewest racks, then the fewest nodes in them.

    Racks are taken by free GPUs, most first (ties: lower id), until they hold ``n``; within
    them the fewest-node tightest choice applies. Returns racks used (0 if infeasible).
    """
    free = _rack_free(usable, racks, len(rack_start) - 1)
    order = np.argsort(-free, kind="stable")
    used = int(np.searchsorted(np.cumsum(free[order]), n) + 1)
    if used > len(order):
        return 0
    members = np.sort(
        np.concatenate([rack_order[rack_start[r] : rack_start[r + 1]] for r in order[:used]])
    )
    kernels._candidate(usable, members, n, counts, True)
    return used


class _DomainPlacer:
    """Placer with the :class:`~simulator.core.placement.Placer` interface used by the gang loop.

    ``place`` returns None both when nothing fits and when the job should wait for a smaller
    domain; waiting jobs get a wake-up at the end of their ``max_wait``.
    """

    def __init__(self, policy: TopologyPolicy, view: SchedulerView, base) -> None:
        self.policy = policy
        self.view = view
        self.base = base
        self.cluster = view.cluster
        self._caps: dict[int, tuple[int, int]] = {}

    def _capacity(self, mask: int) -> tuple[int, int]:
        """Largest node and rack capacity (GPUs) among nodes of the allowed GPU models."""
        caps = self._caps.get(mask)
        if caps is None:
            c = self.cluster
            ok = np.array([kernels._type_ok(int(m), mask) for m in c.node_model])
            gpus = np.where(ok, c.capacity, 0).astype(np.int64)
            rack = np.bincount(c.racks, weights=gpus, minlength=len(c.rack_start) - 1)
            caps = self._caps[mask] = (int(gpus.max()), int(rack.max()))
        return caps

    def place(self, jobs, j: int) -> Placement | None:
        """Placement of job ``j`` in the smallest domain its constraints allow, or None."""
        n, milli = int(jobs.num_gpus[j]), int(jobs.milli[j])
        if n == 0 or milli < MILLI:
            return self.base.place(jobs, j)
        node_cap, rack_cap = self._capacity(int(jobs.type_mask[j]))
        lowest = NODE if n <= node_cap else LEAF if n <= rack_cap else SPINE
        pods = jobs.class_pods[jobs.class_of[j]]
        # pods of a job may share a node or not: only a job without pods must keep to one node
        one_node = n <= node_cap and pods <= 1
        required, preferred = self.policy.levels(j, lowest, one_node)
        if required < lowest:
            self.policy.impossible.append(j)
            return None
        target = max(lowest, min(preferred, required))
        whole = self.policy.whole_nodes and n > node_cap
        for level in range(lowest, target + 1):  # good enough to start now
            p = self._in_level(jobs, j, n, level, whole)
            if p is not None:
                return p
        # looser choices start only after the bounded wait; whole nodes further out first
        later = [(level, True) for level in range(target + 1, required + 1)] if whole else []
        later += [(level, False) for level in range(lowest if whole else target + 1, required + 1)]
        for level, whole_only in later:
            p = self._in_level(jobs, j, n, level, whole_only)
            if p is not None:
                return self.policy.after_wait(j, p, self.view)
        return None

    def _in_level(self, jobs, j: int, n: int, level: int, whole: bool) -> Placement | None:
        """A placement inside one domain of ``level`` (node, rack or cluster), or None.

        With ``whole``, only nodes with every GPU free are used.
        """
        if jobs.class_pods[jobs.class_of[j]] > 1:
            return self.base.place_pods_in(jobs, j, level, whole)
        if level == NODE:
            return self.base.place(jobs, j)
        c = self.cluster
        cpus, mem = float(jobs.cpus[j]), float(jobs.mem[j])
        usable = np.empty(c.free_full.shape[0], dtype=np.int64)
        kernels._usable_gpus(
            c.free_full,
            c.cpu_free,
            c.mem_free,
            c.node_model,
            c.node_up,
            cpus / n,
            mem / n,
            int(jobs.type_mask[j]),
            usable,
        )
        if whole:
            usable[c.free_full < c.capacity] = 0
        if usable.sum() < n:
            return None
        counts = np.zeros(usable.shape[0], dtype=np.int64)
        if level == LEAF:
            found = _best_rack(usable, c.racks, c.rack_order, c.rack_start, n, counts) >= 0
        elif whole:
            found = _fewest_racks(usable, c.racks, c.rack_order, c.rack_start, n, counts) > 0
        else:  # partly used nodes: the fewest nodes (gang's rule) keep the ring's nodes fullest
            counts = kernels._select_gang(usable, c.racks, c.rack_order, c.rack_start, n)
            found = bool(counts.any())
        if not found:
            return None
        nodes = np.flatnonzero(counts).astype(np.int64)
        gpus = np.empty(n, dtype=np.int64)
        at = 0
        for node in nodes:
            at += kernels._pick_full_gpus(c.gpu_free, node, counts[node], gpus, at)
        share = counts[nodes] / n
        return Placement(nodes, gpus, MILLI, cpus * share, mem * share)


class TopologyPolicy(GangPolicy):
    """Gang scheduling that places each gang in the smallest network domain that fits.

    Cost per pass: the gang walk's, with an ``O(nodes)`` domain placement per class head
    tried (usable GPUs per node, then a fewest-node choice per rack). Compiled pass:
    :mod:`policies.topology_pass`.

    Args:
        max_wait: seconds a soft-constrained job may wait for a compact domain once it could
            start spread (0 = never wait, None = wait forever: soft becomes hard).
        default_mode: ``preferred`` or ``required`` for jobs without constraint columns.
        allow_split: may jobs that fit one node ever span several (after ``max_wait``)?
        whole_nodes: gangs larger than a node prefer entirely free nodes (NCCL's ring runs at
            the NIC bandwidth of its thinnest node); partly used nodes only after ``max_wait``.
        starvation_timeout: as in :class:`~policies.gang.GangPolicy`.
        indexed: as in :class:`~policies.gang.GangPolicy`.
        required_column: trace column of hard levels.
        preferred_column: trace column of soft levels.
    """

    name = "topology"

    def __init__(
        self,
        max_wait: float | None = 600.0,
        default_mode: str = "preferred",
        allow_split: bool = False,
        whole_nodes: bool = False,
        starvation_timeout: float | None = 3600.0,
        indexed: bool = True,
        required_column: str = "topology_required",
        preferred_column: str = "topology_preferred",
    ) -> None:
        super().__init__("bestfit", False, indexed, starvation_timeout)
        if max_wait is not None and max_wait < 0:
            raise ValueError("max_wait must be >= 0 or None")
        if default_mode not in _MODES:
            raise ValueError(f"default_mode must be one of {_MODES}, got {default_mode!r}")
        self.max_wait = max_wait
        self.default_mode = default_mode
        self.split = allow_split
        self.whole_nodes = whole_nodes
        self.required_column = required_column
        self.preferred_column = preferred_column
        self.impossible: list[int] = []
        self.held_since: dict[int, float] = {}
        """Job -> time of the first pass at which it could have started spread but waited."""

    def setup(self, view: SchedulerView) -> None:
        """Build the placers and read the constraint columns."""
        super().setup(view)
        self.placer = _DomainPlacer(self, view, self.placer)
        frame = view.jobs.frame
        self._required = self._column(frame, self.required_column)
        self._preferred = self._column(frame, self.preferred_column)

    @staticmethod
    def _column(frame: pd.DataFrame, name: str) -> list[int]:
        if name not in frame.columns:
            return [-1] * len(frame)
        return [parse_level(v, name) for v in frame[name].tolist()]

    def levels(self, j: int, lowest: int, fits_node: bool) -> tuple[int, int]:
        """(required, preferred) level of job ``j`` whose smallest feasible level is ``lowest``."""
        required, preferred = self._required[j], self._preferred[j]
        if required < 0 and preferred < 0:
            if self.default_mode == "required":
                required = lowest
            preferred = lowest
        if required < 0:
            required = SPINE
        if preferred < 0:
            preferred = required
        if fits_node and not self.split:
            required = min(required, NODE)
        return required, preferred

    def after_wait(self, j: int, p: Placement, view: SchedulerView) -> Placement | None:
        """``p`` (a spread placement) if ``j`` has waited ``max_wait`` for a compact one."""
        if self.max_wait is None:
            return None
        now = view.now
        since = self.held_since.setdefault(j, now)
        if now - since >= self.max_wait:
            return p
        view.wake_at(since + self.max_wait)
        return None

    def compiled_pass(self, view: SchedulerView) -> TopologyPass | None:
        """The compiled pass (None if a subclass changes a rule)."""
        methods = ("schedule", "setup", "_starving", "levels", "after_wait")
        if overrides(self, TopologyPolicy, *methods) or type(self.placer) is not _DomainPlacer:
            return None
        if overrides(self.placer, _DomainPlacer, "place", "_in_level", "_capacity"):
            return None
        gang = self._gang_state(self.placer.base)
        jobs = view.jobs
        caps = [self.placer._capacity(int(mask)) for _, _, mask, _, _ in jobs.demands]
        held = np.full(jobs.n, np.nan)
        for j, t in self.held_since.items():
            held[j] = t
        return new_topology_pass(
            gang,
            node_cap=[c[0] for c in caps],
            rack_cap=[c[1] for c in caps],
            required=self._required,
            preferred=self._preferred,
            default_required=self.default_mode == "required",
            split=self.split,
            whole_nodes=self.whole_nodes,
            max_wait=self.max_wait,
            held=held,
            reason=view.reason_code("topology"),
            num_nodes=len(view.cluster.capacity),
        )

    def compiled_finish(self, state: TopologyPass) -> None:
        """Copy back the starvation clock and which jobs wait for a compact domain."""
        super().compiled_finish(state.walk)
        waiting = np.flatnonzero(~np.isnan(state.held))
        self.held_since = {int(j): float(state.held[j]) for j in waiting}

    def schedule(self, view: SchedulerView) -> Iterator[Start | Reject]:
        """The gang pass with topology-aware placement; then reject impossible constraints."""
        held = self.held_since
        for decision in super().schedule(view):
            if held:
                held.pop(decision.job, None)  # a requeued job waits afresh
            yield decision
        status = view.jobs.status
        while self.impossible:
            j = self.impossible.pop()
            if status[j] == Status.QUEUED:
                yield Reject(j, "topology")
