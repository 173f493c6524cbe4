"""Consolidation: migrations that let a blocked gang start, with their cost."""

import numpy as np
import pytest
from conftest import make_trace, simulate

from policies.consolidate import ConsolidatePolicy
from policies.gang import GangPolicy
from simulator.core.cluster import ClusterSpec

TWO_NODES = ClusterSpec.homogeneous(2, 4, "V100", nodes_per_rack=1)


def nodes(sim):
    return {sim.jobs.job_ids[j]: [int(n) for n in ns] for j, ns in enumerate(sim.jobs.nodes_used)}


def test_migrating_one_job_lets_the_gang_start():
    # spread placement puts A on node 0 and B on node 1; the 4-GPU gang C then fits nowhere
    # although 6 GPUs are free. At the first consolidation time (t=60) emptying node 0 costs
    # one 1-GPU migration (A -> node 1), the same as emptying node 1: the lowest node wins.
    # A loses 5 s of progress (migration_overhead) and ends at 105 instead of 100.
    trace = make_trace([("A", 0, 100, 1), ("B", 0, 200, 1), ("C", 10, 50, 4)])
    sim = simulate(
        trace, TWO_NODES, ConsolidatePolicy(interval=60, scoring="spread"), migration_overhead=5
    )
    assert sim.events == [
        (0, "A", "arrive"),
        (0, "B", "arrive"),
        (0, "A", "start"),
        (0, "B", "start"),
        (10, "C", "arrive"),
        (60, "A", "migrate"),
        (60, "C", "start"),
        (105, "A", "finish"),
        (110, "C", "finish"),
        (200, "B", "finish"),
    ]
    assert nodes(sim) == {"A": [1], "B": [1], "C": [0]}
    assert sim.jobs.migrations.tolist() == [1, 0, 0]
    # gang alone waits for A to finish
    gang = simulate(trace, TWO_NODES, GangPolicy(scoring="spread"))
    assert (100, "C", "start") in gang.events


def test_cheapest_target_moves_fewest_gpus_then_fewest_jobs():
    # spread: A (1 GPU) on node 0, B (3 GPUs) on node 1. Emptying node 0 moves 1 GPU (A fits
    # node 1's last GPU); emptying node 1 would move 3. A moves.
    trace = make_trace([("A", 0, 100, 1), ("B", 0, 100, 3), ("G", 1, 10, 4)])
    pol = ConsolidatePolicy(interval=30, scoring="spread")
    sim = simulate(trace, TWO_NODES, pol)
    assert [e for e in sim.events if e[2] in ("migrate", "start") and e[0] > 0] == [
        (30, "A", "migrate"),
        (30, "G", "start"),
    ]
    assert nodes(sim) == {"A": [1], "B": [1], "G": [0]}
    # spread: A and D (1 GPU each) on node 0, B (2 GPUs) on node 1: both targets move 2 GPUs,
    # node 1 needs one migration instead of two, so B moves.
    trace = make_trace([("A", 0, 100, 1), ("B", 0, 100, 2), ("D", 0, 100, 1), ("G", 1, 10, 4)])
    sim = simulate(trace, TWO_NODES, ConsolidatePolicy(interval=30, scoring="spread"))
    assert [e for e in sim.events if e[2] in ("migrate", "start") and e[0] > 0] == [
        (30, "B", "migrate"),
        (30, "G", "start"),
    ]
    assert nodes(sim)["G"] == [1] and nodes(sim)["B"] == [0]


def test_no_migration_without_a_feasible_plan_or_over_the_cap():
    # every GPU busy: moving jobs cannot help, nothing migrates
    full = make_trace([("A", 0, 50, 4), ("B", 0, 50, 3), ("C", 1, 10, 4)])
    sim = simulate(full, TWO_NODES, ConsolidatePolicy(interval=10))
    assert sim.jobs.migrations.sum() == 0 and (50, "C", "start") in sim.events
    # 3 nodes x 4 GPUs (first fit): a, b (1 GPU each) on node 0, y and z (3 GPUs) on nodes 1
    # and 2. The 4-GPU gang G fits only if a and b both move (one to each other node): two
    # migrations, more than max_migrations=1 allows.
    three = ClusterSpec.homogeneous(3, 4, "V100", nodes_per_rack=1)
    trace = make_trace(
        [("a", 0, 90, 1), ("b", 0, 90, 1), ("y", 0, 90, 3), ("z", 0, 90, 3), ("G", 1, 10, 4)]
    )
    capped = simulate(
        trace, three, ConsolidatePolicy(interval=10, max_migrations=1, scoring="firstfit")
    )
    assert capped.jobs.migrations.sum() == 0 and (90, "G", "start") in capped.events
    sim = simulate(
        trace, three, ConsolidatePolicy(interval=10, max_migrations=2, scoring="firstfit")
    )
    assert [e for e in sim.events if e[0] == 10] == [
        (10, "a", "migrate"),
        (10, "b", "migrate"),
        (10, "G", "start"),
    ]
    assert nodes(sim) == {"a": [1], "b": [2], "y": [1], "z": [2], "G": [0]}


def test_bad_parameters():
    with pytest.raises(ValueError):
        ConsolidatePolicy(interval=0)
    with pytest.raises(ValueError):
        ConsolidatePolicy(max_migrations=0)


def test_random_trace_keeps_invariants():
    rng = np.random.default_rng(5)
    n = 100
    trace = make_trace(
        [
            (i, float(i * 13), float(rng.integers(20, 600)), int(rng.choice([1, 1, 2, 3, 4, 8])))
            for i in range(n)
        ]
    )
    cluster = ClusterSpec.homogeneous(4, 4, "V100", nodes_per_rack=2)
    sim = simulate(
        trace, cluster, ConsolidatePolicy(interval=100, scoring="spread"), migration_overhead=7
    )
    assert (sim.jobs.status == 3).all() and sim.jobs.migrations.sum() > 0
