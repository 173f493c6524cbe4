"""Gavel's round-based policies and the heterogeneity-aware greedy: exact tiny scenarios."""

from __future__ import annotations

import pytest
from conftest import make_trace, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.gavel_ftf import GavelFTF
from policies.gavel_maxmin import GavelMaxMin
from policies.gavel_maxsum import GavelMaxSum
from policies.hetero_greedy import HeteroGreedy
from simulator.core.cluster import ClusterSpec
from simulator.core.jobs import Status
from simulator.models.speed import SpeedModel
from simulator.models.throughput import ThroughputTable

TABLE = ThroughputTable.from_mapping(
    {
        "k80": {"('A', 1)": {"null": 1.0}, "('B', 1)": {"null": 1.5}, "('C', 1)": {"null": 1.0}},
        "v100": {"('A', 1)": {"null": 4.0}, "('B', 1)": {"null": 2.0}, "('C', 1)": {"null": 4.0}},
    },
    "inline",
)


def two_types() -> ClusterSpec:
    """Node 0: one K80; node 1: one V100."""
    return ClusterSpec.from_groups(
        [
            {"count": 1, "num_gpus": 1, "gpu_type": "K80"},
            {"count": 1, "num_gpus": 1, "gpu_type": "V100"},
        ]
    )


@pytest.mark.parametrize("policy", [GavelMaxMin, GavelFTF])
def test_two_equal_jobs_share_one_gpu_by_rounds(policy):
    # X = 0.5 each (both objectives, by symmetry). Round 1: both have priority inf, job 0
    # wins the tie. Round 2 (t=100): job 0 had its whole share (priority 0.5), job 1 none
    # (inf). Round 3 (t=200): both 0.5/0.5 = 1, equal deficits: job 0. It finishes at 300, at
    # the round boundary, and job 1 runs its last 100 s.
    trace = make_trace([(0, 0.0, 200.0, 1), (1, 0.0, 200.0, 1)])
    spec = ClusterSpec.homogeneous(1, 1, "V100")
    sim = simulate(trace, spec, policy(round_length=100.0))
    assert sim.events == [
        (0, 0, "arrive"),
        (0, 1, "arrive"),
        (0, 0, "start"),
        (100, 0, "preempt"),
        (100, 1, "start"),
        (200, 1, "preempt"),
        (200, 0, "start"),
        (300, 0, "finish"),
        (300, 1, "start"),
        (400, 1, "finish"),
    ]
    assert sim.policy.rounds == 4


def test_max_sum_runs_one_of_two_equal_jobs_to_the_end():
    # any split of the GPU has the same sum: HiGHS returns a vertex (X = 1 for one job), so
    # that job runs its 200 s without preemption, then the other
    trace = make_trace([(0, 0.0, 200.0, 1), (1, 0.0, 200.0, 1)])
    sim = simulate(trace, ClusterSpec.homogeneous(1, 1, "V100"), GavelMaxSum(round_length=100.0))
    assert sim.jobs.preemptions.sum() == 0
    assert sorted(sim.jobs.end.tolist()) == [200.0, 400.0]


def test_max_sum_puts_the_job_that_gains_most_on_the_v100():
    # raw steps/s: A 4 (V100) / 1 (K80), B 2 / 1.5. Sum 4 + 1.5 beats 2 + 1: A on the V100,
    # B on the K80 at 0.75 of its V100 speed: 150 s of V100 work take 200 s.
    trace = make_trace(
        [(0, 0.0, 400.0, 1), (1, 0.0, 150.0, 1)], job_type=["A", "B"], ref_steps_per_s=[4.0, 2.0]
    )
    sim = simulate(
        trace, two_types(), GavelMaxSum(round_length=100.0), speed=SpeedModel("V100", TABLE)
    )
    assert [e for e in sim.events if e[2] != "arrive"] == [
        (0, 0, "start"),
        (0, 1, "start"),
        (200, 1, "finish"),
        (400, 0, "finish"),
    ]
    assert list(sim.jobs.nodes_used[0]) == [1] and list(sim.jobs.nodes_used[1]) == [0]
    assert sim.jobs.type_seconds[1].tolist() == [200.0, 0.0]


