"""Scheduling policies. Each is selectable as ``+policy=NAME`` (``configs/policy/NAME.yaml``)."""

from policies.base import Decision, Migrate, Policy, Preempt, Reject, Start

__all__ = ["Decision", "Migrate", "Policy", "Preempt", "Reject", "Start"]
