"""Tiresias (discretised 2D-LAS): demotion, preemption, promotion, re-evaluation timing."""

import numpy as np
import pytest
from conftest import make_trace, simulate
from test_policy_sjf import assert_no_thrash

from policies.tiresias import TiresiasPolicy
from simulator.core.cluster import ClusterSpec

ONE_GPU = ClusterSpec.homogeneous(1, 1, "V100")
TRACE = make_trace([(1, 0, 100, 1), (2, 20, 30, 1), (3, 25, 5, 1)])


def log(sim):
    return [e for e in sim.events if e[2] != "arrive"]


def test_two_queues_demotion_preemption_and_fifo_within_queue():
    # threshold 10 GPU-s: job 1 drops to queue 1 at t=10; job 2 (queue 0) preempts it at 20;
    # job 3 arrives at 25 but job 2 is in queue 0 too (FIFO, no preemption) until job 2
    # drops at t=30. At 35 both waiting jobs are in queue 1: FIFO gives job 1 the GPU.
    # Job 2 was preempted at 30 after running 10 s: promoted at 30 + 8 x 10 = 110.
    sim = simulate(TRACE, ONE_GPU, TiresiasPolicy(thresholds=[10], promote_knob=8))
    assert log(sim) == [
        (0, 1, "start"),
        (20, 1, "preempt"),
        (20, 2, "start"),
        (30, 2, "preempt"),
        (30, 3, "start"),
        (35, 3, "finish"),
        (35, 1, "start"),
        (110, 1, "preempt"),
        (110, 2, "start"),
        (130, 2, "finish"),
        (130, 1, "start"),
        (135, 1, "finish"),
    ]


def test_promotion_resets_service():
    # knob 0.5: job 1 (preempted at 20 after 20 s) is promoted at 30, job 2 (preempted at 30
    # after 10 s) at 35, job 1 again (preempted at 40, 30 s run) at 55, job 2 at 60.
    sim = simulate(TRACE, ONE_GPU, TiresiasPolicy(thresholds=[10], promote_knob=0.5))
    assert log(sim) == [
        (0, 1, "start"),
        (20, 1, "preempt"),
        (20, 2, "start"),
        (30, 2, "preempt"),
        (30, 1, "start"),
        (40, 1, "preempt"),
        (40, 2, "start"),
        (50, 2, "preempt"),
        (50, 3, "start"),
        (55, 3, "finish"),
        (55, 1, "start"),
        (65, 1, "preempt"),
        (65, 2, "start"),
        (75, 2, "finish"),
        (75, 1, "start"),
        (135, 1, "finish"),
    ]


def test_no_promotion_and_three_queues():
    # thresholds 10 and 40: job 1 is in queue 2 from t=40 (attained 40 GPU-s); jobs 2 and 3
    # arrive in queue 0 and preempt it; without promotion job 1 waits until both are done.
    trace = make_trace([(1, 0, 100, 1), (2, 50, 30, 1), (3, 55, 20, 1)])
    sim = simulate(trace, ONE_GPU, TiresiasPolicy(thresholds=[10, 40], promote_knob=None))
    assert log(sim) == [
        (0, 1, "start"),
        (50, 1, "preempt"),
        (50, 2, "start"),  # job 3 (queue 0) waits: job 2 is queue 0 until t=60
        (60, 2, "preempt"),
        (60, 3, "start"),  # at 70 job 3 joins job 2 in queue 1: same queue, no preemption
        (80, 3, "finish"),
        (80, 2, "start"),
        (100, 2, "finish"),
        (100, 1, "start"),
        (150, 1, "finish"),
    ]


def test_service_counts_gpus():
    # a 4-GPU job attains 4 GPU-s per second: it leaves queue 0 (10 GPU-s) after 2.5 s
    cluster = ClusterSpec.homogeneous(1, 4, "V100")
    trace = make_trace([(1, 0, 100, 4), (2, 5, 10, 1)])
    sim = simulate(trace, cluster, TiresiasPolicy(thresholds=[10]))
    assert log(sim)[:3] == [(0, 1, "start"), (5, 1, "preempt"), (5, 2, "start")]


def test_periodic_interval_rounds_wakeups_up():
    # demotion of job 1 happens at t=10 but is only noticed at the next multiple of 15;
    # job 2 arrives at t=12 and must wait for the t=15 re-evaluation to preempt job 1.
    trace = make_trace([(1, 0, 100, 1), (2, 12, 5, 1)])
    exact = simulate(trace, ONE_GPU, TiresiasPolicy(thresholds=[10]))
    periodic = simulate(trace, ONE_GPU, TiresiasPolicy(thresholds=[10], interval=15))
    assert (12, 2, "start") in exact.events
    # job 2's own arrival pass at t=12 already sees job 1 demoted (service is computed, not
    # cached), so periodic re-evaluation changes nothing here ...
    assert (12, 2, "start") in periodic.events
    # ... but without an arrival the demotion is acted on only at multiples of 15
    trace = make_trace([(1, 0, 100, 1), (2, 0, 100, 1)])
    cluster = ClusterSpec.homogeneous(1, 1, "V100")
    exact = simulate(trace, cluster, TiresiasPolicy(thresholds=[10], promote_knob=None))
    periodic = simulate(
        trace, cluster, TiresiasPolicy(thresholds=[10], promote_knob=None, interval=15)
    )
    assert log(exact)[:3] == [(0, 1, "start"), (10, 1, "preempt"), (10, 2, "start")]
    assert log(periodic)[:3] == [(0, 1, "start"), (15, 1, "preempt"), (15, 2, "start")]


def test_bad_parameters():
    with pytest.raises(ValueError):
        TiresiasPolicy(thresholds=[10, 5])
    with pytest.raises(ValueError):
        TiresiasPolicy(interval=0)


def test_random_trace_keeps_invariants():
    rng = np.random.default_rng(7)
    n = 150
    trace = make_trace(
        [
            (i, float(t), float(rng.integers(1, 2000)), int(rng.choice([1, 1, 2, 4, 8])))
            for i, t in enumerate(np.sort(rng.integers(0, 5000, n)))
        ]
    )
    cluster = ClusterSpec.homogeneous(2, 8, "V100")
    sim = simulate(
        trace,
        cluster,
        TiresiasPolicy(thresholds=[500, 5000], promote_knob=2),
        checkpoint_interval=60,
        restart_overhead=10,
    )
    assert (sim.jobs.status == 3).all() and sim.jobs.preemptions.sum() > 0
    assert_no_thrash(sim.events)
