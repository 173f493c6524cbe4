"""cluster=kubernetes: Node lists -> ClusterSpec (resources, models, topology, skipped nodes)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from simulator.core.cluster import ClusterSpec, ClusterState
from simulator.k8s.manifests import ManifestError, parse_manifests
from simulator.k8s.nodes import (
    KubernetesClusterSpec,
    gpu_model_from_product,
    load_nodes,
    nodes_from_manifests,
    tolerates,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kubernetes" / "nodes.json"


def make_node(name, gpus=8, product="NVIDIA-H100-80GB-HBM3", cpu="96", memory="1056Gi", **kw):
    labels = {"kubernetes.io/hostname": name, **kw.pop("labels", {})}
    if product:
        labels["nvidia.com/gpu.product"] = product
    alloc = {"cpu": cpu, "memory": memory, **kw.pop("alloc", {})}
    if gpus is not None:
        alloc["nvidia.com/gpu"] = str(gpus)
    spec = kw.pop("spec", {})
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}
    obj["spec"] = spec
    obj["status"] = {"allocatable": alloc, **kw.pop("status", {})}
    return obj


def build(nodes, **kw):
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})
    return nodes_from_manifests(parse_manifests(text, "nodes.json"), "nodes.json", **kw)


def test_resources_are_exact():
    spec = build(
        [
            make_node("a", cpu="95500m", memory="1056Gi"),
            make_node("b", gpus=4, cpu="96", memory="2Ti"),
            make_node("c", gpus=0, product=None, cpu="1e3", memory="512000Mi"),
        ]
    )
    assert isinstance(spec, KubernetesClusterSpec) and isinstance(spec, ClusterSpec)
    assert spec.node_names == ("a", "b", "c")
    assert spec.gpus.tolist() == [8, 4, 0]
    assert spec.cpus.tolist() == [95.5, 96.0, 1000.0]
    assert spec.memory_gb.tolist() == [1056.0, 2048.0, 500.0]  # GiB
    assert spec.gpu_models == ("H100", "H100", "")
    ClusterState(spec)  # the engine's state builds from it


def test_shipped_example():
    spec = load_nodes(EXAMPLE)
    assert spec.num_nodes == 15 and spec.total_gpus == 100
    counts = {m: int(spec.gpus[np.array(spec.gpu_models) == m].sum()) for m in spec.model_names()}
    assert counts == {"H100": 48, "H200": 32, "A100-80GB": 20}
    assert dict(spec.report) == {
        "mig_devices_3g.40gb": 8,
        "nodes_with_mig_devices": 1,
        "skipped_cordoned": 1,
        "skipped_not_ready": 1,
        "skipped_untolerated_taint": 2,
    }
    assert any("MIG" in n for n in spec.notes)
    assert spec.mig[spec.node_names.index("dgx-a100-03")] == {"3g.40gb": 8}
    # racks: r1 (4 H100), r2 (2 usable H100), r3 (H200), r4 (A100), r0 (CPU) -> 5 racks
    assert len(np.unique(spec.racks)) == 5
    assert spec.domains("block")[0] == "block-1"
    assert spec.domains("hostname") == spec.node_names
    assert spec.labels[0]["nvidia.com/gpu.machine"] == "DGX-H100"


def test_yaml_multi_document_equals_json():
    nodes = [make_node("a"), make_node("b", gpus=2)]
    text = "\n---\n".join(yaml.safe_dump(n) for n in nodes)
    a = nodes_from_manifests(parse_manifests(text, "n.yaml"), "n.yaml")
    b = build(nodes)
    assert a.node_names == b.node_names and (a.gpus == b.gpus).all()


@pytest.mark.parametrize(
    ("product", "model"),
    [
        ("NVIDIA-H100-80GB-HBM3", "H100"),
        ("NVIDIA-H100-SXM5-80GB", "H100"),
        ("NVIDIA-H200", "H200"),
        ("NVIDIA-B200", "B200"),
        ("NVIDIA-GB200", "GB200"),
        ("NVIDIA-A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA-A100-SXM4-40GB", "A100-40GB"),
        ("NVIDIA-A100-PCIE-40GB", "A100-40GB"),
        ("Tesla-V100-SXM2-16GB", "V100"),
        ("Tesla-V100-SXM2-32GB", "V100M32"),
        ("Tesla-T4", "T4"),
        ("NVIDIA-A10", "A10"),
        ("Tesla-P100-PCIE-16GB", "P100"),
        ("NVIDIA-H100-NVL", None),
        ("NVIDIA-H100-PCIe", None),
        ("NVIDIA-L40S", None),
        ("NVIDIA-A100", None),
    ],
)
def test_product_mapping(product, model):
    assert gpu_model_from_product(product) == model


def test_unknown_model_keeps_its_name_and_is_reported():
    spec = build([make_node("a", product="NVIDIA-L40S"), make_node("b", product=None)])
    assert spec.gpu_models == ("NVIDIA-L40S", "unknown")
    assert spec.report["nodes_with_unknown_gpu_model"] == 2
    assert spec.report["gpu_nodes_without_product_label"] == 1
    assert "NVIDIA-L40S (1 nodes)" in spec.notes[0]


def test_skipped_nodes_are_counted():
    nodes = [
        make_node("ok"),
        make_node("cordoned", spec={"unschedulable": True}),
        make_node("tainted", spec={"taints": [{"key": "x", "value": "y", "effect": "NoSchedule"}]}),
        make_node("noexec", spec={"taints": [{"key": "x", "effect": "NoExecute"}]}),
        make_node("soft", spec={"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}),
        make_node(
            "gpu-taint", spec={"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}
        ),
        make_node("down", status={"conditions": [{"type": "Ready", "status": "False"}]}),
        make_node("nocpu", cpu="0"),
    ]
    spec = build(nodes)
    assert spec.node_names == ("ok", "soft", "gpu-taint")
    assert dict(spec.report) == {
        "skipped_cordoned": 1,
        "skipped_untolerated_taint": 2,
        "skipped_not_ready": 1,
        "skipped_no_allocatable_cpu_or_memory": 1,
        "nodes_without_rack_label_alone": 3,
    }
    spec2 = build(nodes, tolerations=[{"key": "x", "operator": "Exists"}], skip_not_ready=False)
    assert "tainted" in spec2.node_names and "down" in spec2.node_names
    assert "gpu-taint" not in spec2.node_names  # [] of the default toleration


def test_toleration_rules():
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates([{"key": "k", "value": "v"}], taint)
    assert not tolerates([{"key": "k", "value": "w"}], taint)
    assert tolerates([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}], taint)
    assert not tolerates([{"key": "k", "operator": "Exists", "effect": "NoExecute"}], taint)
    assert tolerates([{"operator": "Exists"}], taint)
    assert not tolerates([], taint)


def test_rack_fallback_and_path_uniqueness():
    z = "topology.kubernetes.io/zone"
    rack = "topology.kubernetes.io/rack"
    nodes = [
        make_node("a", labels={z: "z1", rack: "r1"}),
        make_node("b", labels={z: "z2", rack: "r1"}),  # same rack name, other zone
        make_node("c", labels={z: "z1"}),  # no rack: grouped by zone
        make_node("d"),  # nothing: alone
    ]
    spec = build(nodes)
    assert len(np.unique(spec.racks)) == 4
    assert spec.report["nodes_without_rack_label_grouped_by_outer_level"] == 1
    assert spec.report["nodes_without_rack_label_alone"] == 1
    spec = build(nodes, rack_level="zone")
    assert spec.racks[0] == spec.racks[2] != spec.racks[1]
    with pytest.raises(ValueError, match="rack_level 'pod'"):
        build(nodes, rack_level="pod")


def test_other_kinds_are_counted_not_fatal():
    spec = build([make_node("a"), {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}])
    assert spec.report["ignored_kind_Pod"] == 1


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            make_node("a", cpu="lots"),
            r"document 1, item 1 \(Node a\), field status.allocatable.cpu",
        ),
        (
            make_node("a", memory="-1Gi"),
            r"field status.allocatable.memory: quantity '-1Gi' is negative",
        ),
        (make_node("a", gpus="8 GPUs"), r"field status.allocatable\[nvidia.com/gpu\]"),
        ({"kind": "Node", "metadata": {"name": "a"}}, r"field status.allocatable: required"),
        ({"kind": "Node", "metadata": {}}, r"\(Node <no name>\), field metadata.name: required"),
        (
            make_node("a", spec={"unschedulable": "yes"}),
            r"field spec.unschedulable: expected true/false",
        ),
        (make_node("a", spec={"taints": ["x"]}), r"field spec.taints\[0\]"),
    ],
)
def test_malformed_nodes_name_document_object_and_field(node, message):
    with pytest.raises(ManifestError, match=message):
        build([node])


def test_bad_files(tmp_path):
    with pytest.raises(ManifestError, match="file not found"):
        load_nodes(tmp_path / "missing.json")
    (tmp_path / "empty.json").write_text("  \n")
    with pytest.raises(ManifestError, match="file is empty"):
        load_nodes(tmp_path / "empty.json")
    (tmp_path / "bad.json").write_text('{"kind": "List", "items": [}')
    with pytest.raises(ManifestError, match="invalid JSON at line 1"):
        load_nodes(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("kind: Node\nmetadata: {name: a\n")
    with pytest.raises(ManifestError, match="invalid YAML at line"):
        load_nodes(tmp_path / "bad.yaml")
    (tmp_path / "dup.json").write_text(json.dumps({"kind": "List", "items": [make_node("a")] * 2}))
    with pytest.raises(ManifestError, match="item 2 .*duplicate node name 'a' .*item 1"):
        load_nodes(tmp_path / "dup.json")
    (tmp_path / "none.json").write_text(json.dumps({"kind": "List", "items": []}))
    with pytest.raises(ManifestError, match="no schedulable Node objects"):
        load_nodes(tmp_path / "none.json")


def test_hydra_config_instantiates():
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["cluster=kubernetes", f"cluster.path={EXAMPLE}"])
    spec = instantiate(cfg.cluster, _convert_="all")
    assert spec.total_gpus == 100
