"""The job table: static demand from the trace and dynamic state, one NumPy column each.

Jobs are indexed ``0..n-1`` in arrival order (the trace sorted stably by ``submit_time``); that
index is what policies and the engine pass around. ``job_ids`` maps it back to the trace's ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.core.cluster import MILLI, ClusterState
from traces.canonical import MAX_PRIORITY

MAX_END_SECONDS = float(2**53)
"""A job's finite ``submit_time + duration`` must stay below this (float64 seconds still hold
whole seconds). Trace loaders enforce the stricter ``traces.canonical.MAX_SECONDS`` (2**32 s,
1 us resolution); this bound is for frames handed to the engine directly, where a very long
duration is a way to say "never ends within the horizon"."""

__all__ = ["JobTable", "Status", "TERMINAL", "STATUS_NAMES"]


class Status:
    """Job status codes stored in :attr:`JobTable.status`."""

    FUTURE = 0
    """Not arrived yet."""
    QUEUED = 1
    RUNNING = 2
    FINISHED = 3
    UNSCHEDULABLE = 4
    """Can never be placed on this cluster, even when it is empty."""
    FAILED = 5
    UNFINISHED = 6
    """Still queued or running when the simulation stopped (horizon reached)."""
    REJECTED = 7
    """Turned away by the policy (e.g. a pod that fits nowhere on arrival)."""
    DORMANT = 8
    """A row with ``submit_time = inf`` that no controller ever submitted (a spare replica)."""


STATUS_NAMES = {
    Status.FUTURE: "future",
    Status.QUEUED: "queued",
    Status.RUNNING: "running",
    Status.FINISHED: "finished",
    Status.UNSCHEDULABLE: "unschedulable",
    Status.FAILED: "failed",
    Status.UNFINISHED: "unfinished",
    Status.REJECTED: "rejected",
    Status.DORMANT: "dormant",
}
TERMINAL = (
    Status.FINISHED,
    Status.UNSCHEDULABLE,
    Status.FAILED,
    Status.UNFINISHED,
    Status.REJECTED,
    Status.DORMANT,
)


class JobTable:
    """Columns of all jobs of one simulation.

    Static columns (from the trace): ``submit``, ``duration`` (s), ``num_gpus``, ``milli``
    (milli-GPU per GPU), ``type_mask`` (allowed GPU model bits, 0 = any, -1 = no such model),
    ``cpus``, ``mem`` (GB), ``pods`` (0 = no pod shape; else ``num_gpus``, ``cpus`` and ``mem``
    split evenly over that many pods, each on one node), ``priority``, ``queue`` (id into
    ``queue_names``), ``kind`` (id into ``kind_names``) and ``demand_class`` (jobs with
    identical demand share a class id).

    Dynamic columns (engine-owned): ``status``, ``start`` (first start), ``end``, ``work``
    (seconds of full-speed progress done), ``rate`` (progress per second while running),
    ``last_update``, ``version`` (bumped when a pending completion is cancelled), ``run_start``,
    ``gpu_seconds`` (allocated GPU-seconds), ``preemptions`` and ``migrations``.

    GPU-type speeds (``speed_model`` given, see :mod:`simulator.models.speed`): ``speed``
    (``[n, len(cluster.models)]``, the job's speed on each GPU model of the cluster relative
    to the reference type; 0 = cannot run there, so that model is taken out of the job's
    ``type_mask``), ``tspeed`` (speed of the current or last placement) and ``type_seconds``
    (``[n, models]`` allocated GPU-seconds on each model). Without a model, ``speed`` and
    ``type_seconds`` have no columns and every rate stays the fabric's alone.
    """

    def __init__(
        self, frame: pd.DataFrame, cluster: ClusterState, speed_model: object | None = None
    ) -> None:
        submit = frame["submit_time"].to_numpy()
        if len(submit) > 1 and not (submit[1:] >= submit[:-1]).all():
            frame = frame.iloc[np.argsort(submit, kind="stable")]
        f = frame.reset_index(drop=True)
        self.frame = f
        """The trace rows in arrival order (extra columns are passed through to results)."""
        self.n = n = len(f)
        self.job_ids = f["job_id"].to_numpy()
        self.submit = f["submit_time"].to_numpy(np.float64).copy()
        self.duration = f["duration"].to_numpy(np.float64).copy()
        _check_times(self.job_ids, self.submit, self.duration)
        self.num_gpus = f["num_gpus"].to_numpy(np.int64).copy()
        self.milli = _col(f, "gpu_milli", MILLI).astype(np.int32)
        self.milli[self.num_gpus == 0] = 0
        shared = (self.milli < MILLI) & (self.num_gpus > 1)
        if shared.any():  # traces.canonical rejects these rows too; a frame built by hand may not
            k = int(np.flatnonzero(shared)[0])
            raise ValueError(
                f"job {_plain(self.job_ids[k])!r}: a GPU share below {MILLI} milli-GPU "
                f"(gpu_milli={self.milli[k]}) needs num_gpus == 1, got {self.num_gpus[k]}"
            )
        self.pods = _pods(self.job_ids, self.num_gpus, self.milli, _col(f, "pods", 0))
        self.cpus = _col(f, "num_cpus", 0.0).astype(np.float64)
        self.mem = _col(f, "memory_gb", 0.0).astype(np.float64)
        self.priority = _priorities(self.job_ids, _col(f, "priority", 0))
        self.queue_names, self.queue = _codes(f, "queue", "default")
        self.kind_names, self.kind = _codes(f, "kind", "train")
        types = f["gpu_type"].fillna("").astype(str) if "gpu_type" in f else pd.Series([""] * n)
        inv, uniq = pd.factorize(types)
        masks = np.array([cluster.type_mask(str(t)) for t in uniq], dtype=np.int64)
        self.type_mask = masks[inv] if n else np.zeros(0, dtype=np.int64)
        nm = len(cluster.models) if speed_model is not None else 0
        self.speed = np.zeros((n, nm))
        self.tspeed = np.ones(n)
        self.type_seconds = np.zeros((n, nm))
        if speed_model is not None:
            self.speed[:] = speed_model.matrix(f, cluster.models)
            self.type_mask = _runnable_mask(self.type_mask, self.speed)
        # class ids in order of first appearance: a mixed-radix key of per-column codes
        key = np.zeros(n, dtype=np.int64)
        for col in (self.num_gpus, self.milli, self.type_mask, self.cpus, self.mem, self.pods):
            codes, uniq = pd.factorize(col)
            key = key * len(uniq) + codes
            key = pd.factorize(key)[0]  # back to 0..k-1, so the product cannot overflow
        self.demand_class = key.astype(np.int32)
        self.num_classes = int(self.demand_class.max()) + 1 if n else 0
        self.class_of: list[int] = self.demand_class.tolist()
        """Demand class of each job, as a Python list (fast scalar access in hot paths)."""
        first = np.unique(self.demand_class, return_index=True)[1] if n else np.zeros(0, int)
        self.demands: list[tuple[int, int, int, float, float]] = [
            (
                int(self.num_gpus[k]),
                int(self.milli[k]),
                int(self.type_mask[k]),
                float(self.cpus[k]),
                float(self.mem[k]),
            )
            for k in first
        ]
        """Per class: ``(num_gpus, milli, type_mask, cpus, mem)`` as Python scalars."""
        self.class_pods: list[int] = [int(self.pods[k]) for k in first]
        """Per class: pods of the demand (0 = no pod shape, placed as a whole job)."""
        self.gpu_share = self.num_gpus * self.milli / MILLI
        """GPUs held while running (fractional for shared GPUs)."""

        self.status = np.zeros(n, dtype=np.int8)
        self.start = np.full(n, np.nan)
        self.end = np.full(n, np.nan)
        self.work = np.zeros(n)
        self.kept = np.zeros(n)
        """Work (s) saved by the last checkpoint; a preempted or killed job resumes from it."""
        self.rate = np.ones(n)
        self.last_update = np.zeros(n)
        self.version = np.zeros(n, dtype=np.int64)
        self.run_start = np.full(n, np.nan)
        self.gpu_seconds = np.zeros(n)
        self.preemptions = np.zeros(n, dtype=np.int32)
        self.migrations = np.zeros(n, dtype=np.int32)
        self.restarts = np.zeros(n, dtype=np.int32)
        """Times the job was killed by a node failure and restarted."""
        self.run_seconds = np.zeros(n)
        """Wall seconds the job held resources (all runs, including work later lost)."""
        self.lost = np.zeros(n)
        """Seconds of work lost to preemptions, failures and migrations (redone later)."""
        self.placements: object = [None] * n
        """Current :class:`~simulator.core.placement.Placement` of each running job (else None);
        a read-only sequence once the job table belongs to a simulation."""
        self.nodes_used: object = [None] * n
        """Node ids (int64 array) of each job's last placement; None if it never ran."""

    def node_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """Every job's last nodes, flat: (node count per job, node ids concatenated in order)."""
        lists = getattr(self.nodes_used, "flat", None)
        if lists is not None:
            return lists()
        used = self.nodes_used
        parts = [u for u in used if u is not None]
        lengths = np.array([0 if u is None else len(u) for u in used], dtype=np.int64)
        values = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return lengths, values

    def remaining(self, j: int, now: float) -> float:
        """Seconds of full-speed work job ``j`` still needs at time ``now``."""
        done = self.work[j]
        if self.status[j] == Status.RUNNING:
            done += (now - self.last_update[j]) * self.rate[j]
        return float(self.duration[j] - done)


