"""Kueue's semantics as pure functions (the ``kueue`` policy builds on these).

* :mod:`policies.kueue.objects`: ClusterQueue, Cohort, ResourceFlavor, LocalQueue and
  WorkloadPriorityClass objects from ``kubectl get ... -o yaml``;
* :mod:`policies.kueue.quota`: the cohort tree's quota / borrowing / lending accounting
  (Kueue's ``resourceNode``), flavor assignment and classical preemption targets.
"""
