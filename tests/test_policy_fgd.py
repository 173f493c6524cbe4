"""FGD and its baselines: fragmentation kernels vs naive twins, and exact placements."""

from types import SimpleNamespace

import naive_frag as naive
import numpy as np
import pytest
from conftest import make_trace, simulate
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import fragmentation as frag
from policies.base import Start
from policies.fgd import SCORINGS, FgdPolicy
from simulator.core.cluster import ClusterSpec

MILLI = 1000


def types_of(rows):
    """TaskTypes from (gpus, milli, cpus, mask, popularity) rows."""
    g, d, c, k, p = zip(*rows, strict=True)
    return frag.TaskTypes(
        np.array(g, np.int32),
        np.array(d, np.int32),
        np.array(c, np.float64),
        np.array(k, np.int64),
        np.array(p, np.float64) / sum(p),
    )


def state_of(gpu_rows, cpu=None, mem=None, model=None, up=None):
    g = max(len(r) for r in gpu_rows)
    gpu = np.full((len(gpu_rows), g), -1, np.int32)
    for i, r in enumerate(gpu_rows):
        gpu[i, : len(r)] = r
    n = len(gpu_rows)
    return SimpleNamespace(
        gpu_free=gpu,
        free_full=(gpu == MILLI).sum(axis=1).astype(np.int32),
        capacity=(gpu >= 0).sum(axis=1).astype(np.int32),
        cpu_free=np.full(n, np.inf) if cpu is None else np.array(cpu, np.float64),
        mem_free=np.full(n, np.inf) if mem is None else np.array(mem, np.float64),
        node_model=np.zeros(n, np.int32) if model is None else np.array(model, np.int32),
        node_up=np.ones(n, bool) if up is None else np.array(up, bool),
    )


# ---------------------------------------------------------------------- hand-made values


def test_node_frag_by_hand():
    # p: shared 500 (0.4), CPU-only (0.2), one whole GPU (0.2), two whole GPUs (0.2)
    t = types_of([(1, 500, 1, 0, 4), (0, 0, 1, 0, 2), (1, 1000, 1, 0, 2), (2, 1000, 1, 0, 2)])
    # GPU free 300 and 1000 (1300 idle): shared 500 fits, 300 unusable -> .4*300;
    # CPU-only sees all 1300 -> .2*1300; one whole GPU fits, 300 unusable -> .2*300;
    # two whole GPUs do not fit -> .2*1300.
    assert frag.node_frag([300, 1000], 8.0, 0, t) == pytest.approx(120 + 260 + 60 + 260)
    assert frag.node_frag([1000, 1000], 8.0, 0, t) == pytest.approx(0.2 * 2000)
    # too few CPU cores: nothing fits, everything idle is a fragment
    assert frag.node_frag([1000, 1000], 0.5, 0, t) == pytest.approx(2000)
    assert frag.node_frag([0, -1], 8.0, 0, t) == 0.0


def test_gpu_model_constraint_makes_everything_a_fragment():
    t = types_of([(1, 1000, 0, 0b10, 1)])  # only model 1
    assert frag.node_frag([1000], 1.0, 0, t) == 1000
    assert frag.node_frag([1000], 1.0, 1, t) == 0


def test_fgd_packs_shared_gpus_and_keeps_whole_nodes():
    # workload: half 500-milli tasks, half 2-GPU tasks. Node 0 has a half-used GPU.
    t = types_of([(1, 500, 0, 0, 1), (2, 1000, 0, 0, 1)])
    s = state_of([[500, 1000], [1000, 1000]])
    # a 500 task goes next to the other (that GPU becomes full: no new fragment) and keeps
    # node 1 whole for the 2-GPU tasks
    assert frag.fgd_select(s, 1, 500, 0, 0, 0, t)[:2] == (0, 0)
    # a 300 task: node 0 holds 750 of fragments (0.5 x 1500: no two whole GPUs). On its
    # 500 GPU it would leave 200 that no 500 task can use: 0.5*200 + 0.5*1200 = 700 (-50);
    # on its idle GPU it leaves 500 + 700, both fine for 500 tasks: 0.5*1200 = 600 (-150);
    # on node 1 it would spoil the only whole pair: 0.5*1700 = 850 (+850).
    node, slot, d = frag.fgd_select(s, 1, 300, 0, 0, 0, t)
    assert (node, slot, d) == (0, 1, pytest.approx(-150))
    opts = naive.fgd_options(s, 1, 300, 0, 0, 0, t)
    assert sorted(opts) == [(-150, 0, 1), (-50, 0, 0), (850, 1, 0), (850, 1, 1)]


