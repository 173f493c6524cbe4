"""Replica autoscaling: a decision every ``interval_s`` from what the last interval showed.

Two policies, both clamped to ``[min_replicas, max_replicas]``:

* ``utilization`` (target tracking): batch utilisation is the time-averaged number of
  outstanding requests (queued + in batches) over the interval divided by ``max_batch_size``,
  in replica-equivalents; ``desired = ceil(that / target_utilization)`` (at least 1 while any
  request is outstanding, so a service can scale from zero).
* ``slo`` (queue/SLO steps): add ``step`` replicas when the share of first tokens in the
  interval that met the TTFT SLO is below ``slo_attainment`` or the time-averaged queue (requests
  not yet in a batch) per ready replica exceeds ``queue_high``, unless replicas are still being
  placed or loading; remove one when attainment is met, the queue per replica is at most
  ``queue_low`` and the remaining replicas would stay below ``target_utilization``.

Scale-out applies at once. Scale-in is stabilised: the target is the largest ``desired`` of
the last ``scale_in_delay_s`` seconds (Kubernetes HPA's downscale window), and a replica
removed by scale-in drains (takes no new requests, finishes its own) before it stops.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["Observation", "Autoscaler"]


@dataclass(frozen=True)
class Observation:
    """What the autoscaler sees at a decision (averages over the last interval).

    Attributes:
        now: simulated time (s).
        provisioned: replicas submitted and not draining (pending placement, loading, ready).
        ready: replicas serving requests (not draining).
        avg_outstanding: time-averaged requests arrived and not finished.
        avg_queued: time-averaged requests arrived and not yet admitted to a batch.
        ttft_met: first tokens in the interval that met the TTFT SLO.
        ttft_count: first tokens in the interval.
        max_batch_size: requests one replica batches at most.
    """

    now: float
    provisioned: int
    ready: int
    avg_outstanding: float
    avg_queued: float
    ttft_met: int
    ttft_count: int
    max_batch_size: int


class Autoscaler:
    """Decides the replica count of one service (see module doc).

    Args:
        policy: ``utilization`` or ``slo``.
        min_replicas: lower bound (0 allows scale to zero).
        max_replicas: upper bound.
        initial_replicas: replicas submitted at time 0 (None = ``min_replicas``).
        interval_s: seconds between decisions.
        target_utilization: batch utilisation to aim for (0-1].
        slo_attainment: ``slo``: share of TTFTs within SLO below which it scales out.
        queue_high: ``slo``: queued requests per ready replica above which it scales out.
        queue_low: ``slo``: queued requests per ready replica at or below which it may scale in.
        step: ``slo``: replicas added per scale-out.
        scale_in_delay_s: downscale stabilisation window (s).
    """

    def __init__(
        self,
        policy: str = "utilization",
        min_replicas: int = 1,
        max_replicas: int = 4,
        initial_replicas: int | None = None,
        interval_s: float = 30.0,
        target_utilization: float = 0.5,
        slo_attainment: float = 0.9,
        queue_high: float = 2.0,
        queue_low: float = 0.0,
        step: int = 1,
        scale_in_delay_s: float = 300.0,
    ) -> None:
        if policy not in ("utilization", "slo"):
            raise ValueError(f"autoscaler policy must be utilization or slo, got {policy!r}")
        if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
            raise ValueError("need 0 <= min_replicas <= max_replicas and max_replicas >= 1")
        if interval_s <= 0 or not 0 < target_utilization or scale_in_delay_s < 0 or step < 1:
            raise ValueError(
                "interval_s and target_utilization must be > 0, step >= 1, scale_in_delay_s >= 0"
            )
        self.policy = policy
        self.min_replicas, self.max_replicas = int(min_replicas), int(max_replicas)
        initial = self.min_replicas if initial_replicas is None else int(initial_replicas)
        self.initial_replicas = min(max(initial, self.min_replicas), self.max_replicas)
        self.interval_s = float(interval_s)
        self.target_utilization = float(target_utilization)
        self.slo_attainment = float(slo_attainment)
        self.queue_high, self.queue_low = float(queue_high), float(queue_low)
        self.step = int(step)
        self.scale_in_delay_s = float(scale_in_delay_s)

    def clamp(self, n: int) -> int:
        """``n`` within the replica bounds."""
        return min(max(n, self.min_replicas), self.max_replicas)

    def desired(self, obs: Observation) -> int:
        """The replica count the policy wants now, before stabilisation."""
        if self.policy == "utilization":
            load = obs.avg_outstanding / obs.max_batch_size
            want = math.ceil(load / self.target_utilization - 1e-9)
            if obs.avg_outstanding > 0:
                want = max(want, 1)
            return self.clamp(want)
        return self.clamp(self._slo_step(obs))

    def _slo_step(self, obs: Observation) -> int:
        n = obs.provisioned
        attained = obs.ttft_count == 0 or obs.ttft_met >= self.slo_attainment * obs.ttft_count
        queue = obs.avg_queued / max(obs.ready, 1)
        if n == 0:
            return 1 if obs.avg_outstanding > 0 else 0
        if not attained or queue > self.queue_high:
            return n if obs.ready < n else n + self.step  # wait for replicas on their way
        util_after = obs.avg_outstanding / obs.max_batch_size / max(n - 1, 1e-9)
        if queue <= self.queue_low and util_after < self.target_utilization:
            return n - 1
        return n

    def target(self, recent: deque, obs: Observation) -> int:
        """Stabilised target: scale out at once, scale in to the window's largest desire.

        ``recent`` holds ``(time, desired)`` pairs of earlier decisions of this run; it is
        updated in place.
        """
        want = self.desired(obs)
        recent.append((obs.now, want))
        while recent and recent[0][0] < obs.now - self.scale_in_delay_s:
            recent.popleft()
        if want >= obs.provisioned:
            return want
        return min(obs.provisioned, max(d for _, d in recent))
