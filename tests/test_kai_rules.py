"""KAI rules: config parsing, capacity checks, reclaim, priorities, min-runtime, decayed usage.

Facts from KAI-Scheduler's docs (docs/priority, docs/scheduling-deep-dive,
docs/plugins/minruntime.md,
docs/time-based-fairshare) and its proportion plugin; engine-driven action scenarios are data in
tests/scenarios/kai/actions.yaml, run through the `kai` policy and the engine.
"""

import math

import pytest

from policies.kai.fairshare import build_shares, fair_shares
from policies.kai.objects import load_kai_config, parse_duration, parse_kai_config
from policies.kai.rules import (
    can_preempt,
    can_reclaim_resources,
    decayed_usage,
    is_preemptible,
    non_preemptible_over_quota,
    over_limit,
    preempt_min_runtime,
    reclaim_min_runtime,
    reclaimable,
    victim_queue_order,
)
from policies.kueue.objects import load_kueue_config
from simulator.k8s.manifests import ManifestError, parse_manifests
from tests.scenarios.loader import HERE, load
from tests.test_k8s_nodes import ROOT

EX = ROOT / "examples" / "kubernetes"


def cfg(text):
    return parse_kai_config(parse_manifests(text, "kai.yaml"), "kai.yaml")


def queue(name, gpu, parent="", extra=""):
    return f"""- apiVersion: scheduling.run.ai/v2
  kind: Queue
  metadata: {{name: {name}}}
  spec:
    parentQueue: "{parent}"
    {extra}
    resources:
      gpu: {gpu}
      cpu: {{quota: -1, overQuotaWeight: 1, limit: -1}}
      memory: {{quota: -1, overQuotaWeight: 1, limit: -1}}
"""


def test_example_config_and_defaults():
    c = load_kai_config(EX / "kai.yaml")
    assert c.leaves() == ["team-llm", "team-vision", "team-serving", "team-batch"]
    assert c.priority_classes == {
        "train": 50,
        "build-preemptible": 75,
        "build": 100,
        "inference": 125,
    }
    assert c.queues["team-llm"].reclaim_min_runtime == 600.0
    assert c.queues["research"].priority == 100 and c.queues["production"].priority == 200


def test_unset_fields_follow_kai_and_are_noted():
    c = cfg(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: scheduling.run.ai/v2\n  kind: Queue\n"
        "  metadata: {name: q}\n  spec:\n    resources:\n      gpu: {quota: 2}\n"
        "- {kind: ConfigMap, apiVersion: v1, metadata: {name: x}}\n"
    )
    q = c.queues["q"]
    assert q.priority == 100 and q.quota("gpu").limit == 0 and q.quota("gpu").over_quota_weight == 0
    assert c.report["ignored_kind_ConfigMap"] == 1 and c.report["unset_limit"] == 3
    assert any("limit" in n for n in c.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            queue("a", "{quota: x}"),
            r"document 1, item 1 \(Queue a\), field spec.resources.gpu.quota: expected a number",
        ),
        (queue("a", "{quota: -2}"), r"expected a value >= 0 or -1"),
        (queue("a", "{quota: 1, overQuotaWeight: -1}"), r"overQuotaWeight: expected a weight >= 0"),
        (
            queue("a", "{quota: 1}", parent="nope"),
            r"field spec.parentQueue: unknown parent queue 'nope'",
        ),
        (queue("a", "{quota: 1}", parent="b") + queue("b", "{quota: 1}", parent="a"), r"cycle"),
        (
            queue("a", "{quota: 1}", extra="preemptMinRuntime: soon"),
            r"spec.preemptMinRuntime: not a duration",
        ),
        (queue("a", "{quota: 1}") + queue("a", "{quota: 1}"), r"duplicate queue 'a'"),
    ],
)
def test_bad_kai_objects(text, message):
    with pytest.raises(ManifestError, match=message):
        cfg("apiVersion: v1\nkind: List\nitems:\n" + text)


