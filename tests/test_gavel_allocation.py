"""Gavel-style allocation LPs: hand-computable cases, brute force on tiny instances, invariants."""

from __future__ import annotations

import numpy as np
import pytest

from policies.gavel import (
    equal_share,
    finish_time_fairness,
    make_problem,
    max_min_fairness,
    max_sum_throughput,
)

EPS = 1e-7


def feasible(x, throughputs, sf, workers):
    """The constraints of policies.gavel.problem, within HiGHS's tolerance."""
    x, t = np.asarray(x), np.asarray(throughputs)
    sf, workers = np.asarray(sf), np.asarray(workers)
    usable = (t > 0) & (sf[:, None] <= workers[None, :])
    return (
        (x >= -EPS).all()
        and (x.sum(axis=1) <= 1 + EPS).all()
        and ((sf[:, None] * x).sum(axis=0) <= workers + EPS).all()
        and (x[~usable] == 0).all()
    )


def maxmin_value(x, t, sf, workers, w):
    p = make_problem(t, sf, workers, w)
    iso = (p.throughputs * equal_share(p)).sum(axis=1)
    act = iso > 0
    thr = (p.throughputs * x).sum(axis=-1)
    return np.min(thr[..., act] / (p.weights[act] * iso[act]), axis=-1)


def ftf_value(x, t, sf, workers, w, since, left):
    """max_j w_j rho_j; finished jobs (no steps left) are not in the equal share."""
    since, left = np.asarray(since, float), np.asarray(left, float)
    keep = left > 0
    p = make_problem(np.asarray(t)[keep], np.asarray(sf)[keep], workers, np.asarray(w)[keep])
    iso = (p.throughputs * equal_share(p)).sum(axis=1)
    act = iso > 0
    thr = (p.throughputs * np.asarray(x)[..., keep, :]).sum(axis=-1)[..., act]
    since, left = since[keep][act], left[keep][act]
    with np.errstate(divide="ignore"):
        rho = (since + left / thr) / (since + left / iso[act])
    return np.max(p.weights[act] * rho, axis=-1)


def grid(t, sf, workers, step, batch=64):
    """Every feasible 2x2 allocation on a grid of ``step``, in batches of shape (n, 2, 2)."""
    g = np.round(np.arange(0, 1 + step / 2, step), 10)
    a, b = np.meshgrid(g, g, indexing="ij")
    rows = np.column_stack([a.ravel(), b.ravel()])
    rows = rows[rows.sum(axis=1) <= 1 + 1e-9]  # every feasible row of one job
    sf, workers = np.asarray(sf), np.asarray(workers)
    usable = (np.asarray(t) > 0) & (sf[:, None] <= workers[None, :])
    first, second = (
        rows[(rows[:, ~usable[0]] == 0).all(axis=1)],
        rows[(rows[:, ~usable[1]] == 0).all(axis=1)],
    )
    for i in range(0, len(first), batch):
        pts = np.empty((len(first[i : i + batch]), len(second), 2, 2))
        pts[:, :, 0] = first[i : i + batch, None, :]
        pts[:, :, 1] = second[None, :, :]
        pts = pts.reshape(-1, 2, 2)
        yield pts[((sf[None, :, None] * pts).sum(axis=1) <= workers + 1e-9).all(axis=1)]


def brute(t, sf, workers, value, best):
    """``best`` (np.max or np.min) of ``value`` over the grid of step 0.02."""
    return best([best(value(pts)) for pts in grid(t, sf, workers, 0.02) if len(pts)])


# --- hand-computable cases ---------------------------------------------------------------


def test_two_identical_jobs_one_gpu_half_each():
    t, sf, n = [[3.0], [3.0]], [1, 1], [1]
    assert max_min_fairness(t, sf, n) == pytest.approx(np.array([[0.5], [0.5]]))
    x = finish_time_fairness(t, sf, n, time_since_start=[0, 0], steps_remaining=[30, 30])
    assert x == pytest.approx(np.array([[0.5], [0.5]]), abs=1e-5)
    x = max_sum_throughput(t, sf, n)
    assert x.sum() == pytest.approx(1.0) and feasible(x, t, sf, n)


def test_four_jobs_two_gpus_and_weights():
    t, sf = np.full((4, 1), 2.0), [1, 1, 1, 1]
    assert max_min_fairness(t, sf, [2]) == pytest.approx(np.full((4, 1), 0.5))
    # weights 1 and 3 on one GPU: X1 / (1 * 0.5) = X2 / (3 * 0.5) and X1 + X2 = 1
    x = max_min_fairness([[1.0], [1.0]], [1, 1], [1], [1, 3])
    assert x == pytest.approx(np.array([[0.25], [0.75]]))


