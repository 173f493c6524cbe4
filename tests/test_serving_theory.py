"""Queueing theory: one replica with batch size 1 is an M/G/1 queue (Pollaczek-Khinchine).

With ``max_batch_size=1`` a replica serves one request at a time in arrival order; with every
iteration taking ``tau`` seconds a request with ``o`` output tokens (and a prompt within the
token budget) takes ``o x tau``: one prefill iteration that yields the first token plus
``o - 1`` decode iterations. Its queueing delay (arrival to admission) is the M/G/1 wait

    Wq = lam E[S^2] / (2 (1 - rho)),   rho = lam E[S]                (Pollaczek-Khinchine)

Deterministic ``o`` gives M/D/1 (E[S^2] = S^2); geometric ``o`` (the discrete exponential) with
mean 100 gives service times whose second moment is within 0.5 % of an exponential's, so the
M/M/1 wait rho / (mu - lam) applies as well.

Tolerance: 4 standard errors of the batch-means estimate of the mean wait (40 batches over
the requests after a 5 % warm-up), a false-alarm rate of about 1 in 16,000; each test also
checks that the estimate is precise to 5 % (one standard error) so the comparison has teeth.
"""

import math

import numpy as np
import pandas as pd

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.models.serving import Service, SyntheticRequests, TableStepTime, TokenDist

TAU = 0.01  # seconds per iteration


def waits(output: TokenDist, lam: float, n: int, seed: int) -> np.ndarray:
    requests = SyntheticRequests(
        rate=lam, num_requests=n, prompt=TokenDist("constant", 64), output=output, seed=seed
    )
    svc = Service(
        requests=requests,
        step_time=TableStepTime([1], [TAU]),
        max_batch_size=1,
        max_batched_tokens=256,
        warm_start=True,
    )
    cluster = ClusterSpec.homogeneous(1, 1, "H100")
    trace = svc.prepare(pd.DataFrame(), cluster)
    sim = Simulation(trace, cluster, FifoPolicy(), processes=svc.processes()).run()
    f = svc.tables(sim)["requests"]
    assert (f["status"] == "finished").all()
    # service time is exactly output x tau for every request
    np.testing.assert_allclose(f["e2e_latency"] - f["queueing_delay"], f["output_tokens"] * TAU)
    return f["queueing_delay"].to_numpy()[n // 20 :]


def batch_means(x: np.ndarray, batches: int = 40) -> tuple[float, float]:
    means = np.array([b.mean() for b in np.array_split(x, batches)])
    return float(means.mean()), float(means.std(ddof=1) / math.sqrt(batches))


def pk_wait(lam: float, es: float, es2: float) -> float:
    return lam * es2 / (2 * (1 - lam * es))


def test_md1_mean_wait_matches_pollaczek_khinchine():
    # S = 10 x 0.01 = 0.1 s, lam = 7/s: rho = 0.7, Wq = 0.7 x 0.1 / (2 x 0.3) = 0.11667 s
    lam, s = 7.0, 0.1
    w = waits(TokenDist("constant", 10), lam, n=100_000, seed=11)
    mean, se = batch_means(w)
    expected = pk_wait(lam, s, s * s)
    assert math.isclose(expected, 0.116667, rel_tol=1e-4)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    assert se / expected < 0.05


def test_mm1_mean_wait_without_batching():
    # Geometric output, mean m = 100: S = o x tau, E[S] = 1 s... scaled: tau m = 1 s.
    # Geometric on {1, 2, ...} with p = 1/m: E[o^2] = (2 - p) / p^2.
    lam, m = 0.6, 100
    p = 1 / m
    es, es2 = m * TAU, (2 - p) / p**2 * TAU**2
    w = waits(TokenDist("geometric", m), lam, n=60_000, seed=5)
    mean, se = batch_means(w)
    expected = pk_wait(lam, es, es2)
    mm1 = lam * es / (1 / es - lam)  # rho / (mu - lam) = 1.5 s
    assert math.isclose(expected, mm1, rel_tol=0.006)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    assert abs(mean - mm1) < 4 * se + 0.006 * mm1
    assert se / expected < 0.05
