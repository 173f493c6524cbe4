"""``kueue`` policy: Kueue's scheduler_test.go cycles through the real engine, invariants, knobs.

The scenarios (``tests/kueue_cases.py``) are facts of Kueue's ``pkg/scheduler/scheduler_test.go``
(TestSchedule). Each runs as a trace through :class:`~simulator.core.engine.Simulation` with
:class:`~policies.kueue.policy.KueuePolicy` limited to one scheduling cycle per pass (as the Go
test calls ``schedule`` once): workloads admitted before the cycle arrive at t=0 with their
flavor (``kueue_flavor``), the cycle's workloads at t=10 in creation order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import check_outcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kueue_cases import BASE_CQS, BASE_LQS, CASES, FLAVORS, TAINTS, W, cq, fq, res

from policies.base import Start
from policies.kueue.objects import parse_kueue_config
from policies.kueue.policy import KueuePolicy, default_config_path
from simulator.core.engine import Simulation
from simulator.core.jobs import Status
from simulator.k8s.manifests import parse_manifests
from simulator.k8s.nodes import nodes_from_manifests

ROOT = Path(__file__).resolve().parents[1]
T_CYCLE = 10.0


def kueue_config(cqs, lqs, cohorts=(), flavors=FLAVORS):
    items = []
    for fl in flavors:
        spec = {"nodeLabels": {"kueue-test/flavor": fl}}
        if fl in TAINTS:
            spec["nodeTaints"] = [{"key": "key", "value": TAINTS[fl], "effect": "NoSchedule"}]
        items.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta1",
                "kind": "ResourceFlavor",
                "metadata": {"name": fl},
                "spec": spec,
            }
        )
    for name, parent, *groups in cohorts:
        spec = {"parentName": parent} if parent else {}
        if groups:  # a Cohort's own quota: one resource group
            g = groups[0]
            covered = sorted({r["name"] for f in g for r in f["resources"]})
            spec["resourceGroups"] = [{"coveredResources": covered, "flavors": list(g)}]
        items.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta1",
                "kind": "Cohort",
                "metadata": {"name": name},
                "spec": spec,
            }
        )
    items.extend(cqs)
    for ns, name, target in lqs:
        items.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta1",
                "kind": "LocalQueue",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"clusterQueue": target},
            }
        )
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})
    return parse_kueue_config(parse_manifests(text, "test"), "test")


def cluster(flavors=FLAVORS, per_flavor=2, gpus=8, cpus=1000, mem="10000Gi"):
    items = []
    for fl in flavors:
        for i in range(per_flavor):
            items.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"{fl}-{i}",
                        "labels": {
                            "kueue-test/flavor": fl,
                            "kubernetes.io/hostname": f"{fl}-{i}",
                            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                        },
                    },
                    "status": {
                        "allocatable": {
                            "cpu": str(cpus),
                            "memory": mem,
                            "nvidia.com/gpu": str(gpus),
                        },
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    return nodes_from_manifests(parse_manifests(text, "nodes.json"), "nodes.json")


def frame(workloads: list[W]) -> pd.DataFrame:
    rows = []
    for w in workloads:
        t = 0.0 if w.flavor else T_CYCLE
        rows.append(
            {
                "job_id": w.name,
                "submit_time": t,
                "duration": 1e6,
                "num_gpus": w.gpu * w.pods,
                "num_cpus": w.cpu * w.pods,
                "memory_gb": w.mem * w.pods,
                "pods": w.pods,
                "queue": w.lq,
                "priority": w.prio,
                "kueue_flavor": w.flavor,
            }
        )
    df = pd.DataFrame(rows)
    return df.iloc[np.argsort(df["submit_time"].to_numpy(), kind="stable")].reset_index(drop=True)


def run_case(case):
    cqs = [
        c
        for c in BASE_CQS
        if c["metadata"]["name"] not in {x["metadata"]["name"] for x in case.cqs}
    ]
    cfg = kueue_config(cqs + case.cqs, BASE_LQS + case.lqs, case.cohorts)
    # the local queue of each workload is looked up in its namespace
    pol = KueuePolicy(kueue_config=cfg, max_cycles=1)
    pol.placed = {}
    orig = pol.schedule

    def recording(view):
        for d in orig(view):
            if isinstance(d, Start):
                pol.placed[d.job] = d.placement.nodes.tolist()
            yield d

    pol.schedule = recording
    sim = Simulation(
        frame(case.workloads),
        cluster(per_flavor=4),  # room for every pod: placement never decides here
        pol,
        record_events=True,
        check_invariants=True,
        until=T_CYCLE + 1,
    ).run()
    return sim, pol


def outcome(sim, pol):
    names = [str(x) for x in sim.jobs.job_ids]
    admitted = {}
    preempted = set()
    for t, j, ev, _ in pol.log:
        if t == T_CYCLE and ev == "admitted":
            admitted[names[j]] = "+".join(sorted(set(pol.flavors[j].values())))
        if t == T_CYCLE and ev == "preempted":
            preempted.add(names[j])
    return admitted, preempted


@pytest.mark.parametrize("case", CASES, ids=[c.go[:60] for c in CASES])
def test_scheduler_test_go_cycle(case):
    sim, pol = run_case(case)
    admitted, preempted = outcome(sim, pol)
    assert admitted == case.admitted
    assert preempted == case.preempted
    jobs = sim.jobs
    names = [str(x) for x in jobs.job_ids]
    for j, name in enumerate(names):
        w = next(x for x in case.workloads if x.name == name)
        if name in case.preempted:  # stopped and back in the queue
            assert jobs.preemptions[j] == 1
        elif w.flavor or name in case.admitted:  # started on its flavor's nodes
            assert jobs.start[j] == (0.0 if w.flavor else T_CYCLE)
            labels = {sim.spec.labels[n]["kueue-test/flavor"] for n in pol.placed[j]}
            assert labels == set(pol.flavors[j].values())
        else:
            assert np.isnan(jobs.start[j])
            assert jobs.status[j] == Status.REJECTED or pol.pending_reason(j)


def test_at_least_25_scenarios_ported():
    assert len(CASES) >= 25
    assert len({c.go for c in CASES}) == len(CASES)


def test_pending_reasons_name_quota_and_flavor():
    case = next(c for c in CASES if c.go == "single clusterQueue full")
    sim, pol = run_case(case)
    j = [str(x) for x in sim.jobs.job_ids].index("sales/new")
    # Kueue: "insufficient unused quota for cpu in flavor default, 1 more needed"
    assert (
        pol.pending_reason(j)
        == "insufficient unused quota for cpu in flavor default, 1 more needed"
    )


def test_never_admissible_workloads_are_rejected_with_the_reason():
    case = next(c for c in CASES if c.go == "cannot borrow resource not listed in clusterQueue")
    sim, pol = run_case(case)
    assert sim.jobs.status[0] == Status.REJECTED
    assert ("rejected", "resource nvidia.com/gpu unavailable in ClusterQueue eng-alpha") in [
        (ev, d) for _, _, ev, d in pol.log
    ]


# ---------------------------------------------------------------------- pods and waitForPodsReady


def _one_cq(nominal_gpus, flavor="default"):
    return kueue_config(
        [cq("q", [fq(flavor, res("nvidia.com/gpu", nominal_gpus))])],
        [("ns", "lq", "q")],
        flavors=[flavor],
    )


def test_pods_that_do_not_fit_are_evicted_after_the_timeout_with_backoff():
    # quota for 16 GPUs, but two 8-GPU nodes: a 2x8 gang holds one node, a second 2x4 gang
    # gets quota (16 total) but its pods cannot be placed until the first finishes at 1000 s
    cfg = _one_cq(24)
    spec = cluster(flavors=["default"], per_flavor=2, gpus=8)
    df = pd.DataFrame(
        {
            "job_id": ["ns/big", "ns/wide"],
            "submit_time": [0.0, 1.0],
            "duration": [1000.0, 10.0],
            "num_gpus": [12, 8],
            "pods": [3, 2],
            "queue": ["lq", "lq"],
        }
    )
    pol = KueuePolicy(kueue_config=cfg)
    sim = Simulation(df, spec, pol, record_events=True, check_invariants=True).run()
    check_outcome(sim)
    ev = [
        (t, sim.jobs.job_ids[j], e)
        for t, j, e, _ in pol.log
        if e in ("evicted", "requeued", "admitted")
    ]
    # admitted at 1, pods pending; evicted at 1+300; requeued after 60 s, admitted, evicted
    # at 361+300; requeued after 120 s ... until 'big' ends at 1000
    assert ev[:2] == [(0.0, "ns/big", "admitted"), (1.0, "ns/wide", "admitted")]
    assert (301.0, "ns/wide", "evicted") in ev and (361.0, "ns/wide", "requeued") in ev
    assert (661.0, "ns/wide", "evicted") in ev and (781.0, "ns/wide", "requeued") in ev
    j = list(sim.jobs.job_ids).index("ns/wide")
    assert sim.jobs.start[j] == pytest.approx(1000.0)
    reasons = set(sim.pending.rows(sim.jobs.job_ids)["reason"])
    assert "waiting for pods ready (evicted 1x, backoff 60 s)" in reasons
    assert "admitted, waiting for its pods to be placed" in reasons


def test_backoff_limit_rejects_the_workload():
    cfg = _one_cq(24)
    spec = cluster(flavors=["default"], per_flavor=2, gpus=8)
    df = pd.DataFrame(
        {
            "job_id": ["ns/big", "ns/wide"],
            "submit_time": [0.0, 1.0],
            "duration": [1000.0, 10.0],
            "num_gpus": [12, 8],
            "pods": [3, 2],
            "queue": ["lq", "lq"],
        }
    )
    pol = KueuePolicy(kueue_config=cfg, backoff_limit_count=1)
    sim = Simulation(df, spec, pol, check_invariants=True).run()
    assert sim.jobs.status[1] == Status.REJECTED
    assert [e for _, _, e, _ in pol.log].count("evicted") == 2


def test_flavor_node_labels_select_nodes_and_order_is_tried():
    cfg = kueue_config(
        [cq("q", [fq("a", res("nvidia.com/gpu", 8)), fq("b", res("nvidia.com/gpu", 8))])],
        [("ns", "lq", "q")],
        flavors=["a", "b"],
    )
    spec = cluster(flavors=["a", "b"], per_flavor=1, gpus=8)
    df = pd.DataFrame(
        {
            "job_id": ["ns/x", "ns/y"],
            "submit_time": [0.0, 0.0],
            "duration": [10.0, 10.0],
            "num_gpus": [8, 8],
            "pods": [1, 1],
            "queue": ["lq", "lq"],
        }
    )
    pol = KueuePolicy(kueue_config=cfg)
    sim = Simulation(df, spec, pol, check_invariants=True).run()
    check_outcome(sim)
    assert pol.flavors == {0: {"nvidia.com/gpu": "a"}, 1: {"nvidia.com/gpu": "b"}}
    assert sim.jobs.start.tolist() == [0.0, 0.0]


def test_strict_fifo_head_blocks_best_effort_does_not():
    for strategy, want in (("StrictFIFO", 110.0), ("BestEffortFIFO", 2.0)):
        cfg = kueue_config(
            [cq("q", [fq("d", res("nvidia.com/gpu", 8))], strategy=strategy)],
            [("ns", "lq", "q")],
            flavors=["d"],
        )
        spec = cluster(flavors=["d"], per_flavor=1, gpus=8)
        df = pd.DataFrame(
            {
                "job_id": ["ns/run", "ns/big", "ns/small"],
                "submit_time": [0.0, 1.0, 2.0],
                "duration": [100.0, 10.0, 10.0],
                "num_gpus": [4, 8, 4],
                "pods": [1, 1, 1],
                "queue": ["lq"] * 3,
            }
        )
        pol = KueuePolicy(kueue_config=cfg)
        sim = Simulation(df, spec, pol, check_invariants=True).run()
        check_outcome(sim)
        start_small = sim.jobs.start[2]
        assert start_small == want, strategy


def test_wait_decisions_give_kueue_reasons_to_the_engine():
    cfg = kueue_config(
        [cq("q", [fq("d", res("nvidia.com/gpu", 8))], strategy="StrictFIFO")],
        [("ns", "lq", "q")],
        flavors=["d"],
    )
    spec = cluster(flavors=["d"], per_flavor=1, gpus=8)
    df = pd.DataFrame(
        {
            "job_id": ["ns/run", "ns/big", "ns/small"],
            "submit_time": [0.0, 1.0, 2.0],
            "duration": [100.0, 10.0, 10.0],
            "num_gpus": [4, 8, 4],
            "pods": [1, 1, 1],
            "queue": ["lq"] * 3,
        }
    )
    sim = Simulation(df, spec, KueuePolicy(kueue_config=cfg), check_invariants=True).run()
    last = dict(zip(sim.jobs.job_ids, sim.pending.last_reasons(), strict=True))
    assert (
        last["ns/big"] == "insufficient unused quota for nvidia.com/gpu in flavor d, 4 more needed"
    )
    assert last["ns/small"] == last["ns/big"]  # head once 'big' runs, blocked by it
    rows = sim.pending.rows(sim.jobs.job_ids)
    got = {(r.job_id, r.reason): r.seconds for r in rows.itertuples()}
    assert got[("ns/big", last["ns/big"])] == pytest.approx(99.0)  # 1 s until 100 s
    assert got[("ns/small", "StrictFIFO: behind an earlier workload")] == pytest.approx(98.0)
    assert got[("ns/small", last["ns/big"])] == pytest.approx(10.0)  # 100 s until 110 s


def test_fair_sharing_admits_the_lower_share_queue_first():
    # two queues with no quota borrow from a lender; 'a' already borrows 4, so with fair
    # sharing 'b' (share 0) goes first although 'a''s workload is older
    cqs = [
        cq("lender", [fq("d", res("nvidia.com/gpu", 8))], cohort="co"),
        cq("a", [fq("d", res("nvidia.com/gpu", 0))], cohort="co"),
        cq("b", [fq("d", res("nvidia.com/gpu", 0))], cohort="co"),
    ]
    cfg = kueue_config(cqs, [("ns", "la", "a"), ("ns", "lb", "b")], flavors=["d"])
    spec = cluster(flavors=["d"], per_flavor=1, gpus=8)
    df = pd.DataFrame(
        {
            "job_id": ["ns/a0", "ns/a1", "ns/b1"],
            "submit_time": [0.0, 5.0, 5.0],
            "duration": [100.0, 100.0, 100.0],
            "num_gpus": [4, 4, 4],
            "pods": [1, 1, 1],
            "queue": ["la", "la", "lb"],
            "kueue_flavor": ["d", "", ""],
        }
    )
    for fair, first in ((False, "ns/a1"), (True, "ns/b1")):
        pol = KueuePolicy(kueue_config=cfg, fair_sharing=fair)
        sim = Simulation(df, spec, pol, check_invariants=True).run()
        check_outcome(sim)
        at5 = [sim.jobs.job_ids[j] for t, j, e, _ in pol.log if e == "admitted" and t == 5.0]
        assert at5 == [first]


def test_killed_job_restarts_when_its_node_is_repaired():
    # tests/test_properties.py's case with a LocalQueue for the job: one 1-GPU node, a 30 s
    # job, the node down from 5 to 6 s; quota is released at the kill and taken again at 6 s
    def outage(sim):
        yield sim.env.timeout(5)
        sim.fail_node(0)
        yield sim.env.timeout(1)
        sim.repair_node(0)

    cfg = kueue_config(
        [cq("q", [fq("d", res("nvidia.com/gpu", 1))])], [("default", "default", "q")], flavors=["d"]
    )
    spec = cluster(flavors=["d"], per_flavor=1, gpus=1)
    trace = pd.DataFrame({"job_id": [0], "submit_time": [0.0], "duration": [30.0], "num_gpus": [1]})
    pol = KueuePolicy(kueue_config=cfg)
    sim = Simulation(
        trace, spec, pol, record_events=True, check_invariants=True, processes=(outage,)
    ).run()
    assert sim.events[2:] == [(5, 0, "killed"), (6, 0, "start"), (31, 0, "finish")]
    assert [e for _, _, e, _ in pol.log] == ["admitted", "started", "admitted", "started"]


# ---------------------------------------------------------------------- property


@st.composite
def small_setups(draw):
    n_cq = draw(st.integers(1, 3))
    cqs, lqs, quotas = [], [], {}
    for i in range(n_cq):
        flavors = []
        for fl in ("d", "e")[: draw(st.integers(1, 2))]:
            nominal = draw(st.integers(0, 16))
            borrow = draw(st.one_of(st.none(), st.integers(0, 16)))
            lend = draw(st.one_of(st.none(), st.integers(0, nominal)))
            flavors.append(fq(fl, res("nvidia.com/gpu", nominal, borrow, lend)))
            quotas[(f"q{i}", fl)] = (nominal, borrow)
        pre = draw(
            st.sampled_from(
                [{}, {"within": "LowerPriority"}, {"reclaim": "Any", "within": "LowerPriority"}]
            )
        )
        strategy = draw(st.sampled_from(["StrictFIFO", "BestEffortFIFO"]))
        cqs.append(cq(f"q{i}", flavors, cohort="co", strategy=strategy, **pre))
        lqs.append(("ns", f"l{i}", f"q{i}"))
    jobs = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_cq - 1),
                st.sampled_from([1, 2, 4, 8]),
                st.sampled_from([1, 2]),
                st.integers(0, 2),
                st.integers(0, 50),
                st.integers(1, 60),
            ),
            min_size=1,
            max_size=14,
        )
    )
    return cqs, lqs, quotas, jobs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_setups())
def test_property_quota_and_nodes_never_exceeded(setup):
    # random cohorts of 1-3 queues over 1-2 flavors (one 8-GPU node each), priorities,
    # preemption, pod-shaped jobs, waitForPodsReady with short times: after every pass no
    # queue holds more than nominal + borrowingLimit of a flavor and the cohort never hands
    # out more than the queues' nominal quota; the engine checks every node after every event
    cqs, lqs, quotas, rows = setup
    cfg = kueue_config(cqs, lqs, flavors=["d", "e"])
    spec = cluster(flavors=["d", "e"], per_flavor=1, gpus=8)
    df = pd.DataFrame(
        {
            "job_id": [f"ns/j{i}" for i in range(len(rows))],
            "submit_time": [float(r[4]) for r in rows],
            "duration": [float(r[5]) for r in rows],
            "num_gpus": [r[1] * r[2] for r in rows],
            "pods": [r[2] for r in rows],
            "queue": [f"l{r[0]}" for r in rows],
            "priority": [r[3] for r in rows],
        }
    )
    pol = KueuePolicy(kueue_config=cfg, pods_ready_timeout=30.0, backoff_base_seconds=5.0)
    orig = pol.schedule

    def checked(view):
        yield from orig(view)
        for fl in ("d", "e"):
            used = total = 0
            for (q, f), (nominal, borrow) in quotas.items():
                if f != fl:
                    continue
                u = pol.tree.nodes[q].usage.get((fl, "nvidia.com/gpu"), 0)
                assert 0 <= u <= nominal + (10**9 if borrow is None else borrow)
                used += u
                total += nominal
            assert used <= total  # the cohort never lends more than it has
        held = {pol.names[j] for j in pol.started | set(pol.reserved)}
        assert held == set(pol.tree.workloads)  # quota held exactly by admitted workloads

    pol.schedule = checked
    sim = Simulation(df, spec, pol, check_invariants=True).run()  # engine checks nodes
    check_outcome(sim)


# ---------------------------------------------------------------------- config and CLI


def test_config_path_resolves_from_any_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pol = KueuePolicy(config="examples/kubernetes/kueue.yaml")
    assert pol.config_path == default_config_path()
    assert KueuePolicy().config_path == default_config_path()
    with pytest.raises(FileNotFoundError, match="policy.config"):
        KueuePolicy(config="nope.yaml")


def test_bad_knobs_are_refused():
    with pytest.raises(ValueError, match="pods_ready_timeout"):
        KueuePolicy(pods_ready_timeout=-1)
    with pytest.raises(ValueError, match="requeuing_timestamp"):
        KueuePolicy(requeuing_timestamp="Sometime")


def test_issue_command_runs_on_the_shipped_examples(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "simulator",
        "+policy=kueue",
        "policy.config=examples/kubernetes/kueue.yaml",
        "cluster=kubernetes",
        "cluster.path=examples/kubernetes/nodes.json",
        "trace=kubernetes",
        "trace.path=examples/kubernetes/workloads.yaml",
        "sim.progress=false",
        f"hydra.run.dir={tmp_path}",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    jobs = pd.read_parquet(tmp_path / "jobs.parquet")
    assert summary["policy"] == "kueue" or "kueue" in json.dumps(summary)
    assert len(jobs) >= 6 and (jobs["status"] == "finished").all()


def test_bench_script_small_run_writes_its_block(tmp_path, capsys):
    from experiments import kueue_bench

    doc = tmp_path / "doc.md"
    start = "<!-- kueue_bench:start (python -m experiments.kueue_bench) -->"
    doc.write_text(f"x\n{start}\nold\n<!-- kueue_bench:end -->\n")
    assert kueue_bench.main(["--jobs", "300", "--nodes", "4", "--markdown", str(doc)]) == 0
    out = capsys.readouterr().out
    assert "| 300 | 4 x 8 |" in out
    text = doc.read_text()
    assert "old" not in text and "| 300 | 4 x 8 |" in text
    r = kueue_bench.run(300, 4, 0)
    assert r["finished"] + r["rejected"] + r["unschedulable"] == 300  # big gangs never fit
    assert r["admitted"] >= r["finished"] > 250
