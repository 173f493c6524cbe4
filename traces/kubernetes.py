"""Kubernetes workload manifests (Job, PyTorchJob, JobSet, Pods with a PodGroup) as a trace.

The file is what ``kubectl get jobs,pytorchjobs,jobsets,pods,podgroups -o yaml`` prints (a
``v1 List``) or any multi-document YAML/JSON of such objects. One workload = one job (a gang of
pods); its columns:

* ``job_id`` = ``<namespace>/<name>`` (namespace ``default`` when absent);
* ``submit_time`` = ``metadata.creationTimestamp`` minus the earliest one in the file, seconds;
* ``duration`` = annotation ``gpusim/duration`` (seconds at full speed; on the workload, else on
  its pod template);
* ``pods``, ``gpus_per_pod``; ``num_gpus = pods * gpus_per_pod``; ``num_cpus``/``memory_gb`` are
  the job totals (per-pod values in ``cpus_per_pod``/``memory_gb_per_pod``). A pod's request is
  Kubernetes' effective request: the sum over its containers (a container without ``requests``
  uses its ``limits``), or the largest init container if that is larger. GPUs are
  ``nvidia.com/gpu``; KAI's ``gpu-fraction`` annotation (e.g. ``"0.5"``) makes a single-pod job
  on a share of one GPU (``gpu_milli``);
* ``queue``: the first of the ``queue_labels`` found on the workload, then on its pod template
  (default: KAI's ``kai.scheduler/queue``, Kueue's ``kueue.x-k8s.io/queue-name``);
* ``priority_class`` (extra column): ``priorityClassName`` of the pod template, or KAI's
  ``priorityClassName`` label, or Kueue's ``kueue.x-k8s.io/priority-class`` label, or the
  PyTorchJob's ``runPolicy.schedulingPolicy.priorityClass``; ``priority`` is its value from the
  PriorityClass objects in the file, else from ``priority_classes`` (default: KAI's classes);
  an explicit pod ``spec.priority`` wins;
* ``gpu_type``: a ``nvidia.com/gpu.product`` node selector or required node-affinity term,
  mapped onto the GPU table (several values = ``A|B``);
* topology (extra columns ``topology_required``/``topology_preferred``): KAI's
  ``kai.scheduler/topology-{required,preferred}-placement`` or Kueue's
  ``kueue.x-k8s.io/podset-{required,preferred}-topology`` annotations (label keys);
* ``min_member`` (extra): the gang size the scheduler must place at once (PodGroup
  ``minMember``, PyTorchJob ``schedulingPolicy.minAvailable``, else all pods);
* ``workload_kind`` (extra): ``Job``, ``PyTorchJob``, ``JobSet`` or ``PodGroup``.

Pods that name a group (``pod-group-name`` annotation of KAI, ``scheduling.x-k8s.io/pod-group``
label of the coscheduling plugin, ``kueue.x-k8s.io/pod-group-name`` label of Kueue) form one job
with their PodGroup object (which gives ``minMember`` and may carry the annotations); a Pod
without a group is a one-pod job. PriorityClass objects are used; other kinds are ignored and
counted (``ignored_kind_<Kind>``); PriorityClass and Kueue WorkloadPriorityClass objects give
priority values. A workload whose replica types ask different per-pod
resources (e.g. a CPU-only launcher and GPU workers) cannot be one pod shape: it is an error, or
dropped and counted (``dropped_mixed_pod_shapes``) with ``mixed_pod_shapes=drop``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pandas as pd

from simulator.k8s.manifests import Manifest, ManifestError, read_manifests
from simulator.k8s.nodes import gpu_model_from_product
from simulator.k8s.quantity import QuantityError, quantity_from_value
from traces.canonical import Trace, TraceError, finish, validate

__all__ = ["DURATION_ANNOTATION", "KAI_PRIORITY_CLASSES", "load", "read", "workloads_frame"]

DURATION_ANNOTATION = "gpusim/duration"
"""Annotation giving the simulated run time of a workload, seconds at full speed."""

KAI_PRIORITY_CLASSES: Mapping[str, int] = {
    "train": 50,
    "build-preemptible": 75,
    "build": 100,
    "inference": 125,
}
"""PriorityClasses a KAI Scheduler installation ships (docs/priority)."""

QUEUE_LABELS = ("kai.scheduler/queue", "kueue.x-k8s.io/queue-name")
GPU_FRACTION = "gpu-fraction"
GPU_PRODUCT = "nvidia.com/gpu.product"
_GROUP_KEYS = ("pod-group-name", "scheduling.x-k8s.io/pod-group", "kueue.x-k8s.io/pod-group-name")
_TOPOLOGY = {
    "topology_required": (
        "kai.scheduler/topology-required-placement",
        "kueue.x-k8s.io/podset-required-topology",
    ),
    "topology_preferred": (
        "kai.scheduler/topology-preferred-placement",
        "kueue.x-k8s.io/podset-preferred-topology",
    ),
}
_WORKLOAD_KINDS = {
    ("batch", "Job"),
    ("kubeflow.org", "PyTorchJob"),
    ("jobset.x-k8s.io", "JobSet"),
    ("", "Pod"),
}
_PODGROUP_GROUPS = ("scheduling.x-k8s.io", "scheduling.run.ai", "scheduling.sigs.k8s.io")


@dataclass
class _PodShape:
    """Per-pod request of one replica type: GPUs, milli-GPU, CPU cores, GiB."""

    count: int
    gpus: int
    milli: int
    cpus: Fraction
    mem: Fraction
    where: str


@dataclass
class _Workload:
    m: Manifest
    kind: str
    shapes: list[_PodShape] = field(default_factory=list)
    templates: list[tuple[Mapping, str]] = field(default_factory=list)
    min_member: int | None = None
    priority_class_hint: str = ""


def read(
    path: str | Path,
    *,
    queue_labels: Sequence[str] = QUEUE_LABELS,
    priority_classes: Mapping[str, int] | None = None,
    mixed_pod_shapes: str = "error",
) -> Trace:
    """Read a workloads file in full (see the module docstring for the columns).

    Raises:
        TraceError: unreadable file, no workload, or a malformed manifest (the message names the
            document, the object and the field).
    """
    if path is None or str(path) == "???":
        raise ValueError("trace=kubernetes needs trace.path=<workloads .yaml or .json>")
    try:
        manifests = read_manifests(path)
        jobs, report = workloads_frame(
            manifests,
            str(path),
            queue_labels=queue_labels,
            priority_classes=priority_classes,
            mixed_pod_shapes=mixed_pod_shapes,
        )
    except ManifestError as exc:
        raise TraceError(str(exc)) from None
    return Trace(jobs=jobs, source=str(path), report=report)


def load(
    path: str | Path | None = None,
    *,
    queue_labels: Sequence[str] = QUEUE_LABELS,
    priority_classes: Mapping[str, int] | None = None,
    mixed_pod_shapes: str = "error",
    start: float | None = None,
    end: float | None = None,
    rebase: bool = True,
    sample_frac: float | None = None,
    max_jobs: int | None = None,
    time_scale: float = 1.0,
    queues: Iterable[str] | str | None = None,
    min_gpus: int | None = None,
    max_gpus: int | None = None,
    seed: int = 0,
) -> Trace:
    """Load Kubernetes workload manifests as a trace and apply the common trace options.

    Args:
        path: the YAML/JSON file (required).
        queue_labels: labels naming the queue, first found wins.
        priority_classes: PriorityClass name -> value, used when the file holds no
            PriorityClass of that name (default: KAI's train 50, build-preemptible 75,
            build 100, inference 125).
        mixed_pod_shapes: ``error`` or ``drop`` (counted) for workloads whose replica types ask
            different per-pod resources.
        start: see :func:`traces.canonical.apply_options` (seconds from the earliest workload).
        end: see :func:`traces.canonical.apply_options`.
        rebase: see :func:`traces.canonical.apply_options`.
        sample_frac: see :func:`traces.canonical.apply_options`.
        max_jobs: see :func:`traces.canonical.apply_options`.
        time_scale: see :func:`traces.canonical.apply_options`.
        queues: see :func:`traces.canonical.apply_options`.
        min_gpus: see :func:`traces.canonical.apply_options`.
        max_gpus: see :func:`traces.canonical.apply_options`.
        seed: see :func:`traces.canonical.apply_options`.

    Returns:
        The trace.
    """
    trace = read(
        path,
        queue_labels=queue_labels,
        priority_classes=priority_classes,
        mixed_pod_shapes=mixed_pod_shapes,
    )
    return finish(
        trace,
        start=start,
        end=end,
        rebase=rebase,
        sample_frac=sample_frac,
        max_jobs=max_jobs,
        time_scale=time_scale,
        queues=queues,
        min_gpus=min_gpus,
        max_gpus=max_gpus,
        seed=seed,
    )


def workloads_frame(
    manifests: Sequence[Manifest],
    source: str,
    *,
    queue_labels: Sequence[str] = QUEUE_LABELS,
    priority_classes: Mapping[str, int] | None = None,
    mixed_pod_shapes: str = "error",
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The canonical job table of already-read manifests, and the report of what was skipped.

    Raises:
        ManifestError: a malformed manifest, or no workload at all.
    """
    if mixed_pod_shapes not in ("error", "drop"):
        raise ValueError(
            f"trace option mixed_pod_shapes must be error or drop, got {mixed_pod_shapes!r}"
        )
    report: dict[str, int] = {}
    classes = dict(KAI_PRIORITY_CLASSES if priority_classes is None else priority_classes)
    workloads: list[_Workload] = []
    groups: dict[tuple[str, str], _Workload] = {}
    grouped_pods: list[tuple[tuple[str, str], Manifest]] = []
    for m in manifests:
        if m.kind in ("PriorityClass", "WorkloadPriorityClass"):
            classes[m.get("metadata.name", str)] = int(m.get("value", int))
        elif m.kind == "PodGroup" and m.group in _PODGROUP_GROUPS:
            w = _Workload(m, "PodGroup", min_member=_min_member(m))
            groups[(m.namespace, m.get("metadata.name", str))] = w
            workloads.append(w)
        elif (m.group, m.kind) in _WORKLOAD_KINDS:
            if m.kind == "Pod" and _group_of(m):
                grouped_pods.append(((m.namespace, _group_of(m)), m))
                continue
            workloads.append(_read_workload(m))
        else:
            _add(report, f"ignored_kind_{m.kind or '<none>'}")
    for key, pod in grouped_pods:
        w = groups.get(key)
        if w is None:
            raise pod.error(
                "metadata",
                f"pod names group {key[1]!r} but the file has no PodGroup {key[0]}/{key[1]}",
            )
        w.shapes.append(_pod_shape(pod, pod.get("spec", Mapping), "spec", 1))
        w.templates.append((pod.obj, "metadata"))
    rows = []
    for w in workloads:
        row = _row(w, classes, queue_labels, report, mixed_pod_shapes)
        if row is not None:
            rows.append(row)
    if not rows:
        raise ManifestError(f"{source}: no workloads (Job, PyTorchJob, JobSet, Pod) in the file")
    frame = pd.DataFrame(rows)
    t0 = frame["created"].min()
    frame["submit_time"] = [(t - t0).total_seconds() for t in frame["created"]]
    frame = frame.drop(columns="created")
    return validate(frame, source), report


