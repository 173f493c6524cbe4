"""KAI Scheduler objects: ``Queue`` (``scheduling.run.ai/v2``) and ``PriorityClass``.

Units are KAI's own: GPU in devices (fractions allowed), CPU in millicores, memory in megabytes
(10**6 bytes) in the Queue spec. ``-1`` means unlimited for ``quota`` and ``limit``. As in
KAI's code, a field that is not set is 0: an unset ``limit`` allows *nothing* and an unset
``overQuotaWeight`` gets no over-quota share (both are noted, since users rarely mean it); a
queue without ``spec.priority`` has priority 100. ``parentQueue`` builds the tree; only leaf
queues hold jobs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simulator.k8s.manifests import Manifest, ManifestError, read_manifests
from simulator.k8s.patch import apply_patches

__all__ = [
    "DEFAULT_PRIORITY_CLASSES",
    "DEFAULT_QUEUE_PRIORITY",
    "KaiConfig",
    "KaiQueue",
    "RESOURCES",
    "ResourceQuota",
    "UNLIMITED",
    "load_kai_config",
    "parse_duration",
    "parse_kai_config",
]

UNLIMITED = -1.0
"""KAI's value for an unlimited quota or limit."""
RESOURCES = ("gpu", "cpu", "memory")
"""Resources of a queue, in the order used by share vectors."""
DEFAULT_QUEUE_PRIORITY = 100
DEFAULT_PRIORITY_CLASSES: Mapping[str, int] = {
    "train": 50,
    "build-preemptible": 75,
    "build": 100,
    "inference": 125,
}
"""PriorityClasses a KAI installation ships (docs/priority)."""
NON_PREEMPTIBLE_FROM = 100
"""Workloads with priority >= this are non-preemptible and limited to in-quota resources."""


@dataclass(frozen=True)
class ResourceQuota:
    """One resource of a queue, in KAI's units (GPUs, millicores, MB).

    Attributes:
        quota: deserved (guaranteed) amount; -1 = unlimited.
        over_quota_weight: weight in the split of the surplus within a priority level.
        limit: most the queue may hold; -1 = unlimited; 0 = nothing.
    """

    quota: float = 0.0
    over_quota_weight: float = 0.0
    limit: float = 0.0


@dataclass(frozen=True)
class KaiQueue:
    """A KAI queue.

    Attributes:
        name: ``metadata.name`` (the id jobs refer to).
        parent: ``spec.parentQueue`` ('' for a top-level queue).
        priority: ``spec.priority`` (default 100); higher gets the surplus first.
        resources: ``gpu``/``cpu``/``memory`` -> quota, weight, limit (memory in MB).
        preempt_min_runtime: seconds, or None when not set.
        reclaim_min_runtime: seconds, or None when not set.
        created: ``metadata.creationTimestamp`` ('' when absent): KAI's last tie-breaker.
    """

    name: str
    parent: str = ""
    priority: int = DEFAULT_QUEUE_PRIORITY
    resources: Mapping[str, ResourceQuota] = field(default_factory=dict)
    preempt_min_runtime: float | None = None
    reclaim_min_runtime: float | None = None
    created: str = ""

    def quota(self, resource: str) -> ResourceQuota:
        """The quota of ``resource`` (all zero when not configured)."""
        return self.resources.get(resource, ResourceQuota())