def test_task_types_threshold_and_step():
    g = np.array([1, 1, 1, 2, 0, 1])
    d = np.array([500, 500, 500, 1000, 0, 1000])
    c = np.array([1.0, 1, 1, 2, 1, 1])
    k = np.zeros(6, np.int64)
    full = frag.task_types(g, d, c, k)
    assert list(full.gpus) == [1, 0, 1, 2] and list(full.milli) == [500, 0, 1000, 1000]
    np.testing.assert_allclose(full.pop, [0.5, 1 / 6, 1 / 6, 1 / 6])
    top = frag.task_types(g, d, c, k, popularity_threshold=0.5)
    assert list(top.gpus) == [1] and top.pop[0] == 1.0
    two = frag.task_types(g, d, c, k, popularity_threshold=0.5, step=2)
    assert len(two.gpus) == 2 and two.pop.sum() == pytest.approx(1)
    gpu_only = frag.task_types(g, d, c, k, include_cpu_tasks=False)
    assert 0 not in gpu_only.gpus


def test_baseline_scores_by_hand():
    # node 0: idle 2-GPU; node 1: one GPU 700 free (shared), one idle; node 2: idle 8-GPU
    s = state_of([[1000, 1000], [700, 1000], [1000] * 8], cpu=[8, 8, 64])
    # shared 300: packing puts it on the already-shared GPU of node 1
    assert frag.score_select("gpu_packing", s, 1, 300, 1, 0, 0) == (1, 0)
    # a whole GPU: packing prefers a used node (node 1) over idle ones
    assert frag.score_select("gpu_packing", s, 1, 1000, 1, 0, 0) == (1, -1)
    # bestfit: least weighted leftover -> node 1 (GPU 1700 free, 8 cores)
    assert frag.score_select("bestfit", s, 1, 300, 1, 0, 0) == (1, 0)
    # dotprod: smallest free . request -> node 1 again; the 8-GPU node is the worst
    assert frag.score_select("dotprod", s, 1, 300, 1, 0, 0)[0] == 1
    tags = np.zeros((3, 9), np.int32)
    tags[2, 0] = 1  # node 2 runs shared tasks only
    assert frag.score_select("gpu_clustering", s, 1, 300, 1, 0, 0, node_tags=tags) == (2, 0)
    assert frag.score_select("gpu_clustering", s, 2, 1000, 1, 0, 0, node_tags=tags)[0] in (0, 1)
    # random: the tie-break key decides; the GPU from slot_u among fitting ones
    assert frag.score_select("random", s, 1, 300, 1, 0, 0, tiebreak=[3, 2, 1.0]) == (2, 0)
    assert (
        frag.score_select("random", s, 1, 300, 1, 0, 0, tiebreak=[3, 2, 1.0], slot_u=0.99)[1] == 7
    )


def test_integer_scores_follow_the_artifact():
    s = state_of([[1000, 1000], [700, 1000]], cpu=[8, 8])
    # dotprod's integer score int(100 (1 - dot/2)) is the same on both nodes here: a tie
    # that the key breaks; exact scores prefer node 1
    key = np.array([0.0, 1.0])
    assert frag.score_select("dotprod", s, 1, 300, 1, 0, 0, tiebreak=key)[0] == 1
    assert (
        frag.score_select("dotprod", s, 1, 300, 1, 0, 0, tiebreak=key, integer_scores=True)[0] == 0
    )
    t = types_of([(1, 500, 0, 0, 1)])
    node, slot, score = frag.fgd_select(s, 1, 300, 0, 0, 0, t, integer_scores=True)
    assert score == -float(
        int(100 / (1 + np.exp(frag.fgd_select(s, 1, 300, 0, 0, 0, t)[2] / 1000)))
    )


def test_wrappers_check_types():
    t = types_of([(1, 500, 0, 0, 1)])
    s = state_of([[1000]])
    s.gpu_free = s.gpu_free.astype(np.int64)
    with pytest.raises(TypeError):
        frag.fgd_select(s, 1, 500, 0, 0, 0, t)
    with pytest.raises(ValueError):
        frag.score_select("nope", state_of([[1000]]), 1, 500, 0, 0, 0)
    with pytest.raises(TypeError):
        frag.cluster_frag(np.zeros((1, 1), np.int32), np.zeros(1), np.zeros(1, np.int64), t)


