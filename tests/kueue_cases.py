"""Scheduling-cycle scenarios ported from Kueue's ``pkg/scheduler/scheduler_test.go``.

TestSchedule. Facts only (cluster queues, cohorts, flavors, workloads and the expected
outcome of one scheduling cycle), written as our own data; each case names its Go test case.
Renamings: Kueue's resources ``example.com/gpu`` / ``gpu`` become ``nvidia.com/gpu``, the
generic ``r1`` / ``r2`` become ``cpu`` / ``memory`` (GiB); multi-pod-set workloads that were
already admitted become one admitted workload per pod set (same quota usage); a Cohort that
shares its name with a ClusterQueue is spelt in capitals (our loader refuses shared names).

A workload is ``W(name, local_queue, cpu=cores per pod, gpu=GPUs per pod, mem=GiB per pod,
pods=..., prio=..., flavor=...)``; ``flavor`` marks a workload admitted before the cycle (Kueue's
``ReserveQuotaAt``) on that flavor. Workloads without ``flavor`` are created in list order.
Expected: ``admitted`` (name -> flavor of its resources, admitted in the cycle), ``preempted``
(names) and every other new workload stays pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class W:
    name: str
    lq: str
    cpu: float = 0.0
    gpu: int = 0
    mem: float = 0.0
    pods: int = 1
    prio: int = 0
    flavor: str = ""


@dataclass
class Case:
    go: str
    workloads: list[W]
    admitted: dict[str, str] = field(default_factory=dict)
    preempted: set[str] = field(default_factory=set)
    cqs: list[dict] = field(default_factory=list)
    lqs: list[tuple[str, str, str]] = field(default_factory=list)
    cohorts: list[tuple] = field(default_factory=list)  # (name, parent[, own quota group])


def res(name: str, nominal, borrow=None, lend=None) -> dict:
    out = {"name": name, "nominalQuota": str(nominal)}
    if borrow is not None:
        out["borrowingLimit"] = str(borrow)
    if lend is not None:
        out["lendingLimit"] = str(lend)
    return out


def fq(flavor: str, *resources: dict) -> dict:
    return {"name": flavor, "resources": list(resources)}


def cq(
    name,
    *groups,
    cohort=None,
    strategy="BestEffortFIFO",
    within="Never",
    reclaim="Never",
    borrow_within=None,
    can_preempt=None,
    can_borrow=None,
    preference=None,
) -> dict:
    spec = {"queueingStrategy": strategy, "resourceGroups": []}
    if cohort:
        spec["cohort"] = cohort
    pre = {"withinClusterQueue": within, "reclaimWithinCohort": reclaim}
    if borrow_within:
        pre["borrowWithinCohort"] = {"policy": borrow_within}
    spec["preemption"] = pre
    fung = {}
    if can_preempt:
        fung["whenCanPreempt"] = can_preempt
    if can_borrow:
        fung["whenCanBorrow"] = can_borrow
    if preference:
        fung["preference"] = preference
    if fung:
        spec["flavorFungibility"] = fung
    for g in groups:
        covered = sorted({r["name"] for f in g for r in f["resources"]})
        spec["resourceGroups"].append({"coveredResources": covered, "flavors": list(g)})
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": spec,
    }


CPU, GPU, MEM = "cpu", "nvidia.com/gpu", "memory"

FLAVORS = ["default", "on-demand", "spot", "model-a", "spot-tainted", "spot-tainted-2"]
TAINTS = {"spot-tainted": "val", "spot-tainted-2": "val2"}

# TestSchedule's shared cluster queues and local queues
BASE_CQS = [
    cq("sales", [fq("default", res(CPU, 50, 0))], strategy="StrictFIFO"),
    cq(
        "eng-alpha",
        [fq("on-demand", res(CPU, 50, 50)), fq("spot", res(CPU, 100, 0))],
        cohort="eng",
        strategy="StrictFIFO",
    ),
    cq(
        "eng-beta",
        [fq("on-demand", res(CPU, 50, 10)), fq("spot", res(CPU, 0, 100))],
        [fq("model-a", res(GPU, 20, 0))],
        cohort="eng",
        strategy="StrictFIFO",
        within="LowerPriority",
        reclaim="Any",
    ),
    cq("flavor-nonexistent-cq", [fq("nonexistent-flavor", res(CPU, 50))], strategy="StrictFIFO"),
    cq("lend-a", [fq("default", res(CPU, 3, None, 2))], cohort="lend"),
    cq("lend-b", [fq("default", res(CPU, 2, None, 2))], cohort="lend"),
]
BASE_LQS = [
    ("sales", "main", "sales"),
    ("sales", "blocked", "eng-alpha"),
    ("eng-alpha", "main", "eng-alpha"),
    ("eng-beta", "main", "eng-beta"),
    ("sales", "flavor-nonexistent-queue", "flavor-nonexistent-cq"),
    ("lend", "lend-a-queue", "lend-a"),
    ("lend", "lend-b-queue", "lend-b"),
]

_OTHER_PRE = dict(within="LowerPriority", reclaim="Any")
_CO3 = [fq("default", res(CPU, 10, 10), res(MEM, "10Gi", "10Gi"))]

CASES: list[Case] = [
    Case(
        "use second flavor when the first has no preemption candidates; WhenCanPreempt: MayStopSearch",  # noqa: E501 (the Go test case name)
        [
            W("eng-alpha/admitted", "other", cpu=50, flavor="on-demand"),
            W("eng-alpha/new", "other", cpu=20),
        ],
        admitted={"eng-alpha/new": "spot"},
        cqs=[
            cq(
                "other-alpha",
                [fq("on-demand", res(CPU, 50, 50)), fq("spot", res(CPU, 100, 0))],
                within="LowerPriority",
                can_preempt="MayStopSearch",
            )
        ],
        lqs=[("eng-alpha", "other", "other-alpha")],
    ),
    Case(
        "workload fits in single clusterQueue, with check state ready",
        [W("sales/foo", "main", cpu=1, pods=10)],
        admitted={"sales/foo": "default"},
    ),
    Case(
        "skip workload with missing or deleted ClusterQueue (NoFit)",
        [W("sales/missing-cq-workload", "non-existent-queue", cpu=1)],
    ),
    Case(
        "flavors with mixed misconfiguration and insufficient quota",
        [
            W("sales/existing-on-demand-job", "custom-q", cpu=10, flavor="on-demand"),
            W("sales/new-job", "custom-q", cpu=10),
        ],
        cqs=[
            cq(
                "custom-cq",
                [fq("spot-tainted", res(CPU, 20, 20)), fq("on-demand", res(CPU, 15, 15))],
                strategy="StrictFIFO",
            )
        ],
        lqs=[("sales", "custom-q", "custom-cq")],
    ),
    Case(
        "flavors with mixed taint mismatch and exceeding limits",
        [W("sales/new-job2", "custom-q2", cpu=10)],
        cqs=[
            cq(
                "custom-cq2",
                [fq("spot-tainted", res(CPU, 20, 20)), fq("on-demand", res(CPU, 5, 5))],
                strategy="StrictFIFO",
            )
        ],
        lqs=[("sales", "custom-q2", "custom-cq2")],
    ),
    Case(
        "flavors are structurally incompatible",
        [W("sales/new-job3", "custom-q3", cpu=1)],
        cqs=[
            cq(
                "custom-cq3",
                [fq("spot-tainted", res(CPU, 20, 20)), fq("spot-tainted-2", res(CPU, 5, 5))],
                strategy="StrictFIFO",
            )
        ],
        lqs=[("sales", "custom-q3", "custom-cq3")],
    ),
    Case(
        "single clusterQueue full",
        [
            W("sales/assigned", "main", cpu=1, pods=40, flavor="default"),
            W("sales/new", "main", cpu=1, pods=11),
        ],
    ),
    Case(
        "admit in different cohorts",
        [W("sales/new", "main", cpu=1), W("eng-alpha/new", "main", cpu=1, pods=51)],
        admitted={"sales/new": "default", "eng-alpha/new": "on-demand"},
    ),
    Case(
        "admit in same cohort with no borrowing",
        [W("eng-alpha/new", "main", cpu=1, pods=40), W("eng-beta/new", "main", cpu=1, pods=40)],
        admitted={"eng-alpha/new": "on-demand", "eng-beta/new": "on-demand"},
    ),
    Case(
        "cannot borrow if cohort was assigned and would result in overadmission",
        [W("eng-alpha/new", "main", cpu=1, pods=45), W("eng-beta/new", "main", cpu=1, pods=56)],
        admitted={"eng-alpha/new": "on-demand"},
    ),
    Case(
        "can borrow if cohort was assigned and will not result in overadmission",
        [W("eng-alpha/new", "main", cpu=1, pods=45), W("eng-beta/new", "main", cpu=1, pods=55)],
        admitted={"eng-alpha/new": "on-demand", "eng-beta/new": "on-demand"},
    ),
    Case(
        "can borrow if needs reclaim from cohort in different flavor",
        [
            W("eng-beta/user-on-demand", "main", cpu=50, flavor="on-demand"),
            W("eng-beta/user-spot", "main", cpu=1, flavor="spot"),
            W("eng-alpha/can-reclaim", "main", cpu=100),
            W("eng-beta/needs-to-borrow", "main", cpu=1),
        ],
        admitted={"eng-beta/needs-to-borrow": "on-demand"},
    ),
    Case(
        "workload exceeds lending limit when borrow in cohort",
        [W("lend/a", "lend-b-queue", cpu=2, flavor="default"), W("lend/b", "lend-b-queue", cpu=3)],
    ),
    Case(
        "hierarchical cohort respects lending limit when borrowing",
        [
            W("eng-alpha/wl-existing", "lq-borrower", cpu=5, flavor="on-demand"),
            W("eng-alpha/wl-pending", "lq-borrower", cpu=4),
        ],
        cohorts=[("root", ""), ("child", "root")],
        cqs=[
            cq("cq-lender", [fq("on-demand", res(CPU, 10, None, 3))], cohort="child"),
            cq("cq-borrower", [fq("on-demand", res(CPU, 5, 10))], cohort="child"),
        ],
        lqs=[("eng-alpha", "lq-lender", "cq-lender"), ("eng-alpha", "lq-borrower", "cq-borrower")],
    ),
    Case(
        "hierarchical cohort allows borrowing up to lending limit",
        [
            W("eng-alpha/wl-existing", "lq-borrower", cpu=5, flavor="on-demand"),
            W("eng-alpha/wl-borrowing", "lq-borrower", cpu=5),
        ],
        admitted={"eng-alpha/wl-borrowing": "on-demand"},
        cohorts=[("root", ""), ("child", "root")],
        cqs=[
            cq("cq-lender", [fq("on-demand", res(CPU, 10, None, 5))], cohort="child"),
            cq("cq-borrower", [fq("on-demand", res(CPU, 5, 10))], cohort="child"),
        ],
        lqs=[("eng-alpha", "lq-lender", "cq-lender"), ("eng-alpha", "lq-borrower", "cq-borrower")],
    ),
    Case(
        "preempt workloads in ClusterQueue and cohort",
        [
            W("eng-alpha/use-all-spot", "main", cpu=100, flavor="spot"),
            W("eng-beta/low-1", "main", cpu=30, prio=-1, flavor="on-demand"),
            W("eng-beta/low-2", "main", cpu=10, prio=-2, flavor="on-demand"),
            W("eng-alpha/borrower", "main", cpu=60, flavor="on-demand"),
            W("eng-beta/preemptor", "main", cpu=20),
        ],
        preempted={"eng-alpha/borrower", "eng-beta/low-2"},
    ),
    Case(
        "multiple CQs need preemption",
        [
            W("eng-alpha/use-all", "other", cpu=100, flavor="on-demand"),
            W("eng-beta/preemptor", "other", cpu=1, prio=-1),
            W("eng-alpha/pending", "other", cpu=1, prio=1),
        ],
        preempted={"eng-alpha/use-all"},
        cqs=[
            cq("other-alpha", [fq("on-demand", res(CPU, 50, 50))], cohort="other"),
            cq("other-beta", [fq("on-demand", res(CPU, 50, 10))], cohort="other", **_OTHER_PRE),
        ],
        lqs=[("eng-alpha", "other", "other-alpha"), ("eng-beta", "other", "other-beta")],
    ),
    Case(
        "cannot borrow resource not listed in clusterQueue",
        [W("eng-alpha/new", "main", gpu=1)],
    ),
    Case(
        "not enough resources to borrow, fallback to next flavor; WhenCanPreempt: TryNextFlavor",
        [
            W("eng-beta/existing", "main", cpu=1, pods=45, flavor="on-demand"),
            W("eng-alpha/new", "main", cpu=1, pods=60),
        ],
        admitted={"eng-alpha/new": "spot"},
    ),
    Case(
        "workload should not fit in clusterQueue with nonexistent flavor",
        [W("sales/foo", "flavor-nonexistent-queue", cpu=1)],
    ),
    Case(
        "no overadmission while borrowing",
        [
            W("eng-gamma/existing-od", "main", cpu=1, pods=51, flavor="on-demand"),
            W("eng-gamma/existing-spot", "main", cpu=1, pods=100, flavor="spot"),
            W("eng-beta/new", "main", cpu=1, pods=50),
            W("eng-alpha/new-alpha", "main", cpu=1),
            W("eng-gamma/new-gamma", "main", cpu=1, pods=50),
        ],
        admitted={"eng-beta/new": "on-demand", "eng-alpha/new-alpha": "on-demand"},
        cqs=[
            cq(
                "eng-gamma",
                [fq("on-demand", res(CPU, 50, 10)), fq("spot", res(CPU, 0, 100))],
                cohort="eng",
                **_OTHER_PRE,
            )
        ],
        lqs=[("eng-gamma", "main", "eng-gamma")],
    ),
    Case(
        "two workloads can borrow different resources from the same flavor in the same cycle",
        [W("sales/wl1", "lq1", cpu=16, prio=-1), W("sales/wl2", "lq2", mem=16, prio=-2)],
        admitted={"sales/wl1": "default", "sales/wl2": "default"},
        cqs=[cq(f"cq{i}", _CO3, cohort="co", **_OTHER_PRE) for i in (1, 2, 3)],
        lqs=[("sales", f"lq{i}", f"cq{i}") for i in (1, 2, 3)],
    ),
    Case(
        "two workloads can borrow the same resources from the same flavor in the same cycle if fits in the cohort quota",  # noqa: E501 (the Go test case name)
        [W("sales/wl1", "lq1", cpu=16, prio=-1), W("sales/wl2", "lq2", cpu=14, prio=-2)],
        admitted={"sales/wl1": "default", "sales/wl2": "default"},
        cqs=[cq(f"cq{i}", _CO3, cohort="co", **_OTHER_PRE) for i in (1, 2, 3)],
        lqs=[("sales", f"lq{i}", f"cq{i}") for i in (1, 2, 3)],
    ),
    Case(
        "only one workload can borrow one resources from the same flavor in the same cycle if cohort quota cannot fit",  # noqa: E501 (the Go test case name)
        [W("sales/wl1", "lq1", cpu=16, prio=-1), W("sales/wl2", "lq2", cpu=16, prio=-2)],
        admitted={"sales/wl1": "default"},
        cqs=[cq(f"cq{i}", _CO3, cohort="co", **_OTHER_PRE) for i in (1, 2, 3)],
        lqs=[("sales", f"lq{i}", f"cq{i}") for i in (1, 2, 3)],
    ),
    Case(
        "preemption while borrowing, workload waiting for preemption should not block a borrowing workload in another CQ",  # noqa: E501 (the Go test case name)
        [
            W("eng-alpha/admitted_a", "lq_a", cpu=2, flavor="default"),
            W("eng-alpha/a", "lq_a", cpu=3),
            W("eng-beta/b", "lq_b", cpu=1),
        ],
        admitted={"eng-beta/b": "default"},
        cqs=[
            cq("cq_shared", [fq("default", res(CPU, 4, 0))], cohort="pwb"),
            cq(
                "cq_a",
                [fq("default", res(CPU, 0, 3))],
                cohort="pwb",
                reclaim="LowerPriority",
                borrow_within="LowerPriority",
            ),
            cq(
                "cq_b",
                [fq("default", res(CPU, 0))],
                cohort="pwb",
                reclaim="LowerPriority",
                borrow_within="LowerPriority",
            ),
        ],
        lqs=[("eng-alpha", "lq_a", "cq_a"), ("eng-beta", "lq_b", "cq_b")],
    ),
    Case(
        "minimal preemptions when target queue is exhausted",
        [
            W("eng-alpha/a1", "other", cpu=1, prio=-2, flavor="on-demand"),
            W("eng-alpha/a2", "other", cpu=1, prio=-2, flavor="on-demand"),
            W("eng-alpha/a3", "other", cpu=1, prio=-1, flavor="on-demand"),
            W("eng-beta/b1", "other", cpu=1, flavor="on-demand"),
            W("eng-beta/b2", "other", cpu=1, flavor="on-demand"),
            W("eng-beta/b3", "other", cpu=1, flavor="on-demand"),
            W("eng-alpha/incoming", "other", cpu=2),
        ],
        preempted={"eng-alpha/a1", "eng-alpha/a2"},
        cqs=[
            cq("other-alpha", [fq("on-demand", res(CPU, 2))], cohort="other", **_OTHER_PRE),
            cq("other-beta", [fq("on-demand", res(CPU, 2))], cohort="other"),
            cq("other-gamma", [fq("on-demand", res(CPU, 2))], cohort="other"),
        ],
        lqs=[
            ("eng-alpha", "other", "other-alpha"),
            ("eng-beta", "other", "other-beta"),
            ("eng-gamma", "other", "other-gamma"),
        ],
    ),
    Case(
        "A workload is only eligible to do preemptions if it fits fully within nominal quota",
        [
            W("eng-alpha/a1", "other", cpu=1, prio=-1, flavor="on-demand"),
            W("eng-beta/b1", "other", cpu=1, prio=-1, flavor="on-demand"),
            W("eng-alpha/incoming", "other", cpu=3, prio=1),
        ],
        cqs=[
            cq("other-alpha", [fq("on-demand", res(CPU, 2))], cohort="other", **_OTHER_PRE),
            cq("other-beta", [fq("on-demand", res(CPU, 2))], cohort="other"),
        ],
        lqs=[("eng-alpha", "other", "other-alpha"), ("eng-beta", "other", "other-beta")],
    ),
    Case(
        "multiple preemptions without borrowing",
        [
            W("eng-alpha/a1", "other", cpu=2, flavor="default"),
            W("eng-beta/b1", "other", cpu=2, flavor="default"),
            W("eng-alpha/preemptor", "other", cpu=2, prio=100),
            W("eng-beta/preemptor", "other", cpu=2, prio=100),
        ],
        preempted={"eng-alpha/a1", "eng-beta/b1"},
        cqs=[
            cq("other-alpha", [fq("default", res(CPU, 2))], cohort="other", within="LowerPriority"),
            cq("other-beta", [fq("default", res(CPU, 2))], cohort="other", within="LowerPriority"),
        ],
        lqs=[("eng-alpha", "other", "other-alpha"), ("eng-beta", "other", "other-beta")],
    ),
    Case(
        "multiple preemptions preemption possible after earlier workload fits",
        [
            W("eng-beta/b1", "other", cpu=2, flavor="default"),
            W("eng-alpha/fit", "other", cpu=1, prio=100),
            W("eng-beta/preemptor", "other", cpu=2, prio=99),
        ],
        admitted={"eng-alpha/fit": "default"},
        preempted={"eng-beta/b1"},
        cqs=[
            cq("other-alpha", [fq("default", res(CPU, 1))], cohort="other", within="LowerPriority"),
            cq("other-beta", [fq("default", res(CPU, 2))], cohort="other", within="LowerPriority"),
        ],
        lqs=[("eng-alpha", "other", "other-alpha"), ("eng-beta", "other", "other-beta")],
    ),
    Case(
        "multiple preemptions skip preemption when shared limited resource",
        [
            W("eng-alpha/a1", "other", cpu=2, flavor="default"),
            W("eng-beta/b1", "other", cpu=2, flavor="default"),
            W("eng-alpha/preemptor", "other", cpu=3, prio=100),
            W("eng-beta/pretending-preemptor", "other", cpu=3, prio=99),
        ],
        preempted={"eng-alpha/a1"},
        cqs=[
            cq(
                "other-alpha",
                [fq("default", res(CPU, 2))],
                cohort="other",
                within="LowerPriority",
                borrow_within="LowerPriority",
            ),
            cq(
                "other-beta",
                [fq("default", res(CPU, 2))],
                cohort="other",
                within="LowerPriority",
                borrow_within="LowerPriority",
            ),
            cq("resource-bank", [fq("default", res(CPU, 1))], cohort="other"),
        ],
        lqs=[("eng-alpha", "other", "other-alpha"), ("eng-beta", "other", "other-beta")],
    ),
    Case(
        "not enough resources",
        [W("sales/new", "main", cpu=100)],
    ),
    Case(
        "prefer reclamation over cq priority based preemption",
        [
            W("eng-alpha/a1", "other", gpu=5, prio=50, flavor="on-demand"),
            W("eng-beta/b1", "other", gpu=5, prio=50, flavor="spot"),
            W("eng-alpha/preemptor", "other", gpu=6, prio=100),
        ],
        preempted={"eng-beta/b1"},
        cqs=[
            cq(
                "other-alpha",
                [fq("on-demand", res(GPU, 10)), fq("spot", res(GPU, 10))],
                cohort="other",
                within="LowerPriority",
                reclaim="LowerPriority",
            ),
            cq(
                "other-beta",
                [fq("on-demand", res(GPU, 0)), fq("spot", res(GPU, 0))],
                cohort="other",
                within="LowerPriority",
                reclaim="LowerPriority",
            ),
        ],
        lqs=[("eng-alpha", "other", "other-alpha"), ("eng-beta", "other", "other-beta")],
    ),
    Case(
        "prefer first preemption flavor when second flavor requires both reclaim and cq priority preemption",  # noqa: E501 (the Go test case name)
        [
            W("eng-alpha/a1", "other", gpu=5, prio=50, flavor="on-demand"),
            W("eng-alpha/a2", "other", gpu=5, prio=50, flavor="spot"),
            W("eng-beta/b1", "other", gpu=5, prio=50, flavor="spot"),
            W("eng-alpha/preemptor", "other", gpu=6, prio=100),
        ],
        preempted={"eng-alpha/a1"},
        cqs=[
            cq(
                "other-alpha",
                [fq("on-demand", res(GPU, 10)), fq("spot", res(GPU, 10))],
                cohort="other",
                within="LowerPriority",
                reclaim="LowerPriority",
            ),
            cq(
                "other-beta",
                [fq("on-demand", res(GPU, 0)), fq("spot", res(GPU, 0))],
                cohort="other",
            ),
        ],
        lqs=[("eng-alpha", "other", "other-alpha"), ("eng-beta", "other", "other-beta")],
    ),
    Case(
        "prefer first preemption flavor when second flavor also requires cq preemption",
        [
            W("eng-alpha/a1", "other", gpu=6, prio=50, flavor="on-demand"),
            W("eng-alpha/a2", "other", gpu=5, prio=50, flavor="spot"),
            W("eng-beta/b1", "other", gpu=5, prio=9001, flavor="spot"),
            W("eng-alpha/preemptor", "other", gpu=5, prio=100),
        ],
        preempted={"eng-alpha/a1"},
        cqs=[
            cq(
                "other-alpha",
                [fq("on-demand", res(GPU, 10)), fq("spot", res(GPU, 10))],
                cohort="other",
                within="LowerPriority",
                reclaim="LowerPriority",
            ),
            cq(
                "other-beta",
                [fq("on-demand", res(GPU, 0)), fq("spot", res(GPU, 0))],
                cohort="other",
            ),
        ],
        lqs=[("eng-alpha", "other", "other-alpha"), ("eng-beta", "other", "other-beta")],
    ),
    Case(
        "workload fits in single clusterQueue, with check state pending",
        [W("sales/foo", "main", cpu=1, pods=10)],
        admitted={"sales/foo": "default"},
    ),
    Case(
        "workload requiring reclaimation prioritized over wl in another full cq",
        [
            W("eng-alpha/Admitted-Workload-1", "lq", gpu=5, flavor="on-demand"),
            W("eng-gamma/Admitted-Workload-2", "lq", gpu=5, prio=0, flavor="on-demand"),
            W("eng-gamma/Admitted-Workload-3", "lq", gpu=5, prio=1, flavor="on-demand"),
            W("eng-alpha/WL1", "lq", gpu=5, pods=2),  # 10 GPUs as 2 pods (8-GPU nodes)
            W("eng-beta/WL2", "lq", gpu=5, pods=2),
        ],
        preempted={"eng-gamma/Admitted-Workload-2"},
        cqs=[
            cq("CQ1", [fq("on-demand", res(GPU, 10))], cohort="other"),
            cq("CQ2", [fq("on-demand", res(GPU, 10))], cohort="other", reclaim="Any"),
            cq("CQ3", [fq("on-demand", res(GPU, 0))], cohort="other"),
        ],
        lqs=[("eng-alpha", "lq", "CQ1"), ("eng-beta", "lq", "CQ2"), ("eng-gamma", "lq", "CQ3")],
    ),
    *[
        Case(
            go,
            [
                W("eng-alpha/a1-admitted", "lq", gpu=1, flavor="on-demand"),
                W("eng-alpha/a2-pending", "lq", gpu=2),
                W("eng-beta/b1-pending", "lq", gpu=1),
            ],
            admitted=admitted,
            cqs=[
                cq("ClusterQueueA", [fq("on-demand", res(GPU, 2))], cohort="root", reclaim=pol),
                cq("ClusterQueueB", [fq("on-demand", res(GPU, 0))], cohort="root"),
            ],
            lqs=[("eng-alpha", "lq", "ClusterQueueA"), ("eng-beta", "lq", "ClusterQueueB")],
        )
        for go, pol, admitted in [
            (
                "capacity not blocked when lending clusterqueue can reclaim (ReclaimWithinCohort=Any)",  # noqa: E501 (the Go test case name)
                "Any",
                {"eng-beta/b1-pending": "on-demand"},
            ),
            (
                "capacity blocked when lending clusterqueue not guaranteed to reclaim (ReclaimWithinCohort=LowerPriority)",  # noqa: E501 (the Go test case name)
                "LowerPriority",
                {},
            ),
            (
                "capacity blocked when lending clusterqueue not guaranteed to reclaim (ReclaimWithinCohort=Never)",  # noqa: E501 (the Go test case name)
                "Never",
                {},
            ),
        ]
    ],
    Case(
        "in a hierarchical cohort, workload borrowing less is scheduled first",
        [
            W("eng-alpha/guaranteed", "lq-guaranteed", cpu=4, prio=0),
            W("eng-alpha/best-effort", "lq-best-effort", cpu=4, prio=3),
        ],
        admitted={"eng-alpha/guaranteed": "default"},
        cohorts=[("root", ""), ("GUARANTEED", "root", [fq("default", res(CPU, 4))])],
        cqs=[
            cq("guaranteed", [fq("default", res(CPU, 0))], cohort="GUARANTEED"),
            cq("best-effort", [fq("default", res(CPU, 0))], cohort="root"),
        ],
        lqs=[
            ("eng-alpha", "lq-guaranteed", "guaranteed"),
            ("eng-alpha", "lq-best-effort", "best-effort"),
        ],
    ),
    Case(
        "don't assign flavor if there are no candidates for preemption",
        [
            W("eng-alpha/admitted", "lq2", cpu=1, flavor="on-demand"),
            W("eng-alpha/new", "lq1", cpu=1, prio=100),
        ],
        admitted={"eng-alpha/new": "spot"},
        cqs=[
            cq(
                "cq1",
                [fq("on-demand", res(CPU, 0, 1)), fq("spot", res(CPU, 0, 1))],
                cohort="cohort",
                within="LowerPriority",
                reclaim="Any",
                borrow_within="LowerPriority",
                can_preempt="MayStopSearch",
                can_borrow="MayStopSearch",
            ),
            cq("cq2", [fq("on-demand", res(CPU, 1)), fq("spot", res(CPU, 1))], cohort="cohort"),
        ],
        lqs=[("eng-alpha", "lq1", "cq1"), ("eng-alpha", "lq2", "cq2")],
    ),
    Case(
        "pending admission check with nofit and fit flavors",
        [W("eng-beta/pending-check", "main", cpu=80)],
        admitted={"eng-beta/pending-check": "spot"},
    ),
    Case(
        "admit to second flavor when first needs preemption; WhenCanPreempt: TryNextFlavor",
        [
            W("eng-alpha/blocker", "preempt-attempts-lq", cpu=1, prio=50, flavor="on-demand"),
            W("eng-alpha/test-wl", "preempt-attempts-lq", cpu=1, prio=100),
        ],
        admitted={"eng-alpha/test-wl": "spot"},
        cqs=[
            cq(
                "preempt-attempts-cq",
                [fq("on-demand", res(CPU, 1)), fq("spot", res(CPU, 1))],
                within="LowerPriority",
                can_preempt="TryNextFlavor",
            )
        ],
        lqs=[("eng-alpha", "preempt-attempts-lq", "preempt-attempts-cq")],
    ),
    Case(
        "admit workload with zero-quantity request for resource not in ClusterQueue",
        [W("sales/zero-resource-wl", "main", cpu=1, gpu=0)],
        admitted={"sales/zero-resource-wl": "default"},
    ),
    Case(
        "preempt when workload requests zero of a resource not defined in ClusterQueue",
        [
            W("sales/low-priority", "preempt-zero-gpu-lq", cpu=4, prio=-1, flavor="default"),
            W("sales/preemptor", "preempt-zero-gpu-lq", cpu=2, gpu=0),
        ],
        preempted={"sales/low-priority"},
        cqs=[cq("preempt-zero-gpu-cq", [fq("default", res(CPU, 4))], within="LowerPriority")],
        lqs=[("sales", "preempt-zero-gpu-lq", "preempt-zero-gpu-cq")],
    ),
    Case(
        "PreemptionOverBorrowing preference: preempt in first flavor instead of borrowing in second",  # noqa: E501 (the Go test case name)
        [
            W("default/low-pob", "pob-queue", cpu=5, prio=-1, flavor="on-demand"),
            W("default/high-pob", "pob-queue", cpu=5, prio=0),
        ],
        preempted={"default/low-pob"},
        cqs=[
            cq(
                "pob-cq",
                [fq("on-demand", res(CPU, 5, 0)), fq("spot", res(CPU, 0, 5))],
                cohort="pob-cohort",
                within="LowerPriority",
                can_borrow="TryNextFlavor",
                can_preempt="TryNextFlavor",
                preference="PreemptionOverBorrowing",
            ),
            cq(
                "pob-lender",
                [fq("on-demand", res(CPU, 0)), fq("spot", res(CPU, 5))],
                cohort="pob-cohort",
            ),
        ],
        lqs=[("default", "pob-queue", "pob-cq")],
    ),
    Case(
        "PreemptionOverBorrowing preference: select fitting second flavor over first flavor with no preemption candidates",  # noqa: E501 (the Go test case name)
        [
            W("default/admitted-nopc", "nopc-queue", cpu=5, prio=0, flavor="on-demand"),
            W("default/pending-nopc", "nopc-queue", cpu=5, prio=0),
        ],
        admitted={"default/pending-nopc": "spot"},
        cohorts=[
            ("nopc-root", "", [fq("on-demand", res(CPU, 0)), fq("spot", res(CPU, 5))]),
            ("nopc-mid", "nopc-root"),
        ],
        cqs=[
            cq(
                "nopc-cq",
                [fq("on-demand", res(CPU, 5, 0)), fq("spot", res(CPU, 0))],
                cohort="nopc-mid",
                within="LowerPriority",
                can_borrow="TryNextFlavor",
                can_preempt="TryNextFlavor",
                preference="PreemptionOverBorrowing",
            ),
            cq(
                "nopc-sibling",
                [fq("on-demand", res(CPU, 5)), fq("spot", res(CPU, 0))],
                cohort="nopc-mid",
            ),
        ],
        lqs=[("default", "nopc-queue", "nopc-cq")],
    ),
    Case(
        "BorrowingOverPreemption preference: borrow in second flavor instead of preempting in first",  # noqa: E501 (the Go test case name)
        [
            W("default/low-bop", "bop-queue", cpu=5, prio=-1, flavor="on-demand"),
            W("default/high-bop", "bop-queue", cpu=5, prio=0),
        ],
        admitted={"default/high-bop": "spot"},
        cqs=[
            cq(
                "bop-cq",
                [fq("on-demand", res(CPU, 5, 0)), fq("spot", res(CPU, 0, 5))],
                cohort="bop-cohort",
                within="LowerPriority",
                can_borrow="TryNextFlavor",
                can_preempt="TryNextFlavor",
                preference="BorrowingOverPreemption",
            ),
            cq(
                "bop-lender",
                [fq("on-demand", res(CPU, 0)), fq("spot", res(CPU, 5))],
                cohort="bop-cohort",
            ),
        ],
        lqs=[("default", "bop-queue", "bop-cq")],
    ),
]
