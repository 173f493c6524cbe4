"""Request routing across a service's ready replicas.

A router is built per run (it may keep state, e.g. the round-robin position) and picks one of
the routable replicas (ready, not draining), given in slot order, for each arriving request
(``choose(replicas, request)``):

* ``round_robin``: the next replica in slot order after the one chosen last;
* ``least_outstanding``: fewest outstanding requests (queued + in the batch), ties to the
  lowest slot;
* ``jsq`` (join the shortest queue): least outstanding work in tokens (prompt tokens not yet
  prefilled + output tokens not yet generated), ties to the lowest slot. Unlike
  ``least_outstanding`` it sees that one long request is more queue than two short ones;
* ``prefix_affinity`` (with prefix caching): among the replicas whose outstanding requests are
  at most ``load_cap`` x max(1, the fewest outstanding of any replica), the one holding the
  longest cached leading run of the request's prefix blocks; ties (and no hit anywhere) to the
  fewest outstanding requests, then the lowest slot. The cap keeps a popular prefix from
  piling every request onto one replica (SGLang's cache-aware router and llm-d's prefix scorer
  balance cache affinity against load in the same spirit). The cached run is read at routing
  time; it may change before the request is admitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "Routable",
    "RoundRobin",
    "LeastOutstanding",
    "JoinShortestQueue",
    "PrefixAffinity",
    "ROUTERS",
    "make_router",
]


class Routable(Protocol):
    """What a router reads of a replica."""

    slot: int
    work_tokens: int
    load: int
    """Requests queued at or running on the replica (its ``outstanding``, kept as a count)."""


class CachingRoutable(Routable, Protocol):
    """What ``prefix_affinity`` also reads: the cached leading blocks of a request."""

    def cached_prefix(self, request: int) -> int:
        """Leading blocks of ``request`` cached on the replica now."""
        ...


class RoundRobin:
    """Cycle through the replicas in slot order."""

    def __init__(self) -> None:
        self.last = -1

    def choose(self, replicas: Sequence[Routable], request: int) -> Routable:
        """The first replica whose slot is after the last chosen one (wrapping around)."""
        for r in replicas:
            if r.slot > self.last:
                break
        else:
            r = replicas[0]
        self.last = r.slot
        return r


class LeastOutstanding:
    """Fewest outstanding requests."""

    def choose(self, replicas: Sequence[Routable], request: int) -> Routable:
        """The replica with the fewest outstanding requests (first in slot order on ties)."""
        best = replicas[0]
        low = best.load
        for r in replicas:
            n = r.load
            if n < low:
                best, low = r, n
        return best


class JoinShortestQueue:
    """Least outstanding work in tokens."""

    def choose(self, replicas: Sequence[Routable], request: int) -> Routable:
        """The replica with the fewest outstanding tokens (first in slot order on ties)."""
        return min(replicas, key=lambda r: r.work_tokens)


class PrefixAffinity:
    """Longest cached prefix among the replicas within a load cap (see module doc).

    Args:
        load_cap: a replica is a candidate while its outstanding requests are at most
            ``load_cap`` x max(1, fewest outstanding); >= 1.
    """

    def __init__(self, load_cap: float = 2.0) -> None:
        if not load_cap >= 1:
            raise ValueError(f"prefix_affinity: load_cap must be >= 1, got {load_cap}")
        self.load_cap = float(load_cap)

    def choose(self, replicas: Sequence[CachingRoutable], request: int) -> CachingRoutable:
        """The candidate with the most cached leading blocks of ``request``."""
        loads = [r.load for r in replicas]
        cap = self.load_cap * max(1, min(loads))
        best, key = replicas[0], None
        for r, n in zip(replicas, loads, strict=True):
            if n > cap:
                continue
            k = (-r.cached_prefix(request), n)
            if key is None or k < key:
                best, key = r, k
        return best


ROUTERS = MappingProxyType(
    {
        "round_robin": RoundRobin,
        "least_outstanding": LeastOutstanding,
        "jsq": JoinShortestQueue,
        "prefix_affinity": PrefixAffinity,
    }
)
"""Router classes by config name."""

Router = RoundRobin | LeastOutstanding | JoinShortestQueue | PrefixAffinity


def make_router(name: str, load_cap: float = 2.0) -> Router:
    """A fresh router of the named kind (``load_cap``: of ``prefix_affinity`` only).

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name not in ROUTERS:
        raise KeyError(f"unknown router {name!r}; choose one of {', '.join(ROUTERS)}")
    if name == "prefix_affinity":
        return PrefixAffinity(load_cap)
    return ROUTERS[name]()
