"""Kueue's quota accounting, flavor assignment and classical preemption, as pure code.

Quota lives on a tree: ClusterQueues are leaves, Cohorts inner nodes (a Cohort may have its own
quota and a parent Cohort). Amounts are integers per ``(flavor, resource)`` in Kueue's units
(CPU in millicores, memory in bytes, other resources as counts). The rules follow Kueue's
``resourceNode``:

* a node's *subtree quota* is its nominal quota plus what its children lend (a child lends its
  subtree quota minus what it keeps: ``max(0, subtree - lendingLimit)``);
* usage beyond what a child keeps locally counts against its parent;
* ``available(cq)`` = what it keeps locally and unused + what the parent can give, the latter
  capped by ``borrowingLimit`` (stored in parent - used in parent + borrowingLimit);
* ``potential_available(cq)`` = the same with no usage anywhere (the biggest admissible job);
* a ClusterQueue *borrows* when its usage exceeds its nominal quota.

Flavor assignment walks a resource group's flavors in order and keeps the first flavor that
fits without borrowing or preemption; otherwise it follows ``flavorFungibility``
(``whenCanBorrow`` MayStopSearch | TryNextFlavor, ``whenCanPreempt`` TryNextFlavor |
MayStopSearch). Preemption (Kueue's classical algorithm) orders candidates (already evicted
first, other ClusterQueues before the preemptor's own, lower priority first, most recently
admitted first), removes them one by one until the incoming workload fits, then adds back, in
reverse order, those that were not needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Admitted",
    "FlavorChoice",
    "Node",
    "Preemption",
    "QuotaTree",
    "assign_flavor",
    "preemption_targets",
    "satisfies_policy",
]

FR = tuple[str, str]
"""A (flavor, resource) pair."""


@dataclass(frozen=True)
class Preemption:
    """A ClusterQueue's ``spec.preemption``.

    Attributes:
        within_cluster_queue: Never | LowerPriority | LowerOrNewerEqualPriority.
        reclaim_within_cohort: Never | LowerPriority | Any.
        borrow_within_cohort: Never | LowerPriority.
        max_priority_threshold: ``borrowWithinCohort.maxPriorityThreshold`` (None = no cap).
    """

    within_cluster_queue: str = "Never"
    reclaim_within_cohort: str = "Never"
    borrow_within_cohort: str = "Never"
    max_priority_threshold: int | None = None


@dataclass
class Node:
    """A ClusterQueue (leaf) or Cohort of the quota tree.

    Attributes:
        name: object name.
        is_cq: ClusterQueue (True) or Cohort.
        parent: parent Cohort name ('' = root).
        nominal: (flavor, resource) -> nominal quota.
        borrowing_limit: (flavor, resource) -> limit (absent = unlimited).
        lending_limit: (flavor, resource) -> limit (absent = lends everything).
        preemption: the ClusterQueue's preemption policies.
        usage: (flavor, resource) -> usage counted at this node.
        subtree: (flavor, resource) -> subtree quota (computed).
    """

    name: str
    is_cq: bool = True
    parent: str = ""
    nominal: dict[FR, int] = field(default_factory=dict)
    borrowing_limit: dict[FR, int] = field(default_factory=dict)
    lending_limit: dict[FR, int] = field(default_factory=dict)
    preemption: Preemption = field(default_factory=Preemption)
    usage: dict[FR, int] = field(default_factory=dict)
    subtree: dict[FR, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Admitted:
    """An admitted workload: where it is and what quota it holds.

    Attributes:
        name: workload name (unique).
        cq: its ClusterQueue.
        usage: (flavor, resource) -> amount held.
        priority: effective priority.
        admitted_at: quota-reservation time, seconds (later = more recent).
        created: creation time, seconds (for LowerOrNewerEqualPriority).
        evicted: already marked for eviction.
    """

    name: str
    cq: str
    usage: Mapping[FR, int]
    priority: int = 0
    admitted_at: float = 0.0
    created: float = 0.0
    evicted: bool = False


class QuotaTree:
    """The cohort forest with usage; a mutable scratch state for admission decisions."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes: dict[str, Node] = {}
        for n in nodes:
            if n.name in self.nodes:
                raise ValueError(f"kueue: duplicate queue/cohort name {n.name!r}")
            self.nodes[n.name] = n
        for n in list(self.nodes.values()):
            if n.parent and n.parent not in self.nodes:
                self.nodes[n.parent] = Node(n.parent, is_cq=False)  # implicit cohort
        for n in list(self.nodes.values()):
            seen = {n.name}
            p = n.parent
            while p:
                if p in seen:
                    raise ValueError(f"kueue: cohort cycle through {p!r}")
                seen.add(p)
                p = self.nodes[p].parent
        self.children: dict[str, list[str]] = {k: [] for k in self.nodes}
        for n in self.nodes.values():
            if n.parent:
                self.children[n.parent].append(n.name)
        self.workloads: dict[str, Admitted] = {}
        self._refresh_quota()

    # ------------------------------------------------------------------ quota
    def _refresh_quota(self) -> None:
        for root in (n for n in self.nodes.values() if not n.parent):
            self._subtree(root)

    def _subtree(self, n: Node) -> None:
        n.subtree = dict(n.nominal)
        for c in self.children[n.name]:
            child = self.nodes[c]
            self._subtree(child)
            for fr, q in child.subtree.items():
                n.subtree[fr] = n.subtree.get(fr, 0) + q - self._local(child, fr)

    def _local(self, n: Node, fr: FR) -> int:
        """Quota kept in ``n``'s subtree, never lent to its parent."""
        if fr in n.lending_limit:
            return max(0, n.subtree.get(fr, 0) - n.lending_limit[fr])
        return 0

    def local_available(self, n: Node, fr: FR) -> int:
        """Unused quota kept locally at ``n``."""
        return max(0, self._local(n, fr) - n.usage.get(fr, 0))

    def _available(self, n: Node, fr: FR) -> int:
        if not n.parent:
            return n.subtree.get(fr, 0) - n.usage.get(fr, 0)
        parent = self._available(self.nodes[n.parent], fr)
        if fr in n.borrowing_limit:
            lq = self._local(n, fr)
            stored = n.subtree.get(fr, 0) - lq
            used = max(0, n.usage.get(fr, 0) - lq)
            parent = min(stored - used + n.borrowing_limit[fr], parent)
        return self.local_available(n, fr) + parent

    def available(self, cq: str, fr: FR) -> int:
        """What ``cq`` can admit now in ``fr`` without preemption (>= 0)."""
        return max(0, self._available(self.nodes[cq], fr))

    def potential_available(self, cq: str, fr: FR) -> int:
        """The most ``cq`` could ever hold of ``fr`` (no usage anywhere)."""
        return self._potential(self.nodes[cq], fr)

    def _potential(self, n: Node, fr: FR) -> int:
        if not n.parent:
            return n.subtree.get(fr, 0)
        avail = self._local(n, fr) + self._potential(self.nodes[n.parent], fr)
        if fr in n.borrowing_limit:
            avail = min(n.subtree.get(fr, 0) + n.borrowing_limit[fr], avail)
        return avail

    def borrowing_with(self, name: str, fr: FR, val: int) -> bool:
        """Whether ``name`` would use more than its (subtree) quota with ``val`` more."""
        n = self.nodes[name]
        quota = n.nominal.get(fr, 0) if n.is_cq else n.subtree.get(fr, 0)
        return quota < n.usage.get(fr, 0) + val

    def within_nominal(self, name: str, frs: Iterable[FR]) -> bool:
        """Usage within (subtree) quota in all of ``frs``."""
        n = self.nodes[name]
        return all(n.subtree.get(fr, 0) >= n.usage.get(fr, 0) for fr in frs)

    # ------------------------------------------------------------------ usage
    def _add(self, n: Node, fr: FR, val: int) -> None:
        local = self.local_available(n, fr)
        n.usage[fr] = n.usage.get(fr, 0) + val
        if n.parent and val > local:
            self._add(self.nodes[n.parent], fr, val - local)

    def _remove(self, n: Node, fr: FR, val: int) -> None:
        stored = n.usage.get(fr, 0) - self._local(n, fr)
        n.usage[fr] = n.usage.get(fr, 0) - val
        if stored <= 0 or not n.parent:
            return
        self._remove(self.nodes[n.parent], fr, min(val, stored))

    def admit(self, w: Admitted) -> None:
        """Add an admitted workload's usage (KeyError for an unknown ClusterQueue)."""
        if w.name in self.workloads:
            raise ValueError(f"kueue: workload {w.name!r} is already admitted")
        node = self.nodes[w.cq]
        for fr, v in w.usage.items():
            self._add(node, fr, int(v))
        self.workloads[w.name] = w

    def evict(self, name: str) -> Admitted:
        """Remove an admitted workload's usage; returns it."""
        w = self.workloads.pop(name)
        for fr, v in w.usage.items():
            self._remove(self.nodes[w.cq], fr, int(v))
        return w

    def path_to_root(self, name: str) -> list[str]:
        """Ancestors of ``name``, parent first."""
        out, p = [], self.nodes[name].parent
        while p:
            out.append(p)
            p = self.nodes[p].parent
        return out

    def subtree_cqs(self, name: str) -> list[str]:
        """ClusterQueues under ``name`` (itself if it is one)."""
        if self.nodes[name].is_cq:
            return [name]
        return [q for c in self.children[name] for q in self.subtree_cqs(c)]

    def fits_in_quota(self, name: str, requests: Mapping[FR, int]) -> tuple[bool, dict[FR, int]]:
        """Kueue's ``QuantitiesFitInQuota``: fits in ``name``'s subtree, and what exceeds local."""
        n = self.nodes[name]
        fits = all(n.subtree.get(fr, 0) >= n.usage.get(fr, 0) + v for fr, v in requests.items())
        rest = {fr: max(0, v - self.local_available(n, fr)) for fr, v in requests.items()}
        return fits, rest