@dataclass(frozen=True)
class KaiConfig:
    """Queues and priority classes read from KAI objects.

    Attributes:
        queues: name -> queue, in file order.
        priority_classes: PriorityClass name -> value (KAI's defaults, overridden by the file).
        report: counts, e.g. ``{"ignored_kind_ConfigMap": 1, "unset_limit": 3}``.
        notes: human-readable notes about suspicious values.
    """

    queues: Mapping[str, KaiQueue]
    priority_classes: Mapping[str, int]
    report: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def children(self, name: str) -> list[str]:
        """Child queue names of ``name`` ('' = the top-level queues), in file order."""
        return [q.name for q in self.queues.values() if q.parent == name]

    def leaves(self) -> list[str]:
        """Queues without children (the ones jobs can be submitted to)."""
        parents = {q.parent for q in self.queues.values()}
        return [n for n in self.queues if n not in parents]

    def path(self, name: str) -> list[str]:
        """``name`` and its ancestors, leaf first."""
        out = []
        while name:
            out.append(name)
            name = self.queues[name].parent
        return out


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration string (``"10m"``, ``"1h30m"``, ``"20s"``, ``"0"``) in seconds.

    Raises:
        ValueError: not a Go duration.
    """
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(s) or not s:
        raise ValueError(f"not a duration: {text!r} (expected e.g. '30s', '10m', '1h30m')")
    return sign * total


def load_kai_config(path: str | Path, patches: Sequence[str] = ()) -> KaiConfig:
    """Read ``kubectl get queues.scheduling.run.ai,priorityclasses -o yaml`` output.

    ``patches``: what-if edits ``KIND/NAME:PATH=VALUE`` applied first
    (:mod:`simulator.k8s.patch`), e.g. ``Queue/research:spec.resources.gpu.quota=32``.

    Raises:
        ManifestError: malformed objects (named by document, object and field), unknown or
            cyclic parent queues, duplicate queue names, a patch that does not apply.
    """
    return parse_kai_config(apply_patches(read_manifests(path), patches), str(path))


def parse_kai_config(manifests: Sequence[Manifest], source: str = "kai config") -> KaiConfig:
    """Build the config from already-read objects (see :func:`load_kai_config`)."""
    report: dict[str, int] = {}
    notes: list[str] = []
    queues: dict[str, KaiQueue] = {}
    where: dict[str, Manifest] = {}
    classes = dict(DEFAULT_PRIORITY_CLASSES)
    for m in manifests:
        if m.kind == "Queue" and m.group == "scheduling.run.ai":
            if m.api_version != "scheduling.run.ai/v2":
                raise m.error(
                    "apiVersion",
                    f"only scheduling.run.ai/v2 Queues are read, got {m.api_version!r}",
                )
            q = _queue(m, report)
            if q.name in queues:
                raise m.error(
                    "metadata.name", f"duplicate queue {q.name!r} ({where[q.name].where()})"
                )
            queues[q.name] = q
            where[q.name] = m
        elif m.kind == "PriorityClass":
            value = m.get("value", int)
            classes[m.get("metadata.name", str)] = value
        else:
            key = f"ignored_kind_{m.kind or '<none>'}"
            report[key] = report.get(key, 0) + 1
    if not queues:
        raise ManifestError(f"{source}: no scheduling.run.ai/v2 Queue objects")
    for name, q in queues.items():
        if q.parent and q.parent not in queues:
            raise where[name].error("spec.parentQueue", f"unknown parent queue {q.parent!r}")
        seen = {name}
        p = q.parent
        while p:
            if p in seen:
                raise where[name].error(
                    "spec.parentQueue", f"queue parents form a cycle through {p!r}"
                )
            seen.add(p)
            p = queues[p].parent
    for key in ("unset_limit", "unset_over_quota_weight"):
        if report.get(key):
            what = (
                "limit (KAI reads 0: no resources)"
                if key == "unset_limit"
                else ("overQuotaWeight (KAI reads 0: no over-quota share)")
            )
            notes.append(f"{report[key]} queue resource(s) without {what}")
    return KaiConfig(queues=queues, priority_classes=classes, report=report, notes=tuple(notes))


def _queue(m: Manifest, report: dict[str, int]) -> KaiQueue:
    name = m.get("metadata.name", str)
    parent = m.get("spec.parentQueue", str, default="")
    priority = m.get("spec.priority", int, default=DEFAULT_QUEUE_PRIORITY)
    res_spec = m.get("spec.resources", Mapping, default={})
    resources = {}
    for r in RESOURCES:
        spec = res_spec.get(r)
        if spec is None:
            report["unset_limit"] = report.get("unset_limit", 0) + 1
            report["unset_over_quota_weight"] = report.get("unset_over_quota_weight", 0) + 1
            resources[r] = ResourceQuota()
            continue
        at = f"spec.resources.{r}"
        if not isinstance(spec, Mapping):
            raise m.error(at, f"expected a mapping, got {spec!r}")
        vals = {}
        for key in ("quota", "overQuotaWeight", "limit"):
            raw = spec.get(key)
            if raw is None:
                counter = (
                    "unset_limit"
                    if key == "limit"
                    else ("unset_over_quota_weight" if key == "overQuotaWeight" else "unset_quota")
                )
                report[counter] = report.get(counter, 0) + 1
                raw = 0
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
                raise m.error(f"{at}.{key}", f"expected a number, got {raw!r}")
            if key == "overQuotaWeight" and raw < 0:
                raise m.error(f"{at}.{key}", f"expected a weight >= 0, got {raw!r}")
            if key != "overQuotaWeight" and raw < 0 and raw != UNLIMITED:
                raise m.error(
                    f"{at}.{key}", f"expected a value >= 0 or -1 (unlimited), got {raw!r}"
                )
            vals[key] = float(raw)
        resources[r] = ResourceQuota(vals["quota"], vals["overQuotaWeight"], vals["limit"])
    runtimes = {}
    for key in ("preemptMinRuntime", "reclaimMinRuntime"):
        raw = m.get(f"spec.{key}", str, default=None)
        try:
            runtimes[key] = None if raw is None else parse_duration(raw)
        except ValueError as exc:
            raise m.error(f"spec.{key}", str(exc)) from None
    created = m.get("metadata.creationTimestamp", default="")
    return KaiQueue(
        name=name,
        parent=parent,
        priority=priority,
        resources=resources,
        preempt_min_runtime=runtimes["preemptMinRuntime"],
        reclaim_min_runtime=runtimes["reclaimMinRuntime"],
        created=str(created),
    )
