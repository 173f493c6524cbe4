"""Every compiled kernel against its slow reference twin in tests/naive.py."""

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.core import kernels


def random_state(rng, n_nodes, g_max=8, n_models=3):
    caps = rng.integers(0, g_max + 1, n_nodes)
    gpu_free = np.full((n_nodes, g_max), -1, dtype=np.int32)
    for i, c in enumerate(caps):
        gpu_free[i, :c] = rng.choice([0, 250, 400, 700, 1000, 1000, 1000], size=c)
    free_full = (gpu_free == 1000).sum(axis=1).astype(np.int32)
    cpu = rng.choice([np.inf, 4.0, 16.0, 64.0], size=n_nodes).astype(np.float64)
    mem = rng.choice([np.inf, 32.0, 256.0], size=n_nodes).astype(np.float64)
    model = rng.integers(-1, n_models, n_nodes).astype(np.int32)
    up = rng.random(n_nodes) > 0.1
    return free_full, gpu_free, cpu, mem, model, up


def random_demand(rng):
    n = int(rng.choice([0, 1, 1, 2, 4, 8]))
    milli = int(rng.choice([100, 300, 500, 1000, 1000])) if n == 1 else (1000 if n else 0)
    return (
        n,
        milli,
        float(rng.choice([0, 2, 8, 32])),
        float(rng.choice([0, 16, 128])),
        int(rng.choice([0, 0, 1, 2, 3, 5, -1])),
    )


@pytest.mark.parametrize("seed", range(300))
def test_feasible_and_select_match_reference(seed):
    rng = np.random.default_rng(seed)
    state = random_state(rng, int(rng.integers(1, 12)))
    demand = random_demand(rng)
    got = kernels.feasible_mask(*state, *demand)
    assert list(got) == naive.feasible(*state, *demand)
    for mode in (kernels.BEST_FIT, kernels.SPREAD, kernels.FIRST_FIT):
        assert kernels.select_node(*state, *demand, mode=mode) == naive.select_node(
            *state, *demand, mode
        )


def test_select_node_hand_made():
    free_full = np.array([8, 3, 5, 8], np.int32)
    gpu_free = np.full((4, 8), 1000, np.int32)
    gpu_free[1, 3:] = 0
    gpu_free[2, 5:] = 0
    inf = np.full(4, np.inf)
    model = np.zeros(4, np.int32)
    up = np.ones(4, bool)
    args = (free_full, gpu_free, inf, inf, model, up, 3, 1000, 0.0, 0.0, 0)
    assert kernels.select_node(*args, mode=kernels.BEST_FIT) == (1, -1)  # 3 free: exact fit
    assert kernels.select_node(*args, mode=kernels.SPREAD) == (0, -1)  # most free, lowest id
    assert kernels.select_node(*args, mode=kernels.FIRST_FIT) == (0, -1)
    up[1] = False
    assert kernels.select_node(*args, mode=kernels.BEST_FIT) == (2, -1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 8), min_size=1, max_size=8), st.integers(1, 70), st.integers(1, 3))
