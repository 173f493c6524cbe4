"""Fairness metrics over result tables: Jain's index, per-queue share over time, Themis rho.

Pure functions over NumPy arrays and pandas DataFrames, for use on a run's results:

* ``queues.parquet`` (long format: ``time``, ``queue``, ``allocated_gpus``, ``queued_jobs``; a
  row holds from its time until the next time of the same queue) -> :func:`queue_shares`,
  :func:`time_average`, :func:`jain_over_time`;
* ``jobs.parquet`` -> :func:`finish_time_fairness`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "jain_index",
    "queue_shares",
    "time_average",
    "jain_over_time",
    "finish_time_fairness",
]


def jain_index(values: np.ndarray | pd.Series | list[float]) -> float:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)`` of non-negative values.

    1 when all values are equal, ``1/n`` when one value holds everything. An empty input or
    all zeros (nobody gets anything, equally) gives 1.

    Raises:
        ValueError: a value is negative or NaN.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(x).any() or (x < 0).any():
        raise ValueError("jain_index needs non-negative numbers")
    sq = float((x * x).sum())
    if x.size == 0 or sq == 0.0:
        return 1.0
    return float(x.sum() ** 2 / (x.size * sq))


def queue_shares(queues: pd.DataFrame, capacity: float | None = None) -> pd.DataFrame:
    """Each queue's share of the GPUs over time, one column per queue, indexed by time.

    Args:
        queues: long table with ``time``, ``queue`` and ``allocated_gpus`` (``queues.parquet``).
        capacity: divide by this many GPUs (the cluster's); None = by the GPUs allocated to all
            queues at that time (0 where nothing is allocated).

    Returns:
        Wide DataFrame of shares in [0, 1]; a value holds until the next time.
    """
    missing = {"time", "queue", "allocated_gpus"} - set(queues.columns)
    if missing:
        raise KeyError(f"queue table lacks columns {sorted(missing)}")
    wide = queues.pivot_table(
        index="time", columns="queue", values="allocated_gpus", aggfunc="last"
    ).sort_index()
    wide = wide.ffill().fillna(0.0)
    wide.columns.name = None
    if capacity is not None:
        if capacity <= 0:
            raise ValueError("capacity must be > 0 GPUs")
        return wide / float(capacity)
    total = wide.sum(axis=1)
    return wide.div(total.where(total > 0), axis=0).fillna(0.0)


def time_average(
    series: pd.DataFrame | pd.Series, start: float | None = None, end: float | None = None
) -> pd.Series | float:
    """Time-weighted mean of a step function sampled at its index (a value holds until the next).

    Args:
        series: values indexed by time (seconds, ascending), one column per quantity.
        start: average from this time (default: first index); the value in force at ``start``
            counts from there.
        end: average up to this time (default: last index, whose own value then has no weight).

    Returns:
        Per-column means (a float for a Series); NaN when the window is empty.
    """
    frame = series.to_frame() if isinstance(series, pd.Series) else series
    t = frame.index.to_numpy(dtype=np.float64)
    if t.size == 0:
        out = pd.Series(np.nan, index=frame.columns)
        return float(out.iloc[0]) if isinstance(series, pd.Series) else out
    lo = t[0] if start is None else float(start)
    hi = t[-1] if end is None else float(end)
    edges = np.clip(np.append(t, np.inf), lo, hi)
    weights = np.diff(edges)
    total = weights.sum()
    if total <= 0:
        out = pd.Series(np.nan, index=frame.columns)
    else:
        out = pd.Series(frame.to_numpy(dtype=np.float64).T @ weights / total, index=frame.columns)
    return float(out.iloc[0]) if isinstance(series, pd.Series) else out


def jain_over_time(shares: pd.DataFrame, weights: pd.Series | None = None) -> pd.Series:
    """Jain's index across queues at every time of a :func:`queue_shares` table.

    Args:
        shares: one column per queue.
        weights: optional entitlement per queue (e.g. quotas); shares are divided by it first,
            so a queue holding exactly its entitlement counts as fair.
    """
    x = shares if weights is None else shares / weights.reindex(shares.columns).to_numpy()
    return x.apply(jain_index, axis=1)


def finish_time_fairness(jobs: pd.DataFrame, cluster_gpus: float) -> pd.Series:
    """Themis finish-time fairness ``rho = T_shared / T_independent`` of every finished job.

    ``T_shared`` is the job's completion time in the run (``jct``). ``T_independent`` is its
    completion time had it run alone on a ``1/N`` slice of the cluster, where ``N`` is the
    time-averaged number of jobs in the system (arrived, not yet finished, itself included)
    during the job's life: ``duration x max(1, gpus x N / cluster_gpus)`` (a job that asks for
    more than its slice runs proportionally slower, ideal scaling). ``rho <= 1`` means the
    job did at least as well as with its fair slice (Mahajan et al., NSDI'20).

    Args:
        jobs: ``jobs.parquet`` rows with ``submit_time``, ``end_time``, ``duration``,
            ``num_gpus`` and optionally ``gpu_milli`` (per-GPU share, 1000 = whole).
        cluster_gpus: GPUs of the cluster.

    Returns:
        rho per job (NaN for jobs that did not finish), indexed like ``jobs``.
    """
    if cluster_gpus <= 0:
        raise ValueError("cluster_gpus must be > 0")
    submit = jobs["submit_time"].to_numpy(dtype=np.float64)
    end = jobs["end_time"].to_numpy(dtype=np.float64)
    gpus = jobs["num_gpus"].to_numpy(dtype=np.float64)
    if "gpu_milli" in jobs.columns:
        gpus = gpus * jobs["gpu_milli"].fillna(1000).to_numpy(dtype=np.float64) / 1000.0
    done = np.isfinite(end)
    horizon = float(np.nanmax(end)) if done.any() else float(submit.max(initial=0.0))
    leave = np.where(done, end, horizon)
    times = np.concatenate([submit, leave])
    delta = np.concatenate([np.ones(len(submit)), -np.ones(len(leave))])
    order = np.argsort(times, kind="stable")
    times, count = times[order], np.cumsum(delta[order])
    area = np.concatenate([[0.0], np.cumsum(count[:-1] * np.diff(times))])

    def integral(t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(times, t, side="right") - 1
        return area[k] + count[k] * (t - times[k])

    life = end - submit
    rho = np.full(len(jobs), np.nan)
    ok = done & (life > 0)
    n_avg = (integral(end[ok]) - integral(submit[ok])) / life[ok]
    ideal = jobs["duration"].to_numpy(dtype=np.float64)[ok] * np.maximum(
        1.0, gpus[ok] * n_avg / cluster_gpus
    )
    rho[ok] = life[ok] / ideal
    return pd.Series(rho, index=jobs.index, name="rho")
