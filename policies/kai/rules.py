"""KAI Scheduler's decision rules as pure functions over queue shares (see :mod:`fairshare`).

All vectors are ``{"gpu": ..., "cpu": ..., "memory": ...}`` in one consistent unit per
resource. Sources are KAI's proportion plugin (``capacity_policy``, ``reclaimable``,
``queue_order``), its minruntime plugin and its documentation (docs/priority,
docs/scheduling-deep-dive, docs/time-based-fairshare).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from policies.kai.fairshare import QueueShares
from policies.kai.objects import NON_PREEMPTIBLE_FROM, RESOURCES, UNLIMITED, KaiConfig

__all__ = [
    "can_preempt",
    "can_reclaim_resources",
    "decayed_usage",
    "is_preemptible",
    "min_runtime_protected",
    "non_preemptible_over_quota",
    "over_limit",
    "reclaim_min_runtime",
    "preempt_min_runtime",
    "reclaimable",
    "saturation",
    "victim_queue_order",
]

Vector = Mapping[str, float]


def is_preemptible(priority: int) -> bool:
    """KAI: a workload with priority >= 100 (``build``, ``inference``) is non-preemptible."""
    return priority < NON_PREEMPTIBLE_FROM


def can_preempt(preemptor_priority: int, victim_priority: int, same_queue: bool) -> bool:
    """KAI's preempt action: same queue, victim preemptible, strictly lower priority."""
    return same_queue and is_preemptible(victim_priority) and victim_priority < preemptor_priority


def _path(queues: Mapping[str, QueueShares], leaf: str) -> list[QueueShares]:
    out = []
    while leaf:
        out.append(queues[leaf])
        leaf = queues[leaf].parent
    return out


def over_limit(
    queues: Mapping[str, QueueShares], leaf: str, request: Vector
) -> tuple[str, str] | None:
    """The first ``(queue, resource)`` on the leaf's path whose limit the request would pass.

    KAI's ``resultsOverLimit``: ``limit < allocated + request`` for a requested resource with a
    finite limit (a limit of 0 refuses everything). None when the request fits every limit.
    """
    for q in _path(queues, leaf):
        for r in RESOURCES:
            s, need = q.share(r), float(request.get(r, 0.0))
            if s.max_allowed == UNLIMITED or need == 0:
                continue
            if s.max_allowed < s.allocated + need:
                return q.name, r
    return None


def non_preemptible_over_quota(
    queues: Mapping[str, QueueShares], leaf: str, request: Vector, preemptible: bool
) -> tuple[str, str] | None:
    """For a non-preemptible job, the first ``(queue, resource)`` whose quota it would pass.

    KAI's ``resultsWithNonPreemptibleOverQuota``: ``deserved < allocated_non_preemptible +
    request`` on any queue of the path (unlimited deserved is skipped). None when allowed.
    """
    if preemptible:
        return None
    for q in _path(queues, leaf):
        for r in RESOURCES:
            s, need = q.share(r), float(request.get(r, 0.0))
            if s.deserved == UNLIMITED or need == 0:
                continue
            if s.deserved < s.allocated_non_preemptible + need:
                return q.name, r
    return None


def _le(a: float, b: float) -> bool:
    """``a <= b`` where -1 means unlimited on either side (KAI's ``compareQuantities``)."""
    if a == UNLIMITED:
        return b == UNLIMITED
    return b == UNLIMITED or a <= b


def can_reclaim_resources(
    queues: Mapping[str, QueueShares], leaf: str, request: Vector, preemptible: bool
) -> bool:
    """KAI's ``CanReclaimResources``: may a job of ``leaf`` start the reclaim action at all?

    Its queue's allocated + request must stay within its fair share in every resource; a
    non-preemptible job must also keep the queue's non-preemptible allocation within quota.
    """
    q = queues[leaf]
    for r in RESOURCES:
        s = q.share(r)
        if not _le(s.allocated + float(request.get(r, 0.0)), s.fair_share):
            return False
    if preemptible:
        return True
    return all(
        _le(q.share(r).allocated_non_preemptible + float(request.get(r, 0.0)), q.share(r).deserved)
        for r in RESOURCES
    )


