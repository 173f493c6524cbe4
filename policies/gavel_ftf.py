"""``gavel_ftf``: Gavel's finish-time fairness (Themis's rho), a bisection over LPs per round.

Each round (:mod:`policies.gavel.rounds`) minimises the largest
``rho_j = (t_j + R_j / thr_j(X)) / (t_j + R_j / thr_j(X_eq))`` over the active jobs, ``t_j``
the seconds since the job arrived and ``R_j`` its remaining work (seconds on the reference
type, which makes ``R_j / thr_j`` seconds) (:func:`policies.gavel.allocation.finish_time_fairness`).
Cost per round: one max-min solve plus about 20 HiGHS LP feasibility problems of ``J*K``
variables.
"""

from __future__ import annotations

import numpy as np

from policies.gavel.allocation import finish_time_fairness
from policies.gavel.rounds import GavelRounds

__all__ = ["GavelFTF"]


class GavelFTF(GavelRounds):
    """Finish-time fairness over effective throughputs, Gavel's round mechanism."""

    name = "finish_time_fairness"

    def allocate(self, thr: np.ndarray, sf: np.ndarray, view, active: np.ndarray) -> np.ndarray:
        """The finish-time fair allocation of this round."""
        jobs, now = view.jobs, view.now
        left = np.array([max(jobs.remaining(int(j), now), 0.0) for j in active])
        since = np.asarray(now - jobs.submit[active], dtype=np.float64)
        return finish_time_fairness(
            thr, sf, self.lp_workers, time_since_start=since, steps_remaining=left
        )