def test_gang_selection_is_optimal(usable, n, n_racks):
    u = np.array(usable, dtype=np.int64)
    racks = (np.arange(len(u)) * n_racks // len(u)).astype(np.int32)
    counts = kernels.select_gang(u, racks, n)
    k, left = naive.gang_optimum(usable, list(racks), n)
    if k < 0:
        assert counts.sum() == 0
        return
    assert counts.sum() == n and (counts <= u).all() and (counts >= 0).all()
    assert (counts > 0).sum() == k
    assert u[counts > 0].sum() - n == left


def test_gang_prefers_one_rack_on_ties():
    # racks: [0,0,1,1]; a 12-GPU gang fits 8+4 in rack 1 or 8+4 across racks
    u = np.array([8, 0, 4, 8], dtype=np.int64)
    racks = np.array([0, 0, 1, 1], dtype=np.int32)
    counts = kernels.select_gang(u, racks, 12)
    assert list(counts) == [0, 0, 4, 8]


def test_usable_gpus_limited_by_cpu_and_memory():
    free_full = np.array([8, 8, 8], np.int32)
    cpu = np.array([np.inf, 10.0, 64.0])
    mem = np.array([np.inf, 1000.0, 20.0])
    got = kernels.usable_gpus(
        free_full, cpu, mem, np.zeros(3, np.int32), np.ones(3, bool), 4.0, 8.0, 0
    )
    assert list(got) == [8, 2, 2]


def test_wrappers_check_dtypes():
    free_full = np.array([8], np.int64)  # wrong dtype
    with pytest.raises(TypeError, match="free_full must be int32"):
        kernels.feasible_mask(
            free_full,
            np.zeros((1, 8), np.int32),
            np.ones(1),
            np.ones(1),
            np.zeros(1, np.int32),
            np.ones(1, bool),
            1,
            1000,
            0,
            0,
            0,
        )


def test_pick_full_gpus():
    gpu_free = np.array([[1000, 0, 1000, 500, 1000]], np.int32)
    assert list(kernels.pick_full_gpus(gpu_free, 0, 2)) == [0, 2]
    with pytest.raises(ValueError):
        kernels.pick_full_gpus(gpu_free, 0, 4)


@pytest.mark.parametrize("seed", range(200))
def test_indexed_selection_matches_linear_scan(seed):
    rng = np.random.default_rng(1000 + seed)
    free_full, gpu_free, cpu, mem, model, up = random_state(rng, int(rng.integers(1, 150)))
    buckets = kernels.build_buckets(free_full, gpu_free.shape[1])
    n = int(rng.integers(1, 10))
    cpus, mem_need = float(rng.choice([0, 2, 8])), float(rng.choice([0, 16, 128]))
    mask = int(rng.choice([0, 0, 1, 2, 3, -1]))
    for mode in (kernels.BEST_FIT, kernels.SPREAD, kernels.FIRST_FIT):
        linear, _ = kernels.select_node(
            free_full, gpu_free, cpu, mem, model, up, n, 1000, cpus, mem_need, mask, mode=mode
        )
        assert (
            kernels.select_full_indexed(
                buckets, cpu, mem, model, up, n, cpus, mem_need, mask, mode=mode
            )
            == linear
        )


def test_buckets_follow_allocation():
    from simulator.core.cluster import ClusterSpec, ClusterState

    st = ClusterState(ClusterSpec.homogeneous(70, 8, "V100"))
    rng = np.random.default_rng(5)
    taken = []
    for _ in range(300):
        if taken and rng.random() < 0.4:
            nodes, gpus = taken.pop(int(rng.integers(len(taken))))
            res = st.zeros(1) if rng.random() < 0.5 else np.zeros(1)  # fast path or not
            st.release(nodes, gpus, 1000, res, res)
        else:
            node = int(rng.integers(70))
            free = np.flatnonzero(st.gpu_free[node] == 1000)
            if len(free) == 0:
                continue
            k = int(rng.integers(1, len(free) + 1))
            nodes, gpus = np.array([node]), (node * 8 + free[:k]).astype(np.int64)
            assert st.check(nodes, gpus, 1000, np.zeros(1), np.zeros(1)) == 0
            res = st.zeros(1) if rng.random() < 0.5 else np.zeros(1)
            st.allocate(nodes, gpus, 1000, res, res)
            taken.append((nodes, gpus))
        expect = kernels.build_buckets(st.free_full, 8)
        np.testing.assert_array_equal(st.buckets, expect)
        assert st.free_gpu_total == int(st.free_full.sum())


def test_allocation_check_codes():
    from simulator.core.cluster import ClusterSpec, ClusterState

    spec = ClusterSpec.from_groups(
        [
            {"count": 1, "num_gpus": 4, "gpu_type": "V100", "num_cpus": 8, "memory_gb": 64},
            {"count": 1, "num_gpus": 4, "gpu_type": "H100", "num_cpus": 8, "memory_gb": 64},
        ]
    )
    st = ClusterState(spec)
    z = np.zeros(1)

    def check(nodes, gpus, milli=1000, cpus=z, mem=z, mask=0):
        return st.check(
            np.array(nodes, np.int64),
            np.array(gpus, np.int64),
            milli,
            np.asarray(cpus, float),
            np.asarray(mem, float),
            mask,
        )

    assert check([0], [0, 1]) == kernels.ALLOC_OK
    assert check([0], [0, 99]) == kernels.ALLOC_BAD_GPU
    assert check([0], [0, 0]) == kernels.ALLOC_DUPLICATE
    assert check([0], [4]) == kernels.ALLOC_NODES_MISMATCH  # GPU 4 is on node 1
    assert check([0, 1], [0, 1], cpus=[0, 0], mem=[0, 0]) == kernels.ALLOC_NODES_MISMATCH
    assert check([0], [0], cpus=[9]) == kernels.ALLOC_CPU_MEM
    assert check([0], [0], mem=[65]) == kernels.ALLOC_CPU_MEM
    assert check([1], [4], mask=st.type_mask("V100")) == kernels.ALLOC_GPU_TYPE
    st.node_up[1] = False
    assert check([1], [4]) == kernels.ALLOC_NODE_DOWN
    st.node_up[1] = True
    st.allocate(np.array([0]), np.array([0]), 600, z, z)
    assert check([0], [0], milli=500) == kernels.ALLOC_NO_ROOM
    assert check([0], [0], milli=400) == kernels.ALLOC_OK
    assert set(kernels.ALLOC_MESSAGES) == {1, 2, 3, 4, 5, 6, 7}


def test_wrappers_reject_bad_arguments():
    ff = np.array([8], np.int32)
    gf = np.full((1, 8), 1000, np.int32)
    one = np.ones(1)
    with pytest.raises(ValueError, match="unknown scoring mode"):
        kernels.select_node(
            ff, gf, one, one, np.zeros(1, np.int32), np.ones(1, bool), 1, 1000, 0, 0, 0, mode=7
        )
    with pytest.raises(TypeError):
        kernels.select_gang(np.array([8], np.int32), np.array([0], np.int32), 4)
    with pytest.raises(TypeError):
        kernels.build_buckets(np.array([8], np.int64), 8)
    with pytest.raises(ValueError):
        kernels.build_buckets(np.array([9], np.int32), 8)
    with pytest.raises(ValueError):
        kernels.select_full_indexed(
            kernels.build_buckets(ff, 8),
            one,
            one,
            np.zeros(1, np.int32),
            np.ones(1, bool),
            0,
            0,
            0,
            0,
        )
    with pytest.raises(ValueError, match="rows"):
        kernels.feasible_mask(
            ff, gf, np.ones(2), one, np.zeros(1, np.int32), np.ones(1, bool), 1, 1000, 0, 0, 0
        )


# ---------------------------------------------------------------------- fused fast paths
# The engine's hot path calls fused kernels; each must give exactly what the separate
# kernels (already checked against the references above) give.


def naive_pick(gpu_free, node, count):
    g_max = gpu_free.shape[1]
    return [node * g_max + g for g in range(g_max) if gpu_free[node, g] == 1000][:count]


@pytest.mark.parametrize("seed", range(200))
def test_take_full_is_select_then_pick(seed):
    rng = np.random.default_rng(7000 + seed)
    free_full, gpu_free, cpu, mem, model, up = random_state(rng, int(rng.integers(1, 150)))
    buckets = kernels.build_buckets(free_full, gpu_free.shape[1])
    n = int(rng.integers(1, 10))
    cpus, mem_need = float(rng.choice([0, 2, 8])), float(rng.choice([0, 16, 128]))
    mask = int(rng.choice([0, 0, 1, 2, 3, -1]))
    for mode in (kernels.BEST_FIT, kernels.SPREAD, kernels.FIRST_FIT):
        node, _ = naive.select_node(
            free_full, gpu_free, cpu, mem, model, up, n, 1000, cpus, mem_need, mask, mode
        )
        out = np.full(n, -7, dtype=np.int64)
        got = kernels._take_full(
            buckets, gpu_free, cpu, mem, model, up, n, cpus, mem_need, mask, mode, out
        )
        assert got == node
        if node >= 0:
            assert list(out) == naive_pick(gpu_free, node, n)
        else:
            assert (out == -7).all()


@pytest.mark.parametrize("seed", range(100))
def test_place_gang_is_usable_select_then_pick(seed):
    rng = np.random.default_rng(8000 + seed)
    num = int(rng.integers(1, 40))
    free_full, gpu_free, cpu, mem, model, up = random_state(rng, num)
    racks = (np.arange(num) * int(rng.integers(1, 4)) // num).astype(np.int32)
    order, start = kernels.rack_index(racks)
    n = int(rng.integers(2, 40))
    cpu_per, mem_per = float(rng.choice([0, 1, 4])), float(rng.choice([0, 8, 64]))
    mask = int(rng.choice([0, 0, 1, 3]))
    usable = np.empty(num, dtype=np.int64)
    kernels._usable_gpus(free_full, cpu, mem, model, up, cpu_per, mem_per, mask, usable)
    gpus = np.empty(n, dtype=np.int64)
    nodes = np.empty(min(n, num), dtype=np.int64)
    counts = np.empty(min(n, num), dtype=np.int64)
    k = kernels._place_gang(
        free_full,
        gpu_free,
        cpu,
        mem,
        model,
        up,
        racks,
        order,
        start,
        n,
        cpu_per,
        mem_per,
        mask,
        gpus,
        nodes,
        counts,
    )
    if usable.sum() < n:
        assert k == -1
        return
    expect = kernels._select_gang(usable, racks, order, start, n)
    chosen = np.flatnonzero(expect)
    assert k == len(chosen)
    assert list(nodes[:k]) == list(chosen) and list(counts[:k]) == list(expect[chosen])
    want = [g for i in chosen for g in naive_pick(gpu_free, i, int(expect[i]))]
    assert list(gpus) == want


@pytest.mark.parametrize("seed", range(50))
def test_apply_gpus_is_apply_without_cpu_and_memory(seed):
    rng = np.random.default_rng(9000 + seed)
    free_full, gpu_free, cpu, mem, model, up = random_state(rng, int(rng.integers(1, 100)))
    g_max = gpu_free.shape[1]
    buckets = kernels.build_buckets(free_full, g_max)
    twin = [a.copy() for a in (gpu_free, free_full, cpu, mem, buckets)]
    for _ in range(30):
        milli = int(rng.choice([250, 1000]))
        nodes = np.flatnonzero((gpu_free >= milli).any(axis=1))
        if len(nodes) == 0:
            break
        picked = rng.choice(nodes, size=min(len(nodes), int(rng.integers(1, 4))), replace=False)
        picked = np.sort(picked).astype(np.int64)
        gpus = np.array(
            [i * g_max + int(np.flatnonzero(gpu_free[i] >= milli)[0]) for i in picked],
            dtype=np.int64,
        )
        zeros = np.zeros(len(picked))
        for sign in (-1, 1) if rng.random() < 0.3 else (-1,):
            d1 = kernels._apply_gpus(gpu_free, free_full, buckets, gpus, milli, sign)
            d2 = kernels._apply(*twin, picked, gpus, milli, zeros, zeros, sign)
            assert d1 == d2
            for a, b in zip((gpu_free, free_full, cpu, mem, buckets), twin, strict=True):
                np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(buckets, kernels.build_buckets(free_full, g_max))


@pytest.mark.parametrize("seed", range(200))
def test_fits_on_nodes_is_place_into_for_single_node_jobs(seed):
    # the victim search's fit test on given nodes must agree with the placement rule itself
    # for every job that takes one node, whatever the free resources
    from simulator.core.cluster import ClusterSpec, ClusterState
    from simulator.core.refs import buf_ref

    rng = np.random.default_rng(9100 + seed)
    num = int(rng.integers(1, 10))
    gpus = rng.choice([0, 1, 2, 4, 8], size=num).astype(np.int64)
    models = tuple("" if g == 0 else str(rng.choice(["A100", "H100"])) for g in gpus)
    cpus = rng.choice([np.inf, 8.0, 32.0], size=num).astype(float)
    mem = rng.choice([np.inf, 64.0, 256.0], size=num).astype(float)
    spec = ClusterSpec(
        tuple(f"n{i}" for i in range(num)), gpus, models, cpus, mem, np.zeros(num, dtype=np.int64)
    )
    state = ClusterState(spec)
    gpu_free = state.gpu_free.copy()
    real = gpu_free >= 0
    gpu_free[real] = rng.choice([0, 250, 500, 1000, 1000], size=int(real.sum()))
    cpu_free = np.where(np.isinf(cpus), cpus, cpus * rng.random(num))
    mem_free = np.where(np.isinf(mem), mem, mem * rng.random(num))
    state.load_free(gpu_free, cpu_free, mem_free, rng.random(num) > 0.15)
    ref = state.ref
    buf = buf_ref(kernels.new_buf(num, gpu_free.size))
    nodes = np.arange(num, dtype=np.int64)
    for _ in range(40):
        n, milli, c, m, _ = random_demand(rng)
        mask = int(rng.choice([0, 0, 1, 2, 3]))
        if n > int(gpus.max()):
            continue
        placed = kernels.place_into(
            ref, n, milli, mask, c, m, 0, True, kernels.BEST_FIT, False, rng.random() < 0.5, buf
        )
        assert kernels.fits_on_nodes(ref, nodes, num, n, milli, mask, c, m) == (placed >= 0)


@pytest.mark.parametrize("seed", range(50))
def test_min_free_is_load_free_of_the_elementwise_minimum(seed):
    # the backfill pass's "least free over a span" state must be as consistent (free_full,
    # buckets, books) as a state loaded from scratch with the element-wise minimum
    from simulator.core.cluster import ClusterSpec, ClusterState

    rng = np.random.default_rng(9400 + seed)
    num = int(rng.integers(1, 10))
    gpus = rng.choice([0, 1, 2, 4, 8], size=num).astype(np.int64)
    models = tuple("" if g == 0 else "H100" for g in gpus)
    cpus = rng.choice([np.inf, 8.0, 32.0], size=num).astype(float)
    spec = ClusterSpec(
        tuple(f"n{i}" for i in range(num)), gpus, models, cpus, cpus, np.zeros(num, dtype=np.int64)
    )

    def random_state():
        s = ClusterState(spec)
        g = s.gpu_free.copy()
        real = g >= 0
        g[real] = rng.choice([0, 250, 1000, 1000], size=int(real.sum()))
        c = np.where(np.isinf(cpus), cpus, cpus * rng.random(num))
        s.load_free(g, c, c.copy(), rng.random(num) > 0.2)
        return s

    a, b, dst = random_state(), random_state(), random_state()
    whole = seed % 2 == 0
    if whole:
        kernels.min_free(dst.ref, a.ref, b.ref)
    else:  # node by node, some twice
        for i in list(range(num)) + list(rng.integers(0, num, size=3)):
            kernels.min_node(dst.ref, a.ref, b.ref, int(i))
    want = ClusterState(spec)
    want.load_free(
        np.minimum(a.gpu_free, b.gpu_free),
        np.minimum(a.cpu_free, b.cpu_free),
        np.minimum(a.mem_free, b.mem_free),
        a.node_up,
    )
    for name in ("gpu_free", "free_full", "cpu_free", "mem_free", "node_up", "buckets"):
        np.testing.assert_array_equal(getattr(dst, name), getattr(want, name), err_msg=name)
    assert dst.free_gpu_total == want.free_gpu_total
    assert dst.allocated_milli == want.allocated_milli


def test_fair_pass_sums_as_numpy_does():
    # the compiled fair pass must add arrays in NumPy's order (pairwise, 8 accumulators) to
    # make the Python reference's fair shares bit for bit
    from policies.fair_pass import _np_sum

    rng = np.random.default_rng(77)
    for n in [*range(0, 40), 127, 128, 129, 255, 256, 257, 1000, 4099]:
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 17, n)
        assert _np_sum(a, 0, n) == a.sum(), n
        if n > 3:
            assert _np_sum(a, 2, n - 3) == a[2 : n - 1].sum(), n
