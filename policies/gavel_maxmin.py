"""``gavel_maxmin``: Gavel's heterogeneity-aware max-min fairness (LAS), one LP per round.

Each round (:mod:`policies.gavel.rounds`) maximises the smallest normalised effective
throughput ``thr_j(X) / thr_j(X_eq)`` over the active jobs
(:func:`policies.gavel.allocation.max_min_fairness`, spare capacity filled by a second LP).
Cost per round: one or two HiGHS LPs of ``J*K`` variables and ``2J + K`` rows.
"""

from __future__ import annotations

import numpy as np

from policies.gavel.allocation import max_min_fairness
from policies.gavel.rounds import GavelRounds

__all__ = ["GavelMaxMin"]


class GavelMaxMin(GavelRounds):
    """Max-min fairness over effective throughputs, Gavel's round mechanism."""

    name = "max_min_fairness"

    def allocate(self, thr: np.ndarray, sf: np.ndarray, view, active: np.ndarray) -> np.ndarray:
        """The max-min fair allocation of this round."""
        return max_min_fairness(thr, sf, self.lp_workers)