def _runnable_mask(mask: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """``mask`` without the GPU models a job cannot run on (speed 0); -1 if none is left."""
    nm = speed.shape[1]
    every = (1 << nm) - 1
    zero = (speed <= 0.0).astype(np.int64) @ (1 << np.arange(nm, dtype=np.int64))
    allowed = np.where(mask == 0, every, np.where(mask < 0, 0, mask)) & ~zero
    out = np.where(allowed == 0, -1, allowed)
    # a job that may run on every model keeps mask 0 (no constraint), as without a model
    return np.where((mask == 0) & (zero == 0), 0, out).astype(np.int64)


def _check_times(ids: np.ndarray, submit: np.ndarray, duration: np.ndarray) -> None:
    """Finite times must end below :data:`MAX_END_SECONDS` (float64 resolution).

    For frames built by hand (trace loaders check a stricter bound); infinite times mark
    dormant rows (service replicas).
    """
    finite = np.isfinite(submit) & np.isfinite(duration)
    with np.errstate(invalid="ignore"):
        bad = finite & ~((submit + duration < MAX_END_SECONDS) & (submit > -MAX_END_SECONDS))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"job {_plain(ids[k])!r}: submit_time={float(submit[k])!r}, "
            f"duration={float(duration[k])!r}: expected submit_time + duration below 2**53 s "
            "(where float64 seconds still hold whole seconds)"
        )