def saturation(allocated: float, fair_share: float) -> float:
    """``allocated / fair share`` (inf when the fair share is 0 and something is allocated)."""
    if fair_share == 0:
        return math.inf if allocated > 0 else 0.0
    if fair_share == UNLIMITED:
        return 0.0
    return allocated / fair_share


def _leveled(queues: Mapping[str, QueueShares], a: str, b: str) -> tuple[QueueShares, QueueShares]:
    """The ancestors of ``a`` and ``b`` just below their lowest common ancestor."""
    pa, pb = _path(queues, a)[::-1], _path(queues, b)[::-1]
    qa, qb = pa[0], pb[0]
    for x, y in zip(pa, pb, strict=False):
        qa, qb = x, y
        if x.name != y.name:
            break
    return qa, qb


def reclaimable(
    queues: Mapping[str, QueueShares],
    leaf: str,
    request: Vector,
    preemptible: bool,
    victims: Mapping[str, Sequence[Vector]],
    saturation_multiplier: float = 1.0,
) -> bool:
    """KAI's reclaim scenario check: may ``leaf``'s job take the resources of ``victims``?

    ``victims`` maps each victim leaf queue to the resource vectors of its victim jobs. For each
    victim, at the level where the two queues' paths split, the victim side must remain above
    its allocatable fair share (MaintainFairShare) or, with the reclaimer side within its
    deserved quota after the job, above its deserved quota (GuaranteeDeservedQuota) -- checked
    with the victim's queue's allocation *before* removing that victim. Then, on every level of
    the reclaimer's path, its saturation (allocated + request) / fair share, if above 1, times
    ``saturation_multiplier`` must stay below the saturation of every sibling that loses
    resources, per involved resource; and a non-preemptible reclaimer must stay within quota.
    """
    remaining: dict[str, dict[str, float]] = {}
    involved: dict[str, set[str]] = {}

    def alloc(name: str) -> dict[str, float]:
        if name not in remaining:
            remaining[name] = {r: queues[name].share(r).allocated for r in RESOURCES}
        return remaining[name]

    for vq, vectors in victims.items():
        rq, eq = _leveled(queues, leaf, vq)
        names = {r for vec in vectors for r in RESOURCES if float(vec.get(r, 0.0)) > 0}
        involved.setdefault(vq, set()).update(names)
        for vec in vectors:
            left = alloc(eq.name)
            if not _fits_strategy(rq, eq, request, left):
                return False
            for q in _path(queues, vq):
                rem = alloc(q.name)
                for r in RESOURCES:
                    rem[r] -= float(vec.get(r, 0.0))
                involved.setdefault(q.name, set()).update(involved[vq])
    mine = {r for r in RESOURCES if float(request.get(r, 0.0)) > 0}
    for q in _path(queues, leaf):
        have = dict(remaining.get(q.name) or {r: q.share(r).allocated for r in RESOURCES})
        for r in RESOURCES:
            have[r] += float(request.get(r, 0.0))
        for sib_name, sib_left in remaining.items():
            sib = queues[sib_name]
            if sib.parent != q.parent or sib.name == q.name:
                continue
            for r in involved.get(sib_name, set()) | mine:
                mine_fs, sib_fs = q.share(r).fair_share, sib.share(r).fair_share
                if mine_fs == UNLIMITED and sib_fs == UNLIMITED:
                    continue
                ratio = saturation(have[r], mine_fs)
                if (
                    ratio > 1
                    and sib_fs > 0
                    and ratio * saturation_multiplier >= saturation(sib_left[r], sib_fs)
                ):
                    return False
        if not preemptible:
            for r in RESOURCES:
                if not _le(
                    q.share(r).allocated_non_preemptible + float(request.get(r, 0.0)),
                    q.share(r).deserved,
                ):
                    return False
    return True


