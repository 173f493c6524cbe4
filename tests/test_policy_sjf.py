"""Shortest job first and shortest remaining time first: exact event logs."""

import numpy as np
import pytest
from conftest import make_trace, simulate

from policies.sjf import SjfPolicy
from policies.srtf import SrtfPolicy
from simulator.core.cluster import ClusterSpec

ONE_GPU = ClusterSpec.homogeneous(1, 1, "V100")


def starts_and_ends(sim):
    return [e for e in sim.events if e[2] != "arrive"]


def assert_no_thrash(events):
    """No job is preempted twice, or started and then preempted, at one instant."""
    seen = {}
    for t, j, what in events:
        if what in ("start", "preempt"):
            seen.setdefault((t, j), []).append(what)
    for (t, j), whats in seen.items():
        assert whats.count("preempt") <= 1, f"job {j} preempted twice at t={t}"
        s = "".join(w[0] for w in whats)
        assert "sp" not in s, f"job {j} started then preempted at t={t}"


def test_sjf_runs_shortest_waiting_job_next():
    trace = make_trace([(1, 0, 10, 1), (2, 1, 5, 1), (3, 2, 2, 1)])
    sim = simulate(trace, ONE_GPU, SjfPolicy())
    assert starts_and_ends(sim) == [
        (0, 1, "start"),  # non-preemptive: job 1 keeps its GPU
        (10, 1, "finish"),
        (10, 3, "start"),  # 2 s beats 5 s
        (12, 3, "finish"),
        (12, 2, "start"),
        (17, 2, "finish"),
    ]


def test_sjf_uses_the_estimate_column():
    # estimates say job 2 is shorter than job 3 (the truth is the other way round)
    trace = make_trace([(1, 0, 10, 1), (2, 1, 5, 1), (3, 2, 2, 1)], walltime=[10, 1, 8])
    sim = simulate(trace, ONE_GPU, SjfPolicy(estimate_column="walltime"))
    assert [e for e in sim.events if e[2] == "start"] == [
        (0, 1, "start"),
        (10, 2, "start"),
        (15, 3, "start"),
    ]
    with pytest.raises(KeyError, match="nope"):
        simulate(trace, ONE_GPU, SjfPolicy(estimate_column="nope"))


def test_sjf_skips_jobs_that_do_not_fit_unless_strict():
    cluster = ClusterSpec.homogeneous(1, 2, "V100")
    # job 2 (2 GPUs, shortest) cannot start while job 1 runs; job 3 (1 GPU) can
    trace = make_trace([(1, 0, 10, 1), (2, 1, 3, 2), (3, 2, 5, 1)])
    sim = simulate(trace, cluster, SjfPolicy())
    assert [e for e in sim.events if e[2] == "start"] == [
        (0, 1, "start"),
        (2, 3, "start"),
        (10, 2, "start"),
    ]
    sim = simulate(trace, cluster, SjfPolicy(strict=True))
    assert [e for e in sim.events if e[2] == "start"] == [
        (0, 1, "start"),
        (10, 2, "start"),
        (13, 3, "start"),
    ]


def test_srtf_preempts_for_shorter_remaining_time():
    trace = make_trace([(1, 0, 10, 1), (2, 1, 5, 1), (3, 2, 2, 1)])
    sim = simulate(trace, ONE_GPU, SrtfPolicy())
    assert starts_and_ends(sim) == [
        (0, 1, "start"),
        (1, 1, "preempt"),  # 9 s left > 5 s
        (1, 2, "start"),
        (2, 2, "preempt"),  # 4 s left > 2 s
        (2, 3, "start"),
        (4, 3, "finish"),
        (4, 2, "start"),  # 4 s left < 9 s
        (8, 2, "finish"),
        (8, 1, "start"),
        (17, 1, "finish"),
    ]
    assert list(sim.jobs.preemptions) == [1, 1, 0]


def test_srtf_does_not_preempt_shorter_running_jobs():
    trace = make_trace([(1, 0, 5, 1), (2, 1, 10, 1)])
    sim = simulate(trace, ONE_GPU, SrtfPolicy())
    assert starts_and_ends(sim) == [
        (0, 1, "start"),
        (5, 1, "finish"),
        (5, 2, "start"),
        (15, 2, "finish"),
    ]


def test_srtf_preempts_exactly_the_victims_it_needs():
    # one node, 4 GPUs: jobs 1 (1 GPU, 100 s), 2 (1 GPU, 50 s), 3 (2 GPUs, 60 s) fill it up.
    # Job 4 (2 GPUs, 10 s) needs two GPUs: the longest remaining victims first are job 1
    # (99 s left) and job 3 (59 s); job 3 alone frees 2 GPUs, so job 1 is spared.
    cluster = ClusterSpec.homogeneous(1, 4, "V100")
    trace = make_trace([(1, 0, 100, 1), (2, 0, 50, 1), (3, 0, 60, 2), (4, 1, 10, 2)])
    sim = simulate(trace, cluster, SrtfPolicy())
    assert starts_and_ends(sim) == [
        (0, 2, "start"),  # shortest first
        (0, 3, "start"),
        (0, 1, "start"),
        (1, 3, "preempt"),
        (1, 4, "start"),
        (11, 4, "finish"),
        (11, 3, "start"),
        (50, 2, "finish"),
        (70, 3, "finish"),
        (100, 1, "finish"),
    ]


def test_srtf_preemption_loses_work_since_the_checkpoint():
    trace = make_trace([(1, 0, 100, 1), (2, 25, 10, 1)])
    sim = simulate(trace, ONE_GPU, SrtfPolicy(), checkpoint_interval=10, restart_overhead=3)
    # job 1 keeps 20 s of its 25 and pays 3 s again: 100 - 20 + 3 = 83 s after t = 35
    assert starts_and_ends(sim) == [
        (0, 1, "start"),
        (25, 1, "preempt"),
        (25, 2, "start"),
        (35, 2, "finish"),
        (35, 1, "start"),
        (118, 1, "finish"),
    ]
    assert sim.lost_seconds[0] == pytest.approx(8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_srtf_random_trace_keeps_invariants_and_never_thrashes(seed):
    rng = np.random.default_rng(seed)
    n = 150
    trace = make_trace(
        [
            (i, float(t), float(d), int(g))
            for i, (t, d, g) in enumerate(
                zip(
                    np.sort(rng.integers(0, 2000, n)),
                    rng.integers(1, 400, n),
                    rng.choice([1, 1, 2, 4, 8, 16], n),
                    strict=True,
                )
            )
        ]
    )
    cluster = ClusterSpec.homogeneous(4, 8, "V100", nodes_per_rack=2)
    sim = simulate(trace, cluster, SrtfPolicy(), checkpoint_interval=30, restart_overhead=5)
    assert (sim.jobs.status == 3).all()
    assert sim.jobs.preemptions.sum() > 0
    assert_no_thrash(sim.events)
    sjf = simulate(trace, cluster, SjfPolicy())
    assert (sjf.jobs.status == 3).all() and sjf.jobs.preemptions.sum() == 0