def test_durations():
    assert (
        parse_duration("1h30m") == 5400 and parse_duration("20s") == 20 and parse_duration("0") == 0
    )
    assert parse_duration("1.5m") == 90 and parse_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration("10 minutes")


def test_priority_rules_from_docs():
    # docs/priority: >= 100 non-preemptible; deep dive: same queue, strictly lower, preemptible
    assert is_preemptible(50) and is_preemptible(75) and not is_preemptible(100)
    assert can_preempt(125, 50, same_queue=True)
    assert not can_preempt(125, 50, same_queue=False)  # never across queues
    assert not can_preempt(125, 100, same_queue=True)  # build is immune
    assert not can_preempt(50, 50, same_queue=True)  # equal priority


def shares_for(text, request, allocated=None, nonpre=None, total=10.0):
    c = cfg("apiVersion: v1\nkind: List\nitems:\n" + text)
    s = build_shares(c, request, allocated, nonpre)
    fair_shares(s, {"gpu": total, "cpu": 1e9, "memory": 1e15})
    return c, s


def test_limit_and_non_preemptible_quota():
    text = queue("a", "{quota: 2, overQuotaWeight: 1, limit: 3}") + queue(
        "b", "{quota: 2, overQuotaWeight: 1, limit: -1}"
    )
    _, s = shares_for(
        text, {"a": {"gpu": 3}, "b": {"gpu": 8}}, {"a": {"gpu": 2}}, {"a": {"gpu": 2}}
    )
    assert over_limit(s, "a", {"gpu": 1}) is None
    assert over_limit(s, "a", {"gpu": 2}) == ("a", "gpu")
    # docs: non-preemptible workloads only use in-quota resources
    assert non_preemptible_over_quota(s, "a", {"gpu": 1}, preemptible=False) == ("a", "gpu")
    assert non_preemptible_over_quota(s, "a", {"gpu": 1}, preemptible=True) is None


def test_reclaim_rules_from_deep_dive():
    # Queue-B within its quota is protected; over its quota (fair share) it can be reclaimed from
    text = queue("qa", "{quota: 2, overQuotaWeight: 1, limit: -1}") + queue(
        "qb", "{quota: 2, overQuotaWeight: 1, limit: -1}"
    )
    _, s = shares_for(
        text, {"qa": {"gpu": 3}, "qb": {"gpu": 2}}, {"qa": {"gpu": 2}, "qb": {"gpu": 2}}, total=4
    )
    assert (
        can_reclaim_resources(s, "qa", {"gpu": 1}, True) is False
    )  # would pass its fair share (2)
    _, s = shares_for(
        text, {"qa": {"gpu": 2}, "qb": {"gpu": 4}}, {"qa": {"gpu": 0}, "qb": {"gpu": 4}}, total=4
    )
    assert s["qa"].share("gpu").fair_share == 2 and s["qb"].share("gpu").fair_share == 2
    assert can_reclaim_resources(s, "qa", {"gpu": 2}, True)
    assert reclaimable(s, "qa", {"gpu": 2}, True, {"qb": [{"gpu": 2}]})  # qb over its share
    assert not reclaimable(
        s, "qa", {"gpu": 2}, True, {"qb": [{"gpu": 2}, {"gpu": 2}]}
    )  # into quota
    assert victim_queue_order(s, ["qa", "qb"]) == ["qb", "qa"]  # qb saturation 2 > 0


def test_min_runtime_resolution():
    text = (
        queue("dept", "{quota: 1}", extra="reclaimMinRuntime: 30s")
        + queue("x", "{quota: 1}", parent="dept", extra="preemptMinRuntime: 20s")
        + queue("y", "{quota: 1}", parent="dept")
        + queue("z", "{quota: 1}")
    )
    c = cfg("apiVersion: v1\nkind: List\nitems:\n" + text)
    assert preempt_min_runtime(c, "x") == 20 and preempt_min_runtime(c, "y", default=5) == 5
    assert reclaim_min_runtime(c, "z", "x") == 30  # lca is the root: dept's value
    assert reclaim_min_runtime(c, "y", "x", method="queue") == 30
    assert reclaim_min_runtime(c, "y", "x", default=7) == 30  # from x up (x has none) -> dept