def _add(report: dict[str, int], key: str, n: int = 1) -> None:
    report[key] = report.get(key, 0) + n


def _group_of(m: Manifest) -> str:
    ann = m.get("metadata.annotations", Mapping, default={})
    labels = m.get("metadata.labels", Mapping, default={})
    for key in _GROUP_KEYS:
        value = ann.get(key) or labels.get(key)
        if value:
            return str(value)
    return ""


def _min_member(m: Manifest) -> int | None:
    v = m.get("spec.minMember", int, default=None)
    if v is not None and v < 1:
        raise m.error("spec.minMember", f"expected an integer >= 1, got {v}")
    return v


def _read_workload(m: Manifest) -> _Workload:
    w = _Workload(m, m.kind)
    if m.kind == "Job":
        _job_template(w, m.obj.get("spec"), "spec", 1)
    elif m.kind == "JobSet":
        rjs = m.get("spec.replicatedJobs", list)
        if not rjs:
            raise m.error("spec.replicatedJobs", "expected at least one replicated job")
        for i, rj in enumerate(rjs):
            at = f"spec.replicatedJobs[{i}]"
            if not isinstance(rj, Mapping):
                raise m.error(at, f"expected a mapping, got {rj!r}")
            reps = _count(m, rj.get("replicas", 1), f"{at}.replicas")
            _job_template(
                w,
                _mapping(m, rj.get("template"), f"{at}.template").get("spec"),
                f"{at}.template.spec",
                reps,
            )
    elif m.kind == "PyTorchJob":
        specs = m.get("spec.pytorchReplicaSpecs", Mapping)
        for rtype in sorted(specs):
            at = f"spec.pytorchReplicaSpecs.{rtype}"
            rs = _mapping(m, specs[rtype], at)
            reps = _count(m, rs.get("replicas", 1), f"{at}.replicas")
            tpl = _mapping(m, rs.get("template"), f"{at}.template")
            w.shapes.append(
                _pod_shape(
                    m,
                    _mapping(m, tpl.get("spec"), f"{at}.template.spec"),
                    f"{at}.template.spec",
                    reps,
                )
            )
            w.templates.append((tpl, f"{at}.template.metadata"))
        w.min_member = m.get("spec.runPolicy.schedulingPolicy.minAvailable", int, default=None)
        w.priority_class_hint = m.get(
            "spec.runPolicy.schedulingPolicy.priorityClass", str, default=""
        )
    else:  # a bare Pod without a group
        w.shapes.append(_pod_shape(m, m.get("spec", Mapping), "spec", 1))
        w.templates.append((m.obj, "metadata"))
    return w


