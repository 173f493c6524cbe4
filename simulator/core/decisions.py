"""What a policy may decide: the decision types yielded by ``schedule(view)``.

A policy's pass yields these; the engine applies each one as soon as it is yielded, so a
generator sees the effect of its earlier decisions in the view (fewer free GPUs, a shorter
queue). They live in the simulator (not in ``policies``) because the engine applies them.
"""

from __future__ import annotations

from typing import NamedTuple

from simulator.core.placement import Placement

__all__ = ["Start", "Preempt", "Migrate", "Reject", "Wait", "Decision"]


class Start(NamedTuple):
    """Start queued job ``job`` (index in the job table) on ``placement``."""

    job: int
    placement: Placement


class Preempt(NamedTuple):
    """Stop running job ``job``; it returns to the queue (preemption model of the engine)."""

    job: int


class Migrate(NamedTuple):
    """Move running job ``job`` to ``placement``.

    The job keeps its progress, minus the engine's ``migration_overhead`` seconds.
    """

    job: int
    placement: Placement


class Reject(NamedTuple):
    """Turn queued job ``job`` away for good (terminal status ``rejected``)."""

    job: int
    reason: str = ""


class Wait(NamedTuple):
    """Queued job ``job`` stays waiting in this pass, because of ``reason``.

    Changes nothing but the record of why the job waits (``pending_reason`` in
    ``jobs.parquet``, time per reason in ``pending.parquet``; rules in
    :mod:`simulator.core.pending`). ``reason`` is a short text such as ``queue over limit``
    or ``no node with 8 free GPUs``.
    """

    job: int
    reason: str


Decision = Start | Preempt | Migrate | Reject | Wait