def test_max_min_rotates_types_and_conserves_work():
    # two jobs, one K80 + one V100: every round both run, on the types the priorities pick;
    # the work done (speed x time per type) adds up to each duration exactly
    trace = make_trace([(0, 0.0, 500.0, 1), (1, 0.0, 500.0, 1)], job_type=["A", "B"])
    speed = SpeedModel("V100", TABLE)
    sim = simulate(trace, two_types(), GavelMaxMin(round_length=100.0), speed=speed)
    k80 = {0: 0.25, 1: 0.75}
    for j in (0, 1):
        on_k80, on_v100 = sim.jobs.type_seconds[j]
        assert on_k80 * k80[j] + on_v100 == pytest.approx(500.0)
        assert on_k80 > 0 and on_v100 > 0  # max-min gives both some V100 time
    assert sim.jobs.migrations.sum() + sim.jobs.preemptions.sum() > 0


def test_round_length_is_checked():
    with pytest.raises(ValueError, match="round_length"):
        GavelMaxMin(round_length=0)


def test_hetero_greedy_fastest_type_first_with_a_speed_floor():
    # A (K80 at 0.25) takes the V100; B (K80 at 0.75 >= 0.5) takes the K80; C (0.25 < 0.5)
    # waits for the V100 rather than run 4x slower, and gets it when A ends at 100.
    trace = make_trace(
        [(0, 0.0, 100.0, 1), (1, 1.0, 300.0, 1), (2, 2.0, 50.0, 1)], job_type=["A", "B", "C"]
    )
    sim = simulate(
        trace,
        two_types(),
        HeteroGreedy(min_relative_speed=0.5, starvation_timeout=None),
        speed=SpeedModel("V100", TABLE),
    )
    assert [e for e in sim.events if e[2] != "arrive"] == [
        (0, 0, "start"),
        (1, 1, "start"),
        (100, 0, "finish"),
        (100, 2, "start"),
        (150, 2, "finish"),
        (401, 1, "finish"),
    ]
    assert list(sim.jobs.nodes_used[2]) == [1]


def test_hetero_greedy_starving_head_blocks_overtaking():
    # one node of 2 V100s; job 0 holds one until 100. Job 1 (2 GPUs) waits from t=1; with a
    # 10 s timeout it blocks job 2 (arrives at 20) from taking the free GPU.
    trace = make_trace(
        [(0, 0.0, 100.0, 1), (1, 1.0, 10.0, 2), (2, 20.0, 10.0, 1)],
        job_type=["B", "B", "B"],
    )
    table = ThroughputTable.from_mapping(
        {w: {"('B', 1)": {"null": 1.0}, "('B', 2)": {"null": 2.0}} for w in ("k80", "v100")}
    )
    spec = ClusterSpec.from_groups([{"count": 1, "num_gpus": 2, "gpu_type": "V100"}])
    guarded = simulate(
        trace, spec, HeteroGreedy(starvation_timeout=10.0), speed=SpeedModel("V100", table)
    )
    assert guarded.jobs.start.tolist() == [0.0, 100.0, 110.0]
    free = simulate(
        trace, spec, HeteroGreedy(starvation_timeout=None), speed=SpeedModel("V100", table)
    )
    assert free.jobs.start.tolist() == [0.0, 100.0, 20.0]  # job 2 overtakes on the free GPU


def test_quiet_rounds_are_skipped_and_the_grid_resumes():
    # job 0 alone on the V100 (its allocation's only type): rounds after t=0 would repeat t=0,
    # so none is held until job 1 arrives at 150; the next round is on the grid, at 200
    trace = make_trace([(0, 0.0, 1000.0, 1), (1, 150.0, 10.0, 1)], job_type=["A", "C"])
    policy = GavelMaxSum(round_length=100.0)
    sim = simulate(trace, two_types(), policy, speed=SpeedModel("V100", TABLE))
    assert sim.jobs.start.tolist() == [0.0, 200.0]
    assert sim.jobs.end[0] == 1000.0 and list(sim.jobs.nodes_used[0]) == [1]
    assert sim.jobs.end[1] == 200.0 + 10.0 / 0.25  # C runs on the K80 at a quarter speed
    # rounds at 0 (job 0 starts), 100 (it repeats: quiet from here), 200 (job 1 arrived),
    # 300 (job 1 ended at 240; then quiet until the end): 4 instead of 10
    assert policy.rounds == 4