def _mapping(m: Manifest, value: object, at: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise m.error(
            at,
            "required mapping is missing"
            if value is None
            else f"expected a mapping, got {value!r}",
        )
    return value


def _count(m: Manifest, value: object, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise m.error(at, f"expected an integer >= 0, got {value!r}")
    return value


def _job_template(w: _Workload, spec: object, at: str, replicas: int) -> None:
    m = w.m
    spec = _mapping(m, spec, at)
    par = _count(m, spec.get("parallelism", 1), f"{at}.parallelism")
    if "completions" in spec and spec["completions"] is not None:
        par = min(par, _count(m, spec["completions"], f"{at}.completions"))
    tpl = _mapping(m, spec.get("template"), f"{at}.template")
    pod = _mapping(m, tpl.get("spec"), f"{at}.template.spec")
    w.shapes.append(_pod_shape(m, pod, f"{at}.template.spec", replicas * par))
    w.templates.append((tpl, f"{at}.template.metadata"))


def _pod_shape(m: Manifest, pod: Mapping, at: str, count: int) -> _PodShape:
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        raise m.error(f"{at}.containers", "expected a non-empty list of containers")
    total = {"gpu": Fraction(0), "cpu": Fraction(0), "mem": Fraction(0)}
    peak_init = dict(total)
    for kind in ("containers", "initContainers"):
        for i, c in enumerate(pod.get(kind) or []):
            req = _container_request(m, c, f"{at}.{kind}[{i}]")
            sidecar = (
                kind == "initContainers"
                and isinstance(c, Mapping)
                and c.get("restartPolicy") == "Always"
            )
            target = total if kind == "containers" or sidecar else None
            for r, v in req.items():
                if target is not None:
                    target[r] += v
                else:
                    peak_init[r] = max(peak_init[r], v)
    eff = {r: max(total[r], peak_init[r]) for r in total}
    if eff["gpu"].denominator != 1:
        raise m.error(
            f"{at}.containers", f"nvidia.com/gpu must be a whole number, got {float(eff['gpu'])}"
        )
    return _PodShape(
        count, int(eff["gpu"]), 1000 if eff["gpu"] else 0, eff["cpu"], eff["mem"] / 2**30, f"{at}"
    )


def _container_request(m: Manifest, c: object, at: str) -> dict[str, Fraction]:
    if not isinstance(c, Mapping):
        raise m.error(at, f"expected a container mapping, got {c!r}")
    res = c.get("resources") or {}
    if not isinstance(res, Mapping):
        raise m.error(f"{at}.resources", f"expected a mapping, got {res!r}")
    out = {}
    for name, key, scale in (
        ("gpu", "nvidia.com/gpu", "value"),
        ("cpu", "cpu", "milli"),
        ("mem", "memory", "value"),
    ):
        raw, where = None, None
        for part in ("requests", "limits"):
            block = res.get(part) or {}
            if not isinstance(block, Mapping):
                raise m.error(f"{at}.resources.{part}", f"expected a mapping, got {block!r}")
            if block.get(key) is not None:
                raw, where = block[key], f"{at}.resources.{part}[{key}]"
                break
        if raw is None:
            out[name] = Fraction(0)
            continue
        try:
            q = quantity_from_value(raw)
        except QuantityError as exc:
            raise m.error(where, str(exc)) from None
        if q.amount < 0:
            raise m.error(where, f"quantity {raw!r} is negative")
        if name == "gpu" and q.amount.denominator != 1:
            raise m.error(where, f"nvidia.com/gpu must be a whole number, got {raw!r}")
        out[name] = Fraction(q.milli_value(), 1000) if scale == "milli" else Fraction(q.value())
    return out


def _merged(w: _Workload, key: str) -> dict[str, str]:
    """Labels or annotations: the pod templates' first, the workload's own win."""
    out: dict[str, str] = {}
    for tpl, _ in w.templates:
        meta = tpl.get("metadata") if "metadata" in tpl else None
        src = (meta or {}).get(key) if isinstance(meta, Mapping) else None
        if isinstance(src, Mapping):
            out.update({str(k): str(v) for k, v in src.items()})
    own = w.m.get(f"metadata.{key}", Mapping, default={})
    out.update({str(k): str(v) for k, v in own.items()})
    return out


def _row(
    w: _Workload, classes: Mapping[str, int], queue_labels: Sequence[str], report: dict, mixed: str
) -> dict | None:
    m = w.m
    name = m.get("metadata.name", str)
    ns = m.namespace
    created = _timestamp(m)
    ann = _merged(w, "annotations")
    labels = _merged(w, "labels")
    if not w.shapes:
        raise m.error("metadata.name", "PodGroup has no pods in the file")
    shapes = [s for s in w.shapes if s.count > 0]
    pods = sum(s.count for s in shapes)
    if pods == 0:
        raise m.error(w.shapes[0].where, "the workload has no pods (replicas/parallelism are 0)")
    first = shapes[0]
    for s in shapes[1:]:
        if (s.gpus, s.cpus, s.mem) != (first.gpus, first.cpus, first.mem):
            if mixed == "drop":
                _add(report, "dropped_mixed_pod_shapes")
                return None
            raise m.error(
                s.where,
                f"per-pod request ({_shape_words(s)}) differs from {first.where} "
                f"({_shape_words(first)}): a job has one pod shape "
                "(mixed_pod_shapes=drop skips such workloads)",
            )
    gpus, milli = first.gpus, first.milli
    if GPU_FRACTION in ann:
        gpus, milli = _fraction(m, ann[GPU_FRACTION], gpus, pods)
    for unsupported in ("gpu-memory", "gpu-fraction-num-devices"):
        if unsupported in ann:
            raise m.error(
                f"metadata.annotations[{unsupported}]",
                "KAI GPU-memory requests are not modelled; use gpu-fraction",
            )
    duration = _duration(m, ann)
    pclass, priority = _priority(w, labels, classes, report)
    queue = next((labels[k] for k in queue_labels if labels.get(k)), "")
    if not queue:
        _add(report, "no_queue_label")
    min_member = w.min_member if w.min_member is not None else pods
    if not 1 <= min_member <= pods:
        raise m.error("spec", f"gang minimum {min_member} is outside 1..{pods} pods")
    row = {
        "job_id": f"{ns}/{name}",
        "created": created,
        "duration": duration,
        "num_gpus": pods * gpus,
        "gpu_milli": milli if gpus else 0,
        "gpu_type": _gpu_type(w),
        "num_cpus": float(first.cpus * pods),
        "memory_gb": float(first.mem * pods),
        "kind": "infer" if pclass == "inference" else "train",
        "queue": queue or "default",
        "priority": priority,
        "pods": pods,
        "gpus_per_pod": gpus,
        "cpus_per_pod": float(first.cpus),
        "memory_gb_per_pod": float(first.mem),
        "priority_class": pclass,
        "min_member": min_member,
        "workload_kind": w.kind,
        "namespace": ns,
    }
    for col, keys in _TOPOLOGY.items():
        row[col] = next((ann[k] for k in keys if ann.get(k)), "")
    return row


def _shape_words(s: _PodShape) -> str:
    return f"{s.gpus} GPUs, {float(s.cpus):g} CPUs, {float(s.mem):.6g} GiB"


def _timestamp(m: Manifest) -> datetime:
    raw = m.get("metadata.creationTimestamp", (str, datetime), default=None)
    if raw is None:
        raise m.error(
            "metadata.creationTimestamp",
            "required field is missing (the submit time is read from it)",
        )
    if isinstance(raw, datetime):
        stamp = raw
    else:
        try:
            stamp = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise m.error(
                "metadata.creationTimestamp",
                f"expected an RFC 3339 time such as 2025-06-01T08:00:00Z, got {raw!r}",
            ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _duration(m: Manifest, ann: Mapping[str, str]) -> float:
    raw = ann.get(DURATION_ANNOTATION)
    at = f"metadata.annotations[{DURATION_ANNOTATION}]"
    if raw is None:
        raise m.error(at, "required annotation is missing (simulated run time in seconds)")
    try:
        value = float(raw)
    except ValueError:
        raise m.error(at, f"expected seconds (a number), got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise m.error(at, f"expected a duration > 0 s, got {raw!r}")
    return value


def _fraction(m: Manifest, raw: str, gpus: int, pods: int) -> tuple[int, int]:
    at = f"metadata.annotations[{GPU_FRACTION}]"
    try:
        frac = Fraction(raw.strip())
    except (ValueError, ZeroDivisionError):
        raise m.error(at, f"expected a fraction of one GPU such as 0.5, got {raw!r}") from None
    if not 0 < frac <= 1:
        raise m.error(at, f"expected a fraction in (0, 1], got {raw!r}")
    if gpus:
        raise m.error(at, "a pod with gpu-fraction must not also request nvidia.com/gpu")
    if pods != 1:
        raise m.error(
            at,
            f"GPU fractions are modelled for single-pod workloads only, this one has {pods} pods",
        )
    milli = frac * 1000
    if milli.denominator != 1:
        raise m.error(at, f"{raw!r} is not a whole number of milli-GPU")
    return 1, int(milli)


def _priority(
    w: _Workload, labels: Mapping[str, str], classes: Mapping[str, int], report: dict
) -> tuple[str, int]:
    pclass = ""
    explicit = None
    for tpl, _ in w.templates:
        spec = tpl.get("spec") if "spec" in tpl else None
        if isinstance(spec, Mapping):
            pclass = pclass or str(spec.get("priorityClassName") or "")
            if isinstance(spec.get("priority"), int) and not isinstance(spec.get("priority"), bool):
                explicit = spec["priority"]
    pclass = (
        pclass
        or labels.get("priorityClassName", "")
        or labels.get("kueue.x-k8s.io/priority-class", "")
    )
    pclass = pclass or w.priority_class_hint
    if explicit is not None:
        return pclass, int(explicit)
    if not pclass:
        return "", 0
    if pclass not in classes:
        _add(report, "unresolved_priority_class")
        return pclass, 0
    return pclass, int(classes[pclass])


def _gpu_type(w: _Workload) -> str:
    values: list[str] = []
    for tpl, _ in w.templates:
        spec = tpl.get("spec") if "spec" in tpl else None
        if not isinstance(spec, Mapping):
            continue
        sel = spec.get("nodeSelector") or {}
        if isinstance(sel, Mapping) and sel.get(GPU_PRODUCT):
            values.append(str(sel[GPU_PRODUCT]))
        terms = (
            ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
            or {}
        ).get("nodeSelectorTerms") or []
        for term in terms:
            for e in (term or {}).get("matchExpressions") or []:
                if e.get("key") == GPU_PRODUCT and e.get("operator") == "In":
                    values.extend(str(v) for v in e.get("values") or [])
    models = dict.fromkeys(gpu_model_from_product(v) or v for v in values)
    return "|".join(models)
