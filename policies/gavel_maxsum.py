"""``gavel_maxsum``: Gavel's ``max_sum_throughput_perf``, one LP per round.

Each round (:mod:`policies.gavel.rounds`) maximises the sum over active jobs of raw steps/s,
``sum_j T_j(X)`` (:func:`policies.gavel.allocation.max_sum_throughput`). The rows are the
engine's GPU-type speeds times the job's steps/s on the reference type (column
``ref_steps_per_s``; 1 where absent, which makes it a sum of work rates). Not fair: job types
with many cheap steps win. Cost per round: one HiGHS LP of ``J*K`` variables, ``J + K`` rows.
"""

from __future__ import annotations

import numpy as np

from policies.gavel.allocation import max_sum_throughput
from policies.gavel.rounds import GavelRounds

__all__ = ["GavelMaxSum"]


class GavelMaxSum(GavelRounds):
    """Max-sum throughput over raw steps/s, Gavel's round mechanism."""

    name = "max_sum_throughput_perf"
    raw_rows = True

    def allocate(self, thr: np.ndarray, sf: np.ndarray, view, active: np.ndarray) -> np.ndarray:
        """The throughput-maximising allocation of this round."""
        return max_sum_throughput(thr, sf, self.lp_workers)
