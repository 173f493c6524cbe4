"""Pod-shaped gangs (issue 14): every pod of a job on one node, under every policy.

A job with ``pods > 0`` is ``pods`` pods of ``num_gpus / pods`` GPUs (and ``num_cpus / pods``
CPUs, ``memory_gb / pods`` GB) each; a pod never spans nodes, several pods may share one.
Exact scenarios pin where and when such jobs start; random pod-shaped traces check the
invariants (no node over-allocated, whole pods per node, one terminal state per job) and
that each compiled pass still equals its Python reference. Traces without pods: the pinned
oracle (``tests/test_oracle.py``) is unchanged, and an explicit ``pods = 0`` column changes
nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_trace, simulate
from oracle import POLICIES, digests, make_policy, random_cluster, random_trace

from policies.backfill import BackfillPolicy
from policies.consolidate import ConsolidatePolicy
from policies.fair import FairPolicy
from policies.fgd import FgdPolicy
from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from policies.priority import PriorityPolicy
from policies.sjf import SjfPolicy
from policies.srtf import SrtfPolicy
from policies.tiresias import TiresiasPolicy
from policies.topology import TopologyPolicy
from simulator.core import kernels
from simulator.core.cluster import ClusterSpec, ClusterState
from simulator.core.engine import Simulation
from simulator.core.jobs import TERMINAL, Status
from simulator.core.refs import buf_ref

# the policies of configs/policy/ with their default settings
DEFAULTS = {
    "fifo": FifoPolicy,
    "gang": GangPolicy,
    "sjf": SjfPolicy,
    "priority": PriorityPolicy,
    "srtf": SrtfPolicy,
    "tiresias": TiresiasPolicy,
    "fair": FairPolicy,
    "backfill": BackfillPolicy,
    "topology": TopologyPolicy,
    "consolidate": ConsolidatePolicy,
    "fgd": FgdPolicy,
}


def _nodes(capacities: list[int], cpus: float = 0.0) -> ClusterSpec:
    groups = [{"count": 1, "num_gpus": g, "gpu_type": "H100", "num_cpus": cpus} for g in capacities]
    return ClusterSpec.from_groups(groups, nodes_per_rack=32)


def _placed(sim: Simulation) -> dict[int, list]:
    """Job index -> [(time, {node: GPUs})] of every start and migration."""
    g = sim.state.gpu_free.shape[1]
    out: dict[int, list] = {}
    for t, j, p in sim.placement_log:
        per_node = {int(n): int((p.gpus // g == n).sum()) for n in p.nodes}
        out.setdefault(int(j), []).append((t, per_node))
    return out


# ---------------------------------------------------------------------- the kernel
def _naive_pods(free_full, cpu_free, mem_free, model_ok, up, pods, g, cpp, mpp, mode):
    """Pods one by one, each on the node ``mode`` scores best with earlier pods counted."""
    free, cpu, mem = free_full.astype(int), cpu_free.copy(), mem_free.copy()
    chosen = {}
    for _ in range(pods):
        fits = [
            i
            for i in range(len(free))
            if up[i]
            and model_ok[i]
            and free[i] >= g
            and cpu[i] + 1e-9 >= cpp
            and mem[i] + 1e-9 >= mpp
        ]
        if not fits:
            return None
        left = {i: float(free[i] - g) if g else float(cpu[i] - cpp) for i in fits}
        left = {i: v if v < 1e300 else 0.0 for i, v in left.items()}
        if mode == kernels.FIRST_FIT:
            i = fits[0]
        elif mode == kernels.SPREAD:
            i = max(fits, key=lambda i: (left[i], -i))
        else:
            i = min(fits, key=lambda i: (left[i], i))
        free[i] -= g
        cpu[i] -= cpp
        mem[i] -= mpp
        chosen[i] = chosen.get(i, 0) + 1
    return dict(sorted(chosen.items()))


def _random_state(rng):
    num = int(rng.integers(1, 10))
    gpus = rng.choice([0, 1, 2, 4, 8], size=num).astype(np.int64)
    models = tuple("" if g == 0 else str(rng.choice(["A100", "H100"])) for g in gpus)
    cpus = rng.choice([np.inf, 8.0, 32.0], size=num).astype(float)
    mem = rng.choice([np.inf, 64.0, 256.0], size=num).astype(float)
    racks = (np.arange(num) // int(rng.integers(1, 4))).astype(np.int64)
    state = ClusterState(
        ClusterSpec(tuple(f"n{i}" for i in range(num)), gpus, models, cpus, mem, racks)
    )
    gpu_free = state.gpu_free.copy()
    real = gpu_free >= 0
    gpu_free[real] = rng.choice([0, 250, 1000, 1000, 1000], size=int(real.sum()))
    cpu_free = np.where(np.isinf(cpus), cpus, cpus * rng.random(num))
    mem_free = np.where(np.isinf(mem), mem, mem * rng.random(num))
    state.load_free(gpu_free, cpu_free, mem_free, rng.random(num) > 0.15)
    return state


@pytest.mark.parametrize("seed", range(300))
def test_pod_kernel_matches_its_naive_twin_and_never_fails_when_the_pods_fit(seed):
    rng = np.random.default_rng(14_000 + seed)
    st = _random_state(rng)
    num = len(st.capacity)
    out = kernels.new_buf(num, st.gpu_free.size)  # the arrays the compiled reference writes
    buf = buf_ref(out)
    pods = int(rng.integers(2, 7))
    g = int(rng.choice([0, 1, 2, 4]))
    cpp = float(rng.choice([0.0, 2.0, 6.0] if g else [2.0, 6.0]))
    mpp = float(rng.choice([0.0, 20.0]))
    mask = int(rng.choice([0, 1, 2]))
    model_ok = [kernels._type_ok(int(m), mask) for m in st.node_model]
    for mode in (kernels.BEST_FIT, kernels.SPREAD, kernels.FIRST_FIT):
        args = (st.ref, g * pods, 1000 if g else 0, mask, cpp * pods, mpp * pods, pods)
        k = kernels.place_into(*args, True, mode, False, True, buf)
        want = _naive_pods(
            st.free_full, st.cpu_free, st.mem_free, model_ok, st.node_up, pods, g, cpp, mpp, mode
        )
        got = None
        if k >= 0:  # pods per node, from its GPUs (or, CPU-only, its cores)
            nodes = out.nodes[:k]
            if g:
                on = np.bincount(out.gpus[: g * pods] // st.gpu_free.shape[1], minlength=num)
                got = {int(i): int(on[i]) // g for i in nodes}
            else:
                got = {int(i): int(round(c / cpp)) for i, c in zip(nodes, out.cpu[:k], strict=True)}
        assert got == want, (mode, got, want)
        # the greedy order fails only when the nodes cannot hold that many pods at all
        room = 0
        for i in range(num):
            if not (st.node_up[i] and model_ok[i]):
                continue
            fit = pods
            if g:
                fit = min(fit, int(st.free_full[i]) // g)
            if cpp and np.isfinite(st.cpu_free[i]):
                fit = min(fit, int((st.cpu_free[i] + 1e-9) // cpp))
            if mpp and np.isfinite(st.mem_free[i]):
                fit = min(fit, int((st.mem_free[i] + 1e-9) // mpp))
            room += fit
        assert (k >= 0) == (room >= pods)


# ---------------------------------------------------------------------- exact scenarios
@pytest.mark.parametrize("policy", sorted(DEFAULTS))
def test_two_8_gpu_pods_take_the_two_nodes_with_8_free(policy):
    # nodes with 5, 8, 3 and 8 GPUs: each pod needs a node with 8 free
    sim = simulate(make_trace([(1, 0, 10, 16)], pods=[2]), _nodes([5, 8, 3, 8]), DEFAULTS[policy]())
    assert _placed(sim) == {0: [(0.0, {1: 8, 3: 8})]}
    assert sim.events == [(0, 1, "arrive"), (0, 1, "start"), (10, 1, "finish")]


def test_pods_never_split_where_a_gang_would():
    # 15 GPUs: as a gang the fewest nodes (8 + 7 on nodes 1 and 3); as 3 pods of 5 each pod
    # needs 5 free on one node: nodes 0, 1 and 3, best fit first (node 0 is left with 0)
    cluster = _nodes([5, 8, 3, 8])
    gang = simulate(make_trace([(1, 0, 10, 15)]), cluster, GangPolicy())
    pods = simulate(make_trace([(1, 0, 10, 15)], pods=[3]), cluster, GangPolicy())
    assert _placed(gang) == {0: [(0.0, {1: 8, 3: 7})]}
    assert _placed(pods) == {0: [(0.0, {0: 5, 1: 5, 3: 5})]}


def test_pods_of_one_job_share_a_node_with_their_cpus():
    # 4 pods x 2 GPUs x 10 CPUs on nodes of 8 GPUs / 80 CPUs: best fit stacks them on node 0
    trace = make_trace([(1, 0, 10, 8)], pods=[4], num_cpus=[40.0])
    sim = simulate(trace, _nodes([8, 8], cpus=80.0), GangPolicy())
    [(_, j, p)] = sim.placement_log
    assert p.nodes.tolist() == [0] and p.cpus.tolist() == [40.0] and len(p.gpus) == 8


def test_cpus_per_pod_keep_pods_apart():
    # 2 pods x 4 GPUs x 50 CPUs on nodes of 8 GPUs / 80 CPUs: one pod per node (CPU-bound)
    trace = make_trace([(1, 0, 10, 8)], pods=[2], num_cpus=[100.0])
    sim = simulate(trace, _nodes([8, 8], cpus=80.0), GangPolicy())
    [(_, _, p)] = sim.placement_log
    assert p.nodes.tolist() == [0, 1] and p.cpus.tolist() == [50.0, 50.0]


def _blocked_cluster_trace(pods: int) -> pd.DataFrame:
    # six nodes of 8 GPUs, each holding a 5-GPU job ending at 10, 20, ..., 60 s: 3 GPUs free
    # per node at first. A 32-GPU job arriving at 1 s as a gang needs 32 usable GPUs (at 30 s:
    # 3 free nodes + 3 x 3 GPUs = 33); as 4 pods of 8 it needs 4 empty nodes (at 40 s)
    rows = [(i, 0, 10.0 * (i + 1), 5) for i in range(6)] + [(9, 1, 5, 32)]
    return make_trace(rows, pods=[0] * 6 + [pods])


@pytest.mark.parametrize("policy", sorted(set(DEFAULTS) - {"srtf"}))
def test_four_8_gpu_pods_wait_for_four_empty_nodes(policy):
    cluster = ClusterSpec.homogeneous(6, 8, "H100")
    sim = simulate(_blocked_cluster_trace(4), cluster, DEFAULTS[policy]())
    assert [e for e in sim.events if e[1] == 9] == [
        (1, 9, "arrive"),
        (40, 9, "start"),
        (45, 9, "finish"),
    ]
    [(t, per_node)] = _placed(sim)[6]
    assert t == 40.0 and list(per_node.values()) == [8, 8, 8, 8]  # (FGD ranks nodes its way)


@pytest.mark.parametrize(("pods", "victims"), [(4, [5, 4, 3, 2]), (0, [5, 4, 3])])
def test_srtf_preempts_a_node_per_pod(pods, victims):
    # SRTF starts the 5 s job at once by preempting the jobs with the most work left: as 4
    # pods of 8 it needs 4 whole nodes (4 victims), as a gang 32 usable GPUs (3 victims)
    cluster = ClusterSpec.homogeneous(6, 8, "H100")
    sim = simulate(_blocked_cluster_trace(pods), cluster, SrtfPolicy())
    assert [j for t, j, e in sim.events if e == "preempt"] == victims
    assert (1, 9, "start") in sim.events
    if pods:
        assert _placed(sim)[6] == [(1.0, {2: 8, 3: 8, 4: 8, 5: 8})]


def test_the_same_job_without_pods_starts_spread_at_30():
    cluster = ClusterSpec.homogeneous(6, 8, "H100")
    sim = simulate(_blocked_cluster_trace(0), cluster, GangPolicy())
    assert (30, 9, "start") in sim.events
    assert sorted(_placed(sim)[6][0][1]) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("policy", sorted(DEFAULTS))
def test_a_pod_larger_than_every_node_is_unschedulable(policy):
    # 2 pods of 16 GPUs on 8-GPU nodes; the same 32 GPUs as a gang run
    cluster = ClusterSpec.homogeneous(4, 8, "H100")
    trace = make_trace([(1, 0, 10, 32), (2, 0, 10, 32)], pods=[2, 0])
    sim = simulate(trace, cluster, DEFAULTS[policy]())
    assert sim.jobs.status.tolist() == [Status.UNSCHEDULABLE, Status.FINISHED]
    assert (0, 1, "unschedulable") in sim.events
    assert sim.unschedulable_reasons == {"no node can hold one pod (16 GPUs)": 1}


def test_a_pod_asking_more_cpus_than_a_node_has_is_unschedulable():
    # 2 pods x 8 GPUs x 120 CPUs on 8-GPU / 80-CPU nodes; without pods the 240 CPUs spread
    # over the GPUs (15 per GPU) fit on four nodes
    cluster = ClusterSpec.homogeneous(4, 8, "H100", cpus_per_node=80.0)
    trace = make_trace([(1, 0, 10, 16), (2, 0, 10, 16)], pods=[2, 0], num_cpus=[240.0, 240.0])
    sim = simulate(trace, cluster, GangPolicy())
    assert sim.jobs.status.tolist() == [Status.UNSCHEDULABLE, Status.FINISHED]
    assert sim.jobs.nodes_used[1].tolist() == [0, 1, 2, 3]
    assert sim.unschedulable_reasons == {"no node can hold one pod (8 GPUs, 120 CPUs)": 1}
    from simulator.output.metrics import job_frame

    # the row says why it can never run (issue 14)
    reasons = job_frame(sim)["pending_reason"].tolist()
    assert reasons == ["no node can hold one pod (8 GPUs, 120 CPUs)", ""]


def test_unschedulable_reasons_say_what_does_not_fit():
    # 4 nodes of 8 GPUs / 80 CPUs: 5 pods of 8 GPUs do not fit 4 nodes; a 4-GPU job asking 100
    # CPUs fits no node; a 40-GPU gang is larger than the cluster; a one-pod 16-GPU job
    cluster = ClusterSpec.homogeneous(4, 8, "H100", cpus_per_node=80.0)
    trace = make_trace(
        [(1, 0, 10, 40), (2, 0, 10, 4), (3, 0, 10, 40), (4, 0, 10, 16), (5, 0, 10, 8)],
        pods=[5, 0, 0, 1, 2],
        num_cpus=[0.0, 100.0, 0.0, 0.0, 0.0],
    )
    sim = simulate(trace, cluster, FifoPolicy())
    assert sim.unschedulable_reasons == {
        "the nodes cannot hold all 5 pods (8 GPUs each)": 1,
        "no node can hold it (4 GPUs, 100 CPUs)": 1,
        "the cluster cannot hold it (40 GPUs)": 1,
        "no node can hold its one pod (16 GPUs)": 1,
    }
    assert simulate(trace.iloc[4:], cluster, FifoPolicy()).unschedulable_reasons == {}


def test_cpu_only_pods_spread_when_one_node_cannot_hold_them():
    # 3 CPU-only pods of 30 CPUs on nodes of 64 CPUs: two on node 0, one on node 1
    cluster = ClusterSpec.homogeneous(2, 8, "H100", cpus_per_node=64.0)
    trace = make_trace([(1, 0, 10, 0)], pods=[3], num_cpus=[90.0])
    sim = simulate(trace, cluster, FifoPolicy())
    [(_, _, p)] = sim.placement_log
    assert p.nodes.tolist() == [0, 1] and p.cpus.tolist() == [60.0, 30.0]


def test_topology_keeps_pods_in_one_rack_when_it_can():
    # racks of 2 nodes; rack 0 has one empty node, rack 1 two: 2 pods x 8 go to rack 1
    cluster = ClusterSpec.homogeneous(4, 8, "H100", nodes_per_rack=2)
    trace = make_trace([(1, 0, 100, 8), (2, 1, 10, 16)], pods=[0, 2])
    sim = simulate(trace, cluster, TopologyPolicy())
    assert _placed(sim)[1] == [(1.0, {2: 8, 3: 8})]


def test_topology_puts_pods_that_fit_one_node_on_one_node_first():
    # 2 pods x 2 GPUs: the node level is preferred, so both pods share a node although best
    # fit per pod would put the first one on the 2-free node 0
    cluster = ClusterSpec.homogeneous(2, 8, "H100", nodes_per_rack=1)
    trace = make_trace([(1, 0, 100, 6), (2, 1, 10, 4)], pods=[0, 2])
    topo = simulate(trace, cluster, TopologyPolicy())
    gang = simulate(trace, cluster, GangPolicy())
    assert _placed(topo)[1] == [(1.0, {1: 4})]
    assert _placed(gang)[1] == [(1.0, {0: 2, 1: 2})]


def test_bad_pod_counts_are_errors():
    cluster = ClusterSpec.homogeneous(2, 8, "H100")
    with pytest.raises(ValueError, match="divides num_gpus"):
        Simulation(make_trace([(1, 0, 10, 6)], pods=[4]), cluster, GangPolicy())


# ---------------------------------------------------------------------- traces without pods
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", range(4))
def test_an_explicit_zero_pod_column_changes_nothing(policy, seed):
    rng = np.random.default_rng([seed, 77])
    cluster, trace = random_cluster(rng), random_trace(rng, 60)
    factory = make_policy(policy, rng)
    plain = digests(Simulation(trace, cluster, factory(), record_events=True).run())
    zero = trace.assign(pods=0, gpus_per_pod=0)
    shaped = digests(Simulation(zero, cluster, factory(), record_events=True).run())
    extra = {"jobs.pods", "jobs.gpus_per_pod"}
    assert {k: v for k, v in shaped.items() if k not in extra} == plain


# ---------------------------------------------------------------------- random pod traces
def pod_trace(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """:func:`oracle.random_trace` with pod shapes on about half of the jobs."""
    t = random_trace(rng, n)
    gpus = t["num_gpus"].to_numpy()
    whole = t["gpu_milli"].to_numpy() == 1000
    pods = np.zeros(n, dtype=np.int64)
    for i in range(n):
        if rng.random() < 0.5:
            continue
        if gpus[i] == 0:
            pods[i] = int(rng.integers(1, 4))
        elif whole[i] or gpus[i] == 1:
            divisors = [d for d in range(1, gpus[i] + 1) if gpus[i] % d == 0]
            pods[i] = int(rng.choice(divisors))
    return t.assign(pods=pods)


def _check_pods(sim: Simulation) -> None:
    """Every placement of a pod job holds whole pods per node; no node is ever over-full."""
    jobs, state = sim.jobs, sim.state
    g_max = state.gpu_free.shape[1]
    cap = state.capacity.astype(np.int64)
    cpu_cap = np.asarray(state.cpu_cap, dtype=float)
    assert np.isin(jobs.status, TERMINAL).all()
    placements = iter(sim.placement_log)
    held: dict[int, tuple] = {}
    for _, job_id, event in sim.events:
        j = int(np.flatnonzero(jobs.job_ids == job_id)[0])
        if event in ("start", "migrate"):
            _, jj, p = next(placements)
            assert jj == j
            pods = int(jobs.pods[j])
            if pods > 0:
                per_gpu = int(jobs.num_gpus[j]) // pods
                on_node = np.array([(p.gpus // g_max == n).sum() for n in p.nodes])
                if per_gpu > 0:
                    assert (on_node % per_gpu == 0).all(), (job_id, on_node)
                    assert on_node.sum() // per_gpu == pods
                cpp = float(jobs.cpus[j]) / pods
                if cpp > 0:
                    k = np.round(p.cpus / cpp)
                    assert np.allclose(p.cpus, k * cpp) and k.sum() == pods
            held[j] = (p.nodes, p.gpus // g_max, p.milli, p.cpus)
        elif event in ("finish", "preempt", "killed", "failed"):
            held.pop(j, None)
        if held:
            used = np.zeros(len(cap), dtype=np.int64)  # milli-GPU
            cpu = np.zeros(len(cap))
            for nodes, gpu_nodes, milli, cpus in held.values():
                np.add.at(used, gpu_nodes, milli)
                np.add.at(cpu, nodes, cpus)
            assert (used <= 1000 * cap).all()
            assert (cpu <= cpu_cap + 1e-6).all()


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", range(10))
def test_random_pod_traces_keep_pods_whole_and_nodes_within_capacity(policy, seed):
    rng = np.random.default_rng([seed, 1400 + POLICIES.index(policy)])
    cluster, trace = random_cluster(rng), pod_trace(rng, int(rng.integers(1, 120)))
    sim = simulate(trace, cluster, make_policy(policy, rng)())
    _check_pods(sim)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", range(10))
def test_compiled_pass_equals_python_reference_on_pod_traces(policy, seed):
    rng = np.random.default_rng([seed, 2400 + POLICIES.index(policy)])
    cluster, trace = random_cluster(rng), pod_trace(rng, int(rng.integers(1, 120)))
    factory = make_policy(policy, rng)
    runs = [
        Simulation(trace, cluster, factory(), record_events=True, reference_passes=ref).run()
        for ref in (False, True)
    ]
    if runs[0].engine == "python":
        pytest.skip(f"{policy} has no compiled pass with these settings")
    compiled, reference = (digests(s) for s in runs)
    differ = sorted(k for k in set(compiled) | set(reference) if compiled[k] != reference[k])
    assert not differ, f"{policy}/{seed}: differs in {differ}"
