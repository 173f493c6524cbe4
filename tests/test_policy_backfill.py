"""EASY and conservative backfilling on real placements: exact event logs."""

import numpy as np
import pytest
from conftest import make_trace, simulate

from policies.backfill import BackfillPolicy
from simulator.core.cluster import ClusterSpec

TWO_NODES = ClusterSpec.homogeneous(2, 4, "V100", nodes_per_rack=1)
ONE_NODE = ClusterSpec.homogeneous(1, 4, "V100")


def log(sim):
    return [e for e in sim.events if e[2] != "arrive"]


def nodes(sim):
    return {sim.jobs.job_ids[j]: [int(n) for n in ns] for j, ns in enumerate(sim.jobs.nodes_used)}


def test_easy_reservation_is_a_real_placement():
    # 2 nodes x 4 GPUs. At t=10 jobs A and B end: 2 GPUs free on each node. Counting GPUs
    # ("4 free") would let the 4-GPU head H start or reserve at t=10; on real nodes H can only
    # start at t=50 on node 0 (C ends), so it is reserved there. J (30 s) ends before 50 and
    # backfills; K (100 s) would hold GPUs past 50, which is fine only off node 0.
    trace = make_trace(
        [
            ("A", 0, 10, 2),
            ("C", 0, 50, 2),
            ("B", 0, 10, 2),
            ("D", 0, 100, 2),
            ("H", 1, 20, 4),
            ("J", 2, 30, 2),
            ("K", 3, 100, 2),
        ]
    )
    sim = simulate(trace, TWO_NODES, BackfillPolicy())
    assert log(sim) == [
        (0, "A", "start"),
        (0, "C", "start"),
        (0, "B", "start"),
        (0, "D", "start"),
        (10, "A", "finish"),
        (10, "B", "finish"),
        (10, "J", "start"),
        (10, "K", "start"),
        (40, "J", "finish"),
        (50, "C", "finish"),
        (50, "H", "start"),
        (70, "H", "finish"),
        (100, "D", "finish"),
        (110, "K", "finish"),
    ]
    got = nodes(sim)
    assert got["H"] == [0] and got["K"] == [1] and got["J"] == [0]


def test_easy_does_not_backfill_onto_the_reserved_node():
    # same as above without J: best fit would put K on node 0 (lowest id), but node 0 is
    # reserved for H from t=50 while K runs until t=110, so K goes to node 1
    trace = make_trace(
        [
            ("A", 0, 10, 2),
            ("C", 0, 50, 2),
            ("B", 0, 10, 2),
            ("D", 0, 100, 2),
            ("H", 1, 20, 4),
            ("K", 3, 100, 2),
        ]
    )
    sim = simulate(trace, TWO_NODES, BackfillPolicy())
    assert (10, "K", "start") in sim.events and (50, "H", "start") in sim.events
    assert nodes(sim)["K"] == [1]


EASY_VS_CONSERVATIVE = make_trace(
    [("R0", 0, 10, 4), ("R1", 0, 50, 2), ("H", 1, 100, 4), ("Q", 2, 10, 4), ("S", 3, 100, 2)]
)


def test_easy_lets_a_backfilled_job_delay_the_second_waiting_job():
    # H is reserved on node 0 from t=10; S (on node 1, free now) does not touch that
    # reservation, but it blocks Q, which could have run on node 1 at t=50.
    sim = simulate(EASY_VS_CONSERVATIVE, TWO_NODES, BackfillPolicy())
    assert log(sim) == [
        (0, "R0", "start"),
        (0, "R1", "start"),
        (3, "S", "start"),
        (10, "R0", "finish"),
        (10, "H", "start"),
        (50, "R1", "finish"),
        (103, "S", "finish"),
        (103, "Q", "start"),
        (110, "H", "finish"),
        (113, "Q", "finish"),
    ]


def test_conservative_reserves_for_every_waiting_job():
    # Q holds a reservation on node 1 for [50, 60): S may not start before it ends
    sim = simulate(EASY_VS_CONSERVATIVE, TWO_NODES, BackfillPolicy(conservative=True))
    assert log(sim) == [
        (0, "R0", "start"),
        (0, "R1", "start"),
        (10, "R0", "finish"),
        (10, "H", "start"),
        (50, "R1", "finish"),
        (50, "Q", "start"),
        (60, "Q", "finish"),
        (60, "S", "start"),
        (110, "H", "finish"),
        (160, "S", "finish"),
    ]


def test_walltime_estimates_decide_what_fits_before_the_reservation():
    # one node, 4 GPUs: R (2 GPUs) ends at 10; head H needs all 4. J runs 5 s: with the oracle
    # it ends before 10 and backfills; with its 20 s walltime it would not, so it waits.
    trace = make_trace(
        [("R", 0, 10, 2), ("H", 1, 5, 4), ("J", 2, 5, 2)], walltime=[10.0, 5.0, 20.0]
    )
    oracle = simulate(trace, ONE_NODE, BackfillPolicy())
    assert (2, "J", "start") in oracle.events
    walltime = simulate(trace, ONE_NODE, BackfillPolicy(estimate_column="walltime"))
    assert log(walltime) == [
        (0, "R", "start"),
        (10, "R", "finish"),
        (10, "H", "start"),
        (15, "H", "finish"),
        (15, "J", "start"),
        (20, "J", "finish"),
    ]


def test_a_job_past_its_estimate_may_end_any_moment():
    # R's walltime says 10 s, it runs 30. From t=10 on H's reservation is "now": K (arriving at
    # 12) must not take the GPUs H needs, so it waits for H even though it is short.
    trace = make_trace(
        [("R", 0, 30, 2), ("H", 1, 5, 4), ("K", 12, 5, 2)], walltime=[10.0, 5.0, 5.0]
    )
    sim = simulate(trace, ONE_NODE, BackfillPolicy(estimate_column="walltime"))
    assert log(sim) == [
        (0, "R", "start"),
        (30, "R", "finish"),
        (30, "H", "start"),
        (35, "H", "finish"),
        (35, "K", "start"),
        (40, "K", "finish"),
    ]


@pytest.mark.parametrize("conservative", [False, True])
def test_no_job_is_delayed_past_its_reservation_with_exact_estimates(conservative):
    # with oracle estimates, every job starts no later than the first reservation it got
    rng = np.random.default_rng(3)
    n = 60
    trace = make_trace(
        [
            (i, float(t), float(rng.integers(1, 100)), int(rng.choice([1, 2, 4, 8])))
            for i, t in enumerate(np.sort(rng.integers(0, 300, n)))
        ]
    )
    cluster = ClusterSpec.homogeneous(2, 8, "V100")

    class Watch(BackfillPolicy):
        first = {}

        def schedule(self, view):
            yield from super().schedule(view)
            for j, (t, _) in self.reservations.items():
                self.first.setdefault(j, t)

    pol = Watch(conservative=conservative)
    sim = simulate(trace, cluster, pol)
    assert (sim.jobs.status == 3).all()
    assert pol.first, "the scenario should make reservations"
    for j, t in pol.first.items():
        if conservative or j == min(pol.first):
            assert sim.jobs.start[j] <= t + 1e-9
