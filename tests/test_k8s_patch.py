"""What-if patches of Kubernetes objects and node copies (simulator/k8s/patch.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simulator.k8s.manifests import ManifestError, read_manifests
from simulator.k8s.nodes import load_nodes
from simulator.k8s.patch import Patch, apply_patches, clone_nodes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "kubernetes"


def obj(manifests, kind, name):
    return next(m.obj for m in manifests if m.kind == kind and m.name == name)


def test_parse():
    p = Patch("ClusterQueue/team-a:spec.resourceGroups[0].flavors[name=h100].resources"
              "[name=nvidia.com/gpu].nominalQuota=48")  # fmt: skip
    assert (p.kind, p.name, p.namespace) == ("ClusterQueue", "team-a", None)
    assert p.path == ["spec", "resourceGroups", 0, "flavors", ("name", "h100"), "resources",
                      ("name", "nvidia.com/gpu"), "nominalQuota"]  # fmt: skip
    assert p.value == 48
    q = Patch("LocalQueue/ns-1/main:metadata.labels[kueue.x-k8s.io/x]={a: 1}")
    assert (q.namespace, q.name, q.path, q.value) == (
        "ns-1", "main", ["metadata", "labels", "kueue.x-k8s.io/x"], {"a": 1})  # fmt: skip
    assert Patch("Queue/a:spec.priority=null").value is None


def test_kai_queue_quota_and_a_new_field():
    base = read_manifests(EXAMPLES / "kai.yaml")
    out = apply_patches(base, ["Queue/research:spec.resources.gpu.quota=32",
                               "Queue/production:spec.preemptMinRuntime=5m"])  # fmt: skip
    assert obj(out, "Queue", "research")["spec"]["resources"]["gpu"]["quota"] == 32
    assert obj(out, "Queue", "production")["spec"]["preemptMinRuntime"] == "5m"
    # the originals are untouched (patches edit copies)
    assert obj(base, "Queue", "research")["spec"]["resources"]["gpu"]["quota"] == 60
    assert "preemptMinRuntime" not in obj(base, "Queue", "production")["spec"]


def test_kueue_flavor_quota_by_name_and_removal():
    base = read_manifests(EXAMPLES / "kueue.yaml")
    path = "spec.resourceGroups[0].flavors[name=h100].resources[name=nvidia.com/gpu]"
    out = apply_patches(base, [f"ClusterQueue/team-a:{path}.nominalQuota=48",
                               f"ClusterQueue/team-a:{path}.borrowingLimit=null"])  # fmt: skip
    gpu = obj(out, "ClusterQueue", "team-a")["spec"]["resourceGroups"][0]["flavors"][0]
    assert gpu["resources"][0] == {"name": "nvidia.com/gpu", "nominalQuota": 48,
                                   "lendingLimit": 16}  # fmt: skip


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ("Queue/nobody:spec.priority=1", r"no Queue named 'nobody' \(Queue objects: "),
        ("Cohort/x:spec.a=1", "no Cohort"),
        ("Queue/research:spec.resourcez.gpu.quota=1", r"has no field 'resourcez' \("),
        ("Queue/research:spec.resources.gpu[0]=1", "is not a list"),
        ("ClusterQueue/team-a:spec.resourceGroups[3].x=1", "has 1 items, no item 3"),
        ("ClusterQueue/team-a:spec.resourceGroups[0].flavors[name=b200].x=1",
         r"no item with name=b200 \(names: h100, a100\)"),
        ("Queue/research spec.priority=1", "no ':'"),
        ("Queue/research:spec.priority", "no '='"),
        ("Queue:spec.priority=1", "expected KIND/NAME"),
        ("Queue/research:=1", "empty field path"),
        ("Queue/research:spec.priority]x=1", "cannot read the field path"),
        (7, "expected a text"),
    ],
)  # fmt: skip
def test_bad_patches_name_the_patch(patch, match):
    base = read_manifests(EXAMPLES / "kai.yaml") + read_manifests(EXAMPLES / "kueue.yaml")
    with pytest.raises(ManifestError, match=match):
        apply_patches(base, [patch])


def test_node_copies_and_node_patches():
    base = load_nodes(EXAMPLES / "nodes.json")
    more = load_nodes(
        EXAMPLES / "nodes.json",
        add_nodes=[{"like": "dgx-h100-01", "count": 3, "name": "new-{k}",
                    "labels": {"topology.kubernetes.io/rack": "r9"}}],
        patches=["Node/dgx-h100-02:spec.unschedulable=true"],
    )  # fmt: skip
    assert more.num_nodes == base.num_nodes + 3 - 1
    assert more.report["skipped_cordoned"] == base.report.get("skipped_cordoned", 0) + 1
    assert more.total_gpus == base.total_gpus + 3 * 8 - 8
    manifests = clone_nodes(read_manifests(EXAMPLES / "nodes.json"), [{"like": "dgx-h100-01",
                                                                       "count": 2}])  # fmt: skip
    names = [m.name for m in manifests if m.kind == "Node"]
    assert names[-2:] == ["dgx-h100-01-whatif-1", "dgx-h100-01-whatif-2"]
    copy = manifests[-1].obj["metadata"]["labels"]
    assert copy["kubernetes.io/hostname"] == "dgx-h100-01-whatif-2"
    for bad, match in [({"like": "nope", "count": 1}, "no Node named 'nope'"),
                       ({"like": "dgx-h100-01", "count": 0}, "count must be an integer >= 1"),
                       ({"count": 2}, "expected {like: NODE, count: N}"),
                       ({"like": "dgx-h100-01", "count": 1, "name": "dgx-h100-02"},
                        "exists already")]:  # fmt: skip
        with pytest.raises(ManifestError, match=match):
            clone_nodes(read_manifests(EXAMPLES / "nodes.json"), [bad])


def test_node_count_what_if_is_a_multirun(tmp_path):
    # a sweep over how many H100 nodes are added, as one Hydra multirun from the command line
    cmd = [sys.executable, "-m", "simulator", "-m", "+policy=gang", "cluster=kubernetes",
           f"cluster.path={EXAMPLES / 'nodes.json'}", "trace=file",
           f"trace.path={EXAMPLES / 'jobs.csv'}",
           "cluster.add_nodes=[],[{like: dgx-h100-01, count: 8}]",
           f"hydra.sweep.dir={tmp_path}", "sim.progress=false", "plots=false"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    from simulator.output.results import load_runs

    runs = load_runs(tmp_path).sort_values("cluster_gpus")
    assert list(runs["cluster_gpus"].diff().dropna()) == [64]
    assert runs["avg_wait"].iloc[1] <= runs["avg_wait"].iloc[0]
    assert isinstance(runs, pd.DataFrame) and len(runs) == 2


def test_kai_quota_what_if_is_a_multirun_and_the_report_compares_queues(tmp_path):
    from simulator.output.report import build_report
    from simulator.output.results import load_breakdowns, load_runs, parse_overrides

    quota = "Queue/research:spec.resources.gpu.quota"
    cmd = [sys.executable, "-m", "simulator", "-m", "+policy=kai",
           f"policy.config={EXAMPLES / 'kai.yaml'}", "cluster=kubernetes",
           f"cluster.path={EXAMPLES / 'nodes.json'}", "trace=file",
           f"trace.path={EXAMPLES / 'jobs.csv'}",
           f'policy.patches=["{quota}=20"],["{quota}=100"]',
           f"hydra.sweep.dir={tmp_path}", "sim.progress=false", "plots=false"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "raised" not in done.stderr  # the sweep summary groups by the list-valued override
    runs = load_runs(tmp_path)
    assert sorted(runs["policy.patches"]) == [f'["{quota}=100"]', f'["{quota}=20"]']
    rows = load_breakdowns(tmp_path)
    assert rows.groupby("policy.patches")["queue"].nunique().eq(4).all()
    md = build_report(tmp_path, tmp_path / "report", plots=False).markdown.read_text()
    assert "## Per queue" in md and "| team-llm |" in md
    # overrides that are lists or mappings stay as typed
    assert parse_overrides(["a=[1, 2]", "b={x: 1}", "c=3"]) == {"a": "[1, 2]", "b": "{x: 1}",
                                                                 "c": 3}  # fmt: skip


def test_kueue_takes_patches():
    from policies.kueue.policy import KueuePolicy

    path = "spec.resourceGroups[0].flavors[name=h100].resources[name=nvidia.com/gpu]"
    base = KueuePolicy(config=str(EXAMPLES / "kueue.yaml"))
    more = KueuePolicy(config=str(EXAMPLES / "kueue.yaml"),
                       patches=[f"ClusterQueue/team-a:{path}.nominalQuota=48"])  # fmt: skip
    assert base.cfg != more.cfg
    with pytest.raises(ManifestError, match="no ClusterQueue named 'team-z'"):
        KueuePolicy(config=str(EXAMPLES / "kueue.yaml"),
                    patches=[f"ClusterQueue/team-z:{path}.nominalQuota=48"])  # fmt: skip
