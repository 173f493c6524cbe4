"""KAI fair-share division: facts ported from KAI, KAI's documented example, and properties.

Most cases are the scenarios and expected numbers of KAI-Scheduler's
``pkg/scheduler/plugins/proportion/resource_division/resource_division_test.go`` (setResourceShare /
divideOverQuotaResource, kValue 0), written as our own table.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.kai.fairshare import (
    QueueShares,
    Share,
    build_shares,
    divide_over_quota,
    fair_shares,
    set_resource_share,
)
from policies.kai.objects import UNLIMITED, parse_kai_config
from simulator.k8s.manifests import parse_manifests

U = UNLIMITED


def queues(spec: dict, resource="gpu"):
    out = []
    for i, (name, q) in enumerate(spec.items()):
        s = Share(
            deserved=q.get("deserved", 0),
            max_allowed=q.get("limit", U),
            weight=q.get("weight", 1),
            request=q.get("request", 0),
            fair_share=q.get("fair", 0),
            usage=q.get("usage", 0),
        )
        out.append(
            QueueShares(
                name, priority=q.get("priority", 100), created=f"{i:03d}", shares={resource: s}
            )
        )
    return out


def run(total, spec, fn="set", k=0.0, resource="gpu"):
    qs = queues(spec, resource)
    if fn == "set":
        left = set_resource_share(total, k, resource, qs)
    else:
        left = divide_over_quota(total, k, qs, resource)
    return left, {q.name: q.share(resource).fair_share for q in qs}


ONE = {"deserved": 3, "weight": 0, "request": 2}
OVER = {"deserved": 3, "fair": 3, "weight": 1, "request": 5}
TWO = {"deserved": 2, "weight": 2, "request": 6}

# (name, total, queues, function, expected remaining, expected fair shares)
FACTS = [
    # Context "single queue within quota (sanity)"
    ("gives requested - no remaining", 2, {"1": ONE}, "set", 0, {"1": 2}),
    ("gives requested with remaining", 3, {"1": ONE}, "set", 1, {"1": 2}),
    ("no more than allowed", 3, {"1": {**ONE, "limit": 2}}, "set", 1, {"1": 2}),
    ("up to deserved when over subscribed", 1, {"1": ONE}, "set", 0, {"1": 2}),
    ("up to full quota", 7, {"1": {**ONE, "request": 5}}, "set", 4, {"1": 3}),
    ("fraction in deserved", 2, {"1": {**ONE, "deserved": 1.5}}, "set", 0.5, {"1": 1.5}),
    ("fraction in request", 2, {"1": {**ONE, "request": 1.5}}, "set", 0.5, {"1": 1.5}),
    ("nothing if deserved is zero", 2, {"1": {**ONE, "deserved": 0}}, "set", 2, {"1": 0}),
    # Context "single queue over quota (sanity)"
    ("over quota: requested, no remaining", 2, {"1": OVER}, "over", 0, {"1": 5}),
    ("over quota: requested with remaining", 3, {"1": OVER}, "over", 1, {"1": 5}),
    ("over quota: no more than allowed", 2, {"1": {**OVER, "limit": 4}}, "over", 1, {"1": 4}),
    ("over quota: weight zero", 2, {"1": {**OVER, "weight": 0}}, "over", 2, {"1": 3}),
    ("over quota: fraction requested", 2, {"1": {**OVER, "request": 4.5}}, "over", 0.5, {"1": 4.5}),
    ("over quota: remainder fraction", 0.5, {"1": OVER}, "over", 0, {"1": 3.5}),
    (
        "over quota: deserved zero",
        6,
        {"1": {**OVER, "deserved": 0, "fair": 0}},
        "over",
        1,
        {"1": 5},
    ),
    ("over quota: nothing to divide", 0, {"1": OVER}, "over", 0, {"1": 3}),
    ("over quota: weight zero, 10", 10, {"1": {**OVER, "weight": 0}}, "over", 10, {"1": 3}),
    # Context "two queues over quota (sanity)"
    (
        "two over quota: weight zero",
        10,
        {"1": {**OVER, "weight": 0}, "2": {**OVER, "request": 3}},
        "over",
        10,
        {"1": 3, "2": 3},
    ),
    # DescribeTable "two queues"
    ("many available gpus", 15, {"1": TWO, "2": TWO}, "set", 3, {"1": 6, "2": 6}),
    ("exact requested amount", 12, {"1": TWO, "2": TWO}, "set", 0, {"1": 6, "2": 6}),
    (
        "proportionally",
        8,
        {"1": {**TWO, "weight": 1}, "2": {**TWO, "weight": 3}},
        "set",
        0,
        {"1": 3, "2": 5},
    ),
    ("not more than allowed", 12, {"1": {**TWO, "limit": 5}, "2": TWO}, "set", 1, {"1": 5, "2": 6}),
    (
        "remainder to largest remaining fraction",
        11,
        {"1": {**TWO, "weight": 1, "request": 10}, "2": {**TWO, "weight": 4, "request": 10}},
        "set",
        0,
        {"1": 3, "2": 8},
    ),
    ("remainder by creation time", 11, {"1": TWO, "2": TWO}, "set", 0, {"1": 6, "2": 5}),
    (
        "priority doesn't affect deserved",
        4,
        {"1": {**TWO, "priority": 1}, "2": {**TWO, "priority": 2}},
        "set",
        0,
        {"1": 2, "2": 2},
    ),
    (
        "priority does affect over-quota",
        6,
        {"1": {**TWO, "priority": 1}, "2": {**TWO, "priority": 2}},
        "set",
        0,
        {"1": 2, "2": 4},
    ),
    (
        "priority beats weight",
        6,
        {"1": {**TWO, "priority": 1, "weight": 100}, "2": {**TWO, "priority": 2, "weight": 1}},
        "set",
        0,
        {"1": 2, "2": 4},
    ),
    (
        "remainder even with priorities",
        5,
        {
            "1": {"deserved": 2, "weight": 2, "request": 5, "priority": 2},
            "2": {"deserved": 2, "weight": 2, "request": 5, "priority": 2},
            "3": {"deserved": 1, "weight": 2, "request": 0, "priority": 1},
        },
        "set",
        0,
        {"1": 3, "2": 2, "3": 0},
    ),
    # CPU contexts (millicores)
    (
        "cpu one queue",
        3000,
        {"1": {"deserved": 3000, "weight": 3000, "request": 2000}},
        "set",
        1000,
        {"1": 2000},
    ),
    (
        "cpu deserved in oversubscription",
        1000,
        {"1": {"deserved": 3000, "weight": 3000, "request": 2000}},
        "set",
        0,
        {"1": 2000},
    ),
    (
        "cpu reclaims all of queue 2 (weight 0)",
        10000,
        {
            "1": {"deserved": 5000, "weight": 5000, "request": 10000},
            "2": {"deserved": 0, "weight": 0, "request": 5000},
        },
        "set",
        0,
        {"1": 10000, "2": 0},
    ),
]
CPU3 = {"deserved": 5000, "weight": 5000, "request": 5000}
FACTS += [
    (
        "cpu three: deserved, oversubscribed",
        10000,
        {"1": CPU3, "2": CPU3, "3": CPU3},
        "set",
        0,
        {"1": 5000, "2": 5000, "3": 5000},
    ),
    (
        "cpu three: over quota",
        18000,
        {q: {**CPU3, "request": 6000} for q in "123"},
        "set",
        0,
        {"1": 6000, "2": 6000, "3": 6000},
    ),
    (
        "cpu three: unneeded resources go to others",
        10000,
        {
            "1": {**CPU3, "request": 7000},
            "2": {**CPU3, "request": 2000},
            "3": {**CPU3, "request": 2000},
        },
        "set",
        0,
        {"1": 6000, "2": 2000, "3": 2000},
    ),
    (
        "cpu three: both allocated give to the last",
        10000,
        {"1": {**CPU3, "request": 7000}, "2": CPU3, "3": {**CPU3, "request": 2000}},
        "set",
        0,
        {"1": 5000, "2": 5000, "3": 2000},
    ),
    (
        "cpu three: limited queue",
        10000,
        {
            "1": {**CPU3, "request": 7000, "limit": 7000},
            "2": {**CPU3, "request": 2000},
            "3": {**CPU3, "request": 2000},
        },
        "set",
        0,
        {"1": 6000, "2": 2000, "3": 2000},
    ),
]


@pytest.mark.parametrize(
    ("name", "total", "spec", "fn", "left", "expected"), FACTS, ids=[f[0] for f in FACTS]
)
def test_kai_resource_division_facts(name, total, spec, fn, left, expected):
    got_left, got = run(total, spec, fn)
    assert got_left == left
    assert got == expected


def test_ported_fact_count():
    assert len(FACTS) >= 25


KAI_DOC_EXAMPLE = """
apiVersion: v1
kind: List
items:
- apiVersion: scheduling.run.ai/v2
  kind: Queue
  metadata: {name: vision, creationTimestamp: "2025-01-01T00:00:00Z"}
  spec:
    priority: 2
    resources:
      gpu: {quota: 2, overQuotaWeight: 2, limit: -1}
      cpu: {quota: -1, overQuotaWeight: 1, limit: -1}
      memory: {quota: -1, overQuotaWeight: 1, limit: -1}
