"""KAI Scheduler's fair-share division (the proportion plugin's resource division), as pure code.

For each resource separately (GPU, CPU, memory) and each level of the queue tree, the parent's
fair share (the cluster's total at the top) is divided among its children:

1. **deserved**: every queue gets ``min(deserved, requestable)`` where a deserved of -1 means
   the whole amount and ``requestable = min(request, limit)``; the sum may exceed what there
   is (KAI then leaves nothing for the next step, it does not scale down);
2. **over quota, by priority**: the rest goes to the highest queue priority first; within a
   priority, in rounds: every unsatisfied queue with weight > 0 is offered
   ``amount_this_round * w'/sum(w')`` with ``w' = max(0, w_n + k (w_n - usage))``, ``w_n`` its
   weight normalised over the unsatisfied queues of that priority and ``usage`` its normalised
   historical usage (0 without time-based fair share); a queue takes what it still requests if
   that is less, else the *floor* of its offer (whole units) and remembers the fraction; rounds
   repeat while some queue took less than offered;
3. **remainders**: what the floors left is handed out one unit (or what is left, if less) per
   queue, priorities in descending order, largest remembered fraction first (ties: older queue,
   then name).

A queue is satisfied when its fair share reaches its request or its limit. The division
recurses into the children with each queue's fair share as their total.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from policies.kai.objects import RESOURCES, UNLIMITED, KaiConfig

__all__ = [
    "QueueShares",
    "Share",
    "build_shares",
    "divide_over_quota",
    "fair_shares",
    "set_deserved",
    "set_resource_share",
]


@dataclass
class Share:
    """One resource of one queue in the division (KAI's ``ResourceShare``; any one unit).

    Attributes:
        deserved: guaranteed amount (-1 = unlimited).
        max_allowed: limit (-1 = unlimited).
        weight: over-quota weight.
        request: allocated + pending requests of the queue's subtree.
        allocated: held by running jobs of the subtree.
        allocated_non_preemptible: part of ``allocated`` held by non-preemptible jobs.
        usage: historical usage normalised to cluster capacity (time-based fair share).
        fair_share: the result.
    """

    deserved: float = 0.0
    max_allowed: float = UNLIMITED
    weight: float = 1.0
    request: float = 0.0
    allocated: float = 0.0
    allocated_non_preemptible: float = 0.0
    usage: float = 0.0
    fair_share: float = 0.0

    def requestable(self) -> float:
        """``min(request, limit)`` (the request when unlimited)."""
        return (
            self.request if self.max_allowed == UNLIMITED else min(self.max_allowed, self.request)
        )

    def allocatable(self) -> float:
        """``min(limit, max(deserved, fair share))``; the limit when deserved is unlimited."""
        if self.deserved == UNLIMITED:
            return self.max_allowed
        out = max(self.deserved, self.fair_share)
        return out if self.max_allowed == UNLIMITED else min(self.max_allowed, out)

    def satisfied(self) -> bool:
        """Fair share reached the request, or the (finite) limit."""
        if self.request <= self.fair_share:
            return True
        return self.max_allowed != UNLIMITED and self.max_allowed <= self.fair_share

    def remaining_request(self) -> float:
        """What the queue still asks beyond its fair share (0 if none)."""
        req = self.requestable()
        return 0.0 if req < self.fair_share else req - self.fair_share


@dataclass
class QueueShares:
    """A queue in the division: its place in the tree and one :class:`Share` per resource.

    Attributes:
        name: queue name.
        parent: parent name ('' at the top).
        priority: queue priority.
        created: creation time stamp (text; older first in ties).
        children: child names.
        shares: resource -> share.
    """

    name: str
    parent: str = ""
    priority: int = 100
    created: str = ""
    children: list[str] = field(default_factory=list)
    shares: dict[str, Share] = field(default_factory=dict)

    def share(self, resource: str) -> Share:
        """The share of ``resource`` (created empty on first use)."""
        return self.shares.setdefault(resource, Share())


def _order(queues: Iterable[QueueShares]) -> list[QueueShares]:
    return sorted(queues, key=lambda q: (q.created, q.name))


def set_deserved(total: float, queues: Sequence[QueueShares], resource: str) -> float:
    """Step 1: give each queue ``min(deserved, requestable)``; return what is left (may be < 0)."""
    left = total
    for q in _order(queues):
        s = q.share(resource)
        deserved = total if s.deserved == UNLIMITED else s.deserved
        amount = min(deserved, s.requestable())
        s.fair_share += amount
        left -= amount
    return left


def _weights(
    queues: Sequence[QueueShares], resource: str, k: float
) -> tuple[dict[str, float], float]:
    total_w = sum(
        q.share(resource).weight for q in queues if q.share(resource).remaining_request() > 0
    )
    if total_w == 0:
        return {}, 0.0
    out: dict[str, float] = {}
    for q in queues:
        s = q.share(resource)
        if s.satisfied():
            continue
        nw = s.weight / total_w
        out[q.name] = max(0.0, nw + k * (nw - s.usage))
    return out, sum(out.values())


def _divide_up_to_fair_share(
    total: float, k: float, queues: Sequence[QueueShares], resource: str
) -> tuple[float, dict[str, tuple[QueueShares, float]]]:
    remainders: dict[str, tuple[QueueShares, float]] = {}
    queues = _order(queues)
    while True:
        again = False
        this_round = total
        weights, weight_sum = _weights(queues, resource, k)
        if weight_sum == 0:
            break
        for q in queues:
            if total == 0:
                break
            s = q.share(resource)
            if s.satisfied():
                continue
            requested = s.remaining_request()
            if s.weight == 0:
                continue
            offer = this_round * (weights[q.name] / weight_sum)
            if requested <= offer:
                give = requested
                remainders.pop(q.name, None)
            else:
                give = math.floor(offer) if math.floor(offer) > 0 else 0.0
                if offer - give > 0:
                    remainders[q.name] = (q, offer - give)
            if give == 0:
                continue
            s.fair_share += give
            total -= give
            again = again or requested < offer
        if not again or total == 0:
            break
    return total, remainders


def divide_over_quota(
    total: float, k: float, queues: Sequence[QueueShares], resource: str
) -> float:
    """Steps 2 and 3: divide ``total`` beyond the deserved shares; return what is left."""
    by_priority: dict[int, list[QueueShares]] = {}
    for q in queues:
        by_priority.setdefault(q.priority, []).append(q)
    priorities = sorted(by_priority, reverse=True)
    remainders: dict[int, dict[str, tuple[QueueShares, float]]] = {}
    for p in priorities:
        total, remainders[p] = _divide_up_to_fair_share(total, k, by_priority[p], resource)
    for p in priorities:
        if total <= 0:
            break
        pending = sorted(remainders[p].values(), key=lambda e: (-e[1], e[0].created, e[0].name))
        for q, _ in pending:
            if total == 0:
                break
            give = min(1.0, total)
            q.share(resource).fair_share += give
            total -= give
    return total


def set_resource_share(
    total: float, k: float, resource: str, queues: Sequence[QueueShares]
) -> float:
    """Divide ``total`` of ``resource`` among sibling ``queues``; return what is left (>= 0)."""
    left = set_deserved(total, queues, resource)
    if left > 0:
        return divide_over_quota(left, k, queues, resource)
    return 0.0


def fair_shares(
    queues: Mapping[str, QueueShares],
    totals: Mapping[str, float],
    k: float = 1.0,
    resources: Sequence[str] = RESOURCES,
) -> dict[str, dict[str, float]]:
    """Fair share of every queue and resource, KAI's way, top level down.

    Args:
        queues: name -> queue (fair shares are reset to 0 first and written in place).
        totals: resource -> what the cluster has (GPUs, millicores, bytes...).
        k: KAI's ``kValue`` (weight of historical usage; only matters when ``usage`` is set).
        resources: resources to divide.

    Returns:
        name -> resource -> fair share.
    """
    for q in queues.values():
        for r in resources:
            q.share(r).fair_share = 0.0
    top = [q for q in queues.values() if not q.parent]
    _recurse(queues, top, dict(totals), k, resources)
    return {n: {r: q.share(r).fair_share for r in resources} for n, q in queues.items()}


def _recurse(queues, level, totals, k, resources) -> None:
    if not level:
        return
    for r in resources:
        set_resource_share(totals[r], k, r, level)
    for q in level:
        kids = [queues[c] for c in q.children]
        _recurse(queues, kids, {r: q.share(r).fair_share for r in resources}, k, resources)


def build_shares(
    config: KaiConfig,
    request: Mapping[str, Mapping[str, float]],
    allocated: Mapping[str, Mapping[str, float]] | None = None,
    non_preemptible: Mapping[str, Mapping[str, float]] | None = None,
    usage: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, QueueShares]:
    """Queue states from a config and per-leaf demand, in KAI's internal units.

    Quotas and limits are converted as KAI does: GPUs as is, CPU millicores as is, memory MB
    to bytes (x 10**6). Leaf values are summed up the tree (a parent's request is its
    subtree's). ``request`` must include what is allocated (KAI's request is allocated +
    pending).

    Args:
        config: the queues.
        request: leaf -> resource -> requested (GPUs, millicores, bytes).
        allocated: leaf -> resource -> allocated.
        non_preemptible: leaf -> resource -> allocated by non-preemptible jobs.
        usage: queue -> resource -> normalised historical usage (not summed: KAI's usage
            database reports every queue).

    Raises:
        KeyError: a leaf that is not a queue of the config.
    """
    out: dict[str, QueueShares] = {}
    for q in config.queues.values():
        qs = QueueShares(q.name, q.parent, q.priority, q.created, config.children(q.name))
        for r in RESOURCES:
            rq = q.quota(r)
            scale = 1e6 if r == "memory" else 1.0
            qs.shares[r] = Share(
                deserved=rq.quota * scale if rq.quota != UNLIMITED else UNLIMITED,
                max_allowed=rq.limit * scale if rq.limit != UNLIMITED else UNLIMITED,
                weight=rq.over_quota_weight,
            )
        out[q.name] = qs
    for table, attr in (
        (request, "request"),
        (allocated, "allocated"),
        (non_preemptible, "allocated_non_preemptible"),
    ):
        for leaf, values in (table or {}).items():
            if leaf not in out:
                raise KeyError(f"kai: {leaf!r} is not a queue of the config; queues: {list(out)}")
            for name in config.path(leaf):
                for r, v in values.items():
                    s = out[name].share(r)
                    setattr(s, attr, getattr(s, attr) + float(v))
    for name, values in (usage or {}).items():
        for r, v in values.items():
            out[name].share(r).usage = float(v)
    return out
