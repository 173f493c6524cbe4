"""Stop-gap for policies that learn about arrivals by scanning the job table in index order.

:class:`~policies.keyed_queue.KeyedQueue` (used by ``priority``, ``sjf``, ``fair``...) notices
new jobs by walking the job table while rows are no longer ``FUTURE``. A replica row submitted
by a controller sits after rows that never arrive (the service's guard row, spare replica
rows), so the walk never reaches it and the policy never starts it. Until the policy side
learns of out-of-order admissions (docs/ENGINE_REQUESTS_serving.md), wrap the policy class:
``with_dormant_arrivals(PriorityPolicy)(non_preemptible_threshold=100)``.
"""

from __future__ import annotations

import numpy as np

from simulator.jobs import Status

__all__ = ["with_dormant_arrivals"]


def with_dormant_arrivals(policy_cls: type) -> type:
    """A subclass of an ``OrderedPolicy`` class that also sees submitted dormant jobs.

    Before each pass it pushes every queued job that was dormant at the start of the run
    (``submit_time = inf`` then) and that its keyed queue does not hold.
    """

    class DormantAware(policy_cls):
        def setup(self, view) -> None:
            super().setup(view)
            self._dormant = np.flatnonzero(np.isinf(view.jobs.submit))

        def before_pass(self, view) -> None:
            super().before_pass(view)
            dormant = self._dormant
            for j in dormant[view.jobs.status[dormant] == Status.QUEUED].tolist():
                if self.kq.key(j) is None:
                    self.kq.push(j, self.key(view, j))

    DormantAware.__name__ = DormantAware.__qualname__ = f"DormantAware{policy_cls.__name__}"
    DormantAware.name = getattr(policy_cls, "name", policy_cls.__name__)
    return DormantAware
