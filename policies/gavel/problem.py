"""Inputs of a Gavel-style allocation, the equal-share normaliser and the shared LP constraints.

An allocation ``X`` (jobs x worker types) gives the fraction of wall time each job spends on
each worker type (Gavel's "time fractions"). Every allocation returned by
:mod:`policies.gavel.allocation` satisfies, as in Gavel (``scheduler/policies/policy.py``):

* ``0 <= X[j, k] <= 1``;
* ``sum_k X[j, k] <= 1`` (a job runs on one type at a time);
* ``sum_j X[j, k] * scale_factor[j] <= workers[k]`` (per-type capacity, in GPUs);

and, in addition to Gavel, ``X[j, k] = 0`` where job ``j`` cannot use type ``k``: its
throughput there is 0 (the shipped tables use 0.0 for combinations that do not run) or its
gang does not fit (``scale_factor[j] > workers[k]``).

The variables are ``X`` flattened row-major (``x[j * K + k] = X[j, k]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

__all__ = ["Problem", "base_constraints", "equal_share", "make_problem", "solve"]


class Problem(NamedTuple):
    """Checked inputs of one allocation (all arrays float64/int64, read-only by convention).

    Attributes:
        throughputs: ``(J, K)`` steps/s of job ``j``'s whole gang on worker type ``k``.
        scale_factors: ``(J,)`` gang size of each job, GPUs (>= 1).
        workers: ``(K,)`` number of workers (GPUs) of each type (>= 0).
        weights: ``(J,)`` priority weights (> 0; a larger weight means a larger share).
        usable: ``(J, K)`` where job ``j`` may run on type ``k`` (throughput > 0, gang fits).
    """

    throughputs: np.ndarray
    scale_factors: np.ndarray
    workers: np.ndarray
    weights: np.ndarray
    usable: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """``(J, K)``: jobs, worker types."""
        return self.throughputs.shape


def make_problem(
    throughputs: np.ndarray | Sequence[Sequence[float]],
    scale_factors: np.ndarray | Sequence[int],
    num_workers: np.ndarray | Sequence[int],
    priority_weights: np.ndarray | Sequence[float] | None = None,
) -> Problem:
    """Check and pack the inputs (see :class:`Problem`); weights default to 1.

    Raises:
        ValueError: a shape that does not match, a negative or non-finite throughput, a scale
            factor that is not an integer >= 1, a worker count that is not an integer >= 0, or a
            weight that is not finite and > 0.
    """
    t = np.array(throughputs, dtype=np.float64)
    if t.ndim != 2 or not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("throughputs must be a 2-D array (jobs x worker types) of finite >= 0")
    n_jobs, n_types = t.shape
    sf = _integers(scale_factors, "scale_factors", (n_jobs,), low=1)
    n = _integers(num_workers, "num_workers", (n_types,), low=0)
    w = np.ones(n_jobs) if priority_weights is None else np.array(priority_weights, dtype=float)
    if w.shape != (n_jobs,) or not np.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"priority_weights must be {n_jobs} finite numbers > 0")
    usable = (t > 0) & (sf[:, None] <= n[None, :])
    return Problem(t, sf, n, w, usable)


def equal_share(p: Problem) -> np.ndarray:
    """The heterogeneity-blind equal share ``X_eq`` that normalises throughputs (Gavel's X^equal).

    The cluster's ``N = sum(workers)`` GPUs are divided equally among the jobs, water-filled so
    that no job gets more than its gang (``g_j = min(scale_factor_j, lambda)`` with
    ``sum_j g_j = min(N, sum_j scale_factor_j)``); a job whose gang fits no type gets none.
    Job ``j``'s time fraction ``g_j / scale_factor_j`` is spread over the types its gang fits
    in proportion to their size. Weights do not enter (they weight the objectives instead), and
    throughputs do not either: on a type where the job's throughput is 0 its share is wasted,
    as it would be under a heterogeneity-blind scheduler.

    Gavel takes the allocation of its heterogeneity-blind max-min LP instead, which is not
    unique (only its minimum is), so the normaliser depends on the solver; this one is a
    closed form. ``X_eq`` is a normaliser only: when jobs fit different sets of types it can
    exceed a type's capacity.

    Returns:
        ``(J, K)`` time fractions.
    """
    fits = (p.scale_factors[:, None] <= p.workers[None, :]) & (p.workers[None, :] > 0)
    size = (fits * p.workers[None, :]).astype(np.float64)
    room = size.sum(axis=1)
    caps = np.where(room > 0, p.scale_factors, 0).astype(np.float64)
    gpus = _water_fill(caps, float(p.workers.sum()))
    spread = np.divide(size, room[:, None], out=np.zeros_like(size), where=room[:, None] > 0)
    return (gpus / p.scale_factors)[:, None] * spread


def base_constraints(p: Problem, extra: int = 0) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
    """Row-sum and capacity rows ``A x <= b`` and the bounds of ``x`` (module docstring).

    Args:
        p: the problem.
        extra: number of additional free variables (>= 0) appended after ``X``; their columns
            in ``A`` are zero and their bounds ``[0, inf)``.

    Returns:
        ``(A, b, bounds)``: ``A`` is ``(J + K) x (J*K + extra)`` sparse, ``bounds`` is
        ``(J*K + extra, 2)``.
    """
    n_jobs, n_types = p.shape
    cols = np.arange(n_jobs * n_types)
    job, typ = np.divmod(cols, n_types)
    rows = np.concatenate([job, n_jobs + typ])
    vals = np.concatenate([np.ones(cols.size), p.scale_factors[job].astype(np.float64)])
    a = sp.csr_array(
        (vals, (rows, np.concatenate([cols, cols]))),
        shape=(n_jobs + n_types, cols.size + extra),
    )
    b = np.concatenate([np.ones(n_jobs), p.workers.astype(np.float64)])
    upper = np.concatenate([p.usable.ravel().astype(np.float64), np.full(extra, np.inf)])
    return a, b, np.column_stack([np.zeros(upper.size), upper])


def solve(c: np.ndarray, a: sp.csr_array, b: np.ndarray, bounds: np.ndarray, what: str):
    """Minimise ``c @ x`` subject to ``a @ x <= b`` and the bounds, with HiGHS.

    Returns:
        The solution vector, or None if the LP is infeasible.

    Raises:
        RuntimeError: HiGHS stopped for another reason (unbounded, iteration limit, numerics).
    """
    res = linprog(c, A_ub=a, b_ub=b, bounds=bounds, method="highs")
    if res.status == 2:
        return None
    if res.status != 0:
        raise RuntimeError(f"{what}: HiGHS did not solve the LP: {res.message}")
    return res.x


def allocation(p: Problem, x: np.ndarray) -> np.ndarray:
    """``X`` from an LP solution: first ``J*K`` entries, clipped into [0, 1] (HiGHS tolerance).

    Clipping only lowers entries, so the ``<=`` constraints still hold.
    """
    n_jobs, n_types = p.shape
    x = np.clip(x[: n_jobs * n_types], 0.0, 1.0).reshape(n_jobs, n_types)
    return np.where(p.usable, x, 0.0) + 0.0  # + 0.0 turns HiGHS's -0.0 into 0.0


def _water_fill(caps: np.ndarray, total: float) -> np.ndarray:
    """``min(caps, lam)`` with ``lam`` such that the sum is ``min(total, caps.sum())``."""
    if caps.sum() <= total:
        return caps.copy()
    order = np.sort(caps)
    left, rest = total, caps.size
    for c in order:
        if c * rest >= left:
            return np.minimum(caps, left / rest)
        left, rest = left - c, rest - 1
    return caps.copy()  # not reached: caps.sum() > total


def _integers(values, name: str, shape: tuple[int], low: int) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1) if np.size(values) else np.zeros(0)
    if a.shape != shape or not np.isfinite(a).all() or (a != np.round(a)).any() or (a < low).any():
        raise ValueError(f"{name} must be {shape[0]} integers >= {low}, got {values!r}")
    return a.astype(np.int64)