def test_equal_share_water_fills_and_spreads():
    # 6 GPUs (4 + 2) for gangs of 1, 1, 8 (fits nowhere) and 4 (fits the 4-GPU type only)
    p = make_problem(np.ones((4, 2)), [1, 1, 8, 4], [4, 2])
    x = equal_share(p)
    gpus = (x * p.scale_factors[:, None]).sum(axis=1)
    assert gpus == pytest.approx([1, 1, 0, 4])  # caps 1, 1, 0, 4: lambda = 4, sum = 6
    assert x[0] == pytest.approx([4 / 6, 2 / 6]) and x[3] == pytest.approx([1.0, 0.0])
    p = make_problem(np.ones((3, 1)), [1, 2, 4], [4])
    assert (equal_share(p)[:, 0] * [1, 2, 4]) == pytest.approx([1, 1.5, 1.5])


def test_homogeneous_cluster_maxmin_is_the_equal_share():
    # one type: the normalised throughput is X / X_eq whatever the job's speed
    t, sf, n = [[5.0], [0.3], [2.0], [1.0]], [1, 1, 2, 2], [3]
    x = max_min_fairness(t, sf, n)
    p = make_problem(t, sf, n)
    assert x == pytest.approx(equal_share(p))  # 0.5 GPU each: capacity binds, so it is unique


def test_fill_spare_uses_idle_gpus_without_lowering_the_minimum():
    t, sf, n, w = [[2.7, 1.3], [0.9, 1.7]], [1, 1], [1, 2], [1.5, 1]
    single = max_min_fairness(t, sf, n, w, fill_spare=False)
    filled = max_min_fairness(t, sf, n, w)
    assert feasible(single, t, sf, n) and feasible(filled, t, sf, n)
    low = maxmin_value(single, t, sf, n, w)
    assert maxmin_value(filled, t, sf, n, w) >= low * (1 - 1e-6)
    # job 0 alone on the 1-GPU type is the bottleneck; job 1 then gets all of its time on the
    # 2-GPU type, which the single LP need not give it
    assert filled == pytest.approx(np.array([[1.0, 0.0], [0.0, 1.0]]))


def test_unusable_types_get_no_time():
    # job 0's gang of 2 does not fit the 1-GPU type; job 1 has throughput 0 on type 1
    t, sf, n = [[9.0, 1.0], [2.0, 0.0]], [2, 1], [1, 4]
    for x in (
        max_min_fairness(t, sf, n),
        max_sum_throughput(t, sf, n),
        finish_time_fairness(t, sf, n, time_since_start=[0, 0], steps_remaining=[5, 5]),
    ):
        assert x[0, 0] == 0 and x[1, 1] == 0 and feasible(x, t, sf, n)
    # a job that can run nowhere gets a zero row and does not block the others
    x = max_min_fairness([[0.0], [1.0]], [1, 1], [1])
    assert x == pytest.approx(np.array([[0.0], [1.0]]))


@pytest.mark.parametrize(
    ("t", "sf", "n"),
    [
        (np.zeros((0, 2)), [], [1, 1]),
        (np.ones((2, 2)), [1, 1], [0, 0]),
        (np.ones((2, 0)), [1, 1], []),
    ],
    ids=["no jobs", "no workers", "no types"],
)
def test_empty_problems_give_zero_allocations(t, sf, n):
    k = len(sf)
    for x in (
        max_min_fairness(t, sf, n),
        max_sum_throughput(t, sf, n),
        finish_time_fairness(t, sf, n, time_since_start=np.zeros(k), steps_remaining=np.ones(k)),
    ):
        assert x.shape == np.shape(t) and not x.any()


def test_finished_jobs_take_no_part():
    x = finish_time_fairness(
        [[1.0], [1.0], [1.0]], [1, 1, 1], [1], time_since_start=[5, 0, 0], steps_remaining=[0, 8, 8]
    )
    assert x == pytest.approx(np.array([[0.0], [0.5], [0.5]]), abs=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="throughputs"):
        max_min_fairness([[1.0, -1.0]], [1], [1, 1])
    with pytest.raises(ValueError, match="scale_factors"):
        max_min_fairness([[1.0]], [0], [1])
    with pytest.raises(ValueError, match="num_workers"):
        max_min_fairness([[1.0]], [1], [1.5])
    with pytest.raises(ValueError, match="priority_weights"):
        max_sum_throughput([[1.0]], [1], [1], [0.0])
    with pytest.raises(ValueError, match="steps_remaining"):
        finish_time_fairness([[1.0]], [1], [1], time_since_start=[0], steps_remaining=[np.nan])


# --- brute force on 2 jobs x 2 types ----------------------------------------------------

TINY = [
    # throughputs, scale factors, workers, weights, time since start, steps remaining
    ([[4.0, 1.0], [2.0, 1.0]], [1, 1], [1, 1], [1, 1], [0, 100], [10, 10]),
    ([[3.0, 2.0], [1.0, 0.8]], [1, 2], [1, 2], [1, 2], [50, 0], [200, 40]),
    ([[1.0, 5.0], [2.0, 3.0]], [2, 1], [2, 1], [2, 1], [10, 10], [30, 90]),
    ([[6.0, 0.0], [1.5, 1.0]], [1, 1], [1, 3], [1, 1], [0, 0], [60, 20]),
    ([[2.0, 1.0], [2.0, 1.0]], [1, 1], [1, 1], [1, 1], [0, 0], [1, 1]),
    ([[2.7, 1.3], [0.9, 1.7]], [1, 1], [1, 2], [1.5, 1], [37, 5], [123, 77]),
    ([[2.7, 1.3], [0.9, 1.7]], [2, 1], [2, 1], [1, 1], [0, 40], [300, 20]),
]


