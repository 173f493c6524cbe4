"""Request routing across a service's ready replicas.

A router is built per run (it may keep state, e.g. the round-robin position) and picks one of
the routable replicas (ready, not draining), given in slot order, for each arriving request:

* ``round_robin``: the next replica in slot order after the one chosen last;
* ``least_outstanding``: fewest outstanding requests (queued + in the batch), ties to the
  lowest slot;
* ``jsq`` (join the shortest queue): least outstanding work in tokens (prompt tokens not yet
  prefilled + output tokens not yet generated), ties to the lowest slot. Unlike
  ``least_outstanding`` it sees that one long request is more queue than two short ones.
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
    "ROUTERS",
    "make_router",
]


class Routable(Protocol):
    """What a router reads of a replica."""

    slot: int
    work_tokens: int

    @property
    def outstanding(self) -> int:
        """Requests queued at or running on the replica."""
        ...


class RoundRobin:
    """Cycle through the replicas in slot order."""

    def __init__(self) -> None:
        self.last = -1

    def choose(self, replicas: Sequence[Routable]) -> Routable:
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

    def choose(self, replicas: Sequence[Routable]) -> Routable:
        """The replica with the fewest outstanding requests (first in slot order on ties)."""
        best = replicas[0]
        low = best.outstanding
        for r in replicas:
            n = r.outstanding
            if n < low:
                best, low = r, n
        return best


class JoinShortestQueue:
    """Least outstanding work in tokens."""

    def choose(self, replicas: Sequence[Routable]) -> Routable:
        """The replica with the fewest outstanding tokens (first in slot order on ties)."""
        return min(replicas, key=lambda r: r.work_tokens)


ROUTERS = MappingProxyType(
    {"round_robin": RoundRobin, "least_outstanding": LeastOutstanding, "jsq": JoinShortestQueue}
)
"""Router classes by config name."""


def make_router(name: str) -> RoundRobin | LeastOutstanding | JoinShortestQueue:
    """A fresh router of the named kind.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name not in ROUTERS:
        raise KeyError(f"unknown router {name!r}; choose one of {', '.join(ROUTERS)}")
    return ROUTERS[name]()
