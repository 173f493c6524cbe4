"""Scheduling policies. Each is selectable as ``+policy=NAME`` (``configs/policy/NAME.yaml``)."""

from policies.base import Decision, Policy, Preempt, Start

__all__ = ["Decision", "Policy", "Preempt", "Start"]
