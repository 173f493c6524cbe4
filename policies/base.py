"""The policy interface: a policy reads a :class:`SchedulerView` and yields decisions.

A policy is any object with a ``schedule(view)`` method returning an iterable of decisions
(:class:`Start`, :class:`Preempt`, :class:`Migrate`, :class:`Reject`,
:class:`Wait`). The engine applies
each decision as soon as it is yielded, so a generator sees the effect of its earlier
decisions in the view (fewer free GPUs, a shorter queue). A policy never changes simulator
state itself, never advances time and never does I/O; it may keep private bookkeeping between
calls. ``setup(view)`` is called once before the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.core.view import SchedulerView

from simulator.core.decisions import Decision, Migrate, Preempt, Reject, Start, Wait

__all__ = ["Start", "Preempt", "Migrate", "Reject", "Wait", "Decision", "Policy", "overrides"]


class Policy:
    """Base class for scheduling policies (subclassing is optional; duck typing works).

    Subclasses implement :meth:`schedule`. Constructor arguments come from
    ``configs/policy/<name>.yaml``; a user policy in their own package is selected with
    ``+policy=custom policy._target_=mypkg.MyPolicy``.
    """

    name = "policy"

    def setup(self, view: SchedulerView) -> None:
        """Called once before the simulation starts (build placers, indexes...)."""

    def schedule(self, view: SchedulerView) -> Iterable[Decision]:
        """Decide what to start (or preempt) now. Called once per scheduling pass."""
        raise NotImplementedError


def overrides(policy: object, base: type, *methods: str) -> bool:
    """Whether ``policy`` replaces any of ``base``'s ``methods`` (in a subclass or on itself).

    A policy with a compiled pass (``compiled_pass``) checks this before offering it: the
    compiled pass only knows the base class's rules, so a subclass that changes one of them
    gets the Python pass.
    """
    own = vars(policy)
    return any(getattr(type(policy), m) is not getattr(base, m) or m in own for m in methods)
