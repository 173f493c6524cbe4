"""Turn a finished :class:`~simulator.core.engine.Simulation` into tables and summary numbers.

Definitions (all times in seconds):

* ``wait_time = start_time - submit_time`` (first start), ``jct = end_time - submit_time``;
* ``makespan`` = last end time minus first submit time over finished jobs;
* ``span`` = the makespan, or for a run cut with jobs unfinished (``sim.until``, an
  interrupt) the time from the first submission to the cut, if that is longer: GPU-seconds
  of running jobs are counted up to the cut;
* ``gpu_utilization`` = allocated GPU-seconds / (cluster GPUs x span), fractional GPU
  shares counted by their milli-GPU (at most 1);
* percentiles use linear interpolation (NumPy's default).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa

from simulator.core.engine import Simulation
from simulator.core.jobs import STATUS_NAMES, Status
from traces.canonical import OUTPUT_COLUMNS, rename_output_columns

__all__ = [
    "job_frame",
    "timeline_frame",
    "queue_timeline_frame",
    "queue_summary",
    "kind_summary",
    "summary",
]


def _nodes_column(sim: Simulation) -> pa.Array:
    """List column of node ids per job (empty list for jobs that never ran)."""
    lengths, values = sim.jobs.node_lists()
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = values.astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def job_frame(sim: Simulation) -> pd.DataFrame:
    """One row per trace job: the trace columns plus the simulated outcome.

    Added columns: ``start_time``, ``end_time``, ``wait_time``, ``jct``, ``status``,
    ``nodes`` (node ids of the last placement), ``num_nodes``, ``gpu_seconds`` (allocated
    GPU-seconds), ``preemptions``, ``lost_seconds`` (work lost to preemption, s),
    ``pending_reason`` (the last reason the policy gave for its wait, ``""`` if none; for an
    ``unschedulable`` job, why it can never be placed on the cluster). A dormant
    row (``submit_time = inf``, e.g. an inference replica) that a controller submitted gets
    the time of submission as its ``submit_time``; one never submitted keeps ``inf``.

    The trace's columns keep the types they came with; ``jobs.parquet`` is this frame (with
    the extensions' columns) in the fixed layout of
    :func:`simulator.output.schema.conform_jobs` (``job_id`` as text, categoricals, canonical
    defaults filled).
    """
    jobs = sim.jobs
    # with copy-on-write (always on from pandas 3) a shallow copy is safe: an edit of the
    # returned frame copies that column first; without it, copy every trace column
    cow = int(pd.__version__.split(".")[0]) >= 3 or pd.options.mode.copy_on_write is True
    f = jobs.frame.copy(deep=not cow)
    clash = [c for c in OUTPUT_COLUMNS if c in f.columns]
    if clash:  # a frame that did not come through a trace loader (those rename them)
        warnings.warn(
            f"trace columns {clash} are named like result columns: kept as trace_NAME",
            stacklevel=2,
        )
        f = rename_output_columns(f, {})
    ran = ~np.isnan(jobs.start)
    if "submit_time" in f and np.isinf(jobs.submit).sum() < np.isinf(f["submit_time"]).sum():
        f["submit_time"] = jobs.submit  # dormant rows (replicas): the time a controller submitted
    f["start_time"] = jobs.start
    f["end_time"] = jobs.end
    f["wait_time"] = jobs.start - jobs.submit
    f["jct"] = jobs.end - jobs.submit
    names = np.array([STATUS_NAMES[s] for s in range(len(STATUS_NAMES))], dtype=object)
    f["status"] = names[jobs.status]
    nodes = _nodes_column(sim)
    f["nodes"] = pd.Series(pd.arrays.ArrowExtensionArray(nodes), index=f.index)
    f["num_nodes"] = np.diff(np.asarray(nodes.offsets)) * ran
    f["gpu_seconds"] = jobs.gpu_seconds
    f["preemptions"] = jobs.preemptions
    f["migrations"] = jobs.migrations
    f["restarts"] = jobs.restarts
    f["slowdown"] = _slowdown(sim)
    f["lost_seconds"] = sim.lost_seconds
    reasons = sim.pending.last_reasons()
    for j, why in sim.unschedulable_why().items():
        reasons[j] = why  # why it can never run here, e.g. "no node can hold one pod (...)"
    f["pending_reason"] = reasons
    ts = jobs.type_seconds
    for k, model in enumerate(sim.state.models if ts.shape[1] else ()):
        f[f"gpu_seconds_{model}"] = ts[:, k]  # GPU-type speeds on: GPU-seconds per model
    return f


def gpu_type_utilization(sim: Simulation, span: float) -> dict[str, float | None]:
    """Allocated GPU-seconds on each GPU model over its GPUs x ``span`` (GPU-type speeds on)."""
    spec, out = sim.spec, {}
    for k, model in enumerate(sim.state.models):
        gpus = float(sum(g for g, m in zip(spec.gpus, spec.gpu_models, strict=True) if m == model))
        cap = gpus * span
        out[model] = float(sim.jobs.type_seconds[:, k].sum() / cap) if cap > 0 else None
    return out


def _slowdown(sim: Simulation) -> np.ndarray:
    """Seconds a finished job held resources over its ideal ``duration`` (NaN otherwise).

    1.0 for a job that ran once at full speed; above 1 when a slower placement, contention,
    preemption or failure stretched it.
    """
    jobs = sim.jobs
    out = np.full(jobs.n, np.nan)
    fin = jobs.status == Status.FINISHED
    with np.errstate(divide="ignore", invalid="ignore"):
        out[fin] = jobs.run_seconds[fin] / jobs.duration[fin]
    return out


def timeline_frame(sim: Simulation) -> pd.DataFrame:
    """Cluster state after each scheduling pass (or each ``timeline_interval``).

    Columns: ``time`` (s), ``allocated_gpus`` (GPUs, fractional shares summed),
    ``queue_length`` (jobs), ``running_jobs``.
    """
    t, alloc, queued, running = sim.timeline_rows()
    return pd.DataFrame(
        {"time": t, "allocated_gpus": alloc, "queue_length": queued, "running_jobs": running}
    )


def queue_timeline_frame(sim: Simulation) -> pd.DataFrame:
    """Per-queue state over time (long format), recorded when a trace has 2..64 queues.

    Columns: ``time`` (s), ``queue``, ``allocated_gpus`` (GPUs held by the queue's running
    jobs), ``queued_jobs``.
    """
    rows = sim.queue_timeline_rows()
    names = sim.jobs.queue_names
    if rows is None:
        return pd.DataFrame(
            {
                "time": pd.Series(dtype=float),
                "queue": pd.Series(dtype=str),
                "allocated_gpus": pd.Series(dtype=float),
                "queued_jobs": pd.Series(dtype=np.int64),
            }
        )
    times, alloc, queued = rows
    return pd.DataFrame(
        {
            "time": np.repeat(times, len(names)),
            "queue": np.tile(np.array(names, dtype=object), len(times)),
            "allocated_gpus": alloc.reshape(-1),
            "queued_jobs": queued.reshape(-1),
        }
    )


def kind_summary(sim: Simulation) -> dict:
    """Per job kind (``train``, ``infer``...): jobs, finished, average and p99 JCT and wait.

    Inference replicas live for hours; this keeps them apart from training jobs' JCT.
    """
    jobs = sim.jobs
    fin = jobs.status == Status.FINISHED
    out = {}
    for k, name in enumerate(jobs.kind_names):
        done = (jobs.kind == k) & fin
        jct, wait = (jobs.end - jobs.submit)[done], (jobs.start - jobs.submit)[done]
        out[name] = {
            "jobs": int((jobs.kind == k).sum()),
            "finished": int(done.sum()),
            "avg_jct": _stat(jct, "mean"),
            "p99_jct": _stat(jct, "pct", 99),
            "avg_wait": _stat(wait, "mean"),
            "p99_wait": _stat(wait, "pct", 99),
        }
    return out


def queue_summary(sim: Simulation) -> dict:
    """Per-queue headline numbers.

    ``jobs``, ``finished``, ``avg_jct``, ``avg_wait`` and ``p95_wait`` (over its finished
    jobs), ``gpu_seconds`` (allocated), ``gpu_share`` (its GPU-seconds over the cluster's
    GPU-seconds in the run's span), ``preemptions`` and ``lost_gpu_seconds`` of its jobs.
    """
    jobs = sim.jobs
    out = {}
    fin = jobs.status == Status.FINISHED
    makespan = float(jobs.end[fin].max() - jobs.submit.min()) if fin.any() else 0.0
    cut = bool(np.isin(jobs.status, (Status.UNFINISHED,)).any())
    cap = sim.state.total_gpus * _span(sim, makespan, cut)
    lost = sim.lost_seconds * jobs.gpu_share
    for q, name in enumerate(jobs.queue_names):
        mine = jobs.queue == q
        done = mine & fin
        wait = (jobs.start - jobs.submit)[done]
        gpu_seconds = float(jobs.gpu_seconds[mine].sum())
        out[name] = {
            "jobs": int(mine.sum()),
            "finished": int(done.sum()),
            "avg_jct": _stat((jobs.end - jobs.submit)[done], "mean"),
            "avg_wait": _stat(wait, "mean"),
            "p95_wait": _stat(wait, "pct", 95),
            "gpu_seconds": gpu_seconds,
            "gpu_share": gpu_seconds / cap if cap > 0 else None,
            "preemptions": int(jobs.preemptions[mine].sum()),
            "lost_gpu_seconds": float(lost[mine].sum()),
        }
    return out


def _goodput(sim: Simulation) -> float | None:
    """Useful GPU-seconds (finished jobs' ideal work) over allocated GPU-seconds."""
    jobs = sim.jobs
    allocated = float(jobs.gpu_seconds.sum())
    if allocated <= 0:
        return None
    fin = jobs.status == Status.FINISHED
    return float((jobs.duration[fin] * jobs.gpu_share[fin]).sum() / allocated)


def _stat(values: np.ndarray, fn: str, q: float = 0.0) -> float | None:
    if values.size == 0:
        return None
    if fn == "mean":
        return float(values.mean())
    return float(np.percentile(values, q))


def _span(sim: Simulation, makespan: float, cut: bool) -> float:
    """Seconds the GPU-seconds of the run are counted over (see the module docstring).

    A run that ends with every job done spans its makespan. A run cut with jobs unfinished
    (``sim.until``, an interrupt) counts the GPU-seconds of its running jobs up to the cut, so
    it spans from the first submission to the cut (or to the last completion, if later).
    """
    if not cut or sim.jobs.n == 0:
        return makespan
    first = float(np.min(sim.jobs.submit[np.isfinite(sim.jobs.submit)], initial=np.inf))
    if not np.isfinite(first):
        return makespan
    return max(makespan, float(sim.now) - first)


def summary(sim: Simulation) -> dict:
    """Headline numbers of a run (JSON-serialisable; None where undefined)."""
    jobs = sim.jobs
    fin = jobs.status == Status.FINISHED
    jct = (jobs.end - jobs.submit)[fin]
    wait = (jobs.start - jobs.submit)[fin]
    if fin.any():
        makespan = float(jobs.end[fin].max() - jobs.submit.min())
    else:
        makespan = 0.0
    count = {name: int((jobs.status == code).sum()) for code, name in STATUS_NAMES.items()}
    span = _span(sim, makespan, cut=count["unfinished"] > 0)
    cap = sim.state.total_gpus * span
    util = float(jobs.gpu_seconds.sum() / cap) if cap > 0 else None
    out = {
        "jobs_total": int(jobs.n),
        "jobs_finished": count["finished"],
        "jobs_unschedulable": count["unschedulable"],
        "jobs_failed": count["failed"],
        "jobs_unfinished": count["unfinished"],
        "jobs_rejected": count["rejected"],
        "jobs_dormant": count["dormant"],
        "avg_jct": _stat(jct, "mean"),
        "p50_jct": _stat(jct, "pct", 50),
        "p95_jct": _stat(jct, "pct", 95),
        "p99_jct": _stat(jct, "pct", 99),
        "avg_wait": _stat(wait, "mean"),
        "p50_wait": _stat(wait, "pct", 50),
        "p99_wait": _stat(wait, "pct", 99),
        "makespan": makespan,
        "span": span,
        "gpu_utilization": util,
        "gpus_allocated_at_end": (
            sim.gpus_held_at_end / sim.state.total_gpus if sim.state.total_gpus else None
        ),
        "goodput": _goodput(sim),
        "restarts": int(jobs.restarts.sum()),
        "node_failures": int(sim.node_failures),
        "mean_slowdown": _stat(_slowdown(sim)[fin], "mean"),
        "p99_slowdown": _stat(_slowdown(sim)[fin], "pct", 99),
        "partial": bool(sim.interrupted),
        "preemptions": int(jobs.preemptions.sum()),
        "migrations": int(jobs.migrations.sum()),
        "lost_gpu_seconds": float((sim.lost_seconds * jobs.gpu_share).sum()),
        "cluster_nodes": int(sim.spec.num_nodes),
        "cluster_gpus": int(sim.state.total_gpus),
        "scheduling_passes": int(sim.passes),
        "seed": int(sim.seed),
        "wall_seconds": float(sim.wall_seconds),
        "engine": sim.engine,
    }
    if jobs.type_seconds.shape[1]:  # GPU-type speeds on
        out["gpu_type_utilization"] = gpu_type_utilization(sim, span)
    return out
