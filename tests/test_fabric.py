"""Network fabric: analytic all-reduce times, uplink sharing, cancel/replace, fabric=none."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_trace, simulate
from hydra.utils import instantiate
from omegaconf import OmegaConf

from policies.base import Start
from policies.gang import GangPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.core.extensions import collect_outputs, fabric_of
from simulator.core.placement import Placement
from simulator.models.fabric import Fabric, NoFabric, allreduce_time, iteration_time
from simulator.output.metrics import job_frame, summary
from traces import philly

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fabric"

# DGX H100 figures (configs/fabric/leaf_spine.yaml): NVLink busbw 450 GB/s per GPU, 8 NICs of
# 400 Gb/s = 50 GB/s per GPU; NCCL ring/simple step latencies 3.4 us (NVLink), 9.6 us (net).
NVL, NIC = 450e9, 50e9
A_NVL, A_LEAF, A_SPINE = 3.4e-6, 9.6e-6, 10.6e-6


def h100(topology="leaf_spine", **kw):
    args = dict(
        topology=topology,
        nvlink_gb_per_s=450.0,
        nic_gbit_per_s=400.0,
        nics_per_node=8,
        nvlink_latency_us=3.4,
        leaf_latency_us=9.6,
        spine_latency_us=10.6,
    )
    args.update(kw)
    return Fabric(**args)


class Pinned:
    """Starts every queued job on the GPUs listed for it (flat ids), as soon as they are free."""

    def __init__(self, where):
        self.where = where

    def schedule(self, view):
        g_max = view.cluster.gpu_free.shape[1]
        for j in view.queue.jobs():
            gpus = np.array(self.where[j], dtype=np.int64)
            if (view.cluster.gpu_free.reshape(-1)[gpus] < 1000).any():
                continue
            nodes = np.unique(gpus // g_max)
            zeros = np.zeros(len(nodes))
            yield Start(j, Placement(nodes, gpus, 1000, zeros, zeros))


def gpus_on(node, slots, g_max=8):
    return [node * g_max + s for s in slots]


def run_times(sim):
    f = job_frame(sim)
    return (f["end_time"] - f["start_time"]).to_numpy()


# ---------------------------------------------------------------------- formulas
def test_formulas_match_hand_computation():
    # 8 GPUs, 1 GB of gradients, 200 GB/s bus bandwidth, 2*(8-2) NVLink + 2*(2-1) net steps
    lat = 12 * A_NVL + 2 * A_LEAF
    assert allreduce_time(8, 1e9, 200e9, lat) == pytest.approx(lat + 1e9 * 2 * 7 / 8 / 200e9)
    assert allreduce_time(1, 1e9, 1.0) == 0.0
    assert iteration_time(1.0, 0.5, 0.0) == 1.5
    assert iteration_time(1.0, 0.5, 1.0) == 1.0  # fully hidden
    assert iteration_time(1.0, 3.0, 0.5) == 1.5 + 1.5  # max(1, 1.5) + 1.5


def expected_run_time(n, nbytes, iters, duration, busbw, lat, ideal_busbw, ideal_lat):
    """I * (t_comp + t_comm) with t_comp from the ideal placement (overlap 0)."""
    t_comp = duration / iters - (ideal_lat + nbytes * 2 * (n - 1) / n / ideal_busbw)
    return iters * (t_comp + lat + nbytes * 2 * (n - 1) / n / busbw)


def test_two_node_allreduce_takes_the_formula_time():
    # 8-GPU job (ideal: one node, NVLink) split 4 + 4 over two nodes of one leaf: its ring
    # crosses the network with 4 NICs per node -> busbw = min(4 x 50, 450) = 200 GB/s.
    cluster = ClusterSpec.homogeneous(2, 8, "H100", nodes_per_rack=2)
    trace = make_trace([(1, 0, 100.0, 8)], comm_bytes=4e9, iterations=100)
    where = {0: gpus_on(0, range(4)) + gpus_on(1, range(4))}
    sim = simulate(trace, cluster, Pinned(where), fabric=h100())
    expect = expected_run_time(
        8, 4e9, 100, 100.0, 4 * NIC, 12 * A_NVL + 2 * A_LEAF, NVL, 14 * A_NVL
    )
    assert run_times(sim)[0] == pytest.approx(expect, rel=1e-12)
    assert expect == pytest.approx(100 + 100 * (4e9 * 1.75 / 200e9 - 4e9 * 1.75 / 450e9), 1e-3)


def test_eight_node_allreduce_takes_the_formula_time():
    # 8 GPUs on 8 nodes, one each: every ring step crosses the network at one NIC's 50 GB/s.
    cluster = ClusterSpec.homogeneous(8, 8, "H100", nodes_per_rack=8)
    trace = make_trace([(1, 0, 100.0, 8)], comm_bytes=4e9, iterations=100)
    where = {0: [gpus_on(node, [0])[0] for node in range(8)]}
    sim = simulate(trace, cluster, Pinned(where), fabric=h100())
    expect = expected_run_time(8, 4e9, 100, 100.0, NIC, 14 * A_LEAF, NVL, 14 * A_NVL)
    assert run_times(sim)[0] == pytest.approx(expect, rel=1e-12)
    cols = sim.fabric.job_columns(sim)
    assert cols["fabric_tier"][0] == "leaf"
    # 8 ring edges, all between nodes, each carrying S * 2(n-1)/n per iteration
    assert cols["bytes_leaf"][0] == pytest.approx(100 * 8 * 4e9 * 2 * 7 / 8)
    assert cols["bytes_nvlink"][0] == 0 and cols["bytes_spine"][0] == 0


def test_ideal_placements_run_exactly_their_duration():
    # 16 GPUs on two full nodes of a leaf, 64 GPUs on 8 full nodes: the most compact
    # placements of their sizes; rate exactly 1.0, as is 8 GPUs on one node.
    cluster = ClusterSpec.homogeneous(11, 8, "H100", nodes_per_rack=11)
    trace = make_trace(
        [(1, 0, 100.0, 16), (2, 0, 50.0, 64), (3, 0, 70.0, 8)], comm_bytes=4e9, iterations=100
    )
    where = {
        0: gpus_on(0, range(8)) + gpus_on(1, range(8)),
        1: [g for node in range(2, 10) for g in gpus_on(node, range(8))],
        2: gpus_on(10, range(8)),
    }
    fabric = h100()
    sim = simulate(trace, cluster, Pinned(where), fabric=fabric)
    assert list(run_times(sim)) == [100.0, 50.0, 70.0]
    assert list(sim.jobs.rate) == [1.0, 1.0, 1.0]


def test_model_params_give_bf16_gradient_bytes():
    cluster = ClusterSpec.homogeneous(2, 8, "H100", nodes_per_rack=2)
    trace = make_trace([(1, 0, 100.0, 8)], model_params=2e9, iterations=100)
    where = {0: gpus_on(0, range(4)) + gpus_on(1, range(4))}
    sim = simulate(trace, cluster, Pinned(where), fabric=h100())
    expect = expected_run_time(
        8, 4e9, 100, 100.0, 4 * NIC, 12 * A_NVL + 2 * A_LEAF, NVL, 14 * A_NVL
    )
    assert run_times(sim)[0] == pytest.approx(expect, rel=1e-12)
    assert sim.fabric.allreduce_bytes[0] == 4e9


def test_default_comm_fraction_without_columns():
    # no comm columns: 20 % of the ideal 1 s iteration is all-reduce at NVLink speed. Split
    # 4 + 4 (busbw 200 GB/s), zero latencies: comm grows by 450/200 -> 0.8 + 0.2 * 2.25 = 1.25.
    cluster = ClusterSpec.homogeneous(2, 8, "H100", nodes_per_rack=2)
    trace = make_trace([(1, 0, 100.0, 8), (2, 0, 100.0, 1)])
    fabric = h100(comm_fraction={2: 0.2}, nvlink_latency_us=0, leaf_latency_us=0)
    where = {0: gpus_on(0, range(4)) + gpus_on(1, range(4)), 1: gpus_on(0, [7])}
    sim = simulate(trace, cluster, Pinned(where), fabric=fabric)
    assert run_times(sim) == pytest.approx([125.0, 100.0], rel=1e-12)
    assert fabric.allreduce_bytes[0] == pytest.approx(0.2 * 450e9 * 8 / 14)
    cols = fabric.job_columns(sim)
    assert cols["comm_fraction"][0] == pytest.approx(0.45 / 1.25)
    assert cols["comm_fraction"][1] == 0.0 and cols["fabric_tier"][1] == "none"


def test_overlap_hides_communication_behind_compute():
    # overlap 1: t_iter = max(t_comp, t_comm). 20 % comm at NVLink (0.2 s) is hidden, so the
    # ideal 1 s iteration is all compute; split 4 + 4, comm takes 0.45 s: still hidden.
    cluster = ClusterSpec.homogeneous(2, 8, "H100", nodes_per_rack=2)
    trace = make_trace([(1, 0, 100.0, 8)])
    where = {0: gpus_on(0, range(4)) + gpus_on(1, range(4))}
    fabric = h100(comm_fraction=0.2, overlap=1.0, nvlink_latency_us=0, leaf_latency_us=0)
    sim = simulate(trace, cluster, Pinned(where), fabric=fabric)
    assert run_times(sim)[0] == pytest.approx(100.0, rel=1e-12)


# ---------------------------------------------------------------------- contention
def two_leaves():
    """4 nodes x 1 GPU, 2 per leaf; NIC 1 GB/s; uplink 2 GB/s / 2 = 1 GB/s per leaf."""
    cluster = ClusterSpec.homogeneous(4, 1, "H100", nodes_per_rack=2)
    fabric = Fabric(
        "leaf_spine",
        nvlink_gb_per_s=100.0,
        nic_gbit_per_s=8.0,
        nics_per_node=1,
        oversubscription=2.0,
    )
    return cluster, fabric


def test_two_jobs_sharing_uplinks_get_half_each():
    # S = 1 GB per iteration, 2 GPUs: 1 s of all-reduce at 1 GB/s + 1 s compute (I = 50,
    # duration 100). Alone a job gets the whole 1 GB/s uplink (= its ideal, rate 1); together
    # each gets 0.5 GB/s: 1 + 2 = 3 s per iteration, rate 2/3.
    # A: 30 s alone, 105 s shared (70 s of work) -> ends 135. B: 105 s shared (70 s), then
    # alone for its last 30 s -> ends 165.
    cluster, fabric = two_leaves()
    trace = make_trace([(1, 0, 100.0, 2), (2, 30, 100.0, 2)], comm_bytes=1e9, iterations=50)
    sim = simulate(trace, cluster, Pinned({0: [0, 2], 1: [1, 3]}), fabric=fabric)
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 1, "start"),
        (30, 2, "arrive"),
        (30, 2, "start"),
        (135, 1, "finish"),
        (165, 2, "finish"),
    ]
    assert list(job_frame(sim)["end_time"]) == pytest.approx([135.0, 165.0], rel=1e-12)
    # cancel/replace: A's completion moved once (at 30, from 100 to 135), B's once (at 135,
    # from 180 to 165); the superseded events fired as no-ops (one finish per job)
    assert list(sim.jobs.version) == [1, 1]
    assert fabric.rate_changes == 2
    cols = fabric.job_columns(sim)
    assert list(cols["bytes_spine"]) == pytest.approx([2 * 50 * 1e9] * 2)
    links = fabric.links_frame()
    link0 = links[links["link"] == 0]
    assert list(link0["time"]) == [0, 30, 135, 165]
    assert list(link0["flows"]) == [1, 2, 1, 0]
    assert list(link0["peak_utilization"]) == pytest.approx([1.0, 1.0, 1.0, 0.0])
    assert list(link0["utilization"]) == pytest.approx([0.5, 2 / 3, 0.5, 0.0])
    s = fabric.summary(sim)
    assert s["fabric_mean_uplink_utilization"] == pytest.approx((15 + 70 + 15) / 165)
    assert s["fabric_jobs_spine"] == 2
    assert s["fabric_mean_slowdown_spine"] == pytest.approx((135 / 100 + 135 / 100) / 2)


def test_preemption_frees_the_uplink_share():
    # As above, but A is preempted at t=50: B runs alone from then on and speeds back up.
    # A: 30 + 20 * 2/3 = 43.33 s of work kept. B: 13.33 s shared, then 86.67 s alone -> 136.67;
    # A restarts there alone and needs 56.67 s more -> 193.33.
    cluster, fabric = two_leaves()
    trace = make_trace([(1, 0, 100.0, 2), (2, 30, 100.0, 2)], comm_bytes=1e9, iterations=50)

    def preempt_a(sim):
        yield sim.env.timeout(50)
        sim.preempt(0)

    sim = simulate(
        trace, cluster, Pinned({0: [0, 2], 1: [1, 3]}), fabric=fabric, processes=(preempt_a,)
    )
    ends = job_frame(sim)["end_time"].to_numpy()
    assert ends == pytest.approx([136 + 2 / 3 + 56 + 2 / 3, 136 + 2 / 3], rel=1e-12)
    assert [e for _, _, e in sim.events].count("start") == 3


def test_migration_into_one_leaf_ends_the_contention():
    # 8 nodes x 1 GPU, leaves {0-3} and {4-7}, uplinks 4 GB/s / 4 = 1 GB/s. As above until
    # t=50 (A: 43.33 s of work, B: 13.33 s); then A moves to nodes 2, 3 (one leaf, its ideal)
    # and B has the uplinks alone: both run at rate 1 -> A ends 106.67, B ends 136.67.
    cluster = ClusterSpec.homogeneous(8, 1, "H100", nodes_per_rack=4)
    fabric = Fabric(
        "leaf_spine",
        nvlink_gb_per_s=100.0,
        nic_gbit_per_s=8.0,
        nics_per_node=1,
        oversubscription=4.0,
    )
    trace = make_trace([(1, 0, 100.0, 2), (2, 30, 100.0, 2)], comm_bytes=1e9, iterations=50)
    target = Placement(np.array([2, 3]), np.array([2, 3]), 1000, np.zeros(2), np.zeros(2))

    def move_a(sim):
        yield sim.env.timeout(50)
        sim.migrate(0, target)

    sim = simulate(
        trace, cluster, Pinned({0: [0, 4], 1: [1, 5]}), fabric=fabric, processes=(move_a,)
    )
    ends = job_frame(sim)["end_time"].to_numpy()
    assert ends == pytest.approx([106 + 2 / 3, 136 + 2 / 3], rel=1e-12)
    cols = fabric.job_columns(sim)
    assert list(cols["fabric_tier"]) == ["leaf", "spine"]
    # A: 50 s over the spine (15 + 20 / 3 iterations), the rest inside the leaf
    spine_iters = 30 / 2 + 20 / 3
    assert cols["bytes_spine"][0] == pytest.approx(2 * 1e9 * spine_iters)
    assert cols["bytes_leaf"][0] == pytest.approx(2 * 1e9 * (50 - spine_iters))


def test_job_on_one_node_is_unaffected_by_a_congested_fabric():
    # three spine-crossing jobs fight over 1 GB/s uplinks; a single-node 8-GPU job with heavy
    # communication on another node runs at exactly its duration.
    cluster = ClusterSpec.homogeneous(4, 8, "H100", nodes_per_rack=2)
    fabric = h100(oversubscription=8.0)
    trace = make_trace(
        [(1, 0, 100.0, 2), (2, 0, 100.0, 2), (3, 0, 100.0, 2), (4, 5, 77.0, 8)],
        comm_bytes=50e9,
        iterations=10,
    )
    where = {
        0: [gpus_on(0, [0])[0], gpus_on(2, [0])[0]],
        1: [gpus_on(0, [1])[0], gpus_on(2, [1])[0]],
        2: [gpus_on(0, [2])[0], gpus_on(2, [2])[0]],
        3: gpus_on(1, range(8)),
    }
    sim = simulate(trace, cluster, Pinned(where), fabric=fabric)
    times = run_times(sim)
    assert times[3] == 77.0
    assert (times[:3] > 100.0).all()
    cols = fabric.job_columns(sim)
    assert cols["fabric_tier"][3] == "nvlink"
    assert cols["bytes_nvlink"][3] == pytest.approx(10 * 8 * 50e9 * 2 * 7 / 8)


def test_nvlink_domain_spans_nodes_in_nvl72():
    # GB200 NVL72: 18 nodes x 4 GPUs per NVLink domain (rack). 16 GPUs on 4 nodes of one rack
    # stay on NVLink (rate 1); 8 + 8 GPUs on two racks cross the network with 8 NICs each.
    fabric = instantiate(OmegaConf.load(CONFIGS / "gb200_nvl72.yaml"))
    cluster = ClusterSpec.homogeneous(36, 4, "GB200", nodes_per_rack=18)
    trace = make_trace([(1, 0, 100.0, 16), (2, 0, 100.0, 16)], comm_bytes=8e9, iterations=100)
    where = {
        0: [g for node in range(4) for g in gpus_on(node, range(4), 4)],
        1: [g for node in (16, 17, 18, 19) for g in gpus_on(node, range(4), 4)],
    }
    sim = simulate(trace, cluster, Pinned(where), fabric=fabric)
    ideal_lat = 30 * A_NVL
    lat = 2 * (16 - 2) * A_NVL + 2 * (2 - 1) * A_SPINE
    expect = expected_run_time(16, 8e9, 100, 100.0, 8 * NIC, lat, 900e9, ideal_lat)
    assert run_times(sim) == pytest.approx([100.0, expect], rel=1e-12)
    cols = fabric.job_columns(sim)
    assert list(cols["fabric_tier"]) == ["nvlink", "spine"]
    assert list(cols["fabric_ideal_tier"]) == ["nvlink", "nvlink"]


@pytest.mark.parametrize("pxn, tier", [(True, "leaf"), (False, "spine")])
def test_rail_optimized_crossing_rails(pxn, tier):
    # GPU slot 0 of node 0 and slot 1 of node 1: different rails. Without PXN the ring
    # crosses rails through the spine.
    cluster = ClusterSpec.homogeneous(2, 8, "H100", nodes_per_rack=2)
    fabric = h100("rail_optimized", pxn=pxn)
    trace = make_trace([(1, 0, 100.0, 2)], comm_bytes=1e9, iterations=100)
    sim = simulate(trace, cluster, Pinned({0: [0, 9]}), fabric=fabric)
    assert fabric.job_columns(sim)["fabric_tier"][0] == tier


# ---------------------------------------------------------------------- fabric=none
@pytest.fixture(scope="module")
def philly_sample():
    return philly.load().jobs


def frames_equal(a: Simulation, b: Simulation):
    fa, fb = job_frame(a), job_frame(b)
    pd.testing.assert_frame_equal(fa, fb)


def test_none_reproduces_fabric_free_results(philly_sample):
    cluster = ClusterSpec.homogeneous(32, 8, "V100", nodes_per_rack=8)
    none = instantiate(OmegaConf.load(CONFIGS / "none.yaml"))
    assert isinstance(none, NoFabric) and fabric_of([none]) is None
    plain = Simulation(philly_sample, cluster, GangPolicy()).run()
    with_none = Simulation(philly_sample, cluster, GangPolicy(), fabric=fabric_of([none])).run()
    frames_equal(plain, with_none)


def test_fabric_without_communication_changes_nothing(philly_sample):
    # comm_fraction 0 and no comm columns: no job communicates, every rate stays 1.0
    cluster = ClusterSpec.homogeneous(32, 8, "V100", nodes_per_rack=8)
    plain = Simulation(philly_sample, cluster, GangPolicy()).run()
    fabric = h100(comm_fraction=0.0)
    sim = Simulation(philly_sample, cluster, GangPolicy(), fabric=fabric).run()
    frames_equal(plain, sim)
    assert (fabric.job_columns(sim)["fabric_tier"] == "none").all()


def test_outputs_reach_the_result_tables(philly_sample):
    cluster = ClusterSpec.homogeneous(32, 8, "V100", nodes_per_rack=4)
    fabric = instantiate(OmegaConf.load(CONFIGS / "leaf_spine.yaml"))
    sim = Simulation(philly_sample, cluster, GangPolicy(), fabric=fabric).run()
    jobs, summ, tables = job_frame(sim), summary(sim), {}
    collect_outputs([fabric], sim, jobs, summ, tables)
    for col in ("fabric_tier", "bytes_nvlink", "bytes_leaf", "bytes_spine", "comm_fraction"):
        assert col in jobs
    assert set(tables) == {"links"} and list(tables["links"].columns) == [
        "time",
        "tier",
        "link",
        "flows",
        "utilization",
        "peak_utilization",
    ]
    multi = (jobs["num_gpus"] > 8) & (jobs["status"] == "finished")
    assert (jobs.loc[multi, "fabric_tier"].isin(["leaf", "spine"])).all()
    assert (jobs.loc[jobs["num_gpus"] == 1, "fabric_tier"] == "none").all()
    assert summ["fabric_jobs_nvlink"] > 0 and summ["fabric_bytes_nvlink"] > 0
    assert (jobs["slowdown"].dropna() >= 1.0 - 1e-12).all()


def test_incremental_shares_equal_full_recomputation(philly_sample):
    # 4:1 uplinks, 2 nodes per leaf: many gangs cross the spine and contend
    cluster = ClusterSpec.homogeneous(32, 8, "V100", nodes_per_rack=2)
    sims = []
    for incremental in (True, False):
        fabric = h100(oversubscription=4.0, comm_fraction=0.3, incremental=incremental)
        sims.append(Simulation(philly_sample, cluster, GangPolicy(), fabric=fabric).run())
    fast, full = (sim.fabric for sim in sims)
    assert fast.fast_paths > 0 and full.fast_paths == 0
    assert fast.recomputes < full.recomputes and full.rate_changes > 0
    frames_equal(*sims)
    pd.testing.assert_frame_equal(fast.links_frame(), full.links_frame())


class ToldOfEveryJob(Fabric):
    """The same model, told of every start and stop (no ``notified_jobs`` mask)."""

    notified_jobs = None


def test_jobs_that_never_communicate_skip_the_fabric_round_trip(philly_sample):
    # The engine reports only the jobs notified_jobs() names; a model told of every job
    # (the behaviour before the mask) must give the same jobs, links and summary, bit for bit.
    cluster = ClusterSpec.homogeneous(32, 8, "V100", nodes_per_rack=2)
    args = dict(oversubscription=4.0, comm_fraction=0.3, record_links=True)
    masked = h100(**args)
    sims = [Simulation(philly_sample, cluster, GangPolicy(), fabric=masked).run()]
    full = ToldOfEveryJob(
        topology="leaf_spine",
        nvlink_gb_per_s=450.0,
        nic_gbit_per_s=400.0,
        nics_per_node=8,
        nvlink_latency_us=3.4,
        leaf_latency_us=9.6,
        spine_latency_us=10.6,
        **args,
    )
    sims.append(Simulation(philly_sample, cluster, GangPolicy(), fabric=full).run())
    frames_equal(*sims)
    pd.testing.assert_frame_equal(masked.links_frame(), full.links_frame())
    assert summary(sims[0]) | {"wall_seconds": 0} == summary(sims[1]) | {"wall_seconds": 0}
    talks = masked.notified_jobs()
    assert 0 < talks.sum() < len(talks)  # single-GPU jobs are left out
    assert (sims[0].jobs.num_gpus[talks] >= 2).all()


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_presets_build(name):
    obj = instantiate(OmegaConf.load(CONFIGS / f"{name}.yaml"))
    assert hasattr(obj, "on_start") == (name != "none")


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="topology"):
        h100("torus")
    with pytest.raises(ValueError, match="oversubscription"):
        h100(oversubscription=0)
    with pytest.raises(ValueError, match="comm_fraction"):
        h100(comm_fraction={2: 1.5})
    with pytest.raises(ValueError, match="overlap"):
        h100(overlap=2)
