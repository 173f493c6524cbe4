"""NVIDIA KAI Scheduler's semantics as pure functions (the ``kai`` policy builds on these).

* :mod:`policies.kai.objects`: ``Queue`` (v2) and ``PriorityClass`` objects read from
  ``kubectl get queues,priorityclasses -o yaml``;
* :mod:`policies.kai.fairshare`: KAI's per-resource fair-share division (proportion plugin);
* :mod:`policies.kai.rules`: queue capacity checks, reclaim eligibility, queue ordering,
  preemption rules, min-runtime protection and time-decayed usage.
"""