# ---------------------------------------------------------------------------------- flavors
@dataclass(frozen=True)
class FlavorChoice:
    """Result of flavor assignment for one resource group.

    Attributes:
        flavor: chosen flavor ('' when none fits).
        mode: ``Fit``, ``Preempt`` or ``NoFit``.
        borrows: the choice needs borrowing from the cohort.
        tried: flavor -> (mode, borrows) of every flavor considered, in order.
    """

    flavor: str
    mode: str
    borrows: bool
    tried: tuple[tuple[str, str, bool], ...] = ()


_RANK = {"NoFit": 0, "NoCandidates": 1, "Preempt": 2, "Reclaim": 3, "Fit": 4}


def assign_flavor(
    tree: QuotaTree,
    cq: str,
    flavors: Sequence[str],
    requests: Mapping[str, int],
    *,
    when_can_borrow: str = "MayStopSearch",
    when_can_preempt: str = "TryNextFlavor",
    preference: str = "BorrowingOverPreemption",
    eligible: Callable[[str], bool] | None = None,
    can_preempt: Callable[[str], bool | tuple[bool, bool]] | None = None,
) -> FlavorChoice:
    """Choose a flavor of one resource group for a workload's ``requests`` (resource -> amount).

    For each flavor in order (skipping those ``eligible`` rejects: node labels / taints), each
    requested resource is ``NoFit`` when it exceeds :meth:`QuotaTree.potential_available`,
    ``Fit`` when within :meth:`QuotaTree.available` (borrowing when above the nominal quota),
    else ``Preempt`` when preemption could help (``can_preempt(flavor)``; default: always; it
    may instead return ``(mode, borrows)`` as Kueue's preemption oracle does: ``mode`` one of
    ``NoFit``, ``NoCandidates``, ``Preempt`` (a target in the workload's own ClusterQueue) or
    ``Reclaim`` (targets only in other ClusterQueues), ranked in that order below ``Fit``, and
    ``borrows`` whether the workload still borrows once the targets are gone) and
    ``NoFit`` otherwise. A flavor's mode is its worst resource's. A flavor that fits without
    borrowing is taken at once; ``MayStopSearch`` stops at the first flavor that fits by
    borrowing (``whenCanBorrow``) or by preempting (``whenCanPreempt``); otherwise the best
    flavor seen wins (``BorrowingOverPreemption``: fit > preempt, then no borrowing).
    """
    best: tuple[str, str, bool] | None = None
    tried = []
    for fl in flavors:
        if eligible is not None and not eligible(fl):
            tried.append((fl, "NoFit", False))
            continue
        mode, borrows = "Fit", False
        for res, val in requests.items():
            fr = (fl, res)
            b = tree.borrowing_with(cq, fr, val)
            if val > tree.potential_available(cq, fr):
                m = "NoFit"
            elif val <= tree.available(cq, fr):
                m = "Fit"
            else:
                ok = True if can_preempt is None else can_preempt(fl)
                if isinstance(ok, tuple):  # (mode, borrowing once the targets are gone)
                    ok, b = ok
                m = ok if isinstance(ok, str) else ("Preempt" if ok else "NoFit")
            borrows = borrows or b
            if _RANK[m] < _RANK[mode]:
                mode = m
        tried.append((fl, mode, borrows))
        if mode == "NoFit":
            continue
        cand = (fl, mode, borrows)
        if best is None or _better(cand, best, preference):
            best = cand
        stop = not borrows and mode == "Fit"
        stop = stop or (
            mode == "Fit" and borrows and when_can_borrow in ("MayStopSearch", "Borrow")
        )
        stop = stop or (
            mode in ("Preempt", "Reclaim")
            and when_can_preempt in ("MayStopSearch", "Preempt")
            and (not borrows or when_can_borrow in ("MayStopSearch", "Borrow"))
        )
        if stop:
            best = cand
            break
    if best is None:
        return FlavorChoice("", "NoFit", False, tuple(tried))
    return FlavorChoice(best[0], best[1], best[2], tuple(tried))


