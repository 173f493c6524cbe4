"""Agreement with queueing theory: FIFO with 1-GPU jobs is an M/M/c queue."""

import math

import numpy as np
import pandas as pd
import pytest

from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Mean wait in queue of M/M/c (Erlang C formula)."""
    a = lam / mu
    rho = a / c
    tail = a**c / math.factorial(c) / (1 - rho)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(c)) + tail)
    return p_wait / (c * mu - lam)


def mmc_trace(n: int, lam: float, mu: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "job_id": np.arange(n),
            "submit_time": np.cumsum(rng.exponential(1 / lam, n)),
            "duration": rng.exponential(1 / mu, n),
            "num_gpus": np.ones(n, dtype=int),
        }
    )


def batch_means(x: np.ndarray, batches: int = 40) -> tuple[float, float]:
    """Mean and its standard error from non-overlapping batch means (handles correlation)."""
    means = np.array([b.mean() for b in np.array_split(x, batches)])
    return float(means.mean()), float(means.std(ddof=1) / math.sqrt(batches))


@pytest.mark.parametrize("reference", [False, True], ids=["compiled_pass", "python_pass"])
def test_fifo_matches_erlang_c(reference):
    # c = 8 GPUs, utilisation 0.8, mean service 1 s: Wq = 0.2860 s (P(wait) = 0.458).
    c, lam, mu, n = 8, 6.4, 1.0, 200_000
    sim = Simulation(
        mmc_trace(n, lam, mu, seed=7),
        ClusterSpec.homogeneous(1, c, "V100"),
        FifoPolicy(),
        reference_passes=reference,
    ).run()
    assert sim.engine == ("python" if reference else "compiled")
    wait = (sim.jobs.start - sim.jobs.submit)[n // 20 :]  # drop warm-up (5 %)
    mean, se = batch_means(wait)
    expected = erlang_c_wait(c, lam, mu)
    # Tolerance: 4 standard errors of the batch-means estimate (~1 in 16,000 false alarms),
    # which at this sample size is about 15 % of the expected value; the estimate itself must
    # be precise to 5 % (one standard error) for the test to have teeth.
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    assert se / expected < 0.05


def test_gang_equals_fifo_for_identical_one_gpu_jobs():
    # With identical 1-GPU jobs nobody can overtake, so gang and FIFO give the same schedule.
    trace = mmc_trace(5_000, 6.0, 1.0, seed=3)
    cluster = ClusterSpec.homogeneous(2, 4, "V100")
    a = Simulation(trace, cluster, FifoPolicy()).run()
    b = Simulation(trace, cluster, GangPolicy()).run()
    np.testing.assert_array_equal(a.jobs.start, b.jobs.start)


def test_erlang_c_formula_itself():
    # M/M/1: Wq = rho / (mu - lam)
    assert math.isclose(erlang_c_wait(1, 0.5, 1.0), 1.0)
    assert math.isclose(erlang_c_wait(8, 6.4, 1.0), 0.28603, rel_tol=1e-4)
