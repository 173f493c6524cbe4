"""Hierarchical fair share: KAI-style shares, DRF, reclaim, decayed usage; fairness metrics."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import make_trace, simulate
from test_policy_sjf import assert_no_thrash

from policies.fair import FairPolicy, QueueNode, build_tree, fair_shares
from simulator.core.cluster import ClusterSpec
from simulator.output import fairness
from simulator.output.metrics import queue_timeline_frame

EIGHT = ClusterSpec.homogeneous(1, 8, "V100")


def shares(spec, demand, capacity):
    nodes, _ = build_tree(spec, "default", [])
    dem = np.zeros(len(nodes))
    for n in nodes:
        dem[n.index] = demand.get(n.name, 0.0)
    w = np.array([n.over_quota_weight for n in nodes])
    got = fair_shares(nodes, dem, capacity, w)
    return {n.name: round(float(got[n.index]), 9) for n in nodes[1:] if n.name != "default"}


# ---------------------------------------------------------------------- fair shares


def test_deserved_first_then_by_weight():
    spec = [{"name": "a", "deserved": 2}, {"name": "b", "deserved": 2, "over_quota_weight": 3}]
    assert shares(spec, {"a": 10, "b": 10}, 10) == {"a": 3.5, "b": 6.5}


def test_idle_queue_share_goes_to_the_busy_one():
    spec = [{"name": "a", "deserved": 4}, {"name": "b", "deserved": 4}]
    assert shares(spec, {"a": 8}, 8) == {"a": 8, "b": 0}
    assert shares(spec, {"a": 8, "b": 1}, 8) == {"a": 7, "b": 1}
    assert shares(spec, {"a": 8, "b": 8}, 8) == {"a": 4, "b": 4}


def test_limit_caps_and_the_rest_flows_on():
    spec = [
        {"name": "a", "deserved": 2},
        {"name": "b", "deserved": 2, "over_quota_weight": 3, "limit": 5},
    ]
    assert shares(spec, {"a": 10, "b": 10}, 10) == {"a": 5, "b": 5}


def test_quotas_larger_than_the_cluster_are_scaled():
    spec = [{"name": "a", "deserved": 8}, {"name": "b", "deserved": 8}]
    assert shares(spec, {"a": 8, "b": 8}, 8) == {"a": 4, "b": 4}


def test_hierarchy_divides_recursively():
    spec = [
        {
            "name": "org1",
            "deserved": 6,
            "children": [{"name": "x", "deserved": 2}, {"name": "y"}],
        },
        {"name": "org2", "deserved": 2},
    ]
    # root: org1 6, org2 2, the last 2 split 1:1 -> 7 / 3; org1's 7: x 2, y 0, 5 split 1:1
    assert shares(spec, {"x": 10, "y": 10, "org2": 10}, 10) == {
        "org1": 7,
        "x": 4.5,
        "y": 2.5,
        "org2": 3,
    }


def test_tree_mapping_and_errors():
    nodes, leaf = build_tree(
        [{"name": "a"}, {"name": "p", "children": [{"name": "c"}]}], "dflt", ["a", "c", "zzz"]
    )
    names = [n.name for n in nodes]
    assert [names[i] for i in leaf] == ["a", "c", "dflt"]
    with pytest.raises(ValueError, match="inner queue"):
        build_tree([{"name": "p", "children": [{"name": "c"}]}], "dflt", ["p"])
    with pytest.raises(ValueError, match="unique"):
        build_tree([{"name": "a"}, {"name": "a"}], "dflt", [])
    with pytest.raises(ValueError):
        build_tree([{"name": "a", "deserved": -1}], "dflt", [])
    assert isinstance(nodes[0], QueueNode) and math.isinf(nodes[1].limit)


# ---------------------------------------------------------------------- the policy

FIFTY_FIFTY = [{"name": "a", "deserved": 4}, {"name": "b", "deserved": 4}]
BURST = make_trace(
    [(f"a{i}", 0, 1000, 1) for i in range(8)] + [(f"b{i}", 10, 100, 1) for i in range(4)],
    queue=["a"] * 8 + ["b"] * 4,
)


def test_reclaim_returns_the_idle_queue_its_share_within_one_job_length():
    # queue b is idle while a fills all 8 GPUs (a's fair share is 8 then); when b bursts at
    # t=10 both deserve 4: reclaim preempts a's four latest jobs at once.
    sim = simulate(BURST, EIGHT, FairPolicy(queues=FIFTY_FIFTY, reclaim=True))
    at10 = [e for e in sim.events if e[0] == 10 and e[2] != "arrive"]
    assert at10 == [
        (10, "a7", "preempt"),
        (10, "b0", "start"),
        (10, "a6", "preempt"),
        (10, "b1", "start"),
        (10, "a5", "preempt"),
        (10, "b2", "start"),
        (10, "a4", "preempt"),
        (10, "b3", "start"),
    ]
    assert (110, "a4", "start") in sim.events  # a gets its GPUs back when b is done
    share = fairness.queue_shares(queue_timeline_frame(sim), capacity=8)
    assert share.loc[10.0, "b"] == 0.5 and share.loc[10.0, "a"] == 0.5
    # within one b-job length (100 s) of the burst, b holds its 50 % share
    assert fairness.time_average(share["b"], 10, 110) == pytest.approx(0.5)
    assert_no_thrash(sim.events)


def test_without_reclaim_the_idle_queue_waits_for_the_busy_one():
    sim = simulate(BURST, EIGHT, FairPolicy(queues=FIFTY_FIFTY, reclaim=False))
    assert [e for e in sim.events if e[2] == "start" and e[1].startswith("b")] == [
        (1000, "b0", "start"),
        (1000, "b1", "start"),
        (1000, "b2", "start"),
        (1000, "b3", "start"),
    ]
    share = fairness.queue_shares(queue_timeline_frame(sim), capacity=8)
    assert fairness.time_average(share["b"], 10, 110) == 0.0
    assert sim.jobs.preemptions.sum() == 0


def test_lowest_usage_to_share_ratio_goes_first_and_limits_hold():
    # a and b deserve 2 and 6 of 8 GPUs; all jobs arrive at once: b gets 6, a 2.
    trace = make_trace(
        [(f"a{i}", 0, 10, 1) for i in range(8)] + [(f"b{i}", 0, 10, 1) for i in range(8)],
        queue=["a"] * 8 + ["b"] * 8,
    )
    pol = FairPolicy(queues=[{"name": "a", "deserved": 2}, {"name": "b", "deserved": 6}])
    sim = simulate(trace, EIGHT, pol)
    first = [e[1][0] for e in sim.events if e[2] == "start" and e[0] == 0]
    assert sorted(first) == ["a"] * 2 + ["b"] * 6
    # a limit keeps a queue below it even when GPUs are idle
    limited = FairPolicy(queues=[{"name": "a", "limit": 3}, {"name": "b", "limit": 1}])
    sim = simulate(trace, EIGHT, limited)
    first = [e[1][0] for e in sim.events if e[2] == "start" and e[0] == 0]
    assert sorted(first) == ["a"] * 3 + ["b"]


def test_dominant_resource_counts_cpu_heavy_jobs_as_bigger():
    # 8 GPUs, 80 cores. Queue a's jobs take 1 GPU and 40 cores (dominant share 1/2, i.e. 4
    # GPU-equivalents), b's 1 GPU and no CPU; equal weights, fair shares 4 / 4. The most
    # under-served queue starts next (ties to a): with DRF one a-job is already a's share, so
    # b catches up with four jobs before a's second; counting GPUs only, a's share is 2 (its
    # demand) and a's second job comes after b's third.
    cluster = ClusterSpec.homogeneous(1, 8, "V100", cpus_per_node=80)
    trace = make_trace(
        [(f"a{i}", 0, 10, 1) for i in range(2)] + [(f"b{i}", 0, 10, 1) for i in range(6)],
        queue=["a"] * 2 + ["b"] * 6,
        num_cpus=[40.0] * 2 + [0.0] * 6,
    )
    drf = FairPolicy()
    sim = simulate(trace, cluster, drf)
    assert drf.size.tolist() == [4.0, 4.0] + [1.0] * 6
    assert [e[1] for e in sim.events if e[2] == "start"] == [
        "a0", "b0", "b1", "b2", "b3", "a1", "b4", "b5"
    ]  # fmt: skip
    gpus_only = FairPolicy(dominant_resource=False)
    sim = simulate(trace, cluster, gpus_only)
    assert gpus_only.size.tolist() == [1.0] * 8
    assert [e[1] for e in sim.events if e[2] == "start"] == [
        "a0", "b0", "b1", "b2", "a1", "b3", "b4", "b5"
    ]  # fmt: skip


def test_decayed_usage_tilts_the_surplus_to_the_queue_that_used_less():
    # a used all 4 GPUs for 1000 s; then a and b each want 4 GPUs. Plain fair share: 2 / 2.
    # With a 1000 s half-life a's weight drops to the 0.05 floor: b gets 3, a 1.
    cluster = ClusterSpec.homogeneous(1, 4, "V100")
    rows = [(f"h{i}", 0, 1000, 1) for i in range(4)]
    rows += [(f"a{i}", 1000, 100, 1) for i in range(4)] + [
        (f"b{i}", 1000, 100, 1) for i in range(4)
    ]
    trace = make_trace(rows, queue=["a"] * 8 + ["b"] * 4)
    for half_life, want in ((None, ["a", "a", "b", "b"]), (1000.0, ["a", "b", "b", "b"])):
        sim = simulate(trace, cluster, FairPolicy(usage_decay_half_life=half_life))
        got = sorted(e[1][0] for e in sim.events if e[2] == "start" and e[0] == 1000)
        assert got == want, half_life


def test_random_multi_queue_trace_keeps_invariants():
    rng = np.random.default_rng(11)
    n = 150
    queues = rng.choice(["a", "b", "c", "other"], n)
    trace = make_trace(
        [
            (i, float(i * 5), float(rng.integers(10, 500)), int(rng.choice([1, 2, 4])))
            for i in range(n)
        ],
        queue=queues,
        num_cpus=rng.choice([1.0, 8.0], n),
    )
    cluster = ClusterSpec.homogeneous(2, 8, "V100", cpus_per_node=64)
    tree = [
        {
            "name": "grp",
            "deserved": 8,
            "children": [{"name": "a", "deserved": 4}, {"name": "b", "limit": 6}],
        },
        {"name": "c", "deserved": 4, "over_quota_weight": 2},
    ]
    sim = simulate(
        trace, cluster, FairPolicy(queues=tree, default_queue="rest", usage_decay_half_life=600)
    )
    assert (sim.jobs.status == 3).all()
    assert_no_thrash(sim.events)


# ---------------------------------------------------------------------- fairness metrics


def test_jain_index():
    assert fairness.jain_index([1, 1, 1, 1]) == 1.0
    assert fairness.jain_index([1, 0, 0, 0]) == 0.25
    assert fairness.jain_index([]) == 1.0 and fairness.jain_index([0, 0]) == 1.0
    assert fairness.jain_index([3, 1]) == pytest.approx(16 / 20)
    with pytest.raises(ValueError):
        fairness.jain_index([1, -1])


def test_queue_shares_time_average_and_jain_over_time():
    q = pd.DataFrame(
        {
            "time": [0.0, 0.0, 10.0, 10.0],
            "queue": ["a", "b", "a", "b"],
            "allocated_gpus": [8.0, 0.0, 4.0, 4.0],
        }
    )
    s = fairness.queue_shares(q, capacity=8)
    assert s.to_dict("list") == {"a": [1.0, 0.5], "b": [0.0, 0.5]}
    avg = fairness.time_average(s, end=20.0)
    assert avg["a"] == pytest.approx(0.75) and avg["b"] == pytest.approx(0.25)
    assert fairness.time_average(s["b"], 5.0, 15.0) == pytest.approx(0.25)
    assert fairness.jain_over_time(s).tolist() == [0.5, 1.0]
    rel = fairness.queue_shares(q.assign(allocated_gpus=[2.0, 0.0, 1.0, 3.0]))
    assert rel.loc[10.0].tolist() == [0.25, 0.75]
    # entitlements: a deserves 3/4; (0.75, 0.25) is then perfectly fair
    w = pd.Series({"a": 0.75, "b": 0.25})
    assert fairness.jain_over_time(pd.DataFrame({"a": [0.75], "b": [0.25]}), w).tolist() == [1.0]


def test_finish_time_fairness_by_hand():
    # a 1-GPU cluster, two 10 s jobs at t=0 run one after the other.
    # Job A: 2 jobs in the system all its life -> ideal 10 x 2 = 20, rho = 10/20.
    # Job B: 2 jobs for 10 s then 1 for 10 s -> N = 1.5, ideal 15, rho = 20/15.
    jobs = pd.DataFrame(
        {
            "submit_time": [0.0, 0.0, 5.0],
            "end_time": [10.0, 20.0, np.nan],
            "duration": [10.0, 10.0, 3.0],
            "num_gpus": [1, 1, 1],
        }
    )
    two = fairness.finish_time_fairness(jobs.iloc[:2], cluster_gpus=1)
    assert two.tolist() == pytest.approx([0.5, 20 / 15])
    # an unfinished job (t=5) counts as present until the last end (t=20) and has no rho:
    # A sees N = (2*5 + 3*5)/10 = 2.5 -> rho 10/25; B sees (2*5 + 3*5 + 2*10)/20 = 2.25
    rho = fairness.finish_time_fairness(jobs, cluster_gpus=1)
    assert rho[0] == pytest.approx(0.4) and rho[1] == pytest.approx(20 / 22.5)
    assert np.isnan(rho[2])
    shared = pd.DataFrame(
        {
            "submit_time": [0.0, 0.0],
            "end_time": [10.0, 10.0],
            "duration": [10.0, 10.0],
            "num_gpus": [1, 1],
        }
    )
    assert fairness.finish_time_fairness(shared, cluster_gpus=2).tolist() == [1.0, 1.0]


def test_job_sizes_lie_on_a_grid_that_makes_usage_sums_exact():
    # the compiled pass keeps usage as jobs start and stop, the reference recounts it: both
    # agree only if every sum of sizes is exact, whatever the order of the additions
    from policies.fair import exact_grid

    def added(xs):
        total = 0.0
        for x in xs:
            total += x
        return total

    rng = np.random.default_rng(5)
    total = 8192.0
    raw = rng.random(1000) * 64 / 3
    assert added(raw) != added(raw[::-1])  # off the grid, the order of additions matters
    size = exact_grid(raw, total)
    assert np.abs(size - raw).max() < 1e-10
    q = 2.0 ** -(52 - int(np.ceil(np.log2(4 * total + 1))))
    assert np.all(size / q == np.round(size / q))
    assert added(size) == added(size[::-1]) == added(rng.permutation(size)) == float(size.sum())
    kept = added(size)
    for x in size[::2]:
        kept -= x
    assert kept == added(size[1::2])