def _better(a: tuple[str, str, bool], b: tuple[str, str, bool], preference: str) -> bool:
    if preference == "PreemptionOverBorrowing":
        if a[2] != b[2]:
            return not a[2]
        return _RANK[a[1]] > _RANK[b[1]]
    if a[1] != b[1]:
        return _RANK[a[1]] > _RANK[b[1]]
    return not a[2] and b[2]


# ---------------------------------------------------------------------------------- preemption
def satisfies_policy(policy: str, preemptor: Admitted, candidate: Admitted) -> bool:
    """Kueue's ``SatisfiesPreemptionPolicy``: Never, LowerPriority, LowerOrNewer..., Any."""
    lower = preemptor.priority > candidate.priority
    if policy == "LowerPriority":
        return lower
    if policy == "LowerOrNewerEqualPriority":
        return lower or (
            preemptor.priority == candidate.priority and preemptor.created < candidate.created
        )
    return policy == "Any"


def preemption_targets(
    tree: QuotaTree, incoming: Admitted, needs_preemption: Iterable[FR]
) -> list[str]:
    """Workloads Kueue's classical preemption evicts so that ``incoming`` fits (empty = none).

    ``incoming.usage`` is the quota it asks per (flavor, resource) as assigned; ``needs_preemption``
    the flavor-resources whose assignment mode is ``Preempt``. The tree is restored afterwards.
    """
    frs = set(needs_preemption)
    cq = tree.nodes[incoming.cq]
    cands: list[tuple[Admitted, str]] = []
    for w in tree.workloads.values():
        if not any(fr in frs for fr in w.usage if w.usage[fr] > 0):
            continue
        if w.cq == cq.name:
            if cq.preemption.within_cluster_queue != "Never" and satisfies_policy(
                cq.preemption.within_cluster_queue, incoming, w
            ):
                cands.append((w, "WithinCQ"))
    hier: list[tuple[Admitted, str]] = []
    prio: list[tuple[Admitted, str]] = []
    if cq.parent and cq.preemption.reclaim_within_cohort != "Never":
        adv, rest = tree.fits_in_quota(cq.name, incoming.usage)
        prev = cq.name
        for root in tree.path_to_root(cq.name):
            target = hier if adv else prio
            for other in _subtree_cqs_over_quota(tree, root, prev, frs, cq.name):
                for w in tree.workloads.values():
                    if w.cq != other or not any(fr in frs for fr in w.usage if w.usage[fr] > 0):
                        continue
                    if not satisfies_policy(cq.preemption.reclaim_within_cohort, incoming, w):
                        continue
                    target.append((w, _variant(cq, w, incoming, adv)))
            fits, rest = tree.fits_in_quota(root, rest)
            adv = adv or fits
            prev = root
    key = _ordering(cq.name)
    groups = [sorted(g, key=lambda c: key(c[0])) for g in (hier, prio, cands)]
    ordered = [c for g in groups for c in g if c[0].evicted] + [
        c for g in groups for c in g if not c[0].evicted
    ]
    forbidden = cq.preemption.borrow_within_cohort == "Never"
    if not hier and not prio or (forbidden and not _under_nominal(tree, cq, frs)):
        attempts = [True]
    elif forbidden and not hier:
        attempts = [False, True]
    else:
        attempts = [True, False]
    for allow_borrowing in attempts:
        removed: list[Admitted] = []
        for w, variant in ordered:
            if not _valid(tree, cq.name, w, variant, allow_borrowing, frs):
                continue
            removed.append(tree.evict(w.name))
            if _fits(tree, incoming, allow_borrowing):
                for i in range(len(removed) - 2, -1, -1):  # fill back what was not needed
                    tree.admit(removed[i])
                    if _fits(tree, incoming, allow_borrowing):
                        removed[i] = None  # type: ignore[call-overload]
                    else:
                        tree.evict(removed[i].name)
                targets = [w for w in removed if w is not None]
                for w in targets:
                    tree.admit(w)
                return [w.name for w in targets]
        for w in removed:
            tree.admit(w)
    return []


