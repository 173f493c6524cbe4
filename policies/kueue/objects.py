"""Kueue objects (``kueue.x-k8s.io``) read from ``kubectl get ... -o yaml`` into a quota tree.

ClusterQueue (``cohort`` / ``cohortName``, ``queueingStrategy``, ``resourceGroups`` with
``coveredResources`` and ordered ``flavors`` whose ``resources`` have ``nominalQuota``,
``borrowingLimit``, ``lendingLimit``; ``preemption``; ``fairSharing.weight``;
``flavorFungibility``), Cohort (``parentName``, its own ``resourceGroups``), ResourceFlavor
(``nodeLabels``, ``nodeTaints``), LocalQueue (``clusterQueue``) and WorkloadPriorityClass
(``value``). Other kinds are ignored and counted. Amounts: CPU in millicores, others in base
units (bytes, devices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from policies.kueue.quota import Node, Preemption, QuotaTree
from simulator.k8s.manifests import Manifest, ManifestError, read_manifests
from simulator.k8s.patch import apply_patches

__all__ = ["ClusterQueueInfo", "KueueConfig", "load_kueue_config", "parse_kueue_config"]

_POLICIES = {
    "withinClusterQueue": ("Never", "LowerPriority", "LowerOrNewerEqualPriority"),
    "reclaimWithinCohort": ("Never", "LowerPriority", "Any"),
}


@dataclass(frozen=True)
class ClusterQueueInfo:
    """The parts of a ClusterQueue that are not quota (those live in the tree's nodes).

    Attributes:
        name: ClusterQueue name.
        queueing_strategy: ``BestEffortFIFO`` (default) or ``StrictFIFO``.
        resource_groups: per group, (covered resources, ordered flavor names).
        fair_weight: ``fairSharing.weight`` (default 1).
        when_can_borrow: flavorFungibility (default ``MayStopSearch``).
        when_can_preempt: flavorFungibility (default ``TryNextFlavor``).
        preference: flavorFungibility ``preference`` (default ``BorrowingOverPreemption``).
    """

    name: str
    queueing_strategy: str = "BestEffortFIFO"
    resource_groups: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    fair_weight: float = 1.0
    when_can_borrow: str = "MayStopSearch"
    when_can_preempt: str = "TryNextFlavor"
    preference: str = "BorrowingOverPreemption"


@dataclass
class KueueConfig:
    """Everything read from Kueue objects.

    Attributes:
        nodes: ClusterQueue and Cohort quota nodes (build a :class:`QuotaTree` per run).
        cluster_queues: name -> non-quota settings.
        flavors: ResourceFlavor name -> (nodeLabels, nodeTaints).
        local_queues: ``namespace/name`` and ``name`` -> ClusterQueue.
        priority_classes: WorkloadPriorityClass name -> value.
        report: counts of ignored kinds.
    """

    nodes: list[Node] = field(default_factory=list)
    cluster_queues: dict[str, ClusterQueueInfo] = field(default_factory=dict)
    flavors: dict[str, tuple[Mapping[str, str], tuple[Mapping, ...]]] = field(default_factory=dict)
    local_queues: dict[str, str] = field(default_factory=dict)
    priority_classes: dict[str, int] = field(default_factory=dict)
    report: dict[str, int] = field(default_factory=dict)

    def tree(self) -> QuotaTree:
        """A fresh quota tree (no usage)."""
        return QuotaTree(
            Node(
                n.name,
                n.is_cq,
                n.parent,
                dict(n.nominal),
                dict(n.borrowing_limit),
                dict(n.lending_limit),
                n.preemption,
            )
            for n in self.nodes
        )


def load_kueue_config(path: str | Path, patches: Sequence[str] = ()) -> KueueConfig:
    """Read ``kubectl get clusterqueues,cohorts,resourceflavors,localqueues,... -o yaml``.

    ``patches``: what-if edits ``KIND/NAME:PATH=VALUE`` applied first
    (:mod:`simulator.k8s.patch`).
    """
    return parse_kueue_config(apply_patches(read_manifests(path), patches), str(path))


def parse_kueue_config(manifests: Sequence[Manifest], source: str = "kueue config") -> KueueConfig:
    """Build the config from already-read objects (errors name document, object and field)."""
    cfg = KueueConfig()
    for m in manifests:
        if m.group != "kueue.x-k8s.io" and m.kind != "WorkloadPriorityClass":
            cfg.report[f"ignored_kind_{m.kind or '<none>'}"] = (
                cfg.report.get(f"ignored_kind_{m.kind or '<none>'}", 0) + 1
            )
            continue
        if m.kind == "ClusterQueue":
            _cluster_queue(m, cfg)
        elif m.kind == "Cohort":
            node = Node(
                m.get("metadata.name", str),
                is_cq=False,
                parent=m.get("spec.parentName", str, default=""),
            )
            _groups(m, node, None)
            cfg.nodes.append(node)
        elif m.kind == "ResourceFlavor":
            labels = m.get("spec.nodeLabels", Mapping, default={})
            taints = tuple(m.get("spec.nodeTaints", list, default=[]))
            cfg.flavors[m.get("metadata.name", str)] = (
                {str(k): str(v) for k, v in labels.items()},
                taints,
            )
        elif m.kind == "LocalQueue":
            cq = m.get("spec.clusterQueue", str)
            name = m.get("metadata.name", str)
            cfg.local_queues[f"{m.namespace}/{name}"] = cq
            cfg.local_queues.setdefault(name, cq)
        elif m.kind == "WorkloadPriorityClass":
            cfg.priority_classes[m.get("metadata.name", str)] = m.get("value", int)
        else:
            cfg.report[f"ignored_kind_{m.kind}"] = cfg.report.get(f"ignored_kind_{m.kind}", 0) + 1
    if not cfg.cluster_queues:
        raise ManifestError(f"{source}: no ClusterQueue objects")
    names = [n.name for n in cfg.nodes]
    if len(set(names)) != len(names):
        raise ManifestError(f"{source}: a ClusterQueue and a Cohort (or two objects) share a name")
    for info in cfg.cluster_queues.values():
        for _, flavors in info.resource_groups:
            for fl in flavors:
                if fl not in cfg.flavors:
                    cfg.report["flavors_without_resourceflavor"] = (
                        cfg.report.get("flavors_without_resourceflavor", 0) + 1
                    )
    for lq, cq in cfg.local_queues.items():
        if cq not in cfg.cluster_queues:
            raise ManifestError(f"{source}: LocalQueue {lq} points to unknown ClusterQueue {cq!r}")
    return cfg


def _cluster_queue(m: Manifest, cfg: KueueConfig) -> None:
    name = m.get("metadata.name", str)
    parent = m.get("spec.cohortName", str, default="") or m.get("spec.cohort", str, default="")
    node = Node(name, parent=parent)
    groups: list = []
    _groups(m, node, groups)
    p = m.get("spec.preemption", Mapping, default={})
    values = {}
    for key, allowed in _POLICIES.items():
        v = p.get(key, "Never")
        if v not in allowed:
            raise m.error(f"spec.preemption.{key}", f"expected one of {list(allowed)}, got {v!r}")
        values[key] = v
    bwc = p.get("borrowWithinCohort") or {}
    policy = bwc.get("policy", "Never") if isinstance(bwc, Mapping) else None
    if policy not in ("Never", "LowerPriority"):
        raise m.error(
            "spec.preemption.borrowWithinCohort.policy",
            f"expected Never or LowerPriority, got {policy!r}",
        )
    node.preemption = Preemption(
        values["withinClusterQueue"],
        values["reclaimWithinCohort"],
        policy,
        bwc.get("maxPriorityThreshold"),
    )
    strategy = m.get("spec.queueingStrategy", str, default="BestEffortFIFO")
    if strategy not in ("BestEffortFIFO", "StrictFIFO"):
        raise m.error(
            "spec.queueingStrategy", f"expected BestEffortFIFO or StrictFIFO, got {strategy!r}"
        )
    fung = m.get("spec.flavorFungibility", Mapping, default={})
    cfg.cluster_queues[name] = ClusterQueueInfo(
        name,
        strategy,
        tuple(groups),
        float(m.get("spec.fairSharing.weight", (int, float, str), default=1)),
        str(fung.get("whenCanBorrow", "MayStopSearch")),
        str(fung.get("whenCanPreempt", "TryNextFlavor")),
        _preference(m, fung),
    )
    cfg.nodes.append(node)


def _preference(m: Manifest, fung: Mapping) -> str:
    pref = fung.get("preference", "BorrowingOverPreemption")
    if pref not in ("BorrowingOverPreemption", "PreemptionOverBorrowing"):
        raise m.error(
            "spec.flavorFungibility.preference",
            f"expected BorrowingOverPreemption or PreemptionOverBorrowing, got {pref!r}",
        )
    return str(pref)


def _groups(m: Manifest, node: Node, out: list | None) -> None:
    for g, group in enumerate(m.get("spec.resourceGroups", list, default=[])):
        at = f"spec.resourceGroups[{g}]"
        if not isinstance(group, Mapping):
            raise m.error(at, f"expected a mapping, got {group!r}")
        covered = tuple(str(r) for r in group.get("coveredResources") or [])
        if not covered:
            raise m.error(f"{at}.coveredResources", "expected a non-empty list of resources")
        flavors = []
        for f, fl in enumerate(group.get("flavors") or []):
            fat = f"{at}.flavors[{f}]"
            fname = fl.get("name") if isinstance(fl, Mapping) else None
            if not fname:
                raise m.error(f"{fat}.name", "required field is missing")
            flavors.append(str(fname))
            for r, res in enumerate(fl.get("resources") or []):
                rat = f"{fat}.resources[{r}]"
                rname = res.get("name") if isinstance(res, Mapping) else None
                if rname not in covered:
                    raise m.error(
                        f"{rat}.name",
                        f"resource {rname!r} is not in coveredResources {list(covered)}",
                    )
                for key, target in (
                    ("nominalQuota", node.nominal),
                    ("borrowingLimit", node.borrowing_limit),
                    ("lendingLimit", node.lending_limit),
                ):
                    q = _q(m, res.get(key), f"{rat}.{key}")
                    if q is None:
                        if key == "nominalQuota":
                            raise m.error(f"{rat}.nominalQuota", "required quantity is missing")
                        continue
                    target[(str(fname), str(rname))] = (
                        q.milli_value() if rname == "cpu" else q.value()
                    )
        if out is not None:
            out.append((covered, tuple(flavors)))


def _q(m: Manifest, raw: object, at: str):
    from simulator.k8s.quantity import QuantityError, quantity_from_value

    if raw is None:
        return None
    try:
        q = quantity_from_value(raw)
    except QuantityError as exc:
        raise m.error(at, str(exc)) from None
    if q.amount < 0:
        raise m.error(at, f"quantity {raw!r} is negative")
    return q
