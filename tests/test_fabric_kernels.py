"""Fabric kernels against slow, obviously-correct twins (exact fractions for max-min)."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.models.fabric_kernels import max_min_fair, placement_profile

# ---------------------------------------------------------------------- max-min fairness


def naive_max_min(link_cap, flow_links, flow_cap):
    """Progressive filling in exact rational arithmetic."""
    caps = [Fraction(c) for c in link_cap]
    fcap = [Fraction(c) for c in flow_cap]
    rate = [Fraction(0)] * len(fcap)
    active = set(range(len(fcap)))
    while active:
        load = [sum(1 for f in active if link in flow_links[f]) for link in range(len(caps))]
        used = [
            sum(rate[f] for f in range(len(fcap)) if link in flow_links[f])
            for link in range(len(caps))
        ]
        steps = [fcap[f] - rate[f] for f in active]
        steps += [(caps[link] - used[link]) / load[link] for link in range(len(caps)) if load[link]]
        step = min(steps)
        for f in active:
            rate[f] += step
        used = [
            sum(rate[f] for f in range(len(fcap)) if link in flow_links[f])
            for link in range(len(caps))
        ]
        full = {link for link in range(len(caps)) if used[link] == caps[link]}
        active = {f for f in active if rate[f] < fcap[f] and not (set(flow_links[f]) & full)}
    return [float(r) for r in rate]


def check_max_min(link_cap, flow_links, flow_cap, rates):
    """Feasible, and every flow is capped or has a saturated link where it is largest."""
    tol = 1e-9
    for link, cap in enumerate(link_cap):
        on = [f for f in range(len(rates)) if link in flow_links[f]]
        assert sum(rates[f] for f in on) <= cap * (1 + tol)
    for f, r in enumerate(rates):
        assert r <= flow_cap[f] * (1 + tol)
        if r >= flow_cap[f] * (1 - tol):
            continue
        ok = False
        for link in flow_links[f]:
            on = [g for g in range(len(rates)) if link in flow_links[g]]
            saturated = sum(rates[g] for g in on) >= link_cap[link] * (1 - tol)
            if saturated and r >= max(rates[g] for g in on) * (1 - tol):
                ok = True
        assert ok, f"flow {f} is neither capped nor bottlenecked"


def test_two_flows_on_one_link_get_half_each():
    assert list(max_min_fair(np.array([1e9]), [[0], [0]], np.array([1e9, 1e9]))) == [5e8, 5e8]


def test_capped_flow_leaves_the_rest_to_others():
    # link 10; flow 0 capped at 2 -> flows 1 and 2 share the remaining 8
    rates = max_min_fair(np.array([10.0]), [[0], [0], [0]], np.array([2.0, 100.0, 100.0]))
    assert list(rates) == [2.0, 4.0, 4.0]


def test_parking_lot():
    # classic: flow 0 crosses links 0 and 1 (cap 1 each), flows 1, 2 one link each -> 1/2 all
    rates = max_min_fair(np.array([1.0, 1.0]), [[0, 1], [0], [1]], np.array([9.0] * 3))
    assert list(rates) == [0.5, 0.5, 0.5]
    # a second flow on link 1 only: link 1 gives 1/3 each; flow 1 then takes link 0's rest
    rates = max_min_fair(np.array([1.0, 1.0]), [[0, 1], [0], [1], [1]], np.array([9.0] * 4))
    assert rates == pytest.approx([1 / 3, 2 / 3, 1 / 3, 1 / 3])


problems = st.integers(1, 4).flatmap(
    lambda n_links: st.tuples(
        st.lists(st.integers(1, 20), min_size=n_links, max_size=n_links),
        st.lists(
            st.tuples(
                st.lists(st.integers(0, n_links - 1), min_size=1, max_size=n_links, unique=True),
                st.integers(1, 30),
            ),
            min_size=1,
            max_size=6,
        ),
    )
)


@settings(max_examples=150, deadline=None)
@given(problems)
def test_max_min_matches_exact_reference(problem):
    link_cap, flows = problem
    flow_links = [links for links, _ in flows]
    flow_cap = [cap for _, cap in flows]
    rates = max_min_fair(np.array(link_cap, float), flow_links, np.array(flow_cap, float))
    assert list(rates) == pytest.approx(naive_max_min(link_cap, flow_links, flow_cap), rel=1e-9)
    check_max_min(link_cap, flow_links, flow_cap, list(rates))


def test_max_min_rejects_unknown_links():
    with pytest.raises(ValueError, match="link"):
        max_min_fair(np.array([1.0]), [[1]], np.array([1.0]))


# ---------------------------------------------------------------------- placement profile


def naive_profile(gpus, g_max, node_domain, node_leaf, node_nic):
    nodes = [g // g_max for g in gpus]
    per_domain: dict[int, list[int]] = {}
    for g, node in zip(gpus, nodes, strict=True):
        per_domain.setdefault(node_domain[node], []).append(g)
    egress = min(sum(node_nic[g // g_max] for g in gs) for gs in per_domain.values())
    most = max(len(gs) for gs in per_domain.values())
    leaves = {node_leaf[node] for node in nodes}
    slots: dict[int, set[int]] = {}
    for g, node in zip(gpus, nodes, strict=True):
        slots.setdefault(node, set()).add(g % g_max)
    aligned = len({frozenset(s) for s in slots.values()}) == 1
    return len(per_domain), len(leaves), egress, most, aligned, leaves


clusters = st.tuples(st.integers(1, 8), st.integers(1, 6), st.integers(1, 3), st.integers(1, 4))


@settings(max_examples=150, deadline=None)
@given(clusters, st.data())
def test_profile_matches_reference(shape, data):
    g_max, n_nodes, per_domain, per_leaf = shape
    node_leaf = np.arange(n_nodes, dtype=np.int64) // per_leaf
    node_domain = np.arange(n_nodes, dtype=np.int64) // per_domain
    node_nic = np.array(
        data.draw(st.lists(st.sampled_from([12.5, 25.0, 50.0]), min_size=n_nodes, max_size=n_nodes))
    )
    all_gpus = list(range(n_nodes * g_max))
    gpus = data.draw(st.lists(st.sampled_from(all_gpus), min_size=1, unique=True))
    gpus = np.array(data.draw(st.permutations(gpus)), dtype=np.int64)
    d, nl, egress, most, aligned, leaves = placement_profile(
        gpus, g_max, node_domain, node_leaf, node_nic
    )
    rd, rnl, regress, rmost, raligned, rleaves = naive_profile(
        gpus.tolist(), g_max, node_domain, node_leaf, node_nic
    )
    assert (d, nl, most, aligned) == (rd, rnl, rmost, raligned)
    assert egress == pytest.approx(regress)
    assert set(leaves.tolist()) == rleaves


def test_profile_checks_dtypes():
    with pytest.raises(TypeError, match="gpus"):
        placement_profile(
            np.array([0], dtype=np.int32),
            8,
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            np.ones(1),
        )
