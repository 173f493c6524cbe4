"""Fragmentation Gradient Descent (Weng et al., ATC'23) and the node scores it is compared with."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import numpy as np

from policies import fragmentation as frag
from policies.base import Decision, Policy, Reject, Start, overrides
from policies.fgd_pass import FgdPass, new_fgd_pass
from policies.gang import new_walk
from simulator.core import kernels
from simulator.core.cluster import MILLI
from simulator.core.jobs import Status
from simulator.core.placement import Placement
from simulator.core.view import SchedulerView

__all__ = ["FgdPolicy", "SCORINGS", "TIE_BREAKS"]

SCORINGS = ("fgd", *frag.BASELINE_SCORES)
"""Values of ``scoring``: ``fgd`` and the baselines of :mod:`policies.fragmentation`."""

TIE_BREAKS = ("ranking", "random", "first")
"""Values of ``tie_break`` (see :class:`FgdPolicy`)."""


class FgdPolicy(Policy):
    """Arrival-order placement of (possibly GPU-sharing) tasks by FGD or an FGD-paper baseline.

    Tasks are taken in arrival order, each placed at once or not at all. ``scoring="fgd"``
    puts a task on the node, and for a shared-GPU task on the GPU, where the node's expected
    fragmentation for the workload (:mod:`policies.fragmentation`) grows least. The workload
    is the distribution of task types over the whole trace (GPUs, milli-GPU, CPU cores, GPU
    models); ``popularity_threshold < 1`` keeps only the most popular types covering that share
    of tasks, added ``type_step`` at a time (the artifact's experiments use 0.95 in steps of 1,
    which drops rare shapes such as 8-GPU tasks, so FGD then no longer keeps whole nodes free
    for them). The baselines ``random``, ``dotprod``, ``gpu_clustering``, ``gpu_packing`` and
    ``bestfit`` score nodes as in the FGD paper's artifact. ``integer_scores=True`` ranks nodes
    by the artifact's integer 0-100 Kubernetes scores instead of exact values. Exact ties go to
    the first node of one random node ranking drawn per run (``tie_break="ranking"``, from the
    run's RNG when the policy is set up: the FGD artifact's rule, see below), to a random node
    drawn afresh for every placement (``"random"``, as the stock Kubernetes scheduler picks
    among equal scores) or to the lowest node id (``"first"``). ``scoring="random"`` draws a
    random node for every task whatever ``tie_break`` says (the artifact's random score is
    drawn per pod). Tasks larger than any node (multi-node gangs) use the shared placer.

    The FGD artifact (hkust-adsl/kubernetes-scheduler-simulator) prefixes every node's name
    with its index in one random permutation per run (``pkg/simulator/simulator.go``), and its
    vendored kube-scheduler's ``selectHost`` keeps the lexicographically smallest name among
    the best-scoring nodes instead of sampling among them: ties always go to the same nodes in
    a run. With ``"random"`` the tasks that tie everywhere (CPU-only tasks under
    ``gpu_packing`` and ``gpu_clustering``, which score them 0 on every node) spread over the
    whole cluster instead of filling the first-ranked nodes.

    A task that fits nowhere is rejected for good (``on_no_fit="reject"``, the FGD experiments'
    "the pod fails and is skipped") or waits, its demand class skipped for the pass
    (``"wait"``).

    Cost per pass: class heads in arrival order, one node scoring per head tried
    (``O(nodes)``; FGD ``O(nodes x task types)``). Compiled pass: :mod:`policies.fgd_pass`.

    Args:
        scoring: ``fgd`` or one of ``random``, ``dotprod``, ``gpu_clustering``,
            ``gpu_packing``, ``bestfit``.
        on_no_fit: ``wait`` or ``reject``.
        popularity_threshold: share of tasks the workload's task types must cover (0, 1].
        type_step: task types added at a time while covering the threshold.
        include_cpu_tasks: CPU-only tasks are a task type of the workload.
        tie_break: ``ranking`` (one random node ranking per run), ``random`` (per placement)
            or ``first`` (lowest node id).
        max_cpu: CPU normalisation of ``dotprod``/``bestfit``, cores.
        max_gpu_milli: GPU normalisation of the baselines, milli-GPU.
        integer_scores: rank nodes by the artifact's integer 0-100 scores (more ties).
    """

    name = "fgd"

    def __init__(
        self,
        scoring: str = "fgd",
        on_no_fit: str = "wait",
        popularity_threshold: float = 1.0,
        type_step: int = 1,
        include_cpu_tasks: bool = True,
        tie_break: str = "random",
        max_cpu: float = 128.0,
        max_gpu_milli: float = 8000.0,
        integer_scores: bool = False,
    ) -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"unknown scoring {scoring!r}; choose one of {list(SCORINGS)}")
        if on_no_fit not in ("wait", "reject"):
            raise ValueError("on_no_fit must be 'wait' or 'reject'")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {tie_break!r}; choose one of {list(TIE_BREAKS)}")
        self.scoring = scoring
        self.on_no_fit = on_no_fit
        self.popularity_threshold = popularity_threshold
        self.type_step = type_step
        self.include_cpu_tasks = include_cpu_tasks
        self.tie_break = tie_break
        self.max_cpu = max_cpu
        self.max_gpu_milli = max_gpu_milli
        self.integer_scores = integer_scores
        self.types: frag.TaskTypes | None = None
        self.placer = None
        self._tags = np.zeros((0, 1), dtype=np.int32)
        self._rank: np.ndarray | None = None
        self._tracked: dict[int, tuple[int, int]] = {}
        self._seen_running = 0

    def setup(self, view: SchedulerView) -> None:
        """Derive the workload's task types from the trace; build the fallback placer.

        With ``tie_break="ranking"`` (and a scoring other than ``random``) this draws the run's
        node ranking: one permutation of the nodes from the run's RNG, before any placement.
        """
        jobs, c = view.jobs, view.cluster
        self.types = frag.task_types(
            jobs.num_gpus,
            jobs.milli,
            jobs.cpus,
            jobs.type_mask,
            self.popularity_threshold,
            self.type_step,
            self.include_cpu_tasks,
        )
        self.placer = view.placer("bestfit")
        self._tags = np.zeros((len(c.capacity), c.gpu_free.shape[1] + 1), dtype=np.int32)
        self._rank = None
        if self.tie_break == "ranking" and self.scoring != "random":
            # rank[i] = position of node i; the smallest key wins a tie (the artifact's
            # "%04d-" name prefix from one rand.Perm, smallest name kept)
            self._rank = view.rng.permutation(len(c.capacity)).astype(np.float64)

    def compiled_pass(self, view: SchedulerView) -> FgdPass | None:
        """The compiled pass (:mod:`policies.fgd_pass`); None if a subclass changes a rule."""
        methods = (
            "schedule",
            "setup",
            "place",
            "_keys",
            "_random_keys",
            "_track",
            "_forget_finished",
        )
        if overrides(self, FgdPolicy, *methods):
            return None
        p = self.placer
        walk = new_walk(p.mode, p.allow_split)
        jobs = view.jobs
        return new_fgd_pass(
            walk,
            fgd=self.scoring == "fgd",
            score_mode=frag.BASELINE_SCORES.get(self.scoring, -1),
            random_keys=self._random_keys(),
            random_slot=self.scoring == "random",
            integer_scores=self.integer_scores,
            max_cpu=self.max_cpu,
            max_gpu=self.max_gpu_milli,
            reject=self.on_no_fit == "reject",
            reason=view.reason_code("fits on no node"),
            clustering=self.scoring == "gpu_clustering",
            node_cap=[p.max_node_gpus(int(mask)) for _, _, mask, _, _ in jobs.demands],
            types=self.types,
            tags=self._tags,
            seen_running=self._seen_running,
            rng=view.rng,
            fixed_keys=self._fixed_keys(len(view.cluster.capacity)),
            num_jobs=jobs.n,
            gpu_free=view.cluster.gpu_free,
            num_classes=len(jobs.demands),
        )

    def compiled_finish(self, state: FgdPass) -> None:
        """Copy back which tasks the shape tags count (``_tags`` is shared)."""
        tracked = np.flatnonzero(state.tnode >= 0)
        self._tracked = {int(j): (int(state.tnode[j]), int(state.ttag[j])) for j in tracked}
        self._seen_running = int(state.state[0])

    def schedule(self, view: SchedulerView) -> Iterator[Decision]:
        """Place queued tasks in arrival order; reject or skip those that fit nowhere."""
        if self.scoring == "gpu_clustering":
            self._forget_finished(view)
        queue = view.queue
        heads = queue.class_heads()
        while heads:
            j, c = heapq.heappop(heads)
            p = self.place(view, j)
            if p is None and self.on_no_fit == "wait":
                continue
            if p is None:
                yield Reject(j, "fits on no node")
            else:
                yield Start(j, p)
                self._track(view, j, p)
            nxt = queue.class_head(c)
            if nxt >= 0:
                heapq.heappush(heads, (nxt, c))
        self._seen_running = len(view.running)

    def place(self, view: SchedulerView, j: int) -> Placement | None:
        """Placement of task ``j`` under this policy's scoring, or None if it fits nowhere."""
        jobs, c = view.jobs, view.cluster
        n, milli = int(jobs.num_gpus[j]), int(jobs.milli[j])
        mask = int(jobs.type_mask[j])
        if n > self.placer.max_node_gpus(mask) or jobs.class_pods[jobs.class_of[j]] > 1:
            return self.placer.place(jobs, j)  # a gang, or pods: the shared rule
        cpus, mem = float(jobs.cpus[j]), float(jobs.mem[j])
        key = self._keys(view)
        if self.scoring == "fgd":
            node, slot, _ = frag.fgd_select(
                c, n, milli, cpus, mem, mask, self.types, key, self.integer_scores
            )
        else:
            u = float(view.rng.random()) if self.scoring == "random" else 0.0
            node, slot = frag.score_select(
                self.scoring,
                c,
                n,
                milli,
                cpus,
                mem,
                mask,
                self._tags,
                key,
                u,
                self.max_cpu,
                self.max_gpu_milli,
                self.integer_scores,
            )
        if node < 0:
            return None
        g = c.gpu_free.shape[1]
        if n == 0:
            gpus = np.empty(0, dtype=np.int64)
        elif milli < MILLI:
            gpus = np.array([node * g + slot], dtype=np.int64)
        else:
            gpus = kernels.pick_full_gpus(c.gpu_free, node, n)
        return Placement(
            np.array([node], dtype=np.int64), gpus, milli, np.array([cpus]), np.array([mem])
        )

    def _random_keys(self) -> bool:
        """Tie-break keys drawn for every placement (else fixed: the ranking or node ids)."""
        return self.scoring == "random" or self.tie_break == "random"

    def _fixed_keys(self, num_nodes: int) -> np.ndarray:
        """The run's node ranking, or node ids (``tie_break="first"``)."""
        if self._rank is not None:
            return self._rank
        return np.arange(num_nodes, dtype=np.float64)

    def _keys(self, view: SchedulerView) -> np.ndarray | None:
        """Tie-break keys of one placement (smallest wins); None = lowest node id."""
        if self._random_keys():
            return view.rng.random(len(view.cluster.capacity))
        return self._rank

    # ------------------------------------------------------------------ gpu_clustering tags
    def _track(self, view: SchedulerView, j: int, p: Placement) -> None:
        if self.scoring != "gpu_clustering" or len(p.nodes) != 1:
            return
        tag = frag.shape_tag(int(view.jobs.num_gpus[j]), int(view.jobs.milli[j]))
        if tag >= 0:
            node = int(p.nodes[0])
            self._tags[node, tag] += 1
            self._tracked[j] = (node, tag)

    def _forget_finished(self, view: SchedulerView) -> None:
        """Drop tags of tracked tasks that stopped running since the last pass."""
        if len(view.running) == self._seen_running:
            return  # only this policy starts tasks, so nothing ended in between
        status = view.jobs.status
        for j in [j for j in self._tracked if status[j] != Status.RUNNING]:
            node, tag = self._tracked.pop(j)
            self._tags[node, tag] -= 1
