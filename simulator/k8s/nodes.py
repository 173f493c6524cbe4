"""A cluster from a ``v1 List`` of ``Node`` objects (``kubectl get nodes -o json``).

Each schedulable node becomes one node of a :class:`KubernetesClusterSpec` (a
:class:`~simulator.core.cluster.ClusterSpec` that also keeps every node's labels, taints,
topology domains and MIG devices, and a report of what was skipped or not understood):

* GPUs: ``status.allocatable["nvidia.com/gpu"]`` (``Value()``, whole devices);
* CPU cores: ``status.allocatable.cpu`` (``MilliValue() / 1000``);
* memory: ``status.allocatable.memory`` in GiB (bytes / 2**30: the simulator's ``memory_gb`` is
  binary, as in the openb loader, so ``"1056Gi"`` is 1056);
* GPU model: label ``nvidia.com/gpu.product`` (set by GPU feature discovery), mapped onto
  :data:`simulator.core.gpus.GPU_SPECS` by :func:`gpu_model_from_product`; a product that is not
  in the table keeps its label value as the model name (unknown specs) and is reported;
* topology: for every configured level (outermost first) the value of the first of its label
  keys that the node has; the ``rack_level`` becomes the cluster's ``racks`` (nodes without it
  fall back to the nearest outer level they have, else to a rack of their own: counted);
* skipped, counted and reported: cordoned nodes (``spec.unschedulable``), nodes with a
  ``NoSchedule``/``NoExecute`` taint that the configured workload tolerations do not tolerate,
  nodes whose ``Ready`` condition is not ``True`` (with ``skip_not_ready``), nodes without
  allocatable CPU or memory;
* MIG devices (``nvidia.com/mig-<profile>`` allocatable) are counted per profile and reported,
  not modelled: a MIG slice is not a GPU of the table and the placer has no notion of it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from simulator.core.cluster import ClusterSpec
from simulator.k8s.manifests import Manifest, ManifestError, read_manifests
from simulator.k8s.patch import apply_patches, clone_nodes

__all__ = [
    "DEFAULT_TOPOLOGY_LEVELS",
    "DEFAULT_TOLERATIONS",
    "KubernetesClusterSpec",
    "gpu_model_from_product",
    "load_nodes",
    "nodes_from_manifests",
    "tolerates",
]

log = logging.getLogger(__name__)

GIB = 2**30

DEFAULT_TOPOLOGY_LEVELS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "zone": ("topology.kubernetes.io/zone",),
        "block": (
            "network.topology.nvidia.com/block",
            "cloud.provider.com/topology-block",
            "cloud.google.com/gce-topology-block",
        ),
        "spine": ("network.topology.nvidia.com/spine", "cloud.provider.com/topology-spine"),
        "rack": (
            "topology.kubernetes.io/rack",
            "cloud.provider.com/topology-rack",
            "network.topology.nvidia.com/leaf",
        ),
        "hostname": ("kubernetes.io/hostname",),
    }
)
"""Topology levels, outermost first: level name -> label keys tried in order."""

DEFAULT_TOLERATIONS: tuple[Mapping[str, str], ...] = (
    MappingProxyType({"key": "nvidia.com/gpu", "operator": "Exists"}),
)
"""Tolerations assumed on workloads: the one Kubernetes' ExtendedResourceToleration admission
plugin adds to pods that request ``nvidia.com/gpu``."""

_PRODUCT_RULES: tuple[tuple[str, str], ...] = (
    (r"GB200", "GB200"),
    (r"(^|[^G])B200", "B200"),
    (r"H200", "H200"),
    (r"H100.*(SXM|HBM3)|H100-80GB$", "H100"),
    (r"A100.*80GB", "A100-80GB"),
    (r"A100.*40GB", "A100-40GB"),
    (r"V100.*32GB", "V100M32"),
    (r"V100", "V100"),
    (r"P100", "P100"),
    (r"(^|-)T4($|-)", "T4"),
    (r"(^|-)A10($|-)", "A10"),
)


def gpu_model_from_product(product: str) -> str | None:
    """Map a GPU-feature-discovery ``nvidia.com/gpu.product`` value onto the GPU table.

    E.g. ``NVIDIA-H100-80GB-HBM3`` -> ``H100``, ``NVIDIA-A100-SXM4-80GB`` -> ``A100-80GB``,
    ``Tesla-V100-SXM2-16GB`` -> ``V100``. Variants whose figures differ from the table's
    (``H100-PCIe``, ``H100-NVL``, ``A100`` without a memory size) return None.

    Returns:
        The canonical model name, or None when the product is not in the table.
    """
    key = product.strip().upper().replace("_", "-").replace(" ", "-")
    for pattern, model in _PRODUCT_RULES:
        if re.search(pattern, key):
            return model
    return None


@dataclass(frozen=True)
class KubernetesClusterSpec(ClusterSpec):
    """A :class:`ClusterSpec` read from Node objects, with their Kubernetes facts kept.

    Attributes:
        labels: every kept node's labels (same order as ``node_names``).
        taints: every kept node's taints (list of mappings with key, value, effect).
        topology: level name -> per-node domain value (``""`` when the node has no label for
            that level), outermost level first.
        topology_labels: level name -> the label keys that level reads.
        rack_level: the level whose domains are ``racks``.
        mig: per kept node, MIG profile -> allocatable devices (empty when none).
        report: counts of skipped or unusual nodes, e.g. ``{"skipped_cordoned": 2}``.
        notes: human-readable notes (unknown GPU models, MIG devices not modelled...).
    """

    labels: tuple[Mapping[str, str], ...] = ()
    taints: tuple[tuple[Mapping[str, str], ...], ...] = ()
    topology: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    topology_labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rack_level: str = "rack"
    mig: tuple[Mapping[str, int], ...] = ()
    report: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def domains(self, level: str) -> tuple[str, ...]:
        """Per-node domain of topology ``level`` (KeyError naming the known levels)."""
        if level not in self.topology:
            raise KeyError(f"unknown topology level {level!r}; levels: {list(self.topology)}")
        return self.topology[level]


def tolerates(tolerations: Sequence[Mapping], taint: Mapping) -> bool:
    """Whether any toleration tolerates ``taint`` (Kubernetes' ``ToleratesTaint`` rules).

    An empty key with ``Exists`` tolerates everything; an empty effect matches every effect;
    ``Equal`` (the default operator) needs the same value, ``Exists`` any value.
    """
    for t in tolerations:
        effect = t.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = t.get("key") or ""
        op = t.get("operator") or "Equal"
        if not key:
            if op == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if op == "Exists" or str(t.get("value") or "") == str(taint.get("value") or ""):
            return True
    return False


@dataclass
class _Node:
    name: str
    gpus: int
    model: str
    cpus: float
    memory_gb: float
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]
    mig: Mapping[str, int]


def nodes_from_manifests(
    manifests: Sequence[Manifest],
    source: str,
    *,
    gpu_resource: str = "nvidia.com/gpu",
    product_label: str = "nvidia.com/gpu.product",
    topology_levels: Mapping[str, Sequence[str]] | None = None,
    rack_level: str = "rack",
    tolerations: Sequence[Mapping] | None = None,
    skip_not_ready: bool = True,
    name: str | None = None,
) -> KubernetesClusterSpec:
    """Build the cluster from already-read objects (see :func:`load_nodes` for the rules).

    Raises:
        ManifestError: a Node with a malformed field (named), duplicate node names, or no
            schedulable node left.
        ValueError: ``rack_level`` is not one of ``topology_levels``.
    """
    levels = {k: tuple(v) for k, v in (topology_levels or DEFAULT_TOPOLOGY_LEVELS).items()}
    if rack_level not in levels:
        raise ValueError(
            f"cluster: rack_level {rack_level!r} is not a topology level; levels: {list(levels)}"
        )
    tol = [dict(t) for t in (DEFAULT_TOLERATIONS if tolerations is None else tolerations)]
    report: dict[str, int] = {}
    notes: list[str] = []
    kept: list[_Node] = []
    seen: dict[str, Manifest] = {}
    for m in manifests:
        if m.kind != "Node":
            _add(report, f"ignored_kind_{m.kind or '<none>'}")
            continue
        node = _read_node(m, gpu_resource, product_label)
        if node.name in seen:
            raise m.error(
                "metadata.name", f"duplicate node name {node.name!r} ({seen[node.name].where()})"
            )
        seen[node.name] = m
        why = _skip_reason(m, node, tol, skip_not_ready)
        if why:
            _add(report, f"skipped_{why}")
            continue
        kept.append(node)
    if not kept:
        raise ManifestError(f"{source}: no schedulable Node objects (report: {report})")
    _model_notes(kept, product_label, report, notes)
    _mig_notes(kept, report, notes)
    topo = {lvl: tuple(_label(n.labels, keys) for n in kept) for lvl, keys in levels.items()}
    racks = _racks(kept, topo, list(levels), rack_level, report)
    table = pd.DataFrame(
        {
            "node": [n.name for n in kept],
            "num_gpus": [n.gpus for n in kept],
            "gpu_type": [n.model for n in kept],
            "num_cpus": [n.cpus for n in kept],
            "memory_gb": [n.memory_gb for n in kept],
            "rack": racks,
        }
    )
    base = ClusterSpec.from_table(table, source=source, name=name or Path(source).stem)
    spec = KubernetesClusterSpec(
        **{f.name: getattr(base, f.name) for f in fields(ClusterSpec)},
        labels=tuple(MappingProxyType(dict(n.labels)) for n in kept),
        taints=tuple(n.taints for n in kept),
        topology=MappingProxyType(topo),
        topology_labels=MappingProxyType(levels),
        rack_level=rack_level,
        mig=tuple(MappingProxyType(dict(n.mig)) for n in kept),
        report=MappingProxyType(dict(sorted(report.items()))),
        notes=tuple(notes),
    )
    for note in notes:
        log.warning("%s: %s", source, note)
    return spec


def load_nodes(
    path: str | Path,
    *,
    gpu_resource: str = "nvidia.com/gpu",
    product_label: str = "nvidia.com/gpu.product",
    topology_levels: Mapping[str, Sequence[str]] | None = None,
    rack_level: str = "rack",
    tolerations: Sequence[Mapping] | None = None,
    skip_not_ready: bool = True,
    name: str | None = None,
    patches: Sequence[str] = (),
    add_nodes: Sequence[Mapping] = (),
) -> KubernetesClusterSpec:
    """Read ``kubectl get nodes -o json`` (or ``-o yaml``) output into a cluster.

    Args:
        path: the JSON/YAML file (a ``v1 List`` of Nodes, a single Node, or several documents).
        gpu_resource: the extended resource counted as GPUs.
        product_label: node label naming the GPU model.
        topology_levels: level name -> label keys (first present wins), outermost first;
            default :data:`DEFAULT_TOPOLOGY_LEVELS`.
        rack_level: the level mapped to the cluster's racks.
        tolerations: tolerations the workloads carry (Kubernetes toleration objects);
            default :data:`DEFAULT_TOLERATIONS`; ``[]`` = none.
        skip_not_ready: skip nodes whose ``Ready`` condition is present and not ``True``.
        name: cluster name (default: the file stem).
        patches: what-if edits ``Node/NAME:PATH=VALUE``, applied before reading (e.g.
            ``Node/dgx-01:spec.unschedulable=true``); see :mod:`simulator.k8s.patch`.
        add_nodes: what-if copies of nodes, ``[{like: NODE, count: N, name: ..., labels:
            {...}}]``, appended after the patches (:func:`simulator.k8s.patch.clone_nodes`).

    Returns:
        The cluster; ``report`` and ``notes`` say what was skipped or not understood.
    """
    if path is None or str(path) == "???":
        raise ValueError("cluster=kubernetes needs cluster.path=<kubectl get nodes -o json output>")
    manifests = clone_nodes(apply_patches(read_manifests(path), patches), add_nodes)
    return nodes_from_manifests(
        manifests,
        str(path),
        gpu_resource=gpu_resource,
        product_label=product_label,
        topology_levels=topology_levels,
        rack_level=rack_level,
        tolerations=tolerations,
        skip_not_ready=skip_not_ready,
        name=name,
    )


def _add(report: dict[str, int], key: str, n: int = 1) -> None:
    report[key] = report.get(key, 0) + n


def _label(labels: Mapping[str, str], keys: Sequence[str]) -> str:
    for k in keys:
        v = labels.get(k)
        if v not in (None, ""):
            return str(v)
    return ""


def _read_node(m: Manifest, gpu_resource: str, product_label: str) -> _Node:
    name = m.get("metadata.name", str)
    labels = m.get("metadata.labels", Mapping, default={})
    for k, v in labels.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise m.error(f"metadata.labels[{k}]", f"expected a string, got {v!r}")
    labels = {str(k): str(v) for k, v in labels.items()}
    alloc = m.get("status.allocatable", Mapping, default=None)
    if alloc is None:
        raise m.error(
            "status.allocatable",
            "required field is missing (is this `kubectl get nodes -o json` output?)",
        )
    gpus_q = m.quantity(f"status.allocatable[{gpu_resource}]", default=None)
    if gpus_q is not None and gpus_q.amount.denominator != 1:
        raise m.error(f"status.allocatable[{gpu_resource}]", "expected a whole number of GPUs")
    gpus = gpus_q.value() if gpus_q is not None else 0
    cpu_q = m.quantity("status.allocatable.cpu", default=None)
    mem_q = m.quantity("status.allocatable.memory", default=None)
    mig = {}
    for res in alloc:
        if str(res).startswith("nvidia.com/mig-"):
            q = m.quantity(f"status.allocatable[{res}]")
            if q.value() > 0:
                mig[str(res)[len("nvidia.com/mig-") :]] = q.value()
    taints = tuple(_taints(m))
    return _Node(
        name=name,
        gpus=int(gpus),
        model=str(labels.get(product_label, "")).strip(),
        cpus=cpu_q.milli_value() / 1000 if cpu_q is not None else 0.0,
        memory_gb=mem_q.value() / GIB if mem_q is not None else 0.0,
        labels=labels,
        taints=taints,
        mig=mig,
    )


def _taints(m: Manifest) -> list[Mapping[str, str]]:
    raw = m.get("spec.taints", list, default=[])
    out = []
    for i, t in enumerate(raw):
        if not isinstance(t, Mapping) or not t.get("key") and not t.get("effect"):
            raise m.error(f"spec.taints[{i}]", f"expected a taint with key and effect, got {t!r}")
        out.append({k: str(t.get(k) or "") for k in ("key", "value", "effect")})
    return out


def _skip_reason(m: Manifest, node: _Node, tol: list[dict], skip_not_ready: bool) -> str:
    unsched = m.get("spec.unschedulable", default=False)
    if not isinstance(unsched, bool):
        raise m.error("spec.unschedulable", f"expected true/false, got {unsched!r}")
    if unsched:
        return "cordoned"
    for t in node.taints:
        if t["effect"] in ("NoSchedule", "NoExecute") and not tolerates(tol, t):
            return "untolerated_taint"
    if skip_not_ready:
        for c in m.get("status.conditions", list, default=[]):
            if isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") != "True":
                return "not_ready"
    if node.cpus <= 0 or node.memory_gb <= 0:
        return "no_allocatable_cpu_or_memory"
    return ""


def _model_notes(kept: list[_Node], product_label: str, report: dict, notes: list) -> None:
    unknown: dict[str, int] = {}
    for n in kept:
        if n.gpus <= 0:
            n.model = ""
            continue
        if not n.model:
            _add(report, "gpu_nodes_without_product_label")
            n.model = "unknown"
            unknown["unknown"] = unknown.get("unknown", 0) + 1
            continue
        mapped = gpu_model_from_product(n.model)
        if mapped is None:
            unknown[n.model] = unknown.get(n.model, 0) + 1
        else:
            n.model = mapped
    if unknown:
        _add(report, "nodes_with_unknown_gpu_model", sum(unknown.values()))
        shown = ", ".join(f"{k} ({v} nodes)" for k, v in sorted(unknown.items()))
        notes.append(
            f"GPU models not in the GPU table keep their {product_label} name with unknown "
            f"specs: {shown}"
        )


def _mig_notes(kept: list[_Node], report: dict, notes: list) -> None:
    totals: dict[str, int] = {}
    for n in kept:
        for prof, cnt in n.mig.items():
            totals[prof] = totals.get(prof, 0) + cnt
    if totals:
        _add(report, "nodes_with_mig_devices", sum(1 for n in kept if n.mig))
        for prof, cnt in sorted(totals.items()):
            _add(report, f"mig_devices_{prof}", cnt)
        notes.append(
            "MIG devices are reported, not modelled (placement uses whole GPUs only): "
            + ", ".join(f"{p} x{c}" for p, c in sorted(totals.items()))
        )


def _racks(
    kept: list[_Node],
    topo: Mapping[str, tuple[str, ...]],
    order: list[str],
    rack_level: str,
    report: dict,
) -> list[str]:
    """Rack key of every node: its domain path down to the rack level.

    Rack names need not be unique across blocks or zones, hence the path. Nodes without a rack
    label keep the path of the outer levels they have (grouped with their block), or get a
    rack of their own.
    """
    upto = order[: order.index(rack_level) + 1]
    racks = []
    for i, n in enumerate(kept):
        path = "/".join(f"{lvl}={topo[lvl][i]}" for lvl in upto if topo[lvl][i])
        if topo[rack_level][i]:
            racks.append(path)
        elif path:
            _add(report, f"nodes_without_{rack_level}_label_grouped_by_outer_level")
            racks.append(path)
        else:
            _add(report, f"nodes_without_{rack_level}_label_alone")
            racks.append(f"node={n.name}")
    return racks