# ---------------------------------------------------------------------- random vs naive


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 5))
    g = draw(st.integers(1, 4))
    rows = []
    for _ in range(n):
        cap = draw(st.integers(1, g))
        rows.append([draw(st.sampled_from([0, 100, 250, 500, 700, 1000])) for _ in range(cap)])
    cpu = [draw(st.sampled_from([0.0, 2.0, 8.0, np.inf])) for _ in range(n)]
    model = [draw(st.integers(0, 1)) for _ in range(n)]
    up = [draw(st.booleans()) or i == 0 for i in range(n)]
    ntypes = draw(st.integers(1, 4))
    types = []
    for _ in range(ntypes):
        tg = draw(st.sampled_from([0, 1, 1, 2]))
        td = draw(st.sampled_from([200, 500, 1000])) if tg == 1 else (1000 if tg else 0)
        types.append(
            (
                tg,
                td,
                draw(st.sampled_from([0.0, 1.0, 4.0])),
                draw(st.sampled_from([0, 1, 2])),
                draw(st.integers(1, 5)),
            )
        )
    pg = draw(st.sampled_from([0, 1, 1, 2]))
    pd_ = draw(st.sampled_from([150, 300, 500, 1000])) if pg == 1 else (1000 if pg else 0)
    pod = (pg, pd_, draw(st.sampled_from([0.0, 1.0, 3.0])), draw(st.sampled_from([0, 1, 2])))
    return state_of(rows, cpu=cpu, model=model, up=up), types_of(types), pod


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_node_frag_matches_naive(sc):
    s, t, _ = sc
    got = frag.cluster_frag(s.gpu_free, s.cpu_free, s.node_model, t)
    want = [
        naive.node_frag(s.gpu_free[i], s.cpu_free[i], s.node_model[i], t) for i in range(len(got))
    ]
    np.testing.assert_allclose(got, want, atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_fgd_select_matches_naive(sc):
    s, t, (n, milli, cpus, mask) = sc
    node, slot, d = frag.fgd_select(s, n, milli, cpus, 0, mask, t)
    opts = naive.fgd_options(s, n, milli, cpus, 0, mask, t)
    if not opts:
        assert node == -1
        return
    best = min(o[0] for o in opts)
    assert d == pytest.approx(best, abs=1e-6)
    ties = sorted((i, g) for dd, i, g in opts if dd <= best + 1e-6)
    first_node = ties[0][0]
    assert node == first_node  # default tie-break: lowest node id
    assert slot == min(g for i, g in ties if i == first_node)


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.sampled_from(sorted(frag.BASELINE_SCORES)), st.integers(0, 2**31))
def test_score_select_matches_naive(sc, mode, seed):
    s, _, (n, milli, cpus, mask) = sc
    rng = np.random.default_rng(seed)
    tags = rng.integers(0, 2, size=(len(s.gpu_free), s.gpu_free.shape[1] + 1)).astype(np.int32)
    key = rng.random(len(s.gpu_free))
    node, slot = frag.score_select(mode, s, n, milli, cpus, 0, mask, tags, key, 0.5)
    costs = naive.baseline_costs(mode, s, n, milli, cpus, 0, mask, tags)
    if not costs:
        assert node == -1
        return
    best = min(costs.values())
    ties = [i for i, c in costs.items() if c <= best + 1e-7]
    assert node == min(ties, key=lambda i: key[i])
    fits = [g for g, v in enumerate(s.gpu_free[node]) if v >= milli]
    if n == 0 or milli >= MILLI:
        assert slot == -1
    elif mode == "random":
        assert slot == fits[len(fits) // 2]
    else:
        assert slot == min(fits, key=lambda g: (s.gpu_free[node, g], g))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 1, 2, 8]),
            st.sampled_from([100, 500, 1000]),
            st.sampled_from([1.0, 4.0]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([0.3, 0.6, 0.95, 1.0]),
    st.integers(1, 3),
    st.booleans(),
)
def test_task_types_match_naive(rows, threshold, step, include_cpu):
    g = np.array([r[0] for r in rows])
    d = np.array([r[1] if r[0] == 1 else (1000 if r[0] else 0) for r in rows])
    c = np.array([r[2] for r in rows])
    k = np.zeros(len(rows), np.int64)
    got = frag.task_types(g, d, c, k, threshold, step, include_cpu)
    want = naive.task_types(g, d, c, k, threshold, step, include_cpu)
    assert [(int(a), int(b), float(x), int(m)) for a, b, x, m in zip(*got[:4], strict=True)] == [
        w[0] for w in want
    ]
    np.testing.assert_allclose(got.pop, [w[1] for w in want])


