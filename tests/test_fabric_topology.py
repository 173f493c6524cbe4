"""Topology policy: exact placements on small clusters (smallest domain, hard and soft waits)."""

import inspect
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import make_trace, simulate
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from policies.gang import GangPolicy
from policies.topology import TopologyPolicy, parse_level
from simulator.core.cluster import ClusterSpec
from simulator.output.metrics import job_frame


def cluster_with_racks(racks: list[str], gpus: int = 4) -> ClusterSpec:
    table = pd.DataFrame({"num_gpus": gpus, "gpu_type": "H100", "rack": racks})
    return ClusterSpec.from_table(table, source="test", name="test")


def starts(sim) -> list[tuple[float, object, list[int]]]:
    ids = sim.jobs.job_ids
    return [(t, str(ids[j]), p.nodes.tolist()) for t, j, p in sim.placement_log]


def gpus_per_node(sim, job_id) -> dict[int, int]:
    ids = list(sim.jobs.job_ids)
    for _, j, p in sim.placement_log:
        if ids[j] == job_id:
            nodes = (p.gpus // sim.state.gpu_free.shape[1]).tolist()
            return {n: nodes.count(n) for n in sorted(set(nodes))}
    raise KeyError(job_id)


# 9 nodes x 4 GPUs; racks r0 = {0, 1}, r1 = {2, 3}, r2 = {4, 5, 6, 7}, r3 = {8}. Blockers
# (best-fit) fill nodes 0-3 and leave nodes 4, 5, 6 with 1, 1, 2 free GPUs; nodes 7, 8 free.
BLOCKERS = [(f"b{i}", 0, 1000, n) for i, n in enumerate([4, 4, 4, 4, 3, 3, 2])]
RACKS_A = ["r0", "r0", "r1", "r1", "r2", "r2", "r2", "r2", "r3"]


def test_gang_goes_to_the_smallest_domain():
    # An 8-GPU gang: rack r2 holds it (nodes 4-7: 1 + 1 + 2 + 4); gang prefers fewer nodes
    # and takes nodes 7 and 8 across two racks.
    trace = make_trace(BLOCKERS + [("J", 0, 10, 8)])
    topo = simulate(trace, cluster_with_racks(RACKS_A), TopologyPolicy())
    assert starts(topo)[-1] == (0, "J", [4, 5, 6, 7])
    assert gpus_per_node(topo, "J") == {4: 1, 5: 1, 6: 2, 7: 4}
    gang = simulate(trace, cluster_with_racks(RACKS_A), GangPolicy())
    assert starts(gang)[-1] == (0, "J", [7, 8])


def test_across_the_spine_fewest_nodes_or_with_whole_nodes_fewest_racks():
    # 6 nodes x 4 GPUs in racks of 2. After "a" (3 GPUs, node 0) a 12-GPU gang fits no rack.
    # Across the spine it takes the fewest nodes (lowest ids: 1, 2, 3 over racks r0, r1); with
    # whole nodes only, the two emptiest racks r1 and r2 (nodes 2, 3, 4). Then a 1-GPU job goes
    # best-fit to node 0's last GPU.
    cluster = cluster_with_racks(["r0", "r0", "r1", "r1", "r2", "r2"])
    trace = make_trace([("a", 0, 100, 3), ("J", 0, 10, 12), ("s", 0, 10, 1)])
    sim = simulate(trace, cluster, TopologyPolicy(max_wait=0))
    assert starts(sim) == [(0, "a", [0]), (0, "J", [1, 2, 3]), (0, "s", [0])]
    sim = simulate(trace, cluster, TopologyPolicy(max_wait=0, whole_nodes=True))
    assert starts(sim) == [(0, "a", [0]), (0, "J", [2, 3, 4]), (0, "s", [0])]


def test_whole_nodes_wait_then_prefer_whole_nodes_across_the_spine():
    # racks r0 = {0, 2}, r1 = {1, 3}; "a" (1 GPU, 30 s) on node 0, "b" (4 GPUs) on node 1.
    # A 6-GPU gang: r0 holds it on part-used nodes 0 + 2 at once; whole nodes exist only across
    # the spine (2, 3) until "a" ends and r0 = {0, 2} is whole at t=30.
    cluster = cluster_with_racks(RACKS_B)
    trace = make_trace([("a", 0, 30, 1), ("b", 0, 1000, 4), ("J", 0, 10, 6)])
    sim = simulate(trace, cluster, TopologyPolicy(max_wait=0))
    assert j_start(sim) == [(0, [0, 2])]
    assert gpus_per_node(sim, "J") == {0: 2, 2: 4}
    sim = simulate(trace, cluster, TopologyPolicy(max_wait=10, whole_nodes=True))
    assert j_start(sim) == [(10, [2, 3])]
    sim = simulate(trace, cluster, TopologyPolicy(max_wait=50, whole_nodes=True))
    assert j_start(sim) == [(30, [0, 2])]


# 4 nodes x 4 GPUs, racks r0 = {0, 2}, r1 = {1, 3}. A (100 s) takes node 0, B (50 s) node 1:
# each rack has one free node, so the 8-GPU job J fits no rack until B ends at t=50.
RACKS_B = ["r0", "r1", "r0", "r1"]


def waiting_trace(**columns):
    return make_trace([("A", 0, 100, 4), ("B", 0, 50, 4), ("J", 0, 10, 8)], **columns)


def j_start(sim):
    return [(t, nodes) for t, j, nodes in starts(sim) if j == "J"]


def test_hard_constraint_waits_for_a_leaf():
    trace = waiting_trace(topology_required=["", "", "leaf"])
    sim = simulate(trace, cluster_with_racks(RACKS_B), TopologyPolicy(max_wait=0))
    assert j_start(sim) == [(50, [1, 3])]


def test_soft_constraint_spreads_after_max_wait():
    trace = waiting_trace(topology_preferred=["", "", "leaf"])
    sim = simulate(trace, cluster_with_racks(RACKS_B), TopologyPolicy(max_wait=20))
    assert j_start(sim) == [(20, [2, 3])]  # woken at 0 + 20, spread over r0 and r1


def test_soft_constraint_takes_the_leaf_if_it_frees_in_time():
    trace = waiting_trace(topology_preferred=["", "", "leaf"])
    sim = simulate(trace, cluster_with_racks(RACKS_B), TopologyPolicy(max_wait=100))
    assert j_start(sim) == [(50, [1, 3])]


def test_default_is_soft_smallest_domain():
    # no columns: the smallest level that can hold 8 GPUs is the leaf, preferred
    for wait, expect in ((0, [(0, [2, 3])]), (20, [(20, [2, 3])]), (None, [(50, [1, 3])])):
        sim = simulate(waiting_trace(), cluster_with_racks(RACKS_B), TopologyPolicy(wait))
        assert j_start(sim) == expect, wait
    sim = simulate(
        waiting_trace(),
        cluster_with_racks(RACKS_B),
        TopologyPolicy(max_wait=0, default_mode="required"),
    )
    assert j_start(sim) == [(50, [1, 3])]
    gang = simulate(waiting_trace(), cluster_with_racks(RACKS_B), GangPolicy())
    assert j_start(gang) == [(0, [2, 3])]


def test_impossible_required_level_is_rejected():
    trace = waiting_trace(topology_required=["", "", "node"])  # 8 GPUs on one 4-GPU node
    sim = simulate(trace, cluster_with_racks(RACKS_B), TopologyPolicy())
    frame = job_frame(sim)
    assert list(frame["status"]) == ["finished", "finished", "rejected"]
    assert sim.reject_reasons == {"topology": 1}


def test_small_jobs_split_only_when_allowed():
    # blockers leave 2 and 1 GPUs free on nodes 0 and 1 (one rack); a 3-GPU job fits no node
    # until x ends at t=30, unless it may split
    cluster = cluster_with_racks(["r0", "r0"])
    trace = make_trace([("x", 0, 30, 2), ("y", 0, 60, 3), ("J", 0, 10, 3)])
    sim = simulate(trace, cluster, TopologyPolicy(max_wait=0))
    assert j_start(sim) == [(30, [0])]
    sim = simulate(trace, cluster, TopologyPolicy(max_wait=0, allow_split=True))
    assert j_start(sim) == [(0, [0, 1])]
    sim = simulate(trace, cluster, TopologyPolicy(max_wait=10, allow_split=True))
    assert j_start(sim) == [(10, [0, 1])]


@pytest.mark.parametrize(
    "value, level",
    [("node", 0), ("Leaf", 1), ("rack", 1), ("spine", 2), ("cluster", 2), (1, 1), ("2", 2)],
)
def test_levels_parse(value, level):
    assert parse_level(value) == level


def test_missing_and_bad_levels():
    assert parse_level(None) == -1 and parse_level(float("nan")) == -1 and parse_level("") == -1
    with pytest.raises(ValueError, match="topology_required"):
        parse_level("pod", "topology_required")
    with pytest.raises(ValueError, match="max_wait"):
        TopologyPolicy(max_wait=-1)
    with pytest.raises(ValueError, match="default_mode"):
        TopologyPolicy(default_mode="maybe")


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_config_lists_every_parameter_with_its_default_and_a_comment():
    path = CONFIGS / "policy" / "topology.yaml"
    data = yaml.safe_load(path.read_text())
    assert data.pop("_target_") == "policies.topology.TopologyPolicy"
    params = {
        p.name: p.default
        for p in inspect.signature(TopologyPolicy.__init__).parameters.values()
        if p.name != "self"
    }
    assert data == params
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "_target_")):
            assert "#" in line, line


def test_policy_and_fabric_compose_with_hydra():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=["+policy=topology", "fabric=leaf_spine"])
    policy = instantiate(cfg.policy, _convert_="all")
    fabric = instantiate(cfg.fabric)
    assert isinstance(policy, TopologyPolicy) and fabric.oversubscription == 2.0
    sim = simulate(waiting_trace(), cluster_with_racks(RACKS_B), policy, fabric=fabric)
    assert j_start(sim) == [(50, [1, 3])]  # waits 50 s < max_wait 600 for the leaf
