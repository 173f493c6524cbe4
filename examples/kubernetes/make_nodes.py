"""Write examples/kubernetes/nodes.json: a made-up DGX cluster, as `kubectl get nodes -o json`.

Run from the project root: ``python examples/kubernetes/make_nodes.py``. Deterministic.

The cluster (one zone, two spine blocks, five racks):

* rack r1, r2 (block b1): 8 DGX H100 (8x H100-80GB-HBM3, 224 threads, 2 TiB); one cordoned for
  maintenance, one tainted ``maintenance.example.com/drain:NoSchedule`` (neither is used);
* rack r3 (block b2): 4 DGX H200;
* rack r4 (block b2): 4 DGX A100-80GB, one of them with MIG (mixed strategy: 4 whole GPUs and
  8 ``3g.40gb`` slices, the slices are reported, not modelled), one NotReady;
* rack r0: 2 CPU-only worker nodes and 1 control-plane node (tainted, not used).
"""

from __future__ import annotations

import json
from pathlib import Path

PRODUCTS = {
    "h100": ("NVIDIA-H100-80GB-HBM3", "81559", "hopper", "DGX-H100"),
    "h200": ("NVIDIA-H200", "143771", "hopper", "DGX-H200"),
    "a100": ("NVIDIA-A100-SXM4-80GB", "81920", "ampere", "DGX-A100"),
}


def node(name, rack, block, kind, *, cordon=False, taint=None, ready=True, mig=None):
    """One Node object (labels as GPU feature discovery and topograph set them)."""
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": "us-east-1a",
        "network.topology.nvidia.com/spine": "spine-1",
        "network.topology.nvidia.com/block": block,
        "topology.kubernetes.io/rack": rack,
    }
    alloc = {"ephemeral-storage": "1758158092Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    if kind == "cpu":
        labels["node-role.kubernetes.io/cpu-worker"] = ""
        cap = {"cpu": "64", "memory": "263720668Ki", "pods": "110"}
        alloc.update({"cpu": "63500m", "memory": "261521116Ki", "pods": "110"})
    elif kind == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
        cap = {"cpu": "16", "memory": "65843148Ki", "pods": "110"}
        alloc.update({"cpu": "15", "memory": "64692172Ki", "pods": "110"})
    else:
        product, mem, family, machine = PRODUCTS[kind]
        whole = 8 - (4 if mig else 0)
        labels.update(
            {
                "node-role.kubernetes.io/gpu-worker": "",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": product,
                "nvidia.com/gpu.count": "8",
                "nvidia.com/gpu.memory": mem,
                "nvidia.com/gpu.family": family,
                "nvidia.com/gpu.machine": machine,
                "nvidia.com/gpu.deploy.device-plugin": "true",
                "nvidia.com/cuda.driver.major": "550",
                "nvidia.com/cuda.driver.minor": "90",
                "nvidia.com/cuda.runtime.major": "12",
                "nvidia.com/cuda.runtime.minor": "4",
                "nvidia.com/mig.capable": "true",
                "nvidia.com/mig.strategy": "mixed" if mig else "single",
                "feature.node.kubernetes.io/pci-10de.present": "true",
            }
        )
        threads = 256 if kind == "a100" else 224
        mem_ki = 1056594540 if kind == "a100" else 2113644428
        cap = {"cpu": str(threads), "memory": f"{mem_ki + 8388608}Ki", "pods": "110"}
        cap["nvidia.com/gpu"] = str(whole)
        alloc.update(
            {
                "cpu": f"{threads - 2}500m" if kind != "a100" else str(threads - 2),
                "memory": f"{mem_ki}Ki",
                "pods": "110",
                "nvidia.com/gpu": str(whole),
            }
        )
        if mig:
            labels["nvidia.com/mig.config"] = "all-balanced"
            for prof, count in mig.items():
                cap[f"nvidia.com/mig-{prof}"] = str(count)
                alloc[f"nvidia.com/mig-{prof}"] = str(count)
    spec = {"podCIDR": "10.244.0.0/24", "providerID": f"baremetal://{name}"}
    if cordon:
        spec["unschedulable"] = True
        spec["taints"] = [
            {
                "effect": "NoSchedule",
                "key": "node.kubernetes.io/unschedulable",
                "timeAdded": "2025-06-01T08:00:00Z",
            }
        ]
    if taint:
        spec["taints"] = [taint]
    if kind == "control-plane":
        spec["taints"] = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
    conditions = [
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
        {
            "type": "Ready",
            "status": "True" if ready else "Unknown",
            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
        },
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            "creationTimestamp": "2025-05-01T10:00:00Z",
        },
        "spec": spec,
        "status": {"capacity": cap, "allocatable": alloc, "conditions": conditions},
    }


def main() -> None:
    """Write the file."""
    items = []
    for i in range(1, 9):
        rack = "r1" if i <= 4 else "r2"
        kw = {}
        if i == 7:
            kw["cordon"] = True
        if i == 8:
            kw["taint"] = {
                "effect": "NoSchedule",
                "key": "maintenance.example.com/drain",
                "value": "true",
            }
        items.append(node(f"dgx-h100-{i:02d}", rack, "block-1", "h100", **kw))
    for i in range(1, 5):
        items.append(node(f"dgx-h200-{i:02d}", "r3", "block-2", "h200"))
    for i in range(1, 5):
        kw = {}
        if i == 3:
            kw["mig"] = {"3g.40gb": 8}
        if i == 4:
            kw["ready"] = False
        items.append(node(f"dgx-a100-{i:02d}", "r4", "block-2", "a100", **kw))
    items.append(node("cpu-01", "r0", "block-0", "cpu"))
    items.append(node("cpu-02", "r0", "block-0", "cpu"))
    items.append(node("control-plane-01", "r0", "block-0", "control-plane"))
    doc = {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
    out = Path(__file__).with_name("nodes.json")
    out.write_text(json.dumps(doc, indent=4) + "\n")
    print(f"wrote {out} ({len(items)} nodes)")


if __name__ == "__main__":
    main()
