"""``kueue``: Kueue's admission (quota, cohorts, flavors, preemption) driving the engine.

One scheduling pass runs Kueue scheduling *cycles* until a cycle changes nothing (Kueue runs
its cycles back to back; ``max_cycles`` caps them, 1 = exactly one cycle as Kueue's
``scheduler_test.go`` does). A cycle follows ``pkg/scheduler/scheduler.go``:

1. **Heads**: one workload per ClusterQueue, ordered by priority (higher first), then by
   its queue-order time (creation, or the eviction time after a ``waitForPodsReady``
   eviction), then arrival. ``StrictFIFO``: the head that cannot be admitted blocks its
   ClusterQueue until quota is released in its cohort or a new workload enters the queue.
   ``BestEffortFIFO``: it is set aside as inadmissible (with every workload of the same
   ClusterQueue, requests, pod shape and priority, which would fare the same) and the next one
   becomes the head in the next cycle; as in Kueue, inadmissible workloads are retried once
   quota is released in the cohort (a workload finishes, is preempted or evicted).
2. **Nominate** every head against the same snapshot: per resource group the flavor is chosen
   by :func:`~policies.kueue.quota.assign_flavor` (order, ``flavorFungibility``; a flavor is
   eligible when its ResourceFlavor exists, its taints are tolerated and its nodes could hold
   the workload's pods when idle), and a head that needs preemption gets its targets from
   :func:`~policies.kueue.quota.preemption_targets`.
3. **Order** the entries: lower borrowing level first (Kueue's height of the lowest subtree
   that holds the workload), then priority, then queue-order time (classical); with
   ``fair_sharing`` by the weighted dominant resource share the ClusterQueue would have after
   admitting the entry, then priority, then time.
4. **Process** each entry: ``NoFit`` or preemption without candidates -> pending
   (inadmissible; when the ClusterQueue cannot always reclaim its nominal quota the quota it
   would take is held for the rest of the cycle); overlapping preemption targets or no longer
   fitting after earlier entries -> skipped (retried next cycle); preemption -> the targets
   are evicted (running ones preempted) and the preemptor's quota held for the cycle, it is
   admitted in a later cycle; fit -> quota reserved in the cohort tree.
5. **Place** an admitted workload's pods on the nodes of its flavors (ResourceFlavor
   ``nodeLabels`` select nodes; every pod whole on one node, best fit). If not all pods fit
   now the workload keeps its quota and waits; with ``wait_for_pods_ready`` it is evicted
   ``pods_ready_timeout`` seconds after admission and requeued after
   ``backoff_base_seconds * 2^(n-1)`` seconds (capped at ``backoff_max_seconds``; Kueue adds
   a jitter of 0.01 %, left out) for its n-th eviction; after ``backoff_limit_count``
   evictions it is rejected (Kueue deactivates it). ``block_admission`` (Kueue's default when
   waitForPodsReady is on): no workload is admitted while another waits for its pods.

Workloads that Kueue would leave pending forever (unknown LocalQueue, a resource no
resource group covers, more than the ClusterQueue could ever hold, pods no flavor's nodes can
hold, GPU fractions) are rejected with the reason, so that every run ends. The reasons a
workload waits are kept in :attr:`KueuePolicy.reasons` (see :meth:`KueuePolicy.pending_reason`).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policies.base import Policy, Preempt, Reject, Start, Wait
from policies.kueue.objects import KueueConfig, load_kueue_config
from policies.kueue.quota import Admitted, QuotaTree, assign_flavor, preemption_targets
from simulator.core.jobs import Status
from simulator.core.placement import Placement
from simulator.core.view import SchedulerView
from simulator.k8s.nodes import gpu_model_from_product, tolerates

__all__ = ["KueuePolicy", "default_config_path"]

_GIB = 1 << 30
_MORE = re.compile(r", [^;,]* more needed")
_EPS = 1e-9


def default_config_path() -> str:
    """The shipped example config, ``examples/kubernetes/kueue.yaml`` (absolute path)."""
    return str(Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "kueue.yaml")


@dataclass
class _Work:
    """Static facts of one workload (a job of the trace)."""

    cq: str
    requests: dict[str, int]
    sig: tuple
    priority: int
    created: float
    pods: int
    gpus_per_pod: int
    cpus_per_pod: float
    mem_per_pod: float
    type_mask: int
    milli: int


@dataclass
class _Entry:
    """One nominated head of a cycle."""

    j: int
    mode: str
    usage: dict
    borrows: int
    """Borrowing level (0 = within nominal quota)."""
    targets: list[str]
    reason: str = ""


class KueuePolicy(Policy):
    """Kueue's scheduler over the engine (see the module docstring for the rules).

    Args:
        config: path of the Kueue objects (``kubectl get clusterqueues,cohorts,
            resourceflavors,localqueues,workloadpriorityclasses -o yaml``); relative paths are
            tried from the working directory, then from the project root; None = the shipped
            ``examples/kubernetes/kueue.yaml``.
        wait_for_pods_ready: evict a workload whose pods could not all be placed
            ``pods_ready_timeout`` seconds after admission and requeue it with backoff.
        pods_ready_timeout: seconds (Kueue's default 5 minutes).
        backoff_base_seconds: requeue backoff base (Kueue's default 60).
        backoff_max_seconds: requeue backoff cap (Kueue's default 3600).
        backoff_limit_count: evictions before the workload is rejected (None = unlimited).
        requeuing_timestamp: ``Eviction`` (queue order from the eviction time, Kueue's
            default) or ``Creation``.
        block_admission: admit nothing while a workload waits for its pods.
        fair_sharing: order entries by weighted dominant resource share.
        gpu_resource: the resource name GPUs are counted as.
        tolerations: tolerations every workload carries (for ResourceFlavor ``nodeTaints``).
        max_cycles: cycles per pass (None = until a cycle changes nothing).
        patches: what-if edits of the Kueue objects, ``KIND/NAME:PATH=VALUE`` (e.g.
            ``ClusterQueue/team-a:spec.resourceGroups[0].flavors[name=h100].resources
            [name=nvidia.com/gpu].nominalQuota=48``), applied before they are read
            (:mod:`simulator.k8s.patch`).
    """

    name = "kueue"

    def __init__(
        self,
        config: str | None = None,
        wait_for_pods_ready: bool = True,
        pods_ready_timeout: float = 300.0,
        backoff_base_seconds: float = 60.0,
        backoff_max_seconds: float = 3600.0,
        backoff_limit_count: int | None = None,
        requeuing_timestamp: str = "Eviction",
        block_admission: bool = True,
        fair_sharing: bool = False,
        gpu_resource: str = "nvidia.com/gpu",
        tolerations: Sequence[Mapping] = (),
        max_cycles: int | None = None,
        patches: Sequence[str] = (),
        *,
        kueue_config: KueueConfig | None = None,
    ) -> None:
        for key, v in (
            ("pods_ready_timeout", pods_ready_timeout),
            ("backoff_base_seconds", backoff_base_seconds),
            ("backoff_max_seconds", backoff_max_seconds),
        ):
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"policy.{key} must be a number of seconds >= 0, got {v!r}")
        if requeuing_timestamp not in ("Eviction", "Creation"):
            raise ValueError(
                "policy.requeuing_timestamp must be Eviction or Creation, "
                f"got {requeuing_timestamp!r}"
            )
        if backoff_limit_count is not None and (
            isinstance(backoff_limit_count, bool) or int(backoff_limit_count) < 0
        ):
            raise ValueError(
                f"policy.backoff_limit_count must be >= 0 or null, got {backoff_limit_count!r}"
            )
        if max_cycles is not None and int(max_cycles) < 1:
            raise ValueError(f"policy.max_cycles must be >= 1 or null, got {max_cycles!r}")
        self.config_path = _resolve(config) if kueue_config is None else None
        if kueue_config is not None and patches:
            raise ValueError("kueue: patches apply to a config file, not a parsed KueueConfig")
        self.cfg = (
            kueue_config
            if kueue_config is not None
            else load_kueue_config(self.config_path, patches)
        )
        self.wait_for_pods_ready = bool(wait_for_pods_ready)
        self.pods_ready_timeout = float(pods_ready_timeout)
        self.backoff_base = float(backoff_base_seconds)
        self.backoff_max = float(backoff_max_seconds)
        self.backoff_limit = None if backoff_limit_count is None else int(backoff_limit_count)
        self.requeuing_timestamp = requeuing_timestamp
        self.block_admission = bool(block_admission) and self.wait_for_pods_ready
        self.fair_sharing = bool(fair_sharing)
        self.gpu_resource = str(gpu_resource)
        self.tolerations = [dict(t) for t in tolerations]
        self.max_cycles = None if max_cycles is None else int(max_cycles)
        self.reasons: dict[int, str] = {}
        """Job -> why it last waited (the reason of its last pass spent pending)."""
        self.flavors: dict[int, dict[str, str]] = {}
        """Job -> resource -> flavor of its latest admission."""
        self.log: list[tuple[float, int, str, str]] = []
        """``(time, job, event, detail)``: admitted / started / preempted / evicted / requeued /
        rejected, as the policy decided them."""

    # ------------------------------------------------------------------ setup
    def setup(self, view: SchedulerView) -> None:
        """Read the jobs into workloads, build the quota tree and the flavors' node sets."""
        self.tree: QuotaTree = self.cfg.tree()
        self.now = 0.0
        jobs = view.jobs
        frame = jobs.frame
        pclass = frame["priority_class"].tolist() if "priority_class" in frame else None
        qnames = jobs.queue_names
        self.names = [str(x) for x in jobs.job_ids]
        self.index = {n: j for j, n in enumerate(self.names)}
        self.pinned = self._pinned(frame)
        self.works: list[_Work | None] = []
        self.static_reject: dict[int, str] = {}
        for j in range(jobs.n):
            self.works.append(self._work(jobs, j, qnames, pclass))
        self.cq_names = sorted(self.cfg.cluster_queues)
        self.heaps: dict[str, dict[tuple, list]] = {cq: {} for cq in self.cq_names}
        self.key: dict[int, tuple] = {}
        self.reserved: dict[int, float] = {}
        self.node_sets: dict[int, np.ndarray] = {}
        self.backoff: list[tuple[float, int]] = []
        self.evictions: dict[int, int] = {}
        self.order_time: dict[int, float] = {}
        self.cursor = 0
        self.mark = 0
        self.failed_reason: dict[tuple, str] = {}
        self.touched: set[int] = set()
        self.started: set[int] = set()
        self.given: dict[int, str] = {}
        self.in_backoff: set[int] = set()
        self.strict_head: dict[str, int] = {}
        self.parked: dict[str, set] = {cq: set() for cq in self.cq_names}
        """BestEffortFIFO: classes set aside until quota is released in the cohort."""
        self.blocked: set[str] = set()
        """StrictFIFO queues whose head is inadmissible (until a release or a new workload)."""
        self.cohort_of = {cq: (self.tree.path_to_root(cq) or [cq])[-1] for cq in self.cq_names}
        self.members: dict[str, list[str]] = {}
        for cq, root in self.cohort_of.items():
            self.members.setdefault(root, []).append(cq)
        self._cl = view.cluster
        self._flavor_nodes = self._node_masks(view)
        self._fit_cache: dict[tuple, bool] = {}

    def _work(self, jobs, j: int, qnames, pclass) -> _Work | None:
        jid = str(jobs.job_ids[j])
        lq = str(qnames[jobs.queue[j]])
        ns = jid.split("/", 1)[0] if "/" in jid else "default"
        cq = self.cfg.local_queues.get(f"{ns}/{lq}") or self.cfg.local_queues.get(lq)
        if cq is None and lq in self.cfg.cluster_queues:
            cq = lq
        if cq is None:
            self.static_reject[j] = f"LocalQueue {ns}/{lq} does not exist"
            return None
        if jobs.milli[j] and jobs.milli[j] < 1000:
            self.static_reject[j] = "a GPU fraction is not a Kueue resource"
            return None
        pods = int(jobs.pods[j]) or 1
        gpus, cpus, mem = int(jobs.num_gpus[j]), float(jobs.cpus[j]), float(jobs.mem[j])
        req = {
            self.gpu_resource: gpus,
            "cpu": int(round(cpus * 1000)),
            "memory": int(round(mem * _GIB)),
        }
        req = {r: v for r, v in req.items() if v > 0}
        prio = int(jobs.priority[j])
        if pclass is not None:
            name = pclass[j]
            if isinstance(name, str) and name in self.cfg.priority_classes:
                prio = int(self.cfg.priority_classes[name])
        shape = (gpus // pods, cpus / pods, mem / pods, pods, int(jobs.type_mask[j]))
        return _Work(
            cq,
            req,
            (tuple(sorted(req.items())), shape, prio),
            prio,
            float(jobs.submit[j]),
            pods,
            gpus // pods,
            cpus / pods,
            mem / pods,
            int(jobs.type_mask[j]),
            int(jobs.milli[j]),
        )

    def _node_masks(self, view: SchedulerView) -> dict[str, np.ndarray]:
        """ResourceFlavor -> nodes its ``nodeLabels`` select.

        A cluster without node labels (not read from Node objects) matches only the label
        ``nvidia.com/gpu.product`` (or ``gpusim/gpu-type``), against each node's GPU model.
        """
        spec = view.cluster.spec
        n = spec.num_nodes
        labels = getattr(spec, "labels", ())
        if len(labels) != n:
            models = view.cluster.models
            labels = [
                {"gpusim/gpu-type": models[m] if m >= 0 else ""} for m in view.cluster.node_model
            ]
            for lab in labels:
                lab["nvidia.com/gpu.product"] = lab["gpusim/gpu-type"]
        out = {}
        for fl, (sel, _taints) in self.cfg.flavors.items():
            want = dict(sel)
            if "nvidia.com/gpu.product" in want and not getattr(spec, "labels", ()):
                v = want["nvidia.com/gpu.product"]
                want["nvidia.com/gpu.product"] = gpu_model_from_product(v) or v
            out[fl] = np.array(
                [all(lab.get(k) == v for k, v in want.items()) for lab in labels], dtype=bool
            )
        return out

    # ------------------------------------------------------------------ the pass
    def schedule(self, view: SchedulerView) -> Iterator:
        """One pass: sync with the engine, retry waiting pods, then Kueue cycles."""
        self.now = view.now
        self._release_ended(view)
        yield from self._take_arrivals(view)
        self._expire_backoff(view)
        yield from self._retry_reserved(view)
        failed, blocked = self.parked, self.blocked
        cycles = 0
        while self.max_cycles is None or cycles < self.max_cycles:
            cycles += 1
            self._release_ended(view)
            yield from self._take_arrivals(view)
            progress = yield from self._cycle(view, failed, blocked)
            if not progress:
                break
        yield from self._wait_decisions(view)

    def _wait_decisions(self, view: SchedulerView) -> Iterator[Wait]:
        """``Wait(j, reason)`` for the pending workloads whose reason changed this pass."""
        status = view.jobs.status
        touched, self.touched = self.touched, set()
        for j in sorted(touched):
            if status[j] != Status.QUEUED or not (
                j in self.key or j in self.reserved or j in self.in_backoff
            ):
                continue
            why = self.pending_reason(j)
            if why and self.given.get(j) != why:
                self.given[j] = why
                yield Wait(j, why)

    def _unpark(self, cq: str) -> None:
        """Quota was released in ``cq``'s cohort: its inadmissible workloads are retried."""
        for q in self.members[self.cohort_of[cq]]:
            self.parked[q].clear()
            self.blocked.discard(q)

    def _release_ended(self, view: SchedulerView) -> None:
        ended, self.mark = view.ended_since(self.mark)
        for j in ended:  # finished, or killed by a node failure: its quota is free
            if j in self.started:
                self.started.discard(j)
                self.tree.evict(self.names[j])
                self._unpark(self.works[j].cq)

    def _take_arrivals(self, view: SchedulerView) -> Iterator:
        new = view.queue.pushed_since(self.cursor)
        self.cursor = view.queue.pushes
        status = view.jobs.status
        for j in new:
            if status[j] != Status.QUEUED or j in self.key or j in self.reserved:
                continue
            if j in self.pinned and j not in self.flavors:
                yield from self._admit_pinned(view, j)
                continue
            self.given.pop(j, None)  # back in the queue: the engine starts it without a reason
            why = self.static_reject.get(j) or self._never_fits(view, j)
            if why:
                self.log.append((self.now, j, "rejected", why))
                yield Reject(j, why)
                continue
            self._push(j, self.works[j].created)

    def _pinned(self, frame) -> dict[int, dict[str, str]]:
        if "kueue_flavor" not in frame:
            return {}
        out = {}
        for j, raw in enumerate(frame["kueue_flavor"].tolist()):
            if not isinstance(raw, str) or not raw.strip():
                continue
            parts = [p.strip() for p in raw.split(",") if p.strip()]
            if len(parts) == 1 and "=" not in parts[0]:
                out[j] = {"*": parts[0]}
                continue
            pairs = {}
            for p in parts:
                r, eq, fl = p.partition("=")
                if not eq or not r.strip() or not fl.strip():
                    raise ValueError(
                        f"job {frame['job_id'].iloc[j]!r}: kueue_flavor {raw!r}: expected "
                        "'flavor' or 'resource=flavor,...'"
                    )
                pairs[r.strip()] = fl.strip()
            out[j] = pairs
        return out

    def _admit_pinned(self, view: SchedulerView, j: int) -> Iterator:
        """Restore a workload admitted before the run (``kueue_flavor``), quota as given."""
        w = self.works[j]
        if w is None:
            raise ValueError(f"job {self.names[j]!r}: kueue_flavor set but {self.static_reject[j]}")
        pins = self.pinned[j]
        usage = {}
        for r, v in w.requests.items():
            fl = pins.get(r, pins.get("*"))
            if fl is None:
                raise ValueError(f"job {self.names[j]!r}: kueue_flavor names no flavor for {r}")
            usage[(fl, r)] = v
        yield from self._admit(view, _Entry(j, "Fit", usage, False, []), queued=False)

    def _push(self, j: int, order_time: float) -> None:
        w = self.works[j]
        key = (-w.priority, order_time, j)
        self.key[j] = key
        self.touched.add(j)
        self.blocked.discard(w.cq)  # StrictFIFO: a new workload may be the new head
        self.reasons.pop(j, None)
        heapq.heappush(self.heaps[w.cq].setdefault(w.sig, []), key)

    def _expire_backoff(self, view: SchedulerView) -> None:
        while self.backoff and self.backoff[0][0] <= self.now + _EPS:
            _, j = heapq.heappop(self.backoff)
            self.in_backoff.discard(j)
            t = self.order_time.get(j, self.works[j].created)
            self._push(j, t)
            self.log.append((self.now, j, "requeued", "backoff over"))

    # ------------------------------------------------------------------ waiting pods
    def _retry_reserved(self, view: SchedulerView) -> Iterator:
        for j in sorted(self.reserved, key=self.reserved.get):
            p = self._place(view, j, self.node_sets[j])
            if p is not None:
                del self.reserved[j]
                self.log.append((self.now, j, "started", ""))
                self.given.pop(j, None)
                self.started.add(j)
                yield Start(j, p)
                continue
            due = self.reserved[j] + self.pods_ready_timeout
            if not self.wait_for_pods_ready:
                continue
            if self.now + _EPS < due:
                view.wake_at(due)
                continue
            yield from self._pods_ready_evict(view, j)

    def _pods_ready_evict(self, view: SchedulerView, j: int) -> Iterator:
        del self.reserved[j]
        self.tree.evict(self.names[j])
        self._unpark(self.works[j].cq)
        n = self.evictions[j] = self.evictions.get(j, 0) + 1
        self.log.append((self.now, j, "evicted", "PodsReadyTimeout"))
        if self.backoff_limit is not None and n > self.backoff_limit:
            why = f"deactivated: evicted {n} times by waitForPodsReady (backoffLimitCount)"
            self.log.append((self.now, j, "rejected", why))
            yield Reject(j, why)
            return
        wait = min(self.backoff_base * 2 ** (n - 1), self.backoff_max)
        if self.requeuing_timestamp == "Eviction":
            self.order_time[j] = self.now
        heapq.heappush(self.backoff, (self.now + wait, j))
        self.in_backoff.add(j)
        self.touched.add(j)
        self.reasons[j] = f"waiting for pods ready (evicted {n}x, backoff {wait:g} s)"
        view.wake_at(self.now + wait)

    # ------------------------------------------------------------------ a cycle
    def _head(self, cq: str, failed: set) -> int:
        best = None
        for sig, h in self.heaps[cq].items():
            while h and self.key.get(h[0][2]) != h[0]:
                heapq.heappop(h)  # stale: admitted, rejected or requeued with another key
            if h and sig not in failed and (best is None or h[0] < best):
                best = h[0]
        return -1 if best is None else best[2]

    def _cycle(self, view: SchedulerView, failed: dict, blocked: set) -> Iterator:
        heads = []
        for cq in self.cq_names:
            if cq in blocked:
                continue
            j = self._head(cq, failed[cq])
            if j >= 0:
                heads.append(j)
        if not heads:
            return False
        if self.block_admission and self.reserved:
            for j in heads:
                self.reasons[j] = "waiting for pods ready of another workload (blockAdmission)"
                self.touched.add(j)
            return False
        entries = [self._nominate(j) for j in heads]
        self.touched.update(heads)
        entries.sort(key=self._order_key())
        progress = False
        preempted: set[str] = set()
        holds: list[str] = []
        for e in entries:
            w = self.works[e.j]
            if e.mode == "NoFit" or (e.mode == "Preempt" and not e.targets):
                if e.mode == "Preempt":
                    e.reason = e.reason or self._shortage(e)
                    if self.tree.nodes[w.cq].preemption.reclaim_within_cohort != "Any":
                        self._hold(e, holds, reserve=True)
                # a set-aside BestEffortFIFO head lets the next workload be the head next cycle
                progress = self._inadmissible(e, failed, blocked) or progress
                continue
            if e.mode == "Preempt" and preempted.intersection(e.targets):
                self.reasons[e.j] = "skipped: overlapping preemption targets with another workload"
                progress = True
                continue
            victims = [self.tree.evict(t) for t in e.targets if t in self.tree.workloads]
            if not self._fits(w.cq, e.usage):
                for v in victims:
                    self.tree.admit(v)
                self.reasons[e.j] = "skipped: no longer fits after processing another workload"
                progress = True
                continue
            progress = True
            if e.mode == "Preempt":
                for v in victims:  # evictions requeue the cohort's inadmissible workloads
                    self._unpark(v.cq)
                preempted.update(e.targets)
                self._hold(e, holds, reserve=False)
                self.reasons[e.j] = f"waiting for {len(e.targets)} preempted workload(s)"
                yield from self._issue_preemptions(view, e, victims)
                continue
            yield from self._admit(view, e)
        for h in holds:
            self.tree.evict(h)
        return progress

    def _order_key(self):
        if not self.fair_sharing:
            return lambda e: (e.borrows, self.key[e.j])
        return lambda e: (self._share_after(e), self.key[e.j])

    def _fits(self, cq: str, usage: Mapping) -> bool:
        return all(v <= self.tree.available(cq, fr) for fr, v in usage.items())

    def _hold(self, e: _Entry, holds: list, reserve: bool) -> None:
        usage = dict(e.usage)
        if reserve:  # Kueue's quotaResourcesToReserve: what the queue could still take
            node = self.tree.nodes[self.works[e.j].cq]
            for fr, v in e.usage.items():
                used = node.usage.get(fr, 0)
                if e.borrows:
                    if fr in node.borrowing_limit:
                        v = min(v, node.nominal.get(fr, 0) + node.borrowing_limit[fr] - used)
                else:
                    v = max(0, min(v, node.nominal.get(fr, 0) - used))
                usage[fr] = max(0, min(v, self.tree.available(node.name, fr)))
        name = f"hold:{e.j}"
        if name in self.tree.workloads or not any(usage.values()):
            return
        self.tree.admit(Admitted(name, self.works[e.j].cq, usage))
        holds.append(name)

    def _inadmissible(self, e: _Entry, failed: dict, blocked: set) -> bool:
        """Set the head aside (BestEffortFIFO: True) or block its ClusterQueue (StrictFIFO)."""
        w = self.works[e.j]
        self.reasons[e.j] = e.reason
        if self.cfg.cluster_queues[w.cq].queueing_strategy == "StrictFIFO":
            blocked.add(w.cq)
            old = self.strict_head.get(w.cq, -1)
            if old != e.j and old in self.key:  # an earlier head fell behind a newer one
                self.reasons.pop(old, None)
                self.touched.add(old)
            self.strict_head[w.cq] = e.j
            return False
        failed[w.cq].add(w.sig)
        why = _MORE.sub("", e.reason)  # the class's reason: the amounts are the head's
        if self.failed_reason.get((w.cq, w.sig)) != why:  # tell the whole class
            self.failed_reason[(w.cq, w.sig)] = why
            for key in self.heaps[w.cq].get(w.sig, ()):
                if self.key.get(key[2]) == key:
                    if key[2] != e.j:
                        self.reasons.pop(key[2], None)
                    self.touched.add(key[2])
        return True

    def _issue_preemptions(self, view: SchedulerView, e: _Entry, victims) -> Iterator:
        status = view.jobs.status
        for v in victims:
            k = self.index[v.name]
            self.log.append((self.now, k, "preempted", f"by {view.jobs.job_ids[e.j]}"))
            if k in self.reserved:  # admitted, pods not placed yet: back to the queue
                del self.reserved[k]
                self._push(k, self.order_time.get(k, self.works[k].created))
            elif status[k] == Status.RUNNING:
                self.started.discard(k)  # its quota is already released
                yield Preempt(k)

    def _admit(self, view: SchedulerView, e: _Entry, queued: bool = True) -> Iterator:
        w = self.works[e.j]
        if queued:
            del self.key[e.j]
        self.tree.admit(Admitted(self.names[e.j], w.cq, e.usage, w.priority, self.now, w.created))
        self.flavors[e.j] = {r: fl for (fl, r) in e.usage}
        mask = np.ones(len(view.cluster.node_up), dtype=bool)
        for fl in {fl for (fl, _) in e.usage}:
            mask &= self._flavor_nodes.get(fl, mask)
        self.node_sets[e.j] = mask
        detail = ",".join(f"{r}={fl}" for (fl, r) in sorted(e.usage))
        self.log.append((self.now, e.j, "admitted", detail))
        self.reasons.pop(e.j, None)
        self.touched.add(e.j)
        p = self._place(view, e.j, mask)
        if p is None:
            self.reserved[e.j] = self.now
            self.reasons[e.j] = "admitted, waiting for its pods to be placed"
            if self.wait_for_pods_ready:
                view.wake_at(self.now + self.pods_ready_timeout)
            return
        self.log.append((self.now, e.j, "started", ""))
        self.given.pop(e.j, None)
        self.started.add(e.j)
        yield Start(e.j, p)

    # ------------------------------------------------------------------ nomination
    def _nominate(self, j: int) -> _Entry:
        w = self.works[j]
        info = self.cfg.cluster_queues[w.cq]
        covered = {r for res, _ in info.resource_groups for r in res}
        missing = [r for r in w.requests if r not in covered]
        if missing:
            return _Entry(
                j,
                "NoFit",
                {},
                False,
                [],
                f"resource {missing[0]} unavailable in ClusterQueue {w.cq}",
            )
        usage: dict = {}
        mode, borrows = "Fit", False
        for res, flavors in info.resource_groups:
            req = {r: v for r, v in w.requests.items() if r in res}
            if not req:
                continue
            choice = assign_flavor(
                self.tree,
                w.cq,
                flavors,
                req,
                when_can_borrow=info.when_can_borrow,
                when_can_preempt=info.when_can_preempt,
                preference=info.preference,
                eligible=lambda fl, w=w: self._eligible(fl, w),
                can_preempt=lambda fl, req=req, j=j: self._can_preempt(j, fl, req),
            )
            if choice.mode == "NoFit":
                return _Entry(j, "NoFit", {}, False, [], self._nofit_reason(w, flavors, req))
            for r, v in req.items():
                usage[(choice.flavor, r)] = v
            borrows = borrows or choice.borrows
            if choice.mode in ("Preempt", "Reclaim", "NoCandidates"):
                mode = "Preempt"
        if mode == "Fit":
            return _Entry(j, "Fit", usage, self._borrow_level(w.cq, usage), [])
        needs = [fr for fr, v in usage.items() if v > self.tree.available(w.cq, fr)]
        inc = Admitted(self.names[j], w.cq, usage, w.priority, self.now, w.created)
        targets = preemption_targets(self.tree, inc, needs)
        gone = [self.tree.evict(t) for t in targets]
        borrows = self._borrow_level(w.cq, usage)  # once the targets are gone
        for g in gone:
            self.tree.admit(g)
        return _Entry(
            j, "Preempt", usage, borrows, targets, "" if targets else self._words(w, usage)
        )

    def _borrow_level(self, cq: str, usage: Mapping) -> int:
        """Kueue's borrowing level of ``usage`` in ``cq`` (0 = within its nominal quota).

        Otherwise the height (levels of cohorts below it) of the lowest cohort whose subtree
        holds it, or of the root when none does (``FindHeightOfLowestSubtreeThatFits``).
        """
        fits, rest = self.tree.fits_in_quota(cq, usage)
        if fits:
            return 0
        path = self.tree.path_to_root(cq)
        for node in path:
            fits, rest = self.tree.fits_in_quota(node, rest)
            if fits:
                return self._height(node)
        return self._height(path[-1]) if path else 0

    def _height(self, name: str) -> int:
        kids = self.tree.children[name]
        return 0 if not kids else 1 + max(self._height(k) for k in kids)

    def _can_preempt(self, j: int, fl: str, req: Mapping[str, int]) -> tuple[str, bool]:
        """Kueue's flavorassigner + preemption oracle for ``req`` on flavor ``fl``.

        Preemption is only considered when the request fits the nominal quota, or the
        ClusterQueue may preempt while borrowing (``borrowWithinCohort``, or fair sharing with
        ``reclaimWithinCohort``). Returns (``NoFit`` | ``NoCandidates`` | ``Preempt`` |
        ``Reclaim``, still borrowing once the targets are gone).
        """
        w = self.works[j]
        node = self.tree.nodes[w.cq]
        usage = {(fl, r): v for r, v in req.items()}
        pre = node.preemption
        while_borrowing = pre.borrow_within_cohort != "Never" or (
            self.fair_sharing and pre.reclaim_within_cohort != "Never"
        )
        needs = [fr for fr, v in usage.items() if v > self.tree.available(w.cq, fr)]
        borrows = any(self.tree.borrowing_with(w.cq, fr, v) for fr, v in usage.items())
        if not while_borrowing and any(node.nominal.get(fr, 0) < usage[fr] for fr in needs):
            return "NoFit", borrows
        inc = Admitted(self.names[j], w.cq, usage, w.priority, self.now, w.created)
        targets = preemption_targets(self.tree, inc, needs)
        if not targets:
            return "NoCandidates", borrows
        gone = [self.tree.evict(t) for t in targets]
        borrows = any(self.tree.borrowing_with(w.cq, fr, v) for fr, v in usage.items())
        for g in gone:
            self.tree.admit(g)
        own = any(g.cq == w.cq for g in gone)
        return ("Preempt" if own else "Reclaim"), borrows

    def _eligible(self, fl: str, w: _Work) -> bool:
        if fl not in self.cfg.flavors:
            return False
        _, taints = self.cfg.flavors[fl]
        for t in taints:
            if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
                self.tolerations, t
            ):
                return False
        return self._fits_idle(fl, w)

    def _fits_idle(self, fl: str, w: _Work) -> bool:
        key = (fl, w.sig[1])
        hit = self._fit_cache.get(key)
        if hit is None:
            hit = self._fit_cache[key] = (
                self._pods_fit(
                    self._cl.capacity, self._cl.cpu_cap, self._cl.mem_cap, self._flavor_nodes[fl], w
                )
                is not None
            )
        return hit

    def _never_fits(self, view: SchedulerView, j: int) -> str:
        w = self.works[j]
        info = self.cfg.cluster_queues[w.cq]
        covered = {r for res, _ in info.resource_groups for r in res}
        missing = [r for r in w.requests if r not in covered]
        if missing:
            return f"resource {missing[0]} unavailable in ClusterQueue {w.cq}"
        for res, flavors in info.resource_groups:
            req = {r: v for r, v in w.requests.items() if r in res}
            if not req:
                continue
            ok = [fl for fl in flavors if self._eligible(fl, w)]
            if not ok:
                return f"no flavor of ClusterQueue {w.cq} can hold its pods ({', '.join(flavors)})"
            if not any(
                all(v <= self.tree.potential_available(w.cq, (fl, r)) for r, v in req.items())
                for fl in ok
            ):
                return f"requests exceed what ClusterQueue {w.cq} can ever use ({_req_words(req)})"
        return ""

    def _nofit_reason(self, w: _Work, flavors, req) -> str:
        parts = []
        node = self.tree.nodes[w.cq]
        for fl in flavors:
            if fl not in self.cfg.flavors:
                parts.append(f"flavor {fl} not found")
                continue
            if not self._eligible(fl, w):
                parts.append(f"flavor {fl}: untolerated taint or no node can hold the pods")
                continue
            for r, v in req.items():
                fr = (fl, r)
                avail = self.tree.available(w.cq, fr)
                if v <= avail:
                    continue
                if v > self.tree.potential_available(w.cq, fr):
                    top = _amount(r, self.tree.potential_available(w.cq, fr))
                    why = f"insufficient quota for {r} in flavor {fl}"
                    parts.append(f"{why}, request > maximum capacity ({top})")
                    break
                more = _amount(r, v - avail)
                msg = f"insufficient unused quota for {r} in flavor {fl}, {more} more needed"
                own = node.nominal.get(fr, 0) - node.usage.get(fr, 0)
                if node.parent and v <= own:  # its own quota is lent out to the cohort
                    msg += " (quota exhausted (cohort))"
                parts.append(msg)
                break
        return "; ".join(parts) or "no flavor fits"

    def _shortage(self, e: _Entry) -> str:
        return self._words(self.works[e.j], e.usage)

    def _words(self, w: _Work, usage: Mapping) -> str:
        for (fl, r), v in sorted(usage.items()):
            avail = self.tree.available(w.cq, (fl, r))
            if v > avail:
                return (
                    f"insufficient unused quota for {r} in flavor {fl}, "
                    f"{_amount(r, v - avail)} more needed"
                )
        return "insufficient unused quota"

    # ------------------------------------------------------------------ fair sharing
    def _share_after(self, e: _Entry) -> float:
        """Weighted dominant resource share of the entry's ClusterQueue with it admitted."""
        w = self.works[e.j]
        node = self.tree.nodes[w.cq]
        if not node.parent:
            return 0.0
        root = node
        while root.parent:
            root = self.tree.nodes[root.parent]
        borrowed: dict[str, int] = {}
        lendable: dict[str, int] = {}
        for (_, r), q in root.subtree.items():
            lendable[r] = lendable.get(r, 0) + q
        keys = set(node.nominal) | set(node.usage) | set(e.usage)
        for fr in keys:
            used = node.usage.get(fr, 0) + e.usage.get(fr, 0)
            over = used - node.nominal.get(fr, 0)
            if over > 0:
                borrowed[fr[1]] = borrowed.get(fr[1], 0) + over
        drs = max(
            (b * 1000 / lendable[r] for r, b in borrowed.items() if lendable.get(r)), default=0.0
        )
        weight = self.cfg.cluster_queues[w.cq].fair_weight
        if weight <= 0:
            return math.inf if drs > 0 else 0.0
        return drs / weight

    # ------------------------------------------------------------------ placement
    def _place(self, view: SchedulerView, j: int, mask: np.ndarray) -> Placement | None:
        cl = view.cluster
        ok = mask & cl.node_up
        chosen = self._pods_fit(cl.free_full, cl.cpu_free, cl.mem_free, ok, self.works[j])
        if chosen is None:
            return None
        w = self.works[j]
        nodes, counts = np.unique(np.asarray(chosen, dtype=np.int64), return_counts=True)
        g_max = cl.gpu_free.shape[1]
        gpus = []
        for i, c in zip(nodes.tolist(), counts.tolist(), strict=True):
            if w.gpus_per_pod:
                slots = np.flatnonzero(cl.gpu_free[i] == 1000)[: c * w.gpus_per_pod]
                gpus.extend((i * g_max + slots).tolist())
        return Placement(
            nodes,
            np.asarray(gpus, dtype=np.int64),
            w.milli if w.gpus_per_pod else 0,
            counts * w.cpus_per_pod,
            counts * w.mem_per_pod,
        )

    def _pods_fit(self, gpus, cpus, mem, mask, w: _Work) -> list[int] | None:
        """Nodes of each pod, best fit (fewest free GPUs left), or None if one cannot go."""
        ok = mask.copy()
        if w.type_mask:
            models = self._cl.node_model
            ok &= np.array([m >= 0 and (w.type_mask >> m) & 1 == 1 for m in models], dtype=bool)
        free = np.asarray(gpus, dtype=np.int64).copy()
        cpu = np.asarray(cpus, dtype=np.float64).copy()
        mm = np.asarray(mem, dtype=np.float64).copy()
        out = []
        g, c, m = w.gpus_per_pod, w.cpus_per_pod, w.mem_per_pod
        for _ in range(w.pods):
            cand = np.flatnonzero(ok & (free >= g) & (cpu >= c - _EPS) & (mm >= m - _EPS))
            if not len(cand):
                return None
            i = int(cand[np.argmin(free[cand])])
            free[i] -= g
            cpu[i] -= c
            mm[i] -= m
            out.append(i)
        return out

    # ------------------------------------------------------------------ reasons
    def pending_reason(self, j: int) -> str:
        """Why queued job ``j`` waits (last reason recorded), '' if none."""
        if j in self.reasons:
            return self.reasons[j]
        w = self.works[j] if j < len(self.works) else None
        if w is None:
            return ""
        if self.cfg.cluster_queues[w.cq].queueing_strategy == "StrictFIFO":
            return "StrictFIFO: behind an earlier workload"
        return self.failed_reason.get((w.cq, w.sig), f"waiting for its turn in ClusterQueue {w.cq}")


def _resolve(config: str | None) -> str:
    if config is None:
        return default_config_path()
    p = Path(config).expanduser()
    if p.is_absolute() or p.exists():
        return str(p)
    root = Path(__file__).resolve().parents[2] / p
    if root.exists():
        return str(root)
    raise FileNotFoundError(
        f"policy.config: Kueue config {config!r} not found (tried {Path.cwd() / p} and {root})"
    )


def _amount(r: str, v: int) -> str:
    if r == "cpu":
        return f"{v / 1000:g}"
    if r == "memory":
        return f"{v / _GIB:g}Gi"
    return str(v)


def _req_words(req: Mapping[str, int]) -> str:
    return ", ".join(f"{r} {_amount(r, v)}" for r, v in sorted(req.items()))
