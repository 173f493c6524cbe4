"""Kueue: quota accounting, flavor assignment and the ported preemption scenarios.

The preemption scenarios are facts of kubernetes-sigs/kueue
pkg/scheduler/preemption/preemption_test.go (TestPreemption), kept as data in
tests/scenarios/kueue/preemption.yaml; the borrowing/lending examples are the worked examples
of Kueue's docs (site/content/en/docs/concepts/cluster_queue.md).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.kueue.quota import Admitted, Node, QuotaTree, assign_flavor, preemption_targets
from tests.scenarios.loader import kueue_tree, kueue_workload, load

PRE = load("kueue/preemption.yaml")
CPU = ("default", "cpu")


@pytest.mark.parametrize("sc", PRE["scenarios"], ids=[s["name"][:60] for s in PRE["scenarios"]])
def test_ported_preemption_scenario(sc):
    tree = kueue_tree(PRE["cluster_queues"])
    for row in sc["admitted"]:
        tree.admit(kueue_workload(*row))
    inc = sc["incoming"]
    incoming = kueue_workload("incoming", inc[0], inc[1], inc[2], inc[3] if len(inc) > 3 else None)
    frs = [tuple(k.split("/")) for k in sc["preempt"]]
    before = {n: dict(v.usage) for n, v in tree.nodes.items()}
    got = preemption_targets(tree, incoming, frs)
    assert sorted(got) == sorted(sc["want"])
    assert {n: dict(v.usage) for n, v in tree.nodes.items()} == before  # scratch restored


def test_ported_count():
    assert len(PRE["scenarios"]) >= 25


def two_teams(a_limits=None, b_limits=None):
    a = Node("team-a-cq", parent="team-ab", nominal={CPU: 9000})
    b = Node("team-b-cq", parent="team-ab", nominal={CPU: 12000})
    for node, lim in ((a, a_limits), (b, b_limits)):
        for k, v in (lim or {}).items():
            getattr(node, k)[CPU] = v
    return QuotaTree([a, b])


def test_docs_borrowing_example():
    t = two_teams()
    assert t.available("team-a-cq", CPU) == 21000  # "12+9=21 CPUs"
    t.admit(Admitted("b1", "team-b-cq", {CPU: 12000}))
    assert t.available("team-a-cq", CPU) == 9000


def test_docs_borrowing_limit_example():
    t = two_teams(a_limits={"borrowing_limit": 1000})
    assert t.available("team-a-cq", CPU) == 10000  # "9+1=10 CPUs"
    assert t.potential_available("team-a-cq", CPU) == 10000
    assert t.available("team-b-cq", CPU) == 21000  # "team-b-cq can use up to 12+9 CPUs"


def test_docs_lending_limit_example():
    t = two_teams(b_limits={"lending_limit": 1000})
    assert t.available("team-a-cq", CPU) == 10000  # "9+1=10 CPUs"
    assert t.available("team-b-cq", CPU) == 21000
    t.admit(Admitted("b", "team-b-cq", {CPU: 11000}))  # b within what it keeps (11)
    assert t.available("team-a-cq", CPU) == 10000
    t.admit(Admitted("a", "team-a-cq", {CPU: 10000}))
    assert t.available("team-b-cq", CPU) == 0 and t.borrowing_with("team-a-cq", CPU, 0)


def test_hierarchical_cohort_quota():
    root = Node("org", is_cq=False, nominal={CPU: 4000})
    left = Node("left", is_cq=False, parent="org")
    a = Node("a", parent="left", nominal={CPU: 2000})
    b = Node("b", parent="org", nominal={CPU: 2000}, lending_limit={CPU: 0})
    t = QuotaTree([root, left, a, b])
    assert t.potential_available("a", CPU) == 6000  # own 2 + org's 4; b lends nothing
    assert t.potential_available("b", CPU) == 8000
    t.admit(Admitted("w", "a", {CPU: 5000}))
    # usage past what a child keeps (nothing without a lending limit) counts at each parent
    assert t.nodes["left"].usage[CPU] == 5000 and t.nodes["org"].usage[CPU] == 5000
    assert t.available("b", CPU) == 3000
    t.evict("w")
    assert all(v == 0 for n in t.nodes.values() for v in n.usage.values())


def flavors_tree():
    on = Node("on-demand-cq", parent="c", nominal={("spot", "gpu"): 8, ("h100", "gpu"): 8})
    other = Node("other", parent="c", nominal={("spot", "gpu"): 8, ("h100", "gpu"): 0})
    return QuotaTree([on, other])


def test_flavor_assignment_order_and_fungibility():
    t = flavors_tree()
    choice = assign_flavor(t, "on-demand-cq", ["h100", "spot"], {"gpu": 8})
    assert (choice.flavor, choice.mode, choice.borrows) == ("h100", "Fit", False)
    t.admit(Admitted("x", "on-demand-cq", {("h100", "gpu"): 8}))
    choice = assign_flavor(t, "on-demand-cq", ["h100", "spot"], {"gpu": 8})
    assert (choice.flavor, choice.mode) == ("spot", "Fit")  # h100 needs preemption: try next
    t.admit(Admitted("y", "on-demand-cq", {("spot", "gpu"): 8}))
    choice = assign_flavor(t, "on-demand-cq", ["h100", "spot"], {"gpu": 8})
    assert (choice.flavor, choice.mode, choice.borrows) == ("spot", "Fit", True)  # borrow spot
    choice = assign_flavor(
        t, "on-demand-cq", ["h100", "spot"], {"gpu": 8}, when_can_borrow="TryNextFlavor"
    )
    assert choice.mode == "Fit" and choice.borrows
    choice = assign_flavor(t, "on-demand-cq", ["h100", "spot"], {"gpu": 17})
    assert choice.mode == "NoFit" and choice.flavor == ""
    choice = assign_flavor(
        t, "on-demand-cq", ["h100", "spot"], {"gpu": 4}, eligible=lambda f: f != "spot"
    )
    assert (choice.flavor, choice.mode) == ("h100", "Preempt")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 6)), max_size=12), st.integers(0, 3))
def test_quota_never_exceeded_beyond_borrowing(ops, lend):
    nodes = [
        Node("q0", parent="c", nominal={CPU: 4}, borrowing_limit={CPU: 2}),
        Node("q1", parent="c", nominal={CPU: 4}, lending_limit={CPU: lend}),
        Node("q2", parent="c", nominal={CPU: 2}),
    ]
    t = QuotaTree(nodes)
    held = {q: 0 for q in ("q0", "q1", "q2")}
    for i, (q, v) in enumerate(ops):
        cq = f"q{q}"
        if v <= t.available(cq, CPU):
            t.admit(Admitted(f"w{i}", cq, {CPU: v}))
            held[cq] += v
    assert held["q0"] <= 4 + 2  # borrowing limit
    assert sum(held.values()) <= 10  # the cohort's total
    assert held["q0"] + held["q2"] <= 4 + 2 + lend  # q1 lends at most its lending limit
    for cq in held:
        assert t.nodes[cq].usage.get(CPU, 0) == held[cq]