# ---------------------------------------------------------------------- the policy


class Recording:
    """Wraps a policy and keeps the GPUs of every Start (the engine forgets them at the end)."""

    def __init__(self, policy):
        self.policy = policy
        self.gpus = {}

    def setup(self, view):
        self.policy.setup(view)

    def schedule(self, view):
        for d in self.policy.schedule(view):
            if isinstance(d, Start):
                self.gpus[view.jobs.job_ids[d.job]] = [int(g) for g in d.placement.gpus]
            yield d


def test_fgd_policy_exact_placements():
    # 2 nodes x 2 T4. Trace: two 500-milli tasks, then two whole-GPU tasks.
    # FGD puts the second 500 next to the first (that GPU fills up), so both whole-GPU tasks
    # find whole GPUs; nothing is rejected.
    cluster = ClusterSpec.homogeneous(2, 2, "T4")
    trace = make_trace(
        [(1, 0, 10, 1), (2, 1, 10, 1), (3, 2, 10, 1), (4, 3, 10, 1)],
        gpu_milli=[500, 500, 1000, 1000],
    )
    rec = Recording(FgdPolicy(on_no_fit="reject", tie_break="first"))
    sim = simulate(trace, cluster, rec)
    assert [e for e in sim.events if e[2] != "arrive"] == [
        (0, 1, "start"),
        (1, 2, "start"),
        (2, 3, "start"),
        (3, 4, "start"),
        (10, 1, "finish"),
        (11, 2, "finish"),
        (12, 3, "finish"),
        (13, 4, "finish"),
    ]
    assert rec.gpus == {1: [0], 2: [0], 3: [1], 4: [2]}


def test_fgd_keeps_a_whole_node_that_spread_would_break():
    # 2 nodes x 2 GPUs; shared 500 tasks then a 2-GPU task. Random spreading ruins both
    # nodes for the 2-GPU task with some seeds; FGD always keeps one node whole.
    cluster = ClusterSpec.homogeneous(2, 2, "T4")
    trace = make_trace([(1, 0, 99, 1), (2, 1, 99, 1), (3, 2, 99, 2)], gpu_milli=[500, 500, 1000])
    for seed in range(5):
        sim = simulate(trace, cluster, FgdPolicy(on_no_fit="reject"), seed=seed)
        assert (sim.jobs.status == 3).all()
        assert list(sim.jobs.nodes_used[2]) != list(sim.jobs.nodes_used[0])
    rejected = [
        (
            simulate(
                trace, cluster, FgdPolicy(scoring="random", on_no_fit="reject"), seed=s
            ).jobs.status
            == 7
        ).any()
        for s in range(8)
    ]
    assert any(rejected)


def test_reject_vs_wait():
    cluster = ClusterSpec.homogeneous(1, 1, "T4")
    trace = make_trace([(1, 0, 10, 1), (2, 1, 5, 1)], gpu_milli=[700, 700])
    sim = simulate(trace, cluster, FgdPolicy(on_no_fit="reject"))
    assert [e for e in sim.events if e[2] == "reject"] == [(1, 2, "reject")]
    sim = simulate(trace, cluster, FgdPolicy(on_no_fit="wait"))
    assert (10, 2, "start") in sim.events and (15, 2, "finish") in sim.events


@pytest.mark.parametrize("scoring", SCORINGS)
def test_every_scoring_runs_with_invariants(scoring):
    cluster = ClusterSpec.from_groups(
        [
            {"count": 2, "num_gpus": 2, "gpu_type": "T4", "num_cpus": 16},
            {"count": 1, "num_gpus": 8, "gpu_type": "A100", "num_cpus": 64},
        ]
    )
    rng = np.random.default_rng(1)
    n = 60
    gpus = rng.choice([0, 1, 1, 1, 2, 4], n)
    trace = make_trace(
        [(i, float(i), float(rng.integers(5, 40)), int(g)) for i, g in enumerate(gpus)],
        gpu_milli=np.where(gpus == 1, rng.choice([250, 500, 1000], n), 1000),
        num_cpus=rng.choice([1.0, 4.0], n),
    )
    sim = simulate(trace, cluster, FgdPolicy(scoring=scoring, integer_scores=scoring == "fgd"))
    assert (sim.jobs.status == 3).all()