def test_decayed_usage_matches_docs_and_a_riemann_sum():
    # docs: 10-GPU cluster, 10 hours, 24 GPU-hours used -> 0.24
    h = 3600.0
    assert decayed_usage([(0, 3 * h, 8)], [(0, 10 * h, 10)], 10 * h, 10 * h, None) == pytest.approx(
        0.24
    )
    assert decayed_usage(
        [(0, 2 * h, 12)], [(0, 10 * h, 10)], 10 * h, 10 * h, None
    ) == pytest.approx(0.24)
    # with a half-life: exact integral vs a fine Riemann sum of 0.5 ** (age / half_life)
    hl, now = 3600.0, 7200.0
    got = decayed_usage([(1000, 5000, 4)], [(0, 7200, 16)], now, 7200, hl)
    dt = 1.0
    num = sum(4 * 0.5 ** ((now - t - dt / 2) / hl) * dt for t in range(1000, 5000))
    den = sum(16 * 0.5 ** ((now - t - dt / 2) / hl) * dt for t in range(0, 7200))
    assert got == pytest.approx(num / den, rel=1e-6)
    assert decayed_usage([], [], 10, 10, None) == 0.0
    assert not math.isnan(got)


def test_kueue_example_config():
    c = load_kueue_config(EX / "kueue.yaml")
    t = c.tree()
    gpu = "nvidia.com/gpu"
    assert t.available("team-a", ("h100", gpu)) == 48  # 32 nominal + borrowingLimit 16
    assert t.potential_available("team-b", ("h100", gpu)) == 16 + 16  # team-a lends at most 16
    assert t.available("team-b", ("h200", gpu)) == 32
    assert c.local_queues["team-a/team-a-queue"] == "team-a"
    assert c.priority_classes == {"low": 10, "high": 1000}
    assert c.cluster_queues["team-b"].queueing_strategy == "StrictFIFO"
    assert c.cluster_queues["team-a"].resource_groups[0][1] == ("h100", "a100")


ACTIONS = load("kai/actions.yaml")["scenarios"]


@pytest.mark.parametrize("sc", ACTIONS, ids=[s["name"] for s in ACTIONS])
def test_kai_action_scenarios(sc):
    """The docs' scenarios through the engine with the whole KAI session (tests/test_kai_policy:
    the running jobs start at t = 0, the pending ones arrive at t = 1)."""
    from test_kai_policy import ACTIONS_ALL, J, Q, Scenario, outcome, run

    queues = [
        Q(n, q["quota"], weight=q["weight"], limit=q["limit"], priority=q["priority"])
        for n, q in sc["queues"].items()
    ]
    jobs = {
        state: [J(n, q, g, p) for n, q, g, p, st in sc["jobs"] if st == state]
        for state in ("running", "pending")
    }
    nodes = [sc["cluster"]["gpus_per_node"]] * sc["cluster"]["nodes"]
    s = Scenario(
        sc["source"], sc["name"], "all", nodes, queues, jobs["running"], jobs["pending"], {}
    )
    got, _ = outcome(run(s, ACTIONS_ALL)[0], s)
    want = sc["expect"]
    assert sorted(n for n, v in got.items() if v == "evicted") == sorted(want["preempted"])
    assert all(got[n] in ("running", "started") for n in want.get("running", []))
    assert all(got[n] in ("pending", "evicted") for n in want.get("pending", []))


def test_scenario_files_exist():
    assert (HERE / "kai" / "actions.yaml").is_file() and len(ACTIONS) == 3