def _pods(ids: np.ndarray, gpus: np.ndarray, milli: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``pods`` as int64: 0 or more, dividing ``num_gpus``; a shared GPU is one pod.

    (:mod:`traces.canonical` checks the same; a frame built by hand may not.)
    """
    vals = np.asarray(raw, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        pods = np.where(np.isfinite(vals), vals, -1.0)
    per = np.where(pods > 0, gpus / np.where(pods > 0, pods, 1), 0)
    bad = (pods < 0) | (pods != np.round(pods)) | (per != np.round(per))
    bad |= (pods > 1) & (milli < MILLI) & (gpus > 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"job {_plain(ids[k])!r}: pods={_plain(raw[k])!r} must be a whole number >= 0 "
            f"that divides num_gpus={int(gpus[k])} (a shared GPU is a single pod)"
        )
    return pods.astype(np.int64)


def _priorities(ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``priority`` as int64; a value that int64 (or float64, exactly) cannot hold is an error."""
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    vals = np.asarray(raw, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(vals) < MAX_PRIORITY) | (vals != np.round(vals))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"job {_plain(ids[k])!r}: priority {_plain(raw[k])!r} is not a whole number of "
            "magnitude below 2**53"
        )
    return vals.astype(np.int64)


def _plain(value: object) -> object:
    """A NumPy scalar as the Python value (messages show ``0``, not ``np.int64(0)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _col(f: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name in f.columns:
        return f[name].fillna(default).to_numpy()
    return np.full(len(f), default)


def _codes(f: pd.DataFrame, name: str, default: str) -> tuple[list[str], np.ndarray]:
    if name in f.columns:
        col = f[name].fillna(default).astype(str)
    else:
        col = pd.Series([default] * len(f))
    codes, uniques = pd.factorize(col, sort=True)
    return [str(u) for u in uniques], codes.astype(np.int32)