def _subtree_cqs_over_quota(tree: QuotaTree, root: str, skip: str, frs: set, me: str) -> list[str]:
    out = []
    for c in tree.children[root]:
        if c == skip or c == me:
            continue
        if tree.nodes[c].is_cq:
            if not tree.within_nominal(c, frs):
                out.append(c)
        elif not tree.within_nominal(c, frs):
            out.extend(_subtree_cqs_over_quota(tree, c, skip, frs, me))
    return out


def _variant(cq: Node, w: Admitted, incoming: Admitted, advantage: bool) -> str:
    if advantage:
        return "HierarchicalReclaim"
    if cq.preemption.borrow_within_cohort == "Never":
        return "ReclaimWithoutBorrowing"
    t = cq.preemption.max_priority_threshold
    if w.priority >= incoming.priority or (t is not None and w.priority > t):
        return "ReclaimWithoutBorrowing"
    return "ReclaimWhileBorrowing"


def _ordering(own: str):
    return lambda w: (w.cq == own, w.priority, -w.admitted_at, w.name)


def _under_nominal(tree: QuotaTree, cq: Node, frs: set) -> bool:
    return all(cq.nominal.get(fr, 0) > cq.usage.get(fr, 0) for fr in frs)


def _valid(tree: QuotaTree, me: str, w: Admitted, variant: str, borrow: bool, frs: set) -> bool:
    if w.cq == me:
        return True
    if borrow and variant == "ReclaimWithoutBorrowing":
        return False
    if tree.within_nominal(w.cq, frs):
        return False
    for node in tree.path_to_root(w.cq):
        if me in tree.subtree_cqs(node):
            break
        if tree.within_nominal(node, frs):
            return False
    return True


def _fits(tree: QuotaTree, incoming: Admitted, allow_borrowing: bool) -> bool:
    for fr, v in incoming.usage.items():
        if not allow_borrowing and tree.borrowing_with(incoming.cq, fr, v):
            return False
        if v > tree.available(incoming.cq, fr):
            return False
    return True