- apiVersion: scheduling.run.ai/v2
  kind: Queue
  metadata: {name: llm, creationTimestamp: "2025-01-02T00:00:00Z"}
  spec:
    priority: 2
    resources:
      gpu: {quota: 2, overQuotaWeight: 1, limit: -1}
      cpu: {quota: -1, overQuotaWeight: 1, limit: -1}
      memory: {quota: -1, overQuotaWeight: 1, limit: -1}
- apiVersion: scheduling.run.ai/v2
  kind: Queue
  metadata: {name: data, creationTimestamp: "2025-01-03T00:00:00Z"}
  spec:
    priority: 1
    resources:
      gpu: {quota: 3, overQuotaWeight: 1, limit: -1}
      cpu: {quota: -1, overQuotaWeight: 1, limit: -1}
      memory: {quota: -1, overQuotaWeight: 1, limit: -1}
"""


def test_kai_docs_queue_priority_example():
    # docs/scheduling-deep-dive (queue-priority diagram): a 10-GPU pool; Vision (priority 2,
    # quota 2, weight 2), LLM (priority 2, quota 2, weight 1), Data Processing (priority 1,
    # quota 3, weight 1). Quotas first (7 GPUs), the 3 surplus GPUs to priority 2 split 2:1.
    cfg = parse_kai_config(parse_manifests(KAI_DOC_EXAMPLE, "doc"), "doc")
    big = {"gpu": 100.0, "cpu": 1e6, "memory": 1e12}
    shares = build_shares(cfg, {q: big for q in cfg.queues})
    got = fair_shares(shares, {"gpu": 10.0, "cpu": 1e5, "memory": 1e12}, k=1.0)
    assert {q: got[q]["gpu"] for q in got} == {"vision": 4.0, "llm": 3.0, "data": 3.0}


def test_kai_docs_pseudocode_deserved_then_weights():
    # docs/fairness: "q.fairShare += min(q.deserved, requested)" then the rest by weight
    _, got = run(
        10,
        {
            "a": {"deserved": 2, "weight": 1, "request": 3},
            "b": {"deserved": 2, "weight": 3, "request": 20},
        },
    )
    assert got == {"a": 3, "b": 7}  # a: 2 + 1 (its request), b: 2 + the rest


TREE = """
- apiVersion: scheduling.run.ai/v2
  kind: Queue
  metadata: {name: research}
  spec:
    resources:
      gpu: {quota: 6, overQuotaWeight: 1, limit: -1}
