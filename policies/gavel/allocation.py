"""Gavel's heterogeneity-aware allocation policies as LPs over effective throughputs.

Each function maps (throughput matrix ``T`` jobs x worker types in steps/s, scale factors,
workers per type, priority weights) to an allocation ``X`` (jobs x worker types, fraction of
time on each type) that satisfies the constraints in :mod:`policies.gavel.problem`. A job's
*effective throughput* is ``thr_j(X) = sum_k T[j, k] * X[j, k]`` (steps/s).

Solved with SciPy's ``linprog(method="highs")``. Cost: each LP has ``J*K`` variables (plus
one), ``J + K`` rows (plus ``J``) and at most ``3*J*K`` non-zeros. HiGHS's time is polynomial in
that size; measured once on a 2-core machine with ``K = 3`` (random throughputs, ``J/2`` GPUs
per type): max-sum-throughput 0.003 / 0.014 / 0.06 s for ``J`` = 100 / 1,000 / 3,000 (about
linear), max-min fairness 0.011 / 0.12 / 0.92 s (between linear and quadratic), finish-time
fairness 0.05 / 0.38 / 2.1 s (one max-min solve plus ~20 LPs of the bisection).

Where this follows Gavel (``scheduler/policies/{max_min_fairness,max_sum_throughput,
finish_time_fairness}.py`` of stanford-futuredata/gavel) and where it does not:

* the normaliser is the closed-form equal share of :func:`policies.gavel.problem.equal_share`,
  not the (non-unique) solution of Gavel's heterogeneity-blind LP;
* Gavel's max-min objective also multiplies each job's term by its scale factor; here the gang
  size is already in the normaliser (a job's equal share is its throughput on its equal GPU
  share), so on a homogeneous cluster where capacity binds max-min fairness returns exactly the
  equal share;
* max-min fairness by default solves a second LP that fills capacity the first leaves idle;
* a job gets no time on a type where its throughput is 0 or its gang does not fit;
* co-location (Gavel's "packing" variants) is not modelled;
* Gavel solves finish-time fairness as a convex program (cvxpy ``inv_pos``); here it is a
  bisection over LP feasibility problems (see :func:`finish_time_fairness`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from policies.gavel.problem import (
    Problem,
    allocation,
    base_constraints,
    equal_share,
    make_problem,
    solve,
)

__all__ = ["finish_time_fairness", "max_min_fairness", "max_sum_throughput"]

_KEEP_TOL = 1e-7
"""Relative slack on the max-min value when the second LP fills spare capacity (HiGHS's
feasibility tolerance is 1e-7; without slack the second LP can be declared infeasible)."""

ArrayLike2 = np.ndarray | Sequence[Sequence[float]]
ArrayLike1 = np.ndarray | Sequence[float]


def max_min_fairness(
    throughputs: ArrayLike2,
    scale_factors: ArrayLike1,
    num_workers: ArrayLike1,
    priority_weights: ArrayLike1 | None = None,
    *,
    fill_spare: bool = True,
) -> np.ndarray:
    """Gavel's heterogeneity-aware LAS: maximise the minimum weighted normalised throughput.

    Solves::

        max_X  min_j  thr_j(X) / (w_j * thr_j(X_eq))

    over the feasible allocations, where ``X_eq`` is :func:`~policies.gavel.problem.equal_share`
    (so a value of 1 means "as fast as on an equal share of the cluster") and ``w_j`` the
    priority weight (a larger weight gets a proportionally larger normalised throughput). Jobs
    with ``thr_j(X_eq) = 0`` (no usable type) get an all-zero row and are left out of the
    minimum.

    The LP optimises the minimum only, so jobs off the bottleneck may receive any share that
    keeps it, and a simplex vertex often leaves usable GPUs idle. With ``fill_spare`` (default)
    a second LP keeps every job's normalised throughput at or above the optimal minimum (less a
    relative 1e-7 for the solver's tolerance) and maximises their sum; ``fill_spare=False`` is
    Gavel's single LP.

    Cost: one LP with ``J*K + 1`` variables and ``2J + K`` rows (plus one of ``J*K`` variables
    and ``2J + K`` rows with ``fill_spare``).

    Args:
        throughputs: ``(J, K)`` steps/s of each job's gang on each worker type.
        scale_factors: ``(J,)`` gang sizes, GPUs.
        num_workers: ``(K,)`` GPUs of each type.
        priority_weights: ``(J,)`` weights > 0 (default 1).
        fill_spare: also fill spare capacity without lowering the minimum (see above).

    Returns:
        ``(J, K)`` allocation.
    """
    p = make_problem(throughputs, scale_factors, num_workers, priority_weights)
    return _max_min(p, p.weights, fill_spare)[0]


def max_sum_throughput(
    throughputs: ArrayLike2,
    scale_factors: ArrayLike1,
    num_workers: ArrayLike1,
    priority_weights: ArrayLike1 | None = None,
) -> np.ndarray:
    """Gavel's ``max_sum_throughput_perf``: maximise ``sum_j w_j * thr_j(X)``.

    As in Gavel the sum is of raw steps/s (not normalised), so job types with many cheap steps
    dominate; the weights (default 1, which is Gavel's objective) scale each job's term. The
    optimum is usually not unique; HiGHS returns one vertex.

    Cost: one LP with ``J*K`` variables and ``J + K`` rows.

    Args:
        throughputs: ``(J, K)`` steps/s of each job's gang on each worker type.
        scale_factors: ``(J,)`` gang sizes, GPUs.
        num_workers: ``(K,)`` GPUs of each type.
        priority_weights: ``(J,)`` weights > 0 (default 1).

    Returns:
        ``(J, K)`` allocation.
    """
    p = make_problem(throughputs, scale_factors, num_workers, priority_weights)
    if not p.usable.any():
        return np.zeros(p.shape)
    a, b, bounds = base_constraints(p)
    c = -(p.weights[:, None] * p.throughputs).ravel()
    x = solve(c, a, b, bounds, "max_sum_throughput")
    return allocation(p, x)


def finish_time_fairness(
    throughputs: ArrayLike2,
    scale_factors: ArrayLike1,
    num_workers: ArrayLike1,
    priority_weights: ArrayLike1 | None = None,
    *,
    time_since_start: ArrayLike1,
    steps_remaining: ArrayLike1,
    rel_tol: float = 1e-6,
) -> np.ndarray:
    """Themis-style finish-time fairness as in Gavel: minimise the largest weighted ``rho``.

    For job ``j`` with ``t_j`` seconds since it arrived and ``R_j`` steps left::

        rho_j(X) = (t_j + R_j / thr_j(X)) / (t_j + R_j / thr_j(X_eq))

    the ratio of its expected finish time under ``X`` to that under the equal share; the
    function minimises ``max_j w_j * rho_j(X)`` (a larger weight pushes the job's ``rho``
    down; Gavel accepts weights but does not use them, which is ``w = 1``).

    Linearisation: for a fixed level ``r``, ``w_j * rho_j(X) <= r`` is equivalent to the linear
    constraint ``thr_j(X) >= R_j / (r * D_j / w_j - t_j)`` (with ``D_j`` the denominator above;
    infeasible when ``r * D_j / w_j <= t_j``). The feasible set grows with ``r``, so the optimum
    is found by bisection on ``r`` between a lower bound (each job alone on its fastest usable
    type) and the value of the max-min fair allocation, each step one LP feasibility problem,
    until the bracket is within ``rel_tol`` (relative). Each feasibility LP also maximises
    ``sum_j thr_j(X) / thr_j(X_eq)`` so that spare capacity is used. The returned ``X`` is the
    last feasible one: its objective is at most ``(1 + rel_tol)`` times the optimum.

    Jobs with ``R_j = 0`` (finished) get an all-zero row and take no part (not even in the
    equal share); so do jobs with ``thr_j(X_eq) = 0`` (no usable type).

    Cost: one max-min LP plus about ``log2((hi - lo) / (rel_tol * hi))`` (~20 for the default)
    LPs with ``J*K`` variables and ``2J + K`` rows.

    Args:
        throughputs: ``(J, K)`` steps/s of each job's gang on each worker type.
        scale_factors: ``(J,)`` gang sizes, GPUs.
        num_workers: ``(K,)`` GPUs of each type.
        priority_weights: ``(J,)`` weights > 0 (default 1).
        time_since_start: ``(J,)`` seconds since each job arrived (>= 0).
        steps_remaining: ``(J,)`` steps left (>= 0).
        rel_tol: relative width at which the bisection stops (> 0).

    Returns:
        ``(J, K)`` allocation.
    """
    p = make_problem(throughputs, scale_factors, num_workers, priority_weights)
    t = _non_negative(time_since_start, "time_since_start", p.shape[0])
    r = _non_negative(steps_remaining, "steps_remaining", p.shape[0])
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be > 0, got {rel_tol}")
    out = np.zeros(p.shape)
    keep = r > 0  # finished jobs take no part, not even in the equal share
    sub, t, r = _rows(p, keep), t[keep], r[keep]
    iso = (sub.throughputs * equal_share(sub)).sum(axis=1)
    active = iso > 0
    if not active.any():
        return out
    sub = sub._replace(usable=sub.usable & active[:, None])
    denom = t + np.divide(r, iso, out=np.full(iso.size, np.inf), where=active)
    x_mm, _ = _max_min(sub, np.ones(iso.size))
    lo, hi = _ftf_bracket(sub, x_mm, t, r, denom, active)
    best = x_mm
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        x = _ftf_feasible(sub, mid, t, r, denom, iso, active)
        if x is None:
            lo = mid
        else:
            hi, best = mid, x
    out[keep] = best
    return out


def _rows(p: Problem, keep: np.ndarray) -> Problem:
    """The problem restricted to the jobs in ``keep`` (same worker types)."""
    return Problem(
        p.throughputs[keep], p.scale_factors[keep], p.workers, p.weights[keep], p.usable[keep]
    )


def _max_min(p: Problem, weights: np.ndarray, fill_spare: bool = True) -> tuple[np.ndarray, float]:
    """The max-min LP(s) of :func:`max_min_fairness`: the allocation and the optimal minimum."""
    n_vars = p.throughputs.size
    iso = (p.throughputs * equal_share(p)).sum(axis=1)
    active = (iso > 0) & p.usable.any(axis=1)
    if not active.any():
        return np.zeros(p.shape), 0.0
    p = p._replace(usable=p.usable & active[:, None])
    jobs = np.flatnonzero(active)
    coef = np.zeros(p.shape)
    coef[jobs] = p.throughputs[jobs] / (weights[jobs] * iso[jobs])[:, None]
    norm = _job_rows(p, jobs, coef)  # row j: normalised throughput of job j
    # phase 1: max t subject to t - norm_j(x) <= 0 for every active job
    a, b, bounds = base_constraints(p, extra=1)
    fair = sp.hstack([-norm, sp.csr_array(np.ones((jobs.size, 1)))])
    c = np.zeros(n_vars + 1)
    c[-1] = -1.0
    x = solve(
        c,
        sp.vstack([a, fair], format="csr"),
        np.concatenate([b, np.zeros(jobs.size)]),
        bounds,
        "max_min_fairness",
    )
    best, value = allocation(p, x), float(x[-1])
    if not fill_spare:
        return best, value
    # phase 2: keep every norm_j >= value (less HiGHS's tolerance), maximise their sum
    a, b, bounds = base_constraints(p)
    floor = np.full(jobs.size, -value * (1.0 - _KEEP_TOL))
    x = solve(
        -coef.ravel(),
        sp.vstack([a, -norm], format="csr"),
        np.concatenate([b, floor]),
        bounds,
        "max_min_fairness (spare capacity)",
    )
    return (best if x is None else allocation(p, x)), value


def _job_rows(p: Problem, jobs: np.ndarray, coef: np.ndarray) -> sp.csr_array:
    """Sparse ``(len(jobs), J*K)``: row ``i`` is ``sum_k coef[jobs[i], k] * X[jobs[i], k]``."""
    n_types = p.shape[1]
    rows = np.repeat(np.arange(jobs.size), n_types)
    cols = (jobs[:, None] * n_types + np.arange(n_types)).ravel()
    return sp.csr_array((coef[jobs].ravel(), (rows, cols)), shape=(jobs.size, p.throughputs.size))


def _ftf_bracket(p, x_mm, t, r, denom, active) -> tuple[float, float]:
    """Lower bound (each job alone on its fastest usable type) and upper bound (max-min X)."""
    fastest = np.where(p.usable, p.throughputs, 0.0).max(axis=1)
    w = p.weights[active]
    lo = float(np.max(w * (t[active] + r[active] / fastest[active]) / denom[active]))
    thr = (p.throughputs * x_mm).sum(axis=1)[active]
    hi = float(np.max(w * (t[active] + r[active] / thr) / denom[active]))
    return min(lo, hi), hi


def _ftf_feasible(p, level, t, r, denom, iso, active) -> np.ndarray | None:
    """An allocation with ``w_j * rho_j <= level`` for all active jobs, or None."""
    slack = level * denom / p.weights - t
    if (slack[active] <= 0).any():
        return None
    need = np.where(active, r / np.where(active, slack, 1.0), 0.0)
    a, b, bounds = base_constraints(p)
    jobs = np.flatnonzero(active)
    req = -_job_rows(p, jobs, p.throughputs)  # -thr_j(X) <= -need_j for active jobs
    gain = np.divide(p.throughputs, iso[:, None], out=np.zeros(p.shape), where=active[:, None])
    x = solve(
        -gain.ravel(),
        sp.vstack([a, req], format="csr"),
        np.concatenate([b, -need[jobs]]),
        bounds,
        "finish_time_fairness",
    )
    return None if x is None else allocation(p, x)


def _non_negative(values: ArrayLike1, name: str, n: int) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (n,) or not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be {n} finite numbers >= 0")
    return a