@pytest.fixture(scope="module", params=range(len(TINY)), ids=lambda i: f"tiny{i}")
def tiny(request):
    t, sf, n, w, since, left = TINY[request.param]
    return t, sf, n, w, since, left


def test_max_min_matches_brute_force(tiny):
    t, sf, n, w, _, _ = tiny
    x = max_min_fairness(t, sf, n, w)
    assert feasible(x, t, sf, n)
    lp = maxmin_value(x, t, sf, n, w)
    best = brute(t, sf, n, lambda a: maxmin_value(a, t, sf, n, w), np.max)
    assert lp >= best * (1 - 1e-6)  # no grid point beats the LP (fill_spare keeps 1 - 1e-7)
    assert lp - best <= 0.02 * lp  # and the grid gets within its resolution


def test_max_sum_matches_brute_force(tiny):
    t, sf, n, w, _, _ = tiny
    x = max_sum_throughput(t, sf, n, w)
    assert feasible(x, t, sf, n)
    value = lambda a: (np.asarray(w) * (np.asarray(t) * a).sum(axis=-1)).sum(axis=-1)  # noqa: E731
    lp, best = value(x), brute(t, sf, n, value, np.max)
    assert lp >= best - 1e-7 and lp - best <= 0.02 * lp


def test_finish_time_fairness_matches_brute_force(tiny):
    t, sf, n, w, since, left = tiny
    x = finish_time_fairness(t, sf, n, w, time_since_start=since, steps_remaining=left)
    assert feasible(x, t, sf, n)
    lp = ftf_value(x, t, sf, n, w, since, left)
    best = brute(t, sf, n, lambda a: ftf_value(a, t, sf, n, w, since, left), np.min)
    assert lp <= best * (1 + 1e-5)  # within the bisection tolerance of every grid point
    assert best - lp <= 0.02 * lp


# --- invariants on random instances -------------------------------------------------------


def random_instance(rng):
    jobs, types = int(rng.integers(1, 7)), int(rng.integers(1, 4))
    t = rng.uniform(0.1, 10.0, (jobs, types)) * (rng.random((jobs, types)) > 0.15)
    sf = rng.choice([1, 1, 2, 4], jobs)
    n = rng.integers(0, 6, types)
    w = rng.choice([1.0, 2.0, 0.5], jobs)
    since, left = rng.uniform(0, 500, jobs), rng.uniform(0, 1000, jobs) * (rng.random(jobs) > 0.1)
    return t, sf, n, w, since, left


def random_feasible(rng, t, sf, n, count):
    """Random allocations satisfying the constraints (rows scaled to 1, columns to capacity)."""
    usable = (t > 0) & (sf[:, None] <= n[None, :])
    x = rng.random((count, *t.shape)) * usable
    x /= np.maximum(x.sum(axis=2, keepdims=True), 1.0)
    used = (sf[None, :, None] * x).sum(axis=1, keepdims=True)
    return x * np.minimum(1.0, np.divide(n, used, out=np.ones_like(used), where=used > 0))


@pytest.mark.parametrize("seed", range(25))
def test_random_instances_feasible_and_not_beaten(seed):
    rng = np.random.default_rng(seed)
    t, sf, n, w, since, left = random_instance(rng)
    others = random_feasible(rng, t, sf, n, 200)
    assert all(feasible(o, t, sf, n) for o in others[:5])

    x = max_min_fairness(t, sf, n, w)
    assert feasible(x, t, sf, n)
    p = make_problem(t, sf, n, w)
    if ((p.throughputs * equal_share(p)).sum(axis=1) > 0).any():
        best = maxmin_value(others, t, sf, n, w).max()
        assert maxmin_value(x, t, sf, n, w) >= best * (1 - 1e-6)

    x = max_sum_throughput(t, sf, n, w)
    assert feasible(x, t, sf, n)
    total = lambda a: (w * (t * a).sum(axis=-1)).sum(axis=-1)  # noqa: E731
    assert total(x) >= total(others).max() - 1e-7

    x = finish_time_fairness(t, sf, n, w, time_since_start=since, steps_remaining=left)
    assert feasible(x, t, sf, n)
    if (left > 0).any() and ((t[left > 0] > 0) & (sf[left > 0, None] <= n)).any():
        lp = ftf_value(x, t, sf, n, w, since, left)
        assert np.isfinite(lp)
        assert lp <= ftf_value(others, t, sf, n, w, since, left).min() * (1 + 1e-5)


def test_deterministic():
    rng = np.random.default_rng(7)
    t, sf, n, w, since, left = random_instance(rng)
    a = finish_time_fairness(t, sf, n, w, time_since_start=since, steps_remaining=left)
    b = finish_time_fairness(t, sf, n, w, time_since_start=since, steps_remaining=left)
    assert np.array_equal(a, b)