def test_gpu_clustering_tags_follow_completions():
    # Node 0 gets a shared task; once it finishes, node 0 is idle again and the next shared
    # task may go anywhere idle; while it runs, the next shared task joins it on node 0.
    cluster = ClusterSpec.homogeneous(2, 2, "T4")
    trace = make_trace([(1, 0, 10, 1), (2, 1, 10, 1), (3, 20, 5, 1)], gpu_milli=[300, 300, 300])
    pol = FgdPolicy(scoring="gpu_clustering", tie_break="first")
    sim = simulate(trace, cluster, pol)
    assert [int(p[0]) for p in sim.jobs.nodes_used] == [0, 0, 0]
    assert pol._tags.sum() == 1  # only task 3 is still tagged (tags drop at the next pass)


# ---------------------------------------------------------------------- tie-break rules


def _cpu_only_run(scoring, tie_break, seed):
    """Six identical idle nodes (2 T4, 16 cores); ten long CPU-only tasks of 4 cores each.

    ``gpu_packing`` and ``gpu_clustering`` score a CPU-only task 0 on every node: every
    placement is a tie over all nodes that still have 4 cores free.
    """
    cluster = ClusterSpec.homogeneous(6, 2, "T4", cpus_per_node=16.0)
    trace = make_trace([(i, float(i), 100.0, 0) for i in range(10)], gpu_milli=0, num_cpus=4.0)
    policy = FgdPolicy(scoring=scoring, on_no_fit="reject", tie_break=tie_break)
    sim = simulate(trace, cluster, policy, seed=seed)
    return [int(p[0]) for p in sim.jobs.nodes_used], policy


@pytest.mark.parametrize("scoring", ["gpu_packing", "gpu_clustering", "dotprod"])
def test_ranking_fills_the_first_ranked_nodes(scoring):
    # the FGD artifact's rule: one random node ranking per run (its "%04d-" name prefixes from
    # one rand.Perm), ties to the first-ranked node (selectHost keeps the smallest name). The
    # ranking is the run's first draw: a permutation of the nodes from the run's seed.
    firsts = set()
    for seed in range(6):
        nodes, policy = _cpu_only_run(scoring, "ranking", seed)
        rank = np.random.default_rng(seed).permutation(6)
        np.testing.assert_array_equal(policy._rank, rank)
        order = np.argsort(rank)  # nodes, best-ranked first
        # (dotprod then prefers the node with the least free CPU: the one being filled)
        assert nodes == [int(order[0])] * 4 + [int(order[1])] * 4 + [int(order[2])] * 2
        assert _cpu_only_run(scoring, "ranking", seed)[0] == nodes  # same seed, same run
        firsts.add(nodes[0])
    assert len(firsts) > 1  # the ranking depends on the seed


def test_random_tie_break_spreads_ties_and_random_scoring_ignores_the_ranking():
    # per-placement keys: ties spread over the cluster (the behaviour the ranking replaces)
    spread = [len(set(_cpu_only_run("gpu_packing", "random", s)[0][:4])) for s in range(6)]
    assert max(spread) > 1
    # scoring=random draws a node per task whatever the tie-break (no ranking drawn)
    for seed in range(4):
        nodes, policy = _cpu_only_run("random", "ranking", seed)
        assert policy._rank is None
        assert nodes == _cpu_only_run("random", "random", seed)[0]


def test_ranking_breaks_ties_of_gpu_tasks_and_fgd():
    # whole-GPU tasks on identical idle nodes: every scoring ties on the first task; the
    # ranking's first node takes it (fgd included), and the next ties go the same way
    cluster = ClusterSpec.homogeneous(4, 2, "T4", cpus_per_node=16.0)
    trace = make_trace([(1, 0, 99, 1)], gpu_milli=1000, num_cpus=1.0)
    for scoring in ("fgd", "gpu_packing", "bestfit"):
        for seed in range(3):
            sim = simulate(trace, cluster, FgdPolicy(scoring, tie_break="ranking"), seed=seed)
            first = int(np.argmin(np.random.default_rng(seed).permutation(4)))
            assert int(sim.jobs.nodes_used[0][0]) == first


def test_unknown_tie_break_is_refused():
    with pytest.raises(ValueError, match="unknown tie_break 'smallest'"):
        FgdPolicy(tie_break="smallest")