- apiVersion: scheduling.run.ai/v2
  kind: Queue
  metadata: {name: prod}
  spec:
    resources:
      gpu: {quota: 2, overQuotaWeight: 1, limit: -1}
- apiVersion: scheduling.run.ai/v2
  kind: Queue
  metadata: {name: r-a}
  spec:
    parentQueue: research
    resources:
      gpu: {quota: 4, overQuotaWeight: 1, limit: -1}
- apiVersion: scheduling.run.ai/v2
  kind: Queue
  metadata: {name: r-b}
  spec:
    parentQueue: research
    resources:
      gpu: {quota: 0, overQuotaWeight: 3, limit: 3}
"""


def test_hierarchy_divides_parent_share_among_children():
    text = "apiVersion: v1\nkind: List\nitems:\n" + TREE
    cfg = parse_kai_config(parse_manifests(text, "t"), "t")
    assert cfg.leaves() == ["prod", "r-a", "r-b"] and cfg.path("r-b") == ["r-b", "research"]
    req = {"r-a": {"gpu": 10}, "r-b": {"gpu": 10}, "prod": {"gpu": 1}}
    got = fair_shares(build_shares(cfg, req), {"gpu": 12.0}, k=1.0, resources=("gpu",))
    # top: research 6 + prod 1 (its request), surplus 5 -> research (prod satisfied) = 11
    # research's 11: r-a 4 deserved, r-b 0; surplus 7 split 1:3 -> r-b floor(5.25)=5 > limit 3
    assert got["prod"]["gpu"] == 1 and got["research"]["gpu"] == 11
    assert got["r-b"]["gpu"] == 3 and got["r-a"]["gpu"] == 8


def test_time_based_usage_lowers_the_over_quota_share():
    # calcShareWeights: w' = max(0, w_n + k (w_n - usage)); two equal queues, one used 80%
    spec = {
        "a": {"weight": 1, "request": 100, "usage": 0.8},
        "b": {"weight": 1, "request": 100, "usage": 0.0},
    }
    _, got = run(16, spec, k=1.0)
    # w' = 0.5 + (0.5 - 0.8) = 0.2 and 0.5 + 0.5 = 1.0 -> offers 16/6*1 and 16*5/6
    assert got == {"a": 3, "b": 13}  # floor(2.67)=2, floor(13.33)=13, leftover 1 -> a (0.67 > 0.33)
    _, got = run(16, spec, k=0.0)
    assert got == {"a": 8, "b": 8}


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 64).map(lambda x: round(x, 1)),
    st.lists(
        st.tuples(
            st.integers(0, 8),
            st.integers(0, 4),
            st.sampled_from([U, 2.0, 5.0, 40.0]),
            st.integers(0, 30),
            st.integers(1, 3),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_properties(total, rows):
    spec = {
        f"q{i}": {"deserved": d, "weight": w, "limit": lim, "request": r, "priority": p}
        for i, (d, w, lim, r, p) in enumerate(rows)
    }
    left, got = run(total, spec)
    deserved_sum = sum(
        min(q["deserved"], q["request"] if q["limit"] == U else min(q["limit"], q["request"]))
        for q in spec.values()
    )
    assert left >= 0
    for name, q in spec.items():
        req = q["request"] if q["limit"] == U else min(q["limit"], q["request"])
        assert got[name] >= min(q["deserved"], req) - 1e-9  # deserved always given
        assert got[name] <= max(req, min(q["deserved"], req)) + 1 + 1e-9  # at most one unit above
    if deserved_sum <= total:
        assert sum(got.values()) + left == pytest.approx(total)