def test_agnostic_baseline_spreads_time_over_types():
    # agnostic: one pooled type, the job's time spread 0.5 / 0.5 over K80 and V100 by size;
    # the priorities then alternate it: K80 0-100 (25 s of work), V100 100-200 (125), K80
    # 200-300 (the tie goes to the first type; 150), V100 300-400: done at 400. The aware LP
    # keeps it on the V100: done at 250.
    trace = make_trace([(0, 0.0, 250.0, 1)], job_type=["A"])
    speed = SpeedModel("V100", TABLE)
    blind = simulate(trace, two_types(), GavelMaxMin(100.0, heterogeneity_aware=False), speed=speed)
    assert blind.jobs.end[0] == 400.0 and blind.jobs.migrations[0] == 3
    assert blind.jobs.type_seconds[0].tolist() == [200.0, 200.0]
    aware = simulate(trace, two_types(), GavelMaxMin(100.0), speed=speed)
    assert aware.jobs.end[0] == 250.0 and aware.jobs.migrations[0] == 0


def small_hetero() -> ClusterSpec:
    """Two nodes of 2 K80s and two nodes of 2 V100s."""
    return ClusterSpec.from_groups(
        [
            {"count": 2, "num_gpus": 2, "gpu_type": "K80"},
            {"count": 2, "num_gpus": 2, "gpu_type": "V100"},
        ]
    )


TABLE2 = ThroughputTable.from_mapping(
    {
        w: {
            f"('{t}', {g})": {"null": rate * g * (0.9 if g > 1 else 1.0)}
            for t, rate in rates.items()
            for g in (1, 2)
        }
        for w, rates in (
            ("k80", {"A": 1.0, "B": 1.5, "C": 0.5}),
            ("v100", {"A": 4.0, "B": 2.0, "C": 4.0}),
        )
    },
    "inline2",
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 600),
            st.integers(10, 900),
            st.sampled_from([1, 1, 2]),
            st.sampled_from("ABC"),
        ),
        min_size=1,
        max_size=9,
    ),
    st.sampled_from(["maxmin", "ftf", "maxsum", "greedy", "maxmin_blind"]),
)
def test_work_on_each_type_adds_up_to_the_duration(rows, name):
    # every finished job: sum over types of (seconds there) x (its speed there) = duration,
    # whatever the rounds did (no checkpoint loss, no overheads); books checked every event
    trace = make_trace(
        [(i, float(t), float(d), g) for i, (t, d, g, _) in enumerate(rows)],
        job_type=[jt for *_, jt in rows],
    )
    policy = {
        "maxmin": lambda: GavelMaxMin(round_length=60.0),
        "ftf": lambda: GavelFTF(round_length=60.0),
        "maxsum": lambda: GavelMaxSum(round_length=60.0),
        "greedy": lambda: HeteroGreedy(),
        "maxmin_blind": lambda: GavelMaxMin(round_length=60.0, heterogeneity_aware=False),
    }[name]()
    sim = simulate(trace, small_hetero(), policy, speed=SpeedModel("V100", TABLE2))
    jobs = sim.jobs
    assert (jobs.status == Status.FINISHED).all()
    for j in range(jobs.n):
        secs = jobs.type_seconds[j] / jobs.num_gpus[j]
        assert float(secs @ jobs.speed[j]) == pytest.approx(jobs.duration[j], rel=1e-9)
        assert jobs.type_seconds[j].sum() == pytest.approx(jobs.gpu_seconds[j], rel=1e-12)
