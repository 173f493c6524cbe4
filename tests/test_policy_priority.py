"""Priority classes: exact event logs, non-preemptible classes, victim choice."""

import numpy as np
from conftest import make_trace, simulate
from test_policy_sjf import assert_no_thrash

from policies.priority import PriorityPolicy
from simulator.core.cluster import ClusterSpec

ONE_GPU = ClusterSpec.homogeneous(1, 1, "V100")


def log(sim):
    return [e for e in sim.events if e[2] != "arrive"]


def test_higher_priority_preempts_lower():
    trace = make_trace([(1, 0, 100, 1), (2, 20, 30, 1), (3, 25, 5, 1)], priority=[0, 1, 2])
    sim = simulate(trace, ONE_GPU, PriorityPolicy())
    assert log(sim) == [
        (0, 1, "start"),
        (20, 1, "preempt"),
        (20, 2, "start"),
        (25, 2, "preempt"),
        (25, 3, "start"),
        (30, 3, "finish"),
        (30, 2, "start"),
        (55, 2, "finish"),
        (55, 1, "start"),
        (135, 1, "finish"),
    ]


def test_classes_at_the_threshold_are_never_preempted():
    trace = make_trace([(1, 0, 100, 1), (2, 20, 30, 1), (3, 25, 5, 1)], priority=[0, 1, 2])
    sim = simulate(trace, ONE_GPU, PriorityPolicy(non_preemptible_threshold=1))
    assert log(sim) == [
        (0, 1, "start"),
        (20, 1, "preempt"),  # priority 0 < 1: preemptible
        (20, 2, "start"),  # priority 1: never preempted, job 3 waits
        (50, 2, "finish"),
        (50, 3, "start"),
        (55, 3, "finish"),
        (55, 1, "start"),
        (135, 1, "finish"),
    ]


def test_without_preemption_only_the_order_changes():
    trace = make_trace([(1, 0, 10, 1), (2, 1, 10, 1), (3, 2, 10, 1)], priority=[0, 0, 5])
    sim = simulate(trace, ONE_GPU, PriorityPolicy(preemption=False))
    assert [e for e in sim.events if e[2] == "start"] == [
        (0, 1, "start"),
        (10, 3, "start"),
        (20, 2, "start"),
    ]


def test_victims_lowest_priority_then_latest_start():
    # 3 GPUs busy: job 1 (prio 1, started t=0), job 2 (prio 0, t=0), job 3 (prio 0, t=1).
    # Job 4 (prio 2, 1 GPU) takes the GPU of the lowest priority, latest started: job 3.
    cluster = ClusterSpec.homogeneous(1, 3, "V100")
    trace = make_trace(
        [(1, 0, 50, 1), (2, 0, 50, 1), (3, 1, 50, 1), (4, 2, 5, 1)], priority=[1, 0, 0, 2]
    )
    sim = simulate(trace, cluster, PriorityPolicy())
    assert [e for e in sim.events if e[2] in ("preempt", "start") and e[0] == 2] == [
        (2, 3, "preempt"),
        (2, 4, "start"),
    ]
    assert list(sim.jobs.preemptions) == [0, 0, 1, 0]


def test_inference_over_training_random_mix_keeps_invariants():
    rng = np.random.default_rng(4)
    n = 120
    prio = rng.choice([0, 0, 1, 5], n)
    trace = make_trace(
        [
            (i, float(i * 7), float(rng.integers(5, 300)), int(rng.choice([1, 2, 4])))
            for i in range(n)
        ],
        priority=prio,
    )
    cluster = ClusterSpec.homogeneous(2, 4, "V100")
    sim = simulate(trace, cluster, PriorityPolicy(non_preemptible_threshold=5))
    assert (sim.jobs.status == 3).all()
    assert sim.jobs.preemptions[prio == 5].sum() == 0
    assert sim.jobs.preemptions[prio < 5].sum() > 0
    assert_no_thrash(sim.events)