def _fits_strategy(
    reclaimer: QueueShares, reclaimee: QueueShares, request: Vector, left: Vector
) -> bool:
    # MaintainFairShare: the reclaimee stays above its allocatable share in some resource
    if not all(_le(left[r], reclaimee.share(r).allocatable()) for r in RESOURCES):
        return True
    # GuaranteeDeservedQuota: reclaimer within deserved with the job, reclaimee above deserved
    within = all(
        _le(reclaimer.share(r).allocated + float(request.get(r, 0.0)), reclaimer.share(r).deserved)
        for r in RESOURCES
    )
    above = not all(_le(left[r], reclaimee.share(r).deserved) for r in RESOURCES)
    return within and above


def victim_queue_order(
    queues: Mapping[str, QueueShares], candidates: Sequence[str], resource: str = "gpu"
) -> list[str]:
    """Queues to reclaim from first: most saturated (allocated / fair share) first.

    Ties: lower queue priority first, then name. This is the ordering KAI's docs give for
    reclaim ("Higher ratio == higher probability of reclaim").
    """

    def key(name: str):
        s = queues[name].share(resource)
        return (-saturation(s.allocated, s.fair_share), queues[name].priority, name)

    return sorted(candidates, key=key)


def preempt_min_runtime(config: KaiConfig, victim_leaf: str, default: float = 0.0) -> float:
    """Seconds a job of ``victim_leaf`` must run before it may be preempted.

    KAI's minruntime plugin: the victim's queue's ``preemptMinRuntime``, else the nearest
    ancestor's, else the plugin default (``defaultPreemptMinRuntime``, 0 s).
    """
    for name in config.path(victim_leaf):
        v = config.queues[name].preempt_min_runtime
        if v is not None:
            return v
    return default


def reclaim_min_runtime(
    config: KaiConfig,
    reclaimer_leaf: str,
    victim_leaf: str,
    method: str = "lca",
    default: float = 0.0,
) -> float:
    """Seconds a job of ``victim_leaf`` must run before ``reclaimer_leaf`` may reclaim it.

    ``method="queue"``: from the victim's queue up. ``"lca"`` (KAI's default): from the child
    of the lowest common ancestor on the victim's side, up to the root. Else ``default``.
    """
    if method not in ("lca", "queue"):
        raise ValueError(f"reclaim min-runtime method must be 'lca' or 'queue', got {method!r}")
    vpath = config.path(victim_leaf)
    if method == "lca":
        rset = set(config.path(reclaimer_leaf))
        cut = next((i for i, n in enumerate(vpath) if n in rset), len(vpath))
        start = max(cut - 1, 0)
        vpath = vpath[start:]
    for name in vpath:
        v = config.queues[name].reclaim_min_runtime
        if v is not None:
            return v
    return default


def min_runtime_protected(now: float, run_start: float, min_runtime: float) -> bool:
    """Whether a job that started at ``run_start`` (s) is still protected at ``now``."""
    return now - run_start < min_runtime


def decayed_usage(
    intervals: Sequence[tuple[float, float, float]],
    capacity: Sequence[tuple[float, float, float]],
    now: float,
    window: float,
    half_life: float | None,
) -> float:
    """KAI's time-based usage of one queue and resource, normalised to cluster capacity.

    ``sum(alloc(t) * 0.5 ** ((now - t) / half_life)) / sum(capacity(t) * same)`` over the
    sliding ``window`` before ``now``, with piecewise-constant allocation and capacity given as
    ``(start, end, amount)`` intervals (seconds, amount). Integrated exactly; ``half_life``
    None = no decay. E.g. 24 GPU-hours used in a 10-GPU cluster over 10 hours gives 0.24.

    Returns:
        The normalised usage (0 when there was no capacity in the window).
    """
    lo = now - window
    num = sum(_decayed(a, b, x, lo, now, half_life) for a, b, x in intervals)
    den = sum(_decayed(a, b, x, lo, now, half_life) for a, b, x in capacity)
    return num / den if den > 0 else 0.0


def _decayed(
    a: float, b: float, amount: float, lo: float, now: float, half_life: float | None
) -> float:
    a, b = max(a, lo), min(b, now)
    if b <= a:
        return 0.0
    if half_life is None:
        return amount * (b - a)
    lam = math.log(2) / half_life
    return amount * (math.exp(-lam * (now - b)) - math.exp(-lam * (now - a))) / lam
