"""``+policy=kai``: NVIDIA KAI Scheduler's semantics driving the engine.

One scheduling pass is one KAI *session*: fair shares are computed once from the queues'
requests (running + pending) and allocations (:func:`policies.kai.fairshare.fair_shares`),
then KAI's actions run in KAI's order (``pkg/scheduler/actions``):

1. **allocate**: jobs are popped queue by queue (the queue tree is walked from the top; at
   every level the child that KAI's ``GetQueueOrderResult`` puts first, judged with its best
   pending job), within a leaf by job priority then arrival. A job starts if its queue path
   stays within every ``limit`` (:func:`~policies.kai.rules.over_limit`), a non-preemptible
   job (priority >= 100) stays within quota
   (:func:`~policies.kai.rules.non_preemptible_over_quota`), and all its pods can be placed
   (gang: all pods or none; each pod whole on one node; GPU fractions by ``gpu_milli``;
   topology required/preferred domains).
2. **consolidate** (``consolidation=True``): a job that did not fit may start if moving up to
   ``consolidation_max_victims`` running preemptible jobs to other nodes makes room for it;
   every moved job must find a new place (nobody is evicted). Moves are ``Migrate`` decisions.
3. **reclaim**: a job whose queue stays within its fair share with it
   (:func:`~policies.kai.rules.can_reclaim_resources`) may evict preemptible jobs of other
   queues (not protected by their reclaim min-runtime), taken from the queue KAI would serve
   last first (the reverse queue order), lowest priority and latest start first within a
   queue, until it can be placed; the set must pass KAI's reclaim scenario check
   (:func:`~policies.kai.rules.reclaimable`: MaintainFairShare / GuaranteeDeservedQuota and
   the saturation order with ``reclaimerSaturationMultiplier``).
4. **preempt**: a job may evict preemptible jobs of its own queue with strictly lower
   priority (:func:`~policies.kai.rules.can_preempt`) not protected by their preempt
   min-runtime, lowest priority and latest start first, if its queue stays within its limits.

Victims are found on real placements on a scratch copy of the cluster and unneeded ones are
spared again (:mod:`policies.whatif`); a job started in a pass is never a victim in the same
pass. Every job left waiting gets a KAI-like reason (:meth:`KaiPolicy.pending_reason`).

Differences from KAI are listed in docs/kubernetes.md ("The kai policy").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from policies.base import Decision, Migrate, Policy, Preempt, Start, Wait
from policies.kai import rules
from policies.kai.fairshare import QueueShares, build_shares, fair_shares
from policies.kai.objects import RESOURCES, UNLIMITED, KaiConfig, load_kai_config
from policies.keyed_queue import KeyedQueue
from policies.whatif import Scratch
from simulator.core.cluster import MILLI
from simulator.core.jobs import Status
from simulator.core.placement import Placement
from simulator.core.view import SchedulerView

__all__ = ["DEFAULT_CONFIG", "KaiPolicy", "resolve_config_path"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "kai.yaml"
"""The shipped KAI config (two departments, four teams, KAI's default priority classes)."""

ACTIONS = ("allocate", "consolidation", "reclaim", "preempt")
"""KAI's actions, in the order a session runs them."""
_NO_SHARE_DRF = 1000.0
"""KAI's ``noFairShareDrfMultiplier``: a queue using a resource it has no share of."""
_GIB = float(2**30)
_EPS = 1e-9


def _dominant(alloc: Sequence[float], cap: Sequence[float]) -> float:
    """KAI's ``GetDominantResourceShare``: max of allocated / allocatable (x1000 if none)."""
    return max(
        0.0, *(a * _NO_SHARE_DRF if c == 0 else a / c for a, c in zip(alloc, cap, strict=True))
    )


def _check_actions(actions: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(actions, str):
        actions = [a.strip() for a in actions.split(",") if a.strip()]
    out = tuple(str(a) for a in actions)
    unknown = [a for a in out if a not in ACTIONS]
    if unknown or len(set(out)) != len(out):
        raise ValueError(f"kai: actions {list(out)}: each at most once, from {list(ACTIONS)}")
    return tuple(a for a in ACTIONS if a in out)


def resolve_config_path(path: str | Path | None) -> Path:
    """The KAI config file: ``path`` as given, else relative to the project, else the default.

    Raises:
        FileNotFoundError: ``path`` exists neither as given nor relative to the project.
    """
    if path is None or str(path) == "":
        return DEFAULT_CONFIG
    p = Path(path).expanduser()
    if p.exists():
        return p
    alt = DEFAULT_CONFIG.parents[2] / p
    if not p.is_absolute() and alt.exists():
        return alt
    raise FileNotFoundError(f"kai: policy.config {str(path)!r} not found (nor under {alt.parent})")


class KaiPolicy(Policy):
    """KAI Scheduler: queues, fair share, allocate / consolidate / reclaim / preempt.

    Args:
        config: the KAI objects (``kubectl get queues.scheduling.run.ai,priorityclasses -o
            yaml``): a path (absolute, relative to the cwd or to the project), or a parsed
            :class:`~policies.kai.objects.KaiConfig`; None = the shipped example.
        patches: what-if edits of those objects, ``KIND/NAME:PATH=VALUE`` (e.g.
            ``Queue/research:spec.resources.gpu.quota=32``), applied in order before they are
            read (:mod:`simulator.k8s.patch`).
        k_value: KAI's ``kValue``: weight of historical usage in the over-quota split.
        usage_half_life: seconds; time-based fair share (KAI's ``halfLifePeriod``); None =
            off (KAI's default).
        usage_window: seconds of history that count (KAI's ``windowSize``); None = all.
        saturation_multiplier: KAI's ``reclaimerSaturationMultiplier`` (>= 1).
        consolidation: run the consolidate action.
        consolidation_max_victims: most running jobs moved to start one job.
        default_preempt_min_runtime: seconds (minruntime plugin default, queues override).
        default_reclaim_min_runtime: seconds (minruntime plugin default, queues override).
        reclaim_min_runtime_method: ``lca`` (KAI's default) or ``queue``.
        scoring: node scoring of pods (KAI binpacks by default: ``bestfit``; or ``spread``).
        priority_class_column: trace column of priority class names; a known name gives the
            job the config's value (its PriorityClass objects, else KAI's defaults).
        required_column / preferred_column: trace columns of topology constraints (a level
            name such as ``rack`` or a node label key such as ``topology.kubernetes.io/zone``).
        default_queue: leaf for jobs whose ``queue`` is empty/``default`` (None = an error).
        actions: the actions of a session, a subsequence of KAI's ``allocate, consolidation,
            reclaim, preempt`` (KAI's ``SchedulerConfiguration.actions``);
            ``consolidation=False`` drops ``consolidation``.

    Raises:
        ValueError: (at setup) a job names a queue that is not a leaf of the config.
    """

    name = "kai"

    def __init__(
        self,
        config: str | Path | KaiConfig | None = None,
        k_value: float = 1.0,
        usage_half_life: float | None = None,
        usage_window: float | None = None,
        saturation_multiplier: float = 1.0,
        consolidation: bool = True,
        consolidation_max_victims: int = 4,
        default_preempt_min_runtime: float = 0.0,
        default_reclaim_min_runtime: float = 0.0,
        reclaim_min_runtime_method: str = "lca",
        scoring: str = "bestfit",
        priority_class_column: str = "priority_class",
        required_column: str = "topology_required",
        preferred_column: str = "topology_preferred",
        default_queue: str | None = None,
        actions: Sequence[str] = ACTIONS,
        patches: Sequence[str] = (),
    ) -> None:
        if usage_half_life is not None and usage_half_life <= 0:
            raise ValueError("kai: usage_half_life must be > 0 seconds or null")
        if usage_window is not None and usage_window <= 0:
            raise ValueError("kai: usage_window must be > 0 seconds or null")
        if saturation_multiplier < 1:
            raise ValueError("kai: saturation_multiplier (reclaimerSaturationMultiplier) >= 1")
        if reclaim_min_runtime_method not in ("lca", "queue"):
            raise ValueError("kai: reclaim_min_runtime_method must be 'lca' or 'queue'")
        if isinstance(config, KaiConfig):
            if patches:
                raise ValueError("kai: patches apply to a config file, not a parsed KaiConfig")
            self.config = config
        else:
            self.config = load_kai_config(resolve_config_path(config), patches)
        self.k_value = float(k_value)
        self.half_life = usage_half_life
        self.window = usage_window
        self.saturation_multiplier = float(saturation_multiplier)
        self.consolidation = consolidation
        self.max_moves = int(consolidation_max_victims)
        self.preempt_default = float(default_preempt_min_runtime)
        self.reclaim_default = float(default_reclaim_min_runtime)
        self.reclaim_method = reclaim_min_runtime_method
        self.scoring = scoring
        self.priority_class_column = priority_class_column
        self.required_column = required_column
        self.preferred_column = preferred_column
        self.default_queue = default_queue
        self.actions = _check_actions(actions)
        self.shares: dict[str, QueueShares] = {}
        """The queues' shares of the last pass (fair share, allocated...), for inspection."""
        self.reasons: dict[int, str] = {}
        """Queued job -> why it waits, as of the last pass."""
        self.counts = {"allocate": 0, "consolidate": 0, "reclaim": 0, "preempt": 0}
        """Jobs started by each action (and ``evicted`` victims) over the run."""
        self.counts["evicted"] = 0
        self.counts["migrated"] = 0

    # ------------------------------------------------------------------ setup
    def setup(self, view: SchedulerView) -> None:
        """Map jobs to leaf queues, resolve priorities, build placers and the keyed queue."""
        cfg, jobs = self.config, view.jobs
        self.leaves = cfg.leaves()
        self._kids = {name: cfg.children(name) for name in ("", *cfg.queues)}
        leaf_index = {q: i for i, q in enumerate(self.leaves)}
        qmap = []
        for name in jobs.queue_names:
            if name in leaf_index:
                qmap.append(leaf_index[name])
            elif name == "default" and self.default_queue in leaf_index:
                qmap.append(leaf_index[self.default_queue])
            elif name in cfg.queues:
                raise ValueError(
                    f"kai: jobs name queue {name!r}, which is a parent queue; jobs go to leaf "
                    f"queues: {self.leaves}"
                )
            else:
                raise ValueError(
                    f"kai: jobs name queue {name!r}, which the KAI config has no Queue for; "
                    f"leaf queues: {self.leaves}"
                )
        qmap_a = np.asarray(qmap, dtype=np.int64)
        self.leaf = qmap_a[jobs.queue] if jobs.n else np.zeros(0, dtype=np.int64)
        self.priority = self._priorities(view)
        self.preemptible = self.priority < rules.NON_PREEMPTIBLE_FROM
        c = view.cluster
        cpu_cap, mem_cap = np.asarray(c.cpu_cap), np.asarray(c.mem_cap)
        cpu_on = bool(np.isfinite(cpu_cap).all() and len(cpu_cap))
        mem_on = bool(np.isfinite(mem_cap).all() and len(mem_cap))
        self.req = np.zeros((jobs.n, 3))
        self.req[:, 0] = jobs.gpu_share
        if cpu_on:
            self.req[:, 1] = np.asarray(jobs.cpus) * 1000.0
        if mem_on:
            self.req[:, 2] = np.asarray(jobs.mem) * _GIB
        self.totals = {
            "gpu": float(c.total_gpus),
            "cpu": float(cpu_cap.sum()) * 1000.0 if cpu_on else 0.0,
            "memory": float(mem_cap.sum()) * _GIB if mem_on else 0.0,
        }
        self.placer = view.placer(self.scoring)
        self.scratch = Scratch(view, self.scoring)
        self.domain_scratch = Scratch(view, self.scoring)
        self.move_scratch = Scratch(view, self.scoring)
        self._topology_setup(view)
        ncls, ntopo = max(jobs.num_classes, 1), int(self.topo_id.max(initial=0)) + 1
        # a group = leaf x demand class x topology constraint x preemptibility: within a
        # group, a job that fails (placement or capacity) means the later ones fail too in
        # the same action
        self.kq = KeyedQueue(
            jobs,
            group=lambda j: (
                ((int(self.leaf[j]) * ncls + int(jobs.demand_class[j])) * ntopo + self.topo_id[j])
                * 2
                + int(not self.preemptible[j])
            ),
        )
        self.pending = np.zeros((len(self.leaves), 3))
        self._usage_hist: dict[str, list[tuple[float, float, float]]] = {q: [] for q in cfg.queues}
        self._cap_hist: list[tuple[float, float, float]] = []
        self._last_alloc: dict[str, float] = {q: 0.0 for q in cfg.queues}
        self._last_time = 0.0
        self._group_reason: dict[int, str] = {}
        self._fresh: set[int] = set()
        self._given: dict[int, str] = {}  # queued job -> the reason last yielded for it
        self._group_given: dict[int, str] = {}  # group -> the reason all its jobs were given
        self._members: dict[int, list[int]] = {}  # group -> jobs pushed into it (may be stale)
        self._arrived: list[int] = []
        self._protect: dict[tuple[str, str], float] = {}  # (reclaimer, victim leaf) -> seconds

    def _priorities(self, view: SchedulerView) -> np.ndarray:
        jobs = view.jobs
        prio = np.asarray(jobs.priority, dtype=np.int64).copy()
        col = self.priority_class_column
        frame = jobs.frame
        if col and col in frame.columns:
            classes = self.config.priority_classes
            names = frame[col].fillna("").astype(str).tolist()
            for j, name in enumerate(names):
                if name in classes:
                    prio[j] = int(classes[name])
        return prio

    def _topology_setup(self, view: SchedulerView) -> None:
        """Per job: the node-domain codes of its topology level (or None), required or not."""
        jobs, c = view.jobs, view.cluster
        n_nodes = len(c.capacity)
        spec = c.spec
        levels: dict[str, np.ndarray] = {
            "hostname": np.arange(n_nodes),
            "node": np.arange(n_nodes),
            "rack": np.asarray(c.racks, dtype=np.int64),
            "leaf": np.asarray(c.racks, dtype=np.int64),
        }
        labels: dict[str, str] = {}
        for level, values in getattr(spec, "topology", {}).items():
            levels[level] = np.unique(np.asarray(values, dtype=object), return_inverse=True)[1]
            for key in getattr(spec, "topology_labels", {}).get(level, ()):
                labels[key] = level
        self._levels = levels
        self.topo_codes: list[np.ndarray | None] = [None] * jobs.n
        self.topo_required = np.zeros(jobs.n, dtype=bool)
        self.topo_id = np.zeros(jobs.n, dtype=np.int64)
        """Per job: 0 = no constraint, else an id of its (level, required) constraint."""
        ids: dict[tuple[str, bool], int] = {}
        frame = jobs.frame
        for col, required in ((self.preferred_column, False), (self.required_column, True)):
            if not col or col not in frame.columns:
                continue
            for j, raw in enumerate(frame[col].tolist()):
                if raw is None or (isinstance(raw, float) and math.isnan(raw)) or str(raw) == "":
                    continue
                key = str(raw).strip()
                level = labels.get(key, key)
                if level not in levels:
                    raise ValueError(
                        f"kai: job {jobs.job_ids[j]!r}: column {col}: unknown topology level "
                        f"{key!r}; the cluster has levels {sorted(levels)} "
                        f"(label keys {sorted(labels)})"
                    )
                self.topo_codes[j] = levels[level]
                self.topo_required[j] = required
                self.topo_id[j] = ids.setdefault((level, required), len(ids) + 1)

    # ------------------------------------------------------------------ keys and accounting
    def _key(self, j: int) -> tuple[int, int]:
        """Within a leaf queue: higher priority first, then arrival."""
        return (-int(self.priority[j]), j)

    def _vec(self, j: int) -> dict[str, float]:
        r = self.req[j]
        return {"gpu": float(r[0]), "cpu": float(r[1]), "memory": float(r[2])}

    def _charge(self, j: int, sign: int) -> None:
        """Job ``j`` started (+1) or was evicted (-1): queue allocations along its path."""
        leaf = self.leaves[int(self.leaf[j])]
        self.pending[int(self.leaf[j])] -= sign * self.req[j]
        for name in self.config.path(leaf):
            q = self.shares[name]
            for i, r in enumerate(RESOURCES):
                s = q.share(r)
                s.allocated += sign * float(self.req[j, i])
                if not self.preemptible[j]:
                    s.allocated_non_preemptible += sign * float(self.req[j, i])

    def _open_session(self, view: SchedulerView) -> None:
        """Allocations from the running jobs, requests, usage, then KAI's fair shares."""
        nleaf = len(self.leaves)
        alloc = np.zeros((nleaf, 3))
        nonp = np.zeros((nleaf, 3))
        run = view.running.array()
        if len(run):
            lv = self.leaf[run]
            for i in range(3):
                alloc[:, i] = np.bincount(lv, weights=self.req[run, i], minlength=nleaf)
                w = np.where(self.preemptible[run], 0.0, self.req[run, i])
                nonp[:, i] = np.bincount(lv, weights=w, minlength=nleaf)
        pend = np.maximum(self.pending, 0.0)

        def table(a: np.ndarray) -> dict[str, dict[str, float]]:
            return {
                q: {r: float(a[i, k]) for k, r in enumerate(RESOURCES)}
                for i, q in enumerate(self.leaves)
            }

        usage = self._usage(view) if self.half_life is not None else None
        self.shares = build_shares(
            self.config, table(alloc + pend), table(alloc), table(nonp), usage
        )
        fair_shares(self.shares, self.totals, self.k_value)
        self._statics()

    def _usage(self, view: SchedulerView) -> dict[str, dict[str, float]]:
        """KAI's time-based usage (GPU) of every queue, from the allocation history."""
        now = view.now
        t0 = self._last_time
        if now > t0:
            for q, a in self._last_alloc.items():
                if a > 0:
                    self._usage_hist[q].append((t0, now, a))
            self._cap_hist.append((t0, now, self.totals["gpu"]))
        self._last_time = now
        if self.window is not None:
            lo = now - self.window
            self._cap_hist = [iv for iv in self._cap_hist if iv[1] > lo]
            for q in self._usage_hist:
                self._usage_hist[q] = [iv for iv in self._usage_hist[q] if iv[1] > lo]
        window = self.window if self.window is not None else math.inf
        out = {}
        for q, hist in self._usage_hist.items():
            u = rules.decayed_usage(hist, self._cap_hist, now, window, self.half_life)
            out[q] = {"gpu": u}
        return out

    # ------------------------------------------------------------------ queue order
    def _statics(self) -> None:
        """Per queue, what the queue order reads and a session does not change."""
        self._static = {}
        for name, q in self.shares.items():
            sh = [q.shares[r] for r in RESOURCES]
            raw = tuple(x.allocatable() for x in sh)
            cap = tuple(
                self.totals[r] if c == UNLIMITED else c for r, c in zip(RESOURCES, raw, strict=True)
            )
            self._static[name] = (
                sh,
                tuple(x.fair_share for x in sh),
                tuple(x.deserved for x in sh),
                raw,
                cap,
                math.inf if raw[0] == UNLIMITED else raw[0],
            )

    def _order_key(self, name: str, extra: np.ndarray) -> tuple:
        """KAI's ``GetQueueOrderResult`` as a sort key (smaller = served first).

        ``extra`` is the head job's request (allocation) or minus the victims (eviction).
        Criteria in KAI's order: over fair share in every resource (FairShareLessThanAllocated);
        not within deserved quota with the job; queue priority; a resource used without an
        allocatable share; dominant share (allocated / allocatable, x1000 without a share)
        with the job, then without; GPU allocatable share; creation time; name.
        """
        sh, fs, des, raw, cap, gpu_cap = self._static[name]
        alloc = [x.allocated for x in sh]
        ex = extra.tolist()
        with_job = [a + e for a, e in zip(alloc, ex, strict=True)]
        over = all(f < a for f, a in zip(fs, alloc, strict=True))
        starved = all(rules._le(a, d) for a, d in zip(with_job, des, strict=True))
        zero = any(r == 0 and a > 0 for r, a in zip(raw, with_job, strict=True))
        q = self.shares[name]
        return (
            over,
            not starved,
            -q.priority,
            zero,
            _dominant(with_job, cap),
            _dominant(alloc, cap),
            gpu_cap,
            q.created,
            name,
        )

    def _pick_leaf(self, best: Mapping[str, int], parent: str = "") -> str | None:
        """The leaf KAI serves next: walk the tree, best child (with its best job) first.

        ``best``: leaf -> its best pending job (leaves without one are absent).
        """
        choice, choice_key = None, None
        for child in self._kids[parent]:
            leaf = child if child in best else None
            if child not in best and self._kids[child]:
                leaf = self._pick_leaf(best, child)
            if leaf is None:
                continue
            key = self._order_key(child, self.req[best[leaf]])
            if choice_key is None or key < choice_key:
                choice, choice_key = leaf, key
        return choice

    def _pending_walk(self, view: SchedulerView, dead: set[int]) -> Iterator[int]:
        """Queued jobs in KAI's order (queue order, then priority, then arrival).

        Groups (leaf x demand class) in ``dead`` are skipped; the caller adds a group when its
        job fails, since a later job of the group cannot do better in the same action.
        """
        groups: dict[int, set[int]] = {}
        for _, j, g in self.kq.heads():
            if g not in dead:
                groups.setdefault(int(self.leaf[j]), set()).add(g)
        tried: set[int] = set()
        while True:
            best: dict[str, int] = {}
            for li, gs in list(groups.items()):
                heads = []
                for g in list(gs):
                    h = self.kq.head(g) if g not in dead else None
                    if h is None:
                        gs.discard(g)
                    else:
                        heads.append(h)
                if not gs:
                    del groups[li]
                    continue
                best[self.leaves[li]] = min(heads)[1]
            if not best:
                return
            j = best[self._pick_leaf(best)]
            if j in tried:  # the caller neither started it nor gave up its group
                dead.add(self.kq.group(j))
                continue
            tried.add(j)
            yield j

    # ------------------------------------------------------------------ placement
    def _place(self, jobs, j: int, on: Scratch | None = None) -> Placement | None:
        """Placement of ``j`` on the live cluster (or on scratch ``on``), topology honoured."""
        codes = self.topo_codes[j]
        placer = self.placer if on is None else on.placer
        if codes is None:
            return placer.place(jobs, j)
        st = placer.cluster
        gpu_free = np.asarray(st.gpu_free)
        cpu_free, mem_free = np.asarray(st.cpu_free), np.asarray(st.mem_free)
        up = np.asarray(st.node_up)
        milli_free = np.maximum(gpu_free, 0).sum(axis=1)
        domains = np.unique(codes[up]) if up.any() else np.zeros(0, dtype=np.int64)
        # binpack domains: the fullest domain that holds the job first (ties: lower code)
        free_by = {int(d): int(milli_free[(codes == d) & up].sum()) for d in domains}
        need = int(jobs.num_gpus[j]) * int(jobs.milli[j])
        sc = self.domain_scratch
        for d in sorted(free_by, key=lambda d: (free_by[d], d)):
            if free_by[d] < need:
                continue
            sc.load(gpu_free, cpu_free, mem_free, up & (codes == d))
            p = sc.place(jobs, j)
            if p is not None:
                return p
        if self.topo_required[j]:
            return None
        return placer.place(jobs, j)

    def _no_fit_reason(self, view: SchedulerView, j: int) -> str:
        """Why ``j`` cannot be placed now, in the words of KAI's fit errors."""
        jobs, c = view.jobs, view.cluster
        cls = jobs.class_of[j]
        n, milli, mask, cpus, mem = jobs.demands[cls]
        pods = jobs.class_pods[cls]
        if self.topo_codes[j] is not None and self.topo_required[j]:
            if self.placer.place(jobs, j) is not None:
                return "topology domain full"
        k = max(pods, 1)
        g, cpp, mpp = n // k, cpus / k, mem / k
        gpu_free = np.asarray(c.gpu_free)
        ok = np.asarray(c.node_up).copy()
        model = np.asarray(c.node_model)
        if mask < 0:
            return "no node has the GPU model asked for"
        if mask > 0:
            ok &= (model >= 0) & (((mask >> np.maximum(model, 0)) & 1) == 1)
        if g > 0:
            per = (gpu_free >= (milli if milli < MILLI else MILLI)).sum(axis=1) // g
        else:
            per = np.full(len(ok), 10**9)
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu_n = np.floor(np.asarray(c.cpu_free) / cpp) if cpp > 0 else np.full(len(ok), 1e9)
            mem_n = np.floor(np.asarray(c.mem_free) / mpp) if mpp > 0 else np.full(len(ok), 1e9)
        if pods == 0 and g > 0 and n > self.placer.max_node_gpus(mask):
            free = int((gpu_free[ok] >= MILLI).sum())
            return f"not enough free GPUs: {free} of {n}"
        fit = np.minimum(np.minimum(per, cpu_n), mem_n)
        fit = np.where(ok, fit, 0)
        total = int(min(fit.sum(), 10**9))
        if total == 0:
            gpu = f"{milli} free milli-GPU" if 0 < milli < MILLI else f"{g} free GPUs"
            if g > 0 and not (ok & (per > 0)).any():
                return f"no node with {gpu}"
            parts = [gpu] if g > 0 else []
            if cpp > 0 and not (ok & (cpu_n > 0) & (per > 0)).any():
                return "no node with " + " and ".join([*parts, f"{cpp:g} free CPUs"])
            return "no node with " + ", ".join([*parts, f"{cpp:g} CPUs", f"{mpp:g} GB free"])
        if total < k:
            return f"gang incomplete: {total} of {k} pods fit"
        return "no placement for all pods"

    # ------------------------------------------------------------------ the session
    def schedule(self, view: SchedulerView) -> Iterator[Decision]:
        """One KAI session: allocate, consolidate, reclaim, preempt."""
        new, back = self.kq.sync(view.queue, self._key)
        for j in (*new, *back):
            self._members.setdefault(self.kq.group(j), []).append(j)
        self._arrived.extend(new)
        self._arrived.extend(back)
        if back:  # jobs came back by other means (node failure): recount the pending requests
            queued = np.unique(np.asarray(view.queue.jobs(), dtype=np.int64))
            self.pending[:] = 0.0
            np.add.at(self.pending, self.leaf[queued], self.req[queued])
        else:
            for j in new:
                self.pending[int(self.leaf[j])] += self.req[j]
        self._open_session(view)
        self._run_by_leaf: list[np.ndarray] | None = None
        self._movable: list[int] | None = None
        self._fresh = set()
        self._group_reason = {}
        self.reasons = {}
        self._wake: list[float] = []
        acts = self.actions
        if "allocate" in acts:
            failed = yield from self._allocate(view, allocate=True)
        else:  # the other actions still look at the jobs in KAI's order
            failed = yield from self._allocate(view, allocate=False)
        if failed and self.consolidation and "consolidation" in acts:
            failed = yield from self._consolidate(view, failed)
        if failed and "reclaim" in acts:
            failed = yield from self._reclaim(view, failed)
        if failed and "preempt" in acts:
            yield from self._preempt(view, failed)
        later = [t for t in self._wake if t > view.now]
        if later and len(view.queue):
            view.wake_at(min(later))
        yield from self._wait_decisions(view)
        if self.half_life is not None:  # the allocation that holds until the next pass
            self._last_alloc = {n: q.shares["gpu"].allocated for n, q in self.shares.items()}

    def _wait_decisions(self, view: SchedulerView) -> Iterator[Wait]:
        """``Wait(j, reason)`` for every queued job whose reason is new or changed.

        Jobs looked at in this pass get their own reason; the others of their group (same leaf
        queue, demand and preemptibility, not looked at because the group's best job failed)
        get the group's. A group's jobs are walked only when the group's reason changed; jobs
        that entered the queue since the last pass are looked at once.
        """
        status, given, group_of = view.jobs.status, self._given, self.kq.group
        for j, reason in self.reasons.items():
            if status[j] == Status.QUEUED and given.get(j) != reason:
                given[j] = reason
                yield Wait(j, reason)
        for g, reason in self._group_reason.items():
            if self._group_given.get(g) == reason:
                continue
            self._group_given[g] = reason
            members = [
                j for j in dict.fromkeys(self._members.get(g, ())) if status[j] == Status.QUEUED
            ]
            self._members[g] = members
            for j in members:
                if j not in self.reasons and given.get(j) != reason:
                    given[j] = reason
                    yield Wait(j, reason)
        for j in self._arrived:
            reason = self.reasons.get(j) or self._group_reason.get(group_of(j))
            if reason and status[j] == Status.QUEUED and given.get(j) != reason:
                given[j] = reason
                yield Wait(j, reason)
        self._arrived = []
        for g in [g for g in self._group_given if g not in self._group_reason]:
            del self._group_given[g]  # walk the group again when it next fails

    def _start(self, view: SchedulerView, j: int, p: Placement, action: str):
        yield Start(j, p)
        self._fresh.add(j)
        self._given.pop(j, None)
        self._charge(j, +1)
        self.counts[action] += 1
        self.reasons.pop(j, None)

    def _wait(self, j: int, g: int, reason: str) -> None:
        """Record why ``j`` (and its group) waits: the one place reasons are made."""
        self.reasons[j] = reason
        self._group_reason.setdefault(g, reason)

    def pending_reason(self, j: int) -> str:
        """Why queued job ``j`` waited at the last pass ('' if it was not looked at)."""
        if j in self.reasons:
            return self.reasons[j]
        return self._group_reason.get(self.kq.group(j), "")

    def _capacity_reason(self, j: int) -> str | None:
        leaf = self.leaves[int(self.leaf[j])]
        vec = self._vec(j)
        hit = rules.over_limit(self.shares, leaf, vec)
        if hit is not None:
            return f"queue over limit: {hit[0]} {hit[1]}"
        hit = rules.non_preemptible_over_quota(self.shares, leaf, vec, bool(self.preemptible[j]))
        if hit is not None:
            return f"non-preemptible job over quota: {hit[0]} {hit[1]}"
        return None

    def _allocate(self, view: SchedulerView, allocate: bool = True):
        """The allocate action; with ``allocate=False`` only the jobs that wait, and why."""
        jobs = view.jobs
        dead: set[int] = set()
        failed: dict[int, int] = {}
        for j in self._pending_walk(view, dead):
            g = self.kq.group(j)
            reason = self._capacity_reason(j)
            p = None
            if reason is None and not allocate:
                p, reason = None, self._no_fit_reason(view, j)
            elif reason is None:
                p = self._place(jobs, j)
                if p is None:
                    reason = self._no_fit_reason(view, j)
            if p is not None:
                yield from self._start(view, j, p, "allocate")
                continue
            self._wait(j, g, reason)
            dead.add(g)
            failed[g] = j
        return failed

    # ------------------------------------------------------------------ consolidate
    def _consolidate(self, view: SchedulerView, failed: dict[int, int]):
        jobs = view.jobs
        left: dict[int, int] = {}
        for g, j in failed.items():
            if jobs.status[j] != Status.QUEUED or self._capacity_reason(j) is not None:
                left[g] = j
                continue
            plan = self._consolidation_plan(view, j)
            if plan is None:
                left[g] = j
                continue
            moves, p = plan
            for v, q in moves:
                yield Migrate(v, q)
                self._fresh.add(v)  # moved once per pass at most, and not a victim after
                self.counts["migrated"] += 1
            yield from self._start(view, j, p, "consolidate")
        return left

    def _consolidation_plan(self, view: SchedulerView, j: int):
        """Moves of running jobs (each to a new place) that let ``j`` start, or None.

        Greedy, as few moves as it finds: running preemptible jobs without topology
        constraints, fewest GPUs first (then the latest started), are moved one by one to
        other nodes where the cluster is free now, until ``j`` fits in the room they leave.
        """
        jobs, c = view.jobs, view.cluster
        need = float(jobs.gpu_share[j])
        if c.total_gpus - c.allocated_milli / MILLI + _EPS < need:
            return None  # moving jobs cannot create GPUs
        if self._movable is None:  # once per pass: preemptible, unconstrained, fewest GPUs first
            run = view.running.array()
            run = run[self.preemptible[run] & (self.topo_id[run] == 0)]
            share, start = np.asarray(jobs.gpu_share)[run], np.asarray(jobs.run_start)[run]
            self._movable = run[np.lexsort((-run, -start, share))].tolist()
        status, fresh, cands = np.asarray(jobs.status), self._fresh, []
        for v in self._movable:  # a bounded search, as KAI's solver has a budget
            if v not in fresh and status[v] == Status.RUNNING:
                cands.append(v)
                if len(cands) == 4 * self.max_moves:
                    break
        if not cands:
            return None
        sc, move = self.scratch.reset(), self.move_scratch
        moves: list[tuple[int, Placement]] = []
        for v in cands:
            if len(moves) >= self.max_moves:
                break
            old = jobs.placements[v]
            up = np.asarray(sc.state.node_up).copy()
            up[old.nodes] = False
            gpu_free, cpu_free, mem_free = sc.arrays()
            q = move.load(gpu_free, cpu_free, mem_free, up).place(jobs, v)
            if q is None:
                continue
            sc.take(q)
            sc.release(old)
            moves.append((v, q))
            p = self._place(jobs, j, on=sc)
            if p is not None:
                return moves, p
        return None

    # ------------------------------------------------------------------ reclaim
    def _reclaim(self, view: SchedulerView, failed: dict[int, int]):
        jobs = view.jobs
        left: dict[int, int] = {}
        for g, j in self._in_queue_order(failed):
            if jobs.status[j] != Status.QUEUED:
                continue
            leaf = self.leaves[int(self.leaf[j])]
            vec, pre = self._vec(j), bool(self.preemptible[j])
            if not rules.can_reclaim_resources(self.shares, leaf, vec, pre):
                left[g] = j
                continue
            victims = self._reclaim_victims(view, j, leaf)
            if not victims:
                left[g] = j
                continue
            for v in victims:
                yield Preempt(v)
                self._evicted(v)
            p = self._place(jobs, j)
            if p is not None:
                yield from self._start(view, j, p, "reclaim")
        return left

    def _in_queue_order(self, failed: Mapping[int, int]) -> list[tuple[int, int]]:
        """The failed jobs, re-sorted in the order KAI's next action pops them."""
        out, todo = [], dict(failed)
        while todo:
            best: dict[str, int] = {}
            for j in todo.values():
                leaf = self.leaves[int(self.leaf[j])]
                if leaf not in best or self._key(j) < self._key(best[leaf]):
                    best[leaf] = j
            leaf = self._pick_leaf(best)
            j = best[leaf]
            g = next(g for g, x in todo.items() if x == j)
            out.append((g, j))
            del todo[g]
        return out

    def _evicted(self, v: int) -> None:
        self._charge(v, -1)
        self.kq.push(v, self._key(v))
        self._members.setdefault(self.kq.group(v), []).append(v)
        self._arrived.append(v)
        self.counts["evicted"] += 1

    def _running_of(self, view: SchedulerView, li: int) -> np.ndarray:
        """Preemptible jobs of leaf ``li`` running at the start of the pass, in victim order.

        Lowest priority, then latest start, then latest arrival first (cached for the pass).
        """
        if self._run_by_leaf is None:
            run = view.running.array()
            run = run[self.preemptible[run]]
            start = np.asarray(view.jobs.run_start)[run]
            order = np.lexsort((-run, -start, self.priority[run], self.leaf[run]))
            run = run[order]
            cuts = np.searchsorted(self.leaf[run], np.arange(len(self.leaves) + 1))
            self._run_by_leaf = [run[cuts[i] : cuts[i + 1]] for i in range(len(self.leaves))]
        return self._run_by_leaf[li]

    def _victim_pool(self, view: SchedulerView, li: int, below: int | None) -> list[int]:
        """Running preemptible jobs of leaf ``li`` not started in this pass, in victim order.

        With ``below``: only those of priority below it (see :meth:`_running_of`).
        """
        arr = self._running_of(view, li)
        ok = np.asarray(view.jobs.status)[arr] == Status.RUNNING
        if below is not None:
            ok &= self.priority[arr] < below
        fresh = self._fresh
        return [v for v in arr[ok].tolist() if v not in fresh]

    def _reclaim_victims(self, view: SchedulerView, j: int, leaf: str) -> list[int] | None:
        jobs, now = view.jobs, view.now
        by_leaf: dict[str, list[int]] = {}
        for li, vl in enumerate(self.leaves):
            if vl == leaf:
                continue
            pool = self._victim_pool(view, li, None)
            if not pool:
                continue
            key = (leaf, vl)
            protect = self._protect.get(key)
            if protect is None:
                protect = self._protect[key] = rules.reclaim_min_runtime(
                    self.config, leaf, vl, self.reclaim_method, self.reclaim_default
                )
            # a queue the scenario check refuses to take even its first victim from is left out
            # (taking more from it, or with more victims elsewhere, cannot pass either)
            vec0 = self._vec(pool[0])
            if not rules.reclaimable(
                self.shares, leaf, self._vec(j), bool(self.preemptible[j]), {vl: [vec0]},
                self.saturation_multiplier,
            ):  # fmt: skip
                continue
            if protect <= 0:
                by_leaf[vl] = pool
                continue
            run_start = np.asarray(jobs.run_start)
            for v in pool:
                start = float(run_start[v])
                if rules.min_runtime_protected(now, start, protect):
                    self._wake.append(start + protect)
                else:
                    by_leaf.setdefault(vl, []).append(v)
        if not by_leaf:
            return None
        order = self._victim_order(by_leaf)
        return self._solve(view, j, order, reclaim=True)

    def _victim_order(self, by_leaf: dict[str, list[int]]) -> Iterator[int]:
        """Victims in KAI's reverse queue order, re-judged after every victim taken (lazily).

        A queue's key changes only when a victim is taken below it, so keys are kept and only
        those on the taken victim's path are recomputed.
        """
        taken = {q: np.zeros(3) for q in self.config.queues}
        left = {q: list(reversed(vs)) for q, vs in by_leaf.items()}  # pop() = next victim
        memo: dict[str, tuple[str | None, tuple | None]] = {}
        while True:
            leaf, _ = self._pick_victim_leaf(left, taken, "", memo)
            if leaf is None:
                return
            v = left[leaf].pop()
            for name in self.config.path(leaf):
                taken[name] += self.req[v]
                memo.pop(name, None)
            memo.pop("", None)
            yield v

    def _pick_victim_leaf(self, left, taken, parent: str, memo) -> tuple[str | None, tuple | None]:
        """The leaf to take the next victim from under ``parent`` (and its key), memoised."""
        if parent in memo:
            return memo[parent]
        choice, choice_key = None, None
        for child in self._kids[parent]:
            if child in memo:
                leaf, key = memo[child]
            else:
                if self._kids[child]:
                    leaf, _ = self._pick_victim_leaf(left, taken, child, memo)
                else:
                    leaf = child if left.get(child) else None
                key = None
                if leaf is not None:
                    nxt = self.req[left[leaf][-1]]
                    key = self._order_key(child, -(taken[child] + nxt))
                memo[child] = (leaf, key)
            if leaf is not None and (choice_key is None or key > choice_key):
                choice, choice_key = leaf, key
        memo[parent] = (choice, choice_key)
        return choice, choice_key

    def _solve(self, view: SchedulerView, j: int, order: Iterable[int], reclaim: bool):
        """The smallest prefix of ``order`` that makes room and passes KAI's checks, pruned."""
        jobs = view.jobs
        sc = self.scratch.reset()
        chosen: list[int] = []
        for v in order:
            sc.release(jobs.placements[v])
            chosen.append(v)
            if self._place(jobs, j, on=sc) is None:
                continue
            if not self._valid(j, chosen, reclaim):
                return None
            keep = list(chosen)
            for u in reversed(chosen[:-1]):
                sc.take(jobs.placements[u])
                trial = [x for x in keep if x != u]
                if self._place(jobs, j, on=sc) is not None and self._valid(j, trial, reclaim):
                    keep = trial
                else:
                    sc.release(jobs.placements[u])
            return keep
        return None

    def _valid(self, j: int, victims: Sequence[int], reclaim: bool) -> bool:
        leaf = self.leaves[int(self.leaf[j])]
        vec, pre = self._vec(j), bool(self.preemptible[j])
        if reclaim:
            by_queue: dict[str, list[dict[str, float]]] = {}
            for v in victims:
                by_queue.setdefault(self.leaves[int(self.leaf[v])], []).append(self._vec(v))
            return rules.reclaimable(
                self.shares, leaf, vec, pre, by_queue, self.saturation_multiplier
            )
        for v in victims:  # preempt: the queue's limits with the victims gone
            self._charge(v, -1)
        ok = rules.over_limit(self.shares, leaf, vec) is None
        for v in victims:
            self._charge(v, +1)
        return ok

    # ------------------------------------------------------------------ preempt
    def _preempt(self, view: SchedulerView, failed: dict[int, int]):
        jobs, now = view.jobs, view.now
        for _, j in self._in_queue_order(failed):
            if jobs.status[j] != Status.QUEUED:
                continue
            leaf = self.leaves[int(self.leaf[j])]
            vec, pre = self._vec(j), bool(self.preemptible[j])
            if rules.non_preemptible_over_quota(self.shares, leaf, vec, pre) is not None:
                continue
            protect = rules.preempt_min_runtime(self.config, leaf, self.preempt_default)
            cands = []
            prio = int(self.priority[j])
            for v in self._victim_pool(view, int(self.leaf[j]), prio):
                if not rules.can_preempt(prio, int(self.priority[v]), True):
                    continue
                start = float(jobs.run_start[v])
                if rules.min_runtime_protected(now, start, protect):
                    self._wake.append(start + protect)
                    continue
                cands.append(v)
            if not cands:
                continue
            victims = self._solve(view, j, cands, reclaim=False)  # (in victim order)
            if not victims:
                continue
            for v in victims:
                yield Preempt(v)
                self._evicted(v)
            p = self._place(jobs, j)
            if p is not None:
                yield from self._start(view, j, p, "preempt")
